//! The JSON bodies of the control-plane API (shared with the proxy's client, which mirrors
//! them: the proxy does not depend on this crate).

use serde::{Deserialize, Serialize};

/// `POST /v1/certificate` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequest {
    /// PKCS#10 CSR (PEM); its names are ignored.
    pub csr: String,
    /// Wanted lifetime (capped by the control plane's maximum).
    #[serde(default)]
    pub lifetime_seconds: Option<u64>,
}

/// `POST /v1/certificate` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateResponse {
    /// Leaf first (PEM).
    pub certificate_chain: Vec<String>,
    /// Roots to trust (PEM; two during a root rotation).
    pub trust_bundle: Vec<String>,
    /// Expiry, Unix seconds.
    pub not_after: u64,
}

/// One YAML file of the mesh config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDocument {
    /// File name (for findings).
    pub name: String,
    /// The YAML text.
    pub text: String,
}

/// `GET /v1/config` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigResponse {
    /// Version of the documents.
    pub version: String,
    /// The documents.
    pub documents: Vec<ConfigDocument>,
}
