//! Istio's standard RED metrics (names, labels and Envoy's default buckets,
//! istio-model.md section 8) and the proxy's own `weft_proxy_*` health.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::{Arc, RwLock};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Istio's label names for HTTP metrics, in Istio's emission order.
pub const ISTIO_HTTP_LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

/// Envoy's default histogram buckets, used by Istio for all three
/// histograms (milliseconds and bytes alike).
pub const ENVOY_DEFAULT_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

pub const UNKNOWN: &str = "unknown";

/// What a proxy knows about one side of a request. Missing values are
/// `"unknown"`, as in Istio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub workload: String,
    pub namespace: String,
    pub principal: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub cluster: String,
}

impl Peer {
    pub fn unknown() -> Self {
        Self {
            workload: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            principal: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: "latest".into(),
            cluster: UNKNOWN.into(),
        }
    }

    /// `value`, or `default` when absent.
    pub(crate) fn unknown_field(value: Option<&str>, default: &str) -> String {
        value.unwrap_or(default).to_string()
    }

    /// A shared peer about which nothing is known yet (see [`Peer::not_yet_known`]), without
    /// allocating per request.
    pub fn shared_not_yet_known() -> Arc<Peer> {
        static NOT_YET_KNOWN: std::sync::LazyLock<Arc<Peer>> =
            std::sync::LazyLock::new(|| Arc::new(Peer::not_yet_known()));
        NOT_YET_KNOWN.clone()
    }

    /// A peer about which nothing is known yet, without allocating: every field is empty.
    /// Metrics render such a destination as [`Peer::unknown`].
    pub fn not_yet_known() -> Self {
        Self {
            workload: String::new(),
            namespace: String::new(),
            principal: String::new(),
            app: String::new(),
            version: String::new(),
            canonical_service: String::new(),
            canonical_revision: String::new(),
            cluster: String::new(),
        }
    }

    /// A peer described by workload name, namespace and pod-style labels
    /// (`app`, `version`, `service.istio.io/canonical-*`).
    pub fn from_labels<'a>(
        workload: &str,
        namespace: &str,
        labels: impl Fn(&str) -> Option<&'a str>,
    ) -> Self {
        let app = labels("app")
            .or_else(|| labels("app.kubernetes.io/name"))
            .unwrap_or(UNKNOWN);
        let version = labels("version")
            .or_else(|| labels("app.kubernetes.io/version"))
            .unwrap_or(UNKNOWN);
        let canonical_service = labels("service.istio.io/canonical-name")
            .or(if app == UNKNOWN { None } else { Some(app) })
            .unwrap_or(workload);
        let canonical_revision = labels("service.istio.io/canonical-revision")
            .or(if version == UNKNOWN {
                None
            } else {
                Some(version)
            })
            .unwrap_or("latest");
        Self {
            workload: workload.into(),
            namespace: namespace.into(),
            principal: UNKNOWN.into(),
            app: app.into(),
            version: version.into(),
            canonical_service: canonical_service.into(),
            canonical_revision: canonical_revision.into(),
            cluster: UNKNOWN.into(),
        }
    }
}

/// Which sidecar reports a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reporter {
    Source,
    Destination,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// The labels of one finished request.
#[derive(Clone, Debug)]
pub struct RequestLabels {
    pub reporter: Reporter,
    /// Shared: the proxy's own workload and each endpoint are computed once, and a request
    /// only takes a reference (a clone of eight `String`s per request before).
    pub source: Arc<Peer>,
    /// [`Peer::not_yet_known`] (empty workload) renders as `unknown`.
    pub destination: Arc<Peer>,
    /// FQDN of the destination service (from the Host header), or "unknown".
    pub destination_service: String,
    pub destination_service_name: String,
    pub destination_service_namespace: String,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
}

