//! Mirroring and hot reload on real sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::support::{eventually, sum};
use crate::traffic_support::{TestProxy, Upstream, endpoints, service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_gets_copies_without_slowing_the_caller() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    shadow.delay(Duration::from_millis(2000));
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
  namespace: default
spec:
  hosts: [svc]
  http:
  - route: [{destination: {host: svc}}]
    mirror: {host: shadow}
";
    let yaml = format!(
        "{}{}{vs}",
        service("svc", &endpoints(&[(&primary, &[])])),
        service("shadow", &endpoints(&[(&shadow, &[])])),
    );
    let proxy = TestProxy::start(&yaml).await;
    // Baseline latency of the primary alone, through the same proxy, without a mirror.
    let n = 20;
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let started = Instant::now();
        let response = proxy
            .request(reqwest::Method::POST, "svc", &format!("/orders/{i}"))
            .body(format!("order {i}"))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "primary");
        slowest = slowest.max(started.elapsed());
    }
    // The shadow answers after 2 s; the caller never waits for it.
    assert!(
        slowest < Duration::from_millis(1000),
        "slowest call {slowest:?}"
    );
    eventually("every request mirrored", || async {
        if shadow.hits() == n {
            Ok(())
        } else {
            Err(shadow.hits().to_string())
        }
    })
    .await;
    let seen = shadow.seen();
    assert!(seen.iter().all(|s| s.headers["host"] == "svc-shadow"));
    assert!(
        seen.iter()
            .any(|s| s.body == "order 3" && s.path_and_query == "/orders/3")
    );
    assert!(seen.iter().all(|s| s.method == "POST"));
    // Mirrors are not sampled.
    let sampled = |s: &crate::traffic_support::Seen| {
        let traceparent = s.headers["traceparent"].to_str().unwrap();
        let flags = u8::from_str_radix(&traceparent[traceparent.len() - 2..], 16).unwrap();
        flags & 1 == 1
    };
    assert!(!seen.iter().any(sampled));
}

fn config(v1: &Upstream, v2: &Upstream, subset: &str, weight_v1: u32) -> String {
    let lines = endpoints(&[(v1, &[("version", "v1")]), (v2, &[("version", "v2")])]);
    format!(
        "{}apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc
  namespace: default
spec:
  host: svc
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
  namespace: default
spec:
  hosts: [svc]
  http:
  - name: {subset}
    route:
    - destination: {{host: svc, subset: v1}}
      weight: {weight_v1}
    - destination: {{host: svc, subset: v2}}
      weight: {}
",
        service("svc", &lines),
        100 - weight_v1
    )
}

async fn version(proxy: &TestProxy) -> String {
    proxy.config_dump().await["version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_drops_nothing_across_20_swaps() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let proxy = Arc::new(TestProxy::start(&config(&v1, &v2, "start", 100)).await);

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let http = proxy.http.clone();
        let url = format!("http://{}/", proxy.proxy.outbound_addr());
        let (ok, failed, stopped) = (ok.clone(), failed.clone(), stopped.clone());
        workers.push(tokio::spawn(async move {
            while !*stopped.borrow() {
                match http.get(&url).header("host", "svc").send().await {
                    Ok(response) if response.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let mut slowest = Duration::ZERO;
    let mut invalid = 0;
    for swap in 0..20 {
        let before = version(&proxy).await;
        if swap % 4 == 3 {
            // Invalid: a weight that is not a number; the last good config keeps serving.
            invalid += 1;
            let broken = config(&v1, &v2, "broken", 50).replace("weight: 50", "weight: heavy");
            proxy.rewrite(&broken);
            eventually("invalid change rejected", || async {
                let failures = sum(
                    &proxy.scrape().await,
                    "weft_proxy_config_reloads_total",
                    &[("result", "failure")],
                );
                if failures == f64::from(invalid) {
                    Ok(())
                } else {
                    Err(failures.to_string())
                }
            })
            .await;
            assert_eq!(
                version(&proxy).await,
                before,
                "an invalid config was applied"
            );
            continue;
        }
        let weight = if swap % 2 == 0 { 0 } else { 100 };
        proxy.rewrite(&config(&v1, &v2, &format!("swap-{swap}"), weight));
        let started = Instant::now();
        eventually(&format!("swap {swap} applied"), || async {
            let now = version(&proxy).await;
            if now != before { Ok(()) } else { Err(now) }
        })
        .await;
        slowest = slowest.max(started.elapsed());
        // The new routes are in force: everything goes to the chosen subset.
        let expected = if weight == 100 { "v1" } else { "v2" };
        let body = proxy.get("svc", "/").await.text().await.expect("body");
        assert_eq!(body, expected, "swap {swap}");
    }
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    assert_eq!(invalid, 5);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "too little load");
    assert!(
        slowest < Duration::from_secs(1),
        "a reload took {slowest:?}"
    );
    let successes = sum(
        &proxy.scrape().await,
        "weft_proxy_config_reloads_total",
        &[("result", "success")],
    );
    assert_eq!(successes, 1.0 + 15.0);
}
