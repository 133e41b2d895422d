//! Mutual TLS between sidecars (issue 4): the workload identity (a SPIFFE certificate whose
//! private key is generated here and never leaves the proxy), renewed at half-life from the
//! control plane and swapped without dropping connections (the resolvers read an `ArcSwap`);
//! chain verification against the trust bundle plus SPIFFE URI SAN checks (rustls-webpki
//! matches only DNS/IP names: stack.md trap 4); the inbound acceptor that tells a TLS
//! ClientHello from plaintext on one port (PeerAuthentication PERMISSIVE); and the upstream
//! mTLS client (DestinationRule `tls.mode` and auto mTLS, istio-model.md §2.7), and TLS
//! origination (SIMPLE / MUTUAL) to services outside the mesh.

/// The signature checks of a rustls certificate verifier (`ServerCertVerifier` or
/// `ClientCertVerifier`), by the algorithms of the verifier's `provider` field: every verifier
/// here checks signatures the same way and differs only in which certificates it accepts.
macro_rules! signature_checks_by_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}
pub(crate) use signature_checks_by_provider;

pub mod control;
pub mod identity;
pub mod inbound;
pub mod origination;
pub mod upstream;
mod verify;

use std::sync::Arc;
use std::time::Duration;

pub use identity::{IdentityState, WorkloadIdentity};
pub use inbound::ConnInfo;
pub use upstream::{MeshClients, Upstream};

/// How a proxy obtains its workload certificate.
#[derive(Debug, Clone)]
pub struct MeshTlsConfig {
    /// Control plane API (`https://HOST:PORT`).
    pub control_url: String,
    /// Bootstrap token of this workload.
    pub token: String,
    /// Roots that sign the control plane's serving certificate (PEM).
    pub control_roots: Vec<String>,
    /// SPIFFE trust domain.
    pub trust_domain: String,
    /// Certificate lifetime to ask for (`None`: the control plane's default).
    pub cert_lifetime: Option<Duration>,
    /// Also take the mesh config from this control plane (`GET /v1/config`, watched) instead
    /// of `Config::config_paths`, which must then be empty (`weft proxy --control`).
    pub config_from_control: bool,
}

/// TLS failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// Key or CSR generation.
    #[error("key generation: {0}")]
    Key(#[from] rcgen::Error),
    /// Talking to the control plane.
    #[error("control plane: {0}")]
    Control(String),
    /// A certificate or bundle that does not parse.
    #[error("certificate: {0}")]
    Certificate(String),
}

/// The one crypto provider (aws-lc-rs; stack.md trap 2), passed explicitly so no process
/// default is needed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The SPIFFE URI SANs of a DER certificate.
pub fn spiffe_ids(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                Some((*uri).to_string())
            }
            _ => None,
        })
        .collect()
}

/// The trust domain of a SPIFFE URI.
pub fn trust_domain_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("spiffe://")?.split('/').next()
}
