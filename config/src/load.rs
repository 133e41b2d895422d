//! The loader: files and folders → documents → typed objects → validated [`Mesh`], with a
//! positioned [`Finding`] for every problem. A bad document never stops the others.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::finding::{Finding, Severity, sort_findings};
use crate::hash::Fnv;
use crate::mesh::{Kind, Mesh, Meta, Source};
use crate::model::{self, NETWORKING_GROUP, NETWORKING_VERSIONS, Object, SECURITY_VERSIONS};
use crate::path::FieldPath;
use crate::validate::{self, Invalid, Problem, Problems};

mod yaml;

use yaml::quote_flow_scalar;
pub(crate) use yaml::{Chunk, split_documents, yaml_message};

/// Loading failed: the configuration has errors. Carries every finding (errors, warnings and
/// notes); its `Display` lists the errors, one `PATH:LINE:COL: ...` line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// At least one finding is an error.
    #[error("{}", error_lines(.findings))]
    Invalid {
        /// All findings, sorted.
        findings: Vec<Finding>,
    },
}

impl LoadError {
    /// All findings (errors, warnings, notes), sorted.
    pub fn findings(&self) -> &[Finding] {
        match self {
            LoadError::Invalid { findings } => findings,
        }
    }
}

fn error_lines(findings: &[Finding]) -> String {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(Finding::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn into_result(
    mesh: Mesh,
    findings: Vec<Finding>,
) -> Result<(Mesh, Vec<Finding>), LoadError> {
    if findings.iter().any(|f| f.severity == Severity::Error) {
        Err(LoadError::Invalid { findings })
    } else {
        Ok((mesh, findings))
    }
}

pub(crate) fn load_paths(paths: &[PathBuf]) -> (Mesh, Vec<Finding>) {
    let mut loader = Loader::default();
    for path in paths {
        loader.load_path(path);
    }
    loader.finish()
}

pub(crate) fn load_str_sources(sources: &[(&str, &str)]) -> (Mesh, Vec<Finding>) {
    let mut loader = Loader::default();
    for (name, text) in sources {
        loader.load_source(Arc::from(Path::new(name)), text);
    }
    loader.finish()
}

/// The part of a document read before its kind is known.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<HeaderMeta>,
}

#[derive(Debug, Default, Deserialize)]
struct HeaderMeta {
    name: Option<String>,
    namespace: Option<String>,
}

/// Who a finding is about.
#[derive(Debug, Clone, Default)]
struct Subject {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Default)]
struct Loader {
    mesh: Mesh,
    findings: Vec<Finding>,
    hash: Fnv,
    seen: HashMap<(Kind, String, String), (PathBuf, usize)>,
}

impl Loader {
    fn finish(mut self) -> (Mesh, Vec<Finding>) {
        self.mesh.sort();
        self.mesh.version = self.hash.hex();
        sort_findings(&mut self.findings);
        (self.mesh, self.findings)
    }

    fn file_error(&mut self, path: &Path, message: String) {
        self.findings.push(Finding {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            severity: Severity::Error,
            code: None,
            kind: None,
            namespace: None,
            name: None,
            message,
        });
    }

    fn load_path(&mut self, path: &Path) {
        match fs::metadata(path) {
            Err(error) => self.file_error(path, format!("cannot read: {error}")),
            Ok(metadata) if metadata.is_dir() => {
                let mut files = Vec::new();
                let mut visited = BTreeSet::new();
                self.collect_yaml(path, &mut files, &mut visited);
                if files.is_empty() {
                    self.findings.push(Finding {
                        severity: Severity::Warning,
                        message: "no *.yaml or *.yml files in this folder".into(),
                        ..self.bare_finding(path)
                    });
                }
                for file in files {
                    self.load_file(&file);
                }
            }
            Ok(_) => self.load_file(path),
        }
    }

    fn bare_finding(&self, path: &Path) -> Finding {
        Finding {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            severity: Severity::Note,
            code: None,
            kind: None,
            namespace: None,
            name: None,
            message: String::new(),
        }
    }

