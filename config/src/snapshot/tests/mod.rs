//! Data-driven snapshot tests: routing (host expansion, first match, weights, decisions) and
//! clusters (subsets, DestinationRule lookup, policies, endpoints, the demo mesh).

mod clusters;
mod routing;

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderValue};

use super::*;

pub(super) fn mesh(text: &str) -> Mesh {
    match Mesh::from_str_sources(&[("mesh.yaml", text)]) {
        Ok((mesh, _)) => mesh,
        Err(error) => panic!("mesh does not load:\n{error}"),
    }
}

pub(super) fn proxy(namespace: &str, labels: &[(&str, &str)]) -> ProxyIdentity {
    ProxyIdentity {
        workload: "client".into(),
        namespace: namespace.into(),
        service_account: "client".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A request; `target` is `host[:port]` followed by the path and query.
pub(super) struct Request {
    host: String,
    port: u16,
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

pub(super) fn request(target: &str) -> Request {
    let (authority, rest) = target.split_once('/').unwrap_or((target, ""));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(80)),
        None => (authority, 80),
    };
    let rest = format!("/{rest}");
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (rest, None),
    };
    Request {
        host: host.into(),
        port,
        method: "GET".into(),
        path,
        query,
        headers: HeaderMap::new(),
    }
}

impl Request {
    pub(super) fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }

    pub(super) fn method(mut self, method: &str) -> Self {
        self.method = method.into();
        self
    }

    pub(super) fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            host: &self.host,
            port: self.port,
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            scheme: "http",
            headers: &self.headers,
        }
    }
}

/// A short text of a decision: `route NAME -> CLUSTER`, `redirect NAME`, `NR`, `NC`,
/// `passthrough`.
pub(super) fn outcome(snapshot: &Snapshot, request: &Request, random: u32) -> String {
    match snapshot.decide(&request.info(), random) {
        Decision::Route { route, cluster, .. } => format!(
            "route {} -> {}",
            route.name.as_deref().unwrap_or("-"),
            cluster.name
        ),
        Decision::Redirect { route, .. } => {
            format!("redirect {}", route.name.as_deref().unwrap_or("-"))
        }
        Decision::DirectResponse { response, .. } => format!("direct {}", response.status),
        Decision::NoRoute { .. } => "NR".into(),
        Decision::NoCluster { .. } => "NC".into(),
        Decision::Passthrough => "passthrough".into(),
    }
}

pub(super) fn service_entry(name: &str, namespace: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [{name}.{namespace}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: {name}}}}}
{extra}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-v1, namespace: {namespace}}}
spec: {{address: 10.0.0.1, ports: {{http: 8001}}, labels: {{app: {name}, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}-v2, namespace: {namespace}}}
spec: {{address: 10.0.0.2, ports: {{http: 8002}}, labels: {{app: {name}, version: v2}}, serviceAccount: {name}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  host: {name}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
"
    )
}

pub(super) fn virtual_service(namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

pub(super) const V1: &str = "outbound|80|v1|api.default.svc.cluster.local";
pub(super) const V2: &str = "outbound|80|v2|api.default.svc.cluster.local";
pub(super) const ALL: &str = "outbound|80||api.default.svc.cluster.local";

/// Share of 4096 evenly spread random numbers that pick each cluster.
pub(super) fn split(snapshot: &Snapshot, target: &str) -> BTreeMap<String, usize> {
    let request = request(target);
    let mut counts = BTreeMap::new();
    for i in 0..4096u32 {
        let random = i.wrapping_mul(1 << 20);
        *counts
            .entry(outcome(snapshot, &request, random))
            .or_insert(0) += 1;
    }
    counts
}
