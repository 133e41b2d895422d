use std::collections::BTreeMap;

use super::*;
use crate::Mesh;

fn mesh(yaml: &str) -> Mesh {
    Mesh::from_str_sources(&[("test.yaml", yaml)])
        .expect("valid")
        .0
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

#[test]
fn root_namespace_selector_peer_authentication_is_ignored() {
    // istio-model.md §5.4.
    let mesh = mesh(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: p\n  namespace: istio-system\nspec:\n  selector:\n    matchLabels:\n      app: web\n  mtls:\n    mode: STRICT\n",
    );
    let policy = SecurityPolicy::compile(&mesh, "default", &labels("web"));
    assert_eq!(policy.peer.mode, MtlsMode::Permissive);
}

#[test]
fn oldest_policy_wins_within_a_level() {
    let mesh = mesh(
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: b\n  namespace: ns\n  creationTimestamp: \"2020-01-01T00:00:00Z\"\nspec:\n  mtls:\n    mode: STRICT\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\n  namespace: ns\n  creationTimestamp: \"2021-01-01T00:00:00Z\"\nspec:\n  mtls:\n    mode: DISABLE\n",
    );
    let policy = SecurityPolicy::compile(&mesh, "ns", &labels("x"));
    assert_eq!(policy.peer.mode, MtlsMode::Strict);
}

#[test]
fn scope_of_authorization_and_request_authentication() {
    let mesh = mesh(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: mesh\n  namespace: istio-system\nspec:\n  selector:\n    matchLabels:\n      app: web\n  rules:\n  - {}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: gw\n  namespace: ns\nspec:\n  targetRefs:\n  - kind: Gateway\n    group: gateway.networking.k8s.io\n    name: g\n---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata:\n  name: jwt\n  namespace: ns\nspec:\n  jwtRules:\n  - issuer: me\n    fromParams: [t]\n",
    );
    let web = SecurityPolicy::compile(&mesh, "ns", &labels("web"));
    assert_eq!(
        web.allow.len(),
        1,
        "root-namespace selector matches every namespace"
    );
    let other = SecurityPolicy::compile(&mesh, "ns", &labels("other"));
    assert!(
        other.allow.is_empty(),
        "targetRefs policies bind gateways, not sidecars"
    );
    assert_eq!(other.jwt.len(), 1);
    assert_eq!(
        other.jwt[0].locations,
        vec![TokenLocation::Param("t".into())]
    );
}

#[test]
fn custom_without_provider_and_deny_without_rules_are_errors() {
    let report = Mesh::check_str_sources(&[(
        "t.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: c\nspec:\n  action: CUSTOM\n  rules:\n  - {}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: d\nspec:\n  action: DENY\n",
    )]);
    let errors: Vec<String> = report.errors().map(|f| f.message.clone()).collect();
    assert!(
        errors
            .iter()
            .any(|m| m.contains("CUSTOM action requires provider.name")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|m| m.contains("DENY action without `rules`")),
        "{errors:?}"
    );
}
