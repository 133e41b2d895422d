//! The weft sidecar: an outbound listener the application uses as its HTTP
//! proxy, an inbound listener that peers call and that forwards to the local
//! application, and an admin listener (`/metrics`, `/ready`,
//! `/config_dump`). Routing follows the compiled Istio config
//! ([`weft_config::Snapshot`]); every request is traced (W3C and B3) and
//! counted with Istio's standard metrics, and telemetry leaves the proxy in
//! the background without ever holding up a request.

pub mod admin;
pub mod authz;
mod control_watch;
pub mod http;
pub mod inbound;
pub mod listen;
pub mod outbound;
pub mod peer;
mod reload;
mod swap;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod traffic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ::http::HeaderValue;
use arc_swap::ArcSwap;
use tokio::sync::watch;
use weft_config::{ProxyIdentity, Snapshot};

pub use listen::Listen;

use crate::telemetry::export::string_attribute;
use crate::telemetry::{ExportConfig, Exporter, Metrics, Peer, SpanSink, Telemetry};
use crate::trace::Sampler;

/// Everything a proxy needs to start; plain data, built by the CLI or tests.
#[derive(Debug)]
pub struct Config {
    /// Workload name (`destination_workload` / `source_workload`).
    pub workload: String,
    pub namespace: String,
    pub service_account: String,
    /// Pod-style labels: `app` and `version` name the canonical service.
    pub labels: BTreeMap<String, String>,
    /// Istio YAML files or folders.
    pub config_paths: Vec<PathBuf>,
    /// The local application the inbound listener forwards to.
    pub app: SocketAddr,
    pub inbound: Listen,
    pub outbound: Listen,
    pub admin: Listen,
    /// OTLP/gRPC endpoint of the collector; `None` disables export.
    pub collector: Option<String>,
    /// Share of new traces that are sampled (0.0..=1.0). Traces started
    /// upstream keep their caller's decision.
    pub sampling_rate: f64,
    pub metrics_interval: Duration,
    /// Mutual TLS: where the workload certificate comes from. `None`: plaintext only (a
    /// STRICT PeerAuthentication then refuses every peer).
    pub tls: Option<tls::MeshTlsConfig>,
    /// Export knobs with sensible defaults.
    pub telemetry: TelemetryOptions,
}

