//! VirtualService route analysis (istio-model.md §9): conflicting mesh VirtualServices for one
//! host (IST0109: sidecars use only the oldest, §1.1); for `tcp`/`tls` rules that can never
//! match (IST0130) and duplicate matches (IST0131); for `http`, prefix matches made
//! ineffective by an earlier shorter prefix (IST0131) — exact HTTP duplicates are reported by
//! validation already.

use std::collections::HashMap;

use crate::finding::{Finding, Severity};
use crate::mesh::{ExportTo, HttpMatch, Mesh, VirtualService, expand_host, host_covers};
use crate::path::FieldPath;

const CONFLICTING_MESH_HOSTS: &str = "IST0109";
const UNREACHABLE_RULE: &str = "IST0130";
const INEFFECTIVE_MATCH: &str = "IST0131";

/// Whether two visibilities share a namespace.
fn overlaps(a: &ExportTo, b: &ExportTo) -> bool {
    match (a, b) {
        (ExportTo::Nowhere, _) | (_, ExportTo::Nowhere) => false,
        (ExportTo::Everywhere, _) | (_, ExportTo::Everywhere) => true,
        (ExportTo::Namespaces(a), ExportTo::Namespaces(b)) => a.intersection(b).next().is_some(),
    }
}

/// IST0109: two VirtualServices bound to `mesh` whose hosts overlap (one covers the other) and
/// whose `exportTo` scopes share a namespace. One message per VirtualService. A warning here
/// (Istio: error): both objects are accepted, only the oldest applies on sidecars.
pub(super) fn conflicting_mesh_hosts(mesh: &Mesh, findings: &mut Vec<Finding>) {
    let bound: Vec<(&VirtualService, Vec<String>)> = mesh
        .virtual_services()
        .iter()
        .filter(|vs| !vs.is_delegate() && vs.applies_to_mesh())
        .map(|vs| {
            let hosts = vs
                .hosts
                .iter()
                .map(|h| expand_host(h, &vs.meta.namespace))
                .collect();
            (vs, hosts)
        })
        .collect();
    for (i, (vs, hosts)) in bound.iter().enumerate() {
        let mut conflicts: Vec<String> = Vec::new();
        for (j, (other, other_hosts)) in bound.iter().enumerate() {
            if i == j || !overlaps(&vs.export_to, &other.export_to) {
                continue;
            }
            let shared = hosts.iter().find(|h| {
                other_hosts
                    .iter()
                    .any(|o| h.as_str() != "*" && (host_covers(h, o) || host_covers(o, h)))
            });
            if let Some(host) = shared {
                conflicts.push(format!(
                    "{}/{} ({host})",
                    other.meta.namespace, other.meta.name
                ));
            }
        }
        if !conflicts.is_empty() {
            findings.push(vs.meta.finding(
                &FieldPath::root().key("spec").key("hosts"),
                Severity::Warning,
                Some(CONFLICTING_MESH_HOSTS),
                format!(
                    "The VirtualServices {} associated with mesh gateway define the same host; only one of them takes effect on sidecars",
                    conflicts.join(", ")
                ),
            ));
        }
    }
}

/// A canonical text of an HTTP match without its name (Istio compares matches as JSON with
/// the name cleared).
fn match_key(m: &HttpMatch) -> String {
    let text = |matcher: &Option<crate::mesh::StringMatcher>| {
        matcher.as_ref().map(|m| m.describe()).unwrap_or_default()
    };
    let pairs = |list: &[(String, crate::mesh::StringMatcher)]| {
        list.iter()
            .map(|(k, v)| format!("{k}={}", v.describe()))
            .collect::<Vec<_>>()
            .join("&")
    };
    format!(
        "uri={}|scheme={}|method={}|authority={}|headers={}|without={}|query={}|icase={}|port={:?}|labels={:?}|ns={:?}|gw={:?}",
        text(&m.uri),
        text(&m.scheme),
        text(&m.method),
        text(&m.authority),
        pairs(&m.headers),
        pairs(&m.without_headers),
        pairs(&m.query_params),
        m.ignore_uri_case,
        m.port,
        m.source_labels,
        m.source_namespace,
        m.gateways,
    )
}

