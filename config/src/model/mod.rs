//! Wire types: the Istio CRDs exactly as written in YAML (`networking.istio.io` `v1alpha3`,
//! `v1beta1` and `v1` share one schema). Fields are camelCase, everything optional is an
//! `Option` or an empty collection (`null` counts as absent), durations are already parsed.
//! Nothing here is validated: [`crate::mesh`] holds the checked values built from these.
//!
//! Unknown fields are not errors: the loader reports each one as a warning naming its path.

mod common;
mod destination_rule;
mod security;
mod service_entry;
mod virtual_service;
mod workload_entry;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

pub use common::*;
pub use destination_rule::*;
pub use security::*;
pub use service_entry::*;
pub use virtual_service::*;
pub use workload_entry::*;

/// The API group of the kinds weft handles.
pub const NETWORKING_GROUP: &str = "networking.istio.io";

/// The `networking.istio.io` versions weft accepts (same schema).
pub const NETWORKING_VERSIONS: [&str; 3] = ["v1alpha3", "v1beta1", "v1"];

/// A Kubernetes object: `apiVersion`, `kind`, `metadata` and a typed `spec`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    /// `group/version`, e.g. `networking.istio.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `VirtualService`, `DestinationRule`, ...
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, labels, annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    /// The kind's specification (required by Istio; checked by validation).
    pub spec: Option<S>,
    /// Written by the cluster, tolerated and ignored.
    #[serde(default)]
    pub status: Option<serde_yaml::Value>,
}

/// Kubernetes object metadata (the fields weft uses; the usual server-set fields are tolerated).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name (required).
    pub name: Option<String>,
    /// Namespace; `default` when absent.
    pub namespace: Option<String>,
    /// Object labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// Object annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 creation time; orders conflicting objects (oldest first).
    pub creation_timestamp: Option<String>,
    /// Server-set, ignored.
    pub uid: Option<serde_yaml::Value>,
    /// Server-set, ignored.
    pub resource_version: Option<serde_yaml::Value>,
    /// Server-set, ignored.
    pub generation: Option<serde_yaml::Value>,
    /// Ignored.
    pub generate_name: Option<serde_yaml::Value>,
    /// Server-set, ignored.
    pub self_link: Option<serde_yaml::Value>,
    /// Server-set, ignored.
    pub managed_fields: Option<serde_yaml::Value>,
    /// Ignored.
    pub finalizers: Option<serde_yaml::Value>,
    /// Ignored.
    pub owner_references: Option<serde_yaml::Value>,
    /// Server-set, ignored.
    pub deletion_timestamp: Option<serde_yaml::Value>,
    /// Server-set, ignored.
    pub deletion_grace_period_seconds: Option<serde_yaml::Value>,
}

/// Deserializes `null` (or an empty value) as the type's default, like protobuf JSON does.
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
