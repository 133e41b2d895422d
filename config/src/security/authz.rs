//! AuthorizationPolicy matching (istio-model.md §6; `istio: pilot/pkg/security/authz/model`,
//! `matcher/string.go`): compiled rules and their evaluation against one request. Pure
//! functions, no allocation on the match path except header joining.

use std::net::IpAddr;

use serde_json::Value;

/// Istio's string forms (§6.3): `abc` exact, `abc*` prefix, `*abc` suffix, `*` present and
/// non-empty. No infix wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exact value.
    Exact(String),
    /// `prefix*`.
    Prefix(String),
    /// `*suffix`.
    Suffix(String),
    /// `*`: any non-empty value.
    Present,
}

impl Pattern {
    /// Parses Istio's string form.
    pub fn parse(text: &str) -> Pattern {
        if text == "*" {
            Pattern::Present
        } else if let Some(prefix) = text.strip_suffix('*') {
            Pattern::Prefix(prefix.to_string())
        } else if let Some(suffix) = text.strip_prefix('*') {
            Pattern::Suffix(suffix.to_string())
        } else {
            Pattern::Exact(text.to_string())
        }
    }

    /// Whether `value` matches (case-sensitive).
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(exact) => value == exact,
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Pattern::Suffix(suffix) => value.ends_with(suffix.as_str()),
            Pattern::Present => !value.is_empty(),
        }
    }

    /// Whether `value` matches, ignoring ASCII case (hosts).
    pub fn matches_ignore_case(&self, value: &str) -> bool {
        fn starts(value: &str, prefix: &str) -> bool {
            value.len() >= prefix.len()
                && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        }
        fn ends(value: &str, suffix: &str) -> bool {
            value.len() >= suffix.len()
                && value.as_bytes()[value.len() - suffix.len()..]
                    .eq_ignore_ascii_case(suffix.as_bytes())
        }
        match self {
            Pattern::Exact(exact) => value.eq_ignore_ascii_case(exact),
            Pattern::Prefix(prefix) => starts(value, prefix),
            Pattern::Suffix(suffix) => ends(value, suffix),
            Pattern::Present => !value.is_empty(),
        }
    }
}

/// An IP address or CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    address: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `1.2.3.4`, `5.6.0.0/16`, `::1`, `fd00::/8`.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, bits) = match text.split_once('/') {
            Some((address, bits)) => (address.parse::<IpAddr>().ok()?, Some(bits.parse().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { address, bits })
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A path pattern (§6.3 `paths`): Istio string forms or a URI template with `{*}` (one
/// segment) and `{**}` (any number of segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Exact, prefix, suffix or present.
    Plain(Pattern),
    /// Template segments.
    Template(Vec<TemplateSegment>),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSegment {
    /// A literal segment.
    Literal(String),
    /// `{*}`: exactly one non-empty segment.
    One,
    /// `{**}`: zero or more segments.
    Many,
}

impl PathPattern {
    /// Parses a `paths` entry.
    pub fn parse(text: &str) -> PathPattern {
        if text.contains('{') {
            let segments = text
                .trim_start_matches('/')
                .split('/')
                .map(|segment| match segment {
                    "{*}" => TemplateSegment::One,
                    "{**}" => TemplateSegment::Many,
                    literal => TemplateSegment::Literal(literal.to_string()),
                })
                .collect();
            PathPattern::Template(segments)
        } else {
            PathPattern::Plain(Pattern::parse(text))
        }
    }

    /// Whether a (normalized, query-less) path matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Plain(pattern) => pattern.matches(path),
            PathPattern::Template(segments) => {
                let Some(rest) = path.strip_prefix('/') else {
                    return false;
                };
                let parts: Vec<&str> = rest.split('/').collect();
                template_matches(segments, &parts)
            }
        }
    }
}

fn template_matches(pattern: &[TemplateSegment], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((TemplateSegment::Many, rest)) => {
            (0..=parts.len()).any(|skip| template_matches(rest, &parts[skip..]))
        }
        Some((segment, rest)) => match parts.split_first() {
            None => false,
            Some((part, parts)) => {
                let ok = match segment {
                    TemplateSegment::Literal(literal) => part == literal,
                    TemplateSegment::One => !part.is_empty(),
                    TemplateSegment::Many => true,
                };
                ok && template_matches(rest, parts)
            }
        },
    }
}

