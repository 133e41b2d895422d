//! Types shared by several kinds (`api: networking/v1alpha3/virtual_service.proto`,
//! `type/v1beta1/selector.proto`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::null_default;

/// `StringMatch`: exactly one of `exact`, `prefix`, `regex` (RE2, whole-string match). An empty
/// match `{}` means "present" where presence makes sense (headers, query parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact, case-sensitive.
    pub exact: Option<String>,
    /// Plain string prefix (not path-segment aware).
    pub prefix: Option<String>,
    /// RE2 regex that must match the whole value.
    pub regex: Option<String>,
}

/// `Percent`: a double in `0..=100`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Percent {
    /// The percentage.
    #[serde(default)]
    pub value: f64,
}

/// `PortSelector`: a service port number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    /// Port number (1..65535).
    #[serde(default)]
    pub number: u32,
}

/// `Destination`: a registry host, an optional DestinationRule subset and port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service host; short names are relative to the config object's namespace.
    #[serde(default)]
    pub host: String,
    /// Subset defined in a DestinationRule for the host.
    pub subset: Option<String>,
    /// Required when the service has several ports.
    pub port: Option<PortSelector>,
}

/// `networking.WorkloadSelector` (ServiceEntry, Sidecar): `labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a workload must carry.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
}

/// `type.v1beta1.WorkloadSelector` (DestinationRule, security kinds): `matchLabels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels a workload must carry.
    #[serde(default, deserialize_with = "null_default")]
    pub match_labels: BTreeMap<String, String>,
}
