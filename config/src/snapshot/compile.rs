//! Compiling a [`Mesh`] for one proxy: visible services, virtual hosts, routes (proxy
//! selectors applied, delegates merged) and the clusters they reference.

use std::collections::HashMap;
use std::sync::Arc;

use crate::mesh::{
    Destination, HttpMatch, HttpRoute, Mesh, RouteAction, ServiceEntry, ServicePort,
    VirtualService, expand_host, host_covers,
};

use super::cluster::{Cluster, build_cluster, cluster_name, labels_match};
use super::host::DomainTable;
use super::policy::{CorsPolicy, FaultPolicy, HeaderPolicy, RetryPolicy};
use super::route::{
    Action, CompiledMirror, CompiledRoute, Conditions, Matcher, Target, WeightedCluster,
};
use super::{ObjectRef, ProxyIdentity, Snapshot, VirtualHost};

pub(crate) fn compile(mesh: &Mesh, proxy: &ProxyIdentity) -> Snapshot {
    let mut compiler = Compiler {
        mesh,
        proxy,
        services: Vec::new(),
        service_index: HashMap::new(),
        clusters: HashMap::new(),
        cluster_order: Vec::new(),
    };
    compiler.collect_services();
    let (virtual_hosts, domains) = compiler.virtual_hosts();
    Snapshot {
        version: mesh.version().to_string(),
        identity: proxy.clone(),
        virtual_hosts,
        domains,
        clusters: compiler.cluster_order,
        security: crate::security::SecurityPolicy::compile(mesh, &proxy.namespace, &proxy.labels),
    }
}

struct Compiler<'m> {
    mesh: &'m Mesh,
    proxy: &'m ProxyIdentity,
    /// Visible services (lowercase host, defining ServiceEntry), in precedence order.
    services: Vec<(String, &'m ServiceEntry)>,
    service_index: HashMap<String, usize>,
    clusters: HashMap<String, Arc<Cluster>>,
    cluster_order: Vec<Arc<Cluster>>,
}

/// Envoy's route name for a rule and match.
fn route_name(rule: Option<&str>, matched: Option<&str>) -> Option<String> {
    let rule = rule.filter(|name| !name.is_empty());
    let matched = matched.filter(|name| !name.is_empty());
    match (rule, matched) {
        (Some(rule), Some(matched)) => Some(format!("{rule}.{matched}")),
        (Some(name), None) | (None, Some(name)) => Some(name.to_string()),
        (None, None) => None,
    }
}

impl<'m> Compiler<'m> {
    /// ServiceEntries exported to the proxy's namespace; those of the proxy's own namespace
    /// take precedence for a host, then Istio's order.
    fn collect_services(&mut self) {
        let visible = self
            .mesh
            .service_entries()
            .iter()
            .filter(|se| se.export_to.is_visible_to(&self.proxy.namespace));
        let (own, others): (Vec<_>, Vec<_>) =
            visible.partition(|se| se.meta.namespace == self.proxy.namespace);
        for se in own.into_iter().chain(others) {
            for host in &se.hosts {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                if !self.service_index.contains_key(&host) {
                    self.service_index.insert(host.clone(), self.services.len());
                    self.services.push((host, se));
                }
            }
        }
    }

    /// The service for a (lowercase) destination host: exact, else the most specific
    /// wildcard service covering it.
    fn service(&self, host: &str) -> Option<(String, &'m ServiceEntry)> {
        if let Some(index) = self.service_index.get(host) {
            let (host, se) = &self.services[*index];
            return Some((host.clone(), *se));
        }
        self.services
            .iter()
            .filter(|(pattern, _)| pattern.starts_with('*') && host_covers(pattern, host))
            .max_by_key(|(pattern, _)| pattern.len())
            .map(|(pattern, se)| (pattern.clone(), *se))
    }

