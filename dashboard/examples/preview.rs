//! Dev preview of the dashboard without a collector.
//!
//! Serves `weft_dashboard::router()` as the fallback (as the collector does)
//! plus the native API routes, answered from the JSON files in
//! `examples/fixtures/`: the demo mesh `unknown -> web -> stock-api v1/v2 ->
//! products`, a 13-span trace with errors, an orphan span and hostile
//! attribute text, and a generated 10,000-span trace; `operations`, `red`
//! and `split` answer made-up series (a 90/10 canary whose v2 fails more).
//!
//! ```text
//! cargo run -p weft-dashboard --example preview                 # demo data
//! cargo run -p weft-dashboard --example preview -- --empty      # every list empty
//! cargo run -p weft-dashboard --example preview -- --addr 127.0.0.1:8080
//! cargo run -p weft-dashboard --example preview -- --graph my-graph.json
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

const SERVICES: &str = include_str!("fixtures/services.json");
const TRACES: &str = include_str!("fixtures/traces.json");
const TRACE_DEMO: &str = include_str!("fixtures/trace-demo.json");
const GRAPH: &str = include_str!("fixtures/graph.json");

/// Id of the generated large trace (listed in `fixtures/traces.json`).
const BIG_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BIG_TRACE_SPANS: usize = 10_000;

struct Fixtures {
    empty: bool,
    services: Value,
    /// Trace summaries, newest first, times shifted to "just now".
    traces: Vec<Value>,
    total: u64,
    /// Full traces by id.
    details: HashMap<String, Value>,
    graph: Value,
}

type Shared = Arc<Fixtures>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut empty = false;
    let mut addr = String::from("127.0.0.1:0");
    let mut graph_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--empty" => empty = true,
            "--addr" => {
                addr = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--addr needs a value"))?
            }
            "--graph" => {
                graph_file = Some(
                    args.next()
                        .ok_or_else(|| anyhow::anyhow!("--graph needs a file"))?,
                );
            }
            other => {
                anyhow::bail!("unknown argument {other:?} (use --empty, --addr ADDR, --graph FILE)")
            }
        }
    }

    let mut fixtures = load(empty)?;
    if let Some(path) = graph_file {
        fixtures.graph = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    }
    let fixtures = Arc::new(fixtures);
    let app = Router::new()
        .route("/api/weft/services", get(services))
        .route("/api/weft/traces", get(traces))
        .route("/api/weft/traces/{id}", get(trace))
        .route("/api/weft/graph", get(graph))
        .route("/api/weft/operations", get(operations))
        .route("/api/weft/red", get(red))
        .route("/api/weft/split", get(split))
        .with_state(fixtures)
        .fallback_service(weft_dashboard::router());

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("dashboard preview: http://{}/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn load(empty: bool) -> anyhow::Result<Fixtures> {
    let listed: Value = serde_json::from_str(TRACES)?;
    let mut traces = listed["traces"].as_array().cloned().unwrap_or_default();
    let total = listed["total"].as_u64().unwrap_or(traces.len() as u64);

    // Shift every timestamp so the newest trace started five seconds ago.
    let newest = traces
        .iter()
        .filter_map(|t| t["start_us"].as_i64())
        .max()
        .unwrap_or(0);
    let shift = now_us() - 5_000_000 - newest;
    for trace in &mut traces {
        add(&mut trace["start_us"], shift);
    }

    let mut details = HashMap::new();
    let mut demo: Value = serde_json::from_str(TRACE_DEMO)?;
    shift_trace(&mut demo, shift);
    details.insert(
        demo["trace_id"].as_str().unwrap_or_default().to_owned(),
        demo,
    );
    for summary in &traces {
        let id = summary["trace_id"].as_str().unwrap_or_default().to_owned();
        if details.contains_key(&id) {
            continue;
        }
        let detail = if id == BIG_TRACE_ID {
            big_trace(summary)
        } else {
            synthetic_trace(summary)
        };
        details.insert(id, detail);
    }

    Ok(Fixtures {
        empty,
        services: serde_json::from_str(SERVICES)?,
        traces,
        total,
        details,
        graph: serde_json::from_str(GRAPH)?,
    })
}

fn add(value: &mut Value, shift: i64) {
    if let Some(v) = value.as_i64() {
        *value = json!(v + shift);
    }
}

