//! Zipkin v2: ingest (JSON, proto3, gzip) on the Zipkin listener and the main
//! HTTP port, and every query endpoint call by call as Zipkin's UI and
//! Grafana's Zipkin datasource make them, with zipkin-server's status codes
//! and plain-text error bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestCollector, gzip_bytes, now_nanos};
use prost::Message;
use serde_json::{Value, json};
use weft_collector::zipkin::model::proto;

const TRACE: &str = "5af7183fb1d4cf5f";

/// An RPC in B3 single-span style: frontend's CLIENT span and backend's
/// shared SERVER half (same id), plus a local span in backend.
fn rpc_trace(start_us: u64) -> Value {
    json!([
        {
            "traceId": TRACE, "id": "6b221d5bc9e6496c", "name": "get /api",
            "kind": "CLIENT", "timestamp": start_us, "duration": 2000,
            "localEndpoint": {"serviceName": "frontend", "ipv4": "192.168.99.1", "port": 3000},
            "remoteEndpoint": {"serviceName": "backend", "ipv4": "172.17.0.13", "port": 8080},
            "annotations": [{"timestamp": start_us + 100, "value": "ws"}],
            "tags": {"http.method": "GET", "http.path": "/api"}
        },
        {
            "traceId": TRACE, "id": "6b221d5bc9e6496c", "name": "get /api",
            "kind": "SERVER", "shared": true, "timestamp": start_us + 300, "duration": 1500,
            "localEndpoint": {"serviceName": "backend", "ipv4": "172.17.0.13", "port": 8080},
            "remoteEndpoint": {"ipv6": "2001:db8::c001"},
            "tags": {"http.method": "GET", "http.path": "/api", "error": "boom"}
        },
        {
            "traceId": TRACE, "parentId": "6b221d5bc9e6496c", "id": "0562809467078eab",
            "name": "query", "timestamp": start_us + 500, "duration": 700,
            "localEndpoint": {"serviceName": "backend"}
        }
    ])
}

