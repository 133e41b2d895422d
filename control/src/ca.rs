//! The certificate authority: a self-signed root (generated on first start or loaded from
//! files), signing of workload CSRs into SPIFFE certificates, and the trust bundle (up to two
//! roots, for root rotation). Workload private keys never come here: the proxy sends a CSR.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

/// File names inside a CA folder.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// The root's private key (mode 0600).
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// A previous root, still trusted during a rotation.
pub const PREVIOUS_ROOT_CERT_FILE: &str = "previous-root-cert.pem";

/// Default workload certificate lifetime (Istio's default: 24 h).
pub const DEFAULT_WORKLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default root lifetime: 10 years.
pub const DEFAULT_ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Backdating of `notBefore`, for clock skew.
const BACKDATE: Duration = Duration::from_secs(60);

/// CA failures.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing CA files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate generation, parsing or signing.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A bad identity or request.
    #[error("{0}")]
    Invalid(String),
}

/// A SPIFFE workload identity `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    /// Trust domain (`cluster.local`).
    pub trust_domain: String,
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
}

impl SpiffeId {
    /// The URI form.
    pub fn uri(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }

    /// Parses `spiffe://td/ns/x/sa/y`.
    pub fn parse(uri: &str) -> Option<SpiffeId> {
        let rest = uri.strip_prefix("spiffe://")?;
        let (trust_domain, rest) = rest.split_once("/ns/")?;
        let (namespace, service_account) = rest.split_once("/sa/")?;
        let ok = |s: &str| !s.is_empty() && !s.contains('/');
        (ok(trust_domain) && ok(namespace) && ok(service_account)).then(|| SpiffeId {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        })
    }
}

/// One root: certificate and key.
struct Root {
    cert_pem: String,
    key: KeyPair,
}

/// A signed workload certificate.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Leaf certificate (PEM).
    pub cert_pem: String,
    /// Expiry.
    pub not_after: SystemTime,
}

/// The CA: the signing root plus, during a rotation, the previous root (trusted, not used).
pub struct Ca {
    trust_domain: String,
    root: Root,
    previous_root_pem: Option<String>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("rotating", &self.previous_root_pem.is_some())
            .finish()
    }
}