/// The key of a match without its uri and method, for the prefix-overlap check.
fn rest_key(m: &HttpMatch) -> String {
    let mut rest = m.clone();
    rest.uri = None;
    rest.method = None;
    match_key(&rest)
}

/// Whether `earlier` catches every request `later` would: both match by uri prefix, the later
/// prefix extends the earlier one, the earlier method is unset or the same, and every other
/// condition is identical.
fn overlaps_prefix(earlier: &HttpMatch, later: &HttpMatch) -> bool {
    use crate::mesh::StringMatcher::Prefix;
    let (Some(Prefix(first)), Some(Prefix(second))) = (&earlier.uri, &later.uri) else {
        return false;
    };
    let method_covers = match (&earlier.method, &later.method) {
        (None, _) => true,
        (Some(a), Some(b)) => a.describe() == b.describe(),
        (Some(_), None) => false,
    };
    second.starts_with(first.as_str())
        && earlier.ignore_uri_case == later.ignore_uri_case
        && method_covers
        && rest_key(earlier) == rest_key(later)
}

fn rule_name(name: Option<&str>, index: usize) -> String {
    match name {
        Some(name) if !name.is_empty() => format!("{name:?}"),
        _ => format!("#{index}"),
    }
}

/// IST0130 / IST0131 for the `http`, `tcp` and `tls` lists of every VirtualService.
pub(super) fn unreachable_rules(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for vs in mesh.virtual_services() {
        let spec = FieldPath::root().key("spec");
        let mut report = |path: FieldPath, code: &'static str, message: String| {
            findings.push(
                vs.meta
                    .finding(&path, Severity::Warning, Some(code), message),
            );
        };

        // HTTP: exact duplicates and misplaced catch-alls are reported by validation
        // (`validate::virtual_service`); here, prefix matches made ineffective by an earlier,
        // shorter prefix with the same other conditions.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut earlier: Vec<(usize, &HttpMatch)> = Vec::new();
        for (i, rule) in vs.http.iter().enumerate() {
            let at = spec.key("http").index(i);
            let name = rule_name(rule.name.as_deref(), i);
            for (j, m) in rule.matches.iter().enumerate() {
                let key = match_key(m);
                if seen.contains_key(&key) {
                    continue;
                }
                if let Some((first, _)) = earlier.iter().find(|(_, e)| overlaps_prefix(e, m)) {
                    report(
                        at.key("match").index(j),
                        INEFFECTIVE_MATCH,
                        format!(
                            "VirtualService rule {name} match #{j} not used (overlapped by a shorter prefix in rule {})",
                            rule_name(vs.http[*first].name.as_deref(), *first)
                        ),
                    );
                }
                seen.insert(key, i);
                earlier.push((i, m));
            }
        }

        // TCP and TLS: exact duplicates only.
        let tcp: Vec<Vec<String>> = vs
            .tcp
            .iter()
            .map(|r| r.matches.iter().map(|m| format!("{m:?}")).collect())
            .collect();
        let tls: Vec<Vec<String>> = vs
            .tls
            .iter()
            .map(|r| r.matches.iter().map(|m| format!("{m:?}")).collect())
            .collect();
        for (list, rules) in [("tcp", tcp), ("tls", tls)] {
            let mut seen: HashMap<&String, usize> = HashMap::new();
            let mut catch_all = false;
            for (i, matches) in rules.iter().enumerate() {
                let at = spec.key(list).index(i);
                if matches.is_empty() {
                    if catch_all {
                        report(
                            at,
                            UNREACHABLE_RULE,
                            format!(
                                "{list} rule #{i} not used (only the last rule can have no matches)"
                            ),
                        );
                    }
                    catch_all = true;
                    continue;
                }
                let mut duplicates = 0;
                for (j, key) in matches.iter().enumerate() {
                    if let Some(first) = seen.get(key) {
                        duplicates += 1;
                        report(
                            at.key("match").index(j),
                            INEFFECTIVE_MATCH,
                            format!(
                                "{list} rule #{i} match #{j} not used (duplicate match in rule #{first})"
                            ),
                        );
                    } else {
                        seen.insert(key, i);
                    }
                }
                if duplicates == matches.len() {
                    report(
                        at,
                        UNREACHABLE_RULE,
                        format!("{list} rule #{i} not used (all matches used by prior rules)"),
                    );
                }
            }
        }
    }
}
