//! The PostgreSQL backend: the same contract as SQLite, for collectors that
//! run as stateless replicas in front of one database.
//!
//! JSON columns are `jsonb`; values travel as text and are cast in SQL.
//! Add `options[search_path]=SCHEMA` to the URL to keep the tables in a schema
//! of their own (the tests do).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::row::{
    PointColumns, SpanRow, from_json, labels_json, order_by_request, span_row, to_json, unique_ids,
};
use super::{
    FoundTraces, MetricSeries, NumberPoint, SeriesWindow, Span, Store, StoreError, Temporality,
    TraceId, TraceQuery, migrate,
};

const MAX_CONNECTIONS: u32 = 8;

const INSERT_SPAN: &str = "INSERT INTO spans (trace_id, span_id, parent_span_id, service_name, \
     service_version, operation, kind, start_unix_nano, duration_nano, status_code, \
     status_message, trace_state, flags, attributes, events, links, resource, scope) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
     $14::jsonb, $15::jsonb, $16::jsonb, $17::jsonb, $18::jsonb) \
     ON CONFLICT (trace_id, span_id) DO NOTHING";
const INSERT_OPERATION: &str = "INSERT INTO operations (service_name, operation, kind) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, service_name, service_version, \
     operation, kind, start_unix_nano, duration_nano, status_code, status_message, trace_state, \
     flags, attributes::text AS attributes, events::text AS events, links::text AS links, \
     resource::text AS resource, scope::text AS scope";
const INSERT_SERIES: &str = "INSERT INTO metric_series \
     (name, labels, resource, kind, temporality, monotonic, unit) \
     VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) ON CONFLICT (name, labels) DO NOTHING RETURNING id";
const SELECT_SERIES: &str = "SELECT id FROM metric_series WHERE name = $1 AND labels = $2";
const INSERT_POINT: &str = "INSERT INTO metric_points (series_id, time_unix_nano, \
     start_unix_nano, value, count, sum, bucket_counts, explicit_bounds) \
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb) \
     ON CONFLICT (series_id, time_unix_nano) DO NOTHING";
const SELECT_SERVICES: &str = "SELECT DISTINCT service_name FROM operations ORDER BY service_name";
const SELECT_OPERATIONS: &str =
    "SELECT DISTINCT operation FROM operations WHERE service_name = $1 ORDER BY operation";
const SELECT_WINDOW_POINTS: &str = "SELECT s.id, s.labels, s.temporality, p.time_unix_nano, \
     p.start_unix_nano, p.value FROM metric_series s \
     JOIN metric_points p ON p.series_id = s.id \
     WHERE s.name = $1 AND p.time_unix_nano > $2 AND p.time_unix_nano <= $3 \
     AND p.value IS NOT NULL ORDER BY s.id, p.time_unix_nano";
const SELECT_BASELINES: &str = "SELECT b.series_id, b.time_unix_nano, b.start_unix_nano, b.value \
     FROM metric_series s CROSS JOIN LATERAL (SELECT p.series_id, p.time_unix_nano, \
         p.start_unix_nano, p.value FROM metric_points p \
         WHERE p.series_id = s.id AND p.time_unix_nano <= $2 AND p.value IS NOT NULL \
         ORDER BY p.time_unix_nano DESC LIMIT 1) b \
     WHERE s.name = $1 AND EXISTS (SELECT 1 FROM metric_points r WHERE r.series_id = s.id \
         AND r.time_unix_nano > $2 AND r.time_unix_nano <= $3)";

/// Spans and metrics in a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and runs the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect(url)
            .await?;
        if let Err(error) = migrate::postgres().run(&pool).await {
            pool.close().await;
            return Err(error.into());
        }
        Ok(Self { pool })
    }
}

fn push_span_filters(builder: &mut QueryBuilder<Postgres>, query: &TraceQuery) {
    builder.push(" FROM spans WHERE start_unix_nano >= ");
    builder.push_bind(query.start_unix_nano);
    builder.push(" AND start_unix_nano <= ");
    builder.push_bind(query.end_unix_nano);
    if let Some(service) = &query.service {
        builder.push(" AND service_name = ");
        builder.push_bind(service.clone());
    }
    if let Some(operation) = &query.operation {
        builder.push(" AND operation = ");
        builder.push_bind(operation.clone());
    }
    if let Some(min) = query.min_duration_nano {
        builder.push(" AND duration_nano >= ");
        builder.push_bind(min);
    }
    if let Some(max) = query.max_duration_nano {
        builder.push(" AND duration_nano <= ");
        builder.push_bind(max);
    }
    for (key, value) in &query.tags {
        builder.push(" AND (spans.attributes ->> ");
        builder.push_bind(key.clone());
        builder.push(" = ");
        builder.push_bind(value.clone());
        builder.push(" OR spans.resource ->> ");
        builder.push_bind(key.clone());
        builder.push(" = ");
        builder.push_bind(value.clone());
        builder.push(")");
    }
}

