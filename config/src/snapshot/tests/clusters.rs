//! Clusters, endpoints and policies.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

#[test]
fn subsets_select_endpoints_by_labels() {
    let snapshot = Snapshot::compile(
        &mesh(&format!(
            "{}{}",
            service_entry("api", "default", ""),
            virtual_service(
                "default",
                "  hosts: [api]\n  http:\n  - route: [{destination: {host: api, subset: v2}}]\n"
            )
        )),
        &proxy("default", &[]),
    );
    let Decision::Route { cluster, .. } = snapshot.decide(&request("api/").info(), 0) else {
        panic!("expected a route");
    };
    assert_eq!(cluster.name, V2);
    assert_eq!(cluster.service_host, "api.default.svc.cluster.local");
    assert_eq!(cluster.service_port, 80);
    assert_eq!(cluster.subset.as_deref(), Some("v2"));
    let endpoints: Vec<(String, &str, Option<&str>)> = cluster
        .endpoints
        .iter()
        .map(|e| {
            (
                e.authority(),
                e.workload.as_str(),
                e.service_account.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        vec![("10.0.0.2:8002".to_string(), "api-v2", Some("api"))]
    );
    assert_eq!(
        cluster.endpoints[0]
            .labels
            .get("version")
            .map(String::as_str),
        Some("v2")
    );
    assert_eq!(
        cluster
            .destination_rule
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("default/api")
    );
}

#[test]
fn destination_rule_lookup_prefers_the_proxy_namespace() {
    let client_rule = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-from-prod, namespace: prod}
spec:
  host: api.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v2}}
---
";
    let text = format!(
        "{}{client_rule}{}",
        service_entry("api", "default", ""),
        virtual_service(
            "prod",
            "  hosts: [api.default.svc.cluster.local]\n  http:\n  - route: [{destination: {host: api.default.svc.cluster.local, subset: v1}}]\n"
        )
    );
    let mesh = mesh(&text);
    let snapshot = Snapshot::compile(&mesh, &proxy("prod", &[]));
    let Decision::Route { cluster, .. } = snapshot.decide(&request("api.default/").info(), 0)
    else {
        panic!("expected a route");
    };
    assert_eq!(
        cluster.endpoints[0].workload, "api-v2",
        "the prod rule's v1 selects version v2"
    );
    assert_eq!(
        cluster
            .destination_rule
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("prod/api-from-prod")
    );
    let policy = cluster
        .traffic_policy
        .as_ref()
        .and_then(|p| p.load_balancer.as_ref());
    assert_eq!(
        policy.and_then(|lb| lb.simple),
        Some(model::SimpleLb::Random)
    );
}

#[test]
fn traffic_policies_merge_like_istio() {
    let policy = |yaml: &str| -> model::TrafficPolicy {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    };
    let rule = policy(
        "loadBalancer: {simple: ROUND_ROBIN}\nconnectionPool: {tcp: {maxConnections: 10}}\noutlierDetection: {consecutive5xxErrors: 7}\nportLevelSettings:\n- port: {number: 9080}\n  loadBalancer: {simple: RANDOM}",
    );
    let subset = policy("connectionPool: {http: {maxRetries: 3}}");
    let merged = cluster::effective_policy(Some(&rule), Some(&subset), 80).unwrap_or_default();
    assert_eq!(
        merged.load_balancer.and_then(|lb| lb.simple),
        Some(model::SimpleLb::RoundRobin)
    );
    let pool = merged.connection_pool.unwrap_or_default();
    assert!(
        pool.tcp.is_none(),
        "subset connectionPool replaces the whole component"
    );
    assert_eq!(pool.http.and_then(|h| h.max_retries), Some(3));
    assert_eq!(
        merged
            .outlier_detection
            .and_then(|o| o.consecutive_5xx_errors),
        Some(7)
    );
    let port = cluster::effective_policy(Some(&rule), None, 9080).unwrap_or_default();
    assert_eq!(
        port.load_balancer.and_then(|lb| lb.simple),
        Some(model::SimpleLb::Random)
    );
    assert!(
        port.connection_pool.is_none(),
        "port-level settings do not inherit"
    );
    assert!(port.outlier_detection.is_none());
}

