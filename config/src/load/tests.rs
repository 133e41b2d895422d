use std::path::Path;

use super::*;
use crate::finding::CheckReport;

fn check_str(text: &str) -> CheckReport {
    Mesh::check_str_sources(&[("mesh.yaml", text)])
}

fn errors(report: &CheckReport) -> Vec<String> {
    report.errors().map(ToString::to_string).collect()
}

const SE: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: a
spec:
  hosts: [a.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
";

#[test]
fn splits_documents_with_line_offsets() {
    let text = "# leading comment\n---\na: 1\n---\n# only a comment\n---\n\nb: 2\n...\nc: 3\n--- # comment\n";
    let chunks = split_documents(text);
    let got: Vec<(usize, &str)> = chunks.iter().map(|c| (c.line_offset, c.text)).collect();
    assert_eq!(
        got,
        vec![(1, "---\na: 1\n"), (5, "---\n\nb: 2\n...\n"), (9, "c: 3\n"),]
    );
    assert!(split_documents("").is_empty());
    assert!(split_documents("---\n---\n# nothing\n").is_empty());
    // Content on the marker line belongs to its document.
    let inline = split_documents("--- {a: 1}\n---\nb: 2\n");
    assert_eq!(inline.len(), 2);
    assert_eq!(inline[1].line_offset, 1);
}

#[test]
fn syntax_error_in_third_document_has_file_position() {
    let text = format!(
        "{SE}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: b
spec:
  address: 10.0.0.1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: c
spec:
  hosts: c: d
"
    );
    // The third document starts at its `---` on line 16; `hosts: c: d` is line 22, the second
    // `:` column 11.
    let report = check_str(&text);
    assert_eq!(
        errors(&report),
        vec!["mesh.yaml:22:11: error: mapping values are not allowed in this context"]
    );
    let (mesh, findings) = load_str_sources(&[("mesh.yaml", &text)]);
    assert_eq!(
        mesh.service_entries().len(),
        1,
        "documents before the bad one load"
    );
    assert_eq!(mesh.workload_entries().len(), 1);
    assert!(into_result(mesh, findings).is_err());
}

#[test]
fn syntax_error_after_the_bad_document_keeps_loading() {
    let text = format!("a: [\n---\n{SE}");
    let (mesh, findings) = load_str_sources(&[("m.yaml", &text)]);
    assert_eq!(mesh.service_entries().len(), 1);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Error);
    assert_eq!(findings[0].line, 2);
}

#[test]
fn type_error_reports_the_value_position() {
    let text = format!(
        "{SE}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
  namespace: prod
spec:
  hosts: [a.example.com]
  http:
  - route:
    - destination:
        host: a.example.com
      weight: abc
"
    );
    let report = check_str(&text);
    let found = errors(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "mesh.yaml:21:15: error[IST0106] VirtualService prod/web: spec.http[0].route[0].weight: invalid type: string \"abc\""
        ),
        "{}",
        found[0]
    );
}

#[test]
fn bad_duration_is_a_positioned_error() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - timeout: 5 seconds
    route:
    - destination: {host: web}
";
    let found = errors(&check_str(text));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "mesh.yaml:7:14: error[IST0106] VirtualService default/web: spec.http[0].timeout:"
        ),
        "{}",
        found[0]
    );
    assert!(found[0].contains("unknown unit"), "{}", found[0]);
}

#[test]
fn unknown_fields_are_warnings_naming_their_path() {
    let text = "\
_err: not part of the object
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
  - foo: bar
    route:
    - destination: {host: web, colour: blue}
";
    let report = check_str(text);
    assert!(!report.has_errors(), "{:?}", errors(&report));
    let warnings: Vec<String> = report
        .findings()
        .iter()
        .filter(|f| f.severity == Severity::Warning && f.message.contains("unknown field"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        warnings,
        vec![
            "mesh.yaml:1:1: warning VirtualService default/web: _err: unknown field (ignored)",
            "mesh.yaml:9:5: warning VirtualService default/web: spec.http[0].foo: unknown field (ignored)",
            "mesh.yaml:11:32: warning VirtualService default/web: spec.http[0].route[0].destination.colour: unknown field (ignored)",
        ]
    );
}

#[test]
fn unsupported_kinds_are_notes() {
    // PeerAuthentication is handled since issue 4: it loads without any finding.
    let text = "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec: {servers: []}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {}
---
---
# empty documents are fine
";
    let report = check_str(text);
    let notes: Vec<String> = report.findings().iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        vec![
            "mesh.yaml:1:1: note Gateway istio-system/gw: skipped: Gateway (networking.istio.io/v1) is not handled by weft yet",
            "mesh.yaml:11:1: note Deployment default/web: skipped: Deployment (apps/v1) is not handled by weft yet",
        ]
    );
}

#[test]
fn documents_that_are_not_objects_are_errors() {
    let report = check_str("just a string\n---\n- a\n- b\n---\nfoo: bar\n");
    let found = errors(&report);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("mesh.yaml:1:1: error: not a Kubernetes object"));
    assert!(found[2].contains("apiVersion and kind are required"));
}

