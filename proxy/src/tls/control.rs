//! A minimal HTTPS client for the control plane API (`weft-control`): one request per
//! connection, TLS 1.3, the control plane verified against the configured roots and the URL's
//! host name.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::{MeshTlsConfig, TlsError, provider};

const TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /v1/certificate` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateRequest<'a> {
    csr: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetime_seconds: Option<u64>,
}

/// `POST /v1/certificate` answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateResponse {
    /// Leaf first.
    pub certificate_chain: Vec<String>,
    /// Roots.
    pub trust_bundle: Vec<String>,
    /// Unix seconds.
    pub not_after: u64,
}

/// `GET /v1/config` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigResponse {
    /// Version.
    pub version: String,
    /// Documents.
    pub documents: Vec<ConfigDocument>,
}

/// One YAML file.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigDocument {
    /// Name.
    pub name: String,
    /// Text.
    pub text: String,
}

fn err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Control(e.to_string())
}

/// Sends one request and returns the body of a 2xx answer.
async fn call(
    config: &MeshTlsConfig,
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Bytes, TlsError> {
    let uri: http::Uri = config.control_url.parse().map_err(err)?;
    let authority = uri
        .authority()
        .ok_or_else(|| err("control URL without host"))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(15012);
    let mut roots = rustls::RootCertStore::empty();
    for pem in &config.control_roots {
        for der in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(der.map_err(err)?).map_err(err)?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from(host.to_string()).map_err(err)?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(err)?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(server_name, tcp)
            .await
            .map_err(err)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(err)?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, authority.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {}", config.token));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(err)?;
        let response = sender.send_request(request).await.map_err(err)?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), 16 * 1024 * 1024)
            .collect()
            .await
            .map_err(err)?
            .to_bytes();
        if !status.is_success() {
            return Err(err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        Ok(bytes)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| err("request timed out"))?
}

/// Sends a CSR and returns the signed certificate and the trust bundle.
pub async fn request_certificate(
    config: &MeshTlsConfig,
    csr: &str,
) -> Result<CertificateResponse, TlsError> {
    let body = serde_json::to_vec(&CertificateRequest {
        csr,
        lifetime_seconds: config.cert_lifetime.map(|d| d.as_secs().max(1)),
    })
    .map_err(err)?;
    let bytes = call(config, Method::POST, "/v1/certificate", Some(body), TIMEOUT).await?;
    serde_json::from_slice(&bytes).map_err(err)
}

/// Long-polls the mesh config: returns when the version differs from `known` or after `wait`.
pub async fn watch_config(
    config: &MeshTlsConfig,
    known: &str,
    wait: Duration,
) -> Result<ConfigResponse, TlsError> {
    let path = format!("/v1/config?version={known}&waitSeconds={}", wait.as_secs());
    let bytes = call(config, Method::GET, &path, None, wait + TIMEOUT).await?;
    serde_json::from_slice(&bytes).map_err(err)
}