/// Telemetry export options beyond the collector address.
#[derive(Clone, Copy, Debug)]
pub struct TelemetryOptions {
    pub protocol: telemetry::export::OtlpProtocol,
    /// Spans held while the collector is slow or away.
    pub span_queue_capacity: usize,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        Self {
            protocol: telemetry::export::OtlpProtocol::Grpc,
            span_queue_capacity: telemetry::export::DEFAULT_SPAN_QUEUE_CAPACITY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid mesh config:\n{0}")]
    Config(String),
    #[error("cannot bind the {listener} listener: {source}")]
    Bind {
        listener: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Collector(#[from] telemetry::export::ExportError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("workload identity: {0}")]
    Tls(#[from] tls::TlsError),
}

/// The workload's mTLS identity and upstream clients (issue 4).
pub(crate) struct MeshTls {
    pub identity: Arc<tls::IdentityState>,
    pub clients: tls::MeshClients,
    renewal: tls::WorkloadIdentity,
}

/// State shared by all requests of one proxy.
pub(crate) struct Shared {
    pub identity: ProxyIdentity,
    /// This workload as a metrics peer.
    pub me: Arc<Peer>,
    /// This workload encoded for the peer-metadata header.
    pub me_header: Option<HeaderValue>,
    /// This workload's span attributes, encoded once: `weft.source.*` on its outbound spans,
    /// `weft.destination.*` on its inbound ones.
    pub me_as_source: telemetry::span::EncodedAttributes,
    pub me_as_destination: telemetry::span::EncodedAttributes,
    pub snapshot: ArcSwap<Snapshot>,
    pub telemetry: Arc<Telemetry>,
    pub sampler: Sampler,
    pub client: http::forward::HttpClient,
    /// Per-cluster runtime state (balancers, pools, outlier detection).
    pub traffic: Arc<traffic::Traffic>,
    pub app: SocketAddr,
    pub app_authority: String,
    /// Mutual TLS (`None`: plaintext only).
    pub mesh: Option<MeshTls>,
    /// JWKS fetched for RequestAuthentication `jwksUri`.
    pub jwks: authz::jwt::JwksCache,
    /// TLS origination clients (DestinationRule `tls.mode` SIMPLE / MUTUAL).
    pub origination: tls::origination::OriginationClients,
    /// This proxy's own listeners: passthrough to one of them is a loop.
    pub own_addrs: [SocketAddr; 3],
}

impl Shared {
    /// Whether `host:port` is one of this proxy's own listeners.
    pub(crate) fn is_own_address(&self, host: &str, port: u16) -> bool {
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        else {
            return host == "localhost" && self.own_addrs.iter().any(|a| a.port() == port);
        };
        self.own_addrs.iter().any(|own| {
            own.port() == port
                && (own.ip() == ip || (own.ip().is_unspecified() && ip.is_loopback()))
        })
    }
}

/// A running proxy.
pub struct Proxy {
    inbound_addr: SocketAddr,
    outbound_addr: SocketAddr,
    admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    exporter: Option<Exporter>,
    shared: Arc<Shared>,
}

impl Config {
    /// Loads and compiles the mesh config, binds the three listeners and
    /// starts serving. Returns once every listener is bound.
    pub async fn build(self) -> Result<Proxy, Error> {
        let identity = ProxyIdentity {
            workload: self.workload.clone(),
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            labels: self.labels.clone(),
        };
        // Config source: the control plane's watch (`weft proxy --control`) or files.
        let control_config = self.tls.clone().filter(|tls| tls.config_from_control);
        let (snapshot, control_version) = match &control_config {
            Some(_) if !self.config_paths.is_empty() => {
                return Err(Error::Config(
                    "the mesh config comes from files or from the control plane, not both".into(),
                ));
            }
            Some(tls) => {
                let (version, snapshot) = control_watch::initial(tls, &identity).await?;
                (snapshot, Some(version))
            }
            None => (load_snapshot(&self.config_paths, &identity)?, None),
        };
        let (stop, stop_rx) = watch::channel(false);
        let mesh = match &self.tls {
            Some(config) => {
                let spiffe_id = format!(
                    "spiffe://{}/ns/{}/sa/{}",
                    config.trust_domain, self.namespace, self.service_account
                );
                let renewal = tls::WorkloadIdentity::start(
                    config.clone(),
                    spiffe_id,
                    Duration::from_secs(15),
                    stop_rx.clone(),
                )
                .await?;
                Some(MeshTls {
                    identity: renewal.state.clone(),
                    clients: tls::MeshClients::new(renewal.state.clone()),
                    renewal,
                })
            }
            None => None,
        };
        let metrics = Metrics::new()?;
        metrics.config_reloads.with_label_values(&["success"]).inc();
        telemetry::routes::publish(&snapshot, &metrics);

        let mut me = Peer::from_labels(&self.workload, &self.namespace, |k| {
            self.labels.get(k).map(String::as_str)
        });
        if let Some(mesh) = &mesh {
            me.principal = mesh.identity.spiffe_id.clone();
        }
        let (spans, exporter) = match &self.collector {
            Some(endpoint) => {
                let export = ExportConfig {
                    endpoint: endpoint.clone(),
                    protocol: self.telemetry.protocol,
                    metrics_interval: self.metrics_interval,
                    span_queue_capacity: self.telemetry.span_queue_capacity,
                };
                let (sink, exporter) = Exporter::start(&export, resource(&me), metrics.clone())?;
                (sink, Some(exporter))
            }
            None => (SpanSink::disabled(metrics.clone()), None),
        };
        let bind = |listen: Listen, listener: &'static str| async move {
            listen
                .bind()
                .await
                .map_err(|source| Error::Bind { listener, source })
        };
        let inbound = bind(self.inbound, "inbound").await?;
        let outbound = bind(self.outbound, "outbound").await?;
        let admin = bind(self.admin, "admin").await?;
        let local = |l: &tokio::net::TcpListener, listener| {
            l.local_addr()
                .map_err(|source| Error::Bind { listener, source })
        };
        let (inbound_addr, outbound_addr, admin_addr) = (
            local(&inbound, "inbound")?,
            local(&outbound, "outbound")?,
            local(&admin, "admin")?,
        );

        let traffic = Arc::new(traffic::Traffic::new(&snapshot, metrics.clone()));
        let shared = Arc::new(Shared {
            identity,
            me_header: peer::encode(&me),
            me_as_source: telemetry::span::EncodedAttributes::new(&[
                ("weft.source.workload", &me.workload),
                ("weft.source.namespace", &me.namespace),
                ("weft.source.version", &me.version),
            ]),
            me_as_destination: telemetry::span::EncodedAttributes::new(&[
                ("weft.destination.workload", &me.workload),
                ("weft.destination.namespace", &me.namespace),
                ("weft.destination.version", &me.version),
            ]),
            me: Arc::new(me),
            traffic,
            snapshot: ArcSwap::from_pointee(snapshot),
            telemetry: Arc::new(Telemetry {
                metrics: metrics.clone(),
                spans,
            }),
            sampler: Sampler::new(self.sampling_rate),
            client: http::forward::client(),
            app: self.app,
            app_authority: self.app.to_string(),
            mesh,
            jwks: authz::jwt::JwksCache::default(),
            origination: Default::default(),
            own_addrs: [inbound_addr, outbound_addr, admin_addr],
        });

        let mut servers = vec![
            // Inbound: PeerAuthentication, mTLS and authorization (issue 4).
            tokio::spawn(tls::inbound::serve(
                inbound,
                shared.clone(),
                {
                    let shared = shared.clone();
                    move |request, conn| inbound::handle(shared.clone(), request, conn)
                },
                stop_rx.clone(),
            )),
            tokio::spawn(listen::serve(
                outbound,
                {
                    let shared = shared.clone();
                    move |request, remote| outbound::handle(shared.clone(), request, remote)
                },
                metrics.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(listen::serve(
                admin,
                {
                    let shared = shared.clone();
                    move |request, _remote| admin::handle(shared.clone(), request)
                },
                metrics,
                stop_rx.clone(),
            )),
        ];
        servers.extend(reload::spawn(
            shared.clone(),
            self.config_paths.clone(),
            stop.subscribe(),
        ));
        if let (Some(tls), Some(version)) = (control_config, control_version) {
            servers.push(control_watch::spawn(shared.clone(), tls, version, stop_rx));
        }
        tracing::info!(
            workload = %shared.identity.workload,
            %inbound_addr, %outbound_addr, %admin_addr,
            "proxy listening"
        );
        Ok(Proxy {
            inbound_addr,
            outbound_addr,
            admin_addr,
            stop,
            servers,
            exporter,
            shared,
        })
    }
}

/// The runtime for a proxy process: `threads == 1` is a current-thread runtime (one worker,
/// as the benchmark runs every proxy), `0` one worker per core, else `threads` workers.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Runtime::new(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

fn load_snapshot(paths: &[PathBuf], identity: &ProxyIdentity) -> Result<Snapshot, Error> {
    let (mesh, findings) = weft_config::load(paths).map_err(|e| Error::Config(e.to_string()))?;
    for finding in findings
        .iter()
        .filter(|f| f.severity == weft_config::Severity::Warning)
    {
        tracing::warn!("{finding}");
    }
    Ok(Snapshot::compile(&mesh, identity))
}

/// The OTLP resource of this proxy's telemetry: `service.name` is the
/// canonical service (the `app` label), as Kiali and Jaeger group by it.
fn resource(me: &Peer) -> opentelemetry_proto::tonic::resource::v1::Resource {
    opentelemetry_proto::tonic::resource::v1::Resource {
        attributes: vec![
            string_attribute("service.name", &me.canonical_service),
            string_attribute("service.version", &me.canonical_revision),
            string_attribute("service.namespace", &me.namespace),
            string_attribute("k8s.namespace.name", &me.namespace),
            string_attribute("weft.workload", &me.workload),
            string_attribute("telemetry.sdk.name", "weft-proxy"),
            string_attribute("telemetry.sdk.language", "rust"),
        ],
        ..Default::default()
    }
}

impl Proxy {
    pub fn inbound_addr(&self) -> SocketAddr {
        self.inbound_addr
    }

    pub fn outbound_addr(&self) -> SocketAddr {
        self.outbound_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The workload's SPIFFE identity state (`None` without mTLS).
    pub fn identity(&self) -> Option<Arc<tls::IdentityState>> {
        self.shared.mesh.as_ref().map(|mesh| mesh.identity.clone())
    }

    /// The version of the config snapshot in force.
    pub fn config_version(&self) -> String {
        self.shared.snapshot.load().version().to_string()
    }

    /// Stops accepting, lets in-flight requests finish, then flushes spans
    /// and pushes metrics a last time.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(mesh) = &self.shared.mesh {
            mesh.renewal.stop();
        }
        for server in self.servers {
            let _ = server.await;
        }
        // The span queue closes when the last sender (held by `shared`) goes.
        drop(self.shared);
        if let Some(exporter) = self.exporter {
            exporter.shutdown().await;
        }
    }
}
