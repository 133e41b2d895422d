//! DestinationRule (`api: networking/v1alpha3/destination_rule.proto`; istio-model.md §2).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{LabelSelector, PortSelector, null_default};
use crate::duration;

/// `DestinationRule.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// Registry host (short names relative to the rule's namespace; wildcard prefix allowed).
    #[serde(default)]
    pub host: String,
    /// Policy for all subsets and ports.
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named endpoint subsets.
    #[serde(default, deserialize_with = "null_default")]
    pub subsets: Vec<Subset>,
    /// Visibility.
    #[serde(default, deserialize_with = "null_default")]
    pub export_to: Vec<String>,
    /// Client workloads (same namespace) this rule applies to.
    pub workload_selector: Option<LabelSelector>,
}

/// `TrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancing.
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Circuit-breaker thresholds.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Passive health checking (only active when present).
    pub outlier_detection: Option<OutlierDetection>,
    /// Upstream TLS; absent means auto mTLS.
    pub tls: Option<ClientTlsSettings>,
    /// Per service port policies (replace the rule-level policy entirely).
    #[serde(default, deserialize_with = "null_default")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// HTTP CONNECT/POST tunnelling.
    pub tunnel: Option<TunnelSettings>,
    /// PROXY protocol toward the upstream.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Retry budget.
    pub retry_budget: Option<RetryBudget>,
}

/// `TrafficPolicy.PortTrafficPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    /// Service port.
    pub port: Option<PortSelector>,
    /// Load balancing.
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Circuit-breaker thresholds.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Passive health checking.
    pub outlier_detection: Option<OutlierDetection>,
    /// Upstream TLS.
    pub tls: Option<ClientTlsSettings>,
}

/// `LoadBalancerSettings`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    /// Simple algorithm (Istio's default is LEAST_REQUEST).
    pub simple: Option<SimpleLb>,
    /// Consistent hashing.
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality weighting and failover.
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Deprecated slow start window.
    #[serde(default, deserialize_with = "duration::optional")]
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start.
    pub warmup: Option<WarmupConfiguration>,
}

/// `LoadBalancerSettings.SimpleLB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Istio default (LEAST_REQUEST).
    Unspecified,
    /// Deprecated alias of LEAST_REQUEST.
    LeastConn,
    /// Random.
    Random,
    /// Original destination.
    Passthrough,
    /// Round robin.
    RoundRobin,
    /// Least request (power of two choices).
    LeastRequest,
}

/// `LoadBalancerSettings.ConsistentHashLB`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    /// Hash on a header.
    pub http_header_name: Option<String>,
    /// Hash on a cookie (generated if absent).
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the source IP.
    pub use_source_ip: Option<bool>,
    /// Hash on a query parameter.
    pub http_query_parameter_name: Option<String>,
    /// Ring hash algorithm.
    pub ring_hash: Option<RingHash>,
    /// Maglev algorithm.
    pub maglev: Option<Maglev>,
    /// Deprecated ring size.
    pub minimum_ring_size: Option<u64>,
}

/// `ConsistentHashLB.HTTPCookie`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    /// Cookie name (required).
    #[serde(default)]
    pub name: String,
    /// Cookie path.
    pub path: Option<String>,
    /// Lifetime of a generated cookie (0 = session cookie).
    #[serde(default, deserialize_with = "duration::optional")]
    pub ttl: Option<Duration>,
    /// Extra cookie attributes.
    #[serde(default, deserialize_with = "null_default")]
    pub attributes: Vec<CookieAttribute>,
}

/// `HTTPCookie.Attribute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CookieAttribute {
    /// Attribute name.
    #[serde(default)]
    pub name: String,
    /// Attribute value.
    pub value: Option<String>,
}

/// `ConsistentHashLB.RingHash`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingHash {
    /// Default 1024.
    pub minimum_ring_size: Option<u64>,
}

/// `ConsistentHashLB.MagLev`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Maglev {
    /// Prime table size, default 65537.
    pub table_size: Option<u64>,
}

/// `LocalityLoadBalancerSetting`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Weighted distribution per source locality.
    #[serde(default, deserialize_with = "null_default")]
    pub distribute: Vec<LocalityDistribute>,
    /// Region failover.
    #[serde(default, deserialize_with = "null_default")]
    pub failover: Vec<LocalityFailover>,
    /// Label-based failover priority.
    #[serde(default, deserialize_with = "null_default")]
    pub failover_priority: Vec<String>,
    /// Enable locality load balancing.
    pub enabled: Option<bool>,
}

/// `LocalityLoadBalancerSetting.Distribute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityDistribute {
    /// Source locality (`region/zone/subzone`, `*` suffix allowed).
    #[serde(default)]
    pub from: String,
    /// Destination localities and weights (sum 100).
    #[serde(default, deserialize_with = "null_default")]
    pub to: BTreeMap<String, u32>,
}

/// `LocalityLoadBalancerSetting.Failover`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityFailover {
    /// Source region.
    #[serde(default)]
    pub from: String,
    /// Failover region.
    #[serde(default)]
    pub to: String,
}

/// `WarmupConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmupConfiguration {
    /// Window (required).
    #[serde(default, deserialize_with = "duration::optional")]
    pub duration: Option<Duration>,
    /// Starting share of traffic, 0..100 (default 10).
    pub minimum_percent: Option<f64>,
    /// Ramp curve, ≥1 (default 1.0).
    pub aggression: Option<f64>,
}