    fn cluster(
        &mut self,
        se: &ServiceEntry,
        host: &str,
        port: &ServicePort,
        subset: Option<&str>,
    ) -> Option<Arc<Cluster>> {
        let name = cluster_name(host, port.number, subset);
        if let Some(cluster) = self.clusters.get(&name) {
            return Some(cluster.clone());
        }
        let cluster = Arc::new(build_cluster(
            self.mesh, self.proxy, se, host, port, subset,
        )?);
        self.clusters.insert(name, cluster.clone());
        self.cluster_order.push(cluster.clone());
        Some(cluster)
    }

    /// Resolves an (expanded) destination to its cluster(s).
    fn target(&mut self, destination: &Destination) -> Target {
        let Some((host, se)) = self.service(&destination.host) else {
            return Target::Missing;
        };
        let subset = destination.subset.as_deref();
        match destination.port {
            Some(number) => se
                .ports
                .iter()
                .find(|port| port.number == number)
                .and_then(|port| self.cluster(se, &host, port, subset))
                .map_or(Target::Missing, Target::Cluster),
            None if se.ports.len() == 1 => self
                .cluster(se, &host, &se.ports[0], subset)
                .map_or(Target::Missing, Target::Cluster),
            None => {
                let clusters: Vec<(u16, Arc<Cluster>)> = se
                    .ports
                    .iter()
                    .filter_map(|port| {
                        self.cluster(se, &host, port, subset)
                            .map(|cluster| (port.number, cluster))
                    })
                    .collect();
                if clusters.is_empty() {
                    Target::Missing
                } else {
                    Target::PerPort(clusters)
                }
            }
        }
    }

    fn expanded(&self, destination: &Destination, namespace: &str) -> Destination {
        Destination {
            host: expand_host(&destination.host, namespace),
            subset: destination.subset.clone(),
            port: destination.port,
        }
    }

    /// Proxy selectors of a match (istio-model.md §1.2, `sourceMatchHTTP`).
    fn selects(&self, m: &HttpMatch) -> bool {
        if !m.gateways.is_empty() {
            return m.gateways.iter().any(|g| g == "mesh");
        }
        labels_match(&m.source_labels, &self.proxy.labels)
            && m.source_namespace
                .as_ref()
                .is_none_or(|ns| *ns == self.proxy.namespace)
    }

    fn default_route(&mut self, host: &str) -> CompiledRoute {
        let destination = Destination {
            host: host.to_string(),
            subset: None,
            port: None,
        };
        let target = self.target(&destination);
        CompiledRoute {
            name: Some("default".to_string()),
            virtual_service: None,
            rule_index: None,
            match_index: None,
            action: Action::Route(vec![WeightedCluster {
                destination,
                weight: 100,
                headers: None,
                header_policy: None,
                target,
            }]),
            timeout: None,
            retries: None,
            fault: None,
            headers: None,
            rewrite: None,
            cors_policy: None,
            mirrors: Vec::new(),
            retry_policy: RetryPolicy::istio_default(),
            fault_policy: None,
            cors: None,
            header_policy: None,
            matcher: Matcher::default(),
        }
    }

