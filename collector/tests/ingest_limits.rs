//! The write path under pressure and over time: backpressure (429/503 with
//! `Retry-After`, gRPC `UNAVAILABLE`), retention by age and by size, and
//! export to other collectors (OTLP and Zipkin) that never affects ingest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestCollector, demo_trace, now_nanos, span, trace_request};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use weft_collector::{Config, ExportTarget};

/// Polls `check` until it returns `Some`, or panics after 30 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn any() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(dir: &tempfile::TempDir) -> Config {
    Config {
        db: format!("sqlite://{}", dir.path().join("weft.db").display()),
        http: any(),
        otlp_grpc: any(),
        otlp_http: any(),
        zipkin: Some(any()),
        ..Config::default()
    }
}

#[tokio::test]
async fn saturated_write_path_answers_retry_later() {
    let dir = tempfile::tempdir().unwrap();
    let collector = TestCollector::start_config(
        tempfile::tempdir().unwrap(),
        Config {
            max_in_flight_writes: 1,
            ..config(&dir)
        },
    )
    .await;
    // A client that sends headers and then stalls holds the only permit.
    let mut stalled = tokio::net::TcpStream::connect(collector.collector.otlp_http_addr())
        .await
        .unwrap();
    stalled
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: weft\r\n\
              Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n",
        )
        .await
        .unwrap();
    let body = demo_trace([1; 16], now_nanos()).encode_to_vec();
    let (status, content_type, retry_after) = eventually("a 429", || {
        let request = collector
            .client
            .post(collector.otlp("/v1/traces"))
            .header("content-type", "application/json")
            .body("{}")
            .send();
        async move {
            let response = request.await.unwrap();
            (response.status().as_u16() == 429).then(|| {
                (
                    response.status().as_u16(),
                    response.headers()["content-type"]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                    response.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                )
            })
        }
    })
    .await;
    assert_eq!(
        (status, content_type.as_str(), retry_after.as_str()),
        (429, "application/json", "1")
    );
    // gRPC: UNAVAILABLE (retryable).
    let mut grpc = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap();
    let refused = grpc
        .export(demo_trace([2; 16], now_nanos()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    // Zipkin: 503 with Retry-After.
    let zipkin = collector
        .client
        .post(collector.zipkin("/api/v2/spans"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(zipkin.status().as_u16(), 503);
    assert_eq!(zipkin.headers()["retry-after"], "1");
    // Queries are not throttled.
    collector.get_json("/api/services", 200).await;

    // The stalled client goes away: ingest works again.
    drop(stalled);
    eventually("ingest to recover", || {
        let request = collector
            .client
            .post(collector.otlp("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send();
        async move { (request.await.unwrap().status().as_u16() == 200).then_some(()) }
    })
    .await;
    collector.stop().await;
}

#[tokio::test]
async fn retention_by_age_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let collector = TestCollector::start_config(
        tempfile::tempdir().unwrap(),
        Config {
            retention: Duration::from_secs(3600),
            max_spans: Some(5),
            ..config(&dir)
        },
    )
    .await;
    let now = now_nanos();
    let ms = Duration::from_millis;
    let old = now - 2 * 3600 * 1_000_000_000;
    let old_spans = (1..=3u8)
        .map(|n| {
            span(
                [9; 16],
                [n; 8],
                None,
                "old op",
                2,
                old + u64::from(n),
                ms(1),
            )
        })
        .collect();
    let fresh_spans = (1..=8u8)
        .map(|n| {
            span(
                [n; 16],
                [n; 8],
                None,
                "fresh op",
                2,
                now - 60_000_000_000 + u64::from(n) * 1_000_000,
                ms(1),
            )
        })
        .collect();
    let request = trace_request(vec![
        ("ancient", "v1", old_spans),
        ("web", "v1", fresh_spans),
    ]);
    let (status, _, _) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        collector.get_json("/api/services", 200).await["data"],
        json!(["ancient", "web"])
    );
    let report = collector.collector.enforce_retention().await.unwrap();
    assert_eq!((report.expired, report.over_size), (3, 3));
    // The catalog follows: "ancient" has no span left.
    assert_eq!(
        collector.get_json("/api/services", 200).await["data"],
        json!(["web"])
    );
    let kept: Vec<String> = collector
        .get_json("/api/traces?service=web&limit=100", 200)
        .await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trace| trace["traceID"].as_str().unwrap().to_owned())
        .collect();
    let newest: Vec<String> = (4..=8u8).rev().map(|n| hex::encode([n; 16])).collect();
    assert_eq!(kept, newest, "the newest 5 are kept");
    let again = collector.collector.enforce_retention().await.unwrap();
    assert_eq!((again.expired, again.over_size), (0, 0));
    collector.stop().await;
}

#[tokio::test]
async fn export_to_otlp_and_zipkin_receivers() {
    let otlp_receiver = TestCollector::start().await;
    let zipkin_receiver = TestCollector::start().await;
    // A target nobody listens on: it retries in the background.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    let exporter = TestCollector::start_config(
        tempfile::tempdir().unwrap(),
        Config {
            export: vec![
                ExportTarget::Otlp(otlp_receiver.grpc_endpoint()),
                ExportTarget::Zipkin(zipkin_receiver.zipkin("/api/v2/spans")),
                ExportTarget::Zipkin(format!("http://{dead_addr}/api/v2/spans")),
            ],
            ..config(&dir)
        },
    )
    .await;
    let start = now_nanos() - 5_000_000_000;
    let (status, _, _) = exporter
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            demo_trace([7; 16], start).encode_to_vec(),
        )
        .await;
    assert_eq!(
        status, 200,
        "ingest is acknowledged whatever the exporters do"
    );
    let zipkin_body = json!([{
        "traceId": "00000000000000aa", "id": "00000000000000bb", "name": "get",
        "kind": "SERVER", "timestamp": start / 1000, "duration": 10,
        "localEndpoint": {"serviceName": "legacy"}, "tags": {"k": "v"}
    }]);
    let posted = exporter
        .client
        .post(exporter.zipkin("/api/v2/spans"))
        .json(&zipkin_body)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 202);

    // OTLP receiver: the Jaeger view is identical to the exporter's.
    for trace in [hex::encode([7u8; 16]), "00000000000000aa".to_owned()] {
        let path = format!("/api/traces/{trace}");
        let expected = exporter.get_json(&path, 200).await;
        let got = eventually("the OTLP receiver to have the trace", || {
            let request = otlp_receiver.client.get(otlp_receiver.api(&path)).send();
            let want = expected["data"][0]["spans"].as_array().map(Vec::len);
            async move {
                let response = request.await.unwrap();
                if response.status().as_u16() != 200 {
                    return None;
                }
                let body: Value = response.json().await.unwrap();
                (body["data"][0]["spans"].as_array().map(Vec::len) == want).then_some(body)
            }
        })
        .await;
        assert_eq!(got, expected, "{path} through OTLP");
    }
    // Zipkin receiver: the Zipkin view is identical to the exporter's.
    for trace in [hex::encode([7u8; 16]), "00000000000000aa".to_owned()] {
        let path = format!("/api/v2/trace/{trace}");
        let expected: Value = exporter
            .client
            .get(exporter.zipkin(&path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got = eventually("the Zipkin receiver to have the trace", || {
            let request = zipkin_receiver
                .client
                .get(zipkin_receiver.zipkin(&path))
                .send();
            let want = expected.as_array().map(Vec::len);
            async move {
                let response = request.await.unwrap();
                if response.status().as_u16() != 200 {
                    return None;
                }
                let body: Value = response.json().await.unwrap();
                (body.as_array().map(Vec::len) == want).then_some(body)
            }
        })
        .await;
        assert_eq!(got, expected, "{path} through Zipkin");
    }
    let stats = eventually("the exporters' counters", || {
        let stats = exporter.collector.export_stats();
        async move {
            (stats[0].sent == 4 && stats[1].sent == 4 && stats[2].failures > 0).then_some(stats)
        }
    })
    .await;
    assert_eq!((stats[0].dropped, stats[1].dropped), (0, 0));
    assert_eq!((stats[2].sent, stats[2].dropped), (0, 0));
    exporter.stop().await;
    otlp_receiver.stop().await;
    zipkin_receiver.stop().await;
}
