//! The native API the dashboard reads (`/api/weft/*`). The JSON shapes are a
//! contract with `dashboard/`: change both together (fields are only ever
//! added).
//!
//! Conventions: times are Unix milliseconds (`*_ms`), windows and steps
//! seconds; `error_rate` is a fraction in `0..=1` (5xx answers and requests
//! without an answer, over requests); `*_percent` is 0–100; latencies are
//! milliseconds, interpolated from the duration histograms like
//! Prometheus' `histogram_quantile`, `null` when there is no data.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, Params, now_unix_nano, scale};
use crate::graph::latency::DURATION_METRIC;
use crate::graph::red::{self, Red, Route, Steps, Traffic, Verdict};
use crate::graph::{self, Graph};
use crate::store::{Span, Store, TimeRange, TraceId, TraceOrder, TraceQuery};

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 1000;
const DEFAULT_LOOKBACK_SECONDS: i64 = 3600;
const DEFAULT_GRAPH_WINDOW_SECONDS: i64 = 300;
/// The longest graph window (a week): bounds the points read.
const MAX_GRAPH_WINDOW_SECONDS: i64 = 7 * 24 * 3600;
/// The most steps a RED or split time series may have.
const MAX_STEPS: i64 = 1000;
/// How far back `/api/weft/services` looks for apps in the metrics.
const APPS_LOOKBACK_SECONDS: i64 = 3600;

pub fn routes() -> Router<Arc<dyn Store>> {
    Router::new()
        .route("/api/weft/services", get(services))
        .route("/api/weft/operations", get(operations))
        .route("/api/weft/traces", get(traces))
        .route("/api/weft/traces/{id}", get(trace))
        .route("/api/weft/graph", get(service_graph))
        .route("/api/weft/red", get(red_series))
        .route("/api/weft/split", get(split))
}

/// `GET /api/weft/services`: `services` are the names that sent spans;
/// `apps` the destinations seen in `istio_requests_total` (destination
/// reporter) during the last hour, with their versions, workloads and
/// services (absent when there are none).
#[derive(Serialize)]
struct Services {
    services: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    apps: Vec<App>,
}

#[derive(Default, Serialize)]
struct App {
    app: String,
    namespace: String,
    versions: Vec<String>,
    workloads: Vec<String>,
    /// Fully qualified service names (`destination_service`).
    services: Vec<String>,
}

async fn services(State(store): State<Arc<dyn Store>>) -> Result<Json<Services>, ApiError> {
    let end = now_unix_nano();
    let series = store
        .find_series(
            graph::REQUESTS_METRIC,
            &[("reporter".to_owned(), "destination".to_owned())],
            Some(TimeRange {
                start_unix_nano: end - APPS_LOOKBACK_SECONDS * 1_000_000_000,
                end_unix_nano: end,
            }),
        )
        .await?;
    let mut apps: std::collections::BTreeMap<(String, String), App> = Default::default();
    for one in &series {
        let get = |key: &str| graph::label(&one.labels, key).to_owned();
        let app = apps
            .entry((
                get("destination_workload_namespace"),
                get("destination_app"),
            ))
            .or_default();
        for (list, value) in [
            (&mut app.versions, get("destination_version")),
            (&mut app.workloads, get("destination_workload")),
            (&mut app.services, get("destination_service")),
        ] {
            if let Err(index) = list.binary_search(&value) {
                list.insert(index, value);
            }
        }
    }
    Ok(Json(Services {
        services: store.services().await?,
        apps: apps
            .into_iter()
            .map(|((namespace, name), app)| App {
                app: name,
                namespace,
                ..app
            })
            .collect(),
    }))
}

/// `GET /api/weft/operations?service=NAME`: the span names (operations) a
/// service reported, sorted.
#[derive(Serialize)]
struct Operations {
    service: String,
    operations: Vec<String>,
}

