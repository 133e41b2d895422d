//! Trace context across two hops: a trace started by the client (W3C or B3)
//! continues through every sidecar and lands in the collector as one trace
//! with correct parent links, retrievable by Jaeger's `GET /api/traces/{id}`.

use serde_json::Value;

use crate::support::{Mesh, client, eventually};

/// Fetches a trace through the Jaeger API until it has `spans` spans.
async fn jaeger_trace(mesh: &Mesh, trace_id: &str, spans: usize) -> Value {
    let url = mesh.collector_url(&format!("/api/traces/{trace_id}"));
    eventually(&format!("trace {trace_id} with {spans} spans"), || async {
        let response = client().get(&url).send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        let found = body["data"][0]["spans"].as_array().map_or(0, Vec::len);
        if status == 200 && found == spans {
            Ok(body)
        } else {
            Err(format!("status {status}, {found} spans"))
        }
    })
    .await
}

/// One span as (service, kind, span id, parent span id).
#[derive(Debug, Clone)]
struct SpanView {
    service: String,
    kind: String,
    span_id: String,
    parent: Option<String>,
}

fn spans(trace: &Value) -> Vec<SpanView> {
    let data = &trace["data"][0];
    let processes = &data["processes"];
    data["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|span| {
            let tag = |key: &str| {
                span["tags"]
                    .as_array()
                    .and_then(|tags| tags.iter().find(|t| t["key"] == key))
                    .and_then(|t| t["value"].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let parent = span["references"]
                .as_array()
                .and_then(|refs| refs.iter().find(|r| r["refType"] == "CHILD_OF"))
                .and_then(|r| r["spanID"].as_str())
                .map(str::to_string);
            SpanView {
                service: processes[span["processID"].as_str().unwrap_or_default()]["serviceName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                kind: tag("span.kind"),
                span_id: span["spanID"].as_str().unwrap_or_default().to_string(),
                parent,
            }
        })
        .collect()
}

/// Asserts the chain web SERVER → web CLIENT → stock-api SERVER →
/// stock-api CLIENT → products SERVER, rooted at `client_span`.
fn assert_chain(trace: &Value, client_span: &str) {
    let spans = spans(trace);
    let find = |service: &str, kind: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} span of {service} in {spans:#?}"))
            .clone()
    };
    let web_server = find("web", "server");
    let web_client = find("web", "client");
    let stock_server = find("stock-api", "server");
    let stock_client = find("stock-api", "client");
    let products_server = find("products", "server");
    assert_eq!(web_server.parent.as_deref(), Some(client_span));
    assert_eq!(web_client.parent, Some(web_server.span_id.clone()));
    assert_eq!(stock_server.parent, Some(web_client.span_id.clone()));
    assert_eq!(stock_client.parent, Some(stock_server.span_id.clone()));
    assert_eq!(products_server.parent, Some(stock_client.span_id.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3c_and_b3_traces_continue_through_every_hop() {
    let mesh = Mesh::start(0.0).await;
    let web = mesh.workload("web").proxy.inbound_addr();

    // A sampled-out trace is propagated but never reported: sent first, it
    // must still be absent once the later traces have arrived.
    let denied = "0af7651916cd43dd8448eb211c80319c";
    let response = client()
        .get(format!("http://{web}/?item=apple"))
        .header("host", "web")
        .header("traceparent", format!("00-{denied}-b7ad6b7169203331-00"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    // W3C traceparent.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let response = client()
        .get(format!("http://{web}/?item=fig"))
        .header("host", "web")
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let trace = jaeger_trace(&mesh, trace_id, 5).await;
    assert_eq!(trace["data"][0]["traceID"], trace_id);
    assert_chain(&trace, parent);

    // B3 multi-header only, 128-bit trace id.
    let trace_id = "80f198ee56343ba864fe8b2a57d3eff7";
    let parent = "e457b5a2e4d86bd1";
    let response = client()
        .get(format!("http://{web}/?item=apple"))
        .header("host", "web")
        .header("x-b3-traceid", trace_id)
        .header("x-b3-spanid", parent)
        .header("x-b3-sampled", "1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let trace = jaeger_trace(&mesh, trace_id, 5).await;
    assert_chain(&trace, parent);

    // B3 single header with a 64-bit trace id.
    let trace_id = "463ac35c9f6413ad";
    let parent = "a2fb4a1d1a96d312";
    let response = client()
        .get(format!("http://{web}/?item=cherry"))
        .header("host", "web")
        .header("b3", format!("{trace_id}-{parent}-1"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let trace = jaeger_trace(&mesh, trace_id, 5).await;
    assert_chain(&trace, parent);

    let response = client()
        .get(mesh.collector_url(&format!("/api/traces/{denied}")))
        .send()
        .await
        .expect("jaeger api");
    assert_eq!(response.status(), 404, "a sampled-out trace was stored");

    mesh.shutdown().await;
}
