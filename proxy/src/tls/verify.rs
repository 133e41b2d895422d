//! Certificate verifiers: chain checks by rustls/webpki against the current trust bundle (read
//! from an `ArcSwap`, so a root rotation needs no new config), then SPIFFE checks on the URI
//! SAN (webpki matches only DNS and IP names: stack.md trap 4).

use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, Error};

use super::identity::IdentityState;
use super::{spiffe_ids, trust_domain_of};

fn bad(message: &str) -> Error {
    Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
        .tap_log(message)
}

trait TapLog {
    fn tap_log(self, message: &str) -> Self;
}

impl TapLog for Error {
    fn tap_log(self, message: &str) -> Self {
        tracing::debug!(%message, "peer certificate refused");
        self
    }
}

/// Checks the peer's SPIFFE identity: one URI SAN in our trust domain, and equal to
/// `expected` when given.
fn check_identity(der: &[u8], trust_domain: &str, expected: Option<&str>) -> Result<String, Error> {
    let ids = spiffe_ids(der);
    let [id] = ids.as_slice() else {
        return Err(bad("want exactly one SPIFFE URI SAN"));
    };
    if trust_domain_of(id) != Some(trust_domain) {
        return Err(bad("SPIFFE ID outside the trust domain"));
    }
    if let Some(expected) = expected
        && id != expected
    {
        return Err(bad("unexpected SPIFFE ID"));
    }
    Ok(id.clone())
}

/// Server side: requires a client certificate chaining to the bundle, with a SPIFFE ID of our
/// trust domain.
#[derive(Debug)]
pub(crate) struct MeshClientVerifier {
    pub(crate) state: Arc<IdentityState>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for MeshClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verifier = self.state.client_verifier.load();
        verifier.verify_client_cert(end_entity, intermediates, now)?;
        check_identity(end_entity, &self.state.trust_domain, None)?;
        Ok(ClientCertVerified::assertion())
    }

    super::signature_checks_by_provider!();
}

/// Client side: the server certificate must chain to the bundle and carry the expected SPIFFE
/// ID (the destination's service account) or, when the destination's account is unknown,
/// any ID of our trust domain. The TLS server name is not used.
#[derive(Debug)]
pub(crate) struct MeshServerVerifier {
    pub(crate) state: Arc<IdentityState>,
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) expected: Option<String>,
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        let roots = self.state.roots.load();
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        check_identity(
            end_entity,
            &self.state.trust_domain,
            self.expected.as_deref(),
        )?;
        Ok(ServerCertVerified::assertion())
    }

    super::signature_checks_by_provider!();
}