impl RequestLabels {
    fn values(&self) -> [&str; 25] {
        static UNKNOWN_PEER: std::sync::LazyLock<Peer> = std::sync::LazyLock::new(Peer::unknown);
        let code = response_code_str(self.response_code);
        let d = if self.destination.workload.is_empty() {
            &*UNKNOWN_PEER
        } else {
            &self.destination
        };
        let s = &self.source;
        [
            self.reporter.as_str(),
            &s.workload,
            &s.canonical_service,
            &s.canonical_revision,
            &s.namespace,
            &s.principal,
            &s.app,
            &s.version,
            &s.cluster,
            &d.workload,
            &d.namespace,
            &d.principal,
            &d.app,
            &d.version,
            &self.destination_service,
            &d.canonical_service,
            &d.canonical_revision,
            &self.destination_service_name,
            &self.destination_service_namespace,
            &d.cluster,
            self.request_protocol,
            code,
            "",
            self.response_flags,
            self.connection_security_policy,
        ]
    }
}

/// Static strings for the common status codes keep label lookup
/// allocation-free; anything else is rendered once and leaked into a small
/// bounded set (there are at most 1000 three-digit codes).
fn response_code_str(code: u16) -> &'static str {
    static CODES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| {
        (0..1000u16)
            .map(|c| &*Box::leak(c.to_string().into_boxed_str()))
            .collect()
    });
    codes.get(usize::from(code)).copied().unwrap_or("0")
}

/// The four series of one label set, resolved once.
struct Series {
    values: Box<[Box<str>]>,
    requests: IntCounter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// Label sets seen so far → their series, so that recording a request hashes its 25 label
/// values once with a fast hash instead of four times with prometheus' SipHash and lock.
#[derive(Default)]
struct SeriesCache {
    by_hash: RwLock<HashMap<u64, Arc<Series>>>,
}

/// Past this many label sets the cache stops growing (prometheus' own lookup still works).
const SERIES_CACHE_LIMIT: usize = 16 * 1024;

/// FxHash over the label values (not DoS-sensitive: values come from config and peers, and
/// a collision only costs a comparison).
fn hash_values(values: &[&str]) -> u64 {
    struct Fx(u64);
    impl Hasher for Fx {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
            }
            for byte in chunks.remainder() {
                self.0 = (self.0.rotate_left(5) ^ u64::from(*byte)).wrapping_mul(K);
            }
            self.0 = (self.0.rotate_left(5) ^ 0xff).wrapping_mul(K);
        }
    }
    let mut hasher = Fx(0);
    for value in values {
        hasher.write(value.as_bytes());
    }
    hasher.finish()
}

