//! Security analyzers of `weft check` (istio-model.md §9): DestinationRule TLS origination
//! without server verification — mode SIMPLE or MUTUAL without `caCertificates` — at the
//! destination level (IST0128) or in a `portLevelSettings` entry (IST0129). A
//! `credentialName` supplies the CA only for a DestinationRule with a `workloadSelector`
//! (sidecars read secrets only then), so it silences the warning only there; an explicit
//! `insecureSkipVerify: true` is a deliberate choice and is not reported.

use crate::finding::{Finding, Severity};
use crate::mesh::{DestinationRule, Mesh};
use crate::model::{ClientTlsSettings, TlsMode};
use crate::path::FieldPath;

const DESTINATION_LEVEL: &str = "IST0128";
const PORT_LEVEL: &str = "IST0129";

/// The TLS mode name when `tls` originates TLS without verifying the server.
fn unverified(tls: &ClientTlsSettings, rule: &DestinationRule) -> Option<&'static str> {
    let mode = match tls.mode? {
        TlsMode::Simple => "SIMPLE",
        TlsMode::Mutual => "MUTUAL",
        TlsMode::Disable | TlsMode::IstioMutual => return None,
    };
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let credential = set(&tls.credential_name) && rule.workload_selector.is_some();
    let verified =
        set(&tls.ca_certificates) || credential || tls.insecure_skip_verify == Some(true);
    (!verified).then_some(mode)
}

/// IST0128 / IST0129 for every DestinationRule.
pub(crate) fn destination_rule_tls(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for rule in mesh.destination_rules() {
        let Some(policy) = &rule.traffic_policy else {
            continue;
        };
        let at = FieldPath::root().key("spec").key("trafficPolicy");
        if let Some(mode) = policy.tls.as_ref().and_then(|tls| unverified(tls, rule)) {
            findings.push(rule.meta.finding(
                &at.key("tls").key("mode"),
                Severity::Warning,
                Some(DESTINATION_LEVEL),
                format!(
                    "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {}",
                    rule.meta.name, rule.meta.namespace, rule.host
                ),
            ));
        }
        for (i, port) in policy.port_level_settings.iter().enumerate() {
            let Some(mode) = port.tls.as_ref().and_then(|tls| unverified(tls, rule)) else {
                continue;
            };
            let number = port.port.as_ref().map_or(0, |p| p.number);
            findings.push(rule.meta.finding(
                &at.key("portLevelSettings").index(i).key("tls").key("mode"),
                Severity::Warning,
                Some(PORT_LEVEL),
                format!(
                    "DestinationRule {} in namespace {} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {} at port {number}",
                    rule.meta.name, rule.meta.namespace, rule.host
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::mesh::Mesh;

    fn codes(file: &str) -> Vec<&'static str> {
        // The repository's copy of Istio's corpus (tests/conformance/istio).
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/conformance/istio/invalid/pkg/config/analysis/analyzers/testdata")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("analyzer fixture");
        let report = Mesh::check_str_sources(&[(file, &text)]);
        let mut codes: Vec<&'static str> = report
            .findings()
            .iter()
            .filter_map(|f| f.code)
            .filter(|c| *c == "IST0128" || *c == "IST0129")
            .collect();
        codes.sort_unstable();
        codes
    }

    /// The expectations of Istio's analyzer tests for these fixtures (SOURCES.md).
    #[test]
    fn istio_analyzer_fixtures() {
        let cases: [(&str, &[&str]); 10] = [
            (
                "destinationrule-compound-mutual-simple.yaml",
                &["IST0128", "IST0129"],
            ),
            (
                "destinationrule-compound-simple-mutual.yaml",
                &["IST0128", "IST0129"],
            ),
            ("destinationrule-mutual-destination.yaml", &["IST0128"]),
            ("destinationrule-mutual-port.yaml", &["IST0129"]),
            (
                "destinationrule-simple-destination-credentialname-selector.yaml",
                &[],
            ),
            (
                "destinationrule-simple-destination-credentialname.yaml",
                &["IST0128"],
            ),
            ("destinationrule-simple-destination.yaml", &["IST0128"]),
            (
                "destinationrule-simple-port-credentialname-selector.yaml",
                &[],
            ),
            (
                "destinationrule-simple-port-credentialname.yaml",
                &["IST0129"],
            ),
            ("destinationrule-with-ca.yaml", &[]),
        ];
        for (file, expected) in cases {
            assert_eq!(codes(file), expected, "{file}");
        }
        assert_eq!(codes("destinationrule-simple-port.yaml"), ["IST0129"]);
    }
}
