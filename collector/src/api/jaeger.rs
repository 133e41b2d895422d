//! Jaeger's v1 query API (the "internal" JSON API Grafana's Jaeger datasource
//! calls): services, operations, trace by id and trace search, in Jaeger's
//! JSON model and `{"data", "total", "limit", "offset", "errors"}` envelope.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{ApiError, Params, now_unix_nano, scale};
use crate::store::{
    Attributes, Span, SpanKind, StatusCode, Store, StoreError, TraceId, TraceQuery,
};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1500;
const DEFAULT_LOOKBACK_NANOS: i64 = 2 * 24 * 3600 * 1_000_000_000;
/// JavaScript's largest exact integer: larger int64 tags travel as strings.
const JS_MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

pub fn routes() -> Router<Arc<dyn Store>> {
    Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(operations))
        .route("/api/operations", get(operation_kinds))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .layer(axum::middleware::from_fn(pretty_print))
        .merge(super::jaeger_v3::routes())
}

/// `?prettyPrint=true` indents the JSON answer, as Jaeger does.
async fn pretty_print(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let pretty = request.uri().query().is_some_and(|query| {
        query.split('&').any(|pair| {
            matches!(
                pair.split_once('='),
                Some(("prettyPrint", "true" | "1" | "True" | "TRUE" | "t"))
            )
        })
    });
    let response = next.run(request).await;
    if !pretty {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body = match serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|value| serde_json::to_vec_pretty(&value).ok())
    {
        Some(indented) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            indented.into()
        }
        None => bytes,
    };
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// A search bound in µs since the epoch, or in ms as Grafana sends
/// `start`/`end` on trace-by-id: values below 10^14 (in µs: March 1973;
/// in ms: the year 5138) are taken as milliseconds. Returns nanoseconds.
pub fn micros_or_millis(key: &str, value: i64) -> Result<i64, ApiError> {
    const MILLIS_BELOW: i64 = 100_000_000_000_000;
    if value.abs() < MILLIS_BELOW {
        scale(key, value, 1_000_000)
    } else {
        scale(key, value, 1000)
    }
}

/// Jaeger's span kind names (`""` for unspecified).
pub fn jaeger_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// Parses Jaeger's `spanKind` parameter (empty = any kind).
pub fn parse_kind(text: Option<&str>) -> Result<Option<SpanKind>, ApiError> {
    Ok(match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => None,
        Some("unspecified") => Some(SpanKind::Unspecified),
        Some("internal") => Some(SpanKind::Internal),
        Some("server") => Some(SpanKind::Server),
        Some("client") => Some(SpanKind::Client),
        Some("producer") => Some(SpanKind::Producer),
        Some("consumer") => Some(SpanKind::Consumer),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unsupported SpanKind '{other}', expected one of: unspecified, internal, \
                 server, client, producer, consumer"
            )));
        }
    })
}

/// `GET /api/operations?service=&spanKind=` → `[{"name","spanKind"}]`.
async fn operation_kinds(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, JaegerError> {
    let params = Params::new(params);
    let service = params
        .get("service")
        .ok_or_else(|| ApiError::BadRequest("parameter 'service' is required".to_owned()))?;
    let kind = parse_kind(params.get("spanKind"))?;
    let operations = store.operation_kinds(service, kind).await?;
    Ok(envelope(
        operations
            .into_iter()
            .map(|operation| json!({ "name": operation.name, "spanKind": jaeger_kind(operation.kind) }))
            .collect(),
    ))
}

const DEFAULT_DEPENDENCIES_LOOKBACK_MS: i64 = 24 * 3600 * 1000;

/// `GET /api/dependencies?endTs=(ms)&lookback=(ms)` →
/// `[{"parent","child","callCount"}]`.
async fn dependencies(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, JaegerError> {
    let params = Params::new(params);
    let end_ms = params
        .int("endTs")?
        .unwrap_or_else(|| now_unix_nano() / 1_000_000);
    let lookback_ms = params
        .int("lookback")?
        .unwrap_or(DEFAULT_DEPENDENCIES_LOOKBACK_MS);
    if lookback_ms < 0 {
        return Err(ApiError::BadRequest("lookback must not be negative".to_owned()).into());
    }
    let end = scale("endTs", end_ms, 1_000_000)?;
    let start = scale("lookback", end_ms.saturating_sub(lookback_ms), 1_000_000)?;
    let service = params.get("service");
    let links = store.dependencies(start, end).await?;
    Ok(envelope(
        links
            .into_iter()
            .filter(|link| service.is_none_or(|s| link.parent == s || link.child == s))
            .map(|link| {
                json!({ "parent": link.parent, "child": link.child, "callCount": link.call_count })
            })
            .collect(),
    ))
}

/// An [`ApiError`] in Jaeger's envelope: `{"data":null,...,"errors":[{code,msg}]}`.
pub struct JaegerError(ApiError);

impl From<ApiError> for JaegerError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<StoreError> for JaegerError {
    fn from(error: StoreError) -> Self {
        Self(ApiError::Store(error))
    }
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": self.0.public_message() }],
        });
        // Jaeger writes its error envelope with Go's http.Error: text/plain.
        (
            status,
            [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{body}\n"),
        )
            .into_response()
    }
}

