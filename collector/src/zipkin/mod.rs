//! Zipkin v2: the collector endpoint `POST /api/v2/spans` (JSON v2 or proto3
//! `ListOfSpans`, optionally gzip) and the query API Zipkin's UI (Lens) and
//! Grafana's Zipkin datasource call, with zipkin-server's status codes and
//! plain-text error bodies. Served on the Zipkin listener (9411) and on the
//! main HTTP listener.

pub mod model;

use std::collections::HashSet;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use crate::api::{Params, now_unix_nano};
use crate::body::{self, BodyError};
use crate::ingest::{Ingest, RETRY_AFTER_SECONDS};
use crate::otlp::MAX_REQUEST_BYTES;
use crate::store::{Span, StoreError, TraceId, TraceQuery};

/// Zipkin's default `lookback` (`QUERY_LOOKBACK`): one day, in ms.
const DEFAULT_LOOKBACK_MS: i64 = 86_400_000;
const DEFAULT_LIMIT: i64 = 10;
const MAX_LIMIT: i64 = 1000;
/// How many candidate traces a search with bare annotation words reads
/// per trace it returns (those words are matched after the store query).
const WORD_OVERFETCH: usize = 10;
/// More services than this and the name lists carry `Cache-Control`.
const CACHE_NAMES_ABOVE: usize = 3;
const NAMES_MAX_AGE: Duration = Duration::from_secs(300);

/// The Zipkin routes (ingest and query).
pub(crate) fn router(ingest: Ingest) -> Router {
    Router::new()
        .route("/api/v2/spans", get(span_names).post(post_spans))
        .route("/api/v2/services", get(services))
        .route("/api/v2/remoteServices", get(remote_services))
        .route("/api/v2/traces", get(traces))
        .route("/api/v2/trace/{trace_id}", get(trace))
        .route("/api/v2/traceMany", get(trace_many))
        .route("/api/v2/dependencies", get(dependencies))
        .route("/api/v2/autocompleteKeys", get(empty_list))
        .route("/api/v2/autocompleteValues", get(empty_list))
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

/// A failed Zipkin request: a status and a `text/plain` message, as
/// zipkin-server answers.
#[derive(Debug)]
pub(crate) enum ZipkinError {
    BadRequest(String),
    NotFound(String),
    TooLarge(String),
    UnsupportedMediaType(String),
    Saturated,
    Store(StoreError),
    Internal(String),
}

impl From<StoreError> for ZipkinError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl IntoResponse for ZipkinError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, message),
            Self::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, message),
            Self::UnsupportedMediaType(message) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, message),
            Self::Saturated => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the collector is saturated, retry later".to_owned(),
            ),
            Self::Store(error) => {
                tracing::error!(%error, "Zipkin API: store failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "storage unavailable".to_owned(),
                )
            }
            Self::Internal(message) => (StatusCode::INTERNAL_SERVER_ERROR, message),
        };
        let mut response = (
            status,
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            message,
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

// === ingest ===

#[derive(Clone, Copy)]
enum Encoding {
    Json,
    Proto3,
}

/// `POST /api/v2/spans`: 202 with an empty body once the spans are
/// committed; 400 (text/plain) when the body does not decode or a span is
/// invalid, and then nothing of the request is stored.
async fn post_spans(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ZipkinError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    // zipkin-server reads anything but protobuf as JSON; thrift is v1 only.
    let encoding = match media_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Proto3,
        "application/x-thrift" => {
            return Err(ZipkinError::UnsupportedMediaType(
                "application/x-thrift is only accepted on /api/v1/spans, which this collector \
                 does not serve; send JSON v2 or proto3"
                    .to_owned(),
            ));
        }
        _ => Encoding::Json,
    };
    let _permit = ingest.admit().ok_or(ZipkinError::Saturated)?;
    let body = body::read(&headers, body, MAX_REQUEST_BYTES)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge(_) => ZipkinError::TooLarge(error.to_string()),
            BodyError::UnsupportedEncoding(_) => {
                ZipkinError::UnsupportedMediaType(error.to_string())
            }
            BodyError::Unreadable(_) | BodyError::BadGzip(_) => {
                ZipkinError::BadRequest(error.to_string())
            }
            BodyError::Internal(_) => ZipkinError::Internal(error.to_string()),
        })?;
    let decoded = tokio::task::spawn_blocking(move || match encoding {
        Encoding::Json => model::decode_json(&body),
        Encoding::Proto3 => model::decode_proto(&body),
    })
    .await
    .map_err(|error| ZipkinError::Internal(format!("decoder failed: {error}")))?;
    let spans = decoded.map_err(|error| ZipkinError::BadRequest(error.0))?;
    let count = ingest.write_spans(spans).await.map_err(|error| {
        tracing::warn!(%error, "Zipkin spans not stored");
        ZipkinError::Saturated
    })?;
    tracing::debug!(spans = count, "Zipkin spans stored");
    Ok(StatusCode::ACCEPTED.into_response())
}