/// A list condition with its negation: matches when (the positive list is absent or any of it
/// matches) and nothing of the negative list matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Either<T> {
    /// `values` / `principals` / ...; `None` when the field is absent.
    pub any: Option<Vec<T>>,
    /// `notValues` / `notPrincipals` / ...
    pub none: Vec<T>,
}

impl<T> Default for Either<T> {
    fn default() -> Self {
        Either {
            any: None,
            none: Vec::new(),
        }
    }
}

impl<T> Either<T> {
    /// Whether either list is set.
    pub fn is_set(&self) -> bool {
        self.any.is_some() || !self.none.is_empty()
    }

    fn eval(&self, matches: impl Fn(&T) -> bool) -> bool {
        self.any.as_ref().is_none_or(|any| any.iter().any(&matches))
            && !self.none.iter().any(matches)
    }
}

/// A compiled `source`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMatch {
    /// Peer identity without `spiffe://`.
    pub principals: Either<Pattern>,
    /// JWT `iss/sub`.
    pub request_principals: Either<Pattern>,
    /// Namespace part of the peer identity.
    pub namespaces: Either<Pattern>,
    /// `(namespace, service account)` pairs.
    pub service_accounts: Either<(String, String)>,
    /// Trust domain of the peer identity.
    pub trust_domains: Either<Pattern>,
    /// Direct peer address.
    pub ip_blocks: Either<Cidr>,
    /// Original client address.
    pub remote_ip_blocks: Either<Cidr>,
}

/// A compiled `operation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationMatch {
    /// `:authority`, case-insensitive.
    pub hosts: Either<Pattern>,
    /// Destination port at the workload.
    pub ports: Either<u16>,
    /// `:method`.
    pub methods: Either<Pattern>,
    /// Normalized path.
    pub paths: Either<PathPattern>,
}

/// The attribute a `when` condition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionKey {
    /// `request.headers[name]` (name lowercase).
    RequestHeader(String),
    /// `source.ip`.
    SourceIp,
    /// `remote.ip`.
    RemoteIp,
    /// `source.namespace`.
    SourceNamespace,
    /// `source.principal`.
    SourcePrincipal,
    /// `source.serviceAccount` (`ns/sa`).
    SourceServiceAccount,
    /// `source.trustDomain`.
    SourceTrustDomain,
    /// `request.auth.principal`.
    RequestPrincipal,
    /// `request.auth.audiences`.
    RequestAudiences,
    /// `request.auth.presenter`.
    RequestPresenter,
    /// `request.auth.claims[a][b]...`.
    RequestClaim(Vec<String>),
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `connection.sni`.
    ConnectionSni,
    /// `experimental.envoy.filters.*`: Envoy dynamic metadata weft does not have.
    Experimental,
}

impl ConditionKey {
    /// Parses a condition key; `None` for an unknown attribute.
    pub fn parse(key: &str) -> Option<ConditionKey> {
        Some(match key {
            "source.ip" => ConditionKey::SourceIp,
            "remote.ip" => ConditionKey::RemoteIp,
            "source.namespace" => ConditionKey::SourceNamespace,
            "source.principal" => ConditionKey::SourcePrincipal,
            "source.serviceAccount" => ConditionKey::SourceServiceAccount,
            "source.trustDomain" => ConditionKey::SourceTrustDomain,
            "request.auth.principal" => ConditionKey::RequestPrincipal,
            "request.auth.audiences" => ConditionKey::RequestAudiences,
            "request.auth.presenter" => ConditionKey::RequestPresenter,
            "destination.ip" => ConditionKey::DestinationIp,
            "destination.port" => ConditionKey::DestinationPort,
            "connection.sni" => ConditionKey::ConnectionSni,
            _ => {
                if let Some(name) = key
                    .strip_prefix("request.headers[")
                    .and_then(|rest| rest.strip_suffix(']'))
                {
                    if name.is_empty() || name.contains(['[', ']']) {
                        return None;
                    }
                    return Some(ConditionKey::RequestHeader(name.to_ascii_lowercase()));
                }
                if let Some(rest) = key.strip_prefix("request.auth.claims[") {
                    let rest = rest.strip_suffix(']')?;
                    let path: Vec<String> = rest.split("][").map(str::to_string).collect();
                    if path.iter().any(|p| p.is_empty() || p.contains(['[', ']'])) {
                        return None;
                    }
                    return Some(ConditionKey::RequestClaim(path));
                }
                if key.starts_with("experimental.envoy.filters.") {
                    return Some(ConditionKey::Experimental);
                }
                return None;
            }
        })
    }