fn envelope(data: Vec<Value>) -> Json<Value> {
    let total = data.len();
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
}

async fn services(State(store): State<Arc<dyn Store>>) -> Result<Json<Value>, JaegerError> {
    let services = store.services().await?;
    Ok(envelope(services.into_iter().map(Value::String).collect()))
}

async fn operations(
    State(store): State<Arc<dyn Store>>,
    Path(service): Path<String>,
) -> Result<Json<Value>, JaegerError> {
    let operations = store.operations(&service).await?;
    Ok(envelope(
        operations.into_iter().map(Value::String).collect(),
    ))
}

async fn trace(
    State(store): State<Arc<dyn Store>>,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, JaegerError> {
    let id =
        TraceId::parse_hex(&trace_id).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let spans = store.get_traces(&[id]).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound("trace not found".to_owned()).into());
    }
    Ok(envelope(vec![trace_json(id, &spans)]))
}

/// `GET /api/traces?service=&operation=&tags={json}&tag=k:v&start=&end=(µs)
/// &limit=&minDuration=&maxDuration=(Go durations)&traceID=...`.
async fn search(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, JaegerError> {
    let params = Params::new(params);
    let mut trace_ids = Vec::new();
    for id in params.all("traceID") {
        trace_ids
            .push(TraceId::parse_hex(id).map_err(|error| ApiError::BadRequest(error.to_string()))?);
    }
    if trace_ids.is_empty() {
        let query = search_query(&params)?;
        trace_ids = store.find_traces(&query).await?.trace_ids;
    }
    let spans = store.get_traces(&trace_ids).await?;
    let traces = super::native::group_by_trace(&spans)
        .into_iter()
        .map(|(id, spans)| {
            let spans: Vec<Span> = spans.into_iter().cloned().collect();
            trace_json(id, &spans)
        })
        .collect();
    Ok(envelope(traces))
}

fn search_query(params: &Params) -> Result<TraceQuery, ApiError> {
    let end_unix_nano = match params.int("end")? {
        Some(end) => micros_or_millis("end", end)?,
        None => now_unix_nano(),
    };
    let start_unix_nano = match params.int("start")? {
        Some(start) => micros_or_millis("start", start)?,
        None => end_unix_nano.saturating_sub(DEFAULT_LOOKBACK_NANOS),
    };
    let limit = params.int("limit")?.unwrap_or(DEFAULT_LIMIT);
    let limit = if limit <= 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    };
    let duration = |key: &str| {
        params
            .get(key)
            .map(|text| {
                parse_go_duration(text).ok_or_else(|| {
                    ApiError::BadRequest(format!("cannot parse {key} {text:?} as a duration"))
                })
            })
            .transpose()
    };
    let min_duration_nano = duration("minDuration")?;
    let max_duration_nano = duration("maxDuration")?;
    if let (Some(min), Some(max)) = (min_duration_nano, max_duration_nano)
        && max < min
    {
        return Err(ApiError::BadRequest(
            "maxDuration should be greater than minDuration".to_owned(),
        ));
    }
    let mut tags = Vec::new();
    for text in params.all("tags") {
        let object: Map<String, Value> = serde_json::from_str(text).map_err(|error| {
            ApiError::BadRequest(format!("malformed 'tags' parameter: {error}"))
        })?;
        for (key, value) in object {
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            tags.push((key, value));
        }
    }
    for text in params.all("tag") {
        let Some((key, value)) = text.split_once(':') else {
            return Err(ApiError::BadRequest(format!(
                "malformed 'tag' parameter {text:?}: expected key:value"
            )));
        };
        tags.push((key.to_owned(), value.to_owned()));
    }
    Ok(TraceQuery {
        service: params.get("service").map(str::to_owned),
        operation: params.get("operation").map(str::to_owned),
        tags,
        start_unix_nano,
        end_unix_nano,
        min_duration_nano,
        max_duration_nano,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        offset: 0,
        min_trace_duration_nano: None,
        max_trace_duration_nano: None,
        order: crate::store::TraceOrder::Newest,
        count_total: false,
    })
}

/// Parses a Go duration (`1.5s`, `100ms`, `1h30m`, `500us`) into nanoseconds.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per_unit;
    }
    (total <= i64::MAX as f64).then_some(total.round() as i64)
}

/// Jaeger's id spelling: 16 hex digits when the high half is zero.
pub fn jaeger_trace_id(id: TraceId) -> String {
    let hex = id.to_hex();
    if id.0[..8] == [0; 8] {
        hex[16..].to_owned()
    } else {
        hex
    }
}

