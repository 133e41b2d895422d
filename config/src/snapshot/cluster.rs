//! Clusters (a service port, optionally narrowed to a DestinationRule subset) and their
//! endpoints; DestinationRule lookup and traffic policy merging (istio-model.md §2, §3).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::mesh::{
    DestinationRule, Mesh, ROOT_NAMESPACE, ServiceEntry, ServicePort, Subset, WorkloadSpec,
    expand_host, host_covers,
};
use crate::model::{self, Location, Resolution, TrafficPolicy};

use super::{ObjectRef, ProxyIdentity};

/// One upstream endpoint (a WorkloadEntry, an inline ServiceEntry endpoint, or the DNS host of
/// a `DNS` ServiceEntry without endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP or DNS name (or `unix://` path).
    pub host: String,
    /// Endpoint port: `ports[<service port name>]`, else `targetPort`, else the service port.
    pub port: u16,
    /// WorkloadEntry name; for inline endpoints the ServiceEntry name.
    pub workload: String,
    /// Namespace of the WorkloadEntry (or ServiceEntry).
    pub namespace: String,
    /// Endpoint labels (`app`, `version`, ...).
    pub labels: BTreeMap<String, String>,
    /// Identity of the workload.
    pub service_account: Option<String>,
    /// `region/zone/subzone`.
    pub locality: Option<String>,
    /// Network.
    pub network: Option<String>,
    /// Load balancing weight.
    pub weight: Option<u32>,
    authority: String,
}

impl Endpoint {
    fn new(
        spec: &WorkloadSpec,
        port: &ServicePort,
        workload: &str,
        namespace: &str,
    ) -> Option<Endpoint> {
        if spec.address.is_empty() {
            return None;
        }
        let endpoint_port = spec
            .ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number);
        Some(Endpoint::with(
            spec.address.clone(),
            endpoint_port,
            workload,
            namespace,
            spec,
        ))
    }

    fn with(host: String, port: u16, workload: &str, namespace: &str, spec: &WorkloadSpec) -> Self {
        let authority = if host.starts_with("unix://") {
            host.clone()
        } else if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Endpoint {
            host,
            port,
            workload: workload.to_string(),
            namespace: namespace.to_string(),
            labels: spec.labels.clone(),
            service_account: spec.service_account.clone(),
            locality: spec.locality.clone(),
            network: spec.network.clone(),
            weight: spec.weight,
            authority,
        }
    }

    /// `host:port` (`[v6]:port`) to connect to.
    pub fn authority(&self) -> String {
        self.authority.clone()
    }

    /// `host:port` without allocating.
    pub fn authority_str(&self) -> &str {
        &self.authority
    }
}

/// An upstream cluster, Envoy style: `outbound|<port>|<subset>|<host>`.
#[derive(Debug)]
pub struct Cluster {
    /// `outbound|80|v1|stock-api.default.svc.cluster.local`.
    pub name: String,
    /// The service host (registry name, lowercase).
    pub service_host: String,
    /// The service port.
    pub service_port: u16,
    /// DestinationRule subset, if any.
    pub subset: Option<String>,
    /// Endpoints (subset-filtered).
    pub endpoints: Vec<Endpoint>,
    /// The ServiceEntry defining the service.
    pub service_entry: ObjectRef,
    /// Protocol of the service port as written.
    pub protocol: Option<String>,
    /// Inside or outside the mesh.
    pub location: Location,
    /// How endpoints are found; `NONE` means forward to the original destination.
    pub resolution: Resolution,
    /// The DestinationRule that applies (after lookup and merge), if any.
    pub destination_rule: Option<ObjectRef>,
    /// Effective traffic policy for this cluster (rule, port-level, subset, subset port-level
    /// merged as Istio does).
    pub traffic_policy: Option<TrafficPolicy>,
    next: AtomicUsize,
}