fn number_point(row: &PgRow) -> Result<NumberPoint, sqlx::Error> {
    Ok(NumberPoint {
        time_unix_nano: row.try_get("time_unix_nano")?,
        start_unix_nano: row.try_get("start_unix_nano")?,
        value: row.try_get("value")?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn write_spans(&self, spans: &[Span]) -> Result<(), StoreError> {
        if spans.is_empty() {
            return Ok(());
        }
        let rows = spans
            .iter()
            .map(SpanRow::from_span)
            .collect::<Result<Vec<_>, _>>()?;
        let mut operations = HashSet::new();
        let mut tx = self.pool.begin().await?;
        for row in rows {
            let operation = (row.service_name.clone(), row.operation.clone(), row.kind);
            let inserted = sqlx::query(INSERT_SPAN)
                .bind(row.trace_id)
                .bind(row.span_id)
                .bind(row.parent_span_id)
                .bind(row.service_name)
                .bind(row.service_version)
                .bind(row.operation)
                .bind(row.kind)
                .bind(row.start_unix_nano)
                .bind(row.duration_nano)
                .bind(row.status_code)
                .bind(row.status_message)
                .bind(row.trace_state)
                .bind(row.flags)
                .bind(row.attributes)
                .bind(row.events)
                .bind(row.links)
                .bind(row.resource)
                .bind(row.scope)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // Only spans actually stored name operations (a retried duplicate
            // with another name must not add one).
            if inserted > 0 && !operations.contains(&operation) {
                sqlx::query(INSERT_OPERATION)
                    .bind(&operation.0)
                    .bind(&operation.1)
                    .bind(operation.2)
                    .execute(&mut *tx)
                    .await?;
                operations.insert(operation);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write_metrics(&self, series: &[MetricSeries]) -> Result<(), StoreError> {
        if series.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for one in series {
            let labels = labels_json(&one.labels)?;
            let inserted: Option<i64> = sqlx::query_scalar(INSERT_SERIES)
                .bind(&one.name)
                .bind(&labels)
                .bind(to_json(&one.resource)?)
                .bind(one.kind.as_str())
                .bind(one.temporality.as_i32())
                .bind(one.monotonic)
                .bind(&one.unit)
                .fetch_optional(&mut *tx)
                .await?;
            let series_id = match inserted {
                Some(id) => id,
                None => {
                    sqlx::query_scalar(SELECT_SERIES)
                        .bind(&one.name)
                        .bind(&labels)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            for point in &one.points {
                let columns = PointColumns::new(&point.value)?;
                sqlx::query(INSERT_POINT)
                    .bind(series_id)
                    .bind(point.time_unix_nano)
                    .bind(point.start_unix_nano)
                    .bind(columns.value)
                    .bind(columns.count)
                    .bind(columns.sum)
                    .bind(columns.bucket_counts)
                    .bind(columns.explicit_bounds)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(SELECT_SERVICES)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn operations(&self, service: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(SELECT_OPERATIONS)
            .bind(service)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        let trace_ids = unique_ids(trace_ids);
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder = QueryBuilder::<Postgres>::new(format!(
            "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id IN ("
        ));
        let mut separated = builder.separated(", ");
        for id in &trace_ids {
            separated.push_bind(id.0.to_vec());
        }
        builder.push(")");
        let rows = builder.build().fetch_all(&self.pool).await?;
        let mut spans = Vec::with_capacity(rows.len());
        for row in rows {
            spans.push(span_row!(row).into_span()?);
        }
        order_by_request(&trace_ids, &mut spans);
        Ok(spans)
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<FoundTraces, StoreError> {
        let mut page =
            QueryBuilder::<Postgres>::new("SELECT trace_id, MIN(start_unix_nano) AS first_start");
        push_span_filters(&mut page, query);
        page.push(" GROUP BY trace_id ORDER BY first_start DESC, trace_id LIMIT ");
        page.push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows = page.build().fetch_all(&self.pool).await?;
        let mut trace_ids = Vec::with_capacity(rows.len());
        for row in rows {
            let bytes: Vec<u8> = row.try_get("trace_id")?;
            let id = TraceId::from_bytes(&bytes)
                .ok_or_else(|| StoreError::Corrupt("span column trace_id".to_owned()))?;
            trace_ids.push(id);
        }
        let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(DISTINCT trace_id)");
        push_span_filters(&mut count, query);
        let total: i64 = count.build().fetch_one(&self.pool).await?.try_get(0)?;
        Ok(FoundTraces {
            trace_ids,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    async fn series_window(
        &self,
        name: &str,
        start_unix_nano: i64,
        end_unix_nano: i64,
    ) -> Result<Vec<SeriesWindow>, StoreError> {
        let rows = sqlx::query(SELECT_WINDOW_POINTS)
            .bind(name)
            .bind(start_unix_nano)
            .bind(end_unix_nano)
            .fetch_all(&self.pool)
            .await?;
        let mut windows: Vec<SeriesWindow> = Vec::new();
        let mut index_of: HashMap<i64, usize> = HashMap::new();
        for row in rows {
            let series_id: i64 = row.try_get("id")?;
            let point = number_point(&row)?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].points.push(point);
                continue;
            }
            let labels: String = row.try_get("labels")?;
            let temporality: i32 = row.try_get("temporality")?;
            index_of.insert(series_id, windows.len());
            windows.push(SeriesWindow {
                labels: from_json(&labels, "labels")?,
                temporality: Temporality::from_i32(temporality).unwrap_or(Temporality::Unspecified),
                baseline: None,
                points: vec![point],
            });
        }
        if windows.is_empty() {
            return Ok(windows);
        }
        let baselines = sqlx::query(SELECT_BASELINES)
            .bind(name)
            .bind(start_unix_nano)
            .bind(end_unix_nano)
            .fetch_all(&self.pool)
            .await?;
        for row in baselines {
            let series_id: i64 = row.try_get("series_id")?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].baseline = Some(number_point(&row)?);
            }
        }
        Ok(windows)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
