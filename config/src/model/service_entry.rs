//! ServiceEntry (`api: networking/v1alpha3/service_entry.proto`; istio-model.md §3.1).

use serde::Deserialize;

use super::{WorkloadEntrySpec, WorkloadSelector, null_default};

/// `ServiceEntry.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntrySpec {
    /// DNS names (wildcard prefix allowed); required.
    #[serde(default, deserialize_with = "null_default")]
    pub hosts: Vec<String>,
    /// VIPs or CIDRs.
    #[serde(default, deserialize_with = "null_default")]
    pub addresses: Vec<String>,
    /// Service ports.
    #[serde(default, deserialize_with = "null_default")]
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh (default `MESH_EXTERNAL`).
    pub location: Option<Location>,
    /// How endpoints are found (default `NONE`).
    pub resolution: Option<Resolution>,
    /// Inline endpoints (exclusive with `workloadSelector`).
    #[serde(default, deserialize_with = "null_default")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Selects WorkloadEntries (and pods) of the same namespace.
    pub workload_selector: Option<WorkloadSelector>,
    /// Visibility.
    #[serde(default, deserialize_with = "null_default")]
    pub export_to: Vec<String>,
    /// SANs of the server certificates.
    #[serde(default, deserialize_with = "null_default")]
    pub subject_alt_names: Vec<String>,
}

/// `ServicePort`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port number (required).
    #[serde(default)]
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP`, `TLS`, ...
    pub protocol: Option<String>,
    /// DNS-1123 label, unique (required).
    #[serde(default)]
    pub name: String,
    /// Endpoint port (default `number`).
    pub target_port: Option<u32>,
}

/// `ServiceEntry.Location`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh: no auto mTLS (the default).
    #[default]
    MeshExternal,
    /// Part of the mesh.
    MeshInternal,
}

/// `ServiceEntry.Resolution`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the original destination (the default).
    #[default]
    None,
    /// Use the endpoint addresses.
    Static,
    /// Resolve endpoint addresses (or the host) with DNS, all IPs.
    Dns,
    /// Resolve with DNS, first IP per connection.
    DnsRoundRobin,
    /// Resolve per request from Host/SNI (wildcard hosts).
    DynamicDns,
}

impl Location {
    /// The YAML spelling (`MESH_EXTERNAL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Location::MeshExternal => "MESH_EXTERNAL",
            Location::MeshInternal => "MESH_INTERNAL",
        }
    }
}

impl Resolution {
    /// The YAML spelling (`DNS_ROUND_ROBIN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::DynamicDns => "DYNAMIC_DNS",
        }
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
