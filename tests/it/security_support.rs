//! Helpers of the security tests: an in-process control plane (CA), an echo application, a
//! server sidecar and a client sidecar with mTLS, and a raw mTLS client for presenting
//! arbitrary certificates.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub const TRUST_DOMAIN: &str = "cluster.local";

pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An application answering 200 with `METHOD PATH?QUERY` and every request header, one per
/// line (`name: value`).
pub async fn echo_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind app");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let mut text = format!("{} {}\n", request.method(), request.uri());
                    for (name, value) in request.headers() {
                        text.push_str(&format!(
                            "{}: {}\n",
                            name,
                            String::from_utf8_lossy(value.as_bytes())
                        ));
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The service, endpoint and policies of a two-sidecar mesh: `client` (sa `client`) calls
/// `server.default.svc.cluster.local` whose endpoint is the server sidecar's inbound port.
pub fn mesh_yaml(server_inbound: u16, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: server
  namespace: default
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: server
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: server
  namespace: default
spec:
  address: 127.0.0.1
  ports:
    http: {server_inbound}
  labels:
    app: server
    security.istio.io/tlsMode: istio
  serviceAccount: server
---
{extra}"
    )
}

#[allow(dead_code)]
pub struct Pair {
    pub control: weft_control::Control,
    pub server: weft_proxy::Proxy,
    pub client: weft_proxy::Proxy,
    pub app: SocketAddr,
    pub dir: tempfile::TempDir,
}

fn tls_config(
    control: &weft_control::Control,
    sa: &str,
    lifetime: Option<Duration>,
) -> weft_proxy::tls::MeshTlsConfig {
    weft_proxy::tls::MeshTlsConfig {
        control_url: control.url(),
        token: control.register_workload("default", sa),
        control_roots: control.trust_bundle(),
        trust_domain: TRUST_DOMAIN.into(),
        cert_lifetime: lifetime,
        config_from_control: false,
    }
}

pub async fn proxy(
    name: &str,
    config_dir: &std::path::Path,
    app: SocketAddr,
    inbound: std::net::TcpListener,
    tls: Option<weft_proxy::tls::MeshTlsConfig>,
) -> weft_proxy::Proxy {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    weft_proxy::Config {
        workload: name.into(),
        namespace: "default".into(),
        service_account: name.into(),
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        config_paths: vec![config_dir.to_path_buf()],
        app,
        inbound: weft_proxy::Listen::Bound(inbound),
        outbound: any.into(),
        admin: any.into(),
        collector: None,
        sampling_rate: 0.0,
        metrics_interval: Duration::from_secs(60),
        telemetry: weft_proxy::TelemetryOptions::default(),
        tls,
    }
    .build()
    .await
    .expect("proxy starts")
}

impl Pair {
    /// Control plane, echo app behind a `server` sidecar, a `client` sidecar; `policies` is
    /// extra YAML (PeerAuthentication, ...); `lifetime` the workload certificate lifetime.
    pub async fn start(policies: &str, lifetime: Option<Duration>) -> Pair {
        install_provider();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let control = weft_control::Config::new(any)
            .build()
            .await
            .expect("control starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let server_inbound = std::net::TcpListener::bind(any).expect("bind");
        let port = server_inbound.local_addr().expect("addr").port();
        std::fs::write(dir.path().join("mesh.yaml"), mesh_yaml(port, policies)).expect("write");
        let app = echo_app().await;
        let server = proxy(
            "server",
            dir.path(),
            app,
            server_inbound,
            Some(tls_config(&control, "server", lifetime)),
        )
        .await;
        let client = proxy(
            "client",
            dir.path(),
            app,
            std::net::TcpListener::bind(any).expect("bind"),
            Some(tls_config(&control, "client", lifetime)),
        )
        .await;
        Pair {
            control,
            server,
            client,
            app,
            dir,
        }
    }

    /// GET through the client sidecar (the app's view): status and body.
    pub async fn call(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let client = reqwest::Client::builder()
            .proxy(
                reqwest::Proxy::http(format!("http://{}", self.client.outbound_addr()))
                    .expect("proxy"),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut request = client.get(format!("http://server.default.svc.cluster.local{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(error) => (0, error.to_string()),
        }
    }

    pub async fn shutdown(self) {
        self.client.shutdown().await;
        self.server.shutdown().await;
        self.control.shutdown().await;
    }
}

/// A plaintext GET straight to an inbound listener: status, or an error.
pub async fn plaintext_get(addr: SocketAddr) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    client
        .get(format!("http://{addr}/"))
        .header("host", "server.default.svc.cluster.local")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// A GET over mTLS straight to an inbound listener, presenting `cert_pem`/`key_pem` and
/// trusting `roots` (server identity not checked): status, or the handshake/transport error.
pub async fn mtls_get(
    addr: SocketAddr,
    cert_pem: &str,
    key_pem: &str,
    roots: &[String],
) -> Result<u16, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store
                .add(der.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| e.to_string())?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAny))
    .with_client_auth_cert(certs, key)
    .map_err(|e| e.to_string())?;
    let _ = store;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from("server").map_err(|e| e.to_string())?,
            tcp,
        )
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = Request::builder()
        .uri("/")
        .header("host", "server.default.svc.cluster.local")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes.
pub async fn wait_for<F, Fut>(deadline: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
