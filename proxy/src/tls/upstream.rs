//! Upstream TLS (istio-model.md §2.7): the DestinationRule `tls.mode` of the cluster, or auto
//! mTLS when it has none (ISTIO_MUTUAL to endpoints labelled `security.istio.io/tlsMode:
//! istio` inside the mesh, unless the server's PeerAuthentication is DISABLE; plaintext
//! otherwise), and the pooled mTLS clients, one per expected server identity. SIMPLE and
//! MUTUAL (TLS origination) are in `origination.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use weft_config::model::{Location, TlsMode};
use weft_config::security::MtlsMode;
use weft_config::{Cluster, Endpoint, Snapshot};

use super::identity::IdentityState;
use crate::http::body::ProxyBody;

/// Endpoint label that marks a workload with a sidecar (auto mTLS).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// How to reach one upstream endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// Plain HTTP.
    Plaintext,
    /// Mutual TLS with the workload certificate, expecting this SPIFFE ID (`None`: any of the
    /// trust domain).
    Mesh(Option<String>),
    /// TLS origination (DestinationRule `tls.mode` SIMPLE or MUTUAL).
    Originate(Arc<super::origination::Origination>),
    /// TLS settings weft cannot honour: the request fails (503) rather than leaving in
    /// plaintext.
    Unsupported(&'static str),
}

impl Upstream {
    /// Decides for an endpoint of `cluster`. `trust_domain` is `None` when the proxy has no
    /// workload identity (then ISTIO_MUTUAL cannot be honoured and auto mTLS is plaintext).
    pub fn decide(
        snapshot: &Snapshot,
        cluster: &Cluster,
        endpoint: &Endpoint,
        trust_domain: Option<&str>,
    ) -> Upstream {
        let expected = || {
            let td = trust_domain?;
            let sa = endpoint.service_account.as_deref()?;
            Some(format!("spiffe://{td}/ns/{}/sa/{sa}", endpoint.namespace))
        };
        let tls = cluster
            .traffic_policy
            .as_ref()
            .and_then(|policy| policy.tls.as_ref());
        let mode = tls.map(|tls| tls.mode.unwrap_or(TlsMode::Disable));
        match mode {
            Some(TlsMode::Disable) => Upstream::Plaintext,
            Some(TlsMode::IstioMutual) => match trust_domain {
                Some(_) => Upstream::Mesh(expected()),
                None => Upstream::Unsupported("ISTIO_MUTUAL without a workload certificate"),
            },
            Some(TlsMode::Simple | TlsMode::Mutual) => {
                match tls.map(super::origination::Origination::from_settings) {
                    Some(Ok(origination)) => Upstream::Originate(Arc::new(origination)),
                    Some(Err(what)) => Upstream::Unsupported(what),
                    None => Upstream::Plaintext,
                }
            }
            None => {
                let sidecar = endpoint
                    .labels
                    .get(TLS_MODE_LABEL)
                    .is_some_and(|v| v == "istio");
                let in_mesh = cluster.location != Location::MeshExternal;
                if trust_domain.is_none() || !sidecar || !in_mesh {
                    return Upstream::Plaintext;
                }
                let server = snapshot.security().server_mode(
                    &endpoint.namespace,
                    &endpoint.labels,
                    endpoint.port,
                );
                if server == MtlsMode::Disable {
                    Upstream::Plaintext
                } else {
                    Upstream::Mesh(expected())
                }
            }
        }
    }
}

/// The peer identity of an upstream mTLS connection, set on every response's extensions.
#[derive(Debug, Clone)]
pub struct UpstreamPeer(pub Arc<str>);

/// A TLS stream to an upstream sidecar.
pub struct MeshIo {
    inner: TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    h2: bool,
    peer: Option<Arc<str>>,
}

impl Connection for MeshIo {
    fn connected(&self) -> Connected {
        // The TCP connection's addresses (`HttpInfo`), as for plaintext upstreams.
        let mut connected = self.inner.inner().get_ref().0.connected();
        if let Some(peer) = &self.peer {
            connected = connected.extra(UpstreamPeer(peer.clone()));
        }
        if self.h2 {
            connected = connected.negotiated_h2();
        }
        connected
    }
}

impl hyper::rt::Read for MeshIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for MeshIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects TCP then TLS (mutual TLS between sidecars, or origination); the config's verifier
/// checks the server.
#[derive(Clone)]
pub struct MeshConnector {
    tls: tokio_rustls::TlsConnector,
    /// Server name (SNI and name checks); `None`: the URI's host.
    sni: Option<ServerName<'static>>,
}

impl MeshConnector {
    /// A connector with `config`, naming the server `sni` (or the URI's host).
    pub fn new(config: Arc<rustls::ClientConfig>, sni: Option<ServerName<'static>>) -> Self {
        MeshConnector {
            tls: tokio_rustls::TlsConnector::from(config),
            sni,
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<MeshIo, io::Error>> + Send>>;

impl tower::Service<Uri> for MeshConnector {
    type Response = MeshIo;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let sni = self.sni.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other("upstream URI without host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            let connect = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                let _ = tcp.set_nodelay(true);
                let name = match sni {
                    Some(name) => name,
                    None => ServerName::try_from(host.clone())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
                };
                tls.connect(name, tcp).await
            };
            let stream = tokio::time::timeout(Duration::from_secs(10), connect)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??;
            let (_, session) = stream.get_ref();
            let h2 = session.alpn_protocol() == Some(b"h2");
            let peer = session
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| super::spiffe_ids(cert).into_iter().next())
                .map(Arc::from);
            Ok(MeshIo {
                inner: TokioIo::new(stream),
                h2,
                peer,
            })
        })
    }
}

/// A pooled mTLS client.
pub type MeshClient = Client<MeshConnector, ProxyBody>;

/// Pooled mTLS clients, one per expected server identity.
///
/// The pools are renewed with the workload certificate: a pooled connection
/// keeps the certificate it was opened with, and the server refuses requests
/// on a connection whose client certificate has expired. So after each
/// rotation (at half-life) new requests go over new connections carrying the
/// new certificate, while requests in flight finish on the old ones.
pub struct MeshClients {
    identity: Arc<IdentityState>,
    clients: Mutex<Pools>,
}

#[derive(Default)]
struct Pools {
    /// The certificate rotation these pools were opened with.
    generation: u64,
    by_identity: HashMap<Option<String>, MeshClient>,
}

impl MeshClients {
    /// Clients presenting `identity`'s certificate.
    pub fn new(identity: Arc<IdentityState>) -> MeshClients {
        MeshClients {
            identity,
            clients: Mutex::new(Pools::default()),
        }
    }

    /// The client for servers with this identity (created on first use).
    pub fn client(&self, expected: &Option<String>) -> Result<MeshClient, super::TlsError> {
        let mut pools = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = self.identity.rotations();
        if pools.generation != generation {
            pools.generation = generation;
            pools.by_identity.clear();
        }
        if let Some(client) = pools.by_identity.get(expected) {
            return Ok(client.clone());
        }
        let config = self.identity.client_config(expected.clone())?;
        let connector = MeshConnector::new(config, None);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        pools.by_identity.insert(expected.clone(), client.clone());
        Ok(client)
    }
}
