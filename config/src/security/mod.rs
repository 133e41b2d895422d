//! `security.istio.io`: the checked PeerAuthentication, AuthorizationPolicy and
//! RequestAuthentication objects, and [`SecurityPolicy`], what applies to one workload
//! (istio-model.md §5–7): the effective mTLS mode per port, the authorization policies in
//! evaluation order, and the JWT providers. Compiled alongside the [`crate::Snapshot`] (it is
//! part of it), so a config reload swaps both at once.

pub(crate) mod analyze;
pub mod authz;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde_json::{Value, json};

use crate::mesh::{Meta, ROOT_NAMESPACE};
use crate::snapshot::ObjectRef;

pub use authz::{AuthzRequest, HttpAttributes, JwtAuth, RuleMatch, normalize_path};

/// Annotation that puts an AuthorizationPolicy in shadow mode.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// PeerAuthentication `mtls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MtlsMode {
    /// Inherit from the parent level (PERMISSIVE at the top).
    Unset,
    /// Plaintext only.
    Disable,
    /// Plaintext and mTLS on the same port.
    Permissive,
    /// mTLS with a client certificate required.
    Strict,
}

impl MtlsMode {
    /// Parses Istio's enum name.
    pub fn parse(mode: &str) -> Option<MtlsMode> {
        Some(match mode {
            "UNSET" | "" => MtlsMode::Unset,
            "DISABLE" => MtlsMode::Disable,
            "PERMISSIVE" => MtlsMode::Permissive,
            "STRICT" => MtlsMode::Strict,
            _ => return None,
        })
    }

    /// Istio's enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Disable => "DISABLE",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        }
    }
}

/// A checked PeerAuthentication.
#[derive(Debug, Clone)]
pub struct PeerAuthentication {
    /// Metadata and source.
    pub meta: Meta,
    /// `selector.matchLabels`; `None` (or empty) ⇒ namespace-wide.
    pub selector: Option<BTreeMap<String, String>>,
    /// Workload-level mode.
    pub mode: MtlsMode,
    /// Per workload port.
    pub port_level: BTreeMap<u16, MtlsMode>,
}

/// AuthorizationPolicy `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthzAction {
    /// Allow matching requests (default).
    Allow,
    /// Deny matching requests.
    Deny,
    /// Mark matching requests for audit.
    Audit,
    /// Delegate to an extension provider.
    Custom,
}

impl AuthzAction {
    /// Parses Istio's enum name (absent ⇒ ALLOW).
    pub fn parse(action: &str) -> Option<AuthzAction> {
        Some(match action {
            "" | "ALLOW" => AuthzAction::Allow,
            "DENY" => AuthzAction::Deny,
            "AUDIT" => AuthzAction::Audit,
            "CUSTOM" => AuthzAction::Custom,
            _ => return None,
        })
    }

    /// Istio's enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthzAction::Allow => "ALLOW",
            AuthzAction::Deny => "DENY",
            AuthzAction::Audit => "AUDIT",
            AuthzAction::Custom => "CUSTOM",
        }
    }
}

/// A checked AuthorizationPolicy.
#[derive(Debug, Clone)]
pub struct AuthorizationPolicy {
    /// Metadata and source.
    pub meta: Meta,
    /// Workload selector.
    pub selector: Option<BTreeMap<String, String>>,
    /// Whether `targetRef(s)` is set (such policies bind gateways/waypoints, not sidecars).
    pub has_target_refs: bool,
    /// The action.
    pub action: AuthzAction,
    /// CUSTOM provider name.
    pub provider: Option<String>,
    /// Compiled rules; empty ⇒ matches nothing.
    pub rules: Vec<RuleMatch>,
    /// `istio.io/dry-run: "true"`.
    pub dry_run: bool,
}

/// Where a JWT is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// A header; the prefix must be present and is stripped.
    Header {
        /// Header name (lowercase).
        name: HeaderName,
        /// Prefix (`Bearer `).
        prefix: String,
    },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// Where a provider's JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Inline JSON.
    Inline(String),
    /// Fetched from a URL.
    Uri(String),
    /// Neither: OIDC discovery from the issuer (not supported by weft: tokens fail with 401).
    Discovery,
}