    fn compiled(
        &mut self,
        vs: &VirtualService,
        rule_index: usize,
        match_index: Option<usize>,
        rule: &HttpRoute,
        matcher: Matcher,
    ) -> CompiledRoute {
        let namespace = vs.meta.namespace.clone();
        let action = match &rule.action {
            RouteAction::Route(destinations) => Action::Route(
                destinations
                    .iter()
                    .map(|weighted| {
                        let destination = self.expanded(&weighted.destination, &namespace);
                        let target = self.target(&destination);
                        WeightedCluster {
                            destination,
                            weight: weighted.weight,
                            headers: weighted.headers.clone(),
                            header_policy: weighted
                                .headers
                                .as_ref()
                                .and_then(HeaderPolicy::from_model),
                            target,
                        }
                    })
                    .collect(),
            ),
            RouteAction::Redirect(redirect) => Action::Redirect(redirect.clone()),
            RouteAction::DirectResponse(response) => Action::DirectResponse(response.clone()),
            RouteAction::Delegate { .. } => Action::Route(Vec::new()),
        };
        let mirrors = rule
            .mirrors
            .iter()
            .map(|mirror| {
                let destination = self.expanded(&mirror.destination, &namespace);
                let target = self.target(&destination);
                CompiledMirror {
                    destination,
                    percentage: mirror.percentage,
                    target,
                }
            })
            .collect();
        let match_name = match_index
            .and_then(|j| rule.matches.get(j))
            .and_then(|m| m.name.as_deref());
        CompiledRoute {
            name: route_name(rule.name.as_deref(), match_name),
            virtual_service: Some(ObjectRef::of(&vs.meta)),
            rule_index: Some(rule_index),
            match_index,
            action,
            timeout: rule.timeout,
            retries: rule.retries.clone(),
            fault: rule.fault.clone(),
            headers: rule.headers.clone(),
            rewrite: rule.rewrite.clone(),
            cors_policy: rule.cors_policy.clone(),
            mirrors,
            retry_policy: rule
                .retries
                .as_ref()
                .map_or_else(RetryPolicy::istio_default, RetryPolicy::from_model),
            fault_policy: rule.fault.as_ref().and_then(FaultPolicy::from_model),
            cors: rule.cors_policy.as_ref().map(CorsPolicy::from_model),
            header_policy: rule.headers.as_ref().and_then(HeaderPolicy::from_model),
            matcher,
        }
    }

    /// The flattened (rule × match) route list of a VirtualService for this proxy. A rule
    /// without matches is a catch-all and ends the list.
    fn vs_routes(&mut self, vs: &VirtualService) -> Vec<CompiledRoute> {
        let mut out = Vec::new();
        for (i, rule) in vs.http.iter().enumerate() {
            if let RouteAction::Delegate { name, namespace } = &rule.action {
                self.delegate_routes(vs, rule, name, namespace.as_deref(), &mut out);
            } else if rule.matches.is_empty() {
                out.push(self.compiled(vs, i, None, rule, Matcher::default()));
            } else {
                for (j, m) in rule.matches.iter().enumerate() {
                    if self.selects(m) {
                        let matcher = Matcher {
                            all: vec![Conditions::from_match(m)],
                        };
                        out.push(self.compiled(vs, i, Some(j), rule, matcher));
                    }
                }
            }
            if rule.matches.is_empty() {
                break;
            }
        }
        out
    }

