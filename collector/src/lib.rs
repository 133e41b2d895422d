//! weft-collector: receives OTLP spans and metrics from the proxies (gRPC and
//! HTTP) and Zipkin v2 spans from any Zipkin client, stores them (SQLite or PostgreSQL, see [`store`]), and serves the
//! query APIs (native `/api/weft/*` for the dashboard, Jaeger v1 `/api/*` for
//! Grafana) and the dashboard on one HTTP listener.
//!
//! **Invariant:** an export is acknowledged only after the transaction that
//! stores it has committed; an invalid export stores nothing.
//!
//! ```no_run
//! # async fn run() -> Result<(), weft_collector::Error> {
//! let collector = weft_collector::Config {
//!     db: "sqlite://./weft-data/weft.db".into(),
//!     http: "127.0.0.1:16686".parse().unwrap(),
//!     otlp_grpc: "127.0.0.1:4317".parse().unwrap(),
//!     otlp_http: "127.0.0.1:4318".parse().unwrap(),
//!     zipkin: Some("127.0.0.1:9411".parse().unwrap()),
//!     ..Default::default()
//! }
//! .build()
//! .await?;
//! collector.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! # Ok(()) }
//! ```

mod api;
mod body;
mod error;
pub mod export;
mod graph;
mod ingest;
mod otlp;
mod periodic;
mod prom;
pub mod retention;
pub mod statistics;
pub mod store;
pub mod zipkin;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use api::auth::{Auth, AuthParseError};
pub use error::Error;
pub use export::{ExportStats, ExportTarget};
use store::Store;

/// How long [`Collector::shutdown`] waits for in-flight requests before it
/// drops the remaining connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the collector stores data and listens. Every address may use port 0.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://PATH` (the file and its directory are created if missing;
    /// `?synchronous=normal` trades power-loss durability for ingest rate,
    /// see [`store::sqlite::Durability`]) or `postgres://...`.
    pub db: String,
    /// Dashboard, native API and Jaeger query API.
    pub http: SocketAddr,
    /// OTLP/gRPC receiver.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP receiver (`/v1/traces`, `/v1/metrics`).
    pub otlp_http: SocketAddr,
    /// Zipkin v2 listener (ingest `POST /api/v2/spans` and the Zipkin query
    /// API; both are also on `http`). `None`: no separate listener.
    pub zipkin: Option<SocketAddr>,
    /// Spans older than this are deleted in the background (default 7 days).
    pub retention: Duration,
    /// Keep at most this many spans, deleting the oldest (default: no cap).
    pub max_spans: Option<u64>,
    /// Forward every received span to these backends.
    pub export: Vec<ExportTarget>,
    /// Export requests (OTLP and Zipkin, all listeners) handled at once; more
    /// are refused with 429/503 + `Retry-After` or gRPC `UNAVAILABLE`.
    pub max_in_flight_writes: usize,
    /// Credentials required on the HTTP listener (UI and every API there;
    /// `/healthz` and `/ready` stay open). `None` (the default): open.
    pub auth: Option<Auth>,
}

/// Default [`Config::retention`].
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default [`Config::max_in_flight_writes`].
pub const DEFAULT_MAX_IN_FLIGHT_WRITES: usize = 32;

impl Default for Config {
    /// `sqlite://./weft-data/weft.db`, the standard ports on 127.0.0.1
    /// (16686, 4317, 4318), no Zipkin listener, 7 days of retention.
    fn default() -> Self {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self {
            db: "sqlite://./weft-data/weft.db".to_owned(),
            http: local(16686),
            otlp_grpc: local(4317),
            otlp_http: local(4318),
            zipkin: None,
            retention: DEFAULT_RETENTION,
            max_spans: None,
            export: Vec::new(),
            max_in_flight_writes: DEFAULT_MAX_IN_FLIGHT_WRITES,
            auth: None,
        }
    }
}

