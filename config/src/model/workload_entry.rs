//! WorkloadEntry (`api: networking/v1alpha3/workload_entry.proto`; istio-model.md §3.2), also
//! the shape of inline ServiceEntry endpoints.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::null_default;

/// `WorkloadEntry.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntrySpec {
    /// IP, DNS name (DNS resolution) or `unix:///path`; empty requires `network`.
    #[serde(default)]
    pub address: String,
    /// Endpoint port per ServiceEntry port **name**.
    #[serde(default, deserialize_with = "null_default")]
    pub ports: BTreeMap<String, u32>,
    /// Labels (subsets, selectors).
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// Network (reached through a network gateway when different).
    pub network: Option<String>,
    /// `region/zone/subzone`.
    pub locality: Option<String>,
    /// Load balancing weight.
    pub weight: Option<u32>,
    /// Identity (same namespace).
    pub service_account: Option<String>,
}
