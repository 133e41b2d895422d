//! Checked resources: what validation builds from the wire types.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use super::{ExportTo, Meta};
use crate::model;

/// A checked VirtualService.
#[derive(Debug, Clone)]
pub struct VirtualService {
    /// Metadata and source.
    pub meta: Meta,
    /// Hosts as written (expand with [`super::expand_host`] and `meta.namespace`); empty for a
    /// delegate.
    pub hosts: Vec<String>,
    /// Gateways as written; empty means `mesh`.
    pub gateways: Vec<String>,
    /// HTTP rules in order.
    pub http: Vec<HttpRoute>,
    /// TLS rules (validated, not yet routed by weft).
    pub tls: Vec<model::TlsRoute>,
    /// TCP rules (validated, not yet routed by weft).
    pub tcp: Vec<model::TcpRoute>,
    /// Visibility.
    pub export_to: ExportTo,
}

impl VirtualService {
    /// Whether the rules apply to sidecars (`gateways` empty or containing `mesh`).
    pub fn applies_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == "mesh")
    }

    /// Whether this is a delegate (no hosts).
    pub fn is_delegate(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// A checked HTTP rule.
#[derive(Debug, Clone)]
pub struct HttpRoute {
    /// Rule name.
    pub name: Option<String>,
    /// Match blocks (OR); empty means catch-all.
    pub matches: Vec<HttpMatch>,
    /// What to do with a matching request.
    pub action: RouteAction,
    /// Path/authority rewrite.
    pub rewrite: Option<Rewrite>,
    /// Total timeout including retries (`None`: disabled, Istio's default).
    pub timeout: Option<Duration>,
    /// Retry policy as written (`None`: Istio's default policy applies).
    pub retries: Option<model::HttpRetry>,
    /// Fault injection.
    pub fault: Option<model::HttpFaultInjection>,
    /// Mirrors (`mirror` + `mirrorPercentage` and `mirrors` in one list).
    pub mirrors: Vec<Mirror>,
    /// CORS policy.
    pub cors_policy: Option<model::CorsPolicy>,
    /// Rule-level header operations.
    pub headers: Option<model::Headers>,
}

/// The action of an HTTP rule: exactly one.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Forward to weighted destinations.
    Route(Vec<RouteDestination>),
    /// Answer with a redirect.
    Redirect(model::HttpRedirect),
    /// Answer directly.
    DirectResponse(model::HttpDirectResponse),
    /// Merge the routes of a delegate VirtualService.
    Delegate {
        /// Delegate name.
        name: String,
        /// Delegate namespace (`None`: the root's).
        namespace: Option<String>,
    },
}

/// A weighted destination of a rule.
#[derive(Debug, Clone)]
pub struct RouteDestination {
    /// Where to.
    pub destination: Destination,
    /// Relative weight as written (0 when omitted).
    pub weight: u32,
    /// Destination-level header operations.
    pub headers: Option<model::Headers>,
}

/// A checked destination (host as written, relative to the object's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Registry host as written.
    pub host: String,
    /// DestinationRule subset.
    pub subset: Option<String>,
    /// Service port.
    pub port: Option<u16>,
}

/// A mirror destination with its share (percent, 0..=100; absent in YAML means 100).
#[derive(Debug, Clone)]
pub struct Mirror {
    /// Where the copy goes.
    pub destination: Destination,
    /// Share of requests mirrored.
    pub percentage: f64,
    /// Where the destination is written (`spec.http[0].mirror` or `...mirrors[1].destination`).
    pub path: crate::path::FieldPath,
}

/// A checked rewrite.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Replacement for the matched prefix (or the whole path).
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
    /// Regex substitution on the path.
    pub uri_regex: Option<RegexRewrite>,
}

/// `uriRegexRewrite` with its compiled (unanchored) pattern.
#[derive(Debug, Clone)]
pub struct RegexRewrite {
    /// Pattern.
    pub regex: Regex,
    /// Replacement (`\1` style captures as in RE2).
    pub rewrite: String,
}