    /// Whether the attribute exists only for HTTP (§6.4).
    pub fn is_http_only(&self) -> bool {
        matches!(
            self,
            ConditionKey::RequestHeader(_)
                | ConditionKey::RequestPrincipal
                | ConditionKey::RequestAudiences
                | ConditionKey::RequestPresenter
                | ConditionKey::RequestClaim(_)
        )
    }

    /// Whether values of this key are IPs/CIDRs.
    pub fn is_ip(&self) -> bool {
        matches!(
            self,
            ConditionKey::SourceIp | ConditionKey::RemoteIp | ConditionKey::DestinationIp
        )
    }
}

/// A compiled condition value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionValue {
    /// String forms.
    Pattern(Pattern),
    /// IP keys.
    Cidr(Cidr),
    /// `destination.port`.
    Port(u16),
}

/// A compiled `when` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionMatch {
    /// The attribute.
    pub key: ConditionKey,
    /// `values` / `notValues`.
    pub values: Either<ConditionValue>,
}

/// A compiled rule: any `from` AND any `to` AND every `when`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleMatch {
    /// Sources (ORed); empty = any.
    pub from: Vec<SourceMatch>,
    /// Operations (ORed); empty = any.
    pub to: Vec<OperationMatch>,
    /// Conditions (ANDed).
    pub when: Vec<ConditionMatch>,
}

impl RuleMatch {
    /// Whether the rule uses an attribute that exists only for HTTP (§6.4).
    pub fn uses_http_only(&self) -> bool {
        self.from.iter().any(|s| s.request_principals.is_set())
            || self
                .to
                .iter()
                .any(|o| o.hosts.is_set() || o.methods.is_set() || o.paths.is_set())
            || self.when.iter().any(|c| c.key.is_http_only())
    }
}

/// A verified JWT as authorization sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JwtAuth {
    /// `iss/sub`.
    pub principal: String,
    /// The payload (claims).
    pub claims: serde_json::Map<String, Value>,
    /// Claims whose string values are split on spaces (always `scope` and `permission`).
    pub space_delimited: Vec<String>,
}

/// The HTTP part of a request.
#[derive(Debug, Clone, Copy)]
pub struct HttpAttributes<'a> {
    /// `:authority` / `Host` as sent (with any port).
    pub host: &'a str,
    /// `:method`.
    pub method: &'a str,
    /// Normalized path without query.
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
    /// The verified JWT, if any.
    pub jwt: Option<&'a JwtAuth>,
}

/// What authorization knows about a request (or, without `http`, a TCP connection).
#[derive(Debug, Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// Direct peer address.
    pub source_ip: IpAddr,
    /// Original client address (equals `source_ip` without trusted proxies).
    pub remote_ip: IpAddr,
    /// Local address of the connection.
    pub destination_ip: IpAddr,
    /// Destination port at the workload.
    pub destination_port: u16,
    /// Peer identity from the mTLS certificate, without `spiffe://` (`None`: plaintext).
    pub principal: Option<&'a str>,
    /// TLS SNI.
    pub sni: Option<&'a str>,
    /// HTTP attributes (`None`: TCP).
    pub http: Option<HttpAttributes<'a>>,
}

/// Parts of a peer identity `td/ns/<ns>/sa/<sa>`.
fn identity_parts(principal: &str) -> Option<(&str, &str, &str)> {
    let (trust_domain, rest) = principal.split_once("/ns/")?;
    let (namespace, rest) = rest.split_once("/sa/")?;
    Some((trust_domain, namespace, rest))
}

fn opt_matches(value: Option<&str>, pattern: &Pattern) -> bool {
    value.is_some_and(|v| pattern.matches(v))
}

