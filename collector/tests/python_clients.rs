//! Real clients: the OpenTelemetry Python SDK exporting over OTLP/gRPC,
//! OTLP/HTTP protobuf and OTLP/HTTP JSON, and its Zipkin JSON exporter, into
//! a collector; the spans come back from the Jaeger and Zipkin APIs, the
//! metrics from the store.
//!
//! The interpreter is `$WEFT_PYTHON`, else `$HOME/.cache/weft-venv/bin/python`.
//! The SDK's OTLP/HTTP JSON exporter (`opentelemetry-exporter-otlp-json-http`
//! 0.66b1) needs versions that conflict with the 1.45.2 protobuf exporters,
//! so it has a venv of its own: `$WEFT_PYTHON_JSON`, else
//! `$HOME/.cache/weft-venv-json/bin/python`. `scripts/test` creates both. A
//! missing interpreter or package fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::TestCollector;
use serde_json::Value;
use weft_collector::store;

/// The venv of `tests/python/requirements.txt`.
const SDK: (&str, &str) = ("WEFT_PYTHON", ".cache/weft-venv/bin/python");
/// The venv of `tests/python/requirements-json.txt`.
const SDK_JSON: (&str, &str) = ("WEFT_PYTHON_JSON", ".cache/weft-venv-json/bin/python");

/// The interpreter named by the variable, else the venv under `$HOME`.
fn python((variable, under_home): (&str, &str)) -> PathBuf {
    let python = std::env::var_os(variable)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(under_home)))
        .expect("the interpreter's variable or HOME");
    assert!(
        python.exists(),
        "no Python interpreter at {} — run scripts/test (it creates the venvs \
         of tests/python and exports {variable})",
        python.display()
    );
    python
}

/// Runs `tests/python/otel_clients.py MODE ENDPOINT` with the interpreter of
/// `venv`; returns its JSON line.
async fn run_client(venv: (&str, &str), mode: &str, endpoint: String) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/otel_clients.py");
    let python = python(venv);
    let mode = mode.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(&mode)
            .arg(&endpoint)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(3),
        "Python packages missing — run scripts/test: {stderr}"
    );
    assert!(output.status.success(), "client failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn check_trace(collector: &TestCollector, printed: &Value) {
    let trace_id = printed["trace_id"].as_str().unwrap();
    let service = printed["service"].as_str().unwrap();
    let jaeger = collector
        .get_json(&format!("/api/traces/{trace_id}"), 200)
        .await;
    let trace = &jaeger["data"][0];
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{jaeger}");
    let charge = spans
        .iter()
        .find(|span| span["operationName"] == "charge")
        .unwrap();
    let process = charge["processID"].as_str().unwrap();
    assert_eq!(trace["processes"][process]["serviceName"], service);
    assert_eq!(charge["references"][0]["refType"], "CHILD_OF");
    assert!(charge["logs"].as_array().unwrap().len() == 1, "{charge}");
    assert!(
        charge["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|tag| tag["key"] == "error" && tag["value"] == true),
        "{charge}"
    );
    let zipkin: Value = collector
        .client
        .get(collector.zipkin(&format!("/api/v2/trace/{trace_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spans = zipkin.as_array().unwrap();
    assert_eq!(spans.len(), 2, "{zipkin}");
    let charge = spans.iter().find(|span| span["name"] == "charge").unwrap();
    assert_eq!(charge["kind"], "CLIENT");
    assert_eq!(charge["localEndpoint"]["serviceName"], service);
    assert_eq!(charge["remoteEndpoint"]["serviceName"], "payments");
    assert_eq!(charge["tags"]["error"], "card declined");
}

async fn check_metrics(collector: &TestCollector, service: &str) {
    let db = format!(
        "sqlite://{}",
        collector.dir.path().join("data/weft.db").display()
    );
    let store = store::open(&db).await.unwrap();
    let windows = store
        .series_window("py_requests", 0, i64::MAX)
        .await
        .unwrap();
    store.close().await;
    let window = windows
        .iter()
        .find(|window| window.labels.get("route").map(String::as_str) == Some("/checkout"))
        .unwrap_or_else(|| panic!("no py_requests series from {service}: {windows:?}"));
    assert_eq!(window.points.last().unwrap().value, 3.0);
}

#[tokio::test]
async fn python_sdk_otlp_grpc() {
    let collector = TestCollector::start().await;
    let printed = run_client(SDK, "grpc", collector.grpc_endpoint()).await;
    check_trace(&collector, &printed).await;
    check_metrics(&collector, "py-grpc").await;
    collector.stop().await;
}

/// An OTLP/HTTP exporter of the SDK (`mode` http-protobuf or http-json).
async fn otlp_http(venv: (&str, &str), mode: &str) {
    let collector = TestCollector::start().await;
    let endpoint = format!("http://{}", collector.collector.otlp_http_addr());
    let printed = run_client(venv, mode, endpoint).await;
    check_trace(&collector, &printed).await;
    check_metrics(&collector, &format!("py-{mode}")).await;
    collector.stop().await;
}

#[tokio::test]
async fn python_sdk_otlp_http_protobuf() {
    otlp_http(SDK, "http-protobuf").await;
}

#[tokio::test]
async fn python_sdk_otlp_http_json() {
    otlp_http(SDK_JSON, "http-json").await;
}

#[tokio::test]
async fn python_sdk_zipkin_exporter() {
    let collector = TestCollector::start().await;
    let printed = run_client(SDK, "zipkin", collector.zipkin("/api/v2/spans")).await;
    check_trace(&collector, &printed).await;
    collector.stop().await;
}
