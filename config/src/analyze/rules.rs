//! DestinationRule analysis (istio-model.md §9): a subset whose labels select no workload
//! (IST0173: traffic to it gets 503 `UH`) and a rule whose host matches no service (IST0174).
//!
//! weft sees only the files it is given. For a ServiceEntry, its endpoints and WorkloadEntries
//! are the workloads; for a Kubernetes Service, the Pods in the files (topology labels such as
//! `topology.kubernetes.io/zone` are read from the Pod's Node, and an empty value never
//! matches). IST0173 is a warning here (Istio: error): endpoints may live in files not given,
//! and Istio's own valid corpus has rules whose subsets select nothing yet.

use std::collections::BTreeMap;

use crate::finding::{Finding, Severity};
use crate::mesh::{DestinationRule, Mesh, expand_host, host_covers};
use crate::path::FieldPath;
use crate::snapshot::cluster_labels_match;

const SUBSET_SELECTS_NOTHING: &str = "IST0173";
const UNKNOWN_RULE_HOST: &str = "IST0174";
const TOPOLOGY_PREFIX: &str = "topology.kubernetes.io/";

/// The workloads of the service a rule's host names.
enum Workloads<'m> {
    /// ServiceEntry endpoints (their labels).
    Entries(Vec<&'m BTreeMap<String, String>>),
    /// A Kubernetes Service: its selector and namespace.
    Kubernetes(&'m BTreeMap<String, String>, &'m str),
    /// A known service without a selector (nothing to check).
    Unknown,
}

fn service_workloads<'m>(mesh: &'m Mesh, host: &str) -> Option<Workloads<'m>> {
    let entry = mesh.service_entries().iter().find(|se| {
        se.hosts
            .iter()
            .any(|h| host_covers(&h.to_ascii_lowercase(), host))
    });
    if let Some(se) = entry {
        let mut labels: Vec<&BTreeMap<String, String>> =
            se.endpoints.iter().map(|e| &e.labels).collect();
        if let Some(selector) = &se.workload_selector {
            labels.extend(
                mesh.workload_entries()
                    .iter()
                    .filter(|we| we.meta.namespace == se.meta.namespace)
                    .filter(|we| cluster_labels_match(selector, &we.spec.labels))
                    .map(|we| &we.spec.labels),
            );
        }
        if se.endpoints.is_empty() && se.workload_selector.is_none() {
            return Some(Workloads::Unknown);
        }
        return Some(Workloads::Entries(labels));
    }
    if let Some((_, namespace, selector)) = mesh
        .kubernetes_workloads
        .selectors
        .iter()
        .find(|(service, _, _)| service == host)
    {
        return Some(Workloads::Kubernetes(selector, namespace));
    }
    mesh.kubernetes_services
        .iter()
        .any(|(service, _)| service == host)
        .then_some(Workloads::Unknown)
}

fn pod_matches(
    mesh: &Mesh,
    subset: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    node: Option<&String>,
) -> bool {
    subset.iter().all(|(key, value)| {
        if key.starts_with(TOPOLOGY_PREFIX) {
            !value.is_empty()
                && node
                    .and_then(|n| mesh.kubernetes_workloads.nodes.get(n))
                    .and_then(|labels| labels.get(key))
                    == Some(value)
        } else {
            labels.get(key) == Some(value)
        }
    })
}

fn any_service_covered(mesh: &Mesh, host: &str) -> bool {
    mesh.service_entries().iter().any(|se| {
        se.hosts.iter().any(|h| {
            let h = h.to_ascii_lowercase();
            host_covers(&h, host) || host_covers(host, &h)
        })
    }) || mesh
        .kubernetes_services
        .iter()
        .any(|(service, _)| host_covers(host, service))
}

pub(super) fn destination_rules(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for dr in mesh.destination_rules() {
        let host = expand_host(&dr.host, &dr.meta.namespace);
        if !any_service_covered(mesh, &host) {
            findings.push(dr.meta.finding(
                &FieldPath::root().key("spec").key("host"),
                Severity::Warning,
                Some(UNKNOWN_RULE_HOST),
                format!("DestinationRule host {host:?} matches no service in the files"),
            ));
            continue;
        }
        subsets(mesh, dr, &host, findings);
    }
}

fn subsets(mesh: &Mesh, dr: &DestinationRule, host: &str, findings: &mut Vec<Finding>) {
    let Some(workloads) = service_workloads(mesh, host) else {
        return;
    };
    for (i, subset) in dr.subsets.iter().enumerate() {
        if subset.labels.is_empty() {
            continue;
        }
        let selects = match &workloads {
            Workloads::Unknown => continue,
            Workloads::Entries(labels) => labels
                .iter()
                .any(|l| cluster_labels_match(&subset.labels, l)),
            Workloads::Kubernetes(selector, namespace) => mesh
                .kubernetes_workloads
                .pods
                .iter()
                .any(|(ns, labels, node)| {
                    ns == namespace
                        && cluster_labels_match(selector, labels)
                        && pod_matches(mesh, &subset.labels, labels, node.as_ref())
                }),
        };
        let severity = Severity::Warning;
        if !selects {
            findings.push(dr.meta.finding(
                &FieldPath::root().key("spec").key("subsets").index(i),
                severity,
                Some(SUBSET_SELECTS_NOTHING),
                format!(
                    "The subset {:?} of DestinationRule host {host:?} selects no workload; traffic to it gets 503 UH",
                    subset.name
                ),
            ));
        }
    }
}