impl SourceMatch {
    fn matches(&self, request: &AuthzRequest<'_>, tcp_lenient: bool) -> bool {
        let principal = request.principal;
        let parts = principal.and_then(identity_parts);
        self.principals.eval(|p| opt_matches(principal, p))
            && self.namespaces.eval(|p| opt_matches(parts.map(|x| x.1), p))
            && self
                .trust_domains
                .eval(|p| opt_matches(parts.map(|x| x.0), p))
            && self.service_accounts.eval(|(ns, sa)| {
                parts.is_some_and(|(_, n, s)| {
                    n == ns && (s == sa || s.starts_with(&format!("{sa}/")))
                })
            })
            && self.ip_blocks.eval(|c| c.contains(request.source_ip))
            && self
                .remote_ip_blocks
                .eval(|c| c.contains(request.remote_ip))
            && match &request.http {
                Some(http) => {
                    let rp = http.jwt.map(|j| j.principal.as_str());
                    self.request_principals.eval(|p| opt_matches(rp, p))
                }
                None => tcp_lenient || !self.request_principals.is_set(),
            }
    }
}

impl OperationMatch {
    fn matches(&self, request: &AuthzRequest<'_>, tcp_lenient: bool) -> bool {
        if !self.ports.eval(|p| *p == request.destination_port) {
            return false;
        }
        match &request.http {
            Some(http) => {
                self.hosts.eval(|p| p.matches_ignore_case(http.host))
                    && self.methods.eval(|p| p.matches(http.method))
                    && self.paths.eval(|p| p.matches(http.path))
            }
            None => {
                tcp_lenient
                    || !(self.hosts.is_set() || self.methods.is_set() || self.paths.is_set())
            }
        }
    }
}

fn claim<'v>(claims: &'v serde_json::Map<String, Value>, path: &[String]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for key in rest {
        value = value.as_object()?.get(key)?;
    }
    Some(value)
}

/// String values of a claim: a string (split on spaces for space-delimited claims), the
/// elements of a list, numbers and booleans as text.
fn claim_strings(value: &Value, space_delimited: bool) -> Vec<String> {
    match value {
        Value::String(s) if space_delimited => s.split(' ').map(str::to_string).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .flat_map(|item| claim_strings(item, false))
            .collect(),
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

impl ConditionMatch {
    fn matches(&self, request: &AuthzRequest<'_>, tcp_lenient: bool) -> bool {
        fn pattern_any(value: Option<&str>) -> impl Fn(&ConditionValue) -> bool + '_ {
            move |v: &ConditionValue| match v {
                ConditionValue::Pattern(p) => opt_matches(value, p),
                _ => false,
            }
        }
        let parts = request.principal.and_then(identity_parts);
        match &self.key {
            ConditionKey::SourceIp | ConditionKey::RemoteIp | ConditionKey::DestinationIp => {
                let ip = match self.key {
                    ConditionKey::SourceIp => request.source_ip,
                    ConditionKey::RemoteIp => request.remote_ip,
                    _ => request.destination_ip,
                };
                self.values.eval(|v| match v {
                    ConditionValue::Cidr(c) => c.contains(ip),
                    _ => false,
                })
            }
            ConditionKey::DestinationPort => self.values.eval(|v| match v {
                ConditionValue::Port(p) => *p == request.destination_port,
                _ => false,
            }),
            ConditionKey::SourceNamespace => self.values.eval(pattern_any(parts.map(|p| p.1))),
            ConditionKey::SourceTrustDomain => self.values.eval(pattern_any(parts.map(|p| p.0))),
            ConditionKey::SourcePrincipal => self.values.eval(pattern_any(request.principal)),
            ConditionKey::SourceServiceAccount => {
                let account = parts.map(|(_, ns, sa)| format!("{ns}/{sa}"));
                self.values.eval(pattern_any(account.as_deref()))
            }
            ConditionKey::ConnectionSni => self.values.eval(pattern_any(request.sni)),
            ConditionKey::Experimental => self.values.eval(|_| false),
            key => {
                let Some(http) = &request.http else {
                    return tcp_lenient;
                };
                match key {
                    ConditionKey::RequestHeader(name) => {
                        let mut joined = String::new();
                        let mut present = false;
                        for value in http.headers.get_all(name.as_str()) {
                            if present {
                                joined.push(',');
                            }
                            present = true;
                            joined.push_str(&String::from_utf8_lossy(value.as_bytes()));
                        }
                        self.values
                            .eval(pattern_any(present.then_some(joined.as_str())))
                    }
                    ConditionKey::RequestPrincipal => self
                        .values
                        .eval(pattern_any(http.jwt.map(|j| j.principal.as_str()))),
                    ConditionKey::RequestAudiences
                    | ConditionKey::RequestPresenter
                    | ConditionKey::RequestClaim(_) => {
                        let path: Vec<String> = match key {
                            ConditionKey::RequestAudiences => vec!["aud".into()],
                            ConditionKey::RequestPresenter => vec!["azp".into()],
                            ConditionKey::RequestClaim(path) => path.clone(),
                            _ => Vec::new(),
                        };
                        let strings = http
                            .jwt
                            .and_then(|jwt| {
                                let value = claim(&jwt.claims, &path)?;
                                let split = path.len() == 1
                                    && jwt.space_delimited.iter().any(|c| c == &path[0]);
                                Some(claim_strings(value, split))
                            })
                            .unwrap_or_default();
                        self.values.eval(|v| match v {
                            ConditionValue::Pattern(p) => strings.iter().any(|s| p.matches(s)),
                            _ => false,
                        })
                    }
                    _ => false,
                }
            }
        }
    }
}

impl RuleMatch {
    /// Whether the rule matches. On TCP (`request.http` is `None`) an ALLOW rule using
    /// HTTP-only attributes never matches, while for DENY/AUDIT/CUSTOM (`tcp_lenient`) only
    /// those conditions are dropped (§6.4).
    pub fn matches(&self, request: &AuthzRequest<'_>, tcp_lenient: bool) -> bool {
        if request.http.is_none() && !tcp_lenient && self.uses_http_only() {
            return false;
        }
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(request, tcp_lenient)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(request, tcp_lenient)))
            && self.when.iter().all(|c| c.matches(request, tcp_lenient))
    }
}

