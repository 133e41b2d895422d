//! Mutual TLS between sidecars on real sockets: PeerAuthentication STRICT / PERMISSIVE,
//! refused certificates, principals on metrics, certificate rotation under load, expiry.

use std::time::{Duration, SystemTime};

use weft_control::SpiffeId;

use crate::security_support::{Pair, mtls_get, plaintext_get, wait_for};
use crate::support::{parse_prometheus, sum};

const STRICT_MESH: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
";

const PERMISSIVE_MESH: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: PERMISSIVE
";

fn id(trust_domain: &str, sa: &str) -> SpiffeId {
    SpiffeId {
        trust_domain: trust_domain.into(),
        namespace: "default".into(),
        service_account: sa.into(),
    }
}

async fn metrics(proxy: &weft_proxy::Proxy) -> Vec<crate::support::Sample> {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{}/metrics", proxy.admin_addr()))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    parse_prometheus(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_plaintext_foreign_expired_and_other_trust_domain_certificates() {
    let pair = Pair::start(STRICT_MESH, None).await;
    let inbound = pair.server.inbound_addr();
    let roots = pair.control.trust_bundle();

    // Sidecar to sidecar: mTLS with SPIFFE identities.
    let (status, body) = pair.call("/hello", &[]).await;
    assert_eq!(status, 200, "{body}");

    // A plaintext request is refused.
    assert!(
        plaintext_get(inbound).await.is_err(),
        "plaintext accepted under STRICT"
    );

    // A valid certificate of this mesh is accepted (the raw client works).
    let (cert, key) = pair
        .control
        .with_ca(|ca| {
            ca.issue(
                Some(&id("cluster.local", "tester")),
                &[],
                Duration::from_secs(600),
            )
        })
        .expect("issue");
    assert_eq!(mtls_get(inbound, &cert, &key, &roots).await, Ok(200));

    // A client certificate from another CA.
    let other = weft_control::Ca::generate("cluster.local").expect("other CA");
    let (cert, key) = other
        .issue(
            Some(&id("cluster.local", "tester")),
            &[],
            Duration::from_secs(600),
        )
        .expect("issue");
    assert!(
        mtls_get(inbound, &cert, &key, &roots).await.is_err(),
        "foreign CA accepted"
    );

    // A certificate of this CA for another trust domain.
    let (cert, key) = pair
        .control
        .with_ca(|ca| {
            ca.issue(
                Some(&id("evil.td", "tester")),
                &[],
                Duration::from_secs(600),
            )
        })
        .expect("issue");
    assert!(
        mtls_get(inbound, &cert, &key, &roots).await.is_err(),
        "other trust domain accepted"
    );

    // An expired certificate (1 s lifetime; wait until it has expired: validity times have
    // whole seconds, so past notAfter means one second later).
    let issued = SystemTime::now();
    let (cert, key) = pair
        .control
        .with_ca(|ca| {
            ca.issue(
                Some(&id("cluster.local", "tester")),
                &[],
                Duration::from_secs(1),
            )
        })
        .expect("issue");
    assert!(
        wait_for(Duration::from_secs(10), || async {
            SystemTime::now() > issued + Duration::from_millis(2500)
        })
        .await
    );
    let result = mtls_get(inbound, &cert, &key, &roots).await;
    assert!(result.is_err(), "expired certificate accepted: {result:?}");

    let refused = sum(
        &metrics(&pair.server).await,
        "weft_proxy_inbound_connections_refused_total",
        &[],
    );
    assert!(refused >= 4.0, "refusals counted: {refused}");
    pair.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_accepts_plaintext_and_mtls_on_one_port_and_labels_principals() {
    let pair = Pair::start(PERMISSIVE_MESH, None).await;
    let inbound = pair.server.inbound_addr();
    assert_eq!(plaintext_get(inbound).await, Ok(200));
    let (status, body) = pair.call("/x", &[]).await;
    assert_eq!(status, 200, "{body}");
    // The principals come from certificates; the destination reporter knows the security
    // policy of each request.
    let client_id = "spiffe://cluster.local/ns/default/sa/client";
    let server_id = "spiffe://cluster.local/ns/default/sa/server";
    let ok = wait_for(Duration::from_secs(10), || async {
        let samples = metrics(&pair.server).await;
        sum(
            &samples,
            "istio_requests_total",
            &[
                ("reporter", "destination"),
                ("connection_security_policy", "mutual_tls"),
                ("source_principal", client_id),
                ("destination_principal", server_id),
            ],
        ) >= 1.0
            && sum(
                &samples,
                "istio_requests_total",
                &[
                    ("reporter", "destination"),
                    ("connection_security_policy", "none"),
                    ("source_principal", "unknown"),
                ],
            ) >= 1.0
    })
    .await;
    assert!(ok, "destination metrics without principals / policy");
    let samples = metrics(&pair.client).await;
    assert!(
        sum(
            &samples,
            "istio_requests_total",
            &[
                ("reporter", "source"),
                ("source_principal", client_id),
                ("destination_principal", server_id),
            ],
        ) >= 1.0,
        "source metrics without principals"
    );
    pair.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rotations_under_steady_load_lose_no_request() {
    // 8 s certificates: renewed at half-life, i.e. every ~4 s. Shorter
    // lifetimes leave too little slack when the test runs beside others on
    // two busy cores (a renewal then lands after expiry).
    let pair = Pair::start(STRICT_MESH, Some(Duration::from_secs(8))).await;
    let server = pair.server.identity().expect("server identity");
    let client = pair.client.identity().expect("client identity");
    let start = (server.rotations(), client.rotations());
    let mut sent = 0u32;
    let mut failed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.rotations() < start.0 + 3 || client.rotations() < start.1 + 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 3 rotations within 60 s"
        );
        let (status, body) = pair.call("/steady", &[]).await;
        sent += 1;
        if status != 200 {
            failed.push(format!("{status} {body}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {failed:?}",
        failed.len()
    );
    assert!(sent > 20, "only {sent} requests during the rotations");
    pair.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_whose_certificate_expired_is_refused() {
    let pair = Pair::start(STRICT_MESH, Some(Duration::from_secs(2))).await;
    assert_eq!(pair.call("/", &[]).await.0, 200);
    let client = pair.client.identity().expect("client identity");
    let Pair {
        control,
        server,
        client: client_proxy,
        ..
    } = pair;
    // Without the control plane nothing renews: the certificates run out.
    control.shutdown().await;
    let expired_at = client.not_after();
    assert!(
        wait_for(Duration::from_secs(10), || async {
            SystemTime::now() > expired_at + Duration::from_millis(1200)
        })
        .await
    );
    let response = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(format!("http://{}", client_proxy.outbound_addr()))
                .expect("proxy"),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .get("http://server.default.svc.cluster.local/")
        .send()
        .await
        .expect("response");
    // The pooled connection from before the expiry is refused too: the server checks the
    // peer certificate's validity on every request.
    assert_ne!(response.status().as_u16(), 200, "expired identity accepted");
    client_proxy.shutdown().await;
    server.shutdown().await;
}
