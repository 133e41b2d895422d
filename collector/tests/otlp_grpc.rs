//! OTLP/gRPC ingest through the generated tonic clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{RequestCount, TestCollector, demo_trace, istio_labels, now_nanos, requests_total};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic::codec::CompressionEncoding;

const TRACE: [u8; 16] = [0x5c; 16];

#[tokio::test]
async fn trace_export_round_trip() {
    let collector = TestCollector::start().await;
    let mut client = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let start = now_nanos();
    let response = client.export(demo_trace(TRACE, start)).await.unwrap();
    assert_eq!(response.get_ref().partial_success, None);
    // A retry of the same export is acknowledged and stored once.
    client.export(demo_trace(TRACE, start)).await.unwrap();

    let trace_hex = hex::encode(TRACE);
    let trace = collector
        .get_json(&format!("/api/traces/{trace_hex}"), 200)
        .await;
    let spans = trace["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let native = collector
        .get_json(&format!("/api/weft/traces/{trace_hex}"), 200)
        .await;
    assert_eq!(native["spans"][1]["parent_span_id"], "0101010101010101");

    // Invalid data: INVALID_ARGUMENT and nothing stored.
    let other = [0x77; 16];
    let mut bad = demo_trace(other, start);
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = vec![0; 8];
    let status = client.export(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("spanId"), "{}", status.message());
    collector
        .get_json(&format!("/api/weft/traces/{}", hex::encode(other)), 404)
        .await;
    // Shutdown does not wait for the idle, still connected client.
    tokio::time::timeout(std::time::Duration::from_secs(5), collector.stop())
        .await
        .expect("graceful shutdown with a connected gRPC client");
    drop(client);
}

#[tokio::test]
async fn oversized_export_is_resource_exhausted() {
    let collector = TestCollector::start().await;
    let mut client = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let mut request = demo_trace(TRACE, now_nanos());
    request.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(common::string_kv("big", &"x".repeat(64 * 1024 * 1024)));
    let status = client.export(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    // Uncompressed, tonic's own answer would be the retryable OUT_OF_RANGE.
    let mut plain = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap();
    let status = plain.export(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    drop(plain);
    collector
        .get_json(&format!("/api/weft/traces/{}", hex::encode(TRACE)), 404)
        .await;
    drop(client);
    collector.stop().await;
}

#[tokio::test]
async fn metrics_export() {
    let collector = TestCollector::start().await;
    let mut client = MetricsServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap();
    let now_ms = now_nanos() / 1_000_000;
    let labels = istio_labels(
        "destination",
        ("web", "web", "v1"),
        ("stock-api-v1", "stock-api", "v1"),
        "200",
    );
    let point = |time_ms: u64, value| RequestCount {
        labels: labels.clone(),
        start: (now_ms - 100_000) * 1_000_000,
        time: time_ms * 1_000_000,
        value,
    };
    client
        .export(requests_total(vec![
            point(now_ms - 20_000, 5),
            point(now_ms - 10_000, 12),
        ]))
        .await
        .unwrap();
    let graph = collector.get_json("/api/weft/graph?window=60", 200).await;
    assert_eq!(graph["edges"][0]["requests"], 12, "{graph}");
    drop(client);
    collector.stop().await;
}
