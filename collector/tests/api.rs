//! The query listener: Jaeger v1 error shapes and search, native errors,
//! health, the dashboard fallback, and clean restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestCollector, demo_trace, now_nanos, span, trace_request};
use prost::Message;
use serde_json::json;

async fn post(collector: &TestCollector, request: &impl Message) {
    let (status, _, body) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn jaeger_errors_and_ids() {
    let collector = TestCollector::start().await;
    let not_found = collector
        .get_json("/api/traces/0123456789abcdef0123456789abcdef", 404)
        .await;
    assert_eq!(not_found["data"], json!(null));
    assert_eq!(not_found["errors"][0]["code"], 404);
    let bad = collector.get_json("/api/traces/not-hex", 400).await;
    assert_eq!(bad["errors"][0]["code"], 400);
    collector
        .get_json(&format!("/api/traces/{}", "0".repeat(32)), 400)
        .await;
    collector
        .get_json(&format!("/api/traces/{}", "a".repeat(33)), 400)
        .await;

    // A 64-bit id (Zipkin/B3 style) is found by its 16-hex spelling too.
    let mut short = [0u8; 16];
    short[8..].copy_from_slice(&[0x42; 8]);
    post(&collector, &demo_trace(short, now_nanos())).await;
    let trace = collector
        .get_json("/api/traces/4242424242424242", 200)
        .await;
    assert_eq!(trace["data"][0]["traceID"], "4242424242424242");
    assert_eq!(trace["data"][0]["spans"][0]["traceID"], "4242424242424242");
    collector
        .get_json("/api/traces/00000000000000004242424242424242", 200)
        .await;
    collector.stop().await;
}

#[tokio::test]
async fn jaeger_search() {
    let collector = TestCollector::start().await;
    let now = now_nanos();
    post(&collector, &demo_trace([1; 16], now - 5_000_000_000)).await;
    post(&collector, &demo_trace([2; 16], now - 1_000_000_000)).await;
    let slow = trace_request(vec![(
        "web",
        "v1",
        vec![span(
            [3; 16],
            [1; 8],
            None,
            "GET /slow",
            2,
            now - 3_000_000_000,
            Duration::from_secs(2),
        )],
    )]);
    post(&collector, &slow).await;

    let ids = |body: serde_json::Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|trace| trace["traceID"].as_str().unwrap().to_owned())
            .collect()
    };
    let hex = |n: u8| hex::encode([n; 16]);
    let all = collector.get_json("/api/traces?service=web", 200).await;
    assert_eq!(all["total"], 3);
    assert_eq!(ids(all), vec![hex(2), hex(3), hex(1)]);
    let limited = collector
        .get_json("/api/traces?service=web&limit=1", 200)
        .await;
    assert_eq!(ids(limited), vec![hex(2)]);
    let by_operation = collector
        .get_json("/api/traces?service=stock-api&operation=GET%20/price", 200)
        .await;
    assert_eq!(
        by_operation["data"][0]["spans"].as_array().unwrap().len(),
        3
    );
    let slow_only = collector
        .get_json("/api/traces?service=web&minDuration=1s", 200)
        .await;
    assert_eq!(ids(slow_only), vec![hex(3)]);
    let fast_only = collector
        .get_json(
            "/api/traces?service=web&maxDuration=100ms&operation=GET%20/",
            200,
        )
        .await;
    assert_eq!(ids(fast_only), vec![hex(2), hex(1)]);
    let tagged = collector
        .get_json("/api/traces?tags=%7B%22error%22%3A%22x%22%7D", 200)
        .await;
    assert_eq!(tagged["data"], json!([]));
    let tagged = collector
        .get_json(
            "/api/traces?tag=http.status_code:200&service=web&operation=GET%20/slow",
            200,
        )
        .await;
    assert_eq!(ids(tagged), vec![hex(3)]);
    let window = format!(
        "/api/traces?service=web&start={}&end={}",
        (now - 4_000_000_000) / 1000,
        (now - 2_000_000_000) / 1000
    );
    assert_eq!(ids(collector.get_json(&window, 200).await), vec![hex(3)]);
    let by_ids = collector
        .get_json(
            &format!("/api/traces?traceID={}&traceID={}", hex(1), hex(3)),
            200,
        )
        .await;
    assert_eq!(ids(by_ids), vec![hex(1), hex(3)]);

    let bad = collector
        .get_json("/api/traces?minDuration=2s&maxDuration=1s", 400)
        .await;
    assert_eq!(bad["errors"][0]["code"], 400);
    collector
        .get_json("/api/traces?minDuration=fast", 400)
        .await;
    collector.get_json("/api/traces?tags=notjson", 400).await;
    collector.get_json("/api/traces?start=yesterday", 400).await;
    collector.stop().await;
}