fn shift_trace(trace: &mut Value, shift: i64) {
    for span in trace["spans"].as_array_mut().into_iter().flatten() {
        add(&mut span["start_us"], shift);
        for event in span["events"].as_array_mut().into_iter().flatten() {
            add(&mut event["time_us"], shift);
        }
    }
}

// === Handlers ===

/// Root operations of the listed traces that involve the service.
async fn operations(
    State(f): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let service = q.get("service").cloned().unwrap_or_default();
    let mut operations: Vec<String> = f
        .traces
        .iter()
        .filter(|t| t["root_service"] == service.as_str())
        .filter_map(|t| t["root_operation"].as_str().map(str::to_owned))
        .collect();
    operations.sort();
    operations.dedup();
    Json(json!({ "service": service, "operations": operations }))
}

/// A made-up RED series over the asked window: 20 steps with a gentle wave.
fn red_points(end_ms: i64, window_s: i64, rps: f64, error_rate: f64) -> (Value, Vec<Value>) {
    let step_s = (window_s / 20).max(5);
    let points: Vec<Value> = (0..20)
        .map(|i| {
            let wave = 1.0 + 0.2 * ((i as f64) / 3.0).sin();
            json!({
                "t_ms": end_ms - (19 - i) * step_s * 1000,
                "requests": (rps * wave * step_s as f64).round(),
                "errors": (rps * wave * step_s as f64 * error_rate).round(),
                "rps": rps * wave,
                "error_rate": error_rate * wave,
                "p50_ms": 11.0 * wave,
                "p95_ms": 38.0 * wave,
                "p99_ms": 80.0 * wave,
            })
        })
        .collect();
    let requests = rps * window_s as f64;
    let summary = json!({
        "requests": requests.round(), "errors": (requests * error_rate).round(), "rps": rps,
        "error_rate": error_rate, "p50_ms": 11.0, "p95_ms": 38.0, "p99_ms": 80.0,
    });
    (summary, points)
}

fn window(q: &HashMap<String, String>) -> (i64, i64) {
    let window_s = q.get("window").and_then(|w| w.parse().ok()).unwrap_or(300);
    let end_ms = q
        .get("end_ms")
        .and_then(|e| e.parse().ok())
        .unwrap_or(now_us() / 1000);
    (window_s, end_ms)
}

async fn red(State(f): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let (window_s, end_ms) = window(&q);
    let (summary, points) = red_points(end_ms, window_s, if f.empty { 0.0 } else { 3.0 }, 0.01);
    Json(json!({
        "service": q.get("service"), "workload": q.get("workload"),
        "start_ms": end_ms - window_s * 1000, "end_ms": end_ms, "step_s": (window_s / 20).max(5),
        "summary": summary, "points": points,
    }))
}

/// A 90/10 canary whose v2 fails more often than v1.
async fn split(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let (window_s, end_ms) = window(&q);
    let service = q.get("service").cloned().unwrap_or_default();
    let (v1, points) = red_points(end_ms, window_s, 2.7, 0.002);
    let (v2, _) = red_points(end_ms, window_s, 0.3, 0.05);
    let timeline: Vec<Value> = points
        .iter()
        .map(|p| json!({"t_ms": p["t_ms"], "requests": 60, "shares": {"v1": 89.0, "v2": 11.0}}))
        .collect();
    let version = |name: &str, configured: f64, observed: f64, red: &Value| {
        let mut v = red.clone();
        v["version"] = json!(name);
        v["configured_percent"] = json!(configured);
        v["observed_percent"] = json!(observed);
        v
    };
    Json(json!({
        "service": service, "start_ms": end_ms - window_s * 1000, "end_ms": end_ms, "step_s": 15,
        "routes": [{"virtual_service": format!("default/{service}"), "route": "canary",
                    "destinations": [{"version": "v1", "subset": "v1", "weight_percent": 90.0},
                                     {"version": "v2", "subset": "v2", "weight_percent": 10.0}]}],
        "versions": [version("v1", 90.0, 90.0, &v1), version("v2", 10.0, 10.0, &v2)],
        "timeline": timeline,
        "verdict": {"status": "canary_worse", "canary": "v2", "stable": "v1", "min_requests": 50,
                    "errors": {"rule": "Two-proportion z-test, one-sided (preview data).",
                               "canary_error_rate": 0.05, "stable_error_rate": 0.002,
                               "z": 6.1, "p_value": 5e-10, "alpha": 0.05, "significant": true},
                    "latency": null,
                    "summary": ["v2 fails more often than v1 (preview data)."]},
    }))
}

