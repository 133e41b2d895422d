//! The native API's RED views: graph latencies and mTLS, `/api/weft/red`,
//! `/api/weft/split` (configured weights, observed shares, verdict) and the
//! apps of `/api/weft/services`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;
mod metrics_support;

use common::TestCollector;
use metrics_support::{CounterSeries, Dataset, counters, export, gauges, labels};
use prost::Message;
use serde_json::json;

async fn push(collector: &TestCollector, request: &impl Message) {
    let (status, _, body) = collector
        .post_otlp(
            "/v1/metrics",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn route_weights(at: i64, weights: &[(&str, f64)]) -> Vec<(metrics_support::Labels, i64, f64)> {
    weights
        .iter()
        .map(|(version, weight)| {
            (
                labels(&[
                    ("virtual_service", "default/stock-api"),
                    ("route", ""),
                    ("destination_service", "stock-api.default.svc.cluster.local"),
                    ("subset", version),
                    ("destination_version", version),
                ]),
                at,
                *weight,
            )
        })
        .collect()
}

/// The data set's window (600 s, 1200 s]: stock-api v1 answers 400 requests
/// (all 200), v2 40 × 200 and 19.75 × 503 (its 503 counter reset at 615 s).
const WINDOW: &str = "start_ms=600000&end_ms=1200000";

#[tokio::test]
async fn split_red_and_graph_latency() {
    let collector = TestCollector::start().await;
    push(&collector, &Dataset::new().export()).await;
    // Older weights, then the weights in force (the newest point wins).
    push(
        &collector,
        &export(
            "web",
            vec![gauges(
                "weft_route_weight",
                &route_weights(700, &[("v1", 50.0), ("v2", 50.0)]),
            )],
        ),
    )
    .await;
    push(
        &collector,
        &export(
            "web",
            vec![gauges(
                "weft_route_weight",
                &route_weights(1100, &[("v1", 90.0), ("v2", 10.0)]),
            )],
        ),
    )
    .await;

    // The graph: quantiles from the histograms, mTLS from the destination.
    let graph = collector
        .get_json(&format!("/api/weft/graph?{WINDOW}"), 200)
        .await;
    let edges = graph["edges"].as_array().unwrap();
    let to_v2 = edges
        .iter()
        .find(|edge| edge["target"] == "unknown/stock-api-v2")
        .unwrap_or_else(|| panic!("{graph:#}"));
    assert_eq!(to_v2["mtls"], true);
    assert_eq!(to_v2["requests"], 60);
    assert_eq!(to_v2["errors"], 20);
    let p99 = to_v2["p99_ms"].as_f64().unwrap();
    assert!((100.0..=250.0).contains(&p99), "{to_v2}");
    assert!(to_v2["p50_ms"].as_f64().unwrap() <= p99);
    let v2_node = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == "unknown/stock-api-v2")
        .unwrap();
    assert_eq!(v2_node["p99_ms"], to_v2["p99_ms"]);
    assert_eq!(v2_node["rps"], 0.1);

    // RED of stock-api's inbound traffic in 10 steps of a minute.
    let red = collector
        .get_json(
            &format!("/api/weft/red?service=stock-api&{WINDOW}&step=60"),
            200,
        )
        .await;
    assert_eq!(red["step_s"], 60);
    assert_eq!(red["summary"]["requests"], 460);
    assert_eq!(red["summary"]["errors"], 20);
    let points = red["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    assert_eq!(points[0]["t_ms"], 660_000);
    assert_eq!(points[9]["t_ms"], 1_200_000);
    // First step: v1 40, v2 4 × 200 and 0.25 + 3 × 0.5 = 1.75 × 503.
    assert_eq!(points[0]["requests"], 46);
    assert_eq!(points[0]["errors"], 2);
    let total: u64 = points.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert!((459..=461).contains(&total));
    let red_v1 = collector
        .get_json(
            &format!("/api/weft/red?workload=stock-api-v1&{WINDOW}"),
            200,
        )
        .await;
    assert_eq!(red_v1["summary"]["requests"], 400);
    assert_eq!(red_v1["summary"]["error_rate"], 0.0);
    collector.get_json("/api/weft/red?window=60", 400).await;

    // The split, by short and by full service name.
    for service in ["stock-api", "stock-api.default.svc.cluster.local"] {
        let split = collector
            .get_json(
                &format!("/api/weft/split?service={service}&{WINDOW}&step=60"),
                200,
            )
            .await;
        assert_eq!(split["service"], service);
        assert_eq!(
            split["routes"],
            json!([{"virtual_service": "default/stock-api", "route": "", "destinations": [
                {"version": "v1", "subset": "v1", "weight_percent": 90.0},
                {"version": "v2", "subset": "v2", "weight_percent": 10.0},
            ]}])
        );
        let versions = split["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0]["version"], "v1");
        assert_eq!(versions[0]["configured_percent"], 90.0);
        let observed = versions[0]["observed_percent"].as_f64().unwrap();
        assert!(
            (observed - 400.0 / 459.75 * 100.0).abs() < 1e-9,
            "{observed}"
        );
        assert_eq!(versions[1]["requests"], 60);
        assert!((versions[1]["error_rate"].as_f64().unwrap() - 20.0 / 60.0).abs() < 1e-9);
        let timeline = split["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), 10);
        let share: f64 = timeline[0]["shares"]["v1"].as_f64().unwrap();
        assert!((share - 40.0 / 45.75 * 100.0).abs() < 1e-9);

        let verdict = &split["verdict"];
        assert_eq!(verdict["canary"], "v2");
        assert_eq!(verdict["stable"], "v1");
        assert_eq!(verdict["status"], "canary_worse", "{verdict:#}");
        assert_eq!(verdict["errors"]["significant"], true);
        assert!(verdict["errors"]["z"].as_f64().unwrap() > 5.0);
        assert!(
            verdict["errors"]["rule"]
                .as_str()
                .unwrap()
                .contains("z-test")
        );
        assert_eq!(verdict["latency"]["worse"], true, "{verdict:#}");
        assert!(verdict["latency"]["rule"].as_str().unwrap().contains("1.2"));
        assert_eq!(
            verdict["latency"]["canary_p99_bucket"],
            json!([100.0, 250.0])
        );
    }

    // An unknown service: no versions, no verdict to give.
    let none = collector
        .get_json(&format!("/api/weft/split?service=nothing&{WINDOW}"), 200)
        .await;
    assert_eq!(none["versions"], json!([]));
    assert_eq!(none["verdict"]["status"], "no_canary");
    collector.get_json("/api/weft/split?window=60", 400).await;
    collector.stop().await;
}

#[tokio::test]
async fn services_list_apps_from_metrics() {
    let collector = TestCollector::start().await;
    let now = (common::now_nanos() / 1_000_000_000) as i64;
    let series = |version: &str| CounterSeries {
        labels: labels(&[
            ("reporter", "destination"),
            ("destination_app", "stock-api"),
            ("destination_version", version),
            ("destination_workload", &format!("stock-api-{version}")),
            ("destination_workload_namespace", "shop"),
            ("destination_service", "stock-api.shop.svc.cluster.local"),
            ("response_code", "200"),
        ]),
        samples: vec![(now - 10, 5.0)],
    };
    push(
        &collector,
        &export(
            "web",
            vec![counters(
                "istio_requests_total",
                &[series("v1"), series("v2")],
            )],
        ),
    )
    .await;
    let services = collector.get_json("/api/weft/services", 200).await;
    assert_eq!(services["services"], json!([]));
    assert_eq!(
        services["apps"],
        json!([{"app": "stock-api", "namespace": "shop", "versions": ["v1", "v2"],
                "workloads": ["stock-api-v1", "stock-api-v2"],
                "services": ["stock-api.shop.svc.cluster.local"]}])
    );
    collector.stop().await;
}