#[test]
fn semantic_errors_point_at_the_field() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: prod}
spec:
  host: r
  subsets:
  - name: v1
  - name: v1
  - name: bad_name
";
    assert_eq!(
        errors(&check_str(text)),
        vec![
            "mesh.yaml:8:5: error[IST0106] DestinationRule prod/r: spec.subsets[1].name: duplicate subset names: v1",
            "mesh.yaml:9:5: error[IST0106] DestinationRule prod/r: spec.subsets[2].name: subset name \"bad_name\" is invalid (must be a DNS-1123 label)",
        ]
    );
}

#[test]
fn missing_spec_and_name_are_errors() {
    let report = check_str(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {namespace: x}\n",
    );
    let found = errors(&report);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|f| f.contains("metadata.name is required"))
    );
    assert!(found.iter().any(|f| f.contains("spec is required")));
}

#[test]
fn later_definition_replaces_earlier_with_a_warning() {
    let second = SE.replace("a.example.com", "b.example.com");
    let (mesh, findings) = load_str_sources(&[("one.yaml", SE), ("two.yaml", &second)]);
    assert_eq!(mesh.service_entries().len(), 1);
    assert_eq!(mesh.service_entries()[0].hosts, vec!["b.example.com"]);
    assert_eq!(findings.len(), 1);
    assert!(
        findings[0]
            .message
            .contains("defined again (first at one.yaml:1)")
    );
}

#[test]
fn version_is_a_stable_hash_of_the_documents() {
    let (a, _) = load_str_sources(&[("x.yaml", SE)]);
    let (b, _) = load_str_sources(&[("y.yaml", SE)]);
    let (c, _) = load_str_sources(&[("x.yaml", &SE.replace("80", "81"))]);
    assert_eq!(a.version(), b.version());
    assert_ne!(a.version(), c.version());
    assert_eq!(a.version().len(), 16);
}

#[test]
fn flow_scalars_with_colons_read_as_kubernetes_does() {
    let text = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: v6}
spec:
  hosts: [v6.example.com]
  addresses: [1.2.3.4, 001:db8::]
";
    let (mesh, findings) = load_str_sources(&[("m.yaml", text)]);
    assert_eq!(
        mesh.service_entries()[0].addresses,
        vec!["1.2.3.4", "001:db8::"]
    );
    assert_eq!(findings.len(), 1);
    assert_eq!((findings[0].line, findings[0].column), (6, 24));
    assert_eq!(findings[0].severity, Severity::Warning);
}

#[test]
fn load_error_lists_the_errors() {
    let error = Mesh::from_str_sources(&[("m.yaml", "a: [\n")]).expect_err("syntax error");
    let text = error.to_string();
    assert!(text.starts_with("m.yaml:"), "{text}");
    assert_eq!(error.findings().len(), 1);
}

#[test]
fn files_and_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::create_dir_all(root.join("b/nested")).expect("mkdir");
    fs::create_dir_all(root.join(".hidden")).expect("mkdir");
    fs::write(
        root.join("b/nested/z.yml"),
        SE.replace("name: a", "name: z"),
    )
    .expect("write");
    fs::write(root.join("a.yaml"), SE).expect("write");
    fs::write(root.join("notes.txt"), "not yaml: [").expect("write");
    fs::write(root.join(".hidden/x.yaml"), "not yaml: [").expect("write");
    let (mesh, findings) = load_paths(&[root.to_path_buf()]);
    assert!(findings.is_empty(), "{findings:?}");
    let names: Vec<&str> = mesh
        .service_entries()
        .iter()
        .map(|se| se.meta.name.as_str())
        .collect();
    assert_eq!(names, vec!["a", "z"]);
    assert_eq!(
        mesh.service_entries()[1].meta.source.path(),
        root.join("b/nested/z.yml")
    );

    let missing = root.join("missing.yaml");
    let report = crate::check(std::slice::from_ref(&missing));
    assert!(report.has_errors());
    let line = report.findings()[0].to_string();
    assert!(
        line.starts_with(&format!("{}:1:1: error: cannot read:", missing.display())),
        "{line}"
    );

    let empty = tempfile::tempdir().expect("tempdir");
    let report = crate::check(&[empty.path().to_path_buf()]);
    assert!(!report.has_errors());
    assert_eq!(report.count(Severity::Warning), 1);
}

#[test]
fn demo_examples_load_cleanly() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let paths = [
        examples.join("demo.yaml"),
        examples.join("workloads.example.yaml"),
    ];
    let report = crate::check(&paths);
    assert!(report.findings().is_empty(), "{:?}", report.findings());
    let (mesh, findings) = crate::load(&paths).expect("demo loads");
    assert!(findings.is_empty());
    assert_eq!(mesh.service_entries().len(), 3);
    assert_eq!(mesh.virtual_services().len(), 1);
    assert_eq!(mesh.destination_rules().len(), 1);
    assert_eq!(mesh.workload_entries().len(), 4);
}
