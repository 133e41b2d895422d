//! The subset of Prometheus' HTTP API that Grafana's Prometheus datasource
//! (and Jaeger's SPM reader) use, over the OTLP metrics the proxies push:
//!
//! | endpoint (GET and POST, form-encoded)  | `data`                                   |
//! |----------------------------------------|------------------------------------------|
//! | `/api/v1/query`                        | `{resultType, result}` at `time` (default now) |
//! | `/api/v1/query_range`                  | `{resultType: "matrix", result}` for `start`, `end`, `step` |
//! | `/api/v1/labels`                       | label names (`match[]`, `start`, `end`, `limit`) |
//! | `/api/v1/label/{name}/values`          | values of a label (`__name__`: metric names) |
//! | `/api/v1/series`                       | label sets of the series matching `match[]` |
//! | `/api/v1/metadata`                     | `{metric: [{type, help, unit}]}`         |
//! | `/api/v1/status/buildinfo`             | version information (`features` empty: "Prometheus") |
//! | `/api/v1/query_exemplars`, `/api/v1/rules`, `/api/v1/alerts` | empty answers |
//!
//! Envelope: `{"status":"success","data":…}` or
//! `{"status":"error","errorType":…,"error":…}` with 400 `bad_data` (bad
//! parameters, PromQL outside the supported subset), 422 `execution` (an
//! evaluation error such as many-to-many matching) or 500 `internal` (the
//! store failed). Sample values are strings, timestamps float seconds.
//! How OTLP metrics map to Prometheus series is in `series.rs`; the PromQL
//! subset and its semantics in `eval.rs`.

mod eval;
pub(crate) mod functions;
mod params;
mod series;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};
use serde::Serialize;
use serde_json::{Value as Json, json};

use self::eval::{Evaluator, Node, SelectorSpec, Value};
use self::params::{Form, parse_duration};
use self::series::{METRIC_NAME, Series, format_float, served_names};
use crate::store::{Labels, MetricInfo, MetricKind, Store, StoreError, TimeRange};

/// Prometheus refuses range queries with more points per series.
const MAX_POINTS: i64 = 11_000;

/// A failed Prometheus API request.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    Execution(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let (status, kind, message) = match &self {
            Self::BadData(message) => (StatusCode::BAD_REQUEST, "bad_data", message.clone()),
            Self::Execution(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "execution",
                message.clone(),
            ),
            Self::Store(error) => {
                tracing::error!(%error, "prometheus API: store failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store failed to answer".to_owned(),
                )
            }
        };
        json_response(
            status,
            &ErrorEnvelope {
                status: "error",
                error_type: kind,
                error: message,
            },
        )
    }
}

/// `{"status":"success","data":…}`, fields in Prometheus' order.
#[derive(Serialize)]
struct Envelope<T> {
    status: &'static str,
    data: T,
}

/// `{"status":"error","errorType":…,"error":…}`.
#[derive(Serialize)]
struct ErrorEnvelope {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: String,
}

/// A query result: `{"resultType":…,"result":…}`.
#[derive(Serialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: &'static str,
    result: Json,
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "prometheus API: cannot serialize an answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn success(data: impl Serialize) -> Response {
    json_response(
        StatusCode::OK,
        &Envelope {
            status: "success",
            data,
        },
    )
}

/// The routes, each answering GET and POST.
pub fn routes() -> Router<Arc<dyn Store>> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/labels", get(labels).post(labels))
        .route(
            "/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/metadata", get(metadata).post(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo).post(buildinfo))
        .route("/api/v1/query_exemplars", get(empty_list).post(empty_list))
        .route("/api/v1/rules", get(rules).post(rules))
        .route("/api/v1/alerts", get(alerts).post(alerts))
}

