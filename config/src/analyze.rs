//! Mesh-wide checks in the spirit of `istioctl analyze` (istio-model.md §9): references from
//! VirtualServices to hosts, ports and subsets (IST0101, IST0112) and to delegates;
//! conflicting mesh VirtualServices (IST0109), unreachable rules and ineffective matches
//! (IST0130, IST0131) in `routes`; subsets selecting no workload (IST0173) and rules for
//! unknown hosts (IST0174) in `rules`. Deprecations (IST0002) are reported by validation.
//!
//! weft sees only the files it is given, not Kubernetes Services, so an unknown host is a
//! warning here (istioctl reports an error). A subset or port missing on a host that weft does
//! know is an error: the route would answer 503 `NC`.

use crate::finding::{Finding, Severity};
use crate::mesh::{
    DestinationRule, Mesh, RouteAction, ServiceEntry, VirtualService, expand_host, host_covers,
};
use crate::path::FieldPath;

mod routes;
mod rules;

const REFERENCED_RESOURCE_NOT_FOUND: &str = "IST0101";
const PORT_SELECTOR_REQUIRED: &str = "IST0112";

/// Runs every analyzer over a loaded mesh.
pub(crate) fn analyze(mesh: &Mesh) -> Vec<Finding> {
    let mut findings = Vec::new();
    crate::security::analyze::destination_rule_tls(mesh, &mut findings);
    for vs in mesh.virtual_services() {
        destinations(mesh, vs, &mut findings);
    }
    routes::conflicting_mesh_hosts(mesh, &mut findings);
    routes::unreachable_rules(mesh, &mut findings);
    rules::destination_rules(mesh, &mut findings);
    findings
}

/// The ports of the service `host` (a ServiceEntry, else a Kubernetes Service of the files).
fn service_ports(mesh: &Mesh, host: &str) -> Option<Vec<u16>> {
    if let Some(se) = service_for(mesh, host) {
        return Some(se.ports.iter().map(|p| p.number).collect());
    }
    mesh.kubernetes_services
        .iter()
        .find(|(known, _)| known == host)
        .map(|(_, ports)| ports.clone())
}

/// The ServiceEntry defining `host` (exact host first, then the most specific wildcard).
fn service_for<'m>(mesh: &'m Mesh, host: &str) -> Option<&'m ServiceEntry> {
    let exact = mesh
        .service_entries()
        .iter()
        .find(|se| se.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)));
    exact.or_else(|| {
        mesh.service_entries()
            .iter()
            .filter_map(|se| {
                se.hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .filter(|h| host_covers(h, host))
                    .map(|h| h.len())
                    .max()
                    .map(|len| (len, se))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, se)| se)
    })
}

/// Every DestinationRule document loaded, including those a later definition replaced.
fn all_rules(mesh: &Mesh) -> impl Iterator<Item = &DestinationRule> {
    mesh.destination_rules()
        .iter()
        .chain(&mesh.replaced_destination_rules)
}

fn subset_defined(mesh: &Mesh, host: &str, subset: &str) -> bool {
    all_rules(mesh).any(|dr| {
        let rule_host = expand_host(&dr.host, &dr.meta.namespace);
        host_covers(&rule_host, host) && dr.subsets.iter().any(|s| s.name == subset)
    })
}

/// A destination reference as written in a VirtualService.
struct Reference<'a> {
    host: &'a str,
    subset: Option<&'a str>,
    port: Option<u32>,
    at: FieldPath,
}

