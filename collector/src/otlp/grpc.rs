//! The OTLP/gRPC receiver: `TraceService/Export` and `MetricsService/Export`
//! (gzip accepted, 64 MiB message cap).

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{IngestError, MAX_REQUEST_BYTES, ingest_metrics, ingest_traces};
use crate::ingest::Ingest;

/// The gRPC services as an axum router (served over HTTP/2 by `axum::serve`).
pub fn router(ingest: Ingest) -> axum::Router {
    let receiver = Receiver {
        ingest: ingest.clone(),
    };
    let traces = TraceServiceServer::new(receiver.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let metrics = MetricsServiceServer::new(receiver)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    tonic::service::Routes::new(traces)
        .add_service(metrics)
        .into_axum_router()
        .layer(axum::middleware::map_response(
            oversized_is_resource_exhausted,
        ))
        .layer(axum::middleware::from_fn_with_state(ingest, admit))
}

/// Backpressure: a call that finds every ingest permit taken is answered
/// `UNAVAILABLE` (retryable) before its message is read; the permit is held
/// until the answer is produced.
async fn admit(
    axum::extract::State(ingest): axum::extract::State<Ingest>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(_permit) = ingest.admit() else {
        let (parts, body) = Status::unavailable("the collector is saturated, retry later")
            .into_http::<tonic::body::Body>()
            .into_parts();
        return axum::response::Response::from_parts(parts, axum::body::Body::new(body));
    };
    next.run(request).await
}

/// tonic rejects a message above the decoding limit with `OUT_OF_RANGE`,
/// which OTLP clients retry; OTLP wants the non-retryable
/// `RESOURCE_EXHAUSTED` (without `RetryInfo`). The status travels in the
/// headers (trailers-only answer) or in the trailers.
async fn oversized_is_resource_exhausted(
    response: axum::response::Response,
) -> axum::response::Response {
    use http_body_util::BodyExt;

    let (mut parts, body) = response.into_parts();
    fix_oversized_status(&mut parts.headers);
    let body = body.map_frame(|mut frame| {
        if let Some(trailers) = frame.trailers_mut() {
            fix_oversized_status(trailers);
        }
        frame
    });
    axum::response::Response::from_parts(parts, axum::body::Body::new(body))
}

fn fix_oversized_status(headers: &mut http::HeaderMap) {
    let out_of_range = headers.get(GRPC_STATUS).is_some_and(|code| code == "11");
    let too_large = headers
        .get(GRPC_MESSAGE)
        .and_then(|message| message.to_str().ok())
        // grpc-message is percent-encoded.
        .is_some_and(|message| message.contains("too%20large") || message.contains("too large"));
    if out_of_range && too_large {
        headers.insert(GRPC_STATUS, http::HeaderValue::from_static("8"));
    }
}

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";

#[derive(Clone)]
struct Receiver {
    ingest: Ingest,
}

fn status(error: IngestError) -> Status {
    match error {
        IngestError::Invalid(error) => Status::invalid_argument(error.to_string()),
        IngestError::Store(error) => {
            tracing::warn!(%error, "OTLP/gRPC export not stored");
            Status::unavailable("storage unavailable, retry later")
        }
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let count = ingest_traces(&self.ingest, request.into_inner())
            .await
            .map_err(status)?;
        tracing::debug!(spans = count, "OTLP/gRPC traces stored");
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let count = ingest_metrics(&self.ingest, request.get_ref())
            .await
            .map_err(status)?;
        tracing::debug!(points = count, "OTLP/gRPC metrics stored");
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}
