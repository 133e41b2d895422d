//! TLS and TCP rules of a VirtualService (`istio: validation.go validateTLSRoute`,
//! `validateTCPRoute`); validated, not yet routed by weft.

use crate::model;
use crate::path::FieldPath;

use super::names;
use super::virtual_service::destination;
use super::{Invalid, Problems};

fn route_destinations(
    route: &[model::RouteDestination],
    path: &FieldPath,
    problems: &mut Problems,
) {
    let mut total: i64 = 0;
    for (i, weighted) in route.iter().enumerate() {
        let at = path.index(i);
        let weight = weighted.weight.unwrap_or(0);
        if weight < 0 {
            problems.error(&at.key("weight"), Invalid::NegativeWeight(weight));
        }
        total += i64::from(weight.max(0));
        match &weighted.destination {
            Some(target) => {
                destination(target, &at.key("destination"), problems);
            }
            None => problems.rule(&at, "destination is required"),
        }
    }
    if route.len() > 1 && total == 0 {
        problems.error(path, Invalid::ZeroTotalWeight);
    }
}

fn l4_selectors(
    subnets: &[String],
    port: Option<u32>,
    labels: &std::collections::BTreeMap<String, String>,
    gateways: &[String],
    path: &FieldPath,
    problems: &mut Problems,
) {
    for (i, subnet) in subnets.iter().enumerate() {
        if let Err(reason) = names::validate_ip_subnet(subnet) {
            problems.rule(&path.key("destinationSubnets").index(i), reason);
        }
    }
    if let Some(port) = port {
        problems.port(&path.key("port"), port);
    }
    problems.labels(&path.key("sourceLabels"), labels);
    for (i, gateway) in gateways.iter().enumerate() {
        if gateway != "mesh"
            && let Err(reason) = names::validate_gateway_name(gateway)
        {
            problems.rule(&path.key("gateways").index(i), reason);
        }
    }
}

pub(super) fn tls_route(
    tls: &model::TlsRoute,
    hosts: &[String],
    path: &FieldPath,
    problems: &mut Problems,
) {
    if tls.matches.is_empty() {
        problems.rule(path, "TLS route must have at least one match condition");
    }
    for (i, m) in tls.matches.iter().enumerate() {
        let at = path.key("match").index(i);
        if m.sni_hosts.is_empty() {
            problems.rule(&at, "TLS match must have at least one SNI host");
        }
        for (j, sni) in m.sni_hosts.iter().enumerate() {
            let sni_path = at.key("sniHosts").index(j);
            if let Err(reason) = names::validate_wildcard_domain(sni) {
                if names::is_ip(sni) {
                    problems.warn(
                        &sni_path,
                        Invalid::Rule(format!(
                            "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
                        )),
                    );
                } else {
                    problems.error(
                        &sni_path,
                        Invalid::Host {
                            host: sni.clone(),
                            reason,
                        },
                    );
                }
                continue;
            }
            let sni_lower = sni.to_ascii_lowercase();
            if !hosts
                .iter()
                .any(|host| crate::mesh::host_covers(&host.to_ascii_lowercase(), &sni_lower))
            {
                problems.rule(
                    &sni_path,
                    format!(
                        "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
                        hosts.join(", ")
                    ),
                );
            }
        }
        l4_selectors(
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
            &at,
            problems,
        );
    }
    if tls.route.is_empty() {
        problems.rule(path, "TLS route is required");
    }
    route_destinations(&tls.route, &path.key("route"), problems);
}

pub(super) fn tcp_route(tcp: &model::TcpRoute, path: &FieldPath, problems: &mut Problems) {
    for (i, m) in tcp.matches.iter().enumerate() {
        l4_selectors(
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
            &path.key("match").index(i),
            problems,
        );
    }
    if tcp.route.is_empty() {
        problems.rule(path, "TCP route is required");
    }
    route_destinations(&tcp.route, &path.key("route"), problems);
}