/// One checked `jwtRules` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtProvider {
    /// The RequestAuthentication it comes from.
    pub source: ObjectRef,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences (empty: not checked).
    pub audiences: Vec<String>,
    /// Key set source.
    pub jwks: JwksSource,
    /// Token locations (defaults applied: `Authorization: Bearer`, `access_token`).
    pub locations: Vec<TokenLocation>,
    /// Keep the token upstream.
    pub forward_original_token: bool,
    /// Header receiving the payload segment.
    pub output_payload_to_header: Option<HeaderName>,
    /// `(header, claim path)`.
    pub output_claim_to_headers: Vec<(HeaderName, Vec<String>)>,
    /// JWKS fetch timeout.
    pub timeout: Duration,
    /// Space-delimited claims (with `scope` and `permission`).
    pub space_delimited_claims: Vec<String>,
}

/// The default JWKS fetch timeout (§7).
pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// A checked RequestAuthentication.
#[derive(Debug, Clone)]
pub struct RequestAuthentication {
    /// Metadata and source.
    pub meta: Meta,
    /// Workload selector.
    pub selector: Option<BTreeMap<String, String>>,
    /// Whether `targetRef(s)` is set.
    pub has_target_refs: bool,
    /// Providers.
    pub providers: Vec<JwtProvider>,
}

/// A compiled authorization policy as the workload evaluates it.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// `namespace/name`.
    pub name: ObjectRef,
    /// The action.
    pub action: AuthzAction,
    /// Rules.
    pub rules: Vec<RuleMatch>,
    /// Shadow mode.
    pub dry_run: bool,
}

impl CompiledPolicy {
    /// Whether any rule matches.
    pub fn matches(&self, request: &AuthzRequest<'_>) -> bool {
        let lenient = self.action != AuthzAction::Allow;
        self.rules.iter().any(|rule| rule.matches(request, lenient))
    }
}

/// The authorization outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy that decided (the matching DENY/CUSTOM, the matching ALLOW), if any.
    pub policy: Option<ObjectRef>,
    /// A matching AUDIT policy.
    pub audit: bool,
    /// What the dry-run policies would have decided (`None`: there are none).
    pub shadow_allowed: Option<bool>,
}

/// The effective PeerAuthentication of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Workload-level mode (never `Unset`).
    pub mode: MtlsMode,
    /// Port-level modes (never `Unset`).
    pub ports: BTreeMap<u16, MtlsMode>,
    /// The policies that contributed, mesh first.
    pub sources: Vec<ObjectRef>,
}

impl PeerPolicy {
    /// The mode on a workload port.
    pub fn mode_for_port(&self, port: u16) -> MtlsMode {
        self.ports.get(&port).copied().unwrap_or(self.mode)
    }
}

/// Everything security-related that applies to one workload.
#[derive(Debug, Clone)]
pub struct SecurityPolicy {
    /// Effective PeerAuthentication.
    pub peer: PeerPolicy,
    /// AuthorizationPolicies selecting the workload, enforced ones by action.
    pub custom: Vec<CompiledPolicy>,
    /// DENY policies.
    pub deny: Vec<CompiledPolicy>,
    /// ALLOW policies.
    pub allow: Vec<CompiledPolicy>,
    /// AUDIT policies.
    pub audit: Vec<CompiledPolicy>,
    /// Dry-run policies (any action).
    pub dry_run: Vec<CompiledPolicy>,
    /// JWT providers of every RequestAuthentication selecting the workload (unioned).
    pub jwt: Vec<JwtProvider>,
    /// Every PeerAuthentication of the mesh: clients compute the server side's mode for
    /// auto mTLS (§2.7: server DISABLE ⇒ plaintext).
    peer_authentications: Arc<[PeerAuthentication]>,
}

