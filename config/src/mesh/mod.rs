//! The validated configuration: [`Mesh`] holds every accepted VirtualService,
//! DestinationRule, ServiceEntry and WorkloadEntry as checked values (regexes compiled, ports
//! in range, actions resolved), each with the file position it came from.

mod resources;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use resources::*;

use crate::finding::{CheckReport, Finding};
use crate::load::{self, LoadError};
use crate::path::FieldPath;

/// The root namespace: policies there are mesh-wide (`meshConfig.rootNamespace` default).
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The cluster DNS domain used to expand short host names.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// The configuration kinds weft handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `VirtualService`.
    VirtualService,
    /// `DestinationRule`.
    DestinationRule,
    /// `ServiceEntry`.
    ServiceEntry,
    /// `WorkloadEntry`.
    WorkloadEntry,
    /// `PeerAuthentication` (`security.istio.io`).
    PeerAuthentication,
    /// `AuthorizationPolicy` (`security.istio.io`).
    AuthorizationPolicy,
    /// `RequestAuthentication` (`security.istio.io`).
    RequestAuthentication,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::RequestAuthentication => "RequestAuthentication",
        }
    }

    /// Parses a Kubernetes kind name.
    pub fn parse(kind: &str) -> Option<Kind> {
        match kind {
            "VirtualService" => Some(Kind::VirtualService),
            "DestinationRule" => Some(Kind::DestinationRule),
            "ServiceEntry" => Some(Kind::ServiceEntry),
            "WorkloadEntry" => Some(Kind::WorkloadEntry),
            "PeerAuthentication" => Some(Kind::PeerAuthentication),
            "AuthorizationPolicy" => Some(Kind::AuthorizationPolicy),
            "RequestAuthentication" => Some(Kind::RequestAuthentication),
            _ => None,
        }
    }
}

impl Kind {
    /// The API group of the kind.
    pub fn group(self) -> &'static str {
        match self {
            Kind::PeerAuthentication | Kind::AuthorizationPolicy | Kind::RequestAuthentication => {
                crate::model::SECURITY_GROUP
            }
            _ => crate::model::NETWORKING_GROUP,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an object came from: file, position of the document, and the document text (kept so
/// that later checks can point at a field).
#[derive(Debug, Clone)]
pub struct Source {
    pub(crate) path: Arc<Path>,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) document: Arc<str>,
    pub(crate) line_offset: usize,
}

impl Source {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 1-based line of the object's first key.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column of the object's first key.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The (line, column) of a field of this object (or of its nearest existing ancestor).
    pub fn locate(&self, field: &FieldPath) -> (usize, usize) {
        crate::locate::locate(&self.document, field)
            .map(|(line, column)| (line + self.line_offset, column))
            .unwrap_or((self.line, self.column))
    }
}

/// Object metadata of a checked resource.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The kind.
    pub kind: Kind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when absent).
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `metadata.creationTimestamp`.
    pub creation_timestamp: Option<String>,
    /// File and position.
    pub source: Source,
}

impl Meta {
    /// Istio's order between conflicting objects: oldest `creationTimestamp` first (absent
    /// counts as oldest), then name, then namespace (`configCompareByCreationTime`).
    pub fn precedence_key(&self) -> (&str, &str, &str) {
        (
            self.creation_timestamp.as_deref().unwrap_or(""),
            &self.name,
            &self.namespace,
        )
    }

    /// A finding about this object at `field`.
    pub fn finding(
        &self,
        field: &FieldPath,
        severity: crate::Severity,
        code: Option<&'static str>,
        message: String,
    ) -> Finding {
        let (line, column) = self.source.locate(field);
        Finding {
            path: PathBuf::from(self.source.path()),
            line,
            column,
            severity,
            code,
            kind: Some(self.kind.to_string()),
            namespace: Some(self.namespace.clone()),
            name: Some(self.name.clone()),
            message,
        }
    }
}

/// `exportTo` resolved against the object's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTo {
    /// Empty list or `*`: every namespace.
    Everywhere,
    /// Listed namespaces (`.` replaced by the object's own).
    Namespaces(BTreeSet<String>),
    /// `~`: no namespace.
    Nowhere,
}

