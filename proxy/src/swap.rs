//! The one path of every config change after start, whatever its source (the control plane's
//! watch in `control_watch.rs`, a file reload): load and validate, compile the [`Snapshot`]
//! for this proxy off the request path, swap it in atomically, republish the config metrics
//! (`telemetry::routes::publish`) and count `weft_proxy_config_reloads_total{result}`.
//! In-flight requests finish on the snapshot they started with; an invalid config is refused
//! with one log line per error finding and the last good config keeps serving.

use std::sync::Arc;

use weft_config::{Finding, LoadError, Mesh, Severity, Snapshot};

use crate::Shared;

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// A new snapshot is in force.
    Swapped,
    /// The config compiles to the snapshot already in force.
    Unchanged,
    /// The config is invalid (or loading failed); the last good one stays.
    Rejected,
}

/// Loads with `load` (run on the blocking pool: it may read files), compiles for this proxy
/// and swaps the snapshot in. `origin` names the source in logs (`control`, `files`).
pub(crate) async fn apply<F>(shared: &Arc<Shared>, origin: &'static str, load: F) -> Applied
where
    F: FnOnce() -> Result<(Mesh, Vec<Finding>), LoadError> + Send + 'static,
{
    let identity = shared.identity.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        load().map(|(mesh, findings)| (Snapshot::compile(&mesh, &identity), findings))
    })
    .await;
    let reloads = &shared.telemetry.metrics.config_reloads;
    let in_force = shared.snapshot.load().version().to_string();
    match compiled {
        Ok(Ok((snapshot, findings))) => {
            if snapshot.version() == in_force {
                return Applied::Unchanged;
            }
            for finding in findings.iter().filter(|f| f.severity == Severity::Warning) {
                tracing::warn!(%origin, "{finding}");
            }
            // Everything derived from the snapshot is refreshed here, before requests see it:
            // per-cluster traffic state (kept for unchanged clusters) and the config metrics.
            shared.traffic.update(&snapshot);
            crate::telemetry::routes::publish(&snapshot, &shared.telemetry.metrics);
            let version = snapshot.version().to_string();
            shared.snapshot.store(Arc::new(snapshot));
            reloads.with_label_values(&["success"]).inc();
            tracing::info!(%origin, previous = %in_force, %version, "config reloaded");
            Applied::Swapped
        }
        Ok(Err(error)) => {
            reloads.with_label_values(&["failure"]).inc();
            for finding in error
                .findings()
                .iter()
                .filter(|f| f.severity == Severity::Error)
            {
                tracing::error!(%origin, version = %in_force, "config change rejected, keeping the last good config: {finding}");
            }
            Applied::Rejected
        }
        Err(error) => {
            reloads.with_label_values(&["failure"]).inc();
            tracing::error!(%origin, %error, "config reload task failed");
            Applied::Rejected
        }
    }
}
