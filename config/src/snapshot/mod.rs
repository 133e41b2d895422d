//! The per-workload [`Snapshot`]: the [`Mesh`] compiled once for one proxy identity into
//! virtual hosts (domain → ordered routes) and clusters (service port + subset → endpoints).
//! The request path only looks up the host, walks the route list (first match wins) and picks
//! a weighted destination; no YAML, no allocation in the common case.

mod cluster;
mod compile;
mod host;
pub mod policy;
mod route;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Value, json};

pub(crate) use cluster::labels_match as cluster_labels_match;
pub use cluster::{Cluster, Endpoint};
pub use route::{Action, CompiledMirror, CompiledRoute, WeightedCluster};

use crate::mesh::{Destination, Mesh, Meta};
use crate::model;

/// Who the proxy is: selects routes (`sourceLabels`, `sourceNamespace`), DestinationRules
/// (`workloadSelector`, lookup order) and visibility (`exportTo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyIdentity {
    /// Workload name.
    pub workload: String,
    /// Namespace (short request hosts are expanded relative to it).
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Workload labels.
    pub labels: BTreeMap<String, String>,
}

/// What the proxy knows about an outbound request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// Authority without port, as the app sent it (`stock-api`, `stock-api.default`, FQDN).
    pub host: &'a str,
    /// Port (80 when the app gave none).
    pub port: u16,
    /// `:method`.
    pub method: &'a str,
    /// Path without query.
    pub path: &'a str,
    /// Query string without `?`.
    pub query: Option<&'a str>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
}

/// A reference to a config object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

impl ObjectRef {
    pub(crate) fn of(meta: &Meta) -> ObjectRef {
        ObjectRef {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The routing outcome the proxy acts on today.
#[derive(Debug, Clone, Copy)]
pub enum RouteDecision<'a> {
    /// Forward to an endpoint of `cluster` (`cluster.next_endpoint()`); the route carries
    /// timeout, retries, fault, header operations, rewrite and mirrors.
    Route {
        /// The matched route.
        route: &'a CompiledRoute,
        /// The picked cluster.
        cluster: &'a Cluster,
    },
    /// No service for the host (Istio's `ALLOW_ANY`), or a service resolved by original
    /// destination: forward to the original `host:port`.
    Passthrough,
    /// The host has routes but none matched: 404, flag `NR`. Redirect and direct-response
    /// rules also map here until the proxy uses [`Snapshot::decide`].
    NoRoute,
    /// The picked destination host or subset does not exist: 503, flag `NC`.
    NoCluster,
}

/// The complete routing outcome (superset of [`RouteDecision`]).
#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    /// Forward to `cluster` (original destination when `cluster.is_original_destination()`).
    Route {
        /// The matched route.
        route: &'a CompiledRoute,
        /// The picked weighted destination (its header operations apply after the route's).
        destination: &'a WeightedCluster,
        /// The picked cluster.
        cluster: &'a Cluster,
    },
    /// Answer with a redirect.
    Redirect {
        /// The matched route.
        route: &'a CompiledRoute,
        /// The redirect.
        redirect: &'a model::HttpRedirect,
    },
    /// Answer directly.
    DirectResponse {
        /// The matched route.
        route: &'a CompiledRoute,
        /// The response.
        response: &'a model::HttpDirectResponse,
    },
    /// No route matched in this virtual host (404 `NR`).
    NoRoute {
        /// The virtual host name.
        virtual_host: &'a str,
    },
    /// The picked destination does not exist (503 `NC`).
    NoCluster {
        /// The matched route.
        route: &'a CompiledRoute,
        /// The missing destination (`None`: no destination had weight).
        destination: Option<&'a Destination>,
    },
    /// Unknown host: forward to the original destination.
    Passthrough,
}

/// A virtual host: the domains of one service (or VirtualService host) and its routes.
#[derive(Debug)]
pub struct VirtualHost {
    /// The service or VirtualService host.
    pub name: String,
    /// Every domain that reaches it (the host and its short forms).
    pub domains: Vec<String>,
    /// Service ports (`None`: any port, for VirtualService hosts without a service).
    pub ports: Option<Vec<u16>>,
    /// The VirtualService providing the routes (`None`: default route).
    pub virtual_service: Option<ObjectRef>,
    /// Routes in order; the first match wins.
    pub routes: Vec<CompiledRoute>,
}

/// The compiled configuration of one proxy. `Send + Sync`; share it as `Arc<Snapshot>`.
#[derive(Debug)]
pub struct Snapshot {
    version: String,
    identity: ProxyIdentity,
    virtual_hosts: Vec<VirtualHost>,
    domains: host::DomainTable,
    clusters: Vec<Arc<Cluster>>,
    /// PeerAuthentication, AuthorizationPolicy and RequestAuthentication for this workload.
    security: crate::security::SecurityPolicy,
}

impl Snapshot {
    /// The security policy of this workload (mTLS mode, authorization, JWT).
    pub fn security(&self) -> &crate::security::SecurityPolicy {
        &self.security
    }

    /// Compiles `mesh` for the proxy `identity`.
    pub fn compile(mesh: &Mesh, identity: &ProxyIdentity) -> Snapshot {
        compile::compile(mesh, identity)
    }