impl ExportTo {
    /// Resolves a raw `exportTo` list of an object in `own_namespace`.
    pub fn from_list(list: &[String], own_namespace: &str) -> ExportTo {
        if list.is_empty() || list.iter().any(|entry| entry == "*") {
            return ExportTo::Everywhere;
        }
        let namespaces: BTreeSet<String> = list
            .iter()
            .filter(|entry| entry.as_str() != "~")
            .map(|entry| {
                if entry == "." {
                    own_namespace.to_string()
                } else {
                    entry.clone()
                }
            })
            .collect();
        if namespaces.is_empty() {
            ExportTo::Nowhere
        } else {
            ExportTo::Namespaces(namespaces)
        }
    }

    /// Whether an object with this visibility is seen from `namespace`.
    pub fn is_visible_to(&self, namespace: &str) -> bool {
        match self {
            ExportTo::Everywhere => true,
            ExportTo::Namespaces(namespaces) => namespaces.contains(namespace),
            ExportTo::Nowhere => false,
        }
    }
}

/// The validated set of resources, in Istio precedence order per kind (see
/// [`Meta::precedence_key`]). Build it with [`crate::load`] or [`Mesh::from_str_sources`].
#[derive(Debug, Clone, Default)]
pub struct Mesh {
    pub(crate) virtual_services: Vec<VirtualService>,
    pub(crate) destination_rules: Vec<DestinationRule>,
    pub(crate) service_entries: Vec<ServiceEntry>,
    pub(crate) workload_entries: Vec<WorkloadEntry>,
    pub(crate) version: String,
    /// Hosts and ports of Kubernetes Services seen in the files: known to the analyzers,
    /// not routed to.
    pub(crate) kubernetes_services: Vec<(String, Vec<u16>)>,
    /// DestinationRules replaced by a later definition of the same name (analyzers only).
    pub(crate) replaced_destination_rules: Vec<DestinationRule>,
    // security.istio.io (issue 4), in precedence order.
    pub(crate) peer_authentications: Vec<crate::security::PeerAuthentication>,
    pub(crate) authorization_policies: Vec<crate::security::AuthorizationPolicy>,
    pub(crate) request_authentications: Vec<crate::security::RequestAuthentication>,
    /// Workloads seen in the files (Kubernetes Services' selectors, Pods, Nodes): known to
    /// the analyzers (IST0173), not routed to.
    pub(crate) kubernetes_workloads: KubernetesWorkloads,
}

/// Kubernetes objects the analyzers consult.
#[derive(Debug, Clone, Default)]
pub(crate) struct KubernetesWorkloads {
    /// (service host, namespace, selector).
    pub(crate) selectors: Vec<(String, String, std::collections::BTreeMap<String, String>)>,
    /// (namespace, labels, node name).
    pub(crate) pods: Vec<(
        String,
        std::collections::BTreeMap<String, String>,
        Option<String>,
    )>,
    /// Node name → labels.
    pub(crate) nodes:
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

impl Mesh {
    /// Loads YAML texts given as `(name, text)` pairs (the name stands for the file path in
    /// findings). Same contract as [`crate::load`].
    pub fn from_str_sources(sources: &[(&str, &str)]) -> Result<(Mesh, Vec<Finding>), LoadError> {
        let (mesh, findings) = load::load_str_sources(sources);
        load::into_result(mesh, findings)
    }

    /// Like [`crate::check`] for in-memory texts: every finding, analyzers included.
    pub fn check_str_sources(sources: &[(&str, &str)]) -> CheckReport {
        let (mesh, mut findings) = load::load_str_sources(sources);
        findings.extend(crate::analyze::analyze(&mesh));
        CheckReport::new(findings)
    }

    /// VirtualServices, oldest first.
    pub fn virtual_services(&self) -> &[VirtualService] {
        &self.virtual_services
    }

    /// DestinationRules, oldest first.
    pub fn destination_rules(&self) -> &[DestinationRule] {
        &self.destination_rules
    }

    /// ServiceEntries, oldest first.
    pub fn service_entries(&self) -> &[ServiceEntry] {
        &self.service_entries
    }

    /// WorkloadEntries, oldest first.
    pub fn workload_entries(&self) -> &[WorkloadEntry] {
        &self.workload_entries
    }

    /// PeerAuthentications, oldest first.
    pub fn peer_authentications(&self) -> &[crate::security::PeerAuthentication] {
        &self.peer_authentications
    }

