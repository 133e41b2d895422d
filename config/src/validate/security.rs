//! `security.istio.io` rules (`istio: pkg/config/validation/validation.go
//! ValidateAuthorizationPolicy`, `ValidatePeerAuthentication`, `ValidateRequestAuthentication`
//! and the CRDs' CEL rules whose messages `invalid/.../crds/*-invalid.yaml` quote).

use std::collections::BTreeMap;

use http::HeaderName;

use crate::mesh::{Meta, ROOT_NAMESPACE};
use crate::model::{self, LabelSelector, PolicyTargetReference};
use crate::path::FieldPath;
use crate::security::authz::{
    Cidr, ConditionKey, ConditionMatch, ConditionValue, Either, OperationMatch, PathPattern,
    Pattern, RuleMatch, SourceMatch,
};
use crate::security::{
    AuthorizationPolicy, AuthzAction, DEFAULT_JWKS_TIMEOUT, DRY_RUN_ANNOTATION, JwksSource,
    JwtProvider, MtlsMode, PeerAuthentication, RequestAuthentication, TokenLocation,
};
use crate::snapshot::ObjectRef;

use super::{Invalid, Problems, names};

fn selector_labels(
    selector: &Option<LabelSelector>,
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<BTreeMap<String, String>> {
    let selector = selector.as_ref()?;
    problems.labels(&path.key("matchLabels"), &selector.match_labels);
    for (key, value) in &selector.match_labels {
        if key.contains('*') || value.contains('*') {
            problems.rule(
                &path.key("matchLabels").key(key.as_str()),
                format!("wildcard is not supported in selector: \"{key}={value}\""),
            );
        }
    }
    (!selector.match_labels.is_empty()).then(|| selector.match_labels.clone())
}

/// `targetRef` / `targetRefs` (CEL rules of the CRDs). Returns whether any is set.
fn target_refs(
    meta: &Meta,
    selector: &Option<LabelSelector>,
    target_ref: &Option<PolicyTargetReference>,
    refs: &[PolicyTargetReference],
    path: &FieldPath,
    problems: &mut Problems,
) -> bool {
    let set = target_ref.is_some() || !refs.is_empty();
    if (selector.is_some() && set) || (target_ref.is_some() && !refs.is_empty()) {
        problems.rule(path, "only one of targetRefs or selector can be set");
    }
    let group_ok = |g: &str| {
        g.is_empty()
            || g.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    let kind_ok = |k: &str| {
        k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !k.ends_with('-')
    };
    let mut all: Vec<(FieldPath, &str, &PolicyTargetReference)> = Vec::new();
    if let Some(r) = target_ref {
        all.push((path.key("targetRef"), "spec.targetRef", r));
    }
    for (i, r) in refs.iter().enumerate() {
        all.push((path.key("targetRefs").index(i), "spec.targetRefs[]", r));
    }
    for (at, name, r) in all {
        if r.name.as_deref().unwrap_or("").is_empty() {
            problems.rule(&at.key("name"), format!("{name}.name: Required value"));
        }
        if !group_ok(r.group.as_deref().unwrap_or("")) {
            problems.rule(
                &at.key("group"),
                format!("{name}.group in body should match '^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'"),
            );
        }
        if !kind_ok(r.kind.as_deref().unwrap_or("")) {
            problems.rule(
                &at.key("kind"),
                format!("{name}.kind in body should match '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$'"),
            );
        }
        if let Some(ns) = &r.namespace
            && !ns.is_empty()
            && ns != &meta.namespace
        {
            problems.rule(
                &at.key("namespace"),
                "cross namespace referencing is not currently supported",
            );
        }
    }
    set
}

/// Validates a PeerAuthentication (§5).
pub(crate) fn peer_authentication(
    meta: Meta,
    spec: &model::PeerAuthenticationSpec,
    problems: &mut Problems,
) -> PeerAuthentication {
    let path = FieldPath::root().key("spec");
    let selector = selector_labels(&spec.selector, &path.key("selector"), problems);
    let mode_of = |mtls: &Option<model::PeerMtls>, at: &FieldPath, problems: &mut Problems| {
        let text = mtls
            .as_ref()
            .and_then(|m| m.mode.as_deref())
            .unwrap_or("UNSET");
        MtlsMode::parse(text).unwrap_or_else(|| {
            problems.rule(
                &at.key("mode"),
                format!(
                    "Unsupported value: {text:?}: supported values: \"UNSET\", \"DISABLE\", \"PERMISSIVE\", \"STRICT\""
                ),
            );
            MtlsMode::Unset
        })
    };
    let mode = mode_of(&spec.mtls, &path.key("mtls"), problems);
    let mut port_level = BTreeMap::new();
    if let Some(ports) = &spec.port_level_mtls {
        let at = path.key("portLevelMtls");
        if spec.selector.is_none() {
            problems.rule(&at, "portLevelMtls requires selector");
        }
        if ports.is_empty() {
            problems.rule(
                &at,
                "spec.portLevelMtls in body should have at least 1 properties",
            );
        }
        for (key, mtls) in ports {
            let here = at.key(&**key);
            match key.trim().parse::<u64>() {
                Err(_) => problems.rule(
                    &here,
                    format!("type conversion error from string to uint32 for port {key:?}"),
                ),
                Ok(port) if port == 0 || port > 65535 => {
                    problems.rule(&here, "port must be between 1-65535")
                }
                Ok(port) => {
                    let port_mode = mode_of(mtls, &here, problems);
                    if let Ok(port) = u16::try_from(port) {
                        port_level.insert(port, port_mode);
                    }
                }
            }
        }
    }
    if meta.namespace == ROOT_NAMESPACE && selector.is_some() {
        // istio-model.md §5.4: the code ignores selector policies in the root namespace.
        problems.warn(
            &path.key("selector"),
            Invalid::Rule(format!(
                "PeerAuthentication with a selector in the root namespace {ROOT_NAMESPACE} is ignored by Istio (selector policies apply only outside the root namespace)"
            )),
        );
    }
    PeerAuthentication {
        meta,
        selector,
        mode,
        port_level,
    }
}

fn non_empty_values(
    values: &Option<Vec<String>>,
    at: &FieldPath,
    problems: &mut Problems,
) -> Option<Vec<String>> {
    let values = values.as_ref()?;
    for (i, value) in values.iter().enumerate() {
        if value.is_empty() {
            problems.rule(&at.index(i), "empty value is not allowed");
        }
    }
    Some(values.clone())
}

fn patterns(
    any: &Option<Vec<String>>,
    none: &Option<Vec<String>>,
    at: &FieldPath,
    field: &str,
    not_field: &str,
    problems: &mut Problems,
) -> Either<Pattern> {
    let any = non_empty_values(any, &at.key(field), problems);
    let none = non_empty_values(none, &at.key(not_field), problems).unwrap_or_default();
    Either {
        any: any.map(|v| v.iter().map(|s| Pattern::parse(s)).collect()),
        none: none.iter().map(|s| Pattern::parse(s)).collect(),
    }
}

fn cidrs(
    any: &Option<Vec<String>>,
    none: &Option<Vec<String>>,
    at: &FieldPath,
    field: &str,
    not_field: &str,
    problems: &mut Problems,
) -> Either<Cidr> {
    let mut parse = |list: &Option<Vec<String>>, name: &str| -> Option<Vec<Cidr>> {
        let list = list.as_ref()?;
        let mut out = Vec::new();
        for (i, value) in list.iter().enumerate() {
            match Cidr::parse(value) {
                Some(c) => out.push(c),
                None => problems.rule(
                    &at.key(name).index(i),
                    format!("invalid IP address or CIDR range: {value:?}"),
                ),
            }
        }
        Some(out)
    };
    Either {
        any: parse(any, field),
        none: parse(none, not_field).unwrap_or_default(),
    }
}

fn ports(
    any: &Option<Vec<String>>,
    none: &Option<Vec<String>>,
    at: &FieldPath,
    problems: &mut Problems,
) -> Either<u16> {
    let mut parse = |list: &Option<Vec<String>>, name: &str| -> Option<Vec<u16>> {
        let list = list.as_ref()?;
        let mut out = Vec::new();
        for (i, value) in list.iter().enumerate() {
            match value.parse::<u32>() {
                Ok(port) if names::is_valid_port(port) => out.push(port as u16),
                _ => problems.rule(
                    &at.key(name).index(i),
                    format!("invalid port {value:?}: port must be in the range [0, 65535]"),
                ),
            }
        }
        Some(out)
    };
    Either {
        any: parse(any, "ports"),
        none: parse(none, "notPorts").unwrap_or_default(),
    }
}

fn source(
    source: &model::AuthzSource,
    policy_namespace: &str,
    at: &FieldPath,
    problems: &mut Problems,
) -> SourceMatch {
    if source.service_accounts.is_some()
        && (source.namespaces.is_some() || source.principals.is_some())
    {
        problems.rule(
            &at.key("serviceAccounts"),
            "Cannot set serviceAccounts with namespaces or principals",
        );
    }
    let accounts = |list: &Option<Vec<String>>, name: &str, problems: &mut Problems| {
        list.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, value)| {
                    if value.is_empty() || value.contains('*') || value.matches('/').count() > 1 {
                        problems.rule(
                            &at.key(name).index(i),
                            format!("invalid service account {value:?}: want NAMESPACE/NAME or NAME, no wildcards"),
                        );
                        return None;
                    }
                    Some(match value.split_once('/') {
                        Some((ns, sa)) => (ns.to_string(), sa.to_string()),
                        None => (policy_namespace.to_string(), value.clone()),
                    })
                })
                .collect::<Vec<_>>()
        })
    };
    SourceMatch {
        principals: patterns(
            &source.principals,
            &source.not_principals,
            at,
            "principals",
            "notPrincipals",
            problems,
        ),
        request_principals: patterns(
            &source.request_principals,
            &source.not_request_principals,
            at,
            "requestPrincipals",
            "notRequestPrincipals",
            problems,
        ),
        namespaces: patterns(
            &source.namespaces,
            &source.not_namespaces,
            at,
            "namespaces",
            "notNamespaces",
            problems,
        ),
        trust_domains: patterns(
            &source.trust_domains,
            &source.not_trust_domains,
            at,
            "trustDomains",
            "notTrustDomains",
            problems,
        ),
        service_accounts: Either {
            any: accounts(&source.service_accounts, "serviceAccounts", problems),
            none: accounts(&source.not_service_accounts, "notServiceAccounts", problems)
                .unwrap_or_default(),
        },
        ip_blocks: cidrs(
            &source.ip_blocks,
            &source.not_ip_blocks,
            at,
            "ipBlocks",
            "notIpBlocks",
            problems,
        ),
        remote_ip_blocks: cidrs(
            &source.remote_ip_blocks,
            &source.not_remote_ip_blocks,
            at,
            "remoteIpBlocks",
            "notRemoteIpBlocks",
            problems,
        ),
    }
}

