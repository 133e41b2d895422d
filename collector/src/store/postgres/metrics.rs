//! [`MetricQueries`](crate::store::MetricQueries) on PostgreSQL: the shared
//! queries (`store::metrics::sql`) on the pool.

use sqlx::{PgPool, Postgres};

use super::PostgresStore;
use crate::store::metrics::MetricsPool;

/// The catalog rows written with a new series.
pub(super) use crate::store::metrics::index_series;

impl MetricsPool for PostgresStore {
    type Database = Postgres;

    fn metrics_pool(&self) -> &PgPool {
        &self.pool
    }
}