/// The proxy's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    series: Arc<SeriesCache>,
    registry: Registry,
    requests_total: IntCounterVec,
    request_duration: HistogramVec,
    request_bytes: HistogramVec,
    response_bytes: HistogramVec,
    pub spans_dropped: IntCounterVec,
    pub spans_exported: IntCounter,
    pub export_failures: IntCounterVec,
    pub span_queue_depth: IntGauge,
    pub active_connections: IntGauge,
    pub config_reloads: IntCounterVec,
    /// Inbound connections refused by PeerAuthentication or the mTLS handshake (issue 4).
    pub inbound_refused: IntCounterVec,
    /// 1 for the config version in force.
    pub config_info: IntGaugeVec,
    /// Configured share (percent) of each weighted route destination.
    pub route_weight: GaugeVec,
    /// Endpoints ejected by outlier detection now, per cluster.
    pub ejected_endpoints: IntGaugeVec,
    /// Ejections by outlier detection, per cluster.
    pub ejections: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new("istio_requests_total", "Requests handled by the proxy"),
            &ISTIO_HTTP_LABELS,
        )?;
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(ENVOY_DEFAULT_BUCKETS.to_vec()),
                &ISTIO_HTTP_LABELS,
            )
        };
        let request_duration = histogram(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds",
        )?;
        let request_bytes = histogram("istio_request_bytes", "Request size in bytes")?;
        let response_bytes = histogram("istio_response_bytes", "Response size in bytes")?;
        let spans_dropped = IntCounterVec::new(
            Opts::new(
                "weft_proxy_spans_dropped_total",
                "Spans dropped: queue_full (collector slow or away) or export_failed (refused)",
            ),
            &["reason"],
        )?;
        let spans_exported = IntCounter::new(
            "weft_proxy_spans_exported_total",
            "Spans accepted by the collector",
        )?;
        let export_failures = IntCounterVec::new(
            Opts::new(
                "weft_proxy_export_failures_total",
                "Failed OTLP export calls, by signal",
            ),
            &["signal"],
        )?;
        let span_queue_depth = IntGauge::new(
            "weft_proxy_span_queue_depth",
            "Spans waiting in the export queue",
        )?;
        let active_connections = IntGauge::new(
            "weft_proxy_active_connections",
            "Open downstream connections on all listeners",
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new("weft_proxy_config_reloads_total", "Config loads, by result"),
            &["result"],
        )?;
        let config_info = IntGaugeVec::new(
            Opts::new(
                "weft_proxy_config_info",
                "The mesh config version in force (value 1)",
            ),
            &["version"],
        )?;
        let route_weight = GaugeVec::new(
            Opts::new(
                "weft_route_weight",
                "Configured share in percent of a weighted route destination",
            ),
            &[
                "virtual_service",
                "route",
                "destination_service",
                "subset",
                "destination_version",
            ],
        )?;
        registry.register(Box::new(config_info.clone()))?;
        registry.register(Box::new(route_weight.clone()))?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(request_bytes.clone()))?;
        registry.register(Box::new(response_bytes.clone()))?;
        registry.register(Box::new(spans_dropped.clone()))?;
        registry.register(Box::new(spans_exported.clone()))?;
        registry.register(Box::new(export_failures.clone()))?;
        registry.register(Box::new(span_queue_depth.clone()))?;
        registry.register(Box::new(active_connections.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        let inbound_refused = IntCounterVec::new(
            Opts::new(
                "weft_proxy_inbound_connections_refused_total",
                "Inbound connections refused (PeerAuthentication, mTLS handshake), by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(inbound_refused.clone()))?;
        let ejected_endpoints = IntGaugeVec::new(
            Opts::new(
                "weft_proxy_ejected_endpoints",
                "Endpoints ejected by outlier detection, per cluster",
            ),
            &["cluster"],
        )?;
        let ejections = IntCounterVec::new(
            Opts::new(
                "weft_proxy_ejections_total",
                "Outlier detection ejections, per cluster",
            ),
            &["cluster"],
        )?;
        registry.register(Box::new(ejected_endpoints.clone()))?;
        registry.register(Box::new(ejections.clone()))?;
        Ok(Self {
            series: Arc::new(SeriesCache::default()),
            registry,
            requests_total,
            request_duration,
            request_bytes,
            response_bytes,
            spans_dropped,
            spans_exported,
            export_failures,
            span_queue_depth,
            active_connections,
            config_reloads,
            inbound_refused,
            config_info,
            route_weight,
            ejected_endpoints,
            ejections,
        })
    }

    /// Records one finished request.
    pub fn record_request(
        &self,
        labels: &RequestLabels,
        duration_ms: f64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let values = labels.values();
        let series = self.series(&values);
        series.requests.inc();
        series.duration.observe(duration_ms);
        series.request_bytes.observe(request_bytes as f64);
        series.response_bytes.observe(response_bytes as f64);
    }

    /// The series of a label set, from the cache when seen before.
    fn series(&self, values: &[&str; 25]) -> Arc<Series> {
        let hash = hash_values(values);
        if let Ok(cache) = self.series.by_hash.read()
            && let Some(series) = cache.get(&hash)
            && series.values.iter().zip(values).all(|(a, b)| &**a == *b)
        {
            return series.clone();
        }
        let series = Arc::new(Series {
            values: values.iter().map(|v| Box::from(*v)).collect(),
            requests: self.requests_total.with_label_values(values),
            duration: self.request_duration.with_label_values(values),
            request_bytes: self.request_bytes.with_label_values(values),
            response_bytes: self.response_bytes.with_label_values(values),
        });
        if let Ok(mut cache) = self.series.by_hash.write()
            && cache.len() < SERIES_CACHE_LIMIT
        {
            cache.insert(hash, series.clone());
        }
        series
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }

    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }
}
