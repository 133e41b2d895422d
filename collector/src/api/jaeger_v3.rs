//! Jaeger's `/api/v3` HTTP gateway (what the current Jaeger UI and Grafana's
//! `jaegerEnableGrpcEndpoint` mode call): services, operations, trace by id
//! and search as OTLP/JSON in `{"result": {"resourceSpans": […]}}`, and the
//! search-page summaries. Errors use the gateway's
//! `{"error": {"grpcCode", "httpCode", "message", "httpStatus"}}`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::jaeger::{jaeger_kind, parse_go_duration, parse_kind};
use super::{ApiError, Params};
use crate::otlp::encode;
use crate::store::{Span, StatusCode, Store, StoreError, TraceId, TraceQuery};

const DEFAULT_SEARCH_DEPTH: i64 = 20;
const MAX_SEARCH_DEPTH: i64 = 1500;

pub fn routes() -> Router<Arc<dyn Store>> {
    Router::new()
        .route("/api/v3/services", get(services))
        .route("/api/v3/operations", get(operations))
        .route("/api/v3/traces", get(find_traces))
        .route("/api/v3/traces/{trace_id}", get(trace))
        .route("/api/v3/trace-summaries", get(trace_summaries))
}

/// An error in the v3 gateway's shape.
pub struct V3Error(ApiError);

impl From<ApiError> for V3Error {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl From<StoreError> for V3Error {
    fn from(error: StoreError) -> Self {
        Self(ApiError::Store(error))
    }
}

impl IntoResponse for V3Error {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let grpc_code = match status {
            http::StatusCode::BAD_REQUEST => 3,
            http::StatusCode::NOT_FOUND => 5,
            _ => 13,
        };
        let body = json!({ "error": {
            "grpcCode": grpc_code,
            "httpCode": status.as_u16(),
            "message": self.0.public_message(),
            "httpStatus": status.canonical_reason().unwrap_or_default(),
        }});
        (status, Json(body)).into_response()
    }
}

async fn services(State(store): State<Arc<dyn Store>>) -> Result<Json<Value>, V3Error> {
    Ok(Json(json!({ "services": store.services().await? })))
}

/// `?service=&spanKind=` → `{"operations":[{"name","spanKind"}]}`.
async fn operations(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, V3Error> {
    let params = Params::new(params);
    let service = params
        .get("service")
        .ok_or_else(|| ApiError::BadRequest("service name is required".to_owned()))?;
    let kind = parse_kind(params.get("spanKind").or(params.get("span_kind")))?;
    let operations: Vec<Value> = store
        .operation_kinds(service, kind)
        .await?
        .into_iter()
        .map(|operation| json!({ "name": operation.name, "spanKind": jaeger_kind(operation.kind) }))
        .collect();
    Ok(Json(json!({ "operations": operations })))
}

fn result(spans: &[Span]) -> Result<Json<Value>, V3Error> {
    let resource_spans = encode::resource_spans(spans);
    let resource_spans = serde_json::to_value(&resource_spans)
        .map_err(|error| ApiError::Store(StoreError::Corrupt(error.to_string())))?;
    Ok(Json(
        json!({ "result": { "resourceSpans": otlp_json(resource_spans) } }),
    ))
}

/// The proto crate's serde output is OTLP/JSON (hex ids, 64-bit integers
/// as strings, integer enums); nulls are dropped.
fn otlp_json(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| (key, otlp_json(value)))
                .collect(),
        ),
        Value::Array(values) => Value::Array(values.into_iter().map(otlp_json).collect()),
        other => other,
    }
}

/// `GET /api/v3/traces/{id}` (`start_time`/`end_time`/`raw_traces` accepted
/// and ignored: a trace is found by id alone).
async fn trace(
    State(store): State<Arc<dyn Store>>,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, V3Error> {
    let id =
        TraceId::parse_hex(&trace_id).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let spans = store.get_traces(&[id]).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound("trace not found".to_owned()).into());
    }
    result(&spans)
}

/// The first value among camelCase and snake_case spellings.
fn param<'a>(params: &'a Params, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| params.get(name))
}

fn rfc3339(params: &Params, names: &[&str]) -> Result<i64, ApiError> {
    let text = param(params, names)
        .ok_or_else(|| ApiError::BadRequest(format!("{} is required", names[0])))?;
    let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|error| {
        ApiError::BadRequest(format!("{}={text:?} is not RFC 3339: {error}", names[0]))
    })?;
    time.timestamp_nanos_opt()
        .ok_or_else(|| ApiError::BadRequest(format!("{} is out of range", names[0])))
}