fn operation(
    op: &model::AuthzOperation,
    at: &FieldPath,
    problems: &mut Problems,
) -> OperationMatch {
    let paths = |list: &Option<Vec<String>>, name: &str, problems: &mut Problems| {
        non_empty_values(list, &at.key(name), problems).map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    if p.contains('{') && (p.contains("{**}") && !template_ok(p)) {
                        problems.rule(
                            &at.key(name).index(i),
                            format!("invalid path template {p:?}: {{**}} may appear once"),
                        );
                    }
                    PathPattern::parse(p)
                })
                .collect::<Vec<_>>()
        })
    };
    OperationMatch {
        hosts: patterns(&op.hosts, &op.not_hosts, at, "hosts", "notHosts", problems),
        ports: ports(&op.ports, &op.not_ports, at, problems),
        methods: patterns(
            &op.methods,
            &op.not_methods,
            at,
            "methods",
            "notMethods",
            problems,
        ),
        paths: Either {
            any: paths(&op.paths, "paths", problems),
            none: paths(&op.not_paths, "notPaths", problems).unwrap_or_default(),
        },
    }
}

fn template_ok(path: &str) -> bool {
    path.matches("{**}").count() <= 1
}

fn condition(
    condition: &model::AuthzCondition,
    at: &FieldPath,
    problems: &mut Problems,
) -> Option<ConditionMatch> {
    if condition.key.is_empty() {
        problems.error(&at.key("key"), Invalid::Required("key"));
        return None;
    }
    let Some(key) = ConditionKey::parse(&condition.key) else {
        problems.rule(
            &at.key("key"),
            format!("unknown attribute ({})", condition.key),
        );
        return None;
    };
    if condition.values.as_ref().is_none_or(Vec::is_empty)
        && condition.not_values.as_ref().is_none_or(Vec::is_empty)
    {
        problems.rule(
            at,
            format!(
                "at least one of values or notValues must be set for key {}",
                condition.key
            ),
        );
    }
    let mut parse = |list: &Option<Vec<String>>, name: &str| -> Option<Vec<ConditionValue>> {
        let list = non_empty_values(list, &at.key(name), problems)?;
        let mut out = Vec::new();
        for (i, value) in list.iter().enumerate() {
            if key.is_ip() {
                match Cidr::parse(value) {
                    Some(c) => out.push(ConditionValue::Cidr(c)),
                    None => problems.rule(
                        &at.key(name).index(i),
                        format!("invalid IP address or CIDR range: {value:?}"),
                    ),
                }
            } else if key == ConditionKey::DestinationPort {
                match value.parse::<u32>() {
                    Ok(port) if names::is_valid_port(port) => {
                        out.push(ConditionValue::Port(port as u16))
                    }
                    _ => problems.rule(&at.key(name).index(i), format!("invalid port {value:?}")),
                }
            } else {
                out.push(ConditionValue::Pattern(Pattern::parse(value)));
            }
        }
        Some(out)
    };
    let any = parse(&condition.values, "values");
    let none = parse(&condition.not_values, "notValues").unwrap_or_default();
    Some(ConditionMatch {
        key,
        values: Either { any, none },
    })
}

