//! [`MetricQueries`](crate::store::MetricQueries) on PostgreSQL: the shared
//! queries (`store::metrics::sql`) on the pool, and the catalog rows written
//! with a new series.

use sqlx::{PgConnection, PgPool, Postgres};

use super::PostgresStore;
use crate::store::metrics::MetricsPool;
use crate::store::{MetricSeries, StoreError};

impl MetricsPool for PostgresStore {
    type Database = Postgres;

    fn metrics_pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Adds the catalog rows of a series that `write_metrics` just created.
pub(super) async fn index_series(
    tx: &mut PgConnection,
    series_id: i64,
    series: &MetricSeries,
) -> Result<(), StoreError> {
    crate::store::metrics::index_series::<Postgres>(tx, series_id, series).await
}
