//! OTLP receivers: gRPC ([`grpc`]) and HTTP ([`http`]) share one ingest path
//! (decode → validate everything → one store transaction → acknowledge).

pub mod decode;
pub mod encode;
pub mod grpc;
pub mod http;
pub mod json;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::ingest::Ingest;
use crate::store::StoreError;

/// Largest accepted request, after decompression (the OTLP recommendation).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Why an export was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Bad data: the client must not retry.
    #[error(transparent)]
    Invalid(#[from] decode::InvalidData),
    /// The store failed: the client may retry.
    #[error("cannot store the export: {0}")]
    Store(#[from] StoreError),
}

/// Validates and stores one trace export; returns after the commit.
pub async fn ingest_traces(
    ingest: &Ingest,
    request: ExportTraceServiceRequest,
) -> Result<usize, IngestError> {
    let spans = decode::spans(request)?;
    Ok(ingest.write_spans(spans).await?)
}

/// Validates and stores one metrics export; returns after the commit.
pub async fn ingest_metrics(
    ingest: &Ingest,
    request: &ExportMetricsServiceRequest,
) -> Result<usize, IngestError> {
    let series = decode::metrics(request)?;
    Ok(ingest.write_metrics(&series).await?)
}