    /// Merges the rules of a delegate VirtualService under a root rule: each delegate match is
    /// ANDed with each root match; unset delegate policies inherit the root's.
    fn delegate_routes(
        &mut self,
        root: &VirtualService,
        root_rule: &HttpRoute,
        name: &str,
        namespace: Option<&str>,
        out: &mut Vec<CompiledRoute>,
    ) {
        let namespace = namespace.unwrap_or(&root.meta.namespace);
        let mesh = self.mesh;
        let Some(delegate) = mesh.virtual_services().iter().find(|d| {
            d.is_delegate()
                && d.meta.name == name
                && d.meta.namespace == namespace
                && d.export_to.is_visible_to(&root.meta.namespace)
        }) else {
            return;
        };
        let root_conditions: Vec<Option<Conditions>> = if root_rule.matches.is_empty() {
            vec![None]
        } else {
            root_rule
                .matches
                .iter()
                .filter(|m| self.selects(m))
                .map(|m| Some(Conditions::from_match(m)))
                .collect()
        };
        for (k, rule) in delegate.http.iter().enumerate() {
            if matches!(rule.action, RouteAction::Delegate { .. }) {
                continue;
            }
            let merged = HttpRoute {
                timeout: rule.timeout.or(root_rule.timeout),
                retries: rule.retries.clone().or_else(|| root_rule.retries.clone()),
                fault: rule.fault.clone().or_else(|| root_rule.fault.clone()),
                headers: rule.headers.clone().or_else(|| root_rule.headers.clone()),
                rewrite: rule.rewrite.clone().or_else(|| root_rule.rewrite.clone()),
                cors_policy: rule
                    .cors_policy
                    .clone()
                    .or_else(|| root_rule.cors_policy.clone()),
                ..rule.clone()
            };
            let delegate_conditions: Vec<(Option<usize>, Option<Conditions>)> =
                if rule.matches.is_empty() {
                    vec![(None, None)]
                } else {
                    rule.matches
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| self.selects(m))
                        .map(|(j, m)| (Some(j), Some(Conditions::from_match(m))))
                        .collect()
                };
            for (j, own) in &delegate_conditions {
                for parent in &root_conditions {
                    let all = parent.iter().chain(own.iter()).cloned().collect();
                    out.push(self.compiled(delegate, k, *j, &merged, Matcher { all }));
                }
            }
            if rule.matches.is_empty() {
                break;
            }
        }
    }

    /// The VirtualService for a service host: the first exact host match, else the most
    /// specific wildcard host covering it.
    fn virtual_service_for<'v>(
        visible: &'v [(&'m VirtualService, Vec<String>)],
        host: &str,
    ) -> Option<&'v (&'m VirtualService, Vec<String>)> {
        visible
            .iter()
            .find(|(_, hosts)| hosts.iter().any(|h| h == host))
            .or_else(|| {
                visible
                    .iter()
                    .filter_map(|entry| {
                        entry
                            .1
                            .iter()
                            .filter(|h| h.starts_with('*') && host_covers(h, host))
                            .map(String::len)
                            .max()
                            .map(|len| (len, entry))
                    })
                    .fold(None, |best: Option<(usize, _)>, (len, entry)| match best {
                        Some((best_len, _)) if best_len >= len => best,
                        _ => Some((len, entry)),
                    })
                    .map(|(_, entry)| entry)
            })
    }

    fn virtual_hosts(&mut self) -> (Vec<VirtualHost>, DomainTable) {
        let mesh = self.mesh;
        let visible: Vec<(&VirtualService, Vec<String>)> = mesh
            .virtual_services()
            .iter()
            .filter(|vs| !vs.is_delegate() && vs.applies_to_mesh())
            .filter(|vs| vs.export_to.is_visible_to(&self.proxy.namespace))
            .map(|vs| {
                let hosts = vs
                    .hosts
                    .iter()
                    .map(|h| expand_host(h, &vs.meta.namespace))
                    .collect();
                (vs, hosts)
            })
            .collect();
        let mut domains = DomainTable::default();
        let mut vhosts = Vec::new();
        let services = self.services.clone();
        for (host, se) in &services {
            if domains.is_claimed(host) {
                continue;
            }
            let chosen = Self::virtual_service_for(&visible, host).map(|(vs, _)| *vs);
            let routes = match chosen {
                Some(vs) => self.vs_routes(vs),
                None => vec![self.default_route(host)],
            };
            let index = vhosts.len();
            domains.claim(host, index);
            let mut names = vec![host.clone()];
            // HTTP routes also answer to the service's addresses (VIPs, not CIDRs).
            for address in se.addresses.iter().filter(|a| !a.contains('/')) {
                let address = address.to_ascii_lowercase();
                if domains.claim(&address, index) {
                    names.push(address);
                }
            }
            vhosts.push(VirtualHost {
                name: host.clone(),
                domains: names,
                ports: Some(se.ports.iter().map(|p| p.number).collect()),
                virtual_service: chosen.map(|vs| ObjectRef::of(&vs.meta)),
                routes,
            });
        }
        for (vs, hosts) in &visible {
            for host in hosts {
                if host == "*" || domains.is_claimed(host) {
                    continue;
                }
                let routes = self.vs_routes(vs);
                domains.claim(host, vhosts.len());
                vhosts.push(VirtualHost {
                    name: host.clone(),
                    domains: vec![host.clone()],
                    ports: None,
                    virtual_service: Some(ObjectRef::of(&vs.meta)),
                    routes,
                });
            }
        }
        for (index, vhost) in vhosts.iter_mut().enumerate() {
            let aliases = domains.alias(&vhost.name, index, &self.proxy.namespace);
            vhost.domains.extend(aliases);
        }
        (vhosts, domains)
    }
}
