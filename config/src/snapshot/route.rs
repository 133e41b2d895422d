//! Compiled routes: request-time matching (allocation-free in the common case) and weighted
//! destination picking.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use http::header::HeaderMap;

use crate::mesh::{Destination, HttpMatch, Rewrite, StringMatcher};
use crate::model;

use super::policy::{CorsPolicy, FaultPolicy, HeaderPolicy, RetryPolicy};
use super::{Cluster, ObjectRef, RequestInfo};

/// One entry of a virtual host's route table: a (rule × match) of a VirtualService (or the
/// default route of a service without one) with everything the proxy needs to act on it.
#[derive(Debug)]
pub struct CompiledRoute {
    /// Envoy route name: `<rule name>.<match name>`, the rule name, the match name, or
    /// `default` for the default route of a service.
    pub name: Option<String>,
    /// The VirtualService the route comes from (`None`: default route).
    pub virtual_service: Option<ObjectRef>,
    /// Index of the rule in `spec.http`.
    pub rule_index: Option<usize>,
    /// Index of the match in the rule's `match` list.
    pub match_index: Option<usize>,
    /// What to do.
    pub action: Action,
    /// Total timeout (`None`: disabled, Istio's default).
    pub timeout: Option<Duration>,
    /// Retry policy (`None`: Istio's default policy applies).
    pub retries: Option<model::HttpRetry>,
    /// Fault injection.
    pub fault: Option<model::HttpFaultInjection>,
    /// Rule-level header operations.
    pub headers: Option<model::Headers>,
    /// Path/authority rewrite.
    pub rewrite: Option<Rewrite>,
    /// CORS policy.
    pub cors_policy: Option<model::CorsPolicy>,
    /// Mirrors.
    pub mirrors: Vec<CompiledMirror>,
    /// The retry policy in force: the route's, else Istio's default.
    pub retry_policy: RetryPolicy,
    /// The fault, when it can fire.
    pub fault_policy: Option<FaultPolicy>,
    /// The compiled CORS policy.
    pub cors: Option<CorsPolicy>,
    /// Compiled rule-level header operations.
    pub header_policy: Option<HeaderPolicy>,
    pub(crate) matcher: Matcher,
}

/// The action of a compiled route.
#[derive(Debug)]
pub enum Action {
    /// Forward to one of the weighted destinations.
    Route(Vec<WeightedCluster>),
    /// Answer with a redirect.
    Redirect(model::HttpRedirect),
    /// Answer directly.
    DirectResponse(model::HttpDirectResponse),
}

/// A weighted destination with its resolved cluster(s).
#[derive(Debug)]
pub struct WeightedCluster {
    /// Destination with the host expanded to its FQDN.
    pub destination: Destination,
    /// Relative weight (a single destination gets everything whatever its weight).
    pub weight: u32,
    /// Destination-level header operations (applied after the rule's).
    pub headers: Option<model::Headers>,
    /// Compiled destination-level header operations.
    pub header_policy: Option<HeaderPolicy>,
    pub(crate) target: Target,
}

/// A mirror with its resolved cluster(s).
#[derive(Debug)]
pub struct CompiledMirror {
    /// Destination with the host expanded.
    pub destination: Destination,
    /// Percentage of requests mirrored.
    pub percentage: f64,
    pub(crate) target: Target,
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One cluster whatever the request port.
    Cluster(Arc<Cluster>),
    /// No destination port and several service ports: the request port picks.
    PerPort(Vec<(u16, Arc<Cluster>)>),
    /// Host or subset unknown: 503 `NC`.
    Missing,
}

impl Target {
    fn cluster(&self, request_port: u16) -> Option<&Cluster> {
        match self {
            Target::Cluster(cluster) => Some(cluster),
            Target::PerPort(clusters) => clusters
                .iter()
                .find(|(port, _)| *port == request_port)
                .map(|(_, cluster)| cluster.as_ref()),
            Target::Missing => None,
        }
    }

    pub(crate) fn clusters(&self) -> Vec<&Arc<Cluster>> {
        match self {
            Target::Cluster(cluster) => vec![cluster],
            Target::PerPort(clusters) => clusters.iter().map(|(_, c)| c).collect(),
            Target::Missing => Vec::new(),
        }
    }
}