#[test]
fn external_services_by_resolution() {
    let text = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  addresses: [240.0.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki}
spec:
  hosts: ['*.wikipedia.org']
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
";
    let snapshot = Snapshot::compile(&mesh(text), &proxy("default", &[]));
    let Decision::Route { cluster, .. } = snapshot.decide(&request("httpbin.org/get").info(), 0)
    else {
        panic!("expected a route");
    };
    assert_eq!(cluster.name, "outbound|80||httpbin.org");
    assert_eq!(
        outcome(&snapshot, &request("240.0.0.1/get"), 0),
        "route default -> outbound|80||httpbin.org",
        "the service address is a domain too"
    );
    assert_eq!(
        cluster.next_endpoint().map(Endpoint::authority).as_deref(),
        Some("httpbin.org:80")
    );
    let wiki = request("en.wikipedia.org/wiki");
    assert_eq!(
        outcome(&snapshot, &wiki, 0),
        "route default -> outbound|80||*.wikipedia.org"
    );
    assert!(matches!(
        snapshot.route(&wiki.info(), 0),
        RouteDecision::Passthrough
    ));
}

#[test]
fn demo_mesh_splits_stock_api_90_10() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (mesh, findings) = crate::load(&[
        examples.join("demo.yaml"),
        examples.join("workloads.example.yaml"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(findings.is_empty(), "{findings:?}");
    let web = ProxyIdentity {
        workload: "web".into(),
        namespace: "default".into(),
        service_account: "web".into(),
        labels: [("app", "web"), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let snapshot = Snapshot::compile(&mesh, &web);
    assert_eq!(snapshot.version(), mesh.version());
    let v1 = "outbound|80|v1|stock-api.default.svc.cluster.local";
    let v2 = "outbound|80|v2|stock-api.default.svc.cluster.local";
    assert_eq!(
        split(&snapshot, "stock-api/price"),
        BTreeMap::from([
            (format!("route canary -> {v1}"), 3687),
            (format!("route canary -> {v2}"), 409),
        ])
    );
    let endpoints = |name: &str| -> Vec<(String, String)> {
        snapshot
            .cluster(name)
            .map(|c| {
                c.endpoints
                    .iter()
                    .map(|e| (e.workload.clone(), e.authority()))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        endpoints(v1),
        vec![("stock-api-v1".to_string(), "127.0.0.1:15206".to_string())]
    );
    assert_eq!(
        endpoints(v2),
        vec![("stock-api-v2".to_string(), "127.0.0.1:15306".to_string())]
    );
    assert_eq!(
        outcome(&snapshot, &request("products/list"), 0),
        "route default -> outbound|80||products.default.svc.cluster.local"
    );
    let dump = snapshot.dump();
    assert_eq!(dump["version"], mesh.version());
    assert_eq!(dump["proxy"]["workload"], "web");
    assert!(
        dump["clusters"].as_array().is_some_and(|c| c.len() == 4),
        "{dump:#}"
    );
}

#[test]
fn round_robin_over_endpoints() {
    let snapshot = Snapshot::compile(
        &mesh(&service_entry("api", "default", "")),
        &proxy("default", &[]),
    );
    let Some(cluster) = snapshot.cluster(ALL) else {
        panic!("cluster {ALL} missing");
    };
    let picks: Vec<String> = (0..4)
        .filter_map(|_| cluster.next_endpoint().map(Endpoint::authority))
        .collect();
    assert_eq!(
        picks,
        vec![
            "10.0.0.1:8001",
            "10.0.0.2:8002",
            "10.0.0.1:8001",
            "10.0.0.2:8002"
        ]
    );
}

#[test]
fn snapshot_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Snapshot>();
    assert_send_sync::<std::sync::Arc<Snapshot>>();
}
