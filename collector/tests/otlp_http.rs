//! OTLP/HTTP ingest end to end: protobuf, JSON and gzip bodies are stored and
//! come back through the Jaeger and native APIs; bad requests store nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestCollector, demo_trace, now_nanos, span, trace_request};
use prost::Message;
use serde_json::Value;

const TRACE: [u8; 16] = [0xab; 16];
const TRACE_HEX: &str = "abababababababababababababababab";

async fn span_count(collector: &TestCollector, trace_hex: &str) -> usize {
    let response = collector
        .client
        .get(collector.api(&format!("/api/weft/traces/{trace_hex}")))
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        404 => 0,
        200 => response.json::<Value>().await.unwrap()["spans"]
            .as_array()
            .unwrap()
            .len(),
        other => panic!("unexpected status {other}"),
    }
}

fn check_jaeger_trace(body: &Value) {
    assert_eq!(body["errors"], Value::Null);
    let trace = &body["data"][0];
    assert_eq!(trace["traceID"], TRACE_HEX);
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    let by_id = |id: &str| spans.iter().find(|span| span["spanID"] == id).unwrap();
    let root = by_id("0101010101010101");
    assert_eq!(root["operationName"], "GET /");
    assert_eq!(root["references"], serde_json::json!([]));
    assert_eq!(root["duration"], 50_000);
    let client = by_id("0202020202020202");
    assert_eq!(
        client["references"],
        serde_json::json!([{"refType": "CHILD_OF", "traceID": TRACE_HEX, "spanID": "0101010101010101"}])
    );
    let server = by_id("0303030303030303");
    assert_eq!(server["references"][0]["spanID"], "0202020202020202");
    let tags = server["tags"].as_array().unwrap();
    assert!(
        tags.contains(
            &serde_json::json!({"key": "http.status_code", "type": "int64", "value": 200})
        )
    );
    assert!(tags.contains(&serde_json::json!({"key": "error", "type": "bool", "value": true})));
    assert!(
        tags.contains(
            &serde_json::json!({"key": "span.kind", "type": "string", "value": "server"})
        )
    );
    let process = &trace["processes"][server["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "stock-api");
    assert!(
        process["tags"].as_array().unwrap().contains(
            &serde_json::json!({"key": "service.version", "type": "string", "value": "v2"})
        )
    );
    assert_eq!(trace["processes"].as_object().unwrap().len(), 2);
}

async fn check_native_trace(collector: &TestCollector, start: u64) {
    let body = collector
        .get_json(&format!("/api/weft/traces/{TRACE_HEX}"), 200)
        .await;
    assert_eq!(body["trace_id"], TRACE_HEX);
    let spans = body["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0]["span_id"], "0101010101010101");
    assert_eq!(spans[0]["parent_span_id"], Value::Null);
    assert_eq!(spans[0]["service"], "web");
    assert_eq!(spans[0]["service_version"], "v1");
    assert_eq!(spans[0]["kind"], "SERVER");
    assert_eq!(spans[0]["status"], "UNSET");
    assert_eq!(spans[0]["start_us"], start / 1000);
    assert_eq!(spans[0]["duration_us"], 50_000);
    assert_eq!(spans[0]["attributes"]["http.status_code"], 200);
    assert_eq!(spans[0]["resource"]["service.name"], "web");
    assert_eq!(spans[2]["parent_span_id"], "0202020202020202");
    assert_eq!(spans[2]["status"], "ERROR");
    assert_eq!(spans[2]["status_message"], "boom");
    assert_eq!(spans[1]["kind"], "CLIENT");
}

#[tokio::test]
async fn protobuf_round_trip() {
    let collector = TestCollector::start().await;
    let start = now_nanos() - 60_000_000_000;
    let body = demo_trace(TRACE, start).encode_to_vec();
    let (status, content_type, response) = collector
        .post_otlp("/v1/traces", "application/x-protobuf", false, body)
        .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/x-protobuf");
    assert!(response.is_empty(), "partial_success must be unset");

    check_jaeger_trace(
        &collector
            .get_json(&format!("/api/traces/{TRACE_HEX}"), 200)
            .await,
    );
    check_native_trace(&collector, start).await;

    // The trace list.
    let list = collector.get_json("/api/weft/traces?limit=5", 200).await;
    assert_eq!(list["total"], 1);
    let summary = &list["traces"][0];
    assert_eq!(summary["trace_id"], TRACE_HEX);
    assert_eq!(summary["root_service"], "web");
    assert_eq!(summary["root_operation"], "GET /");
    assert_eq!(summary["span_count"], 3);
    assert_eq!(summary["error_count"], 1);
    assert_eq!(summary["duration_us"], 50_000);
    assert_eq!(summary["start_us"], start / 1000);
    assert_eq!(summary["services"], serde_json::json!(["web", "stock-api"]));
    let filtered = collector
        .get_json(
            "/api/weft/traces?service=stock-api&operation=GET%20/price",
            200,
        )
        .await;
    assert_eq!(filtered["total"], 1);
    let none = collector
        .get_json("/api/weft/traces?service=nope", 200)
        .await;
    assert_eq!(none["traces"], serde_json::json!([]));
    assert_eq!(none["total"], 0);

    // Services and operations, native and Jaeger.
    assert_eq!(
        collector.get_json("/api/weft/services", 200).await,
        serde_json::json!({"services": ["stock-api", "web"]})
    );
    assert_eq!(
        collector.get_json("/api/services", 200).await,
        serde_json::json!({"data": ["stock-api", "web"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    assert_eq!(
        collector
            .get_json("/api/services/web/operations", 200)
            .await["data"],
        serde_json::json!(["GET /", "GET stock-api"])
    );
    collector.stop().await;
}

#[tokio::test]
async fn json_round_trip_with_gzip() {
    let collector = TestCollector::start().await;
    let start = now_nanos() - 60_000_000_000;
    let body = serde_json::to_vec(&demo_trace(TRACE, start)).unwrap();
    let (status, content_type, response) = collector
        .post_otlp("/v1/traces", "application/json", true, body)
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
    assert_eq!(content_type, "application/json");
    assert_eq!(response, b"{}");
    check_jaeger_trace(
        &collector
            .get_json(&format!("/api/traces/{TRACE_HEX}"), 200)
            .await,
    );
    check_native_trace(&collector, start).await;
    collector.stop().await;
}

#[tokio::test]
async fn protobuf_with_gzip() {
    let collector = TestCollector::start().await;
    let start = now_nanos();
    let body = demo_trace(TRACE, start).encode_to_vec();
    let (status, _, _) = collector
        .post_otlp("/v1/traces", "application/x-protobuf", true, body)
        .await;
    assert_eq!(status, 200);
    assert_eq!(span_count(&collector, TRACE_HEX).await, 3);
    collector.stop().await;
}

#[tokio::test]
async fn the_spec_example_json() {
    let collector = TestCollector::start().await;
    let example = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/specs/opentelemetry-proto/examples/trace.json"
    ))
    .or_else(|_| std::fs::read("/work/shared/specs/opentelemetry-proto/examples/trace.json"))
    .expect("the OTLP example trace.json");
    let (status, _, body) = collector
        .post_otlp("/v1/traces", "application/json", false, example)
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Upper-case hex ids in the example; any case works for lookups.
    let trace = collector
        .get_json("/api/traces/5B8EFFF798038103D269B633813FC60C", 200)
        .await;
    let span = &trace["data"][0]["spans"][0];
    assert_eq!(span["spanID"], "eee19b7ec3c1b174");
    assert_eq!(span["operationName"], "I'm a server span");
    assert_eq!(span["startTime"], 1_544_712_660_000_000_i64);
    assert_eq!(span["duration"], 1_000_000);
    assert_eq!(span["references"][0]["spanID"], "eee19b7ec3c1b173");
    assert_eq!(
        trace["data"][0]["processes"]["p1"]["serviceName"],
        "my.service"
    );
    assert!(
        span["tags"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(
                {"key": "otel.scope.name", "type": "string", "value": "my.library"}
            ))
    );
    collector.stop().await;
}

#[tokio::test]
async fn json_quirks_are_accepted() {
    let collector = TestCollector::start().await;
    // Numbers for 64-bit ints, strings for 32-bit ints, enum names, nulls,
    // unknown fields at every level.
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "quirky"}}], "future": 1},
            "scopeSpans": [{"scope": null, "spans": [{
                "traceId": TRACE_HEX.to_uppercase(), "spanId": "0102030405060708", "parentSpanId": null,
                "name": "op", "kind": "SPAN_KIND_CLIENT",
                "startTimeUnixNano": 1_700_000_000_000_000_000_u64, "endTimeUnixNano": "1700000000500000000",
                "droppedAttributesCount": "2",
                "attributes": [
                    {"key": "n", "value": {"intValue": 7}},
                    {"key": "d", "value": {"doubleValue": "NaN"}},
                    {"key": "x", "value": {"stringValue": "y", "unknownField": true}}
                ],
                "status": {"code": "STATUS_CODE_ERROR", "message": "bad"},
                "somethingNew": {"nested": [1, 2]}
            }]}]
        }],
        "extra": "ignored"
    });
    let (status, _, response) = collector
        .post_otlp(
            "/v1/traces",
            "application/json",
            false,
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
    let trace = collector
        .get_json(&format!("/api/weft/traces/{TRACE_HEX}"), 200)
        .await;
    let span = &trace["spans"][0];
    assert_eq!(span["kind"], "CLIENT");
    assert_eq!(span["status"], "ERROR");
    assert_eq!(span["duration_us"], 500_000);
    assert_eq!(span["attributes"]["n"], 7);
    assert_eq!(span["attributes"]["d"], "NaN");
    assert_eq!(span["attributes"]["x"], "y");
    collector.stop().await;
}