impl WeightedCluster {
    /// The cluster for a request on `request_port` (`None`: 503 `NC`).
    pub fn cluster(&self, request_port: u16) -> Option<&Cluster> {
        self.target.cluster(request_port)
    }
}

impl CompiledMirror {
    /// The cluster for a request on `request_port` (`None`: nothing to mirror to).
    pub fn cluster(&self, request_port: u16) -> Option<&Cluster> {
        self.target.cluster(request_port)
    }
}

impl CompiledRoute {
    /// Weighted pick with relative weights: `random` is any uniformly distributed `u32` from
    /// the caller (weft-config has no RNG). With several destinations, weight-0 (or omitted)
    /// ones get nothing; a single destination gets everything.
    pub fn pick(&self, random: u32) -> Option<&WeightedCluster> {
        let Action::Route(destinations) = &self.action else {
            return None;
        };
        if destinations.len() == 1 {
            return destinations.first();
        }
        let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut point = (u64::from(random) * total) >> 32;
        for destination in destinations {
            let weight = u64::from(destination.weight);
            if point < weight {
                return Some(destination);
            }
            point -= weight;
        }
        destinations.iter().rev().find(|d| d.weight > 0)
    }

    /// Whether the request matches this route (request-time conditions only: proxy selectors
    /// were applied when compiling).
    pub fn matches(&self, request: &RequestInfo<'_>) -> bool {
        self.matcher.matches(request)
    }

    /// A short text of the match conditions (for dumps).
    pub fn describe_match(&self) -> Vec<String> {
        self.matcher.describe()
    }

    /// The `uri.prefix` this route matched by, if it matched by prefix (the innermost one for
    /// delegates): `rewrite.uri` replaces only that prefix (Envoy `prefix_rewrite`,
    /// istio-model.md §1.5).
    pub fn matched_prefix(&self) -> Option<&str> {
        self.matcher
            .all
            .iter()
            .rev()
            .find_map(|conditions| match &conditions.uri {
                Some(StringMatcher::Prefix(prefix)) => Some(prefix.as_str()),
                _ => None,
            })
    }
}

/// All condition sets must hold (root and delegate matches); none means catch-all.
#[derive(Debug, Default, Clone)]
pub(crate) struct Matcher {
    pub(crate) all: Vec<Conditions>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Conditions {
    uri: Option<StringMatcher>,
    ignore_uri_case: bool,
    scheme: Option<StringMatcher>,
    method: Option<StringMatcher>,
    authority: Option<StringMatcher>,
    headers: Vec<(HeaderName, StringMatcher)>,
    without_headers: Vec<(HeaderName, StringMatcher)>,
    query_params: Vec<(String, StringMatcher)>,
    port: Option<u16>,
    never: bool,
}

impl Conditions {
    pub(crate) fn from_match(m: &HttpMatch) -> Conditions {
        let mut never = false;
        let mut names = |list: &[(String, StringMatcher)]| {
            list.iter()
                .filter_map(
                    |(name, matcher)| match HeaderName::from_bytes(name.as_bytes()) {
                        Ok(name) => Some((name, matcher.clone())),
                        Err(_) => {
                            // JWT claim keys are gateway-only; they never match on a sidecar.
                            never = true;
                            None
                        }
                    },
                )
                .collect::<Vec<_>>()
        };
        let headers = names(&m.headers);
        let without_headers = names(&m.without_headers);
        Conditions {
            uri: m.uri.clone(),
            ignore_uri_case: m.ignore_uri_case,
            scheme: m.scheme.clone(),
            method: m.method.clone(),
            authority: m.authority.clone(),
            headers,
            without_headers,
            query_params: m.query_params.clone(),
            port: m.port,
            never,
        }
    }

