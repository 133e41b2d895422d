//! TLS origination to services outside the mesh (istio-model.md §2.7): DestinationRule
//! `tls.mode` SIMPLE (server-authenticated TLS) and MUTUAL (with the client certificate and
//! key of `clientCertificate`/`privateKey`, files on the proxy's host), and the web-PKI client
//! that fetches RequestAuthentication `jwksUri` over https.
//!
//! Server verification follows Istio: with `caCertificates` the chain must lead to those roots
//! and the certificate must carry one of `subjectAltNames` (DNS, IP or URI), or, when none is
//! listed, the SNI; without `caCertificates` (or with `insecureSkipVerify`) the server is not
//! verified — what `weft check` warns about as IST0128/IST0129. SNI is `sni`, else the host
//! the application asked for (the request's `Host`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::Error;
use rustls::RootCertStore;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use weft_config::model::{ClientTlsSettings, TlsMode};

use super::upstream::MeshConnector;
use super::{TlsError, provider};
use crate::http::body::ProxyBody;

/// Most origination clients kept at once.
const MAX_CLIENTS: usize = 256;

/// A pooled client that originates TLS.
pub type OriginClient = Client<MeshConnector, ProxyBody>;

/// The TLS settings of a SIMPLE or MUTUAL cluster, as the proxy applies them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origination {
    /// CA bundle file; `None`: the server is not verified.
    pub ca_certificates: Option<String>,
    /// Client certificate and key files (MUTUAL).
    pub client_identity: Option<(String, String)>,
    /// SNI to send (default: the requested host).
    pub sni: Option<String>,
    /// Names the server certificate must carry (default: the SNI).
    pub subject_alt_names: Vec<String>,
}

impl Origination {
    /// The origination for `settings` (mode SIMPLE or MUTUAL), or why weft cannot apply it.
    pub fn from_settings(settings: &ClientTlsSettings) -> Result<Origination, &'static str> {
        let set = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(String::from);
        if set(&settings.credential_name).is_some() {
            return Err("DestinationRule tls.credentialName (Kubernetes secrets)");
        }
        let client_identity = match settings.mode {
            Some(TlsMode::Mutual) => match (
                set(&settings.client_certificate),
                set(&settings.private_key),
            ) {
                (Some(cert), Some(key)) => Some((cert, key)),
                _ => return Err("MUTUAL without clientCertificate and privateKey"),
            },
            _ => None,
        };
        let skip = settings.insecure_skip_verify == Some(true);
        Ok(Origination {
            ca_certificates: set(&settings.ca_certificates).filter(|_| !skip),
            client_identity,
            sni: set(&settings.sni),
            subject_alt_names: if skip {
                Vec::new()
            } else {
                settings.subject_alt_names.clone()
            },
        })
    }
}

fn certificate_error(what: &str, path: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Certificate(format!("{what} {path}: {e}"))
}

fn read_certs(what: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| certificate_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate_error(what, path, e))?;
    if certs.is_empty() {
        return Err(certificate_error(what, path, "no certificate"));
    }
    Ok(certs)
}