fn search_query(params: &Params) -> Result<TraceQuery, ApiError> {
    let start_unix_nano = rfc3339(params, &["query.startTimeMin", "query.start_time_min"])?;
    let end_unix_nano = rfc3339(params, &["query.startTimeMax", "query.start_time_max"])?;
    let duration = |names: &[&str]| {
        param(params, names)
            .map(|text| {
                parse_go_duration(text).ok_or_else(|| {
                    ApiError::BadRequest(format!("cannot parse {} {text:?}", names[0]))
                })
            })
            .transpose()
    };
    let min_duration_nano = duration(&["query.durationMin", "query.duration_min"])?;
    let max_duration_nano = duration(&["query.durationMax", "query.duration_max"])?;
    let depth = match param(
        params,
        &[
            "query.searchDepth",
            "query.search_depth",
            "query.num_traces",
        ],
    ) {
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| ApiError::BadRequest(format!("searchDepth {text:?} is not a number")))?,
        None => DEFAULT_SEARCH_DEPTH,
    };
    let mut tags = Vec::new();
    if let Some(text) = param(params, &["query.attributes"]) {
        let map: HashMap<String, Value> = serde_json::from_str(text).map_err(|error| {
            ApiError::BadRequest(format!("query.attributes is not a JSON object: {error}"))
        })?;
        let mut pairs: Vec<(String, String)> = map
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(text) => (key, text),
                other => (key, other.to_string()),
            })
            .collect();
        pairs.sort();
        tags = pairs;
    }
    Ok(TraceQuery {
        service: param(params, &["query.serviceName", "query.service_name"]).map(str::to_owned),
        operation: param(params, &["query.operationName", "query.operation_name"])
            .map(str::to_owned),
        tags,
        start_unix_nano,
        end_unix_nano,
        min_duration_nano,
        max_duration_nano,
        limit: usize::try_from(depth.clamp(1, MAX_SEARCH_DEPTH)).unwrap_or(20),
        offset: 0,
        min_trace_duration_nano: None,
        max_trace_duration_nano: None,
        order: crate::store::TraceOrder::Newest,
        count_total: false,
    })
}

async fn search(store: &Arc<dyn Store>, params: Params) -> Result<Vec<Span>, V3Error> {
    let query = search_query(&params)?;
    let found = store.find_traces(&query).await?;
    let spans = store.get_traces(&found.trace_ids).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound("No traces found".to_owned()).into());
    }
    Ok(spans)
}

/// `GET /api/v3/traces?query.*` → the matching traces' spans as OTLP/JSON;
/// 404 when none match (as Jaeger's gateway answers).
async fn find_traces(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, V3Error> {
    let spans = search(&store, Params::new(params)).await?;
    result(&spans)
}

/// `GET /api/v3/trace-summaries?query.*` → `{"summaries":[…]}`.
async fn trace_summaries(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, V3Error> {
    let spans = search(&store, Params::new(params)).await?;
    let mut order: Vec<TraceId> = Vec::new();
    let mut by_trace: HashMap<TraceId, Vec<&Span>> = HashMap::new();
    for span in &spans {
        by_trace
            .entry(span.trace_id)
            .or_insert_with(|| {
                order.push(span.trace_id);
                Vec::new()
            })
            .push(span);
    }
    let summaries: Vec<Value> = order
        .iter()
        .filter_map(|id| by_trace.get(id).map(|spans| summary(*id, spans)))
        .collect();
    Ok(Json(json!({ "summaries": summaries })))
}

fn summary(id: TraceId, spans: &[&Span]) -> Value {
    let ids: HashSet<_> = spans.iter().map(|span| span.span_id).collect();
    let root = spans
        .iter()
        .filter(|span| span.parent_span_id.is_none())
        .min_by_key(|span| span.start_unix_nano)
        .or_else(|| spans.iter().min_by_key(|span| span.start_unix_nano));
    let start = spans
        .iter()
        .map(|span| span.start_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|span| span.start_unix_nano.saturating_add(span.duration_nano))
        .max()
        .unwrap_or(0);
    let is_error = |span: &&&Span| span.status_code == StatusCode::Error;
    let mut services: Vec<(String, usize, usize)> = Vec::new();
    for span in spans {
        let error = usize::from(span.status_code == StatusCode::Error);
        match services
            .iter_mut()
            .find(|(name, _, _)| *name == span.service_name)
        {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += error;
            }
            None => services.push((span.service_name.clone(), 1, error)),
        }
    }
    json!({
        "traceId": id.to_hex(),
        "rootServiceName": root.map(|span| span.service_name.clone()).unwrap_or_default(),
        "rootOperationName": root.map(|span| span.operation.clone()).unwrap_or_default(),
        "minStartTimeUnixNano": start.to_string(),
        "maxEndTimeUnixNano": end.to_string(),
        "spanCount": spans.len(),
        "errorSpanCount": spans.iter().filter(is_error).count(),
        "orphanSpanCount": spans
            .iter()
            .filter(|span| span.parent_span_id.is_some_and(|parent| !ids.contains(&parent)))
            .count(),
        "services": services
            .into_iter()
            .map(|(name, count, errors)| json!({ "name": name, "spanCount": count, "errorSpanCount": errors }))
            .collect::<Vec<_>>(),
    })
}