async fn services(State(f): State<Shared>) -> Json<Value> {
    if f.empty {
        return Json(json!({ "services": [] }));
    }
    Json(f.services.clone())
}

async fn traces(State(f): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    if f.empty {
        return Json(json!({ "traces": [], "total": 0 }));
    }
    let service = q.get("service").map(String::as_str).unwrap_or("");
    let operation = q.get("operation").map(String::as_str).unwrap_or("");
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20);
    let lookback = q
        .get("lookback")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(3600);
    let since = now_us() - lookback * 1_000_000;

    let matching: Vec<&Value> = f
        .traces
        .iter()
        .filter(|t| t["start_us"].as_i64().unwrap_or(0) >= since)
        .filter(|t| {
            service.is_empty()
                || t["services"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|name| name == service))
        })
        .filter(|t| operation.is_empty() || t["root_operation"] == operation)
        .collect();
    // The fixture stands for a larger store: unfiltered searches report its total.
    let total = if service.is_empty() && operation.is_empty() && lookback >= 3600 {
        f.total.max(matching.len() as u64)
    } else {
        matching.len() as u64
    };
    let page: Vec<&Value> = matching.into_iter().take(limit).collect();
    Json(json!({ "traces": page, "total": total }))
}

async fn trace(State(f): State<Shared>, Path(id): Path<String>) -> Response {
    match f.details.get(&id.to_ascii_lowercase()) {
        Some(trace) if !f.empty => Json(trace.clone()).into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("trace {id} not found") })),
        )
            .into_response(),
    }
}

async fn graph(State(f): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let window = q
        .get("window")
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap_or(300)
        .max(1);
    let end_ms = now_us() / 1000;
    let start_ms = end_ms - window * 1000;
    if f.empty {
        return Json(json!({ "start_ms": start_ms, "end_ms": end_ms, "nodes": [], "edges": [] }));
    }
    // The fixture describes 300 s of steady traffic; scale counts to the window.
    let mut graph = f.graph.clone();
    graph["start_ms"] = json!(start_ms);
    graph["end_ms"] = json!(end_ms);
    for item in ["nodes", "edges"] {
        for entry in graph[item].as_array_mut().into_iter().flatten() {
            for field in ["requests", "errors"] {
                if let Some(n) = entry[field].as_i64() {
                    entry[field] = json!(n * window / 300);
                }
            }
        }
    }
    Json(graph)
}

// === Generated traces ===

/// A small deterministic pseudo-random generator (xorshift), so the preview
/// needs no extra dependency and shows the same trace on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn resource(service: &str, version: &str) -> Value {
    json!({
        "service.name": service,
        "service.version": version,
        "k8s.namespace.name": "default",
        "telemetry.sdk.name": "weft-proxy",
    })
}