async fn post_zipkin(
    collector: &TestCollector,
    url: String,
    content_type: Option<&str>,
    gzip: bool,
    body: Vec<u8>,
) -> (u16, String, String) {
    let mut request = collector.client.post(url);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let body = if gzip {
        request = request.header("content-encoding", "gzip");
        gzip_bytes(&body)
    } else {
        body
    };
    let response = request.body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// GET on the Zipkin listener: status, content type, body.
async fn get(collector: &TestCollector, path: &str) -> (u16, String, String) {
    let response = collector
        .client
        .get(collector.zipkin(path))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn get_json(collector: &TestCollector, path: &str) -> Value {
    let (status, content_type, body) = get(collector, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    assert_eq!(content_type, "application/json", "GET {path}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn json_ingest_and_every_query_endpoint() {
    let collector = TestCollector::start().await;
    let start_us = now_nanos() / 1000 - 60_000_000;
    let body = rpc_trace(start_us).to_string().into_bytes();
    let (status, _, text) = post_zipkin(
        &collector,
        collector.zipkin("/api/v2/spans"),
        Some("application/json"),
        false,
        body.clone(),
    )
    .await;
    assert_eq!((status, text.as_str()), (202, ""));
    // Retried: idempotent.
    let (status, _, _) = post_zipkin(
        &collector,
        collector.zipkin("/api/v2/spans"),
        None,
        false,
        body,
    )
    .await;
    assert_eq!(status, 202);

    // Grafana: health check, then the cascader.
    assert_eq!(
        get_json(&collector, "/api/v2/services").await,
        json!(["backend", "frontend"])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/spans?serviceName=backend").await,
        json!(["get /api", "query"])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/remoteServices?serviceName=frontend").await,
        json!(["backend"])
    );
    let traces = get_json(
        &collector,
        "/api/v2/traces?serviceName=frontend&spanName=get%20%2Fapi",
    )
    .await;
    assert_eq!(traces.as_array().unwrap().len(), 1);
    assert_eq!(traces[0].as_array().unwrap().len(), 3);

    // Trace by id: the spans come back as they were sent (plus the status
    // tag the error became), the shared span under its original id.
    let trace = get_json(&collector, &format!("/api/v2/trace/{TRACE}")).await;
    let mut expected = rpc_trace(start_us);
    expected[1]["tags"]["otel.status_code"] = json!("ERROR");
    let by_id = |spans: &Value, id: &str, kind: Option<&str>| -> Value {
        spans
            .as_array()
            .unwrap()
            .iter()
            .find(|span| span["id"] == id && span.get("kind").and_then(Value::as_str) == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no span {id} {kind:?} in {spans}"))
    };
    assert_eq!(
        by_id(&trace, "6b221d5bc9e6496c", Some("CLIENT")),
        expected[0]
    );
    assert_eq!(
        by_id(&trace, "6b221d5bc9e6496c", Some("SERVER")),
        expected[1]
    );
    assert_eq!(by_id(&trace, "0562809467078eab", None), expected[2]);
    // The 32-hex spelling finds the 64-bit trace too.
    get_json(
        &collector,
        &format!("/api/v2/trace/0000000000000000{TRACE}"),
    )
    .await;

    // The same trace through Jaeger's API on the main port.
    let jaeger = collector
        .get_json(&format!("/api/traces/{TRACE}"), 200)
        .await;
    let spans = jaeger["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3);
    // One process per (service, endpoint): backend's local span has none.
    let services: std::collections::BTreeSet<&str> = jaeger["data"][0]["processes"]
        .as_object()
        .unwrap()
        .values()
        .map(|process| process["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["backend", "frontend"].into());

    // Search parameters.
    let end_ts = start_us / 1000 + 60_000;
    let search = |query: String| {
        let collector = &collector;
        async move { get_json(collector, &format!("/api/v2/traces?{query}")).await }
    };
    let count = |traces: &Value| traces.as_array().unwrap().len();
    assert_eq!(
        count(&search("annotationQuery=http.path%3D%2Fapi%20and%20ws".into()).await),
        1
    );
    assert_eq!(
        count(&search("annotationQuery=http.path%3D%2Fother".into()).await),
        0
    );
    assert_eq!(count(&search("annotationQuery=nowhere".into()).await), 0);
    assert_eq!(
        count(&search("serviceName=backend&annotationQuery=error".into()).await),
        0,
        "the error tag became the span status"
    );
    assert_eq!(
        count(&search("serviceName=backend&minDuration=1000".into()).await),
        1
    );
    assert_eq!(
        count(&search("serviceName=frontend&minDuration=3000".into()).await),
        0
    );
    assert_eq!(
        count(&search("serviceName=backend&maxDuration=800&spanName=query".into()).await),
        1
    );
    assert_eq!(count(&search("remoteServiceName=backend".into()).await), 1);
    assert_eq!(
        count(&search(format!("endTs={}&lookback=1000", end_ts - 3_600_000)).await),
        0
    );
    assert_eq!(
        count(&search(format!("endTs={end_ts}&lookback=120000&limit=1")).await),
        1
    );

    // Dependencies: the shared server span is the client's child.
    let links = get_json(
        &collector,
        &format!("/api/v2/dependencies?endTs={end_ts}&lookback=3600000"),
    )
    .await;
    assert_eq!(
        links,
        json!([{"parent": "frontend", "child": "backend", "callCount": 1, "errorCount": 1}])
    );
    assert_eq!(
        get_json(&collector, "/api/v2/autocompleteKeys").await,
        json!([])
    );
    collector.stop().await;
}

#[tokio::test]
async fn proto3_gzip_and_main_port() {
    let collector = TestCollector::start().await;
    let start_us = now_nanos() / 1000;
    let list = proto::ListOfSpans {
        spans: vec![proto::Span {
            trace_id: vec![0xab; 16],
            id: vec![0x01; 8],
            kind: 2,
            name: "recv".to_owned(),
            timestamp: start_us,
            duration: 42,
            local_endpoint: Some(proto::Endpoint {
                service_name: "queue".to_owned(),
                ipv4: vec![10, 0, 0, 7],
                ..Default::default()
            }),
            annotations: vec![proto::Annotation {
                timestamp: start_us + 1,
                value: "got".to_owned(),
            }],
            tags: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        }],
    };
    // Served on the main HTTP port as well.
    let (status, _, text) = post_zipkin(
        &collector,
        collector.api("/api/v2/spans"),
        Some("application/x-protobuf"),
        true,
        list.encode_to_vec(),
    )
    .await;
    assert_eq!((status, text.as_str()), (202, ""));
    let trace = get_json(&collector, &format!("/api/v2/trace/{}", "ab".repeat(16))).await;
    assert_eq!(
        trace,
        json!([{
            "traceId": "ab".repeat(16), "id": "0101010101010101", "kind": "SERVER",
            "name": "recv", "timestamp": start_us, "duration": 42,
            "localEndpoint": {"serviceName": "queue", "ipv4": "10.0.0.7"},
            "annotations": [{"timestamp": start_us + 1, "value": "got"}],
            "tags": {"k": "v"}
        }])
    );
    // Query API on the main port too.
    let main = collector
        .client
        .get(collector.api("/api/v2/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.json::<Value>().await.unwrap(), json!(["queue"]));
    collector.stop().await;
}

#[tokio::test]
async fn errors_are_plain_text_with_zipkin_status_codes() {
    let collector = TestCollector::start().await;
    let spans = |path: &str| collector.zipkin(path);

    // Malformed bodies: 400 text/plain, nothing stored.
    let start_us = now_nanos() / 1000;
    let mut half_bad = rpc_trace(start_us);
    half_bad[2]["id"] = json!("not-hex");
    for (content_type, body) in [
        (Some("application/json"), b"{not json".to_vec()),
        (Some("application/json"), br#"{"traceId":"a"}"#.to_vec()),
        (None, half_bad.to_string().into_bytes()),
        (Some("application/x-protobuf"), vec![0xff, 0xff, 0xff]),
    ] {
        let (status, content_type_out, text) = post_zipkin(
            &collector,
            spans("/api/v2/spans"),
            content_type,
            false,
            body,
        )
        .await;
        assert_eq!(status, 400, "{content_type:?}: {text}");
        assert_eq!(content_type_out, "text/plain; charset=utf-8");
        assert!(!text.is_empty());
    }
    assert_eq!(get_json(&collector, "/api/v2/services").await, json!([]));
    let (status, _, _) = post_zipkin(
        &collector,
        spans("/api/v2/spans"),
        Some("application/x-thrift"),
        false,
        vec![1],
    )
    .await;
    assert_eq!(status, 415);
    let (status, _, _) = post_zipkin(&collector, spans("/api/v2/spans"), None, false, vec![]).await;
    assert_eq!(status, 202, "an empty body is accepted");

    let cases: &[(&str, u16, &str)] = &[
        (
            "/api/v2/trace/0123456789abcdef",
            404,
            "0123456789abcdef not found",
        ),
        ("/api/v2/trace/123", 404, "0000000000000123 not found"),
        (
            "/api/v2/trace/0123456789ABCDEF",
            400,
            "0123456789ABCDEF should be lower-hex encoded with no prefix",
        ),
        (
            "/api/v2/trace/0000000000000000",
            400,
            "traceId is all zeros",
        ),
        (
            "/api/v2/trace/0123456789abcdef0123456789abcdef0",
            400,
            "traceId.length > 32",
        ),
        ("/api/v2/traceMany", 400, "traceIds parameter is empty"),
        (
            "/api/v2/traceMany?traceIds=0123456789abcdef",
            400,
            "Use /api/v2/trace/{traceId} endpoint to retrieve a single trace",
        ),
        (
            "/api/v2/traceMany?traceIds=0123456789abcdef,0123456789abcdef",
            400,
            "redundant traceId: 0123456789abcdef",
        ),
        ("/api/v2/spans", 400, "serviceName is required"),
        ("/api/v2/remoteServices", 400, "serviceName is required"),
        ("/api/v2/dependencies", 400, "endTs is required"),
        (
            "/api/v2/traces?limit=x",
            400,
            "parameter limit=\"x\" is not an integer",
        ),
    ];
    for (path, status, message) in cases {
        let (got, content_type, text) = get(&collector, path).await;
        assert_eq!((got, text.as_str()), (*status, *message), "GET {path}");
        assert_eq!(content_type, "text/plain; charset=utf-8", "GET {path}");
    }
    // traceMany answers the traces it finds.
    assert_eq!(
        get_json(
            &collector,
            "/api/v2/traceMany?traceIds=0123456789abcdef,0123456789abcde0"
        )
        .await,
        json!([])
    );
    // Name lists carry Cache-Control once there are more than 3 services.
    for (index, service) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let body = json!([{"traceId": "000000000000000a", "id": format!("{:016x}", index + 1),
            "timestamp": start_us, "localEndpoint": {"serviceName": service}}]);
        post_zipkin(
            &collector,
            spans("/api/v2/spans"),
            None,
            false,
            body.to_string().into_bytes(),
        )
        .await;
    }
    let response = collector
        .client
        .get(spans("/api/v2/services"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["cache-control"],
        "max-age=300, must-revalidate"
    );
    collector.stop().await;
}
