//! `weft inject`: adds the weft sidecar to Kubernetes workload manifests, as
//! `istioctl kube-inject` does for Envoy.
//!
//! Every Pod template (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, and
//! the items of a `List`) gets a `weft-proxy` container that runs `weft proxy --control ...`
//! with the workload's name, labels, namespace and service account, its bootstrap token and
//! the mesh's root certificate mounted from the cluster. The application containers get
//! `HTTP_PROXY` pointing at the sidecar's outbound listener (weft intercepts by explicit proxy,
//! not iptables). A Service in the same input whose selector picks the workload has the
//! target port of the application sent to the sidecar's inbound listener instead, so that
//! callers reach the app through its sidecar.
//!
//! Documents that are not changed are written back byte for byte (comments included); changed
//! documents are re-serialized. Injecting twice changes nothing. Pods that opt out
//! (`sidecar.istio.io/inject: "false"` as label or annotation) or use the host network are
//! left alone and reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::load::{Chunk, split_documents, yaml_message};

/// Name of the injected container.
pub const SIDECAR_NAME: &str = "weft-proxy";
/// Port of the sidecar's inbound listener (Istio's 15006).
pub const INBOUND_PORT: u16 = 15006;
/// Port of the sidecar's outbound listener, the apps' `HTTP_PROXY`.
pub const OUTBOUND_PORT: u16 = 15001;
/// Port of the sidecar's admin listener (`/ready`, `/metrics`).
pub const ADMIN_PORT: u16 = 15000;
/// Where the bootstrap token and the root certificate are mounted in the sidecar.
const TOKEN_DIR: &str = "/var/run/weft/token";
const CA_DIR: &str = "/var/run/weft/ca";
/// Annotation recording the injection (and making it idempotent).
const STATUS_ANNOTATION: &str = "weft.io/inject-status";

/// What the injected sidecars are told.
#[derive(Clone, Debug)]
pub struct InjectOptions {
    /// Container image holding the `weft` binary.
    pub image: String,
    /// Control plane URL, as the pods resolve it.
    pub control_url: String,
    /// OTLP/gRPC endpoint of the collector; `None`: no telemetry export.
    pub collector_url: Option<String>,
    /// SPIFFE trust domain.
    pub trust_domain: String,
    /// Share of new traces sampled.
    pub sampling: f64,
}

impl Default for InjectOptions {
    fn default() -> Self {
        InjectOptions {
            image: format!("ghcr.io/weft-mesh/weft:{}", env!("CARGO_PKG_VERSION")),
            control_url: "https://weft-control.weft-system.svc:15012".into(),
            collector_url: Some("http://weft-collector.weft-system.svc:4317".into()),
            trust_domain: "cluster.local".into(),
            sampling: 0.01,
        }
    }
}

/// The result of injecting one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// The manifests, with the sidecars added.
    pub text: String,
    /// `KIND NAMESPACE/NAME` of every workload that got a sidecar.
    pub injected: Vec<String>,
    /// `KIND NAMESPACE/NAME: reason` of every workload left alone.
    pub skipped: Vec<String>,
}

/// A manifest `weft inject` cannot read.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The text is not YAML.
    #[error("{}:{line}:{column}: invalid YAML: {message}", path.display())]
    #[allow(missing_docs)]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A workload object lacks what every pod needs.
    #[error("{}:{line}: {field}: {message}", path.display())]
    #[allow(missing_docs)]
    Field {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    /// A changed document could not be written back as YAML.
    #[error("{}:{line}: cannot write the injected document: {message}", path.display())]
    #[allow(missing_docs)]
    Serialize {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Injects the sidecar into every workload of `text` (the contents of `path`).
pub fn inject(path: &Path, text: &str, options: &InjectOptions) -> Result<Injected, InjectError> {
    let chunks = split_documents(text);
    let mut documents = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        let value: Value = serde_yaml::from_str(chunk.text).map_err(|error| {
            let (line, column) = error
                .location()
                .map(|at| (at.line() + chunk.line_offset, at.column()))
                .unwrap_or((chunk.line_offset + 1, 1));
            InjectError::Yaml {
                path: path.to_owned(),
                line,
                column,
                message: yaml_message(&error, chunk.line_offset),
            }
        })?;
        documents.push(Document {
            chunk: *chunk,
            value,
            changed: false,
        });
    }

    let mut result = Injected::default();
    // Workload pods first: the Services of the same input are rewritten after.
    let mut app_pods = Vec::new();
    for document in &mut documents {
        let line = document.chunk.line_offset + 1;
        let mut outcome = Outcome::default();
        visit_workloads(&mut document.value, &mut |kind, object| {
            inject_workload(kind, object, options, &mut outcome)
        })
        .map_err(|(field, message)| InjectError::Field {
            path: path.to_owned(),
            line,
            field,
            message,
        })?;
        document.changed |= !outcome.injected.is_empty();
        result.injected.extend(outcome.injected);
        result.skipped.extend(outcome.skipped);
        app_pods.extend(outcome.pods);
    }
    for document in &mut documents {
        document.changed |= redirect_services(&mut document.value, &app_pods);
    }

    for (index, document) in documents.iter().enumerate() {
        if document.changed {
            let yaml =
                serde_yaml::to_string(&document.value).map_err(|error| InjectError::Serialize {
                    path: path.to_owned(),
                    line: document.chunk.line_offset + 1,
                    message: error.to_string(),
                })?;
            if index > 0 || !result.text.is_empty() {
                result.text.push_str("---\n");
            }
            result.text.push_str(&yaml);
        } else {
            let original = document.chunk.text;
            if index > 0 && !original.starts_with("---") {
                result.text.push_str("---\n");
            }
            result.text.push_str(original);
            if !original.ends_with('\n') {
                result.text.push('\n');
            }
        }
    }
    Ok(result)
}

struct Document<'a> {
    chunk: Chunk<'a>,
    value: Value,
    changed: bool,
}

