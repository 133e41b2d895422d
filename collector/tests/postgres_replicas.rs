//! Two collectors on one PostgreSQL database (stateless replicas): started
//! together on a fresh schema (the migrations run once), each ingesting part
//! of the data, both answering every query API identically.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod postgres_support;

use common::{TestCollector, demo_trace, now_nanos};
use prost::Message;
use serde_json::{Value, json};
use weft_collector::Config;

#[tokio::test]
async fn two_collectors_serve_the_same_results() {
    postgres_support::with_schema("weft_replicas", replicas).await;
}

async fn replicas(url: String) {
    let any = "127.0.0.1:0".parse().unwrap();
    let config = Config {
        db: url,
        http: any,
        otlp_grpc: any,
        otlp_http: any,
        zipkin: Some(any),
        ..Config::default()
    };
    // Both start at once on the empty schema: migrations are serialized.
    let (a, b) = tokio::join!(
        TestCollector::start_config(tempfile::tempdir().unwrap(), config.clone()),
        TestCollector::start_config(tempfile::tempdir().unwrap(), config),
    );
    let start = now_nanos() - 10_000_000_000;
    // OTLP into A, the same trace retried into B, Zipkin into B.
    for collector in [&a, &b] {
        let (status, _, _) = collector
            .post_otlp(
                "/v1/traces",
                "application/x-protobuf",
                false,
                demo_trace([5; 16], start).encode_to_vec(),
            )
            .await;
        assert_eq!(status, 200);
    }
    let zipkin = json!([{
        "traceId": "00000000000000ab", "id": "00000000000000cd", "name": "get",
        "kind": "SERVER", "timestamp": start / 1000, "duration": 10,
        "localEndpoint": {"serviceName": "legacy"}
    }]);
    let posted = b
        .client
        .post(b.zipkin("/api/v2/spans"))
        .json(&zipkin)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 202);

    let trace = hex::encode([5u8; 16]);
    let end_ms = now_nanos() / 1_000_000;
    let paths = [
        "/api/services".to_owned(),
        "/api/services/web/operations".to_owned(),
        "/api/operations?service=web".to_owned(),
        format!("/api/traces/{trace}"),
        "/api/traces?service=web".to_owned(),
        "/api/traces?service=legacy".to_owned(),
        format!("/api/dependencies?endTs={end_ms}&lookback=3600000"),
        "/api/v3/services".to_owned(),
        format!("/api/v3/traces/{trace}"),
        "/api/v2/services".to_owned(),
        "/api/v2/spans?serviceName=web".to_owned(),
        format!("/api/v2/trace/{trace}"),
        "/api/v2/trace/00000000000000ab".to_owned(),
        "/api/v2/traces?serviceName=stock-api".to_owned(),
        format!("/api/v2/dependencies?endTs={end_ms}"),
        "/api/weft/services".to_owned(),
        format!("/api/weft/traces/{trace}"),
    ];
    for path in &paths {
        let from_a = a.get_json(path, 200).await;
        let from_b = b.get_json(path, 200).await;
        assert_eq!(from_a, from_b, "GET {path}");
        assert_ne!(from_a, Value::Null, "GET {path}");
    }
    assert_eq!(
        a.get_json("/api/services", 200).await["data"],
        json!(["legacy", "stock-api", "web"])
    );
    assert_eq!(
        a.get_json(&format!("/api/traces/{trace}"), 200).await["data"][0]["spans"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the retried export is stored once"
    );
    // Both run retention on the same data without stepping on each other.
    let (ra, rb) = tokio::join!(
        a.collector.enforce_retention(),
        b.collector.enforce_retention()
    );
    assert_eq!((ra.unwrap().expired, rb.unwrap().expired), (0, 0));
    a.stop().await;
    b.stop().await;
}