#[tokio::test]
async fn bad_requests_store_nothing() {
    let collector = TestCollector::start().await;
    let start = now_nanos();

    // Malformed protobuf.
    let (status, content_type, body) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            vec![0xff, 0xff, 0x01, 0x02],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(content_type, "application/x-protobuf");
    assert!(!body.is_empty(), "a google.rpc.Status body");

    // Malformed JSON.
    let (status, content_type, body) = collector
        .post_otlp(
            "/v1/traces",
            "application/json",
            false,
            b"{\"resourceSpans\": [".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(content_type, "application/json");
    let status_body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status_body["code"], 3);
    assert!(status_body["message"].as_str().unwrap().contains("JSON"));

    // A zero trace id in an otherwise good batch: nothing of it is stored.
    let mut request = demo_trace(TRACE, start);
    request.resource_spans[1].scope_spans[0].spans[0].trace_id = vec![0; 16];
    let (status, _, body) = collector
        .post_otlp(
            "/v1/traces",
            "application/json",
            false,
            serde_json::to_vec(&request).unwrap(),
        )
        .await;
    assert_eq!(status, 400);
    let status_body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        status_body["message"].as_str().unwrap().contains("traceId"),
        "{status_body}"
    );
    let (status, _, _) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 400);

    // End before start.
    let mut request = demo_trace(TRACE, start);
    let bad = &mut request.resource_spans[0].scope_spans[0].spans[1];
    bad.end_time_unix_nano = bad.start_time_unix_nano - 1;
    let (status, _, _) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 400);

    // A short span id.
    let request = trace_request(vec![(
        "web",
        "v1",
        vec![span(
            TRACE,
            [1; 8],
            None,
            "x",
            2,
            start,
            std::time::Duration::from_millis(1),
        )],
    )]);
    let mut request = request;
    request.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1, 2, 3];
    let (status, _, _) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 400);

    // Bad gzip.
    let (status, _, _) = collector
        .post_otlp("/v1/traces", "application/x-protobuf", false, Vec::new())
        .await;
    assert_eq!(status, 200, "an empty request is a success");
    let response = collector
        .client
        .post(collector.otlp("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    assert_eq!(span_count(&collector, TRACE_HEX).await, 0);
    assert_eq!(
        collector.get_json("/api/weft/services", 200).await,
        serde_json::json!({"services": []})
    );
    assert_eq!(
        collector.get_json("/api/services", 200).await["data"],
        serde_json::json!([])
    );
    collector.stop().await;
}

#[tokio::test]
async fn unsupported_content_type_and_encoding() {
    let collector = TestCollector::start().await;
    let (status, _, _) = collector
        .post_otlp("/v1/traces", "text/plain", false, b"hello".to_vec())
        .await;
    assert_eq!(status, 415);
    let response = collector
        .client
        .post(collector.otlp("/v1/traces"))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body(b"{}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let response = collector
        .client
        .post(collector.otlp("/v1/traces"))
        .body(b"{}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    collector.stop().await;
}

#[tokio::test]
async fn above_64_mib_decompressed_is_413() {
    let collector = TestCollector::start().await;
    // 64 MiB + 1 of zeros compresses to ~65 KiB.
    let body = vec![0u8; 64 * 1024 * 1024 + 1];
    let (status, content_type, _) = collector
        .post_otlp("/v1/traces", "application/x-protobuf", true, body)
        .await;
    assert_eq!(status, 413);
    assert_eq!(content_type, "application/x-protobuf");
    collector.stop().await;
}

#[tokio::test]
async fn duplicate_exports_are_stored_once() {
    let collector = TestCollector::start().await;
    let request = demo_trace(TRACE, now_nanos());
    for _ in 0..3 {
        let (status, _, _) = collector
            .post_otlp(
                "/v1/traces",
                "application/x-protobuf",
                false,
                request.encode_to_vec(),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _, _) = collector
        .post_otlp(
            "/v1/traces",
            "application/json",
            false,
            serde_json::to_vec(&request).unwrap(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(span_count(&collector, TRACE_HEX).await, 3);
    let list = collector.get_json("/api/weft/traces", 200).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["traces"][0]["span_count"], 3);
    collector.stop().await;
}
