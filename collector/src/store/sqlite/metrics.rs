//! [`MetricQueries`] on SQLite, and the catalog rows written with a new
//! series.
//!
//! Distinct label names and values come from a "loose index scan" (a
//! recursive query that jumps from one value to the next in the primary key
//! of `metric_labels`), so their cost grows with the number of distinct
//! values, not of series.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::store::metrics::{
    IDS_PER_QUERY, MetricInfo, MetricQueries, PointsWindow, SeriesInfo, SeriesPoints, StoredPoint,
    TimeRange, catalog_labels, metric_kind, point_value,
};
use crate::store::row::from_json;
use crate::store::{MetricSeries, StoreError, Temporality};

const INSERT_NAME: &str = "INSERT INTO metric_names (name, kind, temporality, monotonic, unit) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING";
const INSERT_LABEL: &str = "INSERT INTO metric_labels (name, value, series_id) \
     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
const POINT_COLUMNS: &str = "p.time_unix_nano, p.start_unix_nano, p.value, p.count, p.sum, \
     p.bucket_counts, p.explicit_bounds";
/// `?1` label name; `?2`, `?3` the active range (when used).
const DISTINCT_VALUES: &str = "WITH RECURSIVE v(value) AS ( \
     SELECT MIN(value) FROM metric_labels WHERE name = ?1 \
     UNION ALL SELECT (SELECT MIN(value) FROM metric_labels WHERE name = ?1 AND value > v.value) \
     FROM v WHERE v.value IS NOT NULL) \
     SELECT value FROM v WHERE value IS NOT NULL";
const VALUE_ACTIVE: &str = " AND EXISTS (SELECT 1 FROM metric_labels l \
     JOIN metric_points p ON p.series_id = l.series_id \
     WHERE l.name = ?1 AND l.value = v.value \
     AND p.time_unix_nano >= ?2 AND p.time_unix_nano <= ?3)";
const DISTINCT_NAMES: &str = "WITH RECURSIVE n(name) AS ( \
     SELECT MIN(name) FROM metric_labels \
     UNION ALL SELECT (SELECT MIN(name) FROM metric_labels WHERE name > n.name) \
     FROM n WHERE n.name IS NOT NULL) \
     SELECT name FROM n WHERE name IS NOT NULL";
const NAME_ACTIVE: &str = " AND EXISTS (SELECT 1 FROM metric_labels l \
     JOIN metric_points p ON p.series_id = l.series_id \
     WHERE l.name = n.name AND p.time_unix_nano >= ?1 AND p.time_unix_nano <= ?2)";
const METRIC_NAMES: &str = "SELECT n.name, n.kind, n.temporality, n.monotonic, n.unit \
     FROM metric_names n";
const METRIC_ACTIVE: &str = " WHERE EXISTS (SELECT 1 FROM metric_series s \
     JOIN metric_points p ON p.series_id = s.id WHERE s.name = n.name \
     AND p.time_unix_nano >= ?1 AND p.time_unix_nano <= ?2)";

