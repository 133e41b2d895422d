//! Bad input, one table across every ingest path (OTLP/HTTP protobuf and
//! JSON, Zipkin JSON and proto3, OTLP/gRPC): a clear 4xx (or
//! `INVALID_ARGUMENT`), nothing stored half-way, and the collector keeps
//! serving. Huge attribute values are not refused: they are truncated to
//! `MAX_VALUE_BYTES` (32 KiB) — OTLP clients cannot repair a batch we
//! reject, and one stack trace should not cost the whole trace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestCollector, demo_trace, gzip_bytes, now_nanos, string_kv};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde_json::json;
use weft_collector::zipkin::model::proto;

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
}

fn cases() -> Vec<Case> {
    let start = now_nanos();
    let good = demo_trace([1; 16], start);
    let mut zero_trace = good.clone();
    zero_trace.resource_spans[1].scope_spans[0].spans[0].trace_id = vec![0; 16];
    let mut short_span = good.clone();
    short_span.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let mut no_end = good.clone();
    no_end.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = 0;
    let zipkin_ok = json!({"traceId": "000000000000000a", "id": "000000000000000b",
        "timestamp": start / 1000, "localEndpoint": {"serviceName": "z"}});
    let zipkin_proto_bad_id = proto::ListOfSpans {
        spans: vec![proto::Span {
            trace_id: vec![1; 16],
            id: vec![1; 5],
            timestamp: start / 1000,
            ..Default::default()
        }],
    };
    let bomb = gzip_bytes(&vec![b' '; 64 * 1024 * 1024 + 1]);
    let case = |name, path, content_type, encoding, body: Vec<u8>, status| Case {
        name,
        path,
        content_type,
        encoding,
        body,
        status,
    };
    let pb = "application/x-protobuf";
    let js = "application/json";
    vec![
        case(
            "otlp malformed protobuf",
            "/v1/traces",
            pb,
            None,
            vec![0x0a, 0xff, 0xff],
            400,
        ),
        case(
            "otlp bad json",
            "/v1/traces",
            js,
            None,
            b"{\"resourceSpans\":[{".to_vec(),
            400,
        ),
        case(
            "otlp json wrong shape",
            "/v1/traces",
            js,
            None,
            b"[1,2]".to_vec(),
            400,
        ),
        case(
            "otlp wrong content type",
            "/v1/traces",
            "text/plain",
            None,
            good.encode_to_vec(),
            415,
        ),
        case(
            "otlp unknown encoding",
            "/v1/traces",
            pb,
            Some("br"),
            good.encode_to_vec(),
            415,
        ),
        case(
            "otlp bad gzip",
            "/v1/traces",
            pb,
            Some("gzip"),
            b"not gzip".to_vec(),
            400,
        ),
        case(
            "otlp zero trace id",
            "/v1/traces",
            pb,
            None,
            zero_trace.encode_to_vec(),
            400,
        ),
        case(
            "otlp short span id",
            "/v1/traces",
            pb,
            None,
            short_span.encode_to_vec(),
            400,
        ),
        case(
            "otlp no end time",
            "/v1/traces",
            pb,
            None,
            no_end.encode_to_vec(),
            400,
        ),
        case(
            "otlp metrics garbage",
            "/v1/metrics",
            pb,
            None,
            vec![0x0a, 0x05, 0x01],
            400,
        ),
        case(
            "otlp oversized",
            "/v1/traces",
            pb,
            Some("gzip"),
            bomb.clone(),
            413,
        ),
        case(
            "zipkin bad json",
            "/api/v2/spans",
            js,
            None,
            b"[{\"traceId\":".to_vec(),
            400,
        ),
        case(
            "zipkin one bad span",
            "/api/v2/spans",
            js,
            None,
            json!([zipkin_ok, {"traceId": "xyz", "id": "000000000000000c", "timestamp": 1}])
                .to_string()
                .into_bytes(),
            400,
        ),
        case(
            "zipkin proto bad id",
            "/api/v2/spans",
            pb,
            None,
            zipkin_proto_bad_id.encode_to_vec(),
            400,
        ),
        case(
            "zipkin proto garbage",
            "/api/v2/spans",
            pb,
            None,
            vec![0x0a, 0xff],
            400,
        ),
        case(
            "zipkin thrift",
            "/api/v2/spans",
            "application/x-thrift",
            None,
            vec![1],
            415,
        ),
        case(
            "zipkin oversized",
            "/api/v2/spans",
            js,
            Some("gzip"),
            bomb,
            413,
        ),
    ]
}

