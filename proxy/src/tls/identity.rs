//! The workload identity: key pair generated here, CSR to the control plane, certificate and
//! trust bundle held in `ArcSwap`s that the TLS resolvers and verifiers read on every
//! handshake, renewal at half-life.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use super::control::{self, CertificateResponse};
use super::verify::{MeshClientVerifier, MeshServerVerifier};
use super::{MeshTlsConfig, TlsError, provider};

/// ALPN offered and accepted between sidecars.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Certificate, key and trust bundle in force; swapped atomically.
pub struct IdentityState {
    /// `spiffe://td/ns/x/sa/y`.
    pub spiffe_id: String,
    /// The trust domain.
    pub trust_domain: String,
    pub(crate) certified: ArcSwapOption<CertifiedKey>,
    pub(crate) roots: ArcSwap<RootCertStore>,
    pub(crate) client_verifier: ArcSwap<Arc<dyn ClientCertVerifier>>,
    /// Expiry of the current certificate (Unix seconds; 0 = none).
    not_after: AtomicU64,
    /// How many certificates have been installed.
    rotations: AtomicU64,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for IdentityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityState")
            .field("spiffe_id", &self.spiffe_id)
            .field("not_after", &self.not_after)
            .finish()
    }
}

fn roots_from_pem(bundle: &[String]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for pem in bundle {
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let der = der.map_err(|e| TlsError::Certificate(e.to_string()))?;
            roots
                .add(der)
                .map_err(|e| TlsError::Certificate(e.to_string()))?;
        }
    }
    Ok(roots)
}

fn client_verifier(
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Certificate(e.to_string()))
}

impl IdentityState {
    fn new(spiffe_id: String, trust_domain: String) -> Arc<IdentityState> {
        let provider = provider();
        let roots = Arc::new(RootCertStore::empty());
        // An empty store cannot build a verifier; until the first bundle arrives every client
        // certificate is refused by this placeholder.
        let placeholder: Arc<dyn ClientCertVerifier> = Arc::new(RefuseAll);
        Arc::new(IdentityState {
            spiffe_id,
            trust_domain,
            certified: ArcSwapOption::empty(),
            roots: ArcSwap::new(roots),
            client_verifier: ArcSwap::new(Arc::new(placeholder)),
            not_after: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            provider,
        })
    }

    /// Installs a signed certificate (with the key that made its CSR) and the bundle.
    fn install(
        &self,
        key: &rcgen::KeyPair,
        response: &CertificateResponse,
    ) -> Result<(), TlsError> {
        let mut chain = Vec::new();
        for pem in &response.certificate_chain {
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                chain.push(der.map_err(|e| TlsError::Certificate(e.to_string()))?);
            }
        }
        let key_der = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let signing = self.provider.key_provider.load_private_key(key_der)?;
        let roots = Arc::new(roots_from_pem(&response.trust_bundle)?);
        let verifier = client_verifier(&roots, &self.provider)?;
        self.roots.store(roots);
        self.client_verifier.store(Arc::new(verifier));
        self.certified
            .store(Some(Arc::new(CertifiedKey::new(chain, signing))));
        self.not_after.store(response.not_after, Ordering::Release);
        self.rotations.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Whether a certificate is installed and not expired.
    pub fn is_ready(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.certified.load().is_some() && self.not_after.load(Ordering::Acquire) > now
    }

    /// Expiry of the current certificate.
    pub fn not_after(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.not_after.load(Ordering::Acquire))
    }

    /// Certificates installed so far (1 after start, +1 per renewal).
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Acquire)
    }

    /// The rustls server config of the inbound listener (client certificates required).
    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let verifier = Arc::new(MeshClientVerifier {
            state: self.clone(),
            provider: self.provider.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A rustls client config presenting the workload certificate and expecting `expected`
    /// (a SPIFFE URI) from the server, or any identity of the trust domain.
    pub(crate) fn client_config(
        self: &Arc<Self>,
        expected: Option<String>,
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let verifier = Arc::new(MeshServerVerifier {
            state: self.clone(),
            provider: self.provider.clone(),
            expected,
        });
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Serves the current certificate to both sides of a handshake.
#[derive(Debug)]
struct Resolver(Arc<IdentityState>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.certified.load_full()
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.certified.load_full()
    }

    fn has_certs(&self) -> bool {
        self.0.certified.load().is_some()
    }
}

/// Refuses every client certificate (before the first trust bundle).
#[derive(Debug)]
struct RefuseAll;

impl ClientCertVerifier for RefuseAll {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Err(rustls::Error::General("no trust bundle yet".into()))
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no trust bundle yet".into()))
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no trust bundle yet".into()))
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        Vec::new()
    }
}

/// A workload identity with its renewal task.
pub struct WorkloadIdentity {
    /// Shared state (read by every handshake).
    pub state: Arc<IdentityState>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WorkloadIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.state.fmt(f)
    }
}

/// Generates a key pair here and a CSR for `spiffe_id` (the private key never leaves).
fn key_and_csr(spiffe_id: &str) -> Result<(rcgen::KeyPair, String), TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![rcgen::SanType::URI(rcgen::string::Ia5String::try_from(
        spiffe_id,
    )?)];
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

async fn renew_once(config: &MeshTlsConfig, state: &IdentityState) -> Result<(), TlsError> {
    let (key, csr) = key_and_csr(&state.spiffe_id)?;
    let response = control::request_certificate(config, &csr).await?;
    state.install(&key, &response)
}

impl WorkloadIdentity {
    /// Obtains the first certificate (waiting for it, bounded by `timeout`), then renews at
    /// half-life in the background until `stop`.
    pub async fn start(
        config: MeshTlsConfig,
        spiffe_id: String,
        timeout: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> Result<WorkloadIdentity, TlsError> {
        let state = IdentityState::new(spiffe_id, config.trust_domain.clone());
        tokio::time::timeout(timeout, renew_once(&config, &state))
            .await
            .map_err(|_| TlsError::Control("timed out getting the first certificate".into()))??;
        tracing::info!(identity = %state.spiffe_id, "workload certificate installed");
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                let mut failures = 0u32;
                loop {
                    let wait = if failures == 0 {
                        half_life_wait(&state)
                    } else {
                        Duration::from_millis(200 * 2u64.pow(failures.min(7)))
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return,
                    }
                    match renew_once(&config, &state).await {
                        Ok(()) => {
                            failures = 0;
                            tracing::debug!(identity = %state.spiffe_id, "workload certificate renewed");
                        }
                        Err(error) => {
                            failures += 1;
                            tracing::warn!(%error, "workload certificate renewal failed");
                        }
                    }
                }
            }
        });
        Ok(WorkloadIdentity { state, task })
    }

    /// Stops renewing.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// Time until half of the current certificate's remaining lifetime has passed (issued
/// lifetime / 2 measured from now; at least 100 ms).
fn half_life_wait(state: &IdentityState) -> Duration {
    let remaining = state
        .not_after()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    (remaining / 2).max(Duration::from_millis(100))
}