/// Removes `.` and `..` segments (RFC 3986 5.2.4), as Envoy's `normalize_path` (Istio's
/// default `BASE` path normalization) does, and drops the query.
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let needs = path
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    if !needs {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    let trailing = path.ends_with("/.") || path.ends_with("/..");
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    let mut normalized = String::with_capacity(path.len());
    for segment in &out {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if trailing || normalized.is_empty() {
        normalized.push('/');
    }
    std::borrow::Cow::Owned(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(Pattern::parse("abc").matches("abc"));
        assert!(!Pattern::parse("abc").matches("abcd"));
        assert!(Pattern::parse("ab*").matches("abcd"));
        assert!(Pattern::parse("*cd").matches("abcd"));
        assert!(Pattern::parse("*").matches("x"));
        assert!(!Pattern::parse("*").matches(""));
        assert!(Pattern::parse("Exact.COM").matches_ignore_case("exact.com"));
        assert!(Pattern::parse("*.Suffix.com").matches_ignore_case("a.suffix.COM"));
    }

    #[test]
    fn cidrs() {
        let block = Cidr::parse("5.6.0.0/16").unwrap();
        assert!(block.contains("5.6.7.8".parse().unwrap()));
        assert!(!block.contains("5.7.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:5.6.1.1".parse().unwrap()));
        assert!(
            Cidr::parse("1.2.3.4")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert!(Cidr::parse("1.2.3.4/33").is_none());
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
    }

    #[test]
    fn templates() {
        let one = PathPattern::parse("/path/template/{*}");
        assert!(one.matches("/path/template/x"));
        assert!(!one.matches("/path/template/x/y"));
        assert!(!one.matches("/path/template/"));
        let many = PathPattern::parse("/{**}/path/template");
        assert!(many.matches("/a/b/path/template"));
        assert!(many.matches("/path/template"));
        assert!(!many.matches("/a/path/other"));
        assert!(PathPattern::parse("/prefix/*").matches("/prefix/a/b"));
        assert!(!PathPattern::parse("/prefix/*").matches("/prefix"));
        assert!(PathPattern::parse("*/suffix").matches("/a/suffix"));
    }

    #[test]
    fn path_normalization() {
        assert_eq!(normalize_path("/a/./b/../c?x=1"), "/a/c");
        assert_eq!(normalize_path("/a/b"), "/a/b");
        assert_eq!(normalize_path("/../admin"), "/admin");
        assert_eq!(normalize_path("/a/.."), "/");
    }
}
