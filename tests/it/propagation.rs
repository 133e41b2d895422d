//! Trace-context conformance against a real third-party implementation:
//! the Python OpenTelemetry SDK as client (W3C, B3 multi, B3 single) and as
//! upstream application, through two weft hops:
//!
//! Python client → weft A (outbound, as HTTP proxy) → weft B (inbound) →
//! Python upstream.

use serde_json::Value;

use crate::support::{PythonUpstream, TwoHops, python, python_script};

/// Runs the Python client with `format` through hop A; returns its report.
async fn python_client(hops: &TwoHops, format: &str) -> Value {
    let output = tokio::process::Command::new(python())
        .arg(python_script("client.py"))
        .arg(format)
        .arg(format!("http://{}", hops.a.outbound_addr()))
        .arg("http://upstream/hello")
        .output()
        .await
        .expect("run the Python client");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("client JSON")
}

/// Sends raw headers through hop A; returns the upstream's report.
async fn raw(hops: &TwoHops, headers: &[(&str, &str)]) -> Value {
    let response = hops.get("/hello", headers).await;
    assert_eq!(response.status(), 200, "headers {headers:?}");
    response.json().await.expect("upstream JSON")
}

fn find<'a>(spans: &'a [Value], service: &str, kind: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["service"] == service && s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} span of {service}: {spans:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_traces_continue_through_two_weft_hops() {
    let upstream = PythonUpstream::start().await;
    // New traces are never sampled here: every sampled span comes from a
    // decision the client made.
    let hops = TwoHops::start(upstream.addr, 0.0, Default::default()).await;
    for format in ["w3c", "b3multi", "b3single"] {
        let report = python_client(&hops, format).await;
        assert_eq!(report["status"], 200);
        let trace_id = report["trace_id"].as_str().expect("trace id");
        let client_span = report["span_id"].as_str().expect("span id");
        let upstream = &report["upstream"][format];
        assert_eq!(upstream["valid"], true, "{format}: {report:#}");
        assert_eq!(upstream["trace_id"], trace_id, "{format}: {report:#}");
        assert_eq!(upstream["sampled"], true, "{format}");

        let spans = hops.spans(trace_id, 2).await;
        let a_client = find(&spans, "client", "CLIENT");
        let b_server = find(&spans, "upstream", "SERVER");
        assert_eq!(a_client["parent_span_id"], client_span, "{format}");
        assert_eq!(b_server["parent_span_id"], a_client["span_id"], "{format}");
        // The upstream's parent is the span of the hop that called it.
        assert_eq!(
            upstream["span_id"], b_server["span_id"],
            "{format}: {report:#}"
        );
        // Both formats reach the app, consistently; the single header only
        // when the client used it.
        let headers = &report["upstream"]["headers"];
        assert!(
            headers["traceparent"]
                .as_str()
                .is_some_and(|v| v.contains(trace_id))
        );
        assert_eq!(headers["x-b3-spanid"], b_server["span_id"]);
        assert_eq!(
            headers.get("b3").is_some(),
            format == "b3single",
            "{headers}"
        );
        assert!(
            headers.get("x-weft-peer").is_none(),
            "peer metadata leaked to the app"
        );
    }
    hops.shutdown().await;
}

/// Headers the specs call invalid; each must restart the trace (a new,
/// valid trace id), never fail the request, and drop `tracestate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_trace_headers_restart_the_trace() {
    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SID: &str = "00f067aa0ba902b7";
    let upper = TID.to_uppercase();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "w3c uppercase trace id",
            vec![("traceparent", format!("00-{upper}-{SID}-01"))],
        ),
        (
            "w3c zero trace id",
            vec![("traceparent", format!("00-{}-{SID}-01", "0".repeat(32)))],
        ),
        (
            "w3c zero parent id",
            vec![("traceparent", format!("00-{TID}-{}-01", "0".repeat(16)))],
        ),
        (
            "w3c version ff",
            vec![("traceparent", format!("ff-{TID}-{SID}-01"))],
        ),
        (
            "w3c version 00 with trailing data",
            vec![("traceparent", format!("00-{TID}-{SID}-01-00"))],
        ),
        (
            "w3c short trace id",
            vec![("traceparent", format!("00-{}-{SID}-01", &TID[1..]))],
        ),
        (
            "w3c long parent id",
            vec![("traceparent", format!("00-{TID}-{SID}0-01"))],
        ),
        (
            "w3c bad flags",
            vec![("traceparent", format!("00-{TID}-{SID}-0x"))],
        ),
        (
            "w3c bad separator",
            vec![("traceparent", format!("00_{TID}_{SID}_01"))],
        ),
        (
            "w3c non-hex version",
            vec![("traceparent", format!("0g-{TID}-{SID}-01"))],
        ),
        (
            "w3c future version, bad tail",
            vec![("traceparent", format!("cc-{TID}-{SID}-01.x"))],
        ),
        ("w3c empty", vec![("traceparent", String::new())]),
        (
            "w3c with tracestate",
            vec![
                ("traceparent", format!("00-{TID}-{}-01", "0".repeat(16))),
                ("tracestate", "vendor=keep-me-not".into()),
            ],
        ),
        (
            "b3 single bad trace id",
            vec![("b3", format!("{}-{SID}-1", &TID[..30]))],
        ),
        (
            "b3 single uppercase",
            vec![("b3", format!("{upper}-{SID}-1"))],
        ),
        (
            "b3 single bad sampling",
            vec![("b3", format!("{TID}-{SID}-x"))],
        ),
        (
            "b3 single zero span id",
            vec![("b3", format!("{TID}-{}-1", "0".repeat(16)))],
        ),
        (
            "b3 single bad parent",
            vec![("b3", format!("{TID}-{SID}-1-xyz"))],
        ),
        (
            "b3 single too many parts",
            vec![("b3", format!("{TID}-{SID}-1-{SID}-extra"))],
        ),
        (
            "b3 multi empty sampled",
            vec![
                ("x-b3-traceid", TID.into()),
                ("x-b3-spanid", SID.into()),
                ("x-b3-sampled", String::new()),
            ],
        ),
        (
            "b3 multi bad parent",
            vec![
                ("x-b3-traceid", TID.into()),
                ("x-b3-spanid", SID.into()),
                ("x-b3-parentspanid", "-".into()),
            ],
        ),
        (
            "b3 multi short span id",
            vec![
                ("x-b3-traceid", TID.into()),
                ("x-b3-spanid", SID[2..].into()),
            ],
        ),
        (
            "b3 multi zero trace id",
            vec![
                ("x-b3-traceid", "0".repeat(32)),
                ("x-b3-spanid", SID.into()),
            ],
        ),
        (
            "b3 multi missing span id",
            vec![("x-b3-traceid", TID.into()), ("x-b3-sampled", "1".into())],
        ),
        (
            "b3 multi bad flags",
            vec![
                ("x-b3-traceid", TID.into()),
                ("x-b3-spanid", SID.into()),
                ("x-b3-flags", "2".into()),
            ],
        ),
    ];
    assert!(cases.len() >= 20);
    let upstream = PythonUpstream::start().await;
    let hops = TwoHops::start(upstream.addr, 0.0, Default::default()).await;
    for (name, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let report = raw(&hops, &headers).await;
        let w3c = &report["w3c"];
        assert_eq!(w3c["valid"], true, "{name}: {report:#}");
        assert_ne!(
            w3c["trace_id"], TID,
            "{name}: the invalid trace was continued"
        );
        assert_eq!(
            report["b3multi"]["trace_id"], w3c["trace_id"],
            "{name}: formats disagree"
        );
        assert!(
            report["headers"].get("tracestate").is_none(),
            "{name}: tracestate survived a restart: {report:#}"
        );
    }
    hops.shutdown().await;
}
