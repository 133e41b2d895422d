//! weft-collector: receives OTLP spans and metrics from the proxies (gRPC and
//! HTTP), stores them (SQLite or PostgreSQL, see [`store`]), and serves the
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
//! }
//! .build()
//! .await?;
//! collector.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! # Ok(()) }
//! ```

mod api;
mod error;
mod graph;
mod otlp;
pub mod store;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use error::Error;
use store::Store;

/// How long [`Collector::shutdown`] waits for in-flight requests before it
/// drops the remaining connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the collector stores data and listens. Every address may use port 0.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://PATH` (the file and its directory are created if missing)
    /// or `postgres://...`.
    pub db: String,
    /// Dashboard, native API and Jaeger query API.
    pub http: SocketAddr,
    /// OTLP/gRPC receiver.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP receiver (`/v1/traces`, `/v1/metrics`).
    pub otlp_http: SocketAddr,
}

/// A running collector: listeners bound, servers running.
pub struct Collector {
    http_addr: SocketAddr,
    otlp_grpc_addr: SocketAddr,
    otlp_http_addr: SocketAddr,
    store: Arc<dyn Store>,
    shutdown: watch::Sender<bool>,
    servers: JoinSet<(&'static str, io::Result<()>)>,
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
            ))
        };
        let ((http, http_addr), (otlp_grpc, otlp_grpc_addr), (otlp_http, otlp_http_addr)) =
            match listeners.await {
                Ok(listeners) => listeners,
                Err(error) => {
                    store.close().await;
                    return Err(error);
                }
            };

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut servers = JoinSet::new();
        let routers = [
            ("http", http, api::router(store.clone())),
            ("otlp-grpc", otlp_grpc, otlp::grpc::router(store.clone())),
            ("otlp-http", otlp_http, otlp::http::router(store.clone())),
        ];
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
        tracing::info!(%http_addr, %otlp_grpc_addr, %otlp_http_addr, "collector listening");
        Ok(Collector {
            http_addr,
            otlp_grpc_addr,
            otlp_http_addr,
            store,
            shutdown,
            servers,
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
