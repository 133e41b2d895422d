//! The HTTPS API: TLS 1.3 with the CA-issued serving certificate, HTTP/1.1.

use std::convert::Infallible;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::api::{CertificateRequest, CertificateResponse, ConfigDocument, ConfigResponse};
use crate::{ConfigSet, State};

/// Largest request body (a CSR is < 1 KiB).
const MAX_BODY: usize = 64 * 1024;
/// Longest config long-poll.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(crate) fn tls_config(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| rustls::Error::General(format!("serving certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| rustls::Error::General(format!("serving key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, remote)) = accepted else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        connections.spawn(async move {
            let stream = match tokio::time::timeout(
                Duration::from_secs(10),
                acceptor.accept(stream),
            )
            .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%remote, %error, "control TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

fn bearer(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/trust-bundle") => {
            let bundle = state
                .ca
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .trust_bundle();
            json(
                StatusCode::OK,
                &serde_json::json!({ "trustBundle": bundle }),
            )
        }
        (&Method::POST, "/v1/certificate") => certificate(state, request).await,
        (&Method::GET, "/v1/config") => config(state, request).await,
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn certificate(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(identity) = bearer(&request).and_then(|token| state.identity(token)) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or unknown bootstrap token",
        );
    };
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Ok(wanted) = serde_json::from_slice::<CertificateRequest>(&body) else {
        return error(StatusCode::BAD_REQUEST, "want {\"csr\": PEM}");
    };
    let lifetime = wanted
        .lifetime_seconds
        .map(Duration::from_secs)
        .unwrap_or(state.max_lifetime)
        .min(state.max_lifetime);
    let (signed, bundle) = {
        let ca = state.ca.lock().unwrap_or_else(PoisonError::into_inner);
        (
            ca.sign_csr(&wanted.csr, &identity, lifetime),
            ca.trust_bundle(),
        )
    };
    match signed {
        Ok(signed) => {
            tracing::info!(identity = %identity.uri(), lifetime_s = lifetime.as_secs(), "signed a workload certificate");
            json(
                StatusCode::OK,
                &CertificateResponse {
                    certificate_chain: vec![signed.cert_pem],
                    trust_bundle: bundle,
                    not_after: signed
                        .not_after
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                },
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

fn query<'a>(request: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

async fn config(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if bearer(&request)
        .and_then(|token| state.identity(token))
        .is_none()
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or unknown bootstrap token",
        );
    }
    let known = query(&request, "version").unwrap_or("").to_string();
    let wait = query(&request, "waitSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::ZERO)
        .min(MAX_WAIT);
    let mut watcher = state.config.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let current: Arc<ConfigSet> = watcher.borrow_and_update().clone();
        if current.version != known || tokio::time::Instant::now() >= deadline {
            let body = ConfigResponse {
                version: current.version.clone(),
                documents: current
                    .documents
                    .iter()
                    .map(|(name, text)| ConfigDocument {
                        name: name.clone(),
                        text: text.clone(),
                    })
                    .collect(),
            };
            return json(StatusCode::OK, &body);
        }
        if tokio::time::timeout_at(deadline, watcher.changed())
            .await
            .is_err()
        {
            continue;
        }
    }
}
