//! The native API the dashboard reads (`/api/weft/*`). The JSON shapes are a
//! contract with `dashboard/`: change both together.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, Params, now_unix_nano, scale};
use crate::graph::{self, Graph};
use crate::store::{Span, StatusCode, Store, TraceId, TraceQuery};

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 1000;
const DEFAULT_LOOKBACK_SECONDS: i64 = 3600;
const DEFAULT_GRAPH_WINDOW_SECONDS: i64 = 300;
/// The longest graph window (a week): bounds the points read.
const MAX_GRAPH_WINDOW_SECONDS: i64 = 7 * 24 * 3600;

pub fn routes() -> Router<Arc<dyn Store>> {
    Router::new()
        .route("/api/weft/services", get(services))
        .route("/api/weft/traces", get(traces))
        .route("/api/weft/traces/{id}", get(trace))
        .route("/api/weft/graph", get(service_graph))
}

#[derive(Serialize)]
struct Services {
    services: Vec<String>,
}

async fn services(State(store): State<Arc<dyn Store>>) -> Result<Json<Services>, ApiError> {
    Ok(Json(Services {
        services: store.services().await?,
    }))
}

#[derive(Serialize)]
struct TraceList {
    traces: Vec<TraceSummary>,
    total: u64,
}

/// One row of the trace list.
#[derive(Debug, PartialEq, Serialize)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: String,
    pub root_operation: String,
    pub start_us: i64,
    pub duration_us: i64,
    pub span_count: usize,
    pub error_count: usize,
    /// Services in the order they first appear (by span start).
    pub services: Vec<String>,
}