impl Cluster {
    /// Round-robin over the endpoints (`None` when there is none: 503 `UH`).
    pub fn next_endpoint(&self) -> Option<&Endpoint> {
        if self.endpoints.is_empty() {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints.get(index)
    }

    /// Whether requests go to the original destination (`resolution: NONE`).
    pub fn is_original_destination(&self) -> bool {
        self.resolution == Resolution::None
    }
}

/// Envoy's cluster name for a service port and subset.
pub(crate) fn cluster_name(host: &str, port: u16, subset: Option<&str>) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or(""))
}

/// The DestinationRules that apply to one host, merged.
#[derive(Debug, Clone)]
pub(crate) struct MergedRule {
    pub(crate) first: ObjectRef,
    pub(crate) traffic_policy: Option<TrafficPolicy>,
    pub(crate) subsets: Vec<Subset>,
}

/// DestinationRule lookup for `host` seen from `proxy`: the proxy's namespace, then the
/// service's, then the root namespace; in the first namespace with a match, the most specific
/// host wins and rules for that host are merged (subsets concatenated, first name wins; the
/// first traffic policy wins).
pub(crate) fn find_destination_rule(
    mesh: &Mesh,
    proxy: &ProxyIdentity,
    host: &str,
    service_namespace: &str,
) -> Option<MergedRule> {
    let mut namespaces = vec![proxy.namespace.as_str()];
    for ns in [service_namespace, ROOT_NAMESPACE] {
        if !namespaces.contains(&ns) {
            namespaces.push(ns);
        }
    }
    for namespace in namespaces {
        let candidates: Vec<(&DestinationRule, String)> = mesh
            .destination_rules()
            .iter()
            .filter(|dr| dr.meta.namespace == namespace)
            .filter(|dr| dr.export_to.is_visible_to(&proxy.namespace))
            .filter(|dr| match &dr.workload_selector {
                None => true,
                Some(selector) => {
                    dr.meta.namespace == proxy.namespace && labels_match(selector, &proxy.labels)
                }
            })
            .map(|dr| (dr, expand_host(&dr.host, &dr.meta.namespace)))
            .filter(|(_, rule_host)| host_covers(rule_host, host))
            .collect();
        let best = candidates
            .iter()
            .map(|(_, rule_host)| rule_host)
            .max_by_key(|rule_host| (rule_host.as_str() == host, rule_host.len()));
        let Some(best) = best else { continue };
        let mut merged: Option<MergedRule> = None;
        for (dr, _) in candidates.iter().filter(|(_, h)| h == best) {
            let merged = merged.get_or_insert_with(|| MergedRule {
                first: ObjectRef::of(&dr.meta),
                traffic_policy: None,
                subsets: Vec::new(),
            });
            if merged.traffic_policy.is_none() {
                merged.traffic_policy = dr.traffic_policy.clone();
            }
            for subset in &dr.subsets {
                if !merged.subsets.iter().any(|s| s.name == subset.name) {
                    merged.subsets.push(subset.clone());
                }
            }
        }
        return merged;
    }
    None
}

/// Whether `labels` ⊇ `selector`.
pub(crate) fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

fn port_level(policy: &TrafficPolicy, port: u16) -> Option<&model::PortTrafficPolicy> {
    policy.port_level_settings.iter().find(|p| {
        p.port
            .is_some_and(|selector| selector.number == u32::from(port))
    })
}