    fn matches(&self, request: &RequestInfo<'_>) -> bool {
        if self.never {
            return false;
        }
        if self.port.is_some_and(|port| port != request.port) {
            return false;
        }
        if let Some(uri) = &self.uri
            && !uri.matches(request.path, self.ignore_uri_case)
        {
            return false;
        }
        if let Some(scheme) = &self.scheme
            && !scheme.matches(request.scheme, false)
        {
            return false;
        }
        if let Some(method) = &self.method
            && !method.matches(request.method, false)
        {
            return false;
        }
        if let Some(authority) = &self.authority
            && !matches_authority(authority, request)
        {
            return false;
        }
        for (name, matcher) in &self.headers {
            if !header_matches(request.headers, name, matcher, false) {
                return false;
            }
        }
        for (name, matcher) in &self.without_headers {
            if header_matches(request.headers, name, matcher, true) {
                return false;
            }
        }
        for (name, matcher) in &self.query_params {
            match query_value(request.query, name) {
                Some(value) if matcher.matches(&value, false) => {}
                _ => return false,
            }
        }
        true
    }

    fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(port) = self.port {
            out.push(format!("port {port}"));
        }
        let mut add = |what: &str, matcher: &Option<StringMatcher>| {
            if let Some(matcher) = matcher {
                out.push(format!("{what} {}", matcher.describe()));
            }
        };
        add("uri", &self.uri);
        add("scheme", &self.scheme);
        add("method", &self.method);
        add("authority", &self.authority);
        for (name, matcher) in &self.headers {
            out.push(format!("header {name} {}", matcher.describe()));
        }
        for (name, matcher) in &self.without_headers {
            out.push(format!("without header {name} {}", matcher.describe()));
        }
        for (name, matcher) in &self.query_params {
            out.push(format!("query {name} {}", matcher.describe()));
        }
        if self.ignore_uri_case {
            out.push("ignoreUriCase".into());
        }
        out
    }
}

impl Matcher {
    fn matches(&self, request: &RequestInfo<'_>) -> bool {
        self.all
            .iter()
            .all(|conditions| conditions.matches(request))
    }

    fn describe(&self) -> Vec<String> {
        self.all.iter().flat_map(Conditions::describe).collect()
    }
}

/// `:authority` as the client sent it: the host, plus `:port` unless it is the scheme's
/// default. Formatted into a stack buffer.
fn matches_authority(matcher: &StringMatcher, request: &RequestInfo<'_>) -> bool {
    let default_port = match request.scheme {
        "https" => 443,
        _ => 80,
    };
    if request.port == default_port {
        return matcher.matches(request.host, false);
    }
    let mut buffer = [0u8; 300];
    let host = request.host.as_bytes();
    let mut digits = [0u8; 5];
    let mut port = request.port;
    let mut len = 0;
    loop {
        digits[4 - len] = b'0' + (port % 10) as u8;
        len += 1;
        port /= 10;
        if port == 0 {
            break;
        }
    }
    let total = host.len() + 1 + len;
    if total > buffer.len() {
        let authority = format!("{}:{}", request.host, request.port);
        return matcher.matches(&authority, false);
    }
    buffer[..host.len()].copy_from_slice(host);
    buffer[host.len()] = b':';
    buffer[host.len() + 1..total].copy_from_slice(&digits[5 - len..]);
    match std::str::from_utf8(&buffer[..total]) {
        Ok(authority) => matcher.matches(authority, false),
        Err(_) => false,
    }
}

/// Header condition. Several values of one header are joined with `,` (as Envoy does). For
/// `withoutHeaders` (`missing_as_empty`) a missing header counts as the empty string, except
/// for presence matchers.
fn header_matches(
    headers: &HeaderMap,
    name: &HeaderName,
    matcher: &StringMatcher,
    missing_as_empty: bool,
) -> bool {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return missing_as_empty
            && !matches!(matcher, StringMatcher::Present)
            && matcher.matches("", false);
    };
    if matches!(matcher, StringMatcher::Present) {
        return true;
    }
    let rest: Vec<_> = values.collect();
    if rest.is_empty() {
        return match first.to_str() {
            Ok(value) => matcher.matches(value, false),
            Err(_) => false,
        };
    }
    let mut joined = String::new();
    for value in std::iter::once(first).chain(rest) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value);
    }
    matcher.matches(&joined, false)
}

/// The first value of query parameter `name` (percent-decoded), `""` for `?name`.
fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<Cow<'q, str>> {
    let query = query?;
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key) == name {
            return Some(decode(value));
        }
    }
    None
}

fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
