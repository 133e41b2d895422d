//! What the proxy reports: RED metrics with Istio's names and labels, spans
//! over OTLP, and the proxy's own health.

pub mod exchange;
pub mod export;
pub mod flags;
pub mod metrics;
pub mod otlp;
pub mod routes;
pub mod span;

pub use exchange::Exchange;
pub use export::{ExportConfig, Exporter, SpanSink};
pub use flags::ResponseFlags;
pub use metrics::{Metrics, Peer, Reporter, RequestLabels};
pub use span::{SpanDraft, SpanRecord};

/// Shared by every request of a proxy.
pub struct Telemetry {
    pub metrics: Metrics,
    pub spans: SpanSink,
}
