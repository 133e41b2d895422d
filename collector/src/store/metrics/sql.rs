//! [`MetricQueries`] once for both databases, and the catalog rows written
//! with a new series.
//!
//! The SQL is the same on SQLite and PostgreSQL: values are bound with
//! [`QueryBuilder::push_bind`], which writes each database's placeholder
//! (`?` or `$N`), and the JSON arrays are read with `CAST(.. AS TEXT)` (a
//! no-op on SQLite's text columns, `jsonb` to text on PostgreSQL). A store
//! takes part by naming the pool its reads run on ([`MetricsPool`]).
//!
//! Distinct label names and values come from a "loose index scan" (a
//! recursive query that jumps from one value to the next in the primary key
//! of `metric_labels`), so their cost grows with the number of distinct
//! values, not of series.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row,
    Transaction, Type,
};

use super::{
    IDS_PER_QUERY, MetricInfo, MetricQueries, PointsWindow, SeriesInfo, SeriesPoints, StoredPoint,
    TimeRange, catalog_labels, metric_kind, point_value,
};
use crate::store::row::from_json;
use crate::store::{MetricSeries, StoreError, Temporality};

/// The columns of `metric_points p` that [`stored_point`] reads.
const POINT_COLUMNS: &str = "p.time_unix_nano, p.start_unix_nano, p.value, p.count, p.sum, \
     CAST(p.bucket_counts AS TEXT) AS bucket_counts, \
     CAST(p.explicit_bounds AS TEXT) AS explicit_bounds";

/// A store whose [`MetricQueries`] are the ones of this module: implementing
/// it (naming the pool) implements them.
pub(crate) trait MetricsPool: Send + Sync {
    type Database: Database;

    /// The pool the metric reads run on.
    fn metrics_pool(&self) -> &Pool<Self::Database>;
}

/// Adds the catalog rows of a series that `write_metrics` just created, in
/// its transaction.
pub(crate) async fn index_series<DB>(
    tx: &mut Transaction<'_, DB>,
    series_id: i64,
    series: &MetricSeries,
) -> Result<(), StoreError>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> i32: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
{
    let mut insert = QueryBuilder::<DB>::new(
        "INSERT INTO metric_names (name, kind, temporality, monotonic, unit) VALUES (",
    );
    insert
        .separated(", ")
        .push_bind(series.name.as_str())
        .push_bind(series.kind.as_str())
        .push_bind(series.temporality.as_i32())
        .push_bind(series.monotonic)
        .push_bind(series.unit.as_str());
    insert.push(") ON CONFLICT (name) DO NOTHING");
    insert.build().execute(&mut **tx).await?;
    for (name, value) in catalog_labels(&series.labels) {
        let mut insert =
            QueryBuilder::<DB>::new("INSERT INTO metric_labels (name, value, series_id) VALUES (");
        insert
            .separated(", ")
            .push_bind(name)
            .push_bind(value)
            .push_bind(series_id);
        insert.push(") ON CONFLICT DO NOTHING");
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// ` AND p.time_unix_nano >= start AND p.time_unix_nano <= end`.
fn push_range<DB>(builder: &mut QueryBuilder<DB>, range: TimeRange)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    builder.push(" AND p.time_unix_nano >= ");
    builder.push_bind(range.start_unix_nano);
    builder.push(" AND p.time_unix_nano <= ");
    builder.push_bind(range.end_unix_nano);
}

/// A row with the [`POINT_COLUMNS`], as a point.
fn stored_point<R>(row: &R) -> Result<StoredPoint, StoreError>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredPoint {
        time_unix_nano: row.try_get("time_unix_nano")?,
        start_unix_nano: row.try_get("start_unix_nano")?,
        value: point_value(
            row.try_get("value")?,
            row.try_get("count")?,
            row.try_get("sum")?,
            row.try_get("bucket_counts")?,
            row.try_get("explicit_bounds")?,
        )?,
    })
}

fn temporality(value: i32) -> Temporality {
    Temporality::from_i32(value).unwrap_or(Temporality::Unspecified)
}