    /// AuthorizationPolicies, oldest first.
    pub fn authorization_policies(&self) -> &[crate::security::AuthorizationPolicy] {
        &self.authorization_policies
    }

    /// RequestAuthentications, oldest first.
    pub fn request_authentications(&self) -> &[crate::security::RequestAuthentication] {
        &self.request_authentications
    }

    /// A stable hash of the accepted documents (hex); equal inputs give equal versions.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub(crate) fn sort(&mut self) {
        self.virtual_services
            .sort_by(|a, b| a.meta.precedence_key().cmp(&b.meta.precedence_key()));
        self.destination_rules
            .sort_by(|a, b| a.meta.precedence_key().cmp(&b.meta.precedence_key()));
        self.service_entries
            .sort_by(|a, b| a.meta.precedence_key().cmp(&b.meta.precedence_key()));
        self.workload_entries
            .sort_by(|a, b| a.meta.precedence_key().cmp(&b.meta.precedence_key()));
        self.peer_authentications
            .sort_by(|a, b| a.meta.precedence_key().cmp(&b.meta.precedence_key()));
        self.authorization_policies
            .sort_by(|a, b| a.meta.precedence_key().cmp(&b.meta.precedence_key()));
        self.request_authentications
            .sort_by(|a, b| a.meta.precedence_key().cmp(&b.meta.precedence_key()));
    }
}

/// Expands a host written in a config object of `namespace`: a name without dots becomes
/// `name.namespace.svc.cluster.local`; IPs, `*` and names with dots are kept (Istio's
/// `ResolveShortnameToFQDN`). The result is lowercase.
pub fn expand_host(host: &str, namespace: &str) -> String {
    let host = host.trim_end_matches('.');
    if host.is_empty() || host == "*" || host.contains('.') || host.contains(':') {
        return host.to_ascii_lowercase();
    }
    format!("{host}.{namespace}.svc.{DEFAULT_DOMAIN}").to_ascii_lowercase()
}

/// Whether `pattern` (possibly `*.suffix` or `*`) covers the concrete or wildcard host `host`.
pub fn host_covers(pattern: &str, host: &str) -> bool {
    if pattern == host || pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            let host_rest = host.strip_prefix('*').unwrap_or(host);
            host_rest.len() > suffix.len() && host_rest.ends_with(suffix)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_short_hosts_relative_to_the_object_namespace() {
        let cases = [
            ("reviews", "default", "reviews.default.svc.cluster.local"),
            ("reviews", "prod", "reviews.prod.svc.cluster.local"),
            ("Reviews", "prod", "reviews.prod.svc.cluster.local"),
            ("reviews.prod", "default", "reviews.prod"),
            (
                "reviews.prod.svc.cluster.local",
                "default",
                "reviews.prod.svc.cluster.local",
            ),
            ("*.example.com", "default", "*.example.com"),
            ("*", "default", "*"),
            ("10.0.0.1", "default", "10.0.0.1"),
            ("example.com.", "default", "example.com"),
        ];
        for (host, namespace, expected) in cases {
            assert_eq!(
                expand_host(host, namespace),
                expected,
                "{host} in {namespace}"
            );
        }
    }

    #[test]
    fn wildcard_hosts_cover_subdomains_only() {
        assert!(host_covers("*.example.com", "a.example.com"));
        assert!(host_covers("*.example.com", "a.b.example.com"));
        assert!(!host_covers("*.example.com", "example.com"));
        assert!(host_covers("*.example.com", "*.a.example.com"));
        assert!(host_covers("*", "anything.local"));
        assert!(!host_covers("a.example.com", "b.example.com"));
    }

    #[test]
    fn export_to_visibility() {
        let own = "prod";
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "other", true),
            (&["*"], "other", true),
            (&["."], "prod", true),
            (&["."], "other", false),
            (&["other"], "other", true),
            (&["other"], "prod", false),
            (&[".", "other"], "prod", true),
            (&["~"], "prod", false),
        ];
        for (entries, from, visible) in cases {
            let export = ExportTo::from_list(&list(entries), own);
            assert_eq!(
                export.is_visible_to(from),
                *visible,
                "{entries:?} from {from}"
            );
        }
    }
}
