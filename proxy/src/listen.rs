//! Listeners: bind (or adopt a bound socket), accept, serve HTTP/1.1 and
//! HTTP/2 (h2c) on the same port, and drain in-flight requests on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::body::ProxyBody;
use crate::telemetry::Metrics;

/// Where a listener comes from: an address to bind (port 0 allowed), or a
/// socket the caller bound already (so it can publish the port first).
#[derive(Debug)]
pub enum Listen {
    Addr(SocketAddr),
    Bound(std::net::TcpListener),
}

impl Listen {
    pub async fn bind(self) -> std::io::Result<TcpListener> {
        match self {
            Listen::Addr(addr) => TcpListener::bind(addr).await,
            Listen::Bound(listener) => {
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)
            }
        }
    }
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Self {
        Listen::Addr(addr)
    }
}

/// Accepts connections until `stop` turns true, then waits for in-flight
/// requests to finish.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and similar: keep serving.
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |request| {
            // Boxed once here: the handler's future is large (routing, retries, telemetry),
            // and hyper moves the service future by value into its dispatcher; a box makes
            // that a pointer copy instead of a memcpy of the whole state per request.
            let response = Box::pin(handler(request, remote));
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            metrics.active_connections.inc();
            if let Err(error) = connection.await {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
            metrics.active_connections.dec();
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