#[tokio::test]
async fn native_errors_and_windows() {
    let collector = TestCollector::start().await;
    let missing = collector
        .get_json("/api/weft/traces/0123456789abcdef0123456789abcdef", 404)
        .await;
    assert_eq!(
        missing,
        json!({"error": "trace 0123456789abcdef0123456789abcdef not found"})
    );
    let bad = collector.get_json("/api/weft/traces/xyz", 400).await;
    assert!(bad["error"].as_str().unwrap().contains("trace id"));
    collector.get_json("/api/weft/traces?limit=0", 400).await;
    collector.get_json("/api/weft/traces?limit=many", 400).await;
    collector.get_json("/api/weft/graph?window=-5", 400).await;
    collector.get_json("/api/weft/graph?start_ms=10", 400).await;
    collector
        .get_json("/api/weft/graph?start_ms=10&end_ms=5", 400)
        .await;

    // Windows: an old trace is outside the default hour but inside lookback.
    let old = now_nanos() - 2 * 3600 * 1_000_000_000;
    post(&collector, &demo_trace([9; 16], old)).await;
    assert_eq!(
        collector.get_json("/api/weft/traces", 200).await["total"],
        0
    );
    assert_eq!(
        collector
            .get_json("/api/weft/traces?lookback=10800", 200)
            .await["total"],
        1
    );
    let start_us = old / 1000 - 1;
    let exact = collector
        .get_json(
            &format!(
                "/api/weft/traces?start_us={start_us}&end_us={}",
                start_us + 10
            ),
            200,
        )
        .await;
    assert_eq!(exact["total"], 1);
    assert_eq!(exact["total_exact"], true);
    assert_eq!(exact["order_exact"], true);
    collector.stop().await;
}

#[tokio::test]
async fn health_and_dashboard() {
    let collector = TestCollector::start().await;
    for path in ["/healthz", "/ready"] {
        let response = collector
            .client
            .get(collector.api(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    // The dashboard answers `/`; unknown API paths are not swallowed by it.
    let page = collector
        .client
        .get(collector.api("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let text = page.text().await.unwrap();
    assert!(text.to_ascii_lowercase().contains("<html"), "{text}");
    collector.stop().await;
}

#[tokio::test]
async fn restart_keeps_data_and_frees_ports() {
    let first = TestCollector::start().await;
    post(&first, &demo_trace([5; 16], now_nanos())).await;
    let http_addr = first.collector.http_addr();
    let TestCollector { collector, dir, .. } = first;
    collector.shutdown().await;
    // The port is free again and the file holds the data.
    std::net::TcpListener::bind(http_addr).unwrap();
    let db = format!("sqlite://{}", dir.path().join("data/weft.db").display());
    let second = TestCollector::start_with(dir, db).await;
    second
        .get_json(&format!("/api/weft/traces/{}", hex::encode([5u8; 16])), 200)
        .await;
    second.stop().await;
}

#[tokio::test]
async fn shutdown_with_an_idle_keep_alive_connection() {
    let collector = TestCollector::start().await;
    // The client keeps its connection open in its pool.
    collector.get_json("/api/weft/services", 200).await;
    let client = collector.client.clone();
    tokio::time::timeout(Duration::from_secs(5), collector.collector.shutdown())
        .await
        .expect("graceful shutdown does not wait for idle connections");
    drop(client);
}

#[tokio::test]
async fn bad_database_urls() {
    let any = "127.0.0.1:0".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weft.db").display().to_string();
    for db in [
        "mysql://x".to_owned(),
        "sqlite://".to_owned(),
        "nonsense".to_owned(),
        format!("sqlite://{file}?synchronous=sometimes"),
        format!("sqlite://{file}?cache=big"),
    ] {
        let result = weft_collector::Config {
            db: db.clone(),
            http: any,
            otlp_grpc: any,
            otlp_http: any,
            ..Default::default()
        }
        .build()
        .await;
        let Err(error) = result else {
            panic!("{db} was accepted")
        };
        // A bad parameter is named, and nothing is created.
        let message = error.to_string();
        for parameter in ["synchronous", "cache"] {
            if db.contains(&format!("?{parameter}")) {
                assert!(message.contains(parameter), "{db}: {message}");
            }
        }
        assert!(!dir.path().join("weft.db").exists(), "{db}");
    }
}
