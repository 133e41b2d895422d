//! Synthetic data for the browser tests, sent through the collector's real
//! ingest endpoints: big and hostile traces as Zipkin v2 JSON, a 200-service
//! mesh as OTLP/HTTP JSON `istio_requests_total` counters.

use serde_json::{Value, json};

use crate::support::client;

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A trace of `count` spans: a root, then a tree with fan-out 10 across 8
/// services; every 97th span is an error. Ids are derived from `seed`.
pub fn big_trace(trace_id: &str, count: usize) -> Vec<Value> {
    let start = now_us() - 5_000_000;
    let total = 4_000_000_i64;
    let mut spans = Vec::with_capacity(count);
    for index in 0..count {
        let parent = (index > 0).then(|| (index - 1) / 10);
        let depth = {
            let mut d = 0;
            let mut i = index;
            while i > 0 {
                i = (i - 1) / 10;
                d += 1;
            }
            d
        };
        let width = total >> (2 * depth).min(20);
        let offset = i64::try_from(index % 10).unwrap_or(0) * (width / 12);
        let mut span = json!({
            "traceId": trace_id,
            "id": format!("{:016x}", index + 1),
            "name": format!("op-{}", index % 13),
            "timestamp": start + offset + i64::from(depth) * 1000,
            "duration": (width / 2).max(1),
            "kind": if index % 2 == 0 { "SERVER" } else { "CLIENT" },
            "localEndpoint": {"serviceName": format!("big-{}", index % 8)},
            "tags": {"test.index": index.to_string()},
        });
        if let Some(parent) = parent {
            span["parentId"] = json!(format!("{:016x}", parent + 1));
        }
        if index % 97 == 5 {
            span["tags"]["error"] = json!("boom");
        }
        spans.push(span);
    }
    spans
}

/// One span whose attributes hold markup that must render as text.
pub fn hostile_trace(trace_id: &str) -> Vec<Value> {
    vec![json!({
        "traceId": trace_id,
        "id": "00000000000000aa",
        "name": "GET /<b>bold</b>",
        "timestamp": now_us() - 2_000_000,
        "duration": 1500,
        "kind": "SERVER",
        "localEndpoint": {"serviceName": "hostile"},
        "tags": {
            "evil": "<script>alert(1)</script>",
            "img": "<img src=x onerror=\"window.__xss=1\">",
            "test.marker": "xss-1",
        },
    })]
}

/// `count` one-span traces of the service `pager`, a second apart and all
/// over a minute old, newest first: each comes whole in one request, so the
/// pages of a search for them cannot move while the test reads them.
pub fn paging_traces(count: usize) -> (Vec<String>, Vec<Value>) {
    let newest = now_us() - 60_000_000;
    let mut ids = Vec::with_capacity(count);
    let mut spans = Vec::with_capacity(count);
    for index in 0..count {
        let trace_id = format!("9a9e{index:028x}");
        spans.push(json!({
            "traceId": trace_id,
            "id": format!("{:016x}", index + 1),
            "name": "GET /page",
            "timestamp": newest - i64::try_from(index).unwrap_or(0) * 1_000_000,
            "duration": 1000,
            "kind": "SERVER",
            "localEndpoint": {"serviceName": "pager"},
        }));
        ids.push(trace_id);
    }
    (ids, spans)
}

/// Posts Zipkin v2 spans to the collector's HTTP listener.
pub async fn post_zipkin(base: &str, spans: &[Value]) {
    let response = client()
        .post(format!("{base}api/v2/spans"))
        .json(&spans)
        .send()
        .await
        .expect("post spans");
    assert!(
        response.status().is_success(),
        "zipkin ingest: {}",
        response.status()
    );
}

fn attribute(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// `istio_requests_total` for a mesh of `services` apps in tiers of 20
/// (one workload `svc-NNN-v1` each; every tenth app also has a `v2`):
/// service N (tier t, position p) calls the tier t+1 services at positions
/// p, p+7 and p+13 (mod 20); ingress traffic reaches tier 0; every 13th
/// service answers some 503s. One cumulative point per series,
/// destination-reported, over mTLS.
pub fn synthetic_mesh_metrics(services: usize) -> Value {
    const TIER: usize = 20;
    let now_ns = now_us() * 1000;
    let start_ns = now_ns - 60_000_000_000;
    let workload = |n: usize, v: &str| format!("svc-{n:03}-{v}");
    let mut points = Vec::new();
    let mut point = |source: Option<usize>, dest: usize, version: &str, code: &str, value: f64| {
        let (source_workload, source_app) = match source {
            Some(s) => (workload(s, "v1"), format!("svc-{s:03}")),
            None => ("unknown".to_owned(), "unknown".to_owned()),
        };
        points.push(json!({
            "attributes": [
                attribute("reporter", "destination"),
                attribute("source_workload", &source_workload),
                attribute("source_workload_namespace", if source.is_some() { "bench" } else { "unknown" }),
                attribute("source_app", &source_app),
                attribute("source_version", if source.is_some() { "v1" } else { "unknown" }),
                attribute("destination_workload", &workload(dest, version)),
                attribute("destination_workload_namespace", "bench"),
                attribute("destination_app", &format!("svc-{dest:03}")),
                attribute("destination_version", version),
                attribute("destination_service", &format!("svc-{dest:03}.bench.svc.cluster.local")),
                attribute("request_protocol", "http"),
                attribute("response_code", code),
                attribute("connection_security_policy", "mutual_tls"),
            ],
            "startTimeUnixNano": start_ns.to_string(),
            "timeUnixNano": now_ns.to_string(),
            "asDouble": value,
        }));
    };
    for dest in 0..services {
        let versions: &[&str] = if dest % 10 == 3 {
            &["v1", "v2"]
        } else {
            &["v1"]
        };
        let (tier, position) = (dest / TIER, dest % TIER);
        for version in versions {
            if tier == 0 {
                point(None, dest, version, "200", 600.0);
                continue;
            }
            for shift in [0, TIER - 7, TIER - 13] {
                let source = (tier - 1) * TIER + (position + shift) % TIER;
                let requests = 300.0 + f64::from(u32::try_from(dest % 7).unwrap_or(0)) * 50.0;
                point(Some(source), dest, version, "200", requests);
                if dest % 13 == 0 {
                    point(Some(source), dest, version, "503", 30.0);
                }
            }
        }
    }
    json!({
        "resourceMetrics": [{
            "resource": {"attributes": [attribute("service.name", "synthetic")]},
            "scopeMetrics": [{
                "scope": {"name": "weft-browser-test"},
                "metrics": [{
                    "name": "istio_requests_total",
                    "sum": {
                        "aggregationTemporality": 2,
                        "isMonotonic": true,
                        "dataPoints": points,
                    },
                }],
            }],
        }],
    })
}

/// Posts OTLP/HTTP JSON metrics.
pub async fn post_otlp_metrics(otlp_http: std::net::SocketAddr, body: &Value) {
    let response = client()
        .post(format!("http://{otlp_http}/v1/metrics"))
        .json(body)
        .send()
        .await
        .expect("post metrics");
    assert!(
        response.status().is_success(),
        "otlp metrics: {} {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
}