/// `ConnectionPoolSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    /// TCP limits.
    pub tcp: Option<TcpSettings>,
    /// HTTP limits.
    pub http: Option<HttpSettings>,
}

/// `ConnectionPoolSettings.TCPSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    /// Max connections (default 2³²−1).
    pub max_connections: Option<i32>,
    /// Connect timeout (mesh default 10s).
    #[serde(default, deserialize_with = "duration::optional")]
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Max connection lifetime.
    #[serde(default, deserialize_with = "duration::optional")]
    pub max_connection_duration: Option<Duration>,
    /// Idle timeout (default 1h).
    #[serde(default, deserialize_with = "duration::optional")]
    pub idle_timeout: Option<Duration>,
}

/// `TCPSettings.TcpKeepalive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Probes before dropping.
    pub probes: Option<u32>,
    /// Idle time before probing.
    #[serde(default, deserialize_with = "duration::optional")]
    pub time: Option<Duration>,
    /// Probe interval.
    #[serde(default, deserialize_with = "duration::optional")]
    pub interval: Option<Duration>,
}

/// `ConnectionPoolSettings.HTTPSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// Max pending requests.
    pub http1_max_pending_requests: Option<i32>,
    /// Max active requests.
    pub http2_max_requests: Option<i32>,
    /// Requests per connection (1 disables keep-alive).
    pub max_requests_per_connection: Option<i32>,
    /// Max concurrent retries.
    pub max_retries: Option<i32>,
    /// Upstream connection idle timeout.
    #[serde(default, deserialize_with = "duration::optional")]
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 upgrade.
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Use the client's protocol upstream.
    pub use_client_protocol: Option<bool>,
    /// Max concurrent HTTP/2 streams.
    pub max_concurrent_streams: Option<i32>,
    /// HTTP/2 PING keepalive.
    pub http2_keep_alive: Option<Http2KeepAlive>,
}

/// `HTTPSettings.HTTP2KeepAlive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http2KeepAlive {
    /// PING interval.
    #[serde(default, deserialize_with = "duration::optional")]
    pub interval: Option<Duration>,
    /// PING timeout.
    #[serde(default, deserialize_with = "duration::optional")]
    pub timeout: Option<Duration>,
}

/// `HTTPSettings.H2UpgradePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// Mesh default.
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Upgrade to HTTP/2.
    Upgrade,
}

/// `OutlierDetection` (active only when present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Count local-origin failures separately.
    pub split_external_local_origin_errors: Option<bool>,
    /// Local-origin failures before ejection (default 5).
    pub consecutive_local_origin_failures: Option<u32>,
    /// 502/503/504 before ejection (off unless set).
    pub consecutive_gateway_errors: Option<u32>,
    /// 5xx before ejection (default 5; 0 disables).
    pub consecutive_5xx_errors: Option<u32>,
    /// Sweep interval (default 10s).
    #[serde(default, deserialize_with = "duration::optional")]
    pub interval: Option<Duration>,
    /// Base ejection time (default 30s).
    #[serde(default, deserialize_with = "duration::optional")]
    pub base_ejection_time: Option<Duration>,
    /// Max share of hosts ejected (default 10).
    pub max_ejection_percent: Option<i32>,
    /// Panic threshold (Istio default 0: panic mode off).
    pub min_health_percent: Option<i32>,
    /// Deprecated.
    pub consecutive_errors: Option<i32>,
}

/// `ClientTLSSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTlsSettings {
    /// TLS mode.
    pub mode: Option<TlsMode>,
    /// Client certificate file (MUTUAL).
    pub client_certificate: Option<String>,
    /// Private key file (MUTUAL).
    pub private_key: Option<String>,
    /// CA bundle file.
    pub ca_certificates: Option<String>,
    /// Secret holding the credentials.
    pub credential_name: Option<String>,
    /// SANs to verify.
    #[serde(default, deserialize_with = "null_default")]
    pub subject_alt_names: Vec<String>,
    /// SNI to send.
    pub sni: Option<String>,
    /// Skip server verification.
    pub insecure_skip_verify: Option<bool>,
    /// CRL file.
    pub ca_crl: Option<String>,
}

/// `ClientTLSSettings.TLSmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// Originate TLS.
    Simple,
    /// Originate mutual TLS with given certificates.
    Mutual,
    /// Mutual TLS with the workload certificate.
    IstioMutual,
}

/// `TrafficPolicy.TunnelSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSettings {
    /// `CONNECT` (default) or `POST`.
    pub protocol: Option<String>,
    /// Tunnel target host.
    #[serde(default)]
    pub target_host: String,
    /// Tunnel target port.
    #[serde(default)]
    pub target_port: u32,
}

/// `TrafficPolicy.ProxyProtocol`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocol {
    /// Protocol version.
    pub version: Option<ProxyProtocolVersion>,
}

/// `ProxyProtocol.VERSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ProxyProtocolVersion {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// `TrafficPolicy.RetryBudget`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Share of active requests that may be retries (default 20).
    pub percent: Option<f64>,
    /// Retries always allowed (default 3).
    pub min_retry_concurrency: Option<u32>,
}

/// `Subset`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// DNS-1123 label, unique in the rule.
    #[serde(default)]
    pub name: String,
    /// Endpoint labels selected (endpoint labels ⊇ these).
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// Overrides the rule-level policy per component.
    pub traffic_policy: Option<TrafficPolicy>,
}