// === query ===

fn json(value: Value) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        value.to_string(),
    )
        .into_response()
}

/// A name list, with `Cache-Control` once there are more than 3 services.
fn names(names: Vec<String>, service_count: usize) -> Response {
    let mut response = json(Value::from(names));
    if service_count > CACHE_NAMES_ABOVE {
        let value = format!("max-age={}, must-revalidate", NAMES_MAX_AGE.as_secs());
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(CACHE_CONTROL, value);
        }
    }
    response
}

fn required<'a>(params: &'a Params, key: &str) -> Result<&'a str, ZipkinError> {
    params
        .get(key)
        .ok_or_else(|| ZipkinError::BadRequest(format!("{key} is required")))
}

fn int(params: &Params, key: &str) -> Result<Option<i64>, ZipkinError> {
    params
        .int(key)
        .map_err(|error| ZipkinError::BadRequest(error.to_string()))
}

async fn services(State(ingest): State<Ingest>) -> Result<Response, ZipkinError> {
    let services = ingest.store().services().await?;
    let count = services.len();
    Ok(names(services, count))
}

/// `GET /api/v2/spans?serviceName=`: the span names of a service.
async fn span_names(
    State(ingest): State<Ingest>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ZipkinError> {
    let params = Params::new(params);
    let service = required(&params, "serviceName")?;
    let names_of = ingest.store().operations(service).await?;
    let count = ingest.store().services().await?.len();
    Ok(names(names_of, count))
}

async fn remote_services(
    State(ingest): State<Ingest>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ZipkinError> {
    let params = Params::new(params);
    let service = required(&params, "serviceName")?;
    let remotes = ingest.store().remote_services(service).await?;
    let count = ingest.store().services().await?.len();
    Ok(names(remotes, count))
}

async fn empty_list() -> Response {
    json(Value::Array(Vec::new()))
}

/// Zipkin's `normalizeTraceId`: 1 to 32 lower-hex digits, not all zero,
/// left-padded to 16 or 32.
fn normalize_trace_id(text: &str) -> Result<(String, TraceId), ZipkinError> {
    if text.is_empty() {
        return Err(ZipkinError::BadRequest("traceId is empty".to_owned()));
    }
    if text.len() > 32 {
        return Err(ZipkinError::BadRequest("traceId.length > 32".to_owned()));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ZipkinError::BadRequest(format!(
            "{text} should be lower-hex encoded with no prefix"
        )));
    }
    let width = if text.len() <= 16 { 16 } else { 32 };
    let normalized = format!("{text:0>width$}");
    let id = TraceId::parse_hex(&normalized)
        .map_err(|_| ZipkinError::BadRequest("traceId is all zeros".to_owned()))?;
    Ok((normalized, id))
}

/// `GET /api/v2/trace/{traceId}`: `[Span…]`, 404 `"<id> not found"`.
async fn trace(
    State(ingest): State<Ingest>,
    Path(trace_id): Path<String>,
) -> Result<Response, ZipkinError> {
    let (normalized, id) = normalize_trace_id(&trace_id)?;
    let spans = ingest.store().get_traces(&[id]).await?;
    if spans.is_empty() {
        return Err(ZipkinError::NotFound(format!("{normalized} not found")));
    }
    Ok(json(Value::Array(model::encode_spans(&spans))))
}

/// `GET /api/v2/traceMany?traceIds=a,b`: the traces found, `[[Span…]…]`.
async fn trace_many(
    State(ingest): State<Ingest>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ZipkinError> {
    let params = Params::new(params);
    let text = params
        .get("traceIds")
        .ok_or_else(|| ZipkinError::BadRequest("traceIds parameter is empty".to_owned()))?;
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for part in text.split(',') {
        let (_, id) = normalize_trace_id(part.trim())?;
        if !seen.insert(id) {
            return Err(ZipkinError::BadRequest(format!(
                "redundant traceId: {part}"
            )));
        }
        ids.push(id);
    }
    if ids.len() == 1 {
        return Err(ZipkinError::BadRequest(
            "Use /api/v2/trace/{traceId} endpoint to retrieve a single trace".to_owned(),
        ));
    }
    let spans = ingest.store().get_traces(&ids).await?;
    Ok(json(traces_json(&spans)))
}

/// `[[Span…]…]`, one list per trace, in the order of `spans`.
fn traces_json(spans: &[Span]) -> Value {
    let mut traces: Vec<Vec<Span>> = Vec::new();
    for span in spans {
        match traces.last_mut() {
            Some(last) if last[0].trace_id == span.trace_id => last.push(span.clone()),
            _ => traces.push(vec![span.clone()]),
        }
    }
    Value::Array(
        traces
            .iter()
            .map(|trace| Value::Array(model::encode_spans(trace)))
            .collect(),
    )
}

/// `GET /api/v2/traces?serviceName&remoteServiceName&spanName&annotationQuery
/// &minDuration&maxDuration(µs)&endTs&lookback(ms)&limit`.
async fn traces(
    State(ingest): State<Ingest>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ZipkinError> {
    let params = Params::new(params);
    let end_ms = int(&params, "endTs")?.unwrap_or(now_unix_nano() / 1_000_000);
    let lookback_ms = int(&params, "lookback")?.unwrap_or(DEFAULT_LOOKBACK_MS);
    let limit = int(&params, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit <= 0 {
        return Err(ZipkinError::BadRequest("limit should be > 0".to_owned()));
    }
    if end_ms <= 0 {
        return Err(ZipkinError::BadRequest(
            "endTs should be positive".to_owned(),
        ));
    }
    if lookback_ms <= 0 {
        return Err(ZipkinError::BadRequest(
            "lookback should be positive".to_owned(),
        ));
    }
    let micros = |key: &str| -> Result<Option<i64>, ZipkinError> {
        int(&params, key)?
            .map(|value| {
                value
                    .checked_mul(1000)
                    .ok_or_else(|| ZipkinError::BadRequest(format!("{key} is out of range")))
            })
            .transpose()
    };
    let min_duration_nano = micros("minDuration")?;
    let max_duration_nano = micros("maxDuration")?;
    if let (Some(min), Some(max)) = (min_duration_nano, max_duration_nano)
        && max < min
    {
        return Err(ZipkinError::BadRequest(
            "maxDuration should be >= minDuration".to_owned(),
        ));
    }
    let mut tags = Vec::new();
    let mut words = Vec::new();
    if let Some(remote) = params.get("remoteServiceName") {
        tags.push(("peer.service".to_owned(), remote.to_owned()));
    }
    for term in params
        .get("annotationQuery")
        .unwrap_or_default()
        .split(" and ")
        .map(str::trim)
        .filter(|term| !term.is_empty())
    {
        match term.split_once('=') {
            Some((key, value)) => tags.push((key.trim().to_owned(), value.trim().to_owned())),
            None => words.push(term.to_owned()),
        }
    }
    let limit = usize::try_from(limit.min(MAX_LIMIT)).unwrap_or(10);
    let service = params.get("serviceName").map(str::to_owned);
    let query = TraceQuery {
        service: service.clone(),
        operation: params
            .get("spanName")
            .filter(|name| *name != "all")
            .map(str::to_owned),
        tags,
        start_unix_nano: end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000),
        end_unix_nano: end_ms.saturating_mul(1_000_000),
        min_duration_nano,
        max_duration_nano,
        limit: if words.is_empty() {
            limit
        } else {
            limit.saturating_mul(WORD_OVERFETCH)
        },
        offset: 0,
        min_trace_duration_nano: None,
        max_trace_duration_nano: None,
        order: crate::store::TraceOrder::Newest,
        count_total: false,
    };
    let found = ingest.store().find_traces(&query).await?;
    let mut spans = ingest.store().get_traces(&found.trace_ids).await?;
    if !words.is_empty() {
        let matching: HashSet<TraceId> = spans
            .iter()
            .filter(|span| service.as_deref().is_none_or(|s| span.service_name == s))
            .filter(|span| {
                words.iter().all(|word| {
                    span.attributes.contains_key(word)
                        || span.events.iter().any(|event| event.name == *word)
                })
            })
            .map(|span| span.trace_id)
            .collect();
        let kept: Vec<TraceId> = found
            .trace_ids
            .iter()
            .copied()
            .filter(|id| matching.contains(id))
            .take(limit)
            .collect();
        spans.retain(|span| kept.contains(&span.trace_id));
    }
    Ok(json(traces_json(&spans)))
}

/// `GET /api/v2/dependencies?endTs=(ms, required)&lookback=(ms)`.
async fn dependencies(
    State(ingest): State<Ingest>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ZipkinError> {
    let params = Params::new(params);
    let end_ms = int(&params, "endTs")?
        .ok_or_else(|| ZipkinError::BadRequest("endTs is required".to_owned()))?;
    let lookback_ms = int(&params, "lookback")?.unwrap_or(DEFAULT_LOOKBACK_MS);
    if end_ms <= 0 || lookback_ms <= 0 {
        return Err(ZipkinError::BadRequest(
            "endTs and lookback should be positive".to_owned(),
        ));
    }
    let links = ingest
        .store()
        .dependencies(
            end_ms.saturating_sub(lookback_ms).saturating_mul(1_000_000),
            end_ms.saturating_mul(1_000_000),
        )
        .await?;
    let body: Vec<Value> = links
        .into_iter()
        .map(|link| {
            let mut value = serde_json::json!({
                "parent": link.parent,
                "child": link.child,
                "callCount": link.call_count,
            });
            if link.error_count > 0
                && let Value::Object(fields) = &mut value
            {
                fields.insert("errorCount".to_owned(), Value::from(link.error_count));
            }
            value
        })
        .collect();
    Ok(json(Value::Array(body)))
}
