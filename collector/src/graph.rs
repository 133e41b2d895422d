//! The service graph, derived from Istio's `istio_requests_total` counters
//! (not from spans, so it is exact at any sampling rate).
//!
//! Per series, the requests in a window are the increase of its cumulative
//! counter ([`increase`]). Series are grouped into edges by
//! (source workload, destination workload); an edge counts its
//! `reporter="destination"` series, or its `reporter="source"` series when
//! no destination proxy reported it (a destination without a sidecar), so
//! that no request is counted twice.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{Labels, SeriesWindow, Temporality};

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

/// A workload. `requests`/`errors` count what it received in the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    pub workload: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    pub requests: u64,
    pub errors: u64,
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
    /// `errors / requests` (0 without requests).
    pub error_rate: f64,
}

/// The increase of one counter series over the window: the last value in the
/// window minus the last value before it, counting from 0 after a reset (a
/// value drop, or a start time after the previous point) and when there is
/// no earlier point. Delta series simply add up.
pub fn increase(series: &SeriesWindow) -> f64 {
    if series.temporality == Temporality::Delta {
        return series.points.iter().map(|point| point.value).sum();
    }
    let mut previous = series.baseline;
    let mut total = 0.0;
    for point in &series.points {
        total += match previous {
            Some(previous)
                if point.value >= previous.value
                    && point.start_unix_nano <= previous.time_unix_nano =>
            {
                point.value - previous.value
            }
            _ => point.value,
        };
        previous = Some(*point);
    }
    total
}

/// Builds the graph of the window `(start_ms, end_ms]` from the
/// `istio_requests_total` series of that window.
pub fn build(series: &[SeriesWindow], start_ms: i64, end_ms: i64) -> Graph {
    #[derive(Default)]
    struct Counts {
        requests: f64,
        errors: f64,
    }
    // (source id, target id) → (from destination reports, from source reports)
    let mut edges: BTreeMap<(String, String), (Option<Counts>, Option<Counts>)> = BTreeMap::new();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for one in series {
        let labels = &one.labels;
        let source = endpoint(labels, Side::Source);
        let target = endpoint(labels, Side::Destination);
        let requests = increase(one);
        let errors = if is_error(labels) { requests } else { 0.0 };
        let entry = edges
            .entry((source.id.clone(), target.id.clone()))
            .or_default();
        let reported = if label(labels, "reporter") == "source" {
            &mut entry.1
        } else {
            &mut entry.0
        };
        let counts = reported.get_or_insert_with(Counts::default);
        counts.requests += requests;
        counts.errors += errors;
        for node in [source, target] {
            merge_node(&mut nodes, node);
        }
    }

    let seconds = ((end_ms - start_ms) as f64 / 1000.0).max(f64::MIN_POSITIVE);
    let mut graph_edges = Vec::with_capacity(edges.len());
    for ((source, target), (by_destination, by_source)) in edges {
        let Some(counts) = by_destination.or(by_source) else {
            continue;
        };
        let requests = counts.requests.round().max(0.0) as u64;
        let errors = counts.errors.round().max(0.0) as u64;
        if let Some(node) = nodes.get_mut(&target) {
            node.requests += requests;
            node.errors += errors;
        }
        graph_edges.push(Edge {
            source,
            target,
            requests,
            errors,
            rps: requests as f64 / seconds,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
        });
    }
    Graph {
        start_ms,
        end_ms,
        nodes: nodes.into_values().collect(),
        edges: graph_edges,
    }
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

/// A label value, `"unknown"` when missing or empty.
fn label<'a>(labels: &'a Labels, key: &str) -> &'a str {
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
fn is_error(labels: &Labels) -> bool {
    match label(labels, "response_code").parse::<u16>() {
        Ok(code) => code == 0 || code >= 500,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
