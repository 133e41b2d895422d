//! ServiceEntry and WorkloadEntry rules (`istio: validation.go ValidateServiceEntry`,
//! `validateWorkloadEntry`).

use std::collections::{BTreeMap, BTreeSet};

use crate::mesh::{ExportTo, Meta, ServiceEntry, ServicePort, WorkloadEntry, WorkloadSpec};
use crate::model::{self, Resolution};
use crate::path::FieldPath;

use super::names;
use super::{Invalid, Problems};

const UNIX_PREFIX: &str = "unix://";

/// Validates a ServiceEntry spec and builds the checked value.
pub(crate) fn service_entry(
    meta: Meta,
    spec: &model::ServiceEntrySpec,
    problems: &mut Problems,
) -> ServiceEntry {
    let path = FieldPath::root().key("spec");
    let resolution = spec.resolution.unwrap_or_default();
    if let Some(selector) = &spec.workload_selector {
        let at = path.key("workloadSelector").key("labels");
        for (key, value) in &selector.labels {
            if key.is_empty() {
                problems.rule(
                    &at,
                    format!("empty key is not supported in selector: \"={value}\""),
                );
            }
            if key.contains('*') || value.contains('*') {
                problems.rule(
                    &at.key(key.as_str()),
                    format!("wildcard is not supported in selector: \"{key}={value}\""),
                );
            }
        }
        if selector.labels.is_empty() {
            problems.warn(
                &path.key("workloadSelector"),
                Invalid::Rule(
                    "service entry: workload selector specified without labels, will be applied to all services in namespace".into(),
                ),
            );
        }
        if !spec.endpoints.is_empty() {
            problems.rule(
                &path.key("workloadSelector"),
                "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
            );
        }
    }
    if spec.hosts.is_empty() {
        problems.error(&path.key("hosts"), Invalid::Required("hosts"));
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        let at = path.key("hosts").index(i);
        if host == "*" {
            problems.error(
                &at,
                Invalid::Host {
                    host: host.clone(),
                    reason: "hostname cannot be wildcard".into(),
                },
            );
            continue;
        }
        if let Err(reason) = names::validate_wildcard_domain(host) {
            problems.error(
                &at,
                Invalid::Host {
                    host: host.clone(),
                    reason,
                },
            );
        } else if host.contains('*') && !host.starts_with("*.") {
            problems.warn(
                &at,
                Invalid::Rule(format!("partial wildcard {host:?} not allowed")),
            );
        }
    }
    let mut cidr = false;
    for (i, address) in spec.addresses.iter().enumerate() {
        cidr |= address.contains('/');
        if let Err(reason) = names::validate_ip_subnet(address) {
            problems.error(
                &path.key("addresses").index(i),
                Invalid::Address {
                    address: address.clone(),
                    reason,
                },
            );
        }
    }
    if cidr && !matches!(resolution, Resolution::None | Resolution::Static) {
        problems.rule(
            &path.key("addresses"),
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }

    let mut ports = Vec::new();
    let mut port_names = BTreeSet::new();
    let mut port_numbers = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let at = path.key("ports").index(i);
        if !port_names.insert(port.name.clone()) {
            problems.error(
                &at.key("name"),
                Invalid::DuplicatePortName(port.name.clone()),
            );
        }
        if !port_numbers.insert(port.number) {
            problems.error(&at.key("number"), Invalid::DuplicatePortNumber(port.number));
        }
        let target_port = port
            .target_port
            .filter(|target| *target != 0)
            .and_then(|target| problems.port(&at.key("targetPort"), target));
        if target_port.is_some() && resolution == Resolution::None {
            problems.warn(
                &at.key("targetPort"),
                Invalid::Rule("targetPort has no effect when resolution mode is NONE".into()),
            );
        }
        if !names::is_dns1123_label(&port.name) {
            problems.error(
                &at.key("name"),
                Invalid::Label {
                    what: "port name",
                    value: port.name.clone(),
                },
            );
        }
        if let Some(protocol) = &port.protocol
            && !protocol.is_empty()
            && !names::is_known_protocol(protocol)
        {
            problems.rule(
                &at.key("protocol"),
                format!("unsupported protocol: {protocol}"),
            );
        }
        if let Some(number) = problems.port(&at.key("number"), port.number) {
            ports.push(ServicePort {
                number,
                protocol: port.protocol.clone().filter(|p| !p.is_empty()),
                name: port.name.clone(),
                target_port,
            });
        }
    }

    let mut endpoints = Vec::new();
    match resolution {
        Resolution::None => {
            if !spec.endpoints.is_empty() {
                problems.rule(
                    &path.key("endpoints"),
                    "no endpoints should be provided for resolution type none",
                );
            }
            if spec.workload_selector.is_some() {
                problems.warn(
                    &path.key("workloadSelector"),
                    Invalid::Rule(
                        "workloadSelector should not be set when resolution mode is NONE".into(),
                    ),
                );
            }
        }
        Resolution::Static => {
            for (i, endpoint) in spec.endpoints.iter().enumerate() {
                endpoints.push(workload(
                    endpoint,
                    Some(&port_names),
                    false,
                    &path.key("endpoints").index(i),
                    problems,
                ));
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if spec.endpoints.is_empty() {
                for (i, host) in spec.hosts.iter().enumerate() {
                    if names::validate_fqdn(host).is_err() {
                        problems.rule(
                            &path.key("hosts").index(i),
                            format!(
                                "hosts must be FQDN if no endpoints are provided for resolution mode {resolution}"
                            ),
                        );
                    }
                }
            }
            if resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
                problems.rule(
                    &path.key("endpoints"),
                    "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
                );
            }
            for (i, endpoint) in spec.endpoints.iter().enumerate() {
                endpoints.push(workload(
                    endpoint,
                    Some(&port_names),
                    true,
                    &path.key("endpoints").index(i),
                    problems,
                ));
            }
            if spec.workload_selector.is_some() {
                problems.warn(
                    &path.key("workloadSelector"),
                    Invalid::Rule(format!(
                        "workloadSelector should not be set when resolution mode is {resolution}"
                    )),
                );
            }
        }
        Resolution::DynamicDns => {
            for (i, endpoint) in spec.endpoints.iter().enumerate() {
                endpoints.push(workload(
                    endpoint,
                    Some(&port_names),
                    true,
                    &path.key("endpoints").index(i),
                    problems,
                ));
            }
        }
    }
    if resolution != Resolution::None && spec.hosts.len() > 1 {
        let opaque = spec.ports.iter().any(|port| {
            let protocol = port.protocol.as_deref().unwrap_or("");
            !names::is_http_protocol(protocol) && !names::is_tls_protocol(protocol)
        });
        if opaque {
            problems.rule(
                &path.key("hosts"),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
    problems.export_to(
        &path.key("exportTo"),
        &meta.namespace,
        &spec.export_to,
        true,
    );

    let export_to = ExportTo::from_list(&spec.export_to, &meta.namespace);
    ServiceEntry {
        meta,
        hosts: spec.hosts.clone(),
        addresses: spec.addresses.clone(),
        ports,
        location: spec.location.unwrap_or_default(),
        resolution,
        endpoints,
        workload_selector: spec.workload_selector.as_ref().map(|s| s.labels.clone()),
        export_to,
        subject_alt_names: spec.subject_alt_names.clone(),
    }
}

/// Validates a WorkloadEntry spec and builds the checked value.
pub(crate) fn workload_entry(
    meta: Meta,
    spec: &model::WorkloadEntrySpec,
    problems: &mut Problems,
) -> WorkloadEntry {
    let spec = workload(spec, None, true, &FieldPath::root().key("spec"), problems);
    WorkloadEntry { meta, spec }
}

/// `validateWorkloadEntry`: address (IP, FQDN when allowed, `unix://`), ports, labels.
fn workload(
    spec: &model::WorkloadEntrySpec,
    service_ports: Option<&BTreeSet<String>>,
    allow_fqdn: bool,
    path: &FieldPath,
    problems: &mut Problems,
) -> WorkloadSpec {
    let address = spec.address.as_str();
    if address.is_empty() {
        match &spec.network {
            Some(network) if !network.is_empty() => problems.warn(
                &path.key("network"),
                Invalid::Rule(format!("address is unset with network {network:?}")),
            ),
            _ => problems.error(&path.key("address"), Invalid::Required("address")),
        }
    }
    let unix = address.strip_prefix(UNIX_PREFIX);
    if let Some(socket) = unix {
        let valid = socket.starts_with('@') || (socket.starts_with('/') && !socket.ends_with('/'));
        if !valid {
            problems.error(
                &path.key("address"),
                Invalid::Address {
                    address: address.to_string(),
                    reason:
                        "a unix socket must be an absolute file path or an abstract socket (@name)"
                            .into(),
                },
            );
        }
        if !spec.ports.is_empty() {
            problems.rule(
                &path.key("ports"),
                format!("unix endpoint {address} must not include ports"),
            );
        }
        if service_ports.is_some_and(|ports| ports.len() != 1) {
            problems.rule(path, "exactly 1 service port required for unix endpoints");
        }
    } else if !address.is_empty() && !names::is_ip(address) {
        if !allow_fqdn {
            problems.error(
                &path.key("address"),
                Invalid::Address {
                    address: address.to_string(),
                    reason: "not a valid IP address".into(),
                },
            );
        } else if names::validate_fqdn(address).is_err() {
            problems.error(
                &path.key("address"),
                Invalid::Address {
                    address: address.to_string(),
                    reason: "not a valid FQDN or IP address".into(),
                },
            );
        }
    }
    let mut ports = BTreeMap::new();
    for (name, port) in &spec.ports {
        let at = path.key("ports").key(name.as_str());
        if service_ports.is_some_and(|known| !known.contains(name)) {
            problems.rule(
                &at,
                format!("endpoint port {port} is not defined by the service entry"),
            );
        }
        if !names::is_dns1123_label(name) {
            problems.error(
                &at,
                Invalid::Label {
                    what: "port name",
                    value: name.clone(),
                },
            );
        }
        if let Some(port) = problems.port(&at, *port) {
            ports.insert(name.clone(), port);
        }
    }
    problems.labels(&path.key("labels"), &spec.labels);
    WorkloadSpec {
        address: spec.address.clone(),
        ports,
        labels: spec.labels.clone(),
        network: spec.network.clone().filter(|n| !n.is_empty()),
        locality: spec.locality.clone().filter(|l| !l.is_empty()),
        weight: spec.weight,
        service_account: spec.service_account.clone().filter(|s| !s.is_empty()),
    }
}
