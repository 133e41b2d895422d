//! `security.istio.io` wire types (`v1beta1` and `v1` share one schema): PeerAuthentication,
//! AuthorizationPolicy and RequestAuthentication (`api: security/v1beta1/*.proto`).
//! Enumerations are kept as strings so that validation can answer with Istio's wording
//! (`Unsupported value: "BLAH"`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{LabelSelector, null_default};
use crate::duration;

/// The API group of the security kinds.
pub const SECURITY_GROUP: &str = "security.istio.io";

/// The `security.istio.io` versions weft accepts (same schema).
pub const SECURITY_VERSIONS: [&str; 2] = ["v1beta1", "v1"];

/// `PolicyTargetReference` (`targetRef` / `targetRefs[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// API group (`""` core, `gateway.networking.k8s.io`, `networking.istio.io`).
    pub group: Option<String>,
    /// `Service`, `ServiceEntry`, `Gateway`, `GatewayClass`.
    pub kind: Option<String>,
    /// Name of the target.
    pub name: Option<String>,
    /// Namespace; must be the policy's own (cross-namespace references are refused).
    pub namespace: Option<String>,
}

/// `PeerAuthentication.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    /// Workloads in the policy's namespace; none ⇒ namespace-wide (mesh-wide in the root
    /// namespace).
    pub selector: Option<LabelSelector>,
    /// Workload-level mode.
    pub mtls: Option<PeerMtls>,
    /// Per workload port (`"8080": {mode: STRICT}`); keys must be port numbers.
    pub port_level_mtls: Option<BTreeMap<PortKey, Option<PeerMtls>>>,
}

/// `PeerAuthentication.MutualTLS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerMtls {
    /// `UNSET`, `DISABLE`, `PERMISSIVE`, `STRICT`.
    pub mode: Option<String>,
}

/// `AuthorizationPolicy.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// Workload selector.
    pub selector: Option<LabelSelector>,
    /// Deprecated single target reference.
    pub target_ref: Option<PolicyTargetReference>,
    /// Target references (waypoints, gateways).
    #[serde(default, deserialize_with = "null_default")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// `None` means "no rules" (deny-all for ALLOW); `[{}]` matches everything.
    pub rules: Option<Vec<Option<AuthzRule>>>,
    /// `ALLOW` (default), `DENY`, `AUDIT`, `CUSTOM`.
    pub action: Option<String>,
    /// The extension provider of a CUSTOM policy.
    pub provider: Option<ExtensionProvider>,
}

/// `AuthorizationPolicy.ExtensionProvider`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    /// Name of a `meshConfig.extensionProviders` entry.
    pub name: Option<String>,
}

/// `Rule`: `from` AND `to` AND `when`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzRule {
    /// Sources (ORed).
    pub from: Option<Vec<Option<RuleFrom>>>,
    /// Operations (ORed).
    pub to: Option<Vec<Option<RuleTo>>>,
    /// Conditions (ANDed).
    pub when: Option<Vec<Option<AuthzCondition>>>,
}

/// `Rule.From`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleFrom {
    /// The source.
    pub source: Option<AuthzSource>,
}

/// `Rule.To`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleTo {
    /// The operation.
    pub operation: Option<AuthzOperation>,
}

/// `Source`: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AuthzSource {
    pub principals: Option<Vec<String>>,
    pub not_principals: Option<Vec<String>>,
    pub request_principals: Option<Vec<String>>,
    pub not_request_principals: Option<Vec<String>>,
    pub namespaces: Option<Vec<String>>,
    pub not_namespaces: Option<Vec<String>>,
    pub service_accounts: Option<Vec<String>>,
    pub not_service_accounts: Option<Vec<String>>,
    pub ip_blocks: Option<Vec<String>>,
    pub not_ip_blocks: Option<Vec<String>>,
    pub remote_ip_blocks: Option<Vec<String>>,
    pub not_remote_ip_blocks: Option<Vec<String>>,
    pub trust_domains: Option<Vec<String>>,
    pub not_trust_domains: Option<Vec<String>>,
}

/// `Operation`: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AuthzOperation {
    pub hosts: Option<Vec<String>>,
    pub not_hosts: Option<Vec<String>>,
    pub ports: Option<Vec<String>>,
    pub not_ports: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub not_methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub not_paths: Option<Vec<String>>,
}

/// `Condition`: `key` with `values` and/or `notValues`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzCondition {
    /// Attribute name (`request.headers[x]`, `source.ip`, ...).
    #[serde(default)]
    pub key: String,
    /// Any of these.
    pub values: Option<Vec<String>>,
    /// None of these.
    pub not_values: Option<Vec<String>>,
}

/// `RequestAuthentication.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestAuthenticationSpec {
    /// Workload selector.
    pub selector: Option<LabelSelector>,
    /// Deprecated single target reference.
    pub target_ref: Option<PolicyTargetReference>,
    /// Target references.
    #[serde(default, deserialize_with = "null_default")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// JWT providers.
    #[serde(default, deserialize_with = "null_default")]
    pub jwt_rules: Vec<Option<JwtRule>>,
}

/// `JWTRule`: one token issuer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtRule {
    /// Expected `iss`.
    #[serde(default)]
    pub issuer: String,
    /// Accepted `aud` values (empty: not checked).
    #[serde(default, deserialize_with = "null_default")]
    pub audiences: Vec<String>,
    /// URL of the JWKS.
    pub jwks_uri: Option<String>,
    /// Inline JWKS (JSON text).
    pub jwks: Option<String>,
    /// Header locations.
    #[serde(default, deserialize_with = "null_default")]
    pub from_headers: Vec<Option<JwtHeader>>,
    /// Query parameter locations.
    #[serde(default, deserialize_with = "null_default")]
    pub from_params: Vec<String>,
    /// Cookie locations.
    #[serde(default, deserialize_with = "null_default")]
    pub from_cookies: Vec<String>,
    /// Header receiving the base64url payload.
    pub output_payload_to_header: Option<String>,
    /// Claims copied into headers.
    #[serde(default, deserialize_with = "null_default")]
    pub output_claim_to_headers: Vec<Option<ClaimToHeader>>,
    /// Keep the token in the forwarded request (default false).
    pub forward_original_token: Option<bool>,
    /// Claims whose string values are space-separated lists.
    #[serde(default, deserialize_with = "null_default")]
    pub space_delimited_claims: Vec<String>,
    /// JWKS fetch timeout (default 5s).
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
    /// Newer API: `OPTIONAL` / `REQUIRED` (validated, not enforced yet).
    pub presence: Option<String>,
}

/// `JWTHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtHeader {
    /// Header name.
    pub name: Option<String>,
    /// Prefix to strip (must be present).
    pub prefix: Option<String>,
}

/// `ClaimToHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    /// Header name.
    #[serde(default)]
    pub header: String,
    /// Claim path, nested with `.`.
    #[serde(default)]
    pub claim: String,
}

/// A `portLevelMtls` key: YAML writes it as a string (`"8080"`) or an integer (`8080:`); kept
/// as text so validation can report non-numeric keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortKey(pub String);

impl std::ops::Deref for PortKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PortKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = PortKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a port number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortKey, E> {
                Ok(PortKey(v.to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}