fn check(mesh: &Mesh, vs: &VirtualService, reference: Reference<'_>, findings: &mut Vec<Finding>) {
    let Reference {
        host,
        subset,
        port,
        at,
    } = reference;
    let fqdn = expand_host(host, &vs.meta.namespace);
    let service = service_ports(mesh, &fqdn);
    match &service {
        None => findings.push(vs.meta.finding(
            &at.key("host"),
            Severity::Warning,
            Some(REFERENCED_RESOURCE_NOT_FOUND),
            format!(
                "Referenced host not found: {fqdn:?} (no ServiceEntry or Kubernetes Service in the files defines it)"
            ),
        )),
        Some(ports) => match port {
            Some(port) if !ports.is_empty() && !ports.iter().any(|p| u32::from(*p) == port) =>
            {
                findings.push(vs.meta.finding(
                    &at.key("port"),
                    Severity::Error,
                    Some(REFERENCED_RESOURCE_NOT_FOUND),
                    format!("Referenced host:port not found: \"{fqdn}:{port}\""),
                ));
            }
            None if ports.len() > 1 => findings.push(vs.meta.finding(
                &at,
                Severity::Error,
                Some(PORT_SELECTOR_REQUIRED),
                format!(
                    "This VirtualService routes to a service {fqdn:?} that exposes multiple ports; specifying a port in the destination is required to disambiguate"
                ),
            )),
            _ => {}
        },
    }
    // The subset is checked when weft knows the host or some DestinationRule covers it (for an
    // unknown host without rules the rules may live in files not given).
    let Some(subset) = subset else { return };
    if (service.is_some() || rule_exists(mesh, &fqdn)) && !subset_defined(mesh, &fqdn, subset) {
        findings.push(vs.meta.finding(
            &at.key("subset"),
            Severity::Error,
            Some(REFERENCED_RESOURCE_NOT_FOUND),
            format!("Referenced host+subset in destinationrule not found: \"{fqdn}+{subset}\""),
        ));
    }
}

fn rule_exists(mesh: &Mesh, host: &str) -> bool {
    all_rules(mesh).any(|dr| host_covers(&expand_host(&dr.host, &dr.meta.namespace), host))
}

fn destinations(mesh: &Mesh, vs: &VirtualService, findings: &mut Vec<Finding>) {
    let spec = FieldPath::root().key("spec");

    for (i, rule) in vs.http.iter().enumerate() {
        let at = spec.key("http").index(i);
        match &rule.action {
            RouteAction::Route(destinations) => {
                for (j, weighted) in destinations.iter().enumerate() {
                    let d = &weighted.destination;
                    let reference = Reference {
                        host: &d.host,
                        subset: d.subset.as_deref(),
                        port: d.port.map(u32::from),
                        at: at.key("route").index(j).key("destination"),
                    };
                    check(mesh, vs, reference, findings);
                }
            }
            RouteAction::Delegate { name, namespace } => {
                let namespace = namespace.as_deref().unwrap_or(&vs.meta.namespace);
                let found = mesh.virtual_services().iter().any(|other| {
                    other.is_delegate()
                        && other.meta.name == *name
                        && other.meta.namespace == namespace
                });
                if !found {
                    findings.push(vs.meta.finding(
                        &at.key("delegate"),
                        Severity::Warning,
                        Some(REFERENCED_RESOURCE_NOT_FOUND),
                        format!(
                            "Referenced delegate VirtualService not found: \"{namespace}/{name}\""
                        ),
                    ));
                }
            }
            RouteAction::Redirect(_) | RouteAction::DirectResponse(_) => {}
        }
        for mirror in &rule.mirrors {
            let d = &mirror.destination;
            let reference = Reference {
                host: &d.host,
                subset: d.subset.as_deref(),
                port: d.port.map(u32::from),
                at: mirror.path.clone(),
            };
            check(mesh, vs, reference, findings);
        }
    }
    for (list, routes) in [
        (
            "tcp",
            vs.tcp
                .iter()
                .map(|r| r.route.as_slice())
                .collect::<Vec<_>>(),
        ),
        (
            "tls",
            vs.tls
                .iter()
                .map(|r| r.route.as_slice())
                .collect::<Vec<_>>(),
        ),
    ] {
        for (i, route) in routes.into_iter().enumerate() {
            for (j, weighted) in route.iter().enumerate() {
                if let Some(d) = &weighted.destination {
                    let reference = Reference {
                        host: &d.host,
                        subset: d.subset.as_deref(),
                        port: d.port.map(|p| p.number),
                        at: spec
                            .key(list)
                            .index(i)
                            .key("route")
                            .index(j)
                            .key("destination"),
                    };
                    check(mesh, vs, reference, findings);
                }
            }
        }
    }
}
