//! The OTLP/HTTP receiver: `POST /v1/traces` and `POST /v1/metrics`, binary
//! protobuf or JSON (answered in the request's encoding), optionally gzip.
//!
//! Failures answer a `google.rpc.Status` body: 400 for bad data (never
//! retried by clients), 413 above [`MAX_REQUEST_BYTES`] decompressed, 415 for
//! other content types or encodings, 429 with `Retry-After` when every ingest
//! permit is taken and 503 with `Retry-After` when the store fails (both
//! retryable).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::{IngestError, MAX_REQUEST_BYTES, ingest_metrics, ingest_traces, json};
use crate::body::BodyError;
use crate::ingest::{Ingest, RETRY_AFTER_SECONDS};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// gRPC status codes used in `google.rpc.Status` bodies.
const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const INTERNAL: i32 = 13;
const UNAVAILABLE: i32 = 14;

/// The OTLP/HTTP routes.
pub fn router(ingest: Ingest) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        // The body is read with our own limit so that 413 carries a Status.
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

async fn traces(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let encoding = Encoding::of(&headers)?;
    let _permit = ingest
        .admit()
        .ok_or_else(|| OtlpError::saturated(encoding))?;
    let body = read_body(&headers, body, encoding).await?;
    let request = decode(encoding, body, json::traces).await?;
    let count = ingest_traces(&ingest, request)
        .await
        .map_err(|error| OtlpError::ingest(encoding, error))?;
    tracing::debug!(spans = count, "OTLP/HTTP traces stored");
    Ok(encoding.ok(&ExportTraceServiceResponse::default()))
}

async fn metrics(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let encoding = Encoding::of(&headers)?;
    let _permit = ingest
        .admit()
        .ok_or_else(|| OtlpError::saturated(encoding))?;
    let body = read_body(&headers, body, encoding).await?;
    let request = decode(encoding, body, json::metrics).await?;
    let count = ingest_metrics(&ingest, &request)
        .await
        .map_err(|error| OtlpError::ingest(encoding, error))?;
    tracing::debug!(points = count, "OTLP/HTTP metrics stored");
    Ok(encoding.ok(&ExportMetricsServiceResponse::default()))
}

/// Decodes off the async workers (a request may be 64 MiB).
async fn decode<T: Message + Default + Send + 'static>(
    encoding: Encoding,
    body: Bytes,
    from_json: fn(&[u8]) -> Result<T, json::JsonError>,
) -> Result<T, OtlpError> {
    let decoded = tokio::task::spawn_blocking(move || match encoding {
        Encoding::Protobuf => {
            T::decode(body).map_err(|error| format!("invalid OTLP protobuf: {error}"))
        }
        Encoding::Json => from_json(&body).map_err(|error| error.to_string()),
    })
    .await;
    match decoded {
        Ok(Ok(request)) => Ok(request),
        Ok(Err(message)) => Err(OtlpError::new(
            encoding,
            StatusCode::BAD_REQUEST,
            INVALID_ARGUMENT,
            message,
        )),
        Err(error) => Err(OtlpError::new(
            encoding,
            StatusCode::INTERNAL_SERVER_ERROR,
            INTERNAL,
            format!("decoder failed: {error}"),
        )),
    }
}

/// Reads the whole body, gunzipping it if needed, within the size cap.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<Bytes, OtlpError> {
    crate::body::read(headers, body, MAX_REQUEST_BYTES)
        .await
        .map_err(|error| {
            let (status, code) = match &error {
                BodyError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, RESOURCE_EXHAUSTED),
                BodyError::UnsupportedEncoding(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, INVALID_ARGUMENT)
                }
                BodyError::Unreadable(_) | BodyError::BadGzip(_) => {
                    (StatusCode::BAD_REQUEST, INVALID_ARGUMENT)
                }
                BodyError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL),
            };
            OtlpError::new(encoding, status, code, error.to_string())
        })
}

/// The encoding of a request, and so of its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Result<Self, OtlpError> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case(PROTOBUF) {
            Ok(Self::Protobuf)
        } else if media_type.eq_ignore_ascii_case(JSON) {
            Ok(Self::Json)
        } else {
            Err(OtlpError::new(
                Self::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                INVALID_ARGUMENT,
                format!(
                    "unsupported Content-Type {content_type:?} (expected {PROTOBUF} or {JSON})"
                ),
            ))
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Protobuf => PROTOBUF,
            Self::Json => JSON,
        })
    }

    /// A 200 answer: the (empty) export response.
    fn ok<M: Message>(self, message: &M) -> Response {
        let body = match self {
            Self::Protobuf => message.encode_to_vec(),
            // partial_success unset: the empty object.
            Self::Json => b"{}".to_vec(),
        };
        ([(CONTENT_TYPE, self.content_type())], body).into_response()
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP failures.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A failed export, rendered as a `google.rpc.Status` in the request's
/// encoding.
#[derive(Debug)]
pub struct OtlpError {
    encoding: Encoding,
    http_status: StatusCode,
    code: i32,
    message: String,
}

impl OtlpError {
    fn new(encoding: Encoding, http_status: StatusCode, code: i32, message: String) -> Self {
        Self {
            encoding,
            http_status,
            code,
            message,
        }
    }

    /// Every ingest permit is taken: 429 with `Retry-After` (retryable).
    fn saturated(encoding: Encoding) -> Self {
        Self::new(
            encoding,
            StatusCode::TOO_MANY_REQUESTS,
            UNAVAILABLE,
            "the collector is saturated, retry later".to_owned(),
        )
    }

    fn ingest(encoding: Encoding, error: IngestError) -> Self {
        match error {
            IngestError::Invalid(error) => Self::new(
                encoding,
                StatusCode::BAD_REQUEST,
                INVALID_ARGUMENT,
                error.to_string(),
            ),
            IngestError::Store(error) => {
                tracing::warn!(%error, "OTLP/HTTP export not stored");
                Self::new(
                    encoding,
                    StatusCode::SERVICE_UNAVAILABLE,
                    UNAVAILABLE,
                    "storage unavailable, retry later".to_owned(),
                )
            }
        }
    }
}

impl IntoResponse for OtlpError {
    fn into_response(self) -> Response {
        if self.http_status.is_client_error() {
            tracing::debug!(status = %self.http_status, message = %self.message, "OTLP/HTTP export rejected");
        }
        let body = match self.encoding {
            Encoding::Protobuf => RpcStatus {
                code: self.code,
                message: self.message,
            }
            .encode_to_vec(),
            Encoding::Json => serde_json::json!({ "code": self.code, "message": self.message })
                .to_string()
                .into_bytes(),
        };
        let mut response = (
            self.http_status,
            [(CONTENT_TYPE, self.encoding.content_type())],
            body,
        )
            .into_response();
        if matches!(
            self.http_status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