    /// The config version (the mesh's document hash).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The proxy this snapshot was compiled for.
    pub fn identity(&self) -> &ProxyIdentity {
        &self.identity
    }

    /// Virtual hosts in precedence order.
    pub fn virtual_hosts(&self) -> &[VirtualHost] {
        &self.virtual_hosts
    }

    /// The virtual host a request host reaches, if any.
    pub fn virtual_host(&self, host: &str) -> Option<&VirtualHost> {
        let mut buffer = [0u8; 256];
        let host = host::normalize(host, &mut buffer);
        self.domains
            .lookup(&host)
            .and_then(|index| self.virtual_hosts.get(index))
    }

    /// Every cluster referenced by a route, in creation order.
    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.iter().map(Arc::as_ref)
    }

    /// A cluster by name.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters().find(|cluster| cluster.name == name)
    }

    /// Routes a request. `random` is a uniformly distributed number supplied by the caller
    /// (`rand::random()`); it picks among weighted destinations.
    pub fn decide(&self, request: &RequestInfo<'_>, random: u32) -> Decision<'_> {
        let Some(vhost) = self.virtual_host(request.host) else {
            return Decision::Passthrough;
        };
        if let Some(ports) = &vhost.ports
            && !ports.contains(&request.port)
        {
            return Decision::Passthrough;
        }
        for route in &vhost.routes {
            if !route.matches(request) {
                continue;
            }
            return match &route.action {
                Action::Route(_) => match route.pick(random) {
                    Some(weighted) => match weighted.cluster(request.port) {
                        Some(cluster) => Decision::Route {
                            route,
                            destination: weighted,
                            cluster,
                        },
                        None => Decision::NoCluster {
                            route,
                            destination: Some(&weighted.destination),
                        },
                    },
                    None => Decision::NoCluster {
                        route,
                        destination: None,
                    },
                },
                Action::Redirect(redirect) => Decision::Redirect { route, redirect },
                Action::DirectResponse(response) => Decision::DirectResponse { route, response },
            };
        }
        Decision::NoRoute {
            virtual_host: &vhost.name,
        }
    }

    /// Routes a request into the four outcomes the proxy handles today (see [`Decision`] for
    /// the complete set). Clusters resolved by original destination become `Passthrough`.
    pub fn route(&self, request: &RequestInfo<'_>, random: u32) -> RouteDecision<'_> {
        match self.decide(request, random) {
            Decision::Route { cluster, .. } if cluster.is_original_destination() => {
                RouteDecision::Passthrough
            }
            Decision::Route { route, cluster, .. } => RouteDecision::Route { route, cluster },
            Decision::Passthrough => RouteDecision::Passthrough,
            Decision::NoCluster { .. } => RouteDecision::NoCluster,
            Decision::NoRoute { .. }
            | Decision::Redirect { .. }
            | Decision::DirectResponse { .. } => RouteDecision::NoRoute,
        }
    }

    /// A JSON summary for `/config_dump`: version, proxy, virtual hosts with routes, clusters
    /// with endpoints.
    pub fn dump(&self) -> Value {
        let identity = &self.identity;
        json!({
            "version": self.version,
            "proxy": {
                "workload": identity.workload,
                "namespace": identity.namespace,
                "serviceAccount": identity.service_account,
                "labels": identity.labels,
            },
            "virtualHosts": self.virtual_hosts.iter().map(dump_vhost).collect::<Vec<_>>(),
            "clusters": self.clusters().map(dump_cluster).collect::<Vec<_>>(),
            "security": self.security.dump(),
        })
    }
}

fn dump_vhost(vhost: &VirtualHost) -> Value {
    json!({
        "name": vhost.name,
        "domains": vhost.domains,
        "ports": vhost.ports,
        "virtualService": vhost.virtual_service.as_ref().map(ToString::to_string),
        "routes": vhost.routes.iter().map(dump_route).collect::<Vec<_>>(),
    })
}

fn dump_route(route: &CompiledRoute) -> Value {
    let (action, destinations) = match &route.action {
        Action::Route(destinations) => (
            "route",
            destinations
                .iter()
                .map(|d| {
                    json!({
                        "host": d.destination.host,
                        "subset": d.destination.subset,
                        "port": d.destination.port,
                        "weight": d.weight,
                        "clusters": d.target.clusters().iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Action::Redirect(_) => ("redirect", Vec::new()),
        Action::DirectResponse(_) => ("directResponse", Vec::new()),
    };
    json!({
        "name": route.name,
        "virtualService": route.virtual_service.as_ref().map(ToString::to_string),
        "match": route.describe_match(),
        "action": action,
        "destinations": destinations,
        "timeout": route.timeout.map(crate::duration::format_duration),
    })
}

fn dump_cluster(cluster: &Cluster) -> Value {
    json!({
        "name": cluster.name,
        "service": cluster.service_host,
        "port": cluster.service_port,
        "subset": cluster.subset,
        "resolution": cluster.resolution.as_str(),
        "destinationRule": cluster.destination_rule.as_ref().map(ToString::to_string),
        "endpoints": cluster.endpoints.iter().map(|e| json!({
            "address": e.authority_str(),
            "workload": e.workload,
            "namespace": e.namespace,
            "labels": e.labels,
            "serviceAccount": e.service_account,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
