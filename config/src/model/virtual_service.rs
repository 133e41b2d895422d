//! VirtualService (`api: networking/v1alpha3/virtual_service.proto`; istio-model.md §1).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Destination, Percent, StringMatch, null_default};
use crate::duration;

/// `VirtualService.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the rules apply to; empty only for a delegate VirtualService.
    #[serde(default, deserialize_with = "null_default")]
    pub hosts: Vec<String>,
    /// Gateways (`ns/name`) and/or `mesh`; empty means `mesh`.
    #[serde(default, deserialize_with = "null_default")]
    pub gateways: Vec<String>,
    /// HTTP rules, first match wins.
    #[serde(default, deserialize_with = "null_default")]
    pub http: Vec<HttpRoute>,
    /// Unterminated TLS rules.
    #[serde(default, deserialize_with = "null_default")]
    pub tls: Vec<TlsRoute>,
    /// Opaque TCP rules.
    #[serde(default, deserialize_with = "null_default")]
    pub tcp: Vec<TcpRoute>,
    /// Visibility (`.`, `*`, namespaces); empty means everywhere.
    #[serde(default, deserialize_with = "null_default")]
    pub export_to: Vec<String>,
}

/// `HTTPRoute`: matches plus exactly one action (`route`, `redirect`, `directResponse`,
/// `delegate`) and per-route policies.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Rule name (Envoy route name prefix, access logs).
    pub name: Option<String>,
    /// OR of match blocks; none means catch-all.
    #[serde(rename = "match", default, deserialize_with = "null_default")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default, deserialize_with = "null_default")]
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect.
    pub redirect: Option<HttpRedirect>,
    /// Answer directly.
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand over to a delegate VirtualService.
    pub delegate: Option<Delegate>,
    /// Rewrite path/authority before forwarding.
    pub rewrite: Option<HttpRewrite>,
    /// Total timeout including retries; default disabled.
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    pub fault: Option<HttpFaultInjection>,
    /// Single mirror destination (see `mirrorPercentage`).
    pub mirror: Option<Destination>,
    /// Several mirror destinations.
    #[serde(default, deserialize_with = "null_default")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated integer mirror percentage.
    pub mirror_percent: Option<u32>,
    /// Percentage of requests mirrored to `mirror` (absent = 100).
    pub mirror_percentage: Option<Percent>,
    /// CORS policy.
    pub cors_policy: Option<CorsPolicy>,
    /// Header manipulation for every destination.
    pub headers: Option<Headers>,
}

/// `HTTPMatchRequest`: all set conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Match name (`<route.name>.<match.name>` is the Envoy route name).
    pub name: Option<String>,
    /// Path without query string.
    pub uri: Option<StringMatch>,
    /// `:scheme`.
    pub scheme: Option<StringMatch>,
    /// `:method`.
    pub method: Option<StringMatch>,
    /// `:authority`.
    pub authority: Option<StringMatch>,
    /// Header conditions (lowercase names); `{}` means present.
    #[serde(default, deserialize_with = "null_default")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Listener port selector (not a request-time match).
    pub port: Option<u32>,
    /// Selects client proxies by labels (not a request-time match).
    #[serde(default, deserialize_with = "null_default")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match applies to (overrides the top-level list).
    #[serde(default, deserialize_with = "null_default")]
    pub gateways: Vec<String>,
    /// Query parameter conditions; `{}` means present.
    #[serde(default, deserialize_with = "null_default")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Case-insensitive `uri` exact/prefix.
    pub ignore_uri_case: Option<bool>,
    /// Negated header conditions.
    #[serde(default, deserialize_with = "null_default")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Selects client proxies by namespace (not a request-time match).
    pub source_namespace: Option<String>,
    /// Stats prefix for the route.
    pub stat_prefix: Option<String>,
}

/// `HTTPRouteDestination`: a destination with a relative weight.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where to send the request.
    pub destination: Option<Destination>,
    /// Relative weight; omitted means 0 when there are several destinations.
    pub weight: Option<i32>,
    /// Header manipulation for this destination (applied after the rule's).
    pub headers: Option<Headers>,
}

/// `Headers`: request and response header operations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Headers {
    /// Operations on the request sent upstream.
    pub request: Option<HeaderOperations>,
    /// Operations on the response sent downstream.
    pub response: Option<HeaderOperations>,
}

/// `HeaderOperations`: `set` overwrites, `add` appends, `remove` deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOperations {
    /// Overwrite or add.
    #[serde(default, deserialize_with = "null_default")]
    pub set: BTreeMap<String, String>,
    /// Append.
    #[serde(default, deserialize_with = "null_default")]
    pub add: BTreeMap<String, String>,
    /// Delete.
    #[serde(default, deserialize_with = "null_default")]
    pub remove: Vec<String>,
}

/// `HTTPRedirect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRedirect {
    /// Replaces the whole path.
    pub uri: Option<String>,
    /// Replaces the authority.
    pub authority: Option<String>,
    /// Explicit port.
    pub port: Option<u32>,
    /// Port derived from the protocol or the request.
    pub derive_port: Option<RedirectPortSelection>,
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// 3xx status; default 301.
    pub redirect_code: Option<u32>,
}

/// `HTTPRedirect.RedirectPortSelection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    FromProtocolDefault,
    /// The port of the request.
    FromRequestPort,
}

/// `HTTPDirectResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpDirectResponse {
    /// Status code.
    #[serde(default)]
    pub status: u32,
    /// Optional body.
    pub body: Option<HttpBody>,
}