/// Istio's `MergeTrafficPolicy`: rule-level components, replaced wholesale by the rule's
/// port-level entry for `port`; then each component the subset sets replaces the merged one;
/// then the subset's port-level entry replaces load balancer, pool, outlier detection and TLS.
pub(crate) fn effective_policy(
    rule: Option<&TrafficPolicy>,
    subset: Option<&TrafficPolicy>,
    port: u16,
) -> Option<TrafficPolicy> {
    let apply_port = |merged: &mut TrafficPolicy, entry: &model::PortTrafficPolicy| {
        merged.load_balancer = entry.load_balancer.clone();
        merged.connection_pool = entry.connection_pool.clone();
        merged.outlier_detection = entry.outlier_detection.clone();
        merged.tls = entry.tls.clone();
    };
    let base = rule.map(|policy| {
        let mut merged = TrafficPolicy {
            port_level_settings: Vec::new(),
            ..policy.clone()
        };
        if let Some(entry) = port_level(policy, port) {
            apply_port(&mut merged, entry);
        }
        merged
    });
    let Some(subset) = subset else { return base };
    let mut merged = base.unwrap_or_default();
    macro_rules! take {
        ($($field:ident),*) => {$(
            if subset.$field.is_some() {
                merged.$field = subset.$field.clone();
            }
        )*};
    }
    take!(
        load_balancer,
        connection_pool,
        outlier_detection,
        tls,
        tunnel,
        proxy_protocol,
        retry_budget
    );
    if let Some(entry) = port_level(subset, port) {
        apply_port(&mut merged, entry);
    }
    Some(merged)
}

/// Endpoints of one service port: inline endpoints, selected WorkloadEntries of the
/// ServiceEntry's namespace, or the host itself for `DNS` without endpoints.
pub(crate) fn service_endpoints(
    mesh: &Mesh,
    service: &ServiceEntry,
    host: &str,
    port: &ServicePort,
) -> Vec<Endpoint> {
    if service.resolution == Resolution::None {
        return Vec::new();
    }
    let namespace = &service.meta.namespace;
    let mut endpoints: Vec<Endpoint> = service
        .endpoints
        .iter()
        .filter_map(|spec| Endpoint::new(spec, port, &service.meta.name, namespace))
        .collect();
    if let Some(selector) = &service.workload_selector {
        endpoints.extend(
            mesh.workload_entries()
                .iter()
                .filter(|we| we.meta.namespace == *namespace)
                .filter(|we| labels_match(selector, &we.spec.labels))
                .filter_map(|we| Endpoint::new(&we.spec, port, &we.meta.name, namespace)),
        );
    }
    let dns = matches!(
        service.resolution,
        Resolution::Dns | Resolution::DnsRoundRobin
    );
    if dns
        && service.endpoints.is_empty()
        && service.workload_selector.is_none()
        && !host.starts_with('*')
    {
        let spec = WorkloadSpec {
            address: host.to_string(),
            ports: BTreeMap::new(),
            labels: BTreeMap::new(),
            network: None,
            locality: None,
            weight: None,
            service_account: None,
        };
        endpoints.push(Endpoint::with(
            host.to_string(),
            port.target_port.unwrap_or(port.number),
            &service.meta.name,
            namespace,
            &spec,
        ));
    }
    endpoints
}

/// Builds a cluster for a service port and optional subset; `None` when the subset is not
/// defined by the DestinationRule that applies (503 `NC`).
pub(crate) fn build_cluster(
    mesh: &Mesh,
    proxy: &ProxyIdentity,
    service: &ServiceEntry,
    host: &str,
    port: &ServicePort,
    subset: Option<&str>,
) -> Option<Cluster> {
    let rule = find_destination_rule(mesh, proxy, host, &service.meta.namespace);
    let mut endpoints = service_endpoints(mesh, service, host, port);
    let mut subset_policy = None;
    if let Some(name) = subset {
        let found = rule
            .as_ref()
            .and_then(|rule| rule.subsets.iter().find(|s| s.name == name))?;
        endpoints.retain(|endpoint| labels_match(&found.labels, &endpoint.labels));
        subset_policy = found.traffic_policy.as_ref();
    }
    let traffic_policy = effective_policy(
        rule.as_ref().and_then(|r| r.traffic_policy.as_ref()),
        subset_policy,
        port.number,
    );
    Some(Cluster {
        name: cluster_name(host, port.number, subset),
        service_host: host.to_string(),
        service_port: port.number,
        subset: subset.map(str::to_string),
        endpoints,
        service_entry: ObjectRef::of(&service.meta),
        protocol: port.protocol.clone(),
        location: service.location,
        resolution: service.resolution,
        destination_rule: rule.map(|r| r.first),
        traffic_policy,
        next: AtomicUsize::new(0),
    })
}
