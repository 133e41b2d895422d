//! [`MetricQueries`](crate::store::MetricQueries) on SQLite: the shared
//! queries (`store::metrics::sql`) on the reader pool.

use sqlx::{Sqlite, SqlitePool};

use super::SqliteStore;
use crate::store::metrics::MetricsPool;

/// The catalog rows written with a new series.
pub(super) use crate::store::metrics::index_series;

impl MetricsPool for SqliteStore {
    type Database = Sqlite;

    fn metrics_pool(&self) -> &SqlitePool {
        &self.readers
    }
}