/// `HTTPBody`: `string` or base64 `bytes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBody {
    /// Text body.
    pub string: Option<String>,
    /// Base64-encoded body.
    pub bytes: Option<String>,
}

/// `Delegate`: a VirtualService without hosts whose routes are merged in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delegate {
    /// Delegate VirtualService name.
    pub name: Option<String>,
    /// Its namespace; default the root's.
    pub namespace: Option<String>,
}

/// `HTTPRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replaces the matched prefix (or the whole path).
    pub uri: Option<String>,
    /// Replaces Host/`:authority`.
    pub authority: Option<String>,
    /// RE2 substitution on the path.
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `RegexRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegexRewrite {
    /// RE2 pattern.
    #[serde(rename = "match", default)]
    pub pattern: String,
    /// Replacement with `\1` captures.
    #[serde(default)]
    pub rewrite: String,
}

/// `HTTPRetry`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries (not tries); 0 disables.
    pub attempts: Option<i32>,
    /// Timeout per attempt.
    #[serde(default, deserialize_with = "duration::optional")]
    pub per_try_timeout: Option<Duration>,
    /// Comma list of Envoy retry policies and status codes.
    pub retry_on: Option<String>,
    /// Retry other localities.
    pub retry_remote_localities: Option<bool>,
    /// Avoid previously tried hosts (default true).
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base backoff interval (default 25ms).
    #[serde(default, deserialize_with = "duration::optional")]
    pub backoff: Option<Duration>,
}

/// `HTTPFaultInjection`: delay and/or abort.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Delay before forwarding.
    pub delay: Option<FaultDelay>,
    /// Abort with a status.
    pub abort: Option<FaultAbort>,
}

/// `HTTPFaultInjection.Delay`. Percentage omitted means no request is delayed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    /// Fixed delay (≥1ms).
    #[serde(default, deserialize_with = "duration::optional")]
    pub fixed_delay: Option<Duration>,
    /// Unsupported by Istio.
    #[serde(default, deserialize_with = "duration::optional")]
    pub exponential_delay: Option<Duration>,
    /// Share of requests delayed.
    pub percentage: Option<Percent>,
    /// Deprecated integer percentage.
    pub percent: Option<i32>,
}

/// `HTTPFaultInjection.Abort`. Percentage omitted means no request is aborted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    /// HTTP status to answer.
    pub http_status: Option<i32>,
    /// gRPC status name (`UNAVAILABLE`).
    pub grpc_status: Option<String>,
    /// Unsupported by Istio.
    pub http2_error: Option<String>,
    /// Share of requests aborted.
    pub percentage: Option<Percent>,
}

/// `HTTPMirrorPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMirrorPolicy {
    /// Mirror destination.
    pub destination: Option<Destination>,
    /// Share mirrored; absent means 100.
    pub percentage: Option<Percent>,
}

/// `CorsPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Deprecated exact origins.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_origin: Vec<String>,
    /// Allowed origins.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_origins: Vec<StringMatch>,
    /// Allowed methods.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_headers: Vec<String>,
    /// Exposed response headers.
    #[serde(default, deserialize_with = "null_default")]
    pub expose_headers: Vec<String>,
    /// Preflight cache duration.
    #[serde(default, deserialize_with = "duration::optional")]
    pub max_age: Option<Duration>,
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: Option<bool>,
    /// Preflights not matching the policy.
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// `CorsPolicy.UnmatchedPreflights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Default (forward).
    Unspecified,
    /// Forward to the upstream.
    Forward,
    /// Answer without CORS headers.
    Ignore,
}

/// `TLSRoute`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// At least one match (SNI hosts required).
    #[serde(rename = "match", default, deserialize_with = "null_default")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    #[serde(default, deserialize_with = "null_default")]
    pub route: Vec<RouteDestination>,
}

/// `TLSMatchAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsMatchAttributes {
    /// SNI values (within the VirtualService hosts).
    #[serde(default, deserialize_with = "null_default")]
    pub sni_hosts: Vec<String>,
    /// Destination IPs/CIDRs.
    #[serde(default, deserialize_with = "null_default")]
    pub destination_subnets: Vec<String>,
    /// Listener port selector.
    pub port: Option<u32>,
    /// Client proxy selector.
    #[serde(default, deserialize_with = "null_default")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways selector.
    #[serde(default, deserialize_with = "null_default")]
    pub gateways: Vec<String>,
    /// Client namespace selector.
    pub source_namespace: Option<String>,
}

/// `TCPRoute`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Matches; none means catch-all.
    #[serde(rename = "match", default, deserialize_with = "null_default")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    #[serde(default, deserialize_with = "null_default")]
    pub route: Vec<RouteDestination>,
}

/// `L4MatchAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L4MatchAttributes {
    /// Destination IPs/CIDRs.
    #[serde(default, deserialize_with = "null_default")]
    pub destination_subnets: Vec<String>,
    /// Listener port selector.
    pub port: Option<u32>,
    /// Client proxy selector.
    #[serde(default, deserialize_with = "null_default")]
    pub source_labels: BTreeMap<String, String>,
    /// Gateways selector.
    #[serde(default, deserialize_with = "null_default")]
    pub gateways: Vec<String>,
    /// Client namespace selector.
    pub source_namespace: Option<String>,
    /// Deprecated source subnet.
    pub source_subnet: Option<String>,
}

/// `RouteDestination` (TLS and TCP routes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteDestination {
    /// Where to send the connection.
    pub destination: Option<Destination>,
    /// Relative weight.
    pub weight: Option<i32>,
}