fn offset(time: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(time)
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn new_root(trust_domain: &str, lifetime: Duration) -> Result<Root, CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, trust_domain);
    name.push(DnType::CommonName, "weft root CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = offset(now - BACKDATE);
    params.not_after = offset(now + lifetime);
    params.serial_number = Some(serial());
    let cert = params.self_signed(&key)?;
    Ok(Root {
        cert_pem: cert.pem(),
        key,
    })
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), CaError> {
    let io = |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

impl Ca {
    /// A new CA with a fresh root.
    pub fn generate(trust_domain: &str) -> Result<Ca, CaError> {
        Self::generate_with_lifetime(trust_domain, DEFAULT_ROOT_LIFETIME)
    }

    /// A new CA whose root lives `lifetime`.
    pub fn generate_with_lifetime(trust_domain: &str, lifetime: Duration) -> Result<Ca, CaError> {
        Ok(Ca {
            trust_domain: trust_domain.to_string(),
            root: new_root(trust_domain, lifetime)?,
            previous_root_pem: None,
        })
    }

    /// Loads a CA folder (`root-cert.pem`, `root-key.pem`, optional `previous-root-cert.pem`).
    pub fn load(dir: &Path, trust_domain: &str) -> Result<Ca, CaError> {
        let cert_pem = read(&dir.join(ROOT_CERT_FILE))?;
        let key = KeyPair::from_pem(&read(&dir.join(ROOT_KEY_FILE))?)?;
        let previous = dir.join(PREVIOUS_ROOT_CERT_FILE);
        let previous_root_pem = previous.is_file().then(|| read(&previous)).transpose()?;
        // Check that the certificate parses as an issuer.
        Issuer::from_ca_cert_pem(&cert_pem, &key)?;
        Ok(Ca {
            trust_domain: trust_domain.to_string(),
            root: Root { cert_pem, key },
            previous_root_pem,
        })
    }

    /// Loads the CA in `dir`, or creates it there when it has no root yet (`weft ca init`,
    /// and `weft control` on first start).
    pub fn load_or_init(dir: &Path, trust_domain: &str) -> Result<Ca, CaError> {
        if dir.join(ROOT_CERT_FILE).is_file() {
            return Self::load(dir, trust_domain);
        }
        let ca = Self::generate(trust_domain)?;
        ca.save(dir)?;
        Ok(ca)
    }

    /// Writes the CA files (the key with mode 0600).
    pub fn save(&self, dir: &Path) -> Result<(), CaError> {
        std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        write(&dir.join(ROOT_CERT_FILE), &self.root.cert_pem, false)?;
        write(
            &dir.join(ROOT_KEY_FILE),
            &self.root.key.serialize_pem(),
            true,
        )?;
        if let Some(previous) = &self.previous_root_pem {
            write(&dir.join(PREVIOUS_ROOT_CERT_FILE), previous, false)?;
        }
        Ok(())
    }

    /// Root rotation: a new signing root; the current one stays in the trust bundle so that
    /// certificates it signed keep verifying until they are renewed.
    pub fn rotate_root(&mut self) -> Result<(), CaError> {
        let root = new_root(&self.trust_domain, DEFAULT_ROOT_LIFETIME)?;
        let old = std::mem::replace(&mut self.root, root);
        self.previous_root_pem = Some(old.cert_pem);
        Ok(())
    }

    /// Ends a rotation: only the current root is trusted.
    pub fn drop_previous_root(&mut self) {
        self.previous_root_pem = None;
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The signing root (PEM).
    pub fn root_pem(&self) -> &str {
        &self.root.cert_pem
    }

    /// The trust bundle: the signing root, then the previous root during a rotation.
    pub fn trust_bundle(&self) -> Vec<String> {
        let mut bundle = vec![self.root.cert_pem.clone()];
        bundle.extend(self.previous_root_pem.clone());
        bundle
    }

    fn leaf_params(
        &self,
        sans: Vec<SanType>,
        lifetime: Duration,
        server: bool,
    ) -> (CertificateParams, SystemTime) {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if !server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        let not_after = now + lifetime;
        params.not_before = offset(now - BACKDATE.min(lifetime));
        params.not_after = offset(not_after);
        params.serial_number = Some(serial());
        (params, not_after)
    }

    /// Signs a workload CSR (PEM) for `identity`. The CSR's own names are ignored: the
    /// certificate carries exactly the URI SAN of the authenticated identity. The identity's
    /// trust domain must be the CA's.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &SpiffeId,
        lifetime: Duration,
    ) -> Result<Signed, CaError> {
        if identity.trust_domain != self.trust_domain {
            return Err(CaError::Invalid(format!(
                "identity {} is outside trust domain {}",
                identity.uri(),
                self.trust_domain
            )));
        }
        if lifetime < Duration::from_secs(1) {
            return Err(CaError::Invalid("certificate lifetime below 1s".into()));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let uri = rcgen::string::Ia5String::try_from(identity.uri())?;
        let (params, not_after) = self.leaf_params(vec![SanType::URI(uri)], lifetime, false);
        let issuer = Issuer::from_ca_cert_pem(&self.root.cert_pem, &self.root.key)?;
        let cert = params.signed_by(&csr.public_key, &issuer)?;
        Ok(Signed {
            cert_pem: cert.pem(),
            not_after,
        })
    }

    /// Issues a certificate and key here (offline tooling: `weft ca issue`, tests, the control
    /// plane's own serving certificate). Workloads use CSRs instead. `sans` are DNS names or
    /// IPs; `identity` adds the SPIFFE URI SAN.
    pub fn issue(
        &self,
        identity: Option<&SpiffeId>,
        sans: &[String],
        lifetime: Duration,
    ) -> Result<(String, String), CaError> {
        let mut names = Vec::new();
        if let Some(identity) = identity {
            names.push(SanType::URI(rcgen::string::Ia5String::try_from(
                identity.uri(),
            )?));
        }
        for san in sans {
            names.push(match san.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(rcgen::string::Ia5String::try_from(san.as_str())?),
            });
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let (params, _) = self.leaf_params(names, lifetime, identity.is_none());
        let issuer = Issuer::from_ca_cert_pem(&self.root.cert_pem, &self.root.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_round_trip() {
        let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web").unwrap();
        assert_eq!(id.namespace, "default");
        assert_eq!(id.uri(), "spiffe://cluster.local/ns/default/sa/web");
        assert!(SpiffeId::parse("spiffe://td/ns//sa/x").is_none());
        assert!(SpiffeId::parse("https://td/ns/a/sa/b").is_none());
    }

    #[test]
    fn signs_csrs_with_the_identity_only() {
        let ca = Ca::generate("cluster.local").unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web").unwrap();
        let signed = ca.sign_csr(&csr, &id, Duration::from_secs(60)).unwrap();
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(signed.cert_pem.as_bytes())
            .map(|d: rustls_pki_types::CertificateDer<'static>| d)
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(sans, vec!["URI(spiffe://cluster.local/ns/default/sa/web)"]);
        let other = SpiffeId::parse("spiffe://other.td/ns/default/sa/web").unwrap();
        assert!(ca.sign_csr(&csr, &other, Duration::from_secs(60)).is_err());
    }

    #[test]
    fn saves_loads_and_rotates() {
        let dir = std::env::temp_dir().join(format!("weft-ca-{}", rand::random::<u64>()));
        let ca = Ca::load_or_init(&dir, "cluster.local").unwrap();
        let again = Ca::load_or_init(&dir, "cluster.local").unwrap();
        assert_eq!(ca.root_pem(), again.root_pem());
        let mut rotating = again;
        rotating.rotate_root().unwrap();
        assert_eq!(rotating.trust_bundle().len(), 2);
        assert_eq!(rotating.trust_bundle()[1], ca.root_pem());
        rotating.drop_previous_root();
        assert_eq!(rotating.trust_bundle().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod validity_tests {
    use super::*;

    #[test]
    fn short_lifetimes_are_encoded() {
        let ca = Ca::generate("cluster.local").unwrap();
        let id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/web").unwrap();
        let (cert, _) = ca.issue(Some(&id), &[], Duration::from_secs(1)).unwrap();
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert.as_bytes())
            .map(|d: rustls_pki_types::CertificateDer<'static>| d)
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let validity = parsed.validity();
        let span = validity.not_after.timestamp() - validity.not_before.timestamp();
        assert!(span <= 3, "{validity:?}");
    }
}
