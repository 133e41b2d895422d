//! Resilience on real sockets: retries, the default retry policy, timeouts, outlier
//! detection, circuit breakers and faults. Timing assertions use generous bounds; waiting is
//! polling with deadlines.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::{eventually, sum};
use crate::traffic_support::{TestProxy, Upstream, endpoints, service, within_3_sigma};

fn vs(host: &str, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {host}\n  namespace: default\nspec:\n  hosts: [{host}]\n  http:\n{http}---\n"
    )
}

fn dr(host: &str, policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {host}\n  namespace: default\nspec:\n  host: {host}\n  trafficPolicy:\n{policy}---\n"
    )
}

/// Sends `n` GETs over `workers` concurrent loops; returns the statuses.
async fn load(proxy: &TestProxy, host: &str, path: &str, n: usize, workers: usize) -> Vec<u16> {
    let mut handles = Vec::new();
    for _ in 0..workers {
        let http = proxy.http.clone();
        let url = format!("http://{}{path}", proxy.proxy.outbound_addr());
        let host = host.to_string();
        handles.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..n / workers {
                let response = http
                    .get(&url)
                    .header("host", &host)
                    .send()
                    .await
                    .expect("get");
                statuses.push(response.status().as_u16());
                let _ = response.bytes().await;
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("worker"));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_a_flaky_service_and_the_default_policy_does_not_retry_5xx() {
    let flaky: Vec<Upstream> = vec![
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    let plain = Upstream::start("plain").await;
    for upstream in flaky.iter().chain([&plain]) {
        upstream.fail(0.5, 503);
    }
    let lines = endpoints(&flaky.iter().map(|u| (u, &[][..])).collect::<Vec<_>>());
    let yaml = format!(
        "{}{}{}",
        service("flaky", &lines),
        service("plain", &endpoints(&[(&plain, &[])])),
        vs(
            "flaky",
            "  - retries: {attempts: 10, retryOn: 5xx, perTryTimeout: 2s}\n    route: [{destination: {host: flaky}}]\n"
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let n = 300;
    let statuses = load(&proxy, "flaky", "/", n, 6).await;
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert!(failed <= 2, "{failed} of {n} failed despite 10 retries");
    let tries: u64 = flaky.iter().map(Upstream::hits).sum();
    assert!(
        tries as usize > n + n / 3,
        "only {tries} tries for {n} requests"
    );

    // Istio's default policy (no `retries`) does not retry 5xx. A sample outside 3σ (0.27% of
    // fair ones) is measured once more with fresh requests.
    let (mut sent, mut failed) = (0, 0.0);
    for attempt in 1..=2 {
        let statuses = load(&proxy, "plain", "/", 200, 4).await;
        let this = statuses.iter().filter(|s| **s == 503).count() as f64;
        sent += 200;
        failed += this;
        assert_eq!(plain.hits(), sent, "5xx must not be retried by default");
        if within_3_sigma(this, 200.0, 0.5) {
            break;
        }
        assert!(attempt < 2, "{this} of 200 failed, twice outside 3σ");
    }

    // Requests are counted once, with the final code.
    let samples = proxy.scrape().await;
    let flaky_total = sum(
        &samples,
        "istio_requests_total",
        &[("destination_service", "flaky.default.svc.cluster.local")],
    );
    assert_eq!(flaky_total, n as f64);
    let plain_failed = sum(
        &samples,
        "istio_requests_total",
        &[
            ("destination_service", "plain.default.svc.cluster.local"),
            ("response_code", "503"),
            ("response_flags", "-"),
        ],
    );
    assert_eq!(plain_failed, failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_are_retried_on_another_host_and_exhaustion_is_urx() {
    let good = Upstream::start("good").await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let lines = format!(
        "{}  - address: 127.0.0.1\n    ports:\n      http: {closed}\n",
        endpoints(&[(&good, &[])])
    );
    let slow = Upstream::start("slow").await;
    slow.delay(Duration::from_millis(1500));
    let trickle = Upstream::start("trickle").await;
    trickle.trickle(Duration::from_millis(1500));
    let yaml = format!(
        "{}{}{}{}{}{}",
        service("svc", &lines),
        dr("svc", "    loadBalancer: {simple: ROUND_ROBIN}\n"),
        service("slow", &endpoints(&[(&slow, &[])])),
        vs(
            "slow",
            "  - match: [{uri: {prefix: /route-timeout}}]\n    timeout: 100ms\n    route: [{destination: {host: slow}}]\n  - retries: {attempts: 2, perTryTimeout: 50ms, retryOn: gateway-error}\n    route: [{destination: {host: slow}}]\n"
        ),
        service("trickle", &endpoints(&[(&trickle, &[])])),
        vs(
            "trickle",
            "  - timeout: 300ms\n    route: [{destination: {host: trickle}}]\n"
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    // Istio's default policy retries connect failures (on the other host).
    let statuses = load(&proxy, "svc", "/", 40, 2).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let started = Instant::now();
    let response = proxy.get("slow", "/route-timeout").await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let response = proxy.get("slow", "/per-try").await;
    assert_eq!(response.status(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );

    // The route timeout also covers the response body: the stream is cut.
    let started = Instant::now();
    let response = proxy.get("trickle", "/").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "a body past the route timeout completed"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );

    let samples = eventually("the cut response counted", || async {
        let samples = proxy.scrape().await;
        let cut = sum(
            &samples,
            "istio_requests_total",
            &[("response_code", "200"), ("response_flags", "UT")],
        );
        if cut == 1.0 {
            Ok(samples)
        } else {
            Err(cut.to_string())
        }
    })
    .await;
    let flags = |flags: &str| {
        sum(
            &samples,
            "istio_requests_total",
            &[("response_code", "504"), ("response_flags", flags)],
        )
    };
    assert_eq!(flags("UT"), 1.0);
    assert_eq!(flags("UT,URX"), 1.0);
}

/// Whether an endpoint is ejected, and how often it was, from `/config_dump`.
async fn ejection(proxy: &TestProxy, address: &str) -> (bool, u64) {
    let dump = proxy.config_dump().await;
    dump["clusterRuntime"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["endpoints"].as_array().into_iter().flatten())
        .find(|e| e["address"] == address)
        .map(|e| {
            (
                e["health"]["ejected"] == true,
                e["health"]["timesEjected"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or((false, 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_readmits_and_doubles_the_second_ejection() {
    let bad = Upstream::start("bad").await;
    let good = [
        Upstream::start("good-1").await,
        Upstream::start("good-2").await,
    ];
    bad.fail(1.0, 503);
    let lines = endpoints(&[(&bad, &[]), (&good[0], &[]), (&good[1], &[])]);
    let yaml = format!(
        "{}{}",
        service("svc", &lines),
        dr(
            "svc",
            "    outlierDetection:\n      consecutive5xxErrors: 3\n      interval: 250ms\n      baseEjectionTime: 1s\n      maxEjectionPercent: 100\n"
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let bad_address = format!("127.0.0.1:{}", bad.port());

    // Steady load in the background until the test ends.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..3 {
        let http = proxy.http.clone();
        let url = format!("http://{}/", proxy.proxy.outbound_addr());
        let stopped = stopped.clone();
        workers.push(tokio::spawn(async move {
            while !*stopped.borrow() {
                if let Ok(response) = http.get(&url).header("host", "svc").send().await {
                    let _ = response.bytes().await;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    let mut durations = Vec::new();
    for round in 1..=2 {
        let times = eventually(&format!("ejection {round}"), || async {
            match ejection(&proxy, &bad_address).await {
                (true, times) if times == round => Ok(times),
                state => Err(format!("{state:?}; bad hits {}", bad.hits())),
            }
        })
        .await;
        let ejected_at = Instant::now();
        // Requests already sent to it may still land; after that it gets nothing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let hits_during = bad.hits();
        let mut checked = 0;
        loop {
            // Read the hits first: if the endpoint is still in the same ejection afterwards,
            // it was ejected when they were counted.
            let hits = bad.hits();
            if ejection(&proxy, &bad_address).await != (true, times) {
                break;
            }
            assert_eq!(hits, hits_during, "traffic reached an ejected endpoint");
            checked += 1;
            assert!(
                ejected_at.elapsed() < Duration::from_secs(10),
                "never re-admitted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let duration = ejected_at.elapsed();
        assert!(
            checked > 5,
            "ejection {round} too short to observe: {duration:?}"
        );
        durations.push(duration);
        // Re-admitted: it gets traffic again.
        eventually("traffic after re-admission", || async {
            if bad.hits() > hits_during {
                Ok(())
            } else {
                Err(bad.hits().to_string())
            }
        })
        .await;
    }
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let (first, second) = (durations[0], durations[1]);
    assert!(
        first >= Duration::from_millis(700) && first <= Duration::from_millis(2300),
        "first ejection lasted {first:?} (base 1s)"
    );
    assert!(
        second >= Duration::from_millis(1700) && second <= Duration::from_millis(4000),
        "second ejection lasted {second:?} (2 × base)"
    );
    assert!(
        second >= first + Duration::from_millis(600),
        "second ejection ({second:?}) not longer than the first ({first:?})"
    );
    let samples = proxy.scrape().await;
    assert!(
        sum(&samples, "weft_proxy_ejections_total", &[]) >= 2.0,
        "ejections not counted"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "weft_proxy_ejected_endpoints")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_overflow_answers_503_uo_immediately() {
    let slow = Upstream::start("slow").await;
    slow.delay(Duration::from_millis(1500));
    let yaml = format!(
        "{}{}",
        service("svc", &endpoints(&[(&slow, &[])])),
        dr(
            "svc",
            "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n"
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let http = proxy.http.clone();
        let url = format!("http://{}/", proxy.proxy.outbound_addr());
        held.push(tokio::spawn(async move {
            http.get(&url)
                .header("host", "svc")
                .send()
                .await
                .expect("held")
                .status()
        }));
    }
    eventually("one active and one pending request", || async {
        let dump = proxy.config_dump().await;
        let active = dump["clusterRuntime"][0]["circuitBreakers"]["activeRequests"].clone();
        if active == 2 {
            Ok(())
        } else {
            Err(active.to_string())
        }
    })
    .await;
    let started = Instant::now();
    let response = proxy.get("svc", "/").await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(
        elapsed < Duration::from_millis(700),
        "overflow took {elapsed:?}"
    );
    for request in held {
        assert_eq!(request.await.expect("held request"), 200);
    }
    let samples = proxy.scrape().await;
    assert_eq!(
        sum(
            &samples,
            "istio_requests_total",
            &[("response_code", "503"), ("response_flags", "UO")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_fifty_percent_hit_within_three_sigma() {
    let upstream = Upstream::start("svc").await;
    let yaml = format!(
        "{}{}",
        service("svc", &endpoints(&[(&upstream, &[])])),
        vs(
            "svc",
            "  - match: [{uri: {prefix: /abort}}]\n    fault: {abort: {httpStatus: 418, percentage: {value: 50}}}\n    route: [{destination: {host: svc}}]\n  - match: [{uri: {prefix: /delay}}]\n    fault: {delay: {fixedDelay: 5ms, percentage: {value: 50}}}\n    route: [{destination: {host: svc}}]\n  - match: [{uri: {prefix: /never}}]\n    fault: {abort: {httpStatus: 500}}\n    route: [{destination: {host: svc}}]\n"
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let n = 400;
    // A fair 50% falls outside 3σ in 0.27% of samples; such a sample is measured once more
    // with fresh requests (a biased fault rate fails both), so the check stays exact without
    // flaking. `sent` and `aborted` count every request of every sample.
    let (mut sent, mut aborted) = (0, 0);
    for attempt in 1..=2 {
        let statuses = load(&proxy, "svc", "/abort", n, 4).await;
        let hit = statuses.iter().filter(|s| **s == 418).count();
        assert_eq!(hit + statuses.iter().filter(|s| **s == 200).count(), n);
        sent += n;
        aborted += hit;
        if within_3_sigma(hit as f64, n as f64, 0.5) {
            break;
        }
        assert!(attempt < 2, "{hit} of {n} aborted, twice outside 3σ");
    }
    assert_eq!(
        upstream.hits() as usize,
        sent - aborted,
        "aborted requests reached the upstream"
    );

    let mut delayed_before = 0.0;
    for attempt in 1..=2 {
        let statuses = load(&proxy, "svc", "/delay", n, 4).await;
        assert!(statuses.iter().all(|s| *s == 200));
        sent += n;
        // Every request is recorded when its response ends: wait for all of them.
        let delayed_now = eventually("every request recorded", || async {
            let samples = proxy.scrape().await;
            let recorded = sum(&samples, "istio_requests_total", &[]);
            if recorded as usize == sent {
                Ok(sum(
                    &samples,
                    "istio_requests_total",
                    &[("response_flags", "DI")],
                ))
            } else {
                Err(format!("{recorded} of {sent}"))
            }
        })
        .await;
        let delayed = delayed_now - delayed_before;
        delayed_before = delayed_now;
        if within_3_sigma(delayed, n as f64, 0.5) {
            break;
        }
        assert!(attempt < 2, "{delayed} of {n} delayed, twice outside 3σ");
    }

    let statuses = load(&proxy, "svc", "/never", 50, 2).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a fault without percentage fired"
    );

    let samples = proxy.scrape().await;
    let flagged = |flags: &str| {
        sum(
            &samples,
            "istio_requests_total",
            &[("response_flags", flags)],
        )
    };
    assert_eq!(flagged("FI"), aborted as f64);
    assert_eq!(flagged("DI"), delayed_before);
}

/// The pool's and the endpoint's active-request counts (LEAST_REQUEST reads the latter) and
/// the pending-waiter count go back to zero when clients give up mid-request: a counter that
/// leaked on cancellation would skew balancing and, with limits, end in 503 `UO` for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_counters_return_to_zero_after_cancellations() {
    let slow = Upstream::start("slow").await;
    slow.delay(Duration::from_millis(2000));
    let yaml = format!(
        "{}{}",
        service("svc", &endpoints(&[(&slow, &[])])),
        dr(
            "svc",
            "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 4}\n"
        )
    );
    let proxy = TestProxy::start(&yaml).await;
    let counts = |dump: &serde_json::Value| {
        let cluster = &dump["clusterRuntime"][0];
        (
            cluster["circuitBreakers"]["activeRequests"].as_u64(),
            cluster["endpoints"][0]["activeRequests"].as_u64(),
        )
    };
    // One request on the only connection, two waiting for it (pending).
    let mut held = Vec::new();
    for _ in 0..3 {
        let url = format!("http://{}/", proxy.proxy.outbound_addr());
        // A client of its own per request: cancelling one closes its connection.
        let http = reqwest::Client::new();
        held.push(tokio::spawn(async move {
            let _ = http.get(&url).header("host", "svc").send().await;
        }));
    }
    eventually("three requests admitted or waiting", || async {
        match counts(&proxy.config_dump().await) {
            (Some(3), Some(1)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    for request in &held {
        request.abort();
    }
    eventually(
        "counters back to zero after the clients went away",
        || async {
            match counts(&proxy.config_dump().await) {
                (Some(0), Some(0)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // The pool is whole again: a request gets through, and the counters settle at zero.
    slow.delay(Duration::ZERO);
    assert_eq!(proxy.get("svc", "/").await.status(), 200);
    eventually(
        "counters back to zero after a completed request",
        || async {
            match counts(&proxy.config_dump().await) {
                (Some(0), Some(0)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// `maxRequestsPerConnection`: Envoy retires an upstream connection after that many requests
/// (1 disables keep-alive); unset, one connection serves them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_per_connection_retires_connections() {
    for (setting, requests, expected_connections) in [
        (None, 9, 1),
        (Some(1), 4, 4),
        (Some(3), 9, 3),
        (Some(4), 9, 3),
    ] {
        let upstream = Upstream::start("a").await;
        let policy = match setting {
            Some(n) => {
                format!("    connectionPool:\n      http: {{maxRequestsPerConnection: {n}}}\n")
            }
            None => "    loadBalancer: {simple: ROUND_ROBIN}\n".to_owned(),
        };
        let yaml = format!(
            "{}{}",
            service("svc", &endpoints(&[(&upstream, &[])])),
            dr("svc", &policy)
        );
        let proxy = TestProxy::start(&yaml).await;
        // Sequential requests: each connection is idle again before the next one.
        for _ in 0..requests {
            let response = proxy.get("svc", "/").await;
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body");
        }
        assert_eq!(upstream.hits(), requests);
        assert_eq!(
            upstream.connections(),
            expected_connections,
            "maxRequestsPerConnection {setting:?}: {requests} requests"
        );
    }
}
