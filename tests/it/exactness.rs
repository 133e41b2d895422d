//! The numbers tell the truth: 10,000 requests over the demo's three hops
//! (90/10 split, 5% failing requests), at 100% and at 1% trace sampling.
//! Per (source, destination, version, response code) the collector's counts
//! equal the client's exactly; every sampled request is one complete trace;
//! the p99 from the histograms is within one bucket of the client's.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::time::Instant;
use weft_proxy::telemetry::metrics::ENVOY_DEFAULT_BUCKETS;

use crate::support::{Mesh, client, eventually, promql};

const REQUESTS: usize = 10_000;
const CONCURRENCY: usize = 16;
/// Every 20th request asks for the item `products` fails (503 at every hop).
const BROKEN_EVERY: usize = 20;

/// (source workload, destination workload, destination version, code).
type Key = (String, String, String, String);

struct Observed {
    counts: BTreeMap<Key, f64>,
    latencies_ms: Vec<f64>,
}

async fn send_all(mesh: &Mesh) -> Observed {
    let web = mesh.workload("web").proxy.inbound_addr();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let observed = Arc::new(Mutex::new(Observed {
        counts: BTreeMap::new(),
        latencies_ms: Vec::with_capacity(REQUESTS),
    }));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, observed) = (next.clone(), observed.clone());
        workers.push(tokio::spawn(async move {
            let http = client();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= REQUESTS {
                    break;
                }
                let item = if i % BROKEN_EVERY == 0 {
                    "broken"
                } else {
                    "apple"
                };
                let started = Instant::now();
                let response = http
                    .get(format!("http://{web}/?item={item}"))
                    .header("host", "web")
                    .send()
                    .await
                    .expect("request");
                let code = response.status().as_u16().to_string();
                let body = response.text().await.expect("body");
                let latency = started.elapsed().as_secs_f64() * 1000.0;
                let version = if body.contains(r#""version":"v2""#) {
                    "v2"
                } else {
                    "v1"
                };
                let stock = format!("stock-api-{version}");
                let mut observed = observed.lock().await;
                observed.latencies_ms.push(latency);
                for key in [
                    ("unknown", "web", "v1"),
                    ("web", stock.as_str(), version),
                    (stock.as_str(), "products", "v1"),
                ] {
                    *observed
                        .counts
                        .entry((key.0.into(), key.1.into(), key.2.into(), code.clone()))
                        .or_default() += 1.0;
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    Arc::try_unwrap(observed)
        .ok()
        .expect("workers done")
        .into_inner()
}

fn bucket_index(value: f64) -> usize {
    ENVOY_DEFAULT_BUCKETS
        .iter()
        .position(|bound| value <= *bound)
        .unwrap_or(ENVOY_DEFAULT_BUCKETS.len())
}

async fn run(sampling: f64) {
    let mesh = Mesh::start_sampled(0.0, sampling).await;
    let observed = send_all(&mesh).await;
    let total: f64 = observed
        .counts
        .iter()
        .filter(|((source, ..), _)| source == "unknown")
        .map(|(_, count)| count)
        .sum();
    assert_eq!(total, REQUESTS as f64);
    let broken = observed
        .counts
        .get(&("unknown".into(), "web".into(), "v1".into(), "503".into()))
        .copied();
    assert_eq!(broken, Some((REQUESTS / BROKEN_EVERY) as f64));

    // The collector's counts, once the sidecars' pushes have caught up.
    let query = "sum by (source_workload, destination_workload, destination_version, response_code) \
                 (istio_requests_total{reporter=\"destination\"})";
    let collected = eventually("the collector's counts to equal the client's", || async {
        let vector = promql(&mesh, query).await?;
        let counts: BTreeMap<Key, f64> = vector
            .into_iter()
            .map(|(labels, value)| {
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                (
                    (
                        label("source_workload"),
                        label("destination_workload"),
                        label("destination_version"),
                        label("response_code"),
                    ),
                    value,
                )
            })
            .collect();
        if counts == observed.counts {
            Ok(counts)
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;
    assert_eq!(collected, observed.counts, "sampling {sampling}");

    // The split is the configured one within 3 sigma.
    let v2: f64 = observed
        .counts
        .iter()
        .filter(|((source, destination, ..), _)| source == "web" && destination == "stock-api-v2")
        .map(|(_, count)| count)
        .sum();
    let n = REQUESTS as f64;
    assert!(
        (v2 - 0.1 * n).abs() <= 3.0 * (n * 0.09).sqrt(),
        "v2 got {v2} of {n}"
    );

    // p99 from the histogram within one bucket of the client's p99.
    let mut latencies = observed.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let client_p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    let histogram = promql(
        &mesh,
        "histogram_quantile(0.99, sum by (le) (istio_request_duration_milliseconds_bucket\
         {reporter=\"destination\", destination_workload=\"web\"}))",
    )
    .await
    .expect("histogram_quantile");
    let collector_p99 = histogram.first().map(|(_, v)| *v).expect("a p99");
    let (i, j) = (bucket_index(client_p99), bucket_index(collector_p99));
    assert!(
        i.abs_diff(j) <= 1,
        "p99: client {client_p99:.2} ms (bucket {i}), histogram {collector_p99:.2} ms (bucket {j})"
    );

    // Traces: at 100% every request is one complete trace (5 spans); at
    // 1% every sampled one is.
    let expected = if sampling >= 1.0 {
        Some(REQUESTS)
    } else {
        None
    };
    let traces = eventually("every sampled trace to be complete", || async {
        // Page through the search, 1,000 traces at a time.
        let mut traces = Vec::new();
        let mut total;
        loop {
            let url = mesh.collector_url(&format!(
                "/api/weft/traces?service=web&limit=1000&offset={}&lookback=3600",
                traces.len()
            ));
            let body: serde_json::Value = client()
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            total = body["total"].as_u64().ok_or_else(|| body.to_string())? as usize;
            let page = body["traces"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            traces.extend(page);
        }
        let complete = traces.iter().all(|t| t["span_count"] == 5);
        match expected {
            Some(n) if total == n && traces.len() == n && complete => Ok(traces),
            None if complete && total == traces.len() => Ok(traces),
            _ => Err(format!(
                "total {total}, {} listed, complete {complete}",
                traces.len()
            )),
        }
    })
    .await;
    if sampling < 1.0 {
        // Binomial(10,000, 1%): 100 ± 4σ (3σ would fail 0.27% of fair runs).
        let sigma = (n * sampling * (1.0 - sampling)).sqrt();
        let count = traces.len() as f64;
        assert!(
            (count - n * sampling).abs() <= 4.0 * sigma,
            "{count} sampled traces"
        );
    }
    // A sample of traces: the right parent chain.
    for trace in traces.iter().step_by((traces.len() / 25).max(1)) {
        let id = trace["trace_id"].as_str().expect("id");
        let detail: serde_json::Value = client()
            .get(mesh.collector_url(&format!("/api/weft/traces/{id}")))
            .send()
            .await
            .expect("trace")
            .json()
            .await
            .expect("json");
        assert_chain(&detail);
    }
    mesh.shutdown().await;
}

/// web SERVER → web CLIENT → stock-api SERVER → stock-api CLIENT →
/// products SERVER, each the parent of the next.
fn assert_chain(trace: &serde_json::Value) {
    let spans = trace["spans"].as_array().expect("spans");
    let order = [
        ("web", "SERVER"),
        ("web", "CLIENT"),
        ("stock-api", "SERVER"),
        ("stock-api", "CLIENT"),
        ("products", "SERVER"),
    ];
    let mut parent: Option<&serde_json::Value> = None;
    for (service, kind) in order {
        let span = spans
            .iter()
            .find(|s| s["service"] == service && s["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} span of {service}: {trace:#}"));
        match parent {
            None => assert!(span["parent_span_id"].is_null(), "{trace:#}"),
            Some(parent) => assert_eq!(span["parent_span_id"], parent["span_id"], "{trace:#}"),
        }
        parent = Some(span);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_traces_and_p99_are_exact_at_full_sampling() {
    run(1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_at_one_percent_sampling() {
    run(0.01).await;
}

#[test]
fn bucket_index_follows_envoy_bounds() {
    assert_eq!(bucket_index(0.1), 0);
    assert_eq!(bucket_index(0.5), 0);
    assert_eq!(bucket_index(0.6), 1);
    assert_eq!(bucket_index(7.0), 3);
    assert_eq!(bucket_index(1e9), ENVOY_DEFAULT_BUCKETS.len());
}