/// The rustls client config of an origination (files read here, once per client).
fn client_config(origination: &Origination) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let roots = match &origination.ca_certificates {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("caCertificates", path)? {
                roots
                    .add(cert)
                    .map_err(|e| certificate_error("caCertificates", path, e))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let verifier = Arc::new(OriginVerifier {
        roots,
        subject_alt_names: origination.subject_alt_names.clone(),
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &origination.client_identity {
        Some((cert, key)) => {
            let chain = read_certs("clientCertificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| certificate_error("privateKey", key, e))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    // Upstream requests are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pooled(config: Arc<rustls::ClientConfig>, sni: Option<ServerName<'static>>) -> OriginClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(MeshConnector::new(config, sni))
}

/// Origination clients, one per (settings, SNI), built on first use.
#[derive(Default)]
pub struct OriginationClients {
    clients: Mutex<HashMap<(Origination, String), OriginClient>>,
}

impl OriginationClients {
    /// The client for `origination` towards a server named `host` (the SNI unless `sni` is
    /// set). Certificate files are read when the client is built; a changed DestinationRule
    /// makes a new client.
    pub fn client(&self, origination: &Origination, host: &str) -> Result<OriginClient, TlsError> {
        let sni = origination.sni.clone().unwrap_or_else(|| host.to_string());
        let key = (origination.clone(), sni);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let name = ServerName::try_from(key.1.clone())
            .map_err(|e| TlsError::Certificate(format!("SNI {}: {e}", key.1)))?;
        let client = pooled(client_config(origination)?, Some(name));
        // Wildcard hosts give one client per requested name: bound the map (clients in use
        // live on in their requests; the next request rebuilds its client).
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// A client for https URLs verified against the system's roots (`rustls-native-certs`;
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` replace them), SNI and name from the URL.
pub fn web_pki_client() -> Result<OriginClient, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "a system root certificate could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::Certificate(
            "no root certificate found (system store, SSL_CERT_FILE, SSL_CERT_DIR)".into(),
        ));
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(pooled(Arc::new(config), None))
}

/// Server verification of an origination (see the module comment).
#[derive(Debug)]
struct OriginVerifier {
    roots: Option<Arc<RootCertStore>>,
    subject_alt_names: Vec<String>,
    provider: Arc<CryptoProvider>,
}

fn bad_name() -> Error {
    Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
}

/// Whether the certificate carries the URI SAN `uri`.
fn has_uri_san(der: &[u8], uri: &str) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    san.value.general_names.iter().any(
        |name| matches!(name, x509_parser::extensions::GeneralName::URI(found) if *found == uri),
    )
}

impl ServerCertVerifier for OriginVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(roots) = &self.roots else {
            // No caCertificates: no server verification (IST0128/IST0129).
            return Ok(ServerCertVerified::assertion());
        };
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.subject_alt_names.is_empty() {
            return rustls::client::verify_server_name(&parsed, server_name)
                .map(|()| ServerCertVerified::assertion());
        }
        let matches = self.subject_alt_names.iter().any(|san| {
            if san.contains("://") {
                has_uri_san(end_entity, san)
            } else {
                ServerName::try_from(san.as_str())
                    .is_ok_and(|name| rustls::client::verify_server_name(&parsed, &name).is_ok())
            }
        });
        if matches {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(bad_name())
        }
    }

    super::signature_checks_by_provider!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(mode: TlsMode) -> ClientTlsSettings {
        ClientTlsSettings {
            mode: Some(mode),
            ..Default::default()
        }
    }

    #[test]
    fn settings_map_to_an_origination() {
        let simple = Origination::from_settings(&ClientTlsSettings {
            ca_certificates: Some("/ca.pem".into()),
            sni: Some("api.example".into()),
            subject_alt_names: vec!["a.example".into()],
            ..tls(TlsMode::Simple)
        })
        .expect("simple");
        assert_eq!(simple.ca_certificates.as_deref(), Some("/ca.pem"));
        assert_eq!(simple.sni.as_deref(), Some("api.example"));
        assert_eq!(simple.subject_alt_names, ["a.example"]);
        assert!(simple.client_identity.is_none());

        let skip = Origination::from_settings(&ClientTlsSettings {
            ca_certificates: Some("/ca.pem".into()),
            insecure_skip_verify: Some(true),
            ..tls(TlsMode::Simple)
        })
        .expect("skip");
        assert_eq!(
            skip.ca_certificates, None,
            "insecureSkipVerify: no verification"
        );

        let mutual = Origination::from_settings(&ClientTlsSettings {
            client_certificate: Some("/c.pem".into()),
            private_key: Some("/k.pem".into()),
            ..tls(TlsMode::Mutual)
        })
        .expect("mutual");
        assert_eq!(
            mutual.client_identity,
            Some(("/c.pem".into(), "/k.pem".into()))
        );
        assert_eq!(mutual.ca_certificates, None);

        assert!(Origination::from_settings(&tls(TlsMode::Mutual)).is_err());
        assert!(
            Origination::from_settings(&ClientTlsSettings {
                credential_name: Some("secret".into()),
                ..tls(TlsMode::Simple)
            })
            .is_err()
        );
    }

    #[test]
    fn missing_files_fail_to_build_a_client() {
        let clients = OriginationClients::default();
        let origination = Origination {
            ca_certificates: Some("/nonexistent/ca.pem".into()),
            client_identity: None,
            sni: None,
            subject_alt_names: Vec::new(),
        };
        let Err(error) = clients.client(&origination, "api.example") else {
            panic!("a client without its CA file");
        };
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