async fn operations(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Operations>, ApiError> {
    let params = Params::new(params);
    let service = params
        .get("service")
        .ok_or_else(|| ApiError::BadRequest("service is required".to_owned()))?
        .to_owned();
    let mut operations = store.operations(&service).await?;
    operations.sort();
    operations.dedup();
    Ok(Json(Operations {
        service,
        operations,
    }))
}

#[derive(Serialize)]
struct TraceList {
    traces: Vec<TraceSummary>,
    /// How many traces match in total, not only this page; at least this
    /// many when `total_exact` is false (the count stops
    /// `store::TOTAL_CAP` traces past the page; with tag filters it checks
    /// `store::SPAN_CHECK_CAP` candidate traces past the page).
    total: u64,
    total_exact: bool,
    /// False when a search ordered by duration or span count found more
    /// candidate traces in the window than it sorts (`store::SPAN_CHECK_CAP`
    /// with tags, `store::SORT_CAP` without): the pages are then in that
    /// order over the `total` matching traces among the newest candidates
    /// only.
    order_exact: bool,
    /// The page and order the search used (after defaults).
    offset: usize,
    limit: usize,
    order: &'static str,
    /// The window the search used, in µs (a `lookback` resolved against the
    /// collector's clock): the pages of one search carry it, so that traces
    /// arriving meanwhile do not shift them.
    start_us: i64,
    end_us: i64,
}

/// One row of the trace list (from the store's per-trace summary).
#[derive(Debug, PartialEq, Serialize)]
pub struct TraceSummary {
    pub trace_id: String,
    /// Service and name of the span without parent (empty when it is not
    /// stored).
    pub root_service: String,
    pub root_operation: String,
    /// Earliest span start.
    pub start_us: i64,
    /// Latest span end − earliest span start.
    pub duration_us: i64,
    pub span_count: u32,
    pub error_count: u32,
    /// The services of the trace: the root's first, then the others by
    /// name.
    pub services: Vec<String>,
    /// Spans per service, in the order of `services`.
    pub service_span_counts: Vec<u32>,
}

impl From<crate::store::TraceSummary> for TraceSummary {
    fn from(summary: crate::store::TraceSummary) -> Self {
        let mut services = summary.services;
        if let Some(root) = &summary.root_service
            && let Some(index) = services.iter().position(|(name, _)| name == root)
        {
            let first = services.remove(index);
            services.insert(0, first);
        }
        let (services, service_span_counts) = services.into_iter().unzip();
        Self {
            trace_id: summary.trace_id.to_hex(),
            root_service: summary.root_service.unwrap_or_default(),
            root_operation: summary.root_operation.unwrap_or_default(),
            start_us: summary.start_unix_nano / 1000,
            duration_us: summary.duration_nano / 1000,
            span_count: summary.span_count,
            error_count: summary.error_count,
            services,
            service_span_counts,
        }
    }
}

/// The orders a trace search can ask for (`?order=`), as the store sorts.
const ORDERS: [(&str, TraceOrder); 5] = [
    ("newest", TraceOrder::Newest),
    ("oldest", TraceOrder::Oldest),
    ("longest", TraceOrder::Longest),
    ("shortest", TraceOrder::Shortest),
    ("most_spans", TraceOrder::MostSpans),
];

/// The search a `GET /api/weft/traces` asks for.
///
/// `?service=&operation=&tag=KEY=VALUE (repeatable)&min_duration_us=&max_duration_us=
/// &limit=20&offset=0&order=newest|oldest|longest|shortest|most_spans`
/// and the time range `&start_us=&end_us=` or `&lookback=SECONDS` (default:
/// the last hour). Durations bound the whole trace (earliest span start to
/// latest span end), not a span as in Jaeger; the window bounds the trace
/// start. The store sorts (before paging) and counts the true total (both
/// bounded with tags, see [`TraceList`]).
fn search(params: &Params) -> Result<TraceQuery, ApiError> {
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
    let mut tags = Vec::new();
    for tag in params.all("tag") {
        let (key, value) = tag.split_once('=').ok_or_else(|| {
            ApiError::BadRequest(format!("tag {tag:?} is not of the form key=value"))
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ApiError::BadRequest(format!("tag {tag:?} has no key")));
        }
        tags.push((key.to_owned(), value.trim().to_owned()));
    }
    let duration = |key: &str| -> Result<Option<i64>, ApiError> {
        params
            .int(key)?
            .map(|us| scale(key, us.max(0), 1000))
            .transpose()
    };
    let min_trace_duration_nano = duration("min_duration_us")?;
    let max_trace_duration_nano = duration("max_duration_us")?;
    if let (Some(min), Some(max)) = (min_trace_duration_nano, max_trace_duration_nano)
        && min > max
    {
        return Err(ApiError::BadRequest(
            "min_duration_us is above max_duration_us".to_owned(),
        ));
    }
    let (_, order) = match params.get("order") {
        None => ORDERS[0],
        Some(order) => ORDERS
            .iter()
            .copied()
            .find(|(name, _)| *name == order)
            .ok_or_else(|| {
                let names: Vec<&str> = ORDERS.iter().map(|(name, _)| *name).collect();
                ApiError::BadRequest(format!("order must be one of {}", names.join(", ")))
            })?,
    };
    let query = TraceQuery {
        service: params.get("service").map(str::to_owned),
        operation: params.get("operation").map(str::to_owned),
        tags,
        start_unix_nano,
        end_unix_nano,
        min_duration_nano: None,
        max_duration_nano: None,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        offset: usize::try_from(params.int("offset")?.unwrap_or(0).max(0)).unwrap_or(0),
        min_trace_duration_nano,
        max_trace_duration_nano,
        order,
        count_total: true,
    };
    Ok(query)
}

/// `GET /api/weft/traces` (see [`search`]): one page of summaries in the
/// asked order and the true total of matching traces.
async fn traces(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<TraceList>, ApiError> {
    let query = search(&Params::new(params))?;
    let found = store.find_traces(&query).await?;
    let order = ORDERS
        .iter()
        .find(|(_, order)| *order == query.order)
        .map_or("newest", |(name, _)| *name);
    Ok(Json(TraceList {
        traces: found.summaries.into_iter().map(Into::into).collect(),
        total: found.total,
        total_exact: found.total_exact,
        order_exact: found.order_exact,
        offset: query.offset,
        limit: query.limit,
        order,
        start_us: query.start_unix_nano / 1000,
        end_us: query.end_unix_nano / 1000,
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
            resource: Arc::unwrap_or_clone(span.resource),
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

/// The window of a request: `?window=SECONDS` (default 300, ending now, or
/// ending at `end_ms`) or `?start_ms=&end_ms=`.
fn window_ms(params: &Params) -> Result<(i64, i64), ApiError> {
    let (start_ms, end_ms) = match (params.int("start_ms")?, params.int("end_ms")?) {
        (Some(start_ms), Some(end_ms)) => (start_ms, end_ms),
        (None, end_ms) => {
            let window = params
                .int("window")?
                .unwrap_or(DEFAULT_GRAPH_WINDOW_SECONDS);
            let end_ms = end_ms.unwrap_or_else(|| now_unix_nano() / 1_000_000);
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
    Ok((start_ms, end_ms))
}

/// The steps of a window: `?step=SECONDS`, by default a twentieth of the
/// window (at least 5 s); the last step ends at the window's end.
fn steps(params: &Params, start_ms: i64, end_ms: i64) -> Result<Steps, ApiError> {
    let window_s = (end_ms - start_ms + 999) / 1000;
    let step_s = params.int("step")?.unwrap_or((window_s / 20).max(5));
    if step_s <= 0 || window_s / step_s > MAX_STEPS {
        return Err(ApiError::BadRequest(format!(
            "step must be positive and give at most {MAX_STEPS} steps"
        )));
    }
    let count = (window_s + step_s - 1) / step_s;
    let step_nano = step_s * 1_000_000_000;
    Ok(Steps {
        start_unix_nano: scale("end_ms", end_ms, 1_000_000)? - count * step_nano,
        step_nano,
        count: usize::try_from(count).unwrap_or(0),
    })
}

/// `GET /api/weft/graph?window=SECONDS` (default 300, ending now) or
/// `?start_ms=&end_ms=`: nodes and edges with requests, errors, `rps`,
/// `error_rate` (fraction), `p50_ms`/`p95_ms`/`p99_ms` and, per edge,
/// `mtls`.
async fn service_graph(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Graph>, ApiError> {
    let params = Params::new(params);
    let (start_ms, end_ms) = window_ms(&params)?;
    let (start, end) = (
        scale("start_ms", start_ms, 1_000_000)?,
        scale("end_ms", end_ms, 1_000_000)?,
    );
    let series = store
        .series_window(graph::REQUESTS_METRIC, start, end)
        .await?;
    let durations = store.points_window(DURATION_METRIC, start, end).await?;
    Ok(Json(graph::build(&series, &durations, start_ms, end_ms)))
}

/// `GET /api/weft/red?service=APP` (or `&workload=NAME`, optional
/// `&namespace=NS`, `&version=V`) `&window=SECONDS&step=SECONDS` (or
/// `start_ms`/`end_ms`): RED of the inbound traffic (destination reporter)
/// of an app (`destination_app`, or a service name as in `/split`) or of a
/// workload.
///
/// ```json
/// {"service": "stock-api", "workload": null, "start_ms": 0, "end_ms": 300000,
///  "step_s": 15,
///  "summary": {"requests": 900, "errors": 9, "rps": 3.0, "error_rate": 0.01,
///              "p50_ms": 12.5, "p95_ms": 40.1, "p99_ms": 88.0},
///  "points": [{"t_ms": 15000, "requests": 45, "errors": 0, "rps": 3.0,
///              "error_rate": 0.0, "p50_ms": 12.1, "p95_ms": 38.0, "p99_ms": 80.2}]}
/// ```
/// Each point covers the step ending at `t_ms`; `error_rate` and the
/// quantiles are `null` in a step without requests.
#[derive(Serialize)]
struct RedSeries {
    service: Option<String>,
    workload: Option<String>,
    start_ms: i64,
    end_ms: i64,
    step_s: i64,
    summary: Red,
    points: Vec<RedPoint>,
}

#[derive(Serialize)]
struct RedPoint {
    t_ms: i64,
    #[serde(flatten)]
    red: Red,
}

async fn red_series(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<RedSeries>, ApiError> {
    let params = Params::new(params);
    let service = params.get("service").map(str::to_owned);
    let workload = params.get("workload").map(str::to_owned);
    if service.is_none() == workload.is_none() {
        return Err(ApiError::BadRequest(
            "give either service or workload".to_owned(),
        ));
    }
    let namespace = params.get("namespace");
    let version = params.get("version");
    let (start_ms, end_ms) = window_ms(&params)?;
    let steps = steps(&params, start_ms, end_ms)?;
    let (start, end) = (steps.start_unix_nano, scale("end_ms", end_ms, 1_000_000)?);
    let selected = |labels: &crate::store::Labels| {
        let get = |key: &str| graph::label(labels, key);
        get("reporter") == "destination"
            && match (&service, &workload) {
                (Some(service), _) => {
                    get("destination_app") == service || red::is_service(labels, service)
                }
                (None, Some(workload)) => get("destination_workload") == workload,
                (None, None) => false,
            }
            && namespace.is_none_or(|ns| get("destination_workload_namespace") == ns)
            && version.is_none_or(|v| get("destination_version") == v)
    };
    let series = store
        .series_window(graph::REQUESTS_METRIC, start, end)
        .await?;
    let durations = store.points_window(DURATION_METRIC, start, end).await?;
    let requests: Vec<_> = series.iter().filter(|s| selected(&s.labels)).collect();
    let durations: Vec<_> = durations.iter().filter(|s| selected(&s.labels)).collect();
    let (total, per_step) = red::traffic(&requests, &durations, steps);
    let step_s = steps.step_nano / 1_000_000_000;
    Ok(Json(RedSeries {
        service,
        workload,
        start_ms: start / 1_000_000,
        end_ms,
        step_s,
        summary: total.red((end - start) as f64 / 1e9),
        points: per_step
            .iter()
            .enumerate()
            .map(|(index, traffic)| RedPoint {
                t_ms: steps.end_ms(index),
                red: traffic.red(step_s as f64),
            })
            .collect(),
    }))
}

/// `GET /api/weft/split?service=FQDN|SHORT|APP&window=SECONDS[&step=SECONDS]`
/// (or `start_ms`/`end_ms`): how a service's traffic splits across its
/// versions, configured against observed.
///
/// ```json
/// {"service": "stock-api", "start_ms": 0, "end_ms": 300000, "step_s": 30,
///  "routes": [{"virtual_service": "default/stock-api", "route": "",
///              "destinations": [{"version": "v1", "subset": "v1", "weight_percent": 90.0},
///                               {"version": "v2", "subset": "v2", "weight_percent": 10.0}]}],
///  "versions": [{"version": "v1", "configured_percent": 90.0, "observed_percent": 89.7,
///                "requests": 897, "errors": 2, "rps": 2.99, "error_rate": 0.0022,
///                "p50_ms": 11.0, "p95_ms": 23.0, "p99_ms": 48.0}, ...],
///  "timeline": [{"t_ms": 30000, "requests": 90, "shares": {"v1": 88.9, "v2": 11.1}}],
///  "verdict": {"status": "ok", "canary": "v2", "stable": "v1", "min_requests": 50,
///              "errors": {"rule": "...", "canary_error_rate": 0.01, "stable_error_rate": 0.002,
///                         "z": 1.1, "p_value": 0.13, "alpha": 0.05, "significant": false},
///              "latency": {"rule": "...", "canary_p99_ms": 60.0, "stable_p99_ms": 48.0,
///                          "threshold_ms": 57.6, "canary_p99_bucket": [50.0, 100.0],
///                          "stable_p99_bucket": [25.0, 50.0], "worse": false},
///              "summary": ["..."]}}
/// ```
///
/// - `routes`: the latest `weft_route_weight` gauges (pushed by every proxy
///   for each weighted route destination) of the service in the window, per
///   VirtualService route.
/// - `configured_percent`: the version's weight in the only route, or the
///   mean of its weights over several routes; `null` when no route names it.
/// - `observed_percent`: the version's share of the service's requests
///   (destination-reported `istio_requests_total`, by
///   `destination_version`); `null` without requests. `timeline` holds the
///   same shares per step (steps without requests have empty `shares`).
/// - `verdict`: the canary (lowest configured weight, else fewest requests)
///   against the stable version (highest weight, else most requests); each
///   test states its rule in `rule`.
#[derive(Serialize)]
struct Split {
    service: String,
    start_ms: i64,
    end_ms: i64,
    step_s: i64,
    routes: Vec<Route>,
    versions: Vec<VersionSplit>,
    timeline: Vec<SharePoint>,
    verdict: Verdict,
}

#[derive(Serialize)]
struct VersionSplit {
    version: String,
    configured_percent: Option<f64>,
    observed_percent: Option<f64>,
    #[serde(flatten)]
    red: Red,
}

#[derive(Serialize)]
struct SharePoint {
    t_ms: i64,
    requests: u64,
    shares: std::collections::BTreeMap<String, f64>,
}

async fn split(
    State(store): State<Arc<dyn Store>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Split>, ApiError> {
    let params = Params::new(params);
    let service = params
        .get("service")
        .ok_or_else(|| ApiError::BadRequest("service is required".to_owned()))?
        .to_owned();
    let (start_ms, end_ms) = window_ms(&params)?;
    let steps = steps(&params, start_ms, end_ms)?;
    let (start, end) = (steps.start_unix_nano, scale("end_ms", end_ms, 1_000_000)?);
    // By service name, or by app: a destination_service that is only an
    // address (a client that called an IP) still names its app.
    let selected = |labels: &crate::store::Labels| {
        graph::label(labels, "reporter") == "destination"
            && (red::is_service(labels, &service)
                || graph::label(labels, "destination_app") == service)
    };
    let weights = store
        .series_window(red::ROUTE_WEIGHT_METRIC, start, end)
        .await?;
    let series = store
        .series_window(graph::REQUESTS_METRIC, start, end)
        .await?;
    let durations = store.points_window(DURATION_METRIC, start, end).await?;

    let routes = red::routes(&weights, &service);
    let configured = red::overall_weights(&routes);
    // version → (requests series, duration series)
    let mut by_version: std::collections::BTreeMap<String, (Vec<_>, Vec<_>)> = configured
        .keys()
        .map(|v| (v.clone(), Default::default()))
        .collect();
    for one in series.iter().filter(|s| selected(&s.labels)) {
        by_version
            .entry(red::destination_version(&one.labels))
            .or_default()
            .0
            .push(one);
    }
    for one in durations.iter().filter(|s| selected(&s.labels)) {
        by_version
            .entry(red::destination_version(&one.labels))
            .or_default()
            .1
            .push(one);
    }
    let seconds = (end - start) as f64 / 1e9;
    let step_s = steps.step_nano / 1_000_000_000;
    let mut traffic: std::collections::BTreeMap<String, (Traffic, Option<f64>)> =
        Default::default();
    let mut timeline: Vec<SharePoint> = (0..steps.count)
        .map(|index| SharePoint {
            t_ms: steps.end_ms(index),
            requests: 0,
            shares: Default::default(),
        })
        .collect();
    let mut step_requests: Vec<std::collections::BTreeMap<String, f64>> =
        vec![Default::default(); steps.count];
    for (version, (requests, durations)) in &by_version {
        let (total, per_step) = red::traffic(requests, durations, steps);
        for (index, step) in per_step.iter().enumerate() {
            if step.requests > 0.0
                && let Some(slot) = step_requests.get_mut(index)
            {
                slot.insert(version.clone(), step.requests);
            }
        }
        traffic.insert(version.clone(), (total, configured.get(version).copied()));
    }
    for (point, requests) in timeline.iter_mut().zip(&step_requests) {
        let total: f64 = requests.values().sum();
        point.requests = total.round().max(0.0) as u64;
        if total > 0.0 {
            point.shares = requests
                .iter()
                .map(|(version, count)| (version.clone(), count / total * 100.0))
                .collect();
        }
    }
    let all_requests: f64 = traffic.values().map(|(t, _)| t.requests).sum();
    let versions = traffic
        .iter()
        .map(|(version, (total, weight))| VersionSplit {
            version: version.clone(),
            configured_percent: *weight,
            observed_percent: (all_requests > 0.0).then(|| total.requests / all_requests * 100.0),
            red: total.red(seconds),
        })
        .collect();
    Ok(Json(Split {
        service,
        start_ms: start / 1_000_000,
        end_ms,
        step_s,
        routes,
        versions,
        timeline,
        verdict: red::verdict(&traffic),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn search_reads_tags_durations_order_and_page() {
        let found = search(&params(&[
            ("service", "web"),
            ("tag", "http.response.status_code=503"),
            ("tag", " weft.subset = v2 "),
            ("tag", "note=a=b"),
            ("min_duration_us", "1500"),
            ("max_duration_us", "20000"),
            ("order", "longest"),
            ("limit", "50"),
            ("offset", "100"),
            ("start_us", "1000"),
            ("end_us", "2000"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        let query = found;
        assert_eq!(query.service.as_deref(), Some("web"));
        assert_eq!(
            query.tags,
            [
                ("http.response.status_code".to_owned(), "503".to_owned()),
                ("weft.subset".to_owned(), "v2".to_owned()),
                ("note".to_owned(), "a=b".to_owned()),
            ]
        );
        assert_eq!((query.limit, query.offset), (50, 100));
        assert_eq!(
            (query.start_unix_nano, query.end_unix_nano),
            (1_000_000, 2_000_000)
        );
        assert_eq!(query.min_trace_duration_nano, Some(1_500_000));
        assert_eq!(query.max_trace_duration_nano, Some(20_000_000));
        assert_eq!(query.min_duration_nano, None);
        assert_eq!(query.order, TraceOrder::Longest);
    }

    #[test]
    fn search_rejects_bad_input() {
        for bad in [
            vec![("tag", "novalue")],
            vec![("tag", "=v")],
            vec![("order", "random")],
            vec![("limit", "0")],
            vec![("limit", "1001")],
            vec![("min_duration_us", "10"), ("max_duration_us", "5")],
            vec![("start_us", "3000"), ("end_us", "2000")],
            vec![("min_duration_us", "ten")],
        ] {
            assert!(
                matches!(search(&params(&bad)), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