/// Adds the catalog rows of a series that `write_metrics` just created.
pub(super) async fn index_series(
    tx: &mut SqliteConnection,
    series_id: i64,
    series: &MetricSeries,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_NAME)
        .bind(&series.name)
        .bind(series.kind.as_str())
        .bind(series.temporality.as_i32())
        .bind(series.monotonic)
        .bind(&series.unit)
        .execute(&mut *tx)
        .await?;
    for (name, value) in catalog_labels(&series.labels) {
        sqlx::query(INSERT_LABEL)
            .bind(name)
            .bind(value)
            .bind(series_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

fn stored_point(row: &SqliteRow) -> Result<StoredPoint, StoreError> {
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

#[async_trait]
impl MetricQueries for SqliteStore {
    async fn metric_names(&self, active: Option<TimeRange>) -> Result<Vec<MetricInfo>, StoreError> {
        let sql = match active {
            Some(_) => format!("{METRIC_NAMES}{METRIC_ACTIVE} ORDER BY n.name"),
            None => format!("{METRIC_NAMES} ORDER BY n.name"),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(range) = active {
            query = query.bind(range.start_unix_nano).bind(range.end_unix_nano);
        }
        let rows = query.fetch_all(&self.readers).await?;
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
        let sql = match active {
            Some(_) => format!("{DISTINCT_NAMES}{NAME_ACTIVE}"),
            None => DISTINCT_NAMES.to_owned(),
        };
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        if let Some(range) = active {
            query = query.bind(range.start_unix_nano).bind(range.end_unix_nano);
        }
        Ok(query.fetch_all(&self.readers).await?)
    }

    async fn label_values(
        &self,
        label: &str,
        active: Option<TimeRange>,
    ) -> Result<Vec<String>, StoreError> {
        let sql = match active {
            Some(_) => format!("{DISTINCT_VALUES}{VALUE_ACTIVE}"),
            None => DISTINCT_VALUES.to_owned(),
        };
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(label);
        if let Some(range) = active {
            query = query.bind(range.start_unix_nano).bind(range.end_unix_nano);
        }
        Ok(query.fetch_all(&self.readers).await?)
    }

    async fn find_series(
        &self,
        name: &str,
        equal: &[(String, String)],
        active: Option<TimeRange>,
    ) -> Result<Vec<SeriesInfo>, StoreError> {
        let mut builder = QueryBuilder::<Sqlite>::new(
            "SELECT s.id, s.labels, s.kind, s.temporality, s.monotonic \
             FROM metric_series s WHERE s.name = ",
        );
        builder.push_bind(name.to_owned());
        for (label, value) in equal {
            builder.push(" AND s.id IN (SELECT series_id FROM metric_labels WHERE name = ");
            builder.push_bind(label.clone());
            builder.push(" AND value = ");
            builder.push_bind(value.clone());
            builder.push(")");
        }
        if let Some(range) = active {
            builder.push(
                " AND EXISTS (SELECT 1 FROM metric_points p WHERE p.series_id = s.id \
                 AND p.time_unix_nano >= ",
            );
            builder.push_bind(range.start_unix_nano);
            builder.push(" AND p.time_unix_nano <= ");
            builder.push_bind(range.end_unix_nano);
            builder.push(")");
        }
        builder.push(" ORDER BY s.id");
        let rows = builder.build().fetch_all(&self.readers).await?;
        let mut series = Vec::with_capacity(rows.len());
        for row in rows {
            let labels: String = row.try_get("labels")?;
            series.push(SeriesInfo {
                id: row.try_get("id")?,
                name: name.to_owned(),
                labels: from_json(&labels, "labels")?,
                kind: metric_kind(row.try_get::<&str, _>("kind")?)?,
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
            let mut builder = QueryBuilder::<Sqlite>::new(format!(
                "SELECT p.series_id, {POINT_COLUMNS} FROM metric_points p WHERE p.series_id IN ("
            ));
            let mut separated = builder.separated(", ");
            for id in chunk {
                separated.push_bind(*id);
            }
            builder.push(") AND p.time_unix_nano >= ");
            builder.push_bind(range.start_unix_nano);
            builder.push(" AND p.time_unix_nano <= ");
            builder.push_bind(range.end_unix_nano);
            builder.push(" ORDER BY p.series_id, p.time_unix_nano");
            let rows = builder.build().fetch_all(&self.readers).await?;
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
        let sql = format!(
            "SELECT s.id, s.labels, s.temporality, {POINT_COLUMNS} FROM metric_series s \
             JOIN metric_points p ON p.series_id = s.id \
             WHERE s.name = ?1 AND p.time_unix_nano > ?2 AND p.time_unix_nano <= ?3 \
             ORDER BY s.id, p.time_unix_nano"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(start_unix_nano)
            .bind(end_unix_nano)
            .fetch_all(&self.readers)
            .await?;
        let mut windows: Vec<PointsWindow> = Vec::new();
        let mut index_of: HashMap<i64, usize> = HashMap::new();
        for row in rows {
            let series_id: i64 = row.try_get("id")?;
            let point = stored_point(&row)?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].points.push(point);
                continue;
            }
            let labels: String = row.try_get("labels")?;
            index_of.insert(series_id, windows.len());
            windows.push(PointsWindow {
                labels: from_json(&labels, "labels")?,
                temporality: temporality(row.try_get("temporality")?),
                baseline: None,
                points: vec![point],
            });
        }
        if windows.is_empty() {
            return Ok(windows);
        }
        let sql = format!(
            "SELECT p.series_id, {POINT_COLUMNS} FROM metric_series s \
             JOIN metric_points p ON p.series_id = s.id \
             WHERE s.name = ?1 AND p.time_unix_nano = (SELECT MAX(q.time_unix_nano) \
                 FROM metric_points q WHERE q.series_id = s.id AND q.time_unix_nano <= ?2) \
             AND EXISTS (SELECT 1 FROM metric_points r WHERE r.series_id = s.id \
                 AND r.time_unix_nano > ?2 AND r.time_unix_nano <= ?3)"
        );
        let baselines = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(start_unix_nano)
            .bind(end_unix_nano)
            .fetch_all(&self.readers)
            .await?;
        for row in baselines {
            let series_id: i64 = row.try_get("series_id")?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].baseline = Some(stored_point(&row)?);
            }
        }
        Ok(windows)
    }
}