fn selects(selector: &Option<BTreeMap<String, String>>, labels: &BTreeMap<String, String>) -> bool {
    match selector {
        None => true,
        Some(selector) => selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
    }
}

/// Whether a selector-or-namespace scoped policy of `meta`'s namespace applies to a workload
/// (§6.1, §7): same namespace, or the root namespace (mesh-wide, selector matched against
/// workloads of every namespace).
fn in_scope(
    meta: &Meta,
    selector: &Option<BTreeMap<String, String>>,
    has_target_refs: bool,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    !has_target_refs
        && (meta.namespace == namespace || meta.namespace == ROOT_NAMESPACE)
        && selects(selector, labels)
}

/// Istio's `ComposePeerAuthentication` (§5): mesh (root namespace, no selector) → namespace
/// (no selector) → workload (selector, not in the root namespace, §5.4); the oldest policy
/// wins at each level (§5.3); UNSET inherits; port-level modes come from the workload policy
/// only, UNSET there inheriting the workload-level result.
pub fn compose_peer_authentication(
    policies: &[PeerAuthentication],
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> PeerPolicy {
    // `policies` is in Istio's precedence order (oldest first).
    let mesh = policies
        .iter()
        .find(|p| p.meta.namespace == ROOT_NAMESPACE && p.selector.is_none());
    let namespace_level = policies
        .iter()
        .find(|p| p.meta.namespace == namespace && p.selector.is_none());
    let workload = policies.iter().find(|p| {
        p.meta.namespace == namespace
            && p.meta.namespace != ROOT_NAMESPACE
            && p.selector
                .as_ref()
                .is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    });
    let mut mode = MtlsMode::Permissive;
    let mut sources = Vec::new();
    let mut seen = Vec::new();
    for policy in [mesh, namespace_level, workload].into_iter().flatten() {
        if seen.contains(&(&policy.meta.namespace, &policy.meta.name)) {
            continue;
        }
        seen.push((&policy.meta.namespace, &policy.meta.name));
        sources.push(ObjectRef::of(&policy.meta));
        if policy.mode != MtlsMode::Unset {
            mode = policy.mode;
        }
    }
    let ports = workload
        .map(|policy| {
            policy
                .port_level
                .iter()
                .map(|(port, port_mode)| {
                    let effective = if *port_mode == MtlsMode::Unset {
                        mode
                    } else {
                        *port_mode
                    };
                    (*port, effective)
                })
                .collect()
        })
        .unwrap_or_default();
    PeerPolicy {
        mode,
        ports,
        sources,
    }
}

impl SecurityPolicy {
    /// Compiles the security config of `mesh` for the workload in `namespace` with `labels`.
    pub fn compile(
        mesh: &crate::Mesh,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> SecurityPolicy {
        let peer_authentications: Arc<[PeerAuthentication]> =
            Arc::from(mesh.peer_authentications.clone());
        let peer = compose_peer_authentication(&peer_authentications, namespace, labels);
        let mut policy = SecurityPolicy {
            peer,
            custom: Vec::new(),
            deny: Vec::new(),
            allow: Vec::new(),
            audit: Vec::new(),
            dry_run: Vec::new(),
            jwt: Vec::new(),
            peer_authentications,
        };
        for ap in mesh.authorization_policies.iter().filter(|ap| {
            in_scope(
                &ap.meta,
                &ap.selector,
                ap.has_target_refs,
                namespace,
                labels,
            )
        }) {
            let compiled = CompiledPolicy {
                name: ObjectRef::of(&ap.meta),
                action: ap.action,
                rules: ap.rules.clone(),
                dry_run: ap.dry_run,
            };
            let list = if ap.dry_run {
                &mut policy.dry_run
            } else {
                match ap.action {
                    AuthzAction::Allow => &mut policy.allow,
                    AuthzAction::Deny => &mut policy.deny,
                    AuthzAction::Audit => &mut policy.audit,
                    AuthzAction::Custom => &mut policy.custom,
                }
            };
            list.push(compiled);
        }
        for ra in mesh.request_authentications.iter().filter(|ra| {
            in_scope(
                &ra.meta,
                &ra.selector,
                ra.has_target_refs,
                namespace,
                labels,
            )
        }) {
            policy.jwt.extend(ra.providers.iter().cloned());
        }
        policy
    }

    /// A policy that enforces nothing (PERMISSIVE, no authorization, no JWT).
    pub fn permissive() -> SecurityPolicy {
        SecurityPolicy {
            peer: PeerPolicy {
                mode: MtlsMode::Permissive,
                ports: BTreeMap::new(),
                sources: Vec::new(),
            },
            custom: Vec::new(),
            deny: Vec::new(),
            allow: Vec::new(),
            audit: Vec::new(),
            dry_run: Vec::new(),
            jwt: Vec::new(),
            peer_authentications: Arc::from(Vec::new()),
        }
    }

    /// The mTLS mode of another workload's port (auto mTLS on the client side).
    pub fn server_mode(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        port: u16,
    ) -> MtlsMode {
        compose_peer_authentication(&self.peer_authentications, namespace, labels)
            .mode_for_port(port)
    }

    /// Whether any AuthorizationPolicy applies (the proxy skips evaluation otherwise).
    pub fn has_authorization(&self) -> bool {
        !(self.custom.is_empty()
            && self.deny.is_empty()
            && self.allow.is_empty()
            && self.audit.is_empty()
            && self.dry_run.is_empty())
    }

    /// Evaluates the enforced policies (§6.2) and, separately, the dry-run ones.
    pub fn evaluate(&self, request: &AuthzRequest<'_>) -> AuthzDecision {
        let audit = self.audit.iter().any(|p| p.matches(request));
        let shadow_allowed = (!self.dry_run.is_empty()).then(|| {
            let denied = self
                .dry_run
                .iter()
                .filter(|p| p.action != AuthzAction::Allow && p.action != AuthzAction::Audit)
                .any(|p| p.matches(request));
            let allows: Vec<_> = self
                .dry_run
                .iter()
                .filter(|p| p.action == AuthzAction::Allow)
                .collect();
            !denied && (allows.is_empty() || allows.iter().any(|p| p.matches(request)))
        });
        let decision = |allowed, policy: Option<&CompiledPolicy>| AuthzDecision {
            allowed,
            policy: policy.map(|p| p.name.clone()),
            audit,
            shadow_allowed,
        };
        // §6.2: CUSTOM → DENY → ALLOW. weft has no extension providers, so a CUSTOM policy
        // fails closed: matching requests are denied, as Istio does for a CUSTOM policy whose
        // provider is not defined (builder golden `custom-bad-out.yaml`).
        if let Some(p) = self.custom.iter().find(|p| p.matches(request)) {
            return decision(false, Some(p));
        }
        if let Some(p) = self.deny.iter().find(|p| p.matches(request)) {
            return decision(false, Some(p));
        }
        if self.allow.is_empty() {
            return decision(true, None);
        }
        match self.allow.iter().find(|p| p.matches(request)) {
            Some(p) => decision(true, Some(p)),
            None => decision(false, None),
        }
    }

    /// A JSON summary for `/config_dump`.
    pub fn dump(&self) -> Value {
        let names =
            |list: &[CompiledPolicy]| list.iter().map(|p| p.name.to_string()).collect::<Vec<_>>();
        json!({
            "peerAuthentication": {
                "mode": self.peer.mode.as_str(),
                "ports": self.peer.ports.iter().map(|(p, m)| (p.to_string(), m.as_str())).collect::<BTreeMap<_, _>>(),
                "sources": self.peer.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
            },
            "authorization": {
                "custom": names(&self.custom),
                "deny": names(&self.deny),
                "allow": names(&self.allow),
                "audit": names(&self.audit),
                "dryRun": names(&self.dry_run),
            },
            "jwt": self.jwt.iter().map(|p| json!({
                "issuer": p.issuer,
                "from": p.source.to_string(),
                "audiences": p.audiences,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests;
