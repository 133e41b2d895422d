//! The inbound listener with PeerAuthentication (istio-model.md §5): per connection, the mode
//! for the destination port (the port the peer connected to, which WorkloadEntries name) is
//! read from the snapshot in force; the first byte tells a TLS ClientHello (0x16) from
//! plaintext on the same port. STRICT refuses plaintext, DISABLE refuses TLS, PERMISSIVE
//! accepts both. The peer's SPIFFE ID comes from its verified certificate.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use weft_config::security::MtlsMode;

use crate::Shared;
use crate::http::body::ProxyBody;

/// What the inbound handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Peer address.
    pub remote: SocketAddr,
    /// Local address (destination IP and port).
    pub local: SocketAddr,
    /// Mutual TLS.
    pub tls: bool,
    /// Peer SPIFFE ID (`spiffe://...`), from its certificate.
    pub peer_id: Option<Arc<str>>,
    /// TLS SNI.
    pub sni: Option<Arc<str>>,
    /// `notAfter` of the peer certificate (Unix seconds).
    pub peer_not_after: Option<i64>,
}

impl ConnInfo {
    /// The peer identity without `spiffe://` (AuthorizationPolicy principals).
    /// Whether the peer certificate has expired since the handshake (long-lived connections
    /// outlive certificates: requests on them are refused).
    pub fn peer_expired(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.peer_not_after.is_some_and(|t| now > t)
    }

    /// The peer identity without `spiffe://` (AuthorizationPolicy principals).
    pub fn principal(&self) -> Option<&str> {
        self.peer_id
            .as_deref()
            .and_then(|id| id.strip_prefix("spiffe://"))
    }
}

/// How long a client may take to send its first byte / finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    shared: Arc<Shared>,
    handler: H,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, Arc<ConnInfo>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let tls_config = shared
        .mesh
        .as_ref()
        .and_then(|mesh| mesh.identity.server_config().ok());
    let acceptor = tls_config.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let handler = handler.clone();
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mode = shared
                .snapshot
                .load()
                .security()
                .peer
                .mode_for_port(local.port());
            let is_tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, first_byte(&stream)).await {
                Ok(Some(byte)) => byte == 0x16,
                _ => return,
            };
            let metrics = shared.telemetry.metrics.clone();
            match (mode, is_tls) {
                (MtlsMode::Strict, false) => {
                    tracing::debug!(%remote, "plaintext connection refused: PeerAuthentication STRICT");
                    metrics
                        .inbound_refused
                        .with_label_values(&["plaintext_strict"])
                        .inc();
                }
                (MtlsMode::Disable, true) => {
                    tracing::debug!(%remote, "TLS connection refused: PeerAuthentication DISABLE");
                    metrics
                        .inbound_refused
                        .with_label_values(&["tls_disabled"])
                        .inc();
                }
                (_, false) => {
                    let conn = Arc::new(ConnInfo {
                        remote,
                        local,
                        tls: false,
                        peer_id: None,
                        sni: None,
                        peer_not_after: None,
                    });
                    let service = hyper::service::service_fn(move |request| {
                        // Boxed: hyper moves the service future by value (see listen.rs).
                        let response = Box::pin(handler(request, conn.clone()));
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let connection = watcher.watch(connection.into_owned());
                    metrics.active_connections.inc();
                    if let Err(error) = connection.await {
                        tracing::debug!(%remote, %error, "connection ended with an error");
                    }
                    metrics.active_connections.dec();
                }
                (_, true) => {
                    let Some(acceptor) = acceptor else {
                        metrics
                            .inbound_refused
                            .with_label_values(&["no_identity"])
                            .inc();
                        return;
                    };
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%remote, %error, "mTLS handshake failed");
                            metrics
                                .inbound_refused
                                .with_label_values(&["handshake"])
                                .inc();
                            return;
                        }
                        Err(_) => return,
                    };
                    let (_, session) = stream.get_ref();
                    let peer_id = session
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|cert| super::spiffe_ids(cert).into_iter().next())
                        .map(Arc::from);
                    let sni = session.server_name().map(Arc::from);
                    let peer_not_after = session
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|cert| x509_parser::parse_x509_certificate(cert).ok())
                        .map(|(_, cert)| cert.validity().not_after.timestamp());
                    let conn = Arc::new(ConnInfo {
                        remote,
                        local,
                        tls: true,
                        peer_id,
                        sni,
                        peer_not_after,
                    });
                    let service = hyper::service::service_fn(move |request| {
                        // Boxed: hyper moves the service future by value (see listen.rs).
                        let response = Box::pin(handler(request, conn.clone()));
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let connection = watcher.watch(connection.into_owned());
                    metrics.active_connections.inc();
                    if let Err(error) = connection.await {
                        tracing::debug!(%remote, %error, "connection ended with an error");
                    }
                    metrics.active_connections.dec();
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits for the first byte without consuming it.
async fn first_byte(stream: &TcpStream) -> Option<u8> {
    let mut buffer = [0u8; 1];
    match stream.peek(&mut buffer).await {
        Ok(1) => Some(buffer[0]),
        _ => None,
    }
}
