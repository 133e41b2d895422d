//! `istioctl analyze` conformance: for every analyzer fixture `SOURCES.md` lists, the
//! messages weft reports for the codes it implements equal the messages Istio's own test
//! expects (`IST0xxx Name (Kind ns/name)`, compared as sets per test case).
//!
//! Compared: IST0109, IST0112, IST0130, IST0131, IST0173, IST0174 and IST0002 on
//! VirtualService / DestinationRule / ServiceEntry. Skipped: IST0101 (weft reports unknown
//! hosts as warnings and subset errors in the same analyzer, where Istio splits them across
//! analyzers run per test case; it is covered by weft's own tests), and every message about
//! kinds weft does not handle (Gateway, Sidecar, AuthorizationPolicy, RequestAuthentication,
//! Telemetry, WasmPlugin, Deployment) or codes owned by other analyzers (IST0128/0129 TLS,
//! IST0132/0140/0145/0149/0162/0165 gateways, IST0134/0177 ServiceEntry addresses/protocols).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use weft_config::check;

const CODES: [&str; 7] = [
    "IST0002", "IST0109", "IST0112", "IST0130", "IST0131", "IST0173", "IST0174",
];
const KINDS: [&str; 3] = ["VirtualService", "DestinationRule", "ServiceEntry"];

/// Cases whose analyzer is one of ours but which expect no message: the codes they exercise.
const SILENT_CASES: [(&str, &str); 1] = [("DestinationRuleSubsetsWithTopologyLabels", "IST0173")];

fn corpus() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join("../../shared/conformance/istio"),
        manifest.join("../tests/conformance/istio"),
    ]
    .into_iter()
    .find(|dir| dir.join("SOURCES.md").is_file())
    .expect("Istio conformance corpus")
}

/// (code, kind, name, namespace if given).
type Message = (String, String, String, Option<String>);

fn parse_messages(text: &str) -> Vec<Message> {
    let mut out = Vec::new();
    for part in text.split("IST").skip(1) {
        let code = format!("IST{}", &part[..4]);
        let Some(open) = part.find('(') else { continue };
        let Some(close) = part[open..].find(')') else {
            continue;
        };
        let inside = &part[open + 1..open + close];
        let Some((kind, object)) = inside.split_once(' ') else {
            continue;
        };
        let (namespace, name) = match object.split_once('/') {
            Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
            None => (None, object.to_string()),
        };
        out.push((code, kind.to_string(), name, namespace));
    }
    out
}

/// case name → (files, expected messages).
fn cases() -> BTreeMap<String, (Vec<PathBuf>, BTreeSet<Message>)> {
    let sources = std::fs::read_to_string(corpus().join("SOURCES.md")).expect("SOURCES.md");
    let mut cases: BTreeMap<String, (Vec<PathBuf>, BTreeSet<Message>)> = BTreeMap::new();
    for line in sources.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || cells[2] != "analyzer fixture" {
            continue;
        }
        let file = cells[1].trim_matches('`');
        let what = cells[4];
        let Some(rest) = what.split("case “").nth(1) else {
            continue;
        };
        let Some((name, rest)) = rest.split_once('”') else {
            continue;
        };
        // Only the first case of a file (others use a MeshConfig weft does not read).
        let first = rest.split('‖').next().unwrap_or(rest);
        let first = first.split(" — fields").next().unwrap_or(first);
        let entry = cases.entry(name.to_string()).or_default();
        entry.0.push(corpus().join(file));
        entry.1.extend(parse_messages(first));
    }
    cases
}

#[test]
fn analyzer_messages_match_istio_expectations() {
    let cases = cases();
    assert!(
        cases.len() > 30,
        "only {} analyzer cases found",
        cases.len()
    );
    let mut compared = 0;
    let mut failures = Vec::new();
    for (name, (files, expected)) in &cases {
        let mut codes: BTreeSet<&str> = expected
            .iter()
            .map(|m| m.0.as_str())
            .filter(|code| CODES.contains(code))
            .collect();
        codes.extend(
            SILENT_CASES
                .iter()
                .filter(|(case, _)| case == name)
                .map(|(_, code)| *code),
        );
        if codes.is_empty() {
            continue;
        }
        compared += 1;
        let expected: BTreeSet<Message> = expected
            .iter()
            .filter(|m| codes.contains(m.0.as_str()) && KINDS.contains(&m.1.as_str()))
            .cloned()
            .collect();
        let report = check(files);
        let actual: BTreeSet<Message> = report
            .findings()
            .iter()
            .filter_map(|f| {
                let code = f.code?;
                let kind = f.kind.clone()?;
                (codes.contains(code) && KINDS.contains(&kind.as_str())).then(|| {
                    // Istio prints no namespace for objects that have none in the file.
                    let namespace = f.namespace.clone();
                    (
                        code.to_string(),
                        kind,
                        f.name.clone().unwrap_or_default(),
                        namespace,
                    )
                })
            })
            .collect();
        // Expected messages without a namespace match any namespace.
        let normalize = |set: &BTreeSet<Message>, expected: &BTreeSet<Message>| {
            set.iter()
                .map(|m| {
                    let bare = expected
                        .iter()
                        .any(|e| e.0 == m.0 && e.1 == m.1 && e.2 == m.2 && e.3.is_none());
                    if bare {
                        (m.0.clone(), m.1.clone(), m.2.clone(), None)
                    } else {
                        m.clone()
                    }
                })
                .collect::<BTreeSet<_>>()
        };
        let actual = normalize(&actual, &expected);
        if actual != expected {
            failures.push(format!(
                "case {name:?} ({}):\n  missing: {:?}\n  unexpected: {:?}",
                files
                    .iter()
                    .map(|f| f
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned())
                    .collect::<Vec<_>>()
                    .join(" + "),
                expected.difference(&actual).collect::<Vec<_>>(),
                actual.difference(&expected).collect::<Vec<_>>(),
            ));
        }
    }
    assert!(compared >= 6, "only {compared} cases compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
