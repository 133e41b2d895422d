//! Istio request counters → `/api/weft/graph`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{RequestCount, TestCollector, istio_labels, requests_total};
use prost::Message;
use serde_json::{Value, json};

const T0_MS: u64 = 1_700_000_000_000;

fn at(offset_ms: i64) -> u64 {
    (T0_MS as i64 + offset_ms) as u64 * 1_000_000
}

fn with<'a>(
    mut labels: Vec<(&'a str, &'a str)>,
    key: &'a str,
    value: &'a str,
) -> Vec<(&'a str, &'a str)> {
    for label in &mut labels {
        if label.0 == key {
            label.1 = value;
        }
    }
    labels
}

fn point<'a>(
    labels: &[(&'a str, &'a str)],
    start_ms: i64,
    time_ms: i64,
    value: i64,
) -> RequestCount<'a> {
    RequestCount {
        labels: labels.to_vec(),
        start: at(start_ms),
        time: at(time_ms),
        value,
    }
}

#[tokio::test]
async fn graph_from_cumulative_counters() {
    let collector = TestCollector::start().await;
    let web = ("web", "web", "v1");
    let stock = ("stock-api-v1", "stock-api", "v1");
    let outside = ("unknown", "unknown", "unknown");
    // A: from outside the mesh into web.
    let a = istio_labels("destination", outside, web, "200");
    // B: web → stock-api, reported by both sides (the source side must be ignored).
    let b_destination = istio_labels("destination", web, stock, "200");
    let b_source = istio_labels("source", web, stock, "200");
    // C: web → stock-api 503s, the destination proxy restarted inside the window.
    let c = istio_labels("destination", web, stock, "503");
    // D: web → a service without a sidecar: only the source reports.
    let d = with(
        with(
            istio_labels("source", web, outside, "200"),
            "destination_service",
            "httpbin.org",
        ),
        "destination_workload_namespace",
        "unknown",
    );
    // F: an edge with no point in the window.
    let f = istio_labels("destination", web, ("old", "old", "v0"), "200");
    let old = -100_000;

    let first = requests_total(vec![
        point(&a, old, -5_000, 10),
        point(&a, old, 10_000, 15),
        point(&b_destination, old, -10_000, 90),
        point(&b_destination, old, 10_000, 100),
        point(&b_source, old, -10_000, 40),
        point(&b_source, old, 10_000, 50),
        point(&c, old, -2_000, 3),
        point(&d, old, 10_000, 7),
        point(&f, old, -50_000, 1),
    ]);
    let (status, _, body) = collector
        .post_otlp(
            "/v1/metrics",
            "application/x-protobuf",
            false,
            first.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let second = requests_total(vec![
        point(&a, old, 30_000, 25),
        point(&a, old, 70_000, 1000),          // after the window
        point(&b_destination, old, 20_000, 5), // counter reset: value dropped
        point(&b_destination, old, 40_000, 8),
        point(&b_source, old, 40_000, 70),
        point(&c, 15_000, 20_000, 4), // new start time inside the window
        point(&c, 15_000, 50_000, 6),
        point(&d, old, 40_000, 9),
    ]);
    let (status, content_type, body) = collector
        .post_otlp(
            "/v1/metrics",
            "application/json",
            true,
            serde_json::to_vec(&second).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, "application/json");

    let graph = collector
        .get_json(
            &format!("/api/weft/graph?start_ms={T0_MS}&end_ms={}", T0_MS + 60_000),
            200,
        )
        .await;
    assert_eq!(graph["start_ms"], T0_MS);
    assert_eq!(graph["end_ms"], T0_MS + 60_000);
    assert_eq!(
        graph["edges"],
        json!([
            {"source": "default/web", "target": "default/stock-api-v1", "requests": 24, "errors": 6, "rps": 0.4, "error_rate": 0.25, "p50_ms": null, "p95_ms": null, "p99_ms": null, "mtls": false},
            {"source": "default/web", "target": "httpbin.org", "requests": 9, "errors": 0, "rps": 0.15, "error_rate": 0.0, "p50_ms": null, "p95_ms": null, "p99_ms": null, "mtls": false},
            {"source": "unknown", "target": "default/web", "requests": 15, "errors": 0, "rps": 0.25, "error_rate": 0.0, "p50_ms": null, "p95_ms": null, "p99_ms": null, "mtls": false},
        ]),
        "{graph:#}"
    );
    assert_eq!(
        graph["nodes"],
        json!([
            {"id": "default/stock-api-v1", "workload": "stock-api-v1", "namespace": "default", "app": "stock-api", "version": "v1", "requests": 24, "errors": 6, "rps": 0.4, "error_rate": 0.25, "p50_ms": null, "p95_ms": null, "p99_ms": null},
            {"id": "default/web", "workload": "web", "namespace": "default", "app": "web", "version": "v1", "requests": 15, "errors": 0, "rps": 0.25, "error_rate": 0.0, "p50_ms": null, "p95_ms": null, "p99_ms": null},
            {"id": "httpbin.org", "workload": "httpbin.org", "namespace": "unknown", "app": "unknown", "version": "unknown", "requests": 9, "errors": 0, "rps": 0.15, "error_rate": 0.0, "p50_ms": null, "p95_ms": null, "p99_ms": null},
            {"id": "unknown", "workload": "unknown", "namespace": "unknown", "app": "unknown", "version": "unknown", "requests": 0, "errors": 0, "rps": 0.0, "error_rate": 0.0, "p50_ms": null, "p95_ms": null, "p99_ms": null},
        ]),
        "{graph:#}"
    );

    // A window after the last point is empty; a window holding only the
    // reset counts the new values from 0.
    let empty = collector
        .get_json(
            &format!(
                "/api/weft/graph?start_ms={}&end_ms={}",
                T0_MS + 80_000,
                T0_MS + 90_000
            ),
            200,
        )
        .await;
    assert_eq!(empty["edges"], json!([]));
    assert_eq!(empty["nodes"], json!([]));
    let late = collector
        .get_json(
            &format!(
                "/api/weft/graph?start_ms={}&end_ms={}",
                T0_MS + 15_000,
                T0_MS + 45_000
            ),
            200,
        )
        .await;
    // B: 5 (reset) + 3; C: 4 (new start) → 12 requests, 4 errors.
    assert_eq!(late["edges"][0]["requests"], 12, "{late:#}");
    assert_eq!(late["edges"][0]["errors"], 4, "{late:#}");

    // The dashboard's default: the last 5 minutes (nothing there).
    let recent = collector.get_json("/api/weft/graph", 200).await;
    assert_eq!(recent["edges"], json!([]));
    assert_eq!(
        recent["end_ms"].as_i64().unwrap() - recent["start_ms"].as_i64().unwrap(),
        300_000
    );
    collector.stop().await;
}

#[tokio::test]
async fn histograms_and_bad_metrics() {
    let collector = TestCollector::start().await;
    let histogram = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{
        "name": "istio_request_duration_milliseconds", "unit": "ms",
        "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "attributes": [{"key": "reporter", "value": {"stringValue": "destination"}}],
            "startTimeUnixNano": "1700000000000000000", "timeUnixNano": "1700000010000000000",
            "count": "3", "sum": 12.5, "bucketCounts": ["1", 2, "0"], "explicitBounds": [5, 10]
        }]}
    }]}]}]});
    let (status, _, body) = collector
        .post_otlp(
            "/v1/metrics",
            "application/json",
            false,
            histogram.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // The spec's example.
    let example = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/specs/opentelemetry-proto/examples/metrics.json"
    ))
    .or_else(|_| std::fs::read("/work/shared/specs/opentelemetry-proto/examples/metrics.json"))
    .expect("the OTLP example metrics.json");
    let (status, _, body) = collector
        .post_otlp("/v1/metrics", "application/json", false, example)
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // A malformed sum must not be dropped silently, and a point without a
    // value is rejected.
    for bad in [
        json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "c", "sum": {"dataPoints": "nope"}}]}]}]}),
        json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "c", "sum": {"aggregationTemporality": 2, "dataPoints": [{"timeUnixNano": "5"}]}}]}]}]}),
        json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "c", "gauge": {"dataPoints": [{"asInt": "x", "timeUnixNano": "5"}]}}]}]}]}),
        json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "h", "histogram": {"dataPoints": [{"timeUnixNano": "5", "bucketCounts": [1, 2], "explicitBounds": [1, 2]}]}}]}]}]}),
    ] {
        let (status, _, body) = collector
            .post_otlp(
                "/v1/metrics",
                "application/json",
                false,
                bad.to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
        let status_body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status_body["code"], 3);
    }
    collector.stop().await;
}
