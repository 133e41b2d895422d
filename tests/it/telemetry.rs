//! What the proxies report: Prometheus exposition that promtool accepts,
//! and telemetry that survives a collector outage without costing a single
//! application request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::support::{Mesh, TwoHops, client, eventually, parse_prometheus, sum};

/// `promtool check metrics` on every sidecar's `/metrics`. The one finding
/// allowed is the lint on Istio's own metric name
/// `istio_request_duration_milliseconds` (promtool prefers base units):
/// renaming it would break every Istio dashboard, which is the point of
/// using Istio's names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_every_sidecars_metrics() {
    let mesh = Mesh::start(0.0).await;
    let web = mesh.workload("web").proxy.inbound_addr();
    for item in ["apple", "unicorn", "broken"] {
        client()
            .get(format!("http://{web}/?item={item}"))
            .header("host", "web")
            .send()
            .await
            .expect("request");
    }
    for workload in ["web", "stock-api-v1", "stock-api-v2", "products"] {
        let url = format!(
            "http://{}/metrics",
            mesh.workload(workload).proxy.admin_addr()
        );
        let text = client()
            .get(url)
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        let mut child = tokio::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (Debian package prometheus; scripts/test installs it)");
        let mut stdin = child.stdin.take().expect("stdin");
        tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes())
            .await
            .expect("write");
        drop(stdin);
        let output = child.wait_with_output().await.expect("promtool output");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let findings: Vec<&str> = report
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter(|line| {
                *line != r#"istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds""#
            })
            .collect();
        assert!(
            findings.is_empty(),
            "promtool on {workload}:\n{report}\n---\n{text}"
        );
    }
    mesh.shutdown().await;
}

/// The collector goes away for 30 s under steady load: no application
/// request fails, the span queue stays bounded and its drops are counted,
/// and export resumes within 5 s of the collector's return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_outage_costs_no_request_and_export_resumes() {
    const QUEUE: usize = 200;
    let products = weft::demo::apps::start(weft::demo::apps::Role::Products, None)
        .await
        .expect("upstream app");
    let telemetry = weft_proxy::TelemetryOptions {
        span_queue_capacity: QUEUE,
        ..Default::default()
    };
    let mut hops = TwoHops::start(products.addr, 1.0, telemetry).await;

    // Steady load: 100 requests per second through both hops.
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let target = format!("http://{}/products/apple", hops.a.outbound_addr());
    let load = {
        let (sent, failed) = (sent.clone(), failed.clone());
        tokio::spawn(async move {
            let http = client();
            let mut ticker = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                let ok = http
                    .get(&target)
                    .header("host", "upstream")
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                sent.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // Export works before the outage.
    let before = "11111111111111111111111111111111";
    hops.get(
        "/products/apple",
        &[("traceparent", &format!("00-{before}-1111111111111111-01"))],
    )
    .await;
    hops.spans(before, 2).await;

    let dropped_before = dropped(&hops).await;
    hops.restart_collector(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let returned = Instant::now();
    // The queue holds at most its capacity plus the batch being sent.
    let bound = (QUEUE + 512) as f64;
    for proxy in [hops.a.admin_addr(), hops.b.admin_addr()] {
        let depth = sum(&scrape(proxy).await, "weft_proxy_span_queue_depth", &[]);
        assert!(
            depth <= bound,
            "queue depth {depth} above its bound {bound}"
        );
    }
    assert!(
        dropped(&hops).await > dropped_before,
        "30 s of load at 100 rps into a {QUEUE}-span queue dropped nothing"
    );

    // Both sidecars export again within 5 s of the collector's return...
    for proxy in [hops.a.admin_addr(), hops.b.admin_addr()] {
        let at_return = sum(&scrape(proxy).await, "weft_proxy_spans_exported_total", &[]);
        eventually("export to resume", || async {
            let now = sum(&scrape(proxy).await, "weft_proxy_spans_exported_total", &[]);
            if now > at_return {
                Ok(())
            } else {
                Err(format!("{now}"))
            }
        })
        .await;
    }
    let resumed = returned.elapsed();
    assert!(
        resumed <= Duration::from_secs(5),
        "export resumed after {resumed:?}"
    );
    // ...and a trace started then arrives complete.
    let after = "22222222222222222222222222222222";
    hops.get(
        "/products/apple",
        &[("traceparent", &format!("00-{after}-2222222222222222-01"))],
    )
    .await;
    hops.spans(after, 2).await;

    let _ = stop.send(true);
    load.await.expect("load task");
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 2500, "only {sent} requests sent");
    assert_eq!(failed, 0, "{failed} of {sent} application requests failed");
    hops.shutdown().await;
    products.shutdown().await;
}

async fn scrape(admin: std::net::SocketAddr) -> Vec<crate::support::Sample> {
    let text = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    parse_prometheus(&text)
}

/// Spans dropped for a full queue, over both sidecars.
async fn dropped(hops: &TwoHops) -> f64 {
    let mut total = 0.0;
    for proxy in [hops.a.admin_addr(), hops.b.admin_addr()] {
        total += sum(
            &scrape(proxy).await,
            "weft_proxy_spans_dropped_total",
            &[("reason", "queue_full")],
        );
    }
    total
}
