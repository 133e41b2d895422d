//! The service graph, derived from Istio's `istio_requests_total` counters
//! (not from spans, so it is exact at any sampling rate).
//!
//! Per series, the requests in a window are the increase of its cumulative
//! counter ([`increase`]). Series are grouped into edges by
//! (source workload, destination workload); an edge counts its
//! `reporter="destination"` series, or its `reporter="source"` series when
//! no destination proxy reported it (a destination without a sidecar), so
//! that no request is counted twice.
//!
//! Latency quantiles come the same way from the
//! `istio_request_duration_milliseconds` histograms ([`latency`]): the
//! bucket counts added in the window, interpolated like Prometheus'
//! `histogram_quantile`.

pub mod latency;
pub mod red;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{Labels, PointsWindow, SeriesWindow, Temporality};
use latency::{Latency, Quantiles};

/// The request counter the proxies export.
pub const REQUESTS_METRIC: &str = "istio_requests_total";

/// The id of a node outside the mesh (or not identified).
const UNKNOWN: &str = "unknown";

/// `GET /api/weft/graph` body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Graph {
    pub start_ms: i64,
    pub end_ms: i64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// A workload. `requests`/`errors` count what it received in the window
/// (its inbound edges); `rps`, `error_rate` and the latency quantiles
/// describe the same inbound traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub workload: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub requests: u64,
    pub errors: u64,
    /// Inbound requests per second over the window.
    pub rps: f64,
    /// Inbound `errors / requests`, a fraction in `0..=1` (0 without
    /// requests).
    pub error_rate: f64,
    /// Inbound latency quantiles in milliseconds (`null` without duration
    /// data in the window).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Traffic from one workload to another in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edge {
    pub source: String,
    pub target: String,
    pub requests: u64,
    pub errors: u64,
    /// Requests per second over the window.
    pub rps: f64,
    /// `errors / requests`: a fraction in `0..=1` (0 without requests).
    /// Errors are 5xx answers and requests without an answer (code 0).
    pub error_rate: f64,
    /// Latency quantiles in milliseconds over the window, from the duration
    /// histograms of the same reporter as the counts (`null` without them).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Every destination-reported request of the edge in the window came
    /// over mutual TLS (`connection_security_policy="mutual_tls"`); false
    /// when only the source reported the edge.
    pub mtls: bool,
}

/// The increase of one counter series over the window: the last value in the
/// window minus the last value before it, counting from 0 after a reset (a
/// value drop, or a start time after the previous point) and when there is
/// no earlier point. Delta series simply add up.
pub fn increase(series: &SeriesWindow) -> f64 {
    increments(series).iter().map(|(_, added)| added).sum()
}

/// What each point of a counter series added (see [`increase`]), with the
/// point's time in nanoseconds.
pub fn increments(series: &SeriesWindow) -> Vec<(i64, f64)> {
    if series.temporality == Temporality::Delta {
        return series
            .points
            .iter()
            .map(|point| (point.time_unix_nano, point.value))
            .collect();
    }
    let mut previous = series.baseline;
    let mut out = Vec::with_capacity(series.points.len());
    for point in &series.points {
        let added = match previous {
            Some(previous)
                if point.value >= previous.value
                    && point.start_unix_nano <= previous.time_unix_nano =>
            {
                point.value - previous.value
            }
            _ => point.value,
        };
        out.push((point.time_unix_nano, added));
        previous = Some(*point);
    }
    out
}