fn form(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Form {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    Form::new(query.as_deref(), content_type, body)
}

fn now_ms() -> i64 {
    crate::api::now_unix_nano() / 1_000_000
}

fn reply(result: Result<impl Serialize, PromError>) -> Response {
    match result {
        Ok(data) => success(data),
        Err(error) => error.into_response(),
    }
}

// === query evaluation ===

/// A parsed and planned query.
struct Planned {
    node: Node,
    selectors: Vec<SelectorSpec>,
    /// `"vector"`, `"scalar"`, `"matrix"` or `"string"`.
    result_type: &'static str,
}

fn plan_query(form: &Form) -> Result<Planned, PromError> {
    let text = form.get("query").unwrap_or_default();
    let expr = parser::parse(text)
        .map_err(|error| PromError::BadData(format!("invalid parameter \"query\": {error}")))?;
    let result_type = match expr.value_type() {
        parser::value::ValueType::Vector => "vector",
        parser::value::ValueType::Scalar => "scalar",
        parser::value::ValueType::Matrix => "matrix",
        parser::value::ValueType::String => "string",
    };
    let mut selectors = Vec::new();
    let node = eval::plan(&expr, &mut selectors)?;
    Ok(Planned {
        node,
        selectors,
        result_type,
    })
}

/// Reads every selector's series for evaluations from `start` to `end`.
async fn read_selectors(
    store: &dyn Store,
    selectors: &[SelectorSpec],
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Vec<Series>>, PromError> {
    if selectors.is_empty() {
        return Ok(Vec::new());
    }
    let catalog = store.metric_names(None).await?;
    let mut data = Vec::with_capacity(selectors.len());
    for spec in selectors {
        let first_ms = start_ms
            .saturating_sub(spec.offset_ms)
            .saturating_sub(spec.span_ms);
        let last_ms = end_ms.saturating_sub(spec.offset_ms);
        let range = TimeRange {
            start_unix_nano: first_ms.saturating_mul(1_000_000),
            end_unix_nano: last_ms
                .saturating_add(1)
                .saturating_mul(1_000_000)
                .saturating_sub(1),
        };
        data.push(series::select(store, &catalog, &spec.matchers, range).await?);
    }
    Ok(data)
}

/// Seconds as Prometheus writes them: an integer when whole.
fn timestamp(ms: i64) -> Json {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn sample_pair(ms: i64, value: f64) -> Json {
    json!([timestamp(ms), format_float(value)])
}

fn labels_json(labels: &Labels) -> Json {
    Json::Object(
        labels
            .iter()
            .map(|(name, value)| (name.clone(), Json::String(value.clone())))
            .collect(),
    )
}

async fn query(
    State(store): State<Arc<dyn Store>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply(instant_query(store.as_ref(), &form(raw, &headers, &body)).await)
}

async fn instant_query(store: &dyn Store, form: &Form) -> Result<QueryData, PromError> {
    let t = form.time_or("time", now_ms())?;
    let planned = plan_query(form)?;
    let data = read_selectors(store, &planned.selectors, t, t).await?;
    let evaluator = Evaluator::new(&data);
    let result = match evaluator.eval(&planned.node, t)? {
        Value::Scalar(value) => sample_pair(t, value),
        Value::String(value) => json!([timestamp(t), value]),
        Value::Vector(mut samples) => {
            if planned.result_type == "vector" && !is_sorted_query(&planned.node) {
                samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
            Json::Array(
                samples
                    .iter()
                    .map(|sample| {
                        json!({"metric": labels_json(&sample.labels), "value": sample_pair(t, sample.value)})
                    })
                    .collect(),
            )
        }
        Value::Matrix(series) => Json::Array(
            series
                .iter()
                .map(|one| {
                    json!({
                        "metric": labels_json(&one.labels),
                        "values": one.samples.iter().map(|(ms, value)| sample_pair(*ms, *value)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
    };
    Ok(QueryData {
        result_type: planned.result_type,
        result,
    })
}

/// `sort()`/`sort_desc()`/`topk` order their result; others are sorted by
/// labels for a stable answer.
fn is_sorted_query(node: &Node) -> bool {
    matches!(node, Node::Call(eval::Func::Sort | eval::Func::SortDesc, _))
}

async fn query_range(
    State(store): State<Arc<dyn Store>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply(range_query(store.as_ref(), &form(raw, &headers, &body)).await)
}

async fn range_query(store: &dyn Store, form: &Form) -> Result<QueryData, PromError> {
    let start = form
        .time("start")?
        .ok_or_else(|| PromError::BadData("invalid parameter \"start\": missing".to_owned()))?;
    let end = form
        .time("end")?
        .ok_or_else(|| PromError::BadData("invalid parameter \"end\": missing".to_owned()))?;
    if end < start {
        return Err(PromError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".to_owned(),
        ));
    }
    let step_text = form
        .get("step")
        .ok_or_else(|| PromError::BadData("invalid parameter \"step\": missing".to_owned()))?;
    let step = parse_duration(step_text).ok_or_else(|| {
        PromError::BadData(format!(
            "invalid parameter \"step\": cannot parse \"{step_text}\" to a valid duration"
        ))
    })?;
    if step <= 0 {
        return Err(PromError::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not \
             accepted. Try a positive integer"
                .to_owned(),
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(PromError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the \
             query resolution (?step=XX)"
                .to_owned(),
        ));
    }
    let planned = plan_query(form)?;
    if !matches!(planned.result_type, "vector" | "scalar") {
        return Err(PromError::BadData(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            if planned.result_type == "matrix" {
                "range vector"
            } else {
                planned.result_type
            }
        )));
    }
    let data = read_selectors(store, &planned.selectors, start, end).await?;
    let evaluator = Evaluator::new(&data);
    let mut matrix: BTreeMap<Arc<Labels>, Vec<Json>> = BTreeMap::new();
    let mut t = start;
    while t <= end {
        match evaluator.eval(&planned.node, t)? {
            Value::Scalar(value) => matrix
                .entry(Arc::new(Labels::new()))
                .or_default()
                .push(sample_pair(t, value)),
            Value::Vector(samples) => {
                for sample in samples {
                    matrix
                        .entry(sample.labels)
                        .or_default()
                        .push(sample_pair(t, sample.value));
                }
            }
            _ => {
                return Err(PromError::BadData(
                    "range queries need a scalar or instant vector expression".to_owned(),
                ));
            }
        }
        t += step;
    }
    let result: Vec<Json> = matrix
        .into_iter()
        .map(|(labels, values)| json!({"metric": labels_json(&labels), "values": values}))
        .collect();
    Ok(QueryData {
        result_type: "matrix",
        result: Json::Array(result),
    })
}

// === catalog ===

/// The selectors of `match[]`.
fn match_selectors(form: &Form) -> Result<Vec<Vec<Matcher>>, PromError> {
    form.all("match[]")
        .into_iter()
        .map(|text| {
            let bad = |reason: String| {
                PromError::BadData(format!("invalid parameter \"match[]\": {reason}"))
            };
            match parser::parse(text).map_err(bad)? {
                Expr::VectorSelector(selector) => {
                    let mut selectors = Vec::new();
                    match eval::plan(&Expr::VectorSelector(selector), &mut selectors)? {
                        Node::Vector { .. } => {}
                        _ => return Err(bad("expected a series selector".to_owned())),
                    }
                    Ok(selectors
                        .pop()
                        .map(|spec| spec.matchers)
                        .unwrap_or_default())
                }
                _ => Err(bad(format!("{text:?} is not a series selector"))),
            }
        })
        .collect()
}

fn active_range(form: &Form) -> Result<Option<TimeRange>, PromError> {
    let start = form.time("start")?;
    let end = form.time("end")?;
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let start_ms = start.unwrap_or(i64::MIN / 1_000_000);
    let end_ms = end.unwrap_or(i64::MAX / 1_000_000 - 1);
    Ok(Some(TimeRange {
        start_unix_nano: start_ms.saturating_mul(1_000_000),
        end_unix_nano: end_ms
            .saturating_add(1)
            .saturating_mul(1_000_000)
            .saturating_sub(1),
    }))
}

/// The label sets of the series matching any `match[]` selector.
async fn matched_series(
    store: &dyn Store,
    selectors: &[Vec<Matcher>],
    range: Option<TimeRange>,
) -> Result<BTreeSet<Labels>, PromError> {
    let catalog = store.metric_names(None).await?;
    let mut found = BTreeSet::new();
    for matchers in selectors {
        found.extend(series::select_labels(store, &catalog, matchers, range).await?);
    }
    Ok(found)
}

fn limited(values: Vec<Json>, limit: Option<usize>) -> Json {
    match limit {
        Some(limit) => Json::Array(values.into_iter().take(limit).collect()),
        None => Json::Array(values),
    }
}

async fn labels(
    State(store): State<Arc<dyn Store>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(raw, &headers, &body);
    reply(label_names(store.as_ref(), &form).await)
}

async fn label_names(store: &dyn Store, form: &Form) -> Result<Json, PromError> {
    let range = active_range(form)?;
    let selectors = match_selectors(form)?;
    let limit = form.limit()?;
    let names: BTreeSet<String> = if selectors.is_empty() {
        let metrics = store.metric_names(range).await?;
        let mut names: BTreeSet<String> = store.label_names(range).await?.into_iter().collect();
        if !metrics.is_empty() {
            names.insert(METRIC_NAME.to_owned());
        }
        if metrics
            .iter()
            .any(|metric| metric.kind == MetricKind::Histogram)
        {
            names.insert(series::BUCKET_LABEL.to_owned());
        }
        names
    } else {
        matched_series(store, &selectors, range)
            .await?
            .into_iter()
            .flat_map(Labels::into_keys)
            .collect()
    };
    Ok(limited(
        names.into_iter().map(Json::String).collect(),
        limit,
    ))
}

async fn label_values(
    State(store): State<Arc<dyn Store>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(raw, &headers, &body);
    reply(values_of(store.as_ref(), &name, &form).await)
}

/// A valid label name: `[a-zA-Z_][a-zA-Z0-9_]*` (UTF-8 names are not
/// served).
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn values_of(store: &dyn Store, name: &str, form: &Form) -> Result<Json, PromError> {
    if !valid_label_name(name) {
        return Err(PromError::BadData(format!("invalid label name: {name:?}")));
    }
    let range = active_range(form)?;
    let selectors = match_selectors(form)?;
    let limit = form.limit()?;
    let values: BTreeSet<String> = if !selectors.is_empty() {
        matched_series(store, &selectors, range)
            .await?
            .into_iter()
            .filter_map(|mut labels| labels.remove(name))
            .collect()
    } else if name == METRIC_NAME {
        store
            .metric_names(range)
            .await?
            .iter()
            .flat_map(served_names)
            .map(|(name, _)| name)
            .collect()
    } else if name == series::BUCKET_LABEL {
        let histograms: Vec<MetricInfo> = store
            .metric_names(range)
            .await?
            .into_iter()
            .filter(|metric| metric.kind == MetricKind::Histogram)
            .collect();
        let any_bucket = vec![Matcher::new(
            promql_parser::label::MatchOp::NotEqual,
            METRIC_NAME,
            "",
        )];
        series::select_labels(store, &histograms, &any_bucket, range)
            .await?
            .into_iter()
            .filter_map(|mut labels| labels.remove(name))
            .collect()
    } else {
        store.label_values(name, range).await?.into_iter().collect()
    };
    Ok(limited(
        values.into_iter().map(Json::String).collect(),
        limit,
    ))
}

async fn series(
    State(store): State<Arc<dyn Store>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(raw, &headers, &body);
    reply(series_list(store.as_ref(), &form).await)
}

async fn series_list(store: &dyn Store, form: &Form) -> Result<Json, PromError> {
    let selectors = match_selectors(form)?;
    if selectors.is_empty() {
        return Err(PromError::BadData(
            "no match[] parameter provided".to_owned(),
        ));
    }
    let range = active_range(form)?;
    let limit = form.limit()?;
    let found = matched_series(store, &selectors, range).await?;
    Ok(limited(found.iter().map(labels_json).collect(), limit))
}

/// Help texts of the metrics weft's proxies export.
fn help(name: &str) -> &'static str {
    match name {
        "istio_requests_total" => {
            "Requests handled, by reporter and peers (Istio standard metric)."
        }
        "istio_request_duration_milliseconds" => {
            "Request duration in milliseconds (Istio standard metric)."
        }
        "istio_request_bytes" => "Request sizes in bytes (Istio standard metric).",
        "istio_response_bytes" => "Response sizes in bytes (Istio standard metric).",
        "weft_route_weight" => {
            "Configured share of a weighted route destination, in percent (weft proxy)."
        }
        _ => "",
    }
}

async fn metadata(
    State(store): State<Arc<dyn Store>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(raw, &headers, &body);
    reply(metadata_of(store.as_ref(), &form).await)
}

async fn metadata_of(store: &dyn Store, form: &Form) -> Result<Json, PromError> {
    let wanted = form.get("metric");
    let limit = form.limit()?;
    let mut result = serde_json::Map::new();
    for metric in store.metric_names(None).await? {
        if wanted.is_some_and(|wanted| wanted != metric.name) {
            continue;
        }
        if limit.is_some_and(|limit| result.len() >= limit) {
            break;
        }
        let kind = match (metric.kind, metric.monotonic) {
            (MetricKind::Sum, true) => "counter",
            (MetricKind::Sum, false) | (MetricKind::Gauge, _) => "gauge",
            (MetricKind::Histogram | MetricKind::ExponentialHistogram, _) => "histogram",
            (MetricKind::Summary, _) => "summary",
        };
        result.insert(
            metric.name.clone(),
            json!([{"type": kind, "help": help(&metric.name), "unit": metric.unit}]),
        );
    }
    Ok(Json::Object(result))
}

async fn buildinfo() -> Response {
    success(json!({
        "version": "3.0.0",
        "revision": concat!("weft-collector ", env!("CARGO_PKG_VERSION")),
        "branch": "",
        "buildUser": "weft",
        "buildDate": "",
        "goVersion": "",
        "features": {},
    }))
}

async fn empty_list() -> Response {
    success(json!([]))
}

async fn rules() -> Response {
    success(json!({"groups": []}))
}

async fn alerts() -> Response {
    success(json!({"alerts": []}))
}

#[cfg(test)]
mod tests;