#[tokio::test]
async fn every_bad_input_is_a_clear_4xx_and_stores_nothing() {
    let collector = TestCollector::start().await;
    for case in cases() {
        let base = if case.path.starts_with("/api/v2") {
            collector.zipkin(case.path)
        } else {
            collector.otlp(case.path)
        };
        let mut request = collector
            .client
            .post(base)
            .header("content-type", case.content_type);
        if let Some(encoding) = case.encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.body(case.body).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        assert_eq!(
            status,
            case.status,
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&body)
        );
        assert!(!body.is_empty(), "{}: an error message", case.name);
        // Nothing stored, still serving.
        assert_eq!(
            collector.get_json("/api/services", 200).await["data"],
            json!([]),
            "{}",
            case.name
        );
    }
    // gRPC: invalid ids are INVALID_ARGUMENT, nothing stored.
    let mut grpc = TraceServiceClient::connect(collector.grpc_endpoint())
        .await
        .unwrap();
    let mut bad = demo_trace([2; 16], now_nanos());
    bad.resource_spans[1].scope_spans[0].spans[0].span_id = vec![0; 8];
    let status = grpc.export(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert_eq!(
        collector.get_json("/api/services", 200).await["data"],
        json!([])
    );
    // And a good export still goes through afterwards.
    grpc.export(demo_trace([3; 16], now_nanos())).await.unwrap();
    assert_eq!(
        collector.get_json("/api/services", 200).await["data"],
        json!(["stock-api", "web"])
    );
    collector.stop().await;
}

#[tokio::test]
async fn huge_attribute_values_are_truncated_not_refused() {
    let collector = TestCollector::start().await;
    let mut request = demo_trace([4; 16], now_nanos());
    let huge = "é".repeat(600_000); // 1.2 MB, two bytes per character
    request.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(string_kv("stack", &huge));
    request.resource_spans[0].scope_spans[0].spans[0].name = "n".repeat(5000);
    let (status, _, _) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let trace = collector
        .get_json(&format!("/api/traces/{}", hex::encode([4u8; 16])), 200)
        .await;
    let spans = trace["data"][0]["spans"].as_array().unwrap();
    let root = spans
        .iter()
        .find(|span| span["spanID"] == hex::encode([1u8; 8]))
        .unwrap();
    let stack = root["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tag| tag["key"] == "stack")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        stack.len(),
        32 * 1024,
        "cut at 32 KiB, on a character boundary"
    );
    assert!(huge.starts_with(&stack));
    assert_eq!(root["operationName"].as_str().unwrap().len(), 1024);

    // Zipkin tags follow the same rule.
    let zipkin = json!([{"traceId": "000000000000000e", "id": "000000000000000f",
        "timestamp": now_nanos() / 1000, "localEndpoint": {"serviceName": "z"},
        "tags": {"big": "x".repeat(100_000)}}]);
    let posted = collector
        .client
        .post(collector.zipkin("/api/v2/spans"))
        .json(&zipkin)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 202);
    let back: serde_json::Value = collector
        .client
        .get(collector.zipkin("/api/v2/trace/000000000000000e"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(back[0]["tags"]["big"].as_str().unwrap().len(), 32 * 1024);
    collector.stop().await;
}