/// A checked match block: every set condition must hold.
#[derive(Debug, Clone, Default)]
pub struct HttpMatch {
    /// Match name.
    pub name: Option<String>,
    /// Path (without query).
    pub uri: Option<StringMatcher>,
    /// `:scheme`.
    pub scheme: Option<StringMatcher>,
    /// `:method`.
    pub method: Option<StringMatcher>,
    /// `:authority`.
    pub authority: Option<StringMatcher>,
    /// Header conditions, names lowercase.
    pub headers: Vec<(String, StringMatcher)>,
    /// Negated header conditions, names lowercase.
    pub without_headers: Vec<(String, StringMatcher)>,
    /// Query parameter conditions.
    pub query_params: Vec<(String, StringMatcher)>,
    /// Case-insensitive uri exact/prefix.
    pub ignore_uri_case: bool,
    /// Listener port selector.
    pub port: Option<u16>,
    /// Proxy label selector.
    pub source_labels: BTreeMap<String, String>,
    /// Proxy namespace selector.
    pub source_namespace: Option<String>,
    /// Gateway selector (`mesh` selects sidecars).
    pub gateways: Vec<String>,
    /// Stats prefix.
    pub stat_prefix: Option<String>,
}

/// A checked StringMatch.
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// Whole value equal.
    Exact(String),
    /// Raw string prefix.
    Prefix(String),
    /// Whole-value regex (compiled anchored).
    Regex(Regex),
    /// Present (`{}` or header `regex: "*"`).
    Present,
}

impl StringMatcher {
    /// Whether `value` matches (`ignore_case` applies to exact and prefix, ASCII only).
    pub fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            StringMatcher::Exact(exact) if ignore_case => exact.eq_ignore_ascii_case(value),
            StringMatcher::Exact(exact) => exact == value,
            StringMatcher::Prefix(prefix) if ignore_case => {
                value.len() >= prefix.len()
                    && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
            StringMatcher::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatcher::Regex(regex) => regex.is_match(value),
            StringMatcher::Present => true,
        }
    }

    /// A short description (`exact:/foo`, `prefix:/`, `regex:...`, `present`).
    pub fn describe(&self) -> String {
        match self {
            StringMatcher::Exact(exact) => format!("exact:{exact}"),
            StringMatcher::Prefix(prefix) => format!("prefix:{prefix}"),
            StringMatcher::Regex(regex) => format!("regex:{}", regex.as_str()),
            StringMatcher::Present => "present".to_string(),
        }
    }
}

/// A checked DestinationRule.
#[derive(Debug, Clone)]
pub struct DestinationRule {
    /// Metadata and source.
    pub meta: Meta,
    /// Host as written (relative to `meta.namespace`).
    pub host: String,
    /// Rule-level policy.
    pub traffic_policy: Option<model::TrafficPolicy>,
    /// Subsets in order.
    pub subsets: Vec<Subset>,
    /// Visibility.
    pub export_to: ExportTo,
    /// Client workload selector (same namespace only).
    pub workload_selector: Option<BTreeMap<String, String>>,
}

/// A checked subset.
#[derive(Debug, Clone)]
pub struct Subset {
    /// DNS-1123 label.
    pub name: String,
    /// Endpoint labels selected.
    pub labels: BTreeMap<String, String>,
    /// Per-component override of the rule-level policy.
    pub traffic_policy: Option<model::TrafficPolicy>,
}

/// A checked ServiceEntry.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    /// Metadata and source.
    pub meta: Meta,
    /// Hosts as written.
    pub hosts: Vec<String>,
    /// VIPs/CIDRs.
    pub addresses: Vec<String>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Location (default `MESH_EXTERNAL`).
    pub location: model::Location,
    /// Resolution (default `NONE`).
    pub resolution: model::Resolution,
    /// Inline endpoints.
    pub endpoints: Vec<WorkloadSpec>,
    /// WorkloadEntry selector labels.
    pub workload_selector: Option<BTreeMap<String, String>>,
    /// Visibility.
    pub export_to: ExportTo,
    /// SANs.
    pub subject_alt_names: Vec<String>,
}

/// A checked service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Port number.
    pub number: u16,
    /// Protocol as written.
    pub protocol: Option<String>,
    /// Port name.
    pub name: String,
    /// Endpoint port when different.
    pub target_port: Option<u16>,
}

/// A checked workload (WorkloadEntry spec or inline ServiceEntry endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// IP, DNS name or `unix://` path.
    pub address: String,
    /// Endpoint port per service port name.
    pub ports: BTreeMap<String, u16>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Network.
    pub network: Option<String>,
    /// Locality.
    pub locality: Option<String>,
    /// Load balancing weight.
    pub weight: Option<u32>,
    /// Service account.
    pub service_account: Option<String>,
}

/// A checked WorkloadEntry.
#[derive(Debug, Clone)]
pub struct WorkloadEntry {
    /// Metadata and source.
    pub meta: Meta,
    /// The workload.
    pub spec: WorkloadSpec,
}
