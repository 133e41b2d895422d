#![allow(clippy::unwrap_used, clippy::float_cmp)]

use super::{build, increase};
use crate::store::{Labels, NumberPoint, SeriesWindow, Temporality};

fn point(start: i64, time: i64, value: f64) -> NumberPoint {
    NumberPoint {
        time_unix_nano: time,
        start_unix_nano: start,
        value,
    }
}

fn window(baseline: Option<NumberPoint>, points: Vec<NumberPoint>) -> SeriesWindow {
    SeriesWindow {
        labels: Labels::new(),
        temporality: Temporality::Cumulative,
        baseline,
        points,
    }
}

#[test]
fn increase_of_a_growing_counter() {
    let series = window(
        Some(point(0, 10, 5.0)),
        vec![point(0, 20, 7.0), point(0, 30, 12.0)],
    );
    assert_eq!(increase(&series), 7.0);
}

#[test]
fn increase_without_earlier_point_counts_from_zero() {
    assert_eq!(
        increase(&window(None, vec![point(0, 20, 7.0), point(0, 30, 9.0)])),
        9.0
    );
}

#[test]
fn increase_across_a_reset() {
    // 5 → 8 (+3), drop to 2 (reset: +2), 6 (+4).
    let series = window(
        Some(point(0, 10, 5.0)),
        vec![point(0, 20, 8.0), point(0, 30, 2.0), point(0, 40, 6.0)],
    );
    assert_eq!(increase(&series), 9.0);
}

#[test]
fn increase_after_a_restart_without_a_drop() {
    // The counter restarted at t=15 (after the baseline) and already exceeds
    // the old value: its whole value is new.
    let series = window(Some(point(0, 10, 5.0)), vec![point(15, 20, 9.0)]);
    assert_eq!(increase(&series), 9.0);
}

#[test]
fn delta_series_add_up() {
    let mut series = window(
        Some(point(0, 10, 100.0)),
        vec![point(10, 20, 3.0), point(20, 30, 4.0)],
    );
    series.temporality = Temporality::Delta;
    assert_eq!(increase(&series), 7.0);
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[test]
fn source_reports_only_fill_gaps() {
    let edge = |reporter: &str, destination: &str, value: f64, code: &str| SeriesWindow {
        labels: labels(&[
            ("reporter", reporter),
            ("source_workload", "web"),
            ("source_workload_namespace", "shop"),
            ("destination_workload", destination),
            ("destination_workload_namespace", "shop"),
            ("response_code", code),
        ]),
        ..window(None, vec![point(0, 5, value)])
    };
    let graph = build(
        &[
            edge("destination", "api", 10.0, "200"),
            edge("source", "api", 11.0, "200"),
            edge("source", "db", 4.0, "0"),
            edge("source", "db", 6.0, "404"),
        ],
        &[],
        0,
        2000,
    );
    let summary: Vec<_> = graph
        .edges
        .iter()
        .map(|edge| (edge.target.as_str(), edge.requests, edge.errors, edge.rps))
        .collect();
    assert_eq!(
        summary,
        vec![("shop/api", 10, 0, 5.0), ("shop/db", 10, 4, 5.0)]
    );
    assert_eq!(graph.edges[1].error_rate, 0.4);
    let ids: Vec<_> = graph.nodes.iter().map(|node| node.id.as_str()).collect();
    assert_eq!(ids, vec!["shop/api", "shop/db", "shop/web"]);
    assert_eq!(graph.nodes[2].app, "unknown");
    assert_eq!(graph.nodes[1].requests, 10);
}
