//! Malformed input never crashes a process: it gets a clear error that
//! names what was wrong, and nothing is stored half-way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Mesh, client};

#[tokio::test]
async fn proxy_refuses_bad_yaml_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("routes.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n  hosts: [x]\n  http:\n  - route: [\n  - name: next\n",
    )
    .expect("write");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let result = weft_proxy::Config {
        workload: "web".into(),
        namespace: "default".into(),
        service_account: "web".into(),
        labels: BTreeMap::new(),
        config_paths: vec![dir.path().to_path_buf()],
        app: any,
        inbound: any.into(),
        outbound: any.into(),
        admin: any.into(),
        collector: None,
        sampling_rate: 1.0,
        metrics_interval: Duration::from_secs(10),
        tls: None,
        telemetry: weft_proxy::TelemetryOptions::default(),
    }
    .build()
    .await;
    let Err(error) = result else {
        panic!("a proxy started on a broken config")
    };
    let message = error.to_string();
    assert!(
        message.contains(&format!("{}:9:3: error", file.display())),
        "error does not name file and line: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_otlp_gets_400_and_stores_nothing() {
    let mesh = Mesh::start(0.0).await;
    let otlp = format!("http://{}/v1/traces", mesh.demo.collector.otlp_http_addr());
    let http = client();

    let garbage = http
        .post(&otlp)
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff, 0x0f, 0x01])
        .send()
        .await
        .expect("post");
    assert_eq!(garbage.status(), 400);

    // One good span and one with an all-zero trace id in the same request:
    // the whole request is refused.
    let good_trace = "5b8efff798038103d269b633813fc60c";
    let body = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "intruder"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": good_trace, "spanId": "eee19b7ec3c1b174", "name": "good",
             "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"},
            {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b175", "name": "bad",
             "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"}
        ]}]
    }]});
    let refused = http.post(&otlp).json(&body).send().await.expect("post");
    assert_eq!(refused.status(), 400);

    let lookup = http
        .get(mesh.collector_url(&format!("/api/traces/{good_trace}")))
        .send()
        .await
        .expect("jaeger api");
    assert_eq!(lookup.status(), 404, "half of a refused request was stored");
    let services: serde_json::Value = http
        .get(mesh.collector_url("/api/services"))
        .send()
        .await
        .expect("services")
        .json()
        .await
        .expect("json");
    assert!(
        !services["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|s| s == "intruder"),
        "{services}"
    );
    mesh.shutdown().await;
}