/// The bounds are what the queries bind and decode; `Sqlite` and `Postgres`
/// meet them.
#[async_trait]
impl<S, DB> MetricQueries for S
where
    S: MetricsPool<Database = DB>,
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> &'r str: ColumnIndex<DB::Row> + Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> f64: Decode<'r, DB> + Type<DB>,
{
    async fn metric_names(&self, active: Option<TimeRange>) -> Result<Vec<MetricInfo>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "SELECT n.name, n.kind, n.temporality, n.monotonic, n.unit FROM metric_names n",
        );
        if let Some(range) = active {
            query.push(
                " WHERE EXISTS (SELECT 1 FROM metric_series s \
                 JOIN metric_points p ON p.series_id = s.id WHERE s.name = n.name",
            );
            push_range(&mut query, range);
            query.push(")");
        }
        query.push(" ORDER BY n.name");
        let rows = query.build().fetch_all(self.metrics_pool()).await?;
        let mut names = Vec::with_capacity(rows.len());
        for row in rows {
            names.push(MetricInfo {
                name: row.try_get("name")?,
                kind: metric_kind(row.try_get::<&str, _>("kind")?)?,
                temporality: temporality(row.try_get("temporality")?),
                monotonic: row.try_get("monotonic")?,
                unit: row.try_get("unit")?,
            });
        }
        Ok(names)
    }

    async fn label_names(&self, active: Option<TimeRange>) -> Result<Vec<String>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "WITH RECURSIVE n(name) AS ( \
             SELECT MIN(name) FROM metric_labels \
             UNION ALL SELECT (SELECT MIN(name) FROM metric_labels WHERE name > n.name) \
             FROM n WHERE n.name IS NOT NULL) \
             SELECT name FROM n WHERE name IS NOT NULL",
        );
        if let Some(range) = active {
            query.push(
                " AND EXISTS (SELECT 1 FROM metric_labels l \
                 JOIN metric_points p ON p.series_id = l.series_id WHERE l.name = n.name",
            );
            push_range(&mut query, range);
            query.push(")");
        }
        Ok(query
            .build_query_scalar()
            .fetch_all(self.metrics_pool())
            .await?)
    }

    async fn label_values(
        &self,
        label: &str,
        active: Option<TimeRange>,
    ) -> Result<Vec<String>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "WITH RECURSIVE v(value) AS ( \
             SELECT MIN(value) FROM metric_labels WHERE name = ",
        );
        query.push_bind(label);
        query.push(" UNION ALL SELECT (SELECT MIN(value) FROM metric_labels WHERE name = ");
        query.push_bind(label);
        query.push(
            " AND value > v.value) FROM v WHERE v.value IS NOT NULL) \
             SELECT value FROM v WHERE value IS NOT NULL",
        );
        if let Some(range) = active {
            query.push(
                " AND EXISTS (SELECT 1 FROM metric_labels l \
                 JOIN metric_points p ON p.series_id = l.series_id WHERE l.name = ",
            );
            query.push_bind(label);
            query.push(" AND l.value = v.value");
            push_range(&mut query, range);
            query.push(")");
        }
        Ok(query
            .build_query_scalar()
            .fetch_all(self.metrics_pool())
            .await?)
    }

    async fn find_series(
        &self,
        name: &str,
        equal: &[(String, String)],
        active: Option<TimeRange>,
    ) -> Result<Vec<SeriesInfo>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(
            "SELECT s.id, s.labels, s.kind, s.temporality, s.monotonic \
             FROM metric_series s WHERE s.name = ",
        );
        query.push_bind(name);
        for (label, value) in equal {
            query.push(" AND s.id IN (SELECT series_id FROM metric_labels WHERE name = ");
            query.push_bind(label.as_str());
            query.push(" AND value = ");
            query.push_bind(value.as_str());
            query.push(")");
        }
        if let Some(range) = active {
            query.push(" AND EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id");
            push_range(&mut query, range);
            query.push(")");
        }
        query.push(" ORDER BY s.id");
        let rows = query.build().fetch_all(self.metrics_pool()).await?;
        let mut series = Vec::with_capacity(rows.len());
        for row in rows {
            series.push(SeriesInfo {
                id: row.try_get("id")?,
                name: name.to_owned(),
                labels: from_json(row.try_get("labels")?, "labels")?,
                kind: metric_kind(row.try_get("kind")?)?,
                temporality: temporality(row.try_get("temporality")?),
                monotonic: row.try_get("monotonic")?,
            });
        }
        Ok(series)
    }

    async fn series_points(
        &self,
        series_ids: &[i64],
        range: TimeRange,
    ) -> Result<Vec<SeriesPoints>, StoreError> {
        let mut sorted = series_ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut result: Vec<SeriesPoints> = Vec::new();
        for chunk in sorted.chunks(IDS_PER_QUERY) {
            let mut query = QueryBuilder::<DB>::new(format!(
                "SELECT p.series_id, {POINT_COLUMNS} FROM metric_points p WHERE p.series_id IN ("
            ));
            let mut ids = query.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            query.push(")");
            push_range(&mut query, range);
            query.push(" ORDER BY p.series_id, p.time_unix_nano");
            let rows = query.build().fetch_all(self.metrics_pool()).await?;
            for row in rows {
                let series_id: i64 = row.try_get("series_id")?;
                let point = stored_point(&row)?;
                match result.last_mut() {
                    Some(last) if last.series_id == series_id => last.points.push(point),
                    _ => result.push(SeriesPoints {
                        series_id,
                        points: vec![point],
                    }),
                }
            }
        }
        Ok(result)
    }

    async fn points_window(
        &self,
        name: &str,
        start_unix_nano: i64,
        end_unix_nano: i64,
    ) -> Result<Vec<PointsWindow>, StoreError> {
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT s.id, s.labels, s.temporality, {POINT_COLUMNS} FROM metric_series s \
             JOIN metric_points p ON p.series_id = s.id WHERE s.name = "
        ));
        query.push_bind(name);
        query.push(" AND p.time_unix_nano > ");
        query.push_bind(start_unix_nano);
        query.push(" AND p.time_unix_nano <= ");
        query.push_bind(end_unix_nano);
        query.push(" ORDER BY s.id, p.time_unix_nano");
        let rows = query.build().fetch_all(self.metrics_pool()).await?;
        let mut windows: Vec<PointsWindow> = Vec::new();
        let mut index_of: HashMap<i64, usize> = HashMap::new();
        for row in rows {
            let series_id: i64 = row.try_get("id")?;
            let point = stored_point(&row)?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].points.push(point);
                continue;
            }
            index_of.insert(series_id, windows.len());
            windows.push(PointsWindow {
                labels: from_json(row.try_get("labels")?, "labels")?,
                temporality: temporality(row.try_get("temporality")?),
                baseline: None,
                points: vec![point],
            });
        }
        if windows.is_empty() {
            return Ok(windows);
        }
        let mut query = QueryBuilder::<DB>::new(format!(
            "SELECT p.series_id, {POINT_COLUMNS} FROM metric_series s \
             JOIN metric_points p ON p.series_id = s.id WHERE s.name = "
        ));
        query.push_bind(name);
        query.push(
            " AND p.time_unix_nano = (SELECT MAX(q.time_unix_nano) \
             FROM metric_points q WHERE q.series_id = s.id AND q.time_unix_nano <= ",
        );
        query.push_bind(start_unix_nano);
        query.push(
            ") AND EXISTS (SELECT 1 FROM metric_points r WHERE r.series_id = s.id \
             AND r.time_unix_nano > ",
        );
        query.push_bind(start_unix_nano);
        query.push(" AND r.time_unix_nano <= ");
        query.push_bind(end_unix_nano);
        query.push(")");
        let baselines = query.build().fetch_all(self.metrics_pool()).await?;
        for row in baselines {
            let series_id: i64 = row.try_get("series_id")?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].baseline = Some(stored_point(&row)?);
            }
        }
        Ok(windows)
    }
}