/// A running collector: listeners bound, servers running.
pub struct Collector {
    http_addr: SocketAddr,
    otlp_grpc_addr: SocketAddr,
    otlp_http_addr: SocketAddr,
    zipkin_addr: Option<SocketAddr>,
    store: Arc<dyn Store>,
    retention: retention::Policy,
    exporters: export::Exporters,
    shutdown: watch::Sender<bool>,
    servers: JoinSet<(&'static str, io::Result<()>)>,
    /// Retention and export workers.
    background: JoinSet<()>,
}

// === impl Config ===

impl Config {
    /// Opens and migrates the store, binds all listeners and starts serving.
    ///
    /// When this returns, the bound addresses are known and connections are
    /// accepted.
    pub async fn build(self) -> Result<Collector, Error> {
        let store = store::open(&self.db).await?;
        let listeners = async {
            Ok::<_, Error>((
                bind("http", self.http).await?,
                bind("otlp-grpc", self.otlp_grpc).await?,
                bind("otlp-http", self.otlp_http).await?,
                match self.zipkin {
                    Some(addr) => Some(bind("zipkin", addr).await?),
                    None => None,
                },
            ))
        };
        let (
            (http, http_addr),
            (otlp_grpc, otlp_grpc_addr),
            (otlp_http, otlp_http_addr),
            zipkin_listener,
        ) = match listeners.await {
            Ok(listeners) => listeners,
            Err(error) => {
                store.close().await;
                return Err(error);
            }
        };

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut background = JoinSet::new();
        let exporters =
            match export::Exporters::start(&self.export, &mut background, shutdown_rx.clone()) {
                Ok(exporters) => exporters,
                Err(error) => {
                    store.close().await;
                    return Err(error.into());
                }
            };
        let retention = retention::Policy {
            max_age: self.retention,
            max_spans: self.max_spans,
        };
        background.spawn(retention::run(
            store.clone(),
            retention,
            shutdown_rx.clone(),
        ));
        background.spawn(statistics::run(store.clone(), shutdown_rx.clone()));
        let ingest =
            ingest::Ingest::new(store.clone(), self.max_in_flight_writes, exporters.clone());
        let mut servers = JoinSet::new();
        let zipkin_addr = zipkin_listener.as_ref().map(|(_, addr)| *addr);
        let mut http_router = api::router(store.clone()).merge(zipkin::router(ingest.clone()));
        if let Some(auth) = &self.auth {
            http_router = http_router.layer(axum::middleware::from_fn_with_state(
                api::auth::Guard::new(auth),
                api::auth::require,
            ));
        }
        let mut routers = vec![
            ("http", http, http_router),
            ("otlp-grpc", otlp_grpc, otlp::grpc::router(ingest.clone())),
            ("otlp-http", otlp_http, otlp::http::router(ingest.clone())),
        ];
        if let Some((listener, _)) = zipkin_listener {
            routers.push(("zipkin", listener, zipkin::router(ingest)));
        }
        for (name, listener, router) in routers {
            let mut shutdown_rx = shutdown_rx.clone();
            servers.spawn(async move {
                let signal = async move {
                    let _ = shutdown_rx.wait_for(|stop| *stop).await;
                };
                let result = axum::serve(listener, router)
                    .with_graceful_shutdown(signal)
                    .await;
                (name, result)
            });
        }
        tracing::info!(%http_addr, %otlp_grpc_addr, %otlp_http_addr, ?zipkin_addr, "collector listening");
        Ok(Collector {
            http_addr,
            otlp_grpc_addr,
            otlp_http_addr,
            zipkin_addr,
            store,
            retention,
            exporters,
            shutdown,
            servers,
            background,
        })
    }
}

async fn bind(
    listener: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), Error> {
    let bind_error = |source| Error::Bind {
        listener,
        addr,
        source,
    };
    let bound = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = bound.local_addr().map_err(bind_error)?;
    Ok((bound, local_addr))
}

// === impl Collector ===

impl Collector {
    /// The dashboard / query API address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The OTLP/gRPC receiver address.
    pub fn otlp_grpc_addr(&self) -> SocketAddr {
        self.otlp_grpc_addr
    }

    /// The OTLP/HTTP receiver address.
    pub fn otlp_http_addr(&self) -> SocketAddr {
        self.otlp_http_addr
    }

    /// The Zipkin listener's address, when [`Config::zipkin`] is set.
    pub fn zipkin_addr(&self) -> Option<SocketAddr> {
        self.zipkin_addr
    }

    /// Runs one retention pass now (the background task runs one every
    /// [`retention::INTERVAL`]).
    pub async fn enforce_retention(&self) -> Result<retention::Report, store::StoreError> {
        retention::enforce(self.store.as_ref(), self.retention).await
    }

    /// Counters of each export target, in [`Config::export`] order.
    pub fn export_stats(&self) -> Vec<ExportStats> {
        self.exporters.stats()
    }

    /// Stops accepting connections, lets in-flight requests finish (at most
    /// [`DRAIN_TIMEOUT`]), then closes the store.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Some(joined) = self.servers.join_next().await {
                log_server_end(joined);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("collector: in-flight requests did not finish in time; dropping them");
            self.servers.shutdown().await;
        }
        // Retention and export workers watch the same signal.
        while self.background.join_next().await.is_some() {}
        self.store.close().await;
        tracing::info!("collector stopped");
    }

    /// Runs until one of the servers ends (normally never), then shuts the
    /// others down.
    pub async fn wait(mut self) {
        if let Some(joined) = self.servers.join_next().await {
            log_server_end(joined);
        }
        self.shutdown().await;
    }

    /// Runs until `signal` completes (then shuts down gracefully) or a server
    /// ends.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) {
        tokio::select! {
            () = signal => {}
            joined = self.servers.join_next() => {
                if let Some(joined) = joined {
                    log_server_end(joined);
                }
            }
        }
        self.shutdown().await;
    }
}

fn log_server_end(joined: Result<(&'static str, io::Result<()>), tokio::task::JoinError>) {
    match joined {
        Ok((name, Ok(()))) => tracing::debug!(server = name, "server stopped"),
        Ok((name, Err(error))) => tracing::error!(server = name, %error, "server failed"),
        Err(error) => tracing::error!(%error, "server task failed"),
    }
}
