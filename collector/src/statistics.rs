//! Keeps the store's query planner statistics current: a background task
//! asks the store every [`INTERVAL`] to refresh what changed enough
//! ([`Store::refresh_statistics`]; PostgreSQL's rule is in
//! `store/postgres/statistics.rs`), so that a burst of ingest is not
//! planned as the empty store it was before.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// How often the store is asked. A burst of 50 k spans/s grows a table by
/// 250 k rows in between.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Refreshes every [`INTERVAL`] until `shutdown`; a failed pass is logged
/// and retried at the next.
pub async fn run(store: Arc<dyn Store>, shutdown: watch::Receiver<bool>) {
    crate::periodic::every(INTERVAL, shutdown, || async {
        match store.refresh_statistics().await {
            Ok(tables) if !tables.is_empty() => {
                tracing::debug!(?tables, "planner statistics refreshed");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "refreshing planner statistics failed"),
        }
    })
    .await;
}