/// One trace in Jaeger's JSON model.
fn trace_json(trace_id: TraceId, spans: &[Span]) -> Value {
    let trace_id_text = jaeger_trace_id(trace_id);
    // One process per (service, resource), numbered in order of appearance.
    let mut processes: Vec<(&str, &Attributes)> = Vec::new();
    let mut span_values = Vec::with_capacity(spans.len());
    for span in spans {
        let process_key = (span.service_name.as_str(), &*span.resource);
        let process_index = match processes.iter().position(|known| *known == process_key) {
            Some(index) => index,
            None => {
                processes.push(process_key);
                processes.len() - 1
            }
        };
        span_values.push(span_json(&trace_id_text, span, process_index + 1));
    }
    let processes: Map<String, Value> = processes
        .into_iter()
        .enumerate()
        .map(|(index, (service, resource))| {
            let tags: Vec<Value> = resource
                .iter()
                .filter(|(key, _)| key.as_str() != "service.name")
                .filter_map(|(key, value)| tag(key, value))
                .collect();
            (
                format!("p{}", index + 1),
                json!({ "serviceName": service, "tags": tags }),
            )
        })
        .collect();
    json!({
        "traceID": trace_id_text,
        "spans": span_values,
        "processes": processes,
        "warnings": null,
    })
}

fn span_json(trace_id: &str, span: &Span, process: usize) -> Value {
    let mut references = Vec::new();
    if let Some(parent) = span.parent_span_id {
        references
            .push(json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": parent.to_hex() }));
    }
    for link in &span.links {
        references.push(json!({
            "refType": "FOLLOWS_FROM",
            "traceID": jaeger_trace_id(link.trace_id),
            "spanID": link.span_id.to_hex(),
        }));
    }
    let mut tags: Vec<Value> = span
        .attributes
        .iter()
        .filter_map(|(key, value)| tag(key, value))
        .collect();
    let mut extra = |key: &str, value: Value| tags.extend(tag(key, &value));
    if span.kind != SpanKind::Unspecified {
        extra(
            "span.kind",
            Value::from(span.kind.as_str().to_ascii_lowercase()),
        );
    }
    if span.status_code != StatusCode::Unset {
        extra("otel.status_code", Value::from(span.status_code.as_str()));
    }
    if span.status_code == StatusCode::Error {
        extra("error", Value::Bool(true));
    }
    if !span.status_message.is_empty() {
        extra(
            "otel.status_description",
            Value::from(span.status_message.clone()),
        );
    }
    if !span.scope.name.is_empty() {
        extra("otel.scope.name", Value::from(span.scope.name.clone()));
    }
    if !span.scope.version.is_empty() {
        extra(
            "otel.scope.version",
            Value::from(span.scope.version.clone()),
        );
    }
    if !span.trace_state.is_empty() {
        extra("w3c.tracestate", Value::from(span.trace_state.clone()));
    }
    let logs: Vec<Value> = span
        .events
        .iter()
        .map(|event| {
            let mut fields = vec![json!({ "key": "event", "type": "string", "value": event.name })];
            fields.extend(
                event
                    .attributes
                    .iter()
                    .filter_map(|(key, value)| tag(key, value)),
            );
            json!({ "timestamp": event.time_unix_nano / 1000, "fields": fields })
        })
        .collect();
    let mut value = json!({
        "traceID": trace_id,
        "spanID": span.span_id.to_hex(),
        "operationName": span.operation,
        "references": references,
        "startTime": span.start_unix_nano / 1000,
        "duration": span.duration_nano / 1000,
        "tags": tags,
        "logs": logs,
        "processID": format!("p{process}"),
        "warnings": null,
    });
    let flags = span.flags & 0xff;
    if flags != 0
        && let Value::Object(fields) = &mut value
    {
        fields.insert("flags".to_owned(), Value::from(flags));
    }
    value
}

/// A typed Jaeger tag; `None` for null values.
fn tag(key: &str, value: &Value) -> Option<Value> {
    let (kind, value) = match value {
        Value::Null => return None,
        Value::String(text) => ("string", Value::from(text.clone())),
        Value::Bool(flag) => ("bool", Value::Bool(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(int) if int.abs() > JS_MAX_SAFE_INTEGER => ("int64", Value::from(int.to_string())),
            Some(int) => ("int64", Value::from(int)),
            None => ("float64", Value::Number(number.clone())),
        },
        other => ("string", Value::from(other.to_string())),
    };
    Some(json!({ "key": key, "type": kind, "value": value }))
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("100ms"), Some(100_000_000));
        assert_eq!(parse_go_duration("500us"), Some(500_000));
        assert_eq!(parse_go_duration("500µs"), Some(500_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("12"), None);
        assert_eq!(parse_go_duration("ms"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("3 s"), None);
    }
}