    /// Every `*.yaml`/`*.yml` below `dir`, sorted by name at each level; hidden entries (such
    /// as the `..data` links of a Kubernetes ConfigMap volume) are skipped.
    fn collect_yaml(
        &mut self,
        dir: &Path,
        out: &mut Vec<PathBuf>,
        visited: &mut BTreeSet<PathBuf>,
    ) {
        if let Ok(canonical) = fs::canonicalize(dir)
            && !visited.insert(canonical)
        {
            return;
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => return self.file_error(dir, format!("cannot read folder: {error}")),
        };
        let mut entries: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .map(|entry| entry.path())
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                self.collect_yaml(&entry, out, visited);
            } else if entry
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                out.push(entry);
            }
        }
    }

    fn load_file(&mut self, path: &Path) {
        match fs::read(path) {
            Err(error) => self.file_error(path, format!("cannot read: {error}")),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => self.load_source(Arc::from(path), &text),
                Err(error) => self.file_error(path, format!("not UTF-8 text: {error}")),
            },
        }
    }

    pub(crate) fn load_source(&mut self, path: Arc<Path>, text: &str) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for chunk in split_documents(text) {
            self.load_document(&path, chunk);
        }
    }

    fn push(
        &mut self,
        path: &Path,
        at: (usize, usize),
        severity: Severity,
        code: Option<&'static str>,
        subject: &Subject,
        message: String,
    ) {
        self.findings.push(Finding {
            path: path.to_path_buf(),
            line: at.0,
            column: at.1,
            severity,
            code,
            kind: subject.kind.clone(),
            namespace: subject.namespace.clone(),
            name: subject.name.clone(),
            message,
        });
    }

    fn yaml_error(
        &mut self,
        path: &Path,
        chunk: Chunk<'_>,
        error: &serde_yaml::Error,
        subject: &Subject,
    ) {
        let at = error
            .location()
            .map(|location| (location.line() + chunk.line_offset, location.column()))
            .unwrap_or((chunk.line_offset + 1, 1));
        let code = subject.kind.as_ref().map(|_| validate::SCHEMA_ERROR);
        let message = yaml_message(error, chunk.line_offset);
        self.push(path, at, Severity::Error, code, subject, message);
    }

    /// Remembers the host and ports of a Kubernetes Service so that `weft check` knows it
    /// exists (weft does not route to it).
    fn kubernetes_service(&mut self, chunk: Chunk<'_>, subject: &Subject) {
        #[derive(Deserialize)]
        struct Service {
            spec: Option<ServiceSpec>,
        }
        #[derive(Deserialize)]
        struct ServiceSpec {
            #[serde(default, deserialize_with = "model::null_default")]
            ports: Vec<ServicePort>,
            #[serde(default, deserialize_with = "model::null_default")]
            selector: std::collections::BTreeMap<String, String>,
        }
        #[derive(Deserialize)]
        struct ServicePort {
            port: Option<u16>,
        }
        let (Some(name), Some(namespace)) = (&subject.name, &subject.namespace) else {
            return;
        };
        let Ok(service) = serde_yaml::from_str::<Service>(chunk.text) else {
            return;
        };
        let (ports, selector) = service
            .spec
            .map(|spec| {
                (
                    spec.ports.iter().filter_map(|p| p.port).collect(),
                    spec.selector,
                )
            })
            .unwrap_or_default();
        let host = crate::mesh::expand_host(name, namespace);
        if !selector.is_empty() {
            self.mesh.kubernetes_workloads.selectors.push((
                host.clone(),
                namespace.clone(),
                selector,
            ));
        }
        self.mesh.kubernetes_services.push((host, ports));
    }

    /// Remembers the labels (and node) of a Pod and the labels of a Node, for IST0173.
    fn kubernetes_workload(&mut self, chunk: Chunk<'_>, subject: &Subject, kind: &str) {
        #[derive(Deserialize)]
        struct Object {
            metadata: Option<Metadata>,
            spec: Option<PodSpec>,
        }
        #[derive(Deserialize)]
        struct Metadata {
            #[serde(default, deserialize_with = "model::null_default")]
            labels: std::collections::BTreeMap<String, String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PodSpec {
            node_name: Option<String>,
        }
        let Ok(object) = serde_yaml::from_str::<Object>(chunk.text) else {
            return;
        };
        let labels = object.metadata.map(|m| m.labels).unwrap_or_default();
        let workloads = &mut self.mesh.kubernetes_workloads;
        match (kind, &subject.name, &subject.namespace) {
            ("Node", Some(name), _) => {
                workloads.nodes.insert(name.clone(), labels);
            }
            ("Pod", _, Some(namespace)) => {
                let node = object.spec.and_then(|s| s.node_name);
                workloads.pods.push((namespace.clone(), labels, node));
            }
            _ => {}
        }
    }

    fn locate(chunk: Chunk<'_>, field: &FieldPath) -> (usize, usize) {
        crate::locate::locate(chunk.text, field)
            .map(|(line, column)| (line + chunk.line_offset, column))
            .unwrap_or((chunk.line_offset + 1, 1))
    }

    fn load_document(&mut self, path: &Arc<Path>, chunk: Chunk<'_>) {
        let mut text = Cow::Borrowed(chunk.text);
        let mut quoted = Vec::new();
        let header = loop {
            match serde_yaml::from_str::<Option<Header>>(&text) {
                Ok(header) => break header,
                Err(error) => match quote_flow_scalar(&text, &error) {
                    Some((fixed, at)) if quoted.len() < 64 => {
                        quoted.push(at);
                        text = Cow::Owned(fixed);
                    }
                    _ => return self.yaml_error(path, chunk, &error, &Subject::default()),
                },
            }
        };
        let chunk = Chunk {
            line_offset: chunk.line_offset,
            text: &text,
        };
        let Some(header) = header else { return };
        let api_version = header.api_version.unwrap_or_default();
        let kind_name = header.kind.unwrap_or_default();
        let metadata = header.metadata.unwrap_or_default();
        let namespace = metadata
            .namespace
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let start = Self::locate(chunk, &FieldPath::root());
        let subject = Subject {
            kind: (!kind_name.is_empty()).then(|| kind_name.clone()),
            namespace: Some(namespace.clone()),
            name: metadata.name.clone().filter(|n| !n.is_empty()),
        };
        for (line, column) in quoted {
            let message = "plain scalar with ':' before a flow indicator (e.g. an IPv6 address in [...]); read as Kubernetes does, quote it for portable YAML".to_string();
            let at = (line + chunk.line_offset, column);
            self.push(path, at, Severity::Warning, None, &subject, message);
        }
        if api_version.is_empty() || kind_name.is_empty() {
            let message = "not a Kubernetes object: apiVersion and kind are required".to_string();
            return self.push(path, start, Severity::Error, None, &subject, message);
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let kind = match Kind::parse(&kind_name) {
            Some(kind) if group == kind.group() => kind,
            _ => {
                if api_version == "v1" && kind_name == "Service" {
                    self.kubernetes_service(chunk, &subject);
                }
                if api_version == "v1" && matches!(kind_name.as_str(), "Pod" | "Node") {
                    self.kubernetes_workload(chunk, &subject, &kind_name);
                }
                let message =
                    format!("skipped: {kind_name} ({api_version}) is not handled by weft yet");
                return self.push(path, start, Severity::Note, None, &subject, message);
            }
        };
        let versions: &[&str] = if kind.group() == NETWORKING_GROUP {
            &NETWORKING_VERSIONS
        } else {
            &SECURITY_VERSIONS
        };
        if !versions.contains(&version) {
            let message = format!(
                "skipped: apiVersion {api_version} is not supported for {kind_name} (expected {}/{})",
                kind.group(),
                versions.join(", ")
            );
            return self.push(path, start, Severity::Warning, None, &subject, message);
        }
        match kind {
            Kind::VirtualService => {
                self.typed::<model::VirtualServiceSpec>(path, chunk, kind, &subject)
            }
            Kind::DestinationRule => {
                self.typed::<model::DestinationRuleSpec>(path, chunk, kind, &subject)
            }
            Kind::ServiceEntry => {
                self.typed::<model::ServiceEntrySpec>(path, chunk, kind, &subject)
            }
            Kind::WorkloadEntry => {
                self.typed::<model::WorkloadEntrySpec>(path, chunk, kind, &subject)
            }
            Kind::PeerAuthentication => {
                self.typed::<model::PeerAuthenticationSpec>(path, chunk, kind, &subject)
            }
            Kind::AuthorizationPolicy => {
                self.typed::<model::AuthorizationPolicySpec>(path, chunk, kind, &subject)
            }
            Kind::RequestAuthentication => {
                self.typed::<model::RequestAuthenticationSpec>(path, chunk, kind, &subject)
            }
        }
    }

    fn typed<S>(&mut self, path: &Arc<Path>, chunk: Chunk<'_>, kind: Kind, subject: &Subject)
    where
        S: DeserializeOwned + Validate,
    {
        let mut unknown = Vec::new();
        let deserializer = serde_yaml::Deserializer::from_str(chunk.text);
        let parsed: Result<Object<S>, _> = serde_ignored::deserialize(deserializer, |field| {
            unknown.push(FieldPath::from_ignored(&field));
        });
        let object = match parsed {
            Ok(object) => object,
            Err(error) => return self.yaml_error(path, chunk, &error, subject),
        };
        let mut problems = Problems::default();
        for field in unknown {
            problems.list.push(Problem {
                path: field,
                severity: Severity::Warning,
                code: None,
                error: Invalid::UnknownField,
            });
        }
        let name = object.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            problems.error(&FieldPath::root().key("metadata"), Invalid::MissingName);
        }
        let (line, column) = Self::locate(chunk, &FieldPath::root());
        let meta = Meta {
            kind,
            name,
            namespace: subject
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            labels: object.metadata.labels.clone(),
            annotations: object.metadata.annotations.clone(),
            creation_timestamp: object.metadata.creation_timestamp.clone(),
            source: Source {
                path: path.clone(),
                line,
                column,
                document: Arc::from(chunk.text),
                line_offset: chunk.line_offset,
            },
        };
        match &object.spec {
            None => problems.error(&FieldPath::root(), Invalid::MissingSpec),
            Some(spec) => {
                let built = spec.validate(meta, &mut problems);
                if !problems.has_errors() {
                    self.accept(built, chunk, &mut problems);
                }
            }
        }
        for problem in problems.list {
            let at = Self::locate(chunk, &problem.path);
            let message = problem.to_string();
            self.push(path, at, problem.severity, problem.code, subject, message);
        }
    }

    fn accept(&mut self, built: Built, chunk: Chunk<'_>, problems: &mut Problems) {
        let meta = built.meta();
        let key = (meta.kind, meta.namespace.clone(), meta.name.clone());
        let here = (meta.source.path.to_path_buf(), meta.source.line);
        if let Some((first_path, first_line)) = self.seen.get(&key) {
            problems.warn(
                &FieldPath::root().key("metadata").key("name"),
                Invalid::Rule(format!(
                    "{} {}/{} is defined again (first at {}:{}); the later definition replaces the earlier",
                    key.0,
                    key.1,
                    key.2,
                    first_path.display(),
                    first_line
                )),
            );
            self.remove(&key);
        }
        self.seen.insert(key, here);
        self.hash.write(chunk.text.as_bytes());
        self.hash.write(b"\0");
        match built {
            Built::VirtualService(vs) => self.mesh.virtual_services.push(*vs),
            Built::DestinationRule(dr) => self.mesh.destination_rules.push(*dr),
            Built::ServiceEntry(se) => self.mesh.service_entries.push(se),
            Built::WorkloadEntry(we) => self.mesh.workload_entries.push(we),
            Built::PeerAuthentication(o) => self.mesh.peer_authentications.push(*o),
            Built::AuthorizationPolicy(o) => self.mesh.authorization_policies.push(*o),
            Built::RequestAuthentication(o) => self.mesh.request_authentications.push(*o),
        }
    }

    fn remove(&mut self, key: &(Kind, String, String)) {
        let same = |meta: &Meta| meta.namespace == key.1 && meta.name == key.2;
        match key.0 {
            Kind::VirtualService => self.mesh.virtual_services.retain(|o| !same(&o.meta)),
            Kind::DestinationRule => {
                // Kept aside: `weft check` still counts their subsets as defined somewhere.
                let (replaced, kept) = std::mem::take(&mut self.mesh.destination_rules)
                    .into_iter()
                    .partition(|o| same(&o.meta));
                self.mesh.destination_rules = kept;
                self.mesh
                    .replaced_destination_rules
                    .extend::<Vec<_>>(replaced);
            }
            Kind::ServiceEntry => self.mesh.service_entries.retain(|o| !same(&o.meta)),
            Kind::WorkloadEntry => self.mesh.workload_entries.retain(|o| !same(&o.meta)),
            Kind::PeerAuthentication => self.mesh.peer_authentications.retain(|o| !same(&o.meta)),
            Kind::AuthorizationPolicy => {
                self.mesh.authorization_policies.retain(|o| !same(&o.meta))
            }
            Kind::RequestAuthentication => {
                self.mesh.request_authentications.retain(|o| !same(&o.meta))
            }
        }
    }
}

/// A checked object of any kind.
enum Built {
    VirtualService(Box<crate::mesh::VirtualService>),
    DestinationRule(Box<crate::mesh::DestinationRule>),
    ServiceEntry(crate::mesh::ServiceEntry),
    WorkloadEntry(crate::mesh::WorkloadEntry),
    PeerAuthentication(Box<crate::security::PeerAuthentication>),
    AuthorizationPolicy(Box<crate::security::AuthorizationPolicy>),
    RequestAuthentication(Box<crate::security::RequestAuthentication>),
}

impl Built {
    fn meta(&self) -> &Meta {
        match self {
            Built::VirtualService(o) => &o.meta,
            Built::DestinationRule(o) => &o.meta,
            Built::ServiceEntry(o) => &o.meta,
            Built::WorkloadEntry(o) => &o.meta,
            Built::PeerAuthentication(o) => &o.meta,
            Built::AuthorizationPolicy(o) => &o.meta,
            Built::RequestAuthentication(o) => &o.meta,
        }
    }
}

/// A wire spec that validation turns into a checked object.
trait Validate {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built;
}

impl Validate for model::VirtualServiceSpec {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built {
        Built::VirtualService(Box::new(validate::virtual_service(meta, self, problems)))
    }
}

impl Validate for model::DestinationRuleSpec {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built {
        Built::DestinationRule(Box::new(validate::destination_rule(meta, self, problems)))
    }
}

impl Validate for model::ServiceEntrySpec {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built {
        Built::ServiceEntry(validate::service_entry(meta, self, problems))
    }
}

impl Validate for model::WorkloadEntrySpec {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built {
        Built::WorkloadEntry(validate::workload_entry(meta, self, problems))
    }
}

impl Validate for model::PeerAuthenticationSpec {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built {
        Built::PeerAuthentication(Box::new(validate::peer_authentication(
            meta, self, problems,
        )))
    }
}

impl Validate for model::AuthorizationPolicySpec {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built {
        Built::AuthorizationPolicy(Box::new(validate::authorization_policy(
            meta, self, problems,
        )))
    }
}

impl Validate for model::RequestAuthenticationSpec {
    fn validate(&self, meta: Meta, problems: &mut Problems) -> Built {
        Built::RequestAuthentication(Box::new(validate::request_authentication(
            meta, self, problems,
        )))
    }
}

#[cfg(test)]
mod tests;
