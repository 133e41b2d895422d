//! [`MetricQueries`](crate::store::MetricQueries) on SQLite: the shared
//! queries (`store::metrics::sql`) on the reader pool, and the catalog rows
//! written with a new series.

use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use super::SqliteStore;
use crate::store::metrics::MetricsPool;
use crate::store::{MetricSeries, StoreError};

impl MetricsPool for SqliteStore {
    type Database = Sqlite;

    fn metrics_pool(&self) -> &SqlitePool {
        &self.readers
    }
}

/// Adds the catalog rows of a series that `write_metrics` just created.
pub(super) async fn index_series(
    tx: &mut SqliteConnection,
    series_id: i64,
    series: &MetricSeries,
) -> Result<(), StoreError> {
    crate::store::metrics::index_series::<Sqlite>(tx, series_id, series).await
}