/// A plausible trace for a listed summary: the root span plus one client and
/// server pair per further service.
fn synthetic_trace(summary: &Value) -> Value {
    let id = summary["trace_id"].as_str().unwrap_or_default();
    let start = summary["start_us"].as_i64().unwrap_or(0);
    let duration = summary["duration_us"].as_i64().unwrap_or(1000).max(10);
    let root_service = summary["root_service"].as_str().unwrap_or("web");
    let errors = summary["error_count"].as_i64().unwrap_or(0);
    let services: Vec<&str> = summary["services"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut spans = vec![json!({
        "span_id": format!("{:016x}", 1),
        "parent_span_id": null,
        "service": root_service,
        "service_version": "v1",
        "operation": summary["root_operation"],
        "kind": "SERVER",
        "start_us": start,
        "duration_us": duration,
        "status": if errors > 0 { "ERROR" } else { "UNSET" },
        "status_message": if errors > 0 { "HTTP 503" } else { "" },
        "attributes": { "http.request.method": "GET", "http.response.status_code": if errors > 0 { 503 } else { 200 } },
        "resource": resource(root_service, "v1"),
        "events": [],
    })];
    let mut parent = 1u64;
    let mut offset = duration / 10;
    let mut remaining = duration - offset * 2;
    for (n, service) in services.iter().filter(|s| **s != root_service).enumerate() {
        let client = 2 * n as u64 + 2;
        let server = client + 1;
        let failing = errors > 0 && n == 0;
        spans.push(json!({
            "span_id": format!("{client:016x}"), "parent_span_id": format!("{parent:016x}"),
            "service": spans[0]["service"].clone(), "service_version": "v1",
            "operation": format!("GET /{service}"), "kind": "CLIENT",
            "start_us": start + offset, "duration_us": remaining,
            "status": if failing { "ERROR" } else { "UNSET" }, "status_message": "",
            "attributes": { "server.address": service }, "resource": resource(root_service, "v1"), "events": [],
        }));
        spans.push(json!({
            "span_id": format!("{server:016x}"), "parent_span_id": format!("{client:016x}"),
            "service": service, "service_version": "v1",
            "operation": format!("GET /{service}"), "kind": "SERVER",
            "start_us": start + offset + remaining / 20, "duration_us": remaining * 9 / 10,
            "status": if failing { "ERROR" } else { "UNSET" },
            "status_message": if failing { "upstream failed" } else { "" },
            "attributes": {}, "resource": resource(service, "v1"), "events": [],
        }));
        parent = server;
        offset += remaining / 10;
        remaining = remaining * 8 / 10;
    }
    json!({ "trace_id": id, "spans": spans })
}

/// A 10,000-span trace: a bulk import fanning out over the demo services.
fn big_trace(summary: &Value) -> Value {
    let start = summary["start_us"].as_i64().unwrap_or(0);
    let duration = summary["duration_us"].as_i64().unwrap_or(2_400_000);
    let services = [
        ("web", "v1"),
        ("stock-api", "v1"),
        ("stock-api", "v2"),
        ("products", "v1"),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // (span index, depth, start, duration, service index)
    let mut queue = std::collections::VecDeque::from([(0usize, 0u32, start, duration, 0usize)]);
    let mut spans = vec![json!({
        "span_id": format!("{:016x}", 0x1000u64),
        "parent_span_id": null,
        "service": "web", "service_version": "v1",
        "operation": summary["root_operation"], "kind": "SERVER",
        "start_us": start, "duration_us": duration,
        "status": "UNSET", "status_message": "",
        "attributes": { "http.request.method": "POST", "url.path": "/bulk-import", "http.response.status_code": 200, "import.items": 2500 },
        "resource": resource("web", "v1"), "events": [],
    })];
    while let Some((parent, depth, p_start, p_dur, p_service)) = queue.pop_front() {
        if spans.len() >= BIG_TRACE_SPANS {
            break;
        }
        let children = match depth {
            0 => 60,
            1 => 4 + rng.below(6),
            2..=5 => rng.below(5),
            _ => rng.below(2),
        };
        let slot = p_dur / (children as i64 + 1).max(1);
        for c in 0..children {
            if spans.len() >= BIG_TRACE_SPANS {
                break;
            }
            let service = if depth == 0 {
                p_service
            } else {
                (p_service + 1 + rng.below(2) as usize) % services.len()
            };
            let (name, version) = services[service];
            let c_start =
                p_start + slot * c as i64 + (rng.below(slot.max(1) as u64 / 4 + 1) as i64);
            let c_dur = (slot as f64 * (0.4 + (rng.below(60) as f64) / 100.0)) as i64 + 5;
            let error = rng.below(250) == 0;
            let index = spans.len();
            let kind = ["CLIENT", "SERVER", "INTERNAL"][(depth as usize + c as usize) % 3];
            let operation = match kind {
                "INTERNAL" => format!("process batch {}", rng.below(400)),
                _ => format!("GET /items/{}", rng.below(2500)),
            };
            spans.push(json!({
                "span_id": format!("{:016x}", 0x1000 + index as u64),
                "parent_span_id": spans[parent]["span_id"].clone(),
                "service": name, "service_version": version,
                "operation": operation, "kind": kind,
                "start_us": c_start, "duration_us": c_dur,
                "status": if error { "ERROR" } else { "UNSET" },
                "status_message": if error { "item rejected" } else { "" },
                "attributes": { "item.index": index, "weft.retry.attempt": 0, "thread.id": rng.below(16) },
                "resource": resource(name, version), "events": [],
            }));
            queue.push_back((index, depth + 1, c_start, c_dur, service));
        }
    }
    json!({ "trace_id": BIG_TRACE_ID, "spans": spans })
}
