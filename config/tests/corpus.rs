//! The upstream Istio corpus (`shared/conformance/istio`): every file `SOURCES.md` lists with
//! role `valid` must load without error findings; documents of the invalid CRD corpus that weft
//! handles must be rejected.

use std::path::{Path, PathBuf};

use weft_config::{Severity, check};

/// The corpus folder: `$WEFT_ISTIO_CORPUS`, else `../../shared/conformance/istio` from this
/// crate, else the repository's copy in `tests/conformance/istio`. Missing is a failure, never
/// a silent pass.
fn corpus() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = match std::env::var_os("WEFT_ISTIO_CORPUS") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![
            manifest.join("../../shared/conformance/istio"),
            manifest.join("../tests/conformance/istio"),
        ],
    };
    let found = candidates
        .iter()
        .find(|dir| dir.join("SOURCES.md").is_file());
    match found {
        Some(dir) => dir.clone(),
        None => panic!(
            "Istio conformance corpus not found (looked in {}); set WEFT_ISTIO_CORPUS to its folder",
            candidates
                .iter()
                .map(|dir| dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `(path, role)` of every row of the file tables in SOURCES.md.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("SOURCES.md")).expect("read SOURCES.md");
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let path = cells.get(1)?.trim_matches('`');
            let role = cells.get(2)?;
            Some((path.to_string(), role.to_string()))
        })
        .collect()
}

#[test]
fn every_valid_corpus_file_loads_without_errors() {
    let dir = corpus();
    let valid: Vec<String> = sources(&dir)
        .into_iter()
        .filter(|(_, role)| role == "valid")
        .map(|(path, _)| path)
        .collect();
    assert!(
        valid.len() >= 100,
        "only {} valid files found in SOURCES.md; did its table format change?",
        valid.len()
    );
    let mut failures = Vec::new();
    for path in &valid {
        let file = dir.join(path);
        assert!(
            file.is_file(),
            "{} listed in SOURCES.md is missing",
            file.display()
        );
        let report = check(&[file]);
        failures.extend(report.errors().map(ToString::to_string));
    }
    assert!(
        failures.is_empty(),
        "{} error findings in valid corpus files:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn valid_corpus_objects_are_accepted_not_skipped() {
    // Every handled object of the valid corpus must reach the mesh: a loader that skipped
    // them would pass the test above trivially.
    let dir = corpus();
    let mut accepted = 0;
    for (path, _) in sources(&dir)
        .into_iter()
        .filter(|(_, role)| role == "valid")
    {
        let file = dir.join(&path);
        let text = std::fs::read_to_string(&file).expect("read corpus file");
        let count = |kind: &str| {
            text.lines()
                .filter(|line| line.trim_end() == format!("kind: {kind}"))
                .count()
        };
        let (mesh, findings) =
            weft_config::load(std::slice::from_ref(&file)).expect("valid file loads");
        // A later object with the same kind, namespace and name replaces the earlier one.
        let replaced = |kind: &str| {
            findings
                .iter()
                .filter(|f| {
                    f.kind.as_deref() == Some(kind) && f.message.contains("is defined again")
                })
                .count()
        };
        let expected = [
            count("VirtualService"),
            count("DestinationRule"),
            count("ServiceEntry"),
            count("WorkloadEntry"),
            count("PeerAuthentication"),
            count("AuthorizationPolicy"),
            count("RequestAuthentication"),
        ];
        let got = [
            mesh.virtual_services().len() + replaced("VirtualService"),
            mesh.destination_rules().len() + replaced("DestinationRule"),
            mesh.service_entries().len() + replaced("ServiceEntry"),
            mesh.workload_entries().len() + replaced("WorkloadEntry"),
            mesh.peer_authentications().len() + replaced("PeerAuthentication"),
            mesh.authorization_policies().len() + replaced("AuthorizationPolicy"),
            mesh.request_authentications().len() + replaced("RequestAuthentication"),
        ];
        assert_eq!(
            got, expected,
            "{path}: objects accepted (VS, DR, SE, WE, PA, AP, RA)"
        );
        accepted += got.iter().sum::<usize>();
    }
    assert!(accepted >= 100, "only {accepted} objects accepted");
}

/// Each document of these invalid CRD files is one object Istio rejects.
#[test]
fn invalid_crd_corpus_documents_are_rejected() {
    let dir = corpus().join("invalid/pkg/config/validation/testdata/crds");
    for (file, documents) in [
        ("destinationrule-invalid.yaml", 3),
        ("serviceentry-invalid.yaml", 12),
        ("workloadentry-invalid.yaml", 7),
        ("peerauth-invalid.yaml", 6),
        ("authz-invalid.yaml", 2),
        ("reqauth-invalid.yaml", 20),
    ] {
        let path = dir.join(file);
        let report = check(std::slice::from_ref(&path));
        let text = std::fs::read_to_string(&path).expect("read invalid corpus file");
        let mut starts: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.starts_with("_err:"))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(starts.len(), documents, "{file}: documents");
        starts.push(usize::MAX);
        for window in starts.windows(2) {
            let (start, end) = (window[0], window[1]);
            let rejected = report
                .findings()
                .iter()
                .any(|f| f.severity == Severity::Error && f.line >= start && f.line < end);
            assert!(
                rejected,
                "{file}: document at line {start} was not rejected; findings:\n{}",
                report
                    .findings()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        // `_err` is not part of the object: a warning, never an error of its own.
        assert!(report.findings().iter().any(
            |f| f.severity == Severity::Warning && f.message.starts_with("_err: unknown field")
        ));
    }
}

/// The security CRD corpus: each document is rejected with (a finding containing) its `_err`
/// substring, where weft words the rule like Istio's CRD.
#[test]
fn invalid_security_documents_are_rejected_with_istio_messages() {
    let dir = corpus().join("invalid/pkg/config/validation/testdata/crds");
    // Documents whose Istio message comes from the YAML decoder (weft words these itself).
    let decoder_messages = ["must be a valid duration greater than"];
    for file in [
        "peerauth-invalid.yaml",
        "authz-invalid.yaml",
        "reqauth-invalid.yaml",
    ] {
        let path = dir.join(file);
        let report = check(std::slice::from_ref(&path));
        let text = std::fs::read_to_string(&path).expect("read invalid corpus file");
        let mut starts: Vec<(usize, String)> = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let expected = line.strip_prefix("_err:")?.trim();
                let expected = expected.trim_matches(|c| c == '\'' || c == '"');
                Some((i + 1, expected.replace("\\\"", "\"")))
            })
            .collect();
        starts.push((usize::MAX, String::new()));
        for window in starts.windows(2) {
            let ((start, expected), (end, _)) = (&window[0], &window[1]);
            let errors: Vec<String> = report
                .findings()
                .iter()
                .filter(|f| f.severity == Severity::Error && f.line >= *start && f.line < *end)
                .map(|f| f.message.clone())
                .collect();
            assert!(!errors.is_empty(), "{file}:{start}: not rejected");
            if decoder_messages.contains(&expected.as_str()) {
                continue;
            }
            assert!(
                errors.iter().any(|m| m.contains(expected.as_str())),
                "{file}:{start}: no error contains {expected:?}: {errors:?}"
            );
        }
    }
}