/// What injecting one document did.
#[derive(Default)]
struct Outcome {
    injected: Vec<String>,
    skipped: Vec<String>,
    /// The injected pods: namespace, labels, application ports.
    pods: Vec<AppPod>,
}

struct AppPod {
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    /// `(container port, port name)` of the application containers.
    ports: Vec<(u16, Option<String>)>,
}

type FieldError = (String, String);

/// Calls `inject` with every workload object of `value` (a `List`'s items included).
fn visit_workloads(
    value: &mut Value,
    inject: &mut dyn FnMut(&str, &mut Mapping) -> Result<(), FieldError>,
) -> Result<(), FieldError> {
    let Some(object) = value.as_mapping_mut() else {
        return Ok(());
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if kind == "List" {
        if let Some(items) = object.get_mut("items").and_then(Value::as_sequence_mut) {
            for item in items {
                visit_workloads(item, inject)?;
            }
        }
        return Ok(());
    }
    if template_path(&kind).is_some() {
        inject(&kind, object)?;
    }
    Ok(())
}

/// Keys from a workload object to its pod (template): metadata + spec.
fn template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&[]),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => Some(&["spec", "template"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

fn inject_workload(
    kind: &str,
    object: &mut Mapping,
    options: &InjectOptions,
    outcome: &mut Outcome,
) -> Result<(), FieldError> {
    let name = str_at(object, &["metadata", "name"]).unwrap_or_default();
    let namespace = str_at(object, &["metadata", "namespace"]);
    let subject = format!(
        "{kind} {}/{name}",
        namespace.as_deref().unwrap_or("default")
    );
    let path = template_path(kind).unwrap_or(&[]);
    let field = path.join(".");
    let mut pod = object;
    for key in path {
        pod = pod
            .get_mut(*key)
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| (field.clone(), format!("{kind} {name} has no pod template")))?;
    }
    let labels = string_map(pod, &["metadata", "labels"]);
    let annotations = string_map(pod, &["metadata", "annotations"]);
    let opted_out = |map: &BTreeMap<String, String>| {
        map.get("sidecar.istio.io/inject")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
    };
    if opted_out(&labels) || opted_out(&annotations) {
        outcome
            .skipped
            .push(format!("{subject}: sidecar.istio.io/inject is \"false\""));
        return Ok(());
    }
    let spec_field = if field.is_empty() {
        "spec".to_owned()
    } else {
        format!("{field}.spec")
    };
    let spec = pod
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| (spec_field.clone(), "missing pod spec".to_owned()))?;
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        outcome
            .skipped
            .push(format!("{subject}: the pod uses the host network"));
        return Ok(());
    }
    let service_account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let containers = spec
        .get_mut("containers")
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| {
            (
                format!("{spec_field}.containers"),
                "missing or not a list".to_owned(),
            )
        })?;
    let already = containers
        .iter()
        .any(|c| c.get("name").and_then(Value::as_str) == Some(SIDECAR_NAME));
    let mut ports = Vec::new();
    for container in containers.iter() {
        if container.get("name").and_then(Value::as_str) == Some(SIDECAR_NAME) {
            continue;
        }
        for port in container
            .get("ports")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let protocol = port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP");
            let Some(number) = port
                .get("containerPort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
            else {
                continue;
            };
            if protocol == "TCP" {
                let port_name = port.get("name").and_then(Value::as_str).map(str::to_owned);
                ports.push((number, port_name));
            }
        }
    }
    outcome.pods.push(AppPod {
        namespace: namespace.clone(),
        labels: labels.clone(),
        ports: ports.clone(),
    });
    if already {
        outcome
            .skipped
            .push(format!("{subject}: already has a {SIDECAR_NAME} container"));
        return Ok(());
    }
    for container in containers.iter_mut() {
        if let Some(container) = container.as_mapping_mut() {
            add_proxy_env(container);
        }
    }
    let workload = labels
        .get("app")
        .or_else(|| labels.get("app.kubernetes.io/name"))
        .cloned()
        .unwrap_or_else(|| name.clone());
    let app_port = ports.first().map_or(8080, |(port, _)| *port);
    containers.push(sidecar(
        options,
        &workload,
        &service_account,
        &labels,
        app_port,
    ));
    let volumes = spec
        .entry("volumes".into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if let Some(volumes) = volumes.as_sequence_mut() {
        volumes.extend(sidecar_volumes(&service_account));
    }
    let metadata = pod
        .entry("metadata".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if let Some(metadata) = metadata.as_mapping_mut() {
        let annotations = metadata
            .entry("annotations".into())
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Some(annotations) = annotations.as_mapping_mut() {
            annotations.insert(STATUS_ANNOTATION.into(), "injected".into());
            // Prometheus scrapes the sidecar's admin port, as Istio's merged metrics do.
            annotations.insert("prometheus.io/scrape".into(), "true".into());
            annotations.insert("prometheus.io/port".into(), ADMIN_PORT.to_string().into());
            annotations.insert("prometheus.io/path".into(), "/metrics".into());
        }
    }
    outcome.injected.push(subject);
    Ok(())
}

/// The application's outbound HTTP goes through the sidecar.
fn add_proxy_env(container: &mut Mapping) {
    let proxy = format!("http://127.0.0.1:{OUTBOUND_PORT}");
    let env = container
        .entry("env".into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    let Some(env) = env.as_sequence_mut() else {
        return;
    };
    let has = |env: &[Value], name: &str| {
        env.iter()
            .any(|e| e.get("name").and_then(Value::as_str) == Some(name))
    };
    for (name, value) in [
        ("HTTP_PROXY", proxy.as_str()),
        ("http_proxy", proxy.as_str()),
        ("NO_PROXY", "localhost,127.0.0.1"),
        ("no_proxy", "localhost,127.0.0.1"),
    ] {
        if !has(env, name) {
            env.push(env_var(name, value));
        }
    }
}

fn env_var(name: &str, value: &str) -> Value {
    let mut var = Mapping::new();
    var.insert("name".into(), name.into());
    var.insert("value".into(), value.into());
    Value::Mapping(var)
}

fn env_field(name: &str, field_path: &str) -> Value {
    let mut field = Mapping::new();
    field.insert("fieldPath".into(), field_path.into());
    let mut from = Mapping::new();
    from.insert("fieldRef".into(), Value::Mapping(field));
    let mut var = Mapping::new();
    var.insert("name".into(), name.into());
    var.insert("valueFrom".into(), Value::Mapping(from));
    Value::Mapping(var)
}

fn sidecar(
    options: &InjectOptions,
    workload: &str,
    service_account: &str,
    labels: &BTreeMap<String, String>,
    app_port: u16,
) -> Value {
    let labels = labels.iter().filter(|(key, _)| !key.contains(',')).fold(
        String::new(),
        |mut text, (key, value)| {
            if !text.is_empty() {
                text.push(',');
            }
            let _ = write!(text, "{key}={value}");
            text
        },
    );
    // `$(VAR)` in args is expanded by the kubelet from the container's env.
    let mut args: Vec<String> = [
        "proxy",
        "--workload",
        workload,
        "--namespace",
        "$(POD_NAMESPACE)",
        "--service-account",
        service_account,
        "--control",
        &options.control_url,
        "--token-file",
        &format!("{TOKEN_DIR}/token"),
        "--ca-root",
        &format!("{CA_DIR}/root-cert.pem"),
        "--trust-domain",
        &options.trust_domain,
        "--app",
        &format!("127.0.0.1:{app_port}"),
        "--inbound",
        &format!("0.0.0.0:{INBOUND_PORT}"),
        "--outbound",
        &format!("127.0.0.1:{OUTBOUND_PORT}"),
        "--admin",
        &format!("0.0.0.0:{ADMIN_PORT}"),
        "--sampling",
        &options.sampling.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if !labels.is_empty() {
        args.extend(["--labels".to_owned(), labels]);
    }
    if let Some(collector) = &options.collector_url {
        args.extend(["--collector".to_owned(), collector.clone()]);
    }
    let yaml = format!(
        r#"
name: {SIDECAR_NAME}
image: {image}
args: []
env: []
ports:
- name: weft-inbound
  containerPort: {INBOUND_PORT}
  protocol: TCP
- name: http-weft-admin
  containerPort: {ADMIN_PORT}
  protocol: TCP
readinessProbe:
  httpGet:
    path: /ready
    port: {ADMIN_PORT}
  periodSeconds: 2
  failureThreshold: 30
resources:
  requests:
    cpu: 10m
    memory: 40Mi
securityContext:
  runAsNonRoot: true
  runAsUser: 1337
  runAsGroup: 1337
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
volumeMounts:
- name: weft-token
  mountPath: {TOKEN_DIR}
  readOnly: true
- name: weft-ca-root
  mountPath: {CA_DIR}
  readOnly: true
"#,
        image = serde_json::Value::String(options.image.clone()),
    );
    let mut container: Mapping =
        serde_yaml::from_str(&yaml).unwrap_or_else(|_| unreachable!("the template is valid YAML"));
    container.insert(
        "args".into(),
        Value::Sequence(args.into_iter().map(Value::String).collect()),
    );
    container.insert(
        "env".into(),
        Value::Sequence(vec![env_field("POD_NAMESPACE", "metadata.namespace")]),
    );
    Value::Mapping(container)
}

/// The bootstrap token (a Secret per service account, `weft-token-SA`, key `token`; see
/// `deploy/kubernetes/`) and the mesh's root certificate (ConfigMap `weft-ca-root`).
fn sidecar_volumes(service_account: &str) -> Vec<Value> {
    let secret = serde_json::Value::String(format!("weft-token-{service_account}"));
    let yaml = format!(
        r#"
- name: weft-token
  secret:
    secretName: {secret}
    items:
    - key: token
      path: token
- name: weft-ca-root
  configMap:
    name: weft-ca-root
"#
    );
    serde_yaml::from_str(&yaml).unwrap_or_else(|_| unreachable!("the template is valid YAML"))
}

/// Sends each Service port whose target is an injected pod's application port to the
/// sidecar's inbound listener. Returns whether anything changed.
fn redirect_services(value: &mut Value, pods: &[AppPod]) -> bool {
    let Some(object) = value.as_mapping_mut() else {
        return false;
    };
    match object.get("kind").and_then(Value::as_str) {
        Some("List") => object
            .get_mut("items")
            .and_then(Value::as_sequence_mut)
            .map(|items| {
                items.iter_mut().fold(false, |changed, item| {
                    redirect_services(item, pods) | changed
                })
            })
            .unwrap_or(false),
        Some("Service") => redirect_service(object, pods),
        _ => false,
    }
}

fn redirect_service(service: &mut Mapping, pods: &[AppPod]) -> bool {
    let namespace = str_at(service, &["metadata", "namespace"]);
    let selector = string_map(service, &["spec", "selector"]);
    if selector.is_empty() {
        return false;
    }
    let Some(pod) = pods.iter().find(|pod| {
        pod.namespace == namespace
            && selector
                .iter()
                .all(|(key, value)| pod.labels.get(key) == Some(value))
    }) else {
        return false;
    };
    // The sidecar forwards inbound traffic to one address: the app's first port.
    let Some((app_port, app_port_name)) = pod.ports.first() else {
        return false;
    };
    let Some(ports) = service
        .get_mut("spec")
        .and_then(|spec| spec.get_mut("ports"))
        .and_then(Value::as_sequence_mut)
    else {
        return false;
    };
    let mut changed = false;
    for port in ports.iter_mut().filter_map(Value::as_mapping_mut) {
        let target = port.get("targetPort").or_else(|| port.get("port")).cloned();
        let aims_at_app = match &target {
            Some(Value::Number(n)) => n.as_u64() == Some(u64::from(*app_port)),
            Some(Value::String(name)) => app_port_name.as_deref() == Some(name.as_str()),
            _ => false,
        };
        if aims_at_app {
            port.insert("targetPort".into(), "weft-inbound".into());
            changed = true;
        }
    }
    changed
}

fn str_at(map: &Mapping, keys: &[&str]) -> Option<String> {
    let (last, parents) = keys.split_last()?;
    let mut map = map;
    for key in parents {
        map = map.get(*key)?.as_mapping()?;
    }
    map.get(*last)?.as_str().map(str::to_owned)
}

fn string_map(map: &Mapping, keys: &[&str]) -> BTreeMap<String, String> {
    let mut node = map;
    for key in keys {
        match node.get(*key).and_then(Value::as_mapping) {
            Some(next) => node = next,
            None => return BTreeMap::new(),
        }
    }
    node.iter()
        .filter_map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((key.as_str()?.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests;
