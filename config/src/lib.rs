//! Istio configuration for weft: the typed model of the `networking.istio.io` kinds weft
//! handles (VirtualService, DestinationRule, ServiceEntry, WorkloadEntry), a loader for
//! multi-document YAML files and folders that reports every problem as a positioned
//! [`Finding`] (`PATH:LINE:COL`), the validation rules of Istio's admission webhook, a few
//! `istioctl analyze` checks, and the per-workload [`Snapshot`] the proxy consumes: routes,
//! clusters and endpoints compiled once per (mesh, proxy identity) so that the request path
//! only matches and picks. The crate reads files but does no network I/O; nothing
//! downstream ever sees raw YAML.

#![warn(missing_docs)]

pub mod duration;
pub mod inject;
pub mod mesh;
pub mod model;
pub mod security;
pub mod snapshot;

mod analyze;
mod finding;
mod hash;
mod load;
mod locate;
mod path;
mod validate;

use std::path::PathBuf;

pub use finding::{CheckReport, Finding, Severity};
pub use load::LoadError;
pub use mesh::Mesh;
pub use path::{FieldPath, Segment};
pub use snapshot::{
    Cluster, CompiledRoute, Decision, Endpoint, ProxyIdentity, RequestInfo, RouteDecision, Snapshot,
};
pub use validate::{Invalid, Problem};

/// Loads, validates and analyses the YAML files and folders in `paths` (what `weft check`
/// prints): syntax, type and validation findings plus analyzer findings (`IST0101`), sorted by
/// path and position. Never fails; unreadable files are error findings.
pub fn check(paths: &[PathBuf]) -> CheckReport {
    let (mesh, mut findings) = load::load_paths(paths);
    findings.extend(analyze::analyze(&mesh));
    CheckReport::new(findings)
}

/// Loads and validates the YAML files and folders in `paths` into a [`Mesh`].
///
/// Returns the mesh with the warnings and notes found, or [`LoadError`] carrying every finding
/// when at least one is an error: a proxy refuses an invalid configuration (keeping the last
/// good one is the caller's business). Analyzer checks are not run here (see [`check`]).
pub fn load(paths: &[PathBuf]) -> Result<(Mesh, Vec<Finding>), LoadError> {
    let (mesh, findings) = load::load_paths(paths);
    load::into_result(mesh, findings)
}