/// Builds the graph of the window `(start_ms, end_ms]` from the
/// `istio_requests_total` series of that window and the
/// `istio_request_duration_milliseconds` histograms of the same window.
pub fn build(
    series: &[SeriesWindow],
    durations: &[PointsWindow],
    start_ms: i64,
    end_ms: i64,
) -> Graph {
    #[derive(Default)]
    struct Counts {
        requests: f64,
        errors: f64,
        /// Requests not over mutual TLS.
        plaintext: f64,
        latency: Latency,
    }
    // (source id, target id) → (from destination reports, from source reports)
    let mut edges: BTreeMap<(String, String), (Option<Counts>, Option<Counts>)> = BTreeMap::new();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let by_source = |labels: &Labels| label(labels, "reporter") == "source";
    for one in series {
        let labels = &one.labels;
        let source = endpoint(labels, Side::Source);
        let target = endpoint(labels, Side::Destination);
        let requests = increase(one);
        let errors = if is_error(labels) { requests } else { 0.0 };
        let entry = edges
            .entry((source.id.clone(), target.id.clone()))
            .or_default();
        let counts = if by_source(labels) {
            &mut entry.1
        } else {
            &mut entry.0
        }
        .get_or_insert_with(Counts::default);
        counts.requests += requests;
        counts.errors += errors;
        if label(labels, "connection_security_policy") != "mutual_tls" {
            counts.plaintext += requests;
        }
        for node in [source, target] {
            merge_node(&mut nodes, node);
        }
    }
    for one in durations {
        let labels = &one.labels;
        let source = endpoint(labels, Side::Source);
        let target = endpoint(labels, Side::Destination);
        let Some(entry) = edges.get_mut(&(source.id, target.id)) else {
            continue;
        };
        let counts = if by_source(labels) {
            &mut entry.1
        } else {
            &mut entry.0
        };
        if let Some(counts) = counts {
            counts.latency.merge(&latency::increase(one));
        }
    }

    let seconds = ((end_ms - start_ms) as f64 / 1000.0).max(f64::MIN_POSITIVE);
    let mut inbound: BTreeMap<String, Latency> = BTreeMap::new();
    let mut graph_edges = Vec::with_capacity(edges.len());
    for ((source, target), (by_destination, by_source)) in edges {
        let mtls = by_destination
            .as_ref()
            .is_some_and(|counts| counts.requests > 0.0 && counts.plaintext < 0.5);
        let Some(counts) = by_destination.or(by_source) else {
            continue;
        };
        let requests = counts.requests.round().max(0.0) as u64;
        let errors = counts.errors.round().max(0.0) as u64;
        if let Some(node) = nodes.get_mut(&target) {
            node.requests += requests;
            node.errors += errors;
        }
        inbound
            .entry(target.clone())
            .or_default()
            .merge(&counts.latency);
        let quantiles = counts.latency.quantiles();
        graph_edges.push(Edge {
            source,
            target,
            requests,
            errors,
            rps: requests as f64 / seconds,
            error_rate: ratio(errors, requests),
            p50_ms: quantiles.p50,
            p95_ms: quantiles.p95,
            p99_ms: quantiles.p99,
            mtls,
        });
    }
    for node in nodes.values_mut() {
        node.rps = node.requests as f64 / seconds;
        node.error_rate = ratio(node.errors, node.requests);
        let Quantiles { p50, p95, p99 } = inbound
            .get(&node.id)
            .map(Latency::quantiles)
            .unwrap_or_default();
        (node.p50_ms, node.p95_ms, node.p99_ms) = (p50, p95, p99);
    }
    Graph {
        start_ms,
        end_ms,
        nodes: nodes.into_values().collect(),
        edges: graph_edges,
    }
}

/// `part / whole`, 0 when `whole` is 0.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

/// A label value, `"unknown"` when missing or empty.
pub(crate) fn label<'a>(labels: &'a Labels, key: &str) -> &'a str {
    labels
        .get(key)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .unwrap_or(UNKNOWN)
}

/// The node at one end of a series' edge.
///
/// A known workload is `namespace/workload`. An unknown source is the
/// `unknown` node (traffic from outside the mesh). An unknown destination
/// workload is named by its `destination_service` when known (a service
/// without a sidecar), else `unknown`.
fn endpoint(labels: &Labels, side: Side) -> Node {
    let prefix = match side {
        Side::Source => "source",
        Side::Destination => "destination",
    };
    let get = |name: &str| label(labels, &format!("{prefix}_{name}")).to_owned();
    let workload = get("workload");
    let (id, workload, namespace) = if workload != UNKNOWN {
        let namespace = get("workload_namespace");
        (format!("{namespace}/{workload}"), workload, namespace)
    } else if let Side::Destination = side
        && label(labels, "destination_service") != UNKNOWN
    {
        let service = label(labels, "destination_service").to_owned();
        let namespace = label(labels, "destination_service_namespace").to_owned();
        (service.clone(), service, namespace)
    } else {
        (UNKNOWN.to_owned(), UNKNOWN.to_owned(), UNKNOWN.to_owned())
    };
    Node {
        id,
        workload,
        namespace,
        app: get("app"),
        version: get("version"),
        requests: 0,
        errors: 0,
        rps: 0.0,
        error_rate: 0.0,
        p50_ms: None,
        p95_ms: None,
        p99_ms: None,
    }
}

/// Adds a node, filling in app/version that an earlier series left unknown.
fn merge_node(nodes: &mut BTreeMap<String, Node>, node: Node) {
    match nodes.get_mut(&node.id) {
        None => {
            nodes.insert(node.id.clone(), node);
        }
        Some(existing) => {
            if existing.app == UNKNOWN {
                existing.app = node.app;
            }
            if existing.version == UNKNOWN {
                existing.version = node.version;
            }
        }
    }
}

/// A 5xx answer, or `0` (no response: connection failure, reset).
pub(crate) fn is_error(labels: &Labels) -> bool {
    match label(labels, "response_code").parse::<u16>() {
        Ok(code) => code == 0 || code >= 500,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