/// `?service=&operation=&limit=20&start_us=&end_us=` or `&lookback=SECONDS`
/// (default: the last hour).
async fn traces(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<TraceList>, ApiError> {
    let params = Params::new(params);
    let limit = params.int("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let end_unix_nano = match params.int("end_us")? {
        Some(end_us) => scale("end_us", end_us, 1000)?,
        None => now_unix_nano(),
    };
    let start_unix_nano = match (params.int("start_us")?, params.int("lookback")?) {
        (Some(start_us), _) => scale("start_us", start_us, 1000)?,
        (None, Some(seconds)) => {
            end_unix_nano.saturating_sub(scale("lookback", seconds, 1_000_000_000)?)
        }
        (None, None) => end_unix_nano - DEFAULT_LOOKBACK_SECONDS * 1_000_000_000,
    };
    if start_unix_nano > end_unix_nano {
        return Err(ApiError::BadRequest(
            "the window starts after it ends".to_owned(),
        ));
    }
    let query = TraceQuery {
        service: params.get("service").map(str::to_owned),
        operation: params.get("operation").map(str::to_owned),
        tags: Vec::new(),
        start_unix_nano,
        end_unix_nano,
        min_duration_nano: None,
        max_duration_nano: None,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    };
    let found = store.find_traces(&query).await?;
    let spans = store.get_traces(&found.trace_ids).await?;
    let mut traces: Vec<TraceSummary> = group_by_trace(&spans)
        .into_iter()
        .map(|(trace_id, spans)| summarize(trace_id, &spans))
        .collect();
    traces.sort_by(|a, b| {
        b.start_us
            .cmp(&a.start_us)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    Ok(Json(TraceList {
        traces,
        total: found.total,
    }))
}

/// Spans grouped by trace, keeping the order of `spans`.
pub fn group_by_trace(spans: &[Span]) -> Vec<(TraceId, Vec<&Span>)> {
    let mut groups: Vec<(TraceId, Vec<&Span>)> = Vec::new();
    for span in spans {
        match groups.last_mut() {
            Some((trace_id, group)) if *trace_id == span.trace_id => group.push(span),
            _ => groups.push((span.trace_id, vec![span])),
        }
    }
    groups
}

/// The summary of one trace (its spans in any order, at least one).
pub fn summarize(trace_id: TraceId, spans: &[&Span]) -> TraceSummary {
    let mut by_start: Vec<&Span> = spans.to_vec();
    by_start.sort_by_key(|span| (span.start_unix_nano, span.span_id));
    let root = by_start
        .iter()
        .find(|span| span.parent_span_id.is_none())
        .or_else(|| by_start.first());
    let start = by_start.first().map_or(0, |span| span.start_unix_nano);
    let end = spans
        .iter()
        .map(|span| span.start_unix_nano.saturating_add(span.duration_nano))
        .max()
        .unwrap_or(start);
    let mut services: Vec<String> = Vec::new();
    for span in &by_start {
        if !services.contains(&span.service_name) {
            services.push(span.service_name.clone());
        }
    }
    TraceSummary {
        trace_id: trace_id.to_hex(),
        root_service: root
            .map(|span| span.service_name.clone())
            .unwrap_or_default(),
        root_operation: root.map(|span| span.operation.clone()).unwrap_or_default(),
        start_us: start / 1000,
        duration_us: (end - start) / 1000,
        span_count: spans.len(),
        error_count: spans
            .iter()
            .filter(|span| span.status_code == StatusCode::Error)
            .count(),
        services,
    }
}

#[derive(Serialize)]
struct TraceDetail {
    trace_id: String,
    spans: Vec<SpanDetail>,
}

#[derive(Serialize)]
struct SpanDetail {
    span_id: String,
    parent_span_id: Option<String>,
    service: String,
    service_version: Option<String>,
    operation: String,
    kind: &'static str,
    start_us: i64,
    duration_us: i64,
    status: &'static str,
    status_message: String,
    attributes: serde_json::Map<String, Value>,
    resource: serde_json::Map<String, Value>,
    events: Vec<EventDetail>,
}

#[derive(Serialize)]
struct EventDetail {
    time_us: i64,
    name: String,
    attributes: serde_json::Map<String, Value>,
}

async fn trace(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> Result<Json<TraceDetail>, ApiError> {
    let trace_id =
        TraceId::parse_hex(&id).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let spans = store.get_traces(&[trace_id]).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!("trace {id} not found")));
    }
    let spans = spans
        .into_iter()
        .map(|span| SpanDetail {
            span_id: span.span_id.to_hex(),
            parent_span_id: span.parent_span_id.map(|id| id.to_hex()),
            service: span.service_name,
            service_version: span.service_version,
            operation: span.operation,
            kind: span.kind.as_str(),
            start_us: span.start_unix_nano / 1000,
            duration_us: span.duration_nano / 1000,
            status: span.status_code.as_str(),
            status_message: span.status_message,
            attributes: span.attributes,
            resource: span.resource,
            events: span
                .events
                .into_iter()
                .map(|event| EventDetail {
                    time_us: event.time_unix_nano / 1000,
                    name: event.name,
                    attributes: event.attributes,
                })
                .collect(),
        })
        .collect();
    Ok(Json(TraceDetail {
        trace_id: trace_id.to_hex(),
        spans,
    }))
}

/// `?window=SECONDS` (default 300, ending now) or `?start_ms=&end_ms=`.
async fn service_graph(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Graph>, ApiError> {
    let params = Params::new(params);
    let (start_ms, end_ms) = match (params.int("start_ms")?, params.int("end_ms")?) {
        (Some(start_ms), Some(end_ms)) => (start_ms, end_ms),
        (None, None) => {
            let window = params
                .int("window")?
                .unwrap_or(DEFAULT_GRAPH_WINDOW_SECONDS);
            let end_ms = now_unix_nano() / 1_000_000;
            (
                end_ms.saturating_sub(scale("window", window, 1000)?),
                end_ms,
            )
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give both start_ms and end_ms, or window".to_owned(),
            ));
        }
    };
    if start_ms >= end_ms || end_ms - start_ms > MAX_GRAPH_WINDOW_SECONDS * 1000 {
        return Err(ApiError::BadRequest(format!(
            "the window must be positive and at most {MAX_GRAPH_WINDOW_SECONDS} seconds"
        )));
    }
    let series = store
        .series_window(
            graph::REQUESTS_METRIC,
            scale("start_ms", start_ms, 1_000_000)?,
            scale("end_ms", end_ms, 1_000_000)?,
        )
        .await?;
    Ok(Json(graph::build(&series, start_ms, end_ms)))
}
