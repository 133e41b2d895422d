//! The write path shared by every receiver (OTLP/gRPC, OTLP/HTTP, Zipkin):
//! admission (backpressure), the store transaction, then the hand-off to the
//! exporters.
//!
//! **Backpressure.** At most `Config::max_in_flight_writes` export requests are
//! admitted at once, counted from before their body is read until their
//! answer: a request that finds every permit taken is refused at once
//! (OTLP/HTTP 429 with `Retry-After`, gRPC `UNAVAILABLE`, Zipkin 503), so
//! memory stays bounded by `permits × MAX_REQUEST_BYTES` whatever the load,
//! and clients back off and retry instead of queueing inside the collector.
//!
//! **Acknowledgement.** [`Ingest::write_spans`] returns after the store
//! committed; exporters get the spans afterwards and can never fail or slow
//! an acknowledgement (their queues are bounded and drop the oldest).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::export::Exporters;
use crate::store::{MetricSeries, Span, Store, StoreError};

/// Seconds a throttled client is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The shared write path; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
    permits: Arc<Semaphore>,
    exporters: Exporters,
}

impl Ingest {
    pub fn new(store: Arc<dyn Store>, max_in_flight: usize, exporters: Exporters) -> Self {
        Self {
            store,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            exporters,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A permit to handle one export request, or `None` when the write path
    /// is saturated (the caller answers "retry later").
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Stores `spans` in one transaction, then offers them to the exporters.
    pub async fn write_spans(&self, spans: Vec<Span>) -> Result<usize, StoreError> {
        self.store.write_spans(&spans).await?;
        let count = spans.len();
        if count > 0 {
            self.exporters.offer(Arc::new(spans));
        }
        Ok(count)
    }

    /// Stores metric points in one transaction (metrics are not exported).
    pub async fn write_metrics(&self, series: &[MetricSeries]) -> Result<usize, StoreError> {
        self.store.write_metrics(series).await?;
        Ok(series.iter().map(|series| series.points.len()).sum())
    }
}
