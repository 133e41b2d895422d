//! Types of the span catalog and retention methods of [`super::Store`]:
//! operations with their kinds, remote services, dependency links, and the
//! batched deletes that the retention task ([`crate::retention`]) drives.

use super::SpanKind;

/// One `(span name, kind)` of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub name: String,
    pub kind: SpanKind,
}

/// Calls from one service to another, derived from parent/child spans whose
/// services differ (Jaeger's and Zipkin's dependency links).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    /// Child spans with status ERROR.
    pub error_count: u64,
}

/// How many rows one retention delete removes at most: small enough that a
/// delete transaction never blocks ingest for long, large enough to keep up.
pub const RETENTION_BATCH: u32 = 5_000;