fn rule(
    rule: &model::AuthzRule,
    policy_namespace: &str,
    at: &FieldPath,
    problems: &mut Problems,
) -> RuleMatch {
    let mut compiled = RuleMatch::default();
    if let Some(from) = &rule.from {
        if from.is_empty() {
            problems.rule(&at.key("from"), "`from` must not be empty");
        }
        for (i, entry) in from.iter().enumerate() {
            let here = at.key("from").index(i);
            match entry.as_ref().and_then(|f| f.source.as_ref()) {
                None => problems.rule(&here, "`from.source` must not be nil"),
                Some(s) if s == &model::AuthzSource::default() => {
                    problems.rule(&here.key("source"), "`from.source` must not be empty")
                }
                Some(s) => {
                    compiled
                        .from
                        .push(source(s, policy_namespace, &here.key("source"), problems))
                }
            }
        }
    }
    if let Some(to) = &rule.to {
        if to.is_empty() {
            problems.rule(&at.key("to"), "`to` must not be empty");
        }
        for (i, entry) in to.iter().enumerate() {
            let here = at.key("to").index(i);
            match entry.as_ref().and_then(|t| t.operation.as_ref()) {
                None => problems.rule(&here, "`to.operation` must not be nil"),
                Some(o) if o == &model::AuthzOperation::default() => {
                    problems.rule(&here.key("operation"), "`to.operation` must not be empty")
                }
                Some(o) => compiled
                    .to
                    .push(operation(o, &here.key("operation"), problems)),
            }
        }
    }
    for (i, entry) in rule.when.iter().flatten().enumerate() {
        let here = at.key("when").index(i);
        match entry {
            None => problems.rule(&here, "`when` entry must not be nil"),
            Some(c) => {
                if let Some(c) = condition(c, &here, problems) {
                    compiled.when.push(c);
                }
            }
        }
    }
    compiled
}

