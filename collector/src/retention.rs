//! Retention: spans older than the configured age, and the oldest spans
//! beyond the configured count, are deleted by a background task.
//!
//! Deletes run in batches of [`RETENTION_BATCH`] spans, each its own short
//! transaction, so ingest (which shares SQLite's single writer) interleaves
//! with a large cleanup instead of waiting behind one giant transaction.
//! Several collectors on one PostgreSQL database may all run it: deleting
//! rows another collector already deleted is a no-op.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::now_unix_nano;
use crate::store::{RETENTION_BATCH, Store, StoreError};

/// How often the background task enforces the policy.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Spans that started longer ago than this are deleted.
    pub max_age: Duration,
    /// At most this many spans are kept (the oldest go first).
    pub max_spans: Option<u64>,
}

/// What one pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Spans older than the maximum age.
    pub expired: u64,
    /// Spans beyond the maximum count.
    pub over_size: u64,
}

/// One pass of the policy, now.
pub async fn enforce(store: &dyn Store, policy: Policy) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let max_age_nanos = i64::try_from(policy.max_age.as_nanos()).unwrap_or(i64::MAX);
    let cutoff = now_unix_nano().saturating_sub(max_age_nanos);
    loop {
        let deleted = store.delete_spans_before(cutoff, RETENTION_BATCH).await?;
        report.expired += deleted;
        if deleted < u64::from(RETENTION_BATCH) {
            break;
        }
        tokio::task::yield_now().await;
    }
    if let Some(max_spans) = policy.max_spans {
        let mut excess = store.span_count().await?.saturating_sub(max_spans);
        while excess > 0 {
            let batch = u32::try_from(excess.min(u64::from(RETENTION_BATCH))).unwrap_or(1);
            let deleted = store.delete_oldest_spans(batch).await?;
            if deleted == 0 {
                break;
            }
            report.over_size += deleted;
            excess = excess.saturating_sub(deleted);
            tokio::task::yield_now().await;
        }
    }
    if report.expired + report.over_size > 0 {
        store.prune_span_catalog().await?;
        tracing::info!(
            expired = report.expired,
            over_size = report.over_size,
            "retention: spans deleted"
        );
    }
    Ok(report)
}

/// Enforces `policy` every [`INTERVAL`] (the first pass one interval after
/// start, so that a starting collector serves first) until `shutdown`.
pub async fn run(store: Arc<dyn Store>, policy: Policy, shutdown: watch::Receiver<bool>) {
    crate::periodic::every(INTERVAL, shutdown, || async {
        if let Err(error) = enforce(store.as_ref(), policy).await {
            tracing::warn!(%error, "retention pass failed; retrying at the next interval");
        }
    })
    .await;
}