/// Validates an AuthorizationPolicy (§6).
pub(crate) fn authorization_policy(
    meta: Meta,
    spec: &model::AuthorizationPolicySpec,
    problems: &mut Problems,
) -> AuthorizationPolicy {
    let path = FieldPath::root().key("spec");
    let selector = selector_labels(&spec.selector, &path.key("selector"), problems);
    let has_target_refs = target_refs(
        &meta,
        &spec.selector,
        &spec.target_ref,
        &spec.target_refs,
        &path,
        problems,
    );
    let action_text = spec.action.as_deref().unwrap_or("");
    let action = AuthzAction::parse(action_text).unwrap_or_else(|| {
        problems.rule(
            &path.key("action"),
            format!(
                "Unsupported value: {action_text:?}: supported values: \"ALLOW\", \"DENY\", \"AUDIT\", \"CUSTOM\""
            ),
        );
        AuthzAction::Allow
    });
    let provider = spec
        .provider
        .as_ref()
        .and_then(|p| p.name.clone())
        .filter(|n| !n.is_empty());
    match (action, &provider) {
        (AuthzAction::Custom, None) => problems.rule(
            &path.key("provider"),
            "CUSTOM action requires provider.name naming an extension provider (meshConfig.extensionProviders); without one the policy is meaningless",
        ),
        (AuthzAction::Custom, Some(name)) => problems.warn(
            &path.key("provider").key("name"),
            Invalid::Rule(format!(
                "extension provider {name:?} is not defined (weft has no meshConfig.extensionProviders): requests matching this CUSTOM policy are denied, as Istio does for an unknown provider"
            )),
        ),
        (_, Some(_)) => problems.rule(
            &path.key("provider"),
            "provider must only be set with the CUSTOM action",
        ),
        (_, None) => {}
    }
    let rules_given = spec.rules.as_ref().is_some_and(|r| !r.is_empty());
    if !rules_given
        && matches!(
            action,
            AuthzAction::Deny | AuthzAction::Audit | AuthzAction::Custom
        )
    {
        problems.rule(
            &path.key("rules"),
            format!("{} action without `rules` is meaningless", action.as_str()),
        );
    }
    let mut rules = Vec::new();
    for (i, entry) in spec.rules.iter().flatten().enumerate() {
        let at = path.key("rules").index(i);
        // `rules: [{}]` and `rules: [~]` are one empty rule: it matches everything.
        let empty = model::AuthzRule::default();
        rules.push(rule(
            entry.as_ref().unwrap_or(&empty),
            &meta.namespace,
            &at,
            problems,
        ));
    }
    let dry_run = meta
        .annotations
        .get(DRY_RUN_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    AuthorizationPolicy {
        meta,
        selector,
        has_target_refs,
        action,
        provider,
        rules,
        dry_run,
    }
}

/// Validates a RequestAuthentication (§7).
pub(crate) fn request_authentication(
    meta: Meta,
    spec: &model::RequestAuthenticationSpec,
    problems: &mut Problems,
) -> RequestAuthentication {
    let path = FieldPath::root().key("spec");
    let selector = selector_labels(&spec.selector, &path.key("selector"), problems);
    let has_target_refs = target_refs(
        &meta,
        &spec.selector,
        &spec.target_ref,
        &spec.target_refs,
        &path,
        problems,
    );
    let mut providers = Vec::new();
    for (i, entry) in spec.jwt_rules.iter().enumerate() {
        let at = path.key("jwtRules").index(i);
        let Some(rule) = entry else {
            problems.rule(
                &at,
                format!("spec.jwtRules[{i}] in body must be of type object"),
            );
            continue;
        };
        if let Some(provider) = jwt_rule(&meta, rule, &at, i, problems) {
            providers.push(provider);
        }
    }
    RequestAuthentication {
        meta,
        selector,
        has_target_refs,
        providers,
    }
}

fn jwt_rule(
    meta: &Meta,
    rule: &model::JwtRule,
    at: &FieldPath,
    index: usize,
    problems: &mut Problems,
) -> Option<JwtProvider> {
    if rule.issuer.is_empty() {
        problems.rule(&at.key("issuer"), "issuer must be set");
    }
    for (i, aud) in rule.audiences.iter().enumerate() {
        if aud.is_empty() {
            problems.rule(
                &at.key("audiences").index(i),
                format!(
                    "spec.jwtRules[{index}].audiences[{i}] in body should be at least 1 chars long"
                ),
            );
        }
    }
    let jwks = match (&rule.jwks_uri, &rule.jwks) {
        (Some(uri), inline) => {
            if inline.is_some() {
                problems.warn(
                    &at.key("jwks"),
                    Invalid::Rule("both jwksUri and jwks are set; jwks (inline) is used".into()),
                );
            }
            match uri.parse::<http::Uri>() {
                Ok(parsed) if matches!(parsed.scheme_str(), Some("http" | "https")) => {}
                _ => problems.rule(
                    &at.key("jwksUri"),
                    format!("invalid jwksUri {uri:?}: url must have scheme http:// or https://"),
                ),
            }
            match inline {
                Some(jwks) => JwksSource::Inline(jwks.clone()),
                None => JwksSource::Uri(uri.clone()),
            }
        }
        (None, Some(jwks)) => JwksSource::Inline(jwks.clone()),
        (None, None) => {
            problems.warn(
                at,
                Invalid::Rule("neither jwksUri nor jwks is set: OIDC discovery is not supported by weft, tokens of this issuer will be rejected".into()),
            );
            JwksSource::Discovery
        }
    };
    if let JwksSource::Inline(text) = &jwks {
        let keys = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("keys").map(|k| k.is_array()));
        if keys != Some(true) {
            problems.rule(
                &at.key("jwks"),
                "invalid jwks: want a JSON object with a keys array",
            );
        }
    }
    let mut locations = Vec::new();
    for (i, header) in rule.from_headers.iter().enumerate() {
        let here = at.key("fromHeaders").index(i);
        let Some(header) = header else {
            problems.rule(
                &here,
                format!("spec.jwtRules[{index}].fromHeaders[{i}] in body must be of type object"),
            );
            continue;
        };
        match header.name.as_deref() {
            None => problems.rule(
                &here.key("name"),
                format!("spec.jwtRules[{index}].fromHeaders[{i}].name: Required value"),
            ),
            Some("") => problems.rule(
                &here.key("name"),
                format!("spec.jwtRules[{index}].fromHeaders[{i}].name in body should be at least 1 chars long"),
            ),
            Some(name) => match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                Ok(name) => locations.push(TokenLocation::Header {
                    name,
                    prefix: header.prefix.clone().unwrap_or_default(),
                }),
                Err(_) => problems.rule(&here.key("name"), format!("invalid header name {name:?}")),
            },
        }
    }
    for (i, param) in rule.from_params.iter().enumerate() {
        if param.is_empty() {
            problems.rule(
                &at.key("fromParams").index(i),
                format!(
                    "spec.jwtRules[{index}].fromParams[{i}] in body should be at least 1 chars long"
                ),
            );
        } else {
            locations.push(TokenLocation::Param(param.clone()));
        }
    }
    for (i, cookie) in rule.from_cookies.iter().enumerate() {
        if cookie.is_empty() {
            problems.rule(
                &at.key("fromCookies").index(i),
                format!("spec.jwtRules[{index}].fromCookies[{i}] in body should be at least 1 chars long"),
            );
        } else {
            locations.push(TokenLocation::Cookie(cookie.clone()));
        }
    }
    if locations.is_empty() {
        // §7: the defaults apply only when no location is configured.
        locations.push(TokenLocation::Header {
            name: http::header::AUTHORIZATION,
            prefix: "Bearer ".into(),
        });
        locations.push(TokenLocation::Param("access_token".into()));
    }
    let header_name = |text: &str, here: &FieldPath, problems: &mut Problems| {
        if text.is_empty() {
            problems.rule(
                here,
                format!("spec.jwtRules[{index}]: header in body should be at least 1 chars long"),
            );
            return None;
        }
        if !names::is_valid_header_name(text) {
            problems.rule(
                here,
                format!("spec.jwtRules[{index}]: header in body should match '^[-_A-Za-z0-9]+$'"),
            );
            return None;
        }
        HeaderName::from_bytes(text.to_ascii_lowercase().as_bytes()).ok()
    };
    let output_payload_to_header = rule
        .output_payload_to_header
        .as_deref()
        .and_then(|h| header_name(h, &at.key("outputPayloadToHeader"), problems));
    let mut output_claim_to_headers = Vec::new();
    for (i, entry) in rule.output_claim_to_headers.iter().enumerate() {
        let here = at.key("outputClaimToHeaders").index(i);
        let Some(entry) = entry else {
            problems.rule(&here, format!("spec.jwtRules[{index}].outputClaimToHeaders[{i}] in body must be of type object"));
            continue;
        };
        if entry.claim.is_empty() {
            problems.rule(
                &here.key("claim"),
                format!("spec.jwtRules[{index}].outputClaimToHeaders[{i}].claim in body should be at least 1 chars long"),
            );
        }
        if let Some(name) = header_name(&entry.header, &here.key("header"), problems)
            && !entry.claim.is_empty()
        {
            output_claim_to_headers
                .push((name, entry.claim.split('.').map(str::to_string).collect()));
        }
    }
    let mut space_delimited_claims = vec!["scope".to_string(), "permission".to_string()];
    for (i, claim) in rule.space_delimited_claims.iter().enumerate() {
        if claim.is_empty() {
            problems.rule(
                &at.key("spaceDelimitedClaims").index(i),
                format!("spec.jwtRules[{index}].spaceDelimitedClaims[{i}] in body should be at least 1 chars long"),
            );
        } else if !space_delimited_claims.contains(claim) {
            space_delimited_claims.push(claim.clone());
        }
    }
    if let Some(presence) = &rule.presence
        && !matches!(
            presence.as_str(),
            "" | "PRESENCE_UNSPECIFIED" | "OPTIONAL" | "REQUIRED"
        )
    {
        problems.rule(
            &at.key("presence"),
            format!(
                "Unsupported value: {presence:?}: supported values: \"OPTIONAL\", \"REQUIRED\""
            ),
        );
    }
    if let Some(timeout) = rule.timeout
        && timeout.is_zero()
    {
        problems.rule(
            &at.key("timeout"),
            "timeout must be a valid duration greater than 1ms",
        );
    }
    Some(JwtProvider {
        source: ObjectRef::of(meta),
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        jwks,
        locations,
        forward_original_token: rule.forward_original_token.unwrap_or(false),
        output_payload_to_header,
        output_claim_to_headers,
        timeout: rule.timeout.unwrap_or(DEFAULT_JWKS_TIMEOUT),
        space_delimited_claims,
    })
}
