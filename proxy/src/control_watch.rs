//! Mesh config from the control plane (`weft proxy --control URL`): the first config is
//! fetched before the proxy starts serving, then a long-poll on `GET /v1/config` returns as
//! soon as the control plane's version changes; every new version goes through
//! [`crate::swap::apply`] (compile, swap, republish, count). A control plane that is away is
//! retried with backoff while the last good config keeps serving.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use weft_config::{Finding, LoadError, Mesh, ProxyIdentity, Severity, Snapshot};

use crate::tls::MeshTlsConfig;
use crate::tls::control::{self, ConfigResponse};
use crate::{Error, Shared};

/// Longest long-poll asked of the control plane (it caps at 60 s).
const WAIT: Duration = Duration::from_secs(30);
/// How long start-up waits for the first config.
const FIRST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest pause between attempts while the control plane is away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn load(response: &ConfigResponse) -> Result<(Mesh, Vec<Finding>), LoadError> {
    let sources: Vec<(&str, &str)> = response
        .documents
        .iter()
        .map(|d| (d.name.as_str(), d.text.as_str()))
        .collect();
    Mesh::from_str_sources(&sources)
}

fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.pow(failures.min(6))).min(MAX_BACKOFF)
}

/// Fetches and compiles the first config (retrying until [`FIRST_TIMEOUT`]); returns the
/// control plane's version with the snapshot.
pub(crate) async fn initial(
    config: &MeshTlsConfig,
    identity: &ProxyIdentity,
) -> Result<(String, Snapshot), Error> {
    let deadline = tokio::time::Instant::now() + FIRST_TIMEOUT;
    let mut failures = 0;
    let response = loop {
        match control::watch_config(config, "", Duration::ZERO).await {
            Ok(response) => break response,
            Err(error) if tokio::time::Instant::now() + backoff(failures) < deadline => {
                tracing::warn!(%error, "waiting for the control plane's config");
                tokio::time::sleep(backoff(failures)).await;
                failures += 1;
            }
            Err(error) => {
                return Err(Error::Tls(crate::tls::TlsError::Control(format!(
                    "no mesh config from the control plane: {error}"
                ))));
            }
        }
    };
    let (mesh, findings) = load(&response).map_err(|e| Error::Config(e.to_string()))?;
    for finding in findings.iter().filter(|f| f.severity == Severity::Warning) {
        tracing::warn!("{finding}");
    }
    Ok((response.version, Snapshot::compile(&mesh, identity)))
}

/// Watches the control plane until `stop`, applying each new version.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    config: MeshTlsConfig,
    mut version: String,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            let polled = tokio::select! {
                polled = control::watch_config(&config, &version, WAIT) => polled,
                _ = stop.changed() => return,
            };
            match polled {
                Ok(response) => {
                    failures = 0;
                    if response.version == version {
                        continue;
                    }
                    // The version is taken even when the config is refused: the next poll then
                    // waits for the next change instead of fetching the same bad config.
                    version = response.version.clone();
                    crate::swap::apply(&shared, "control", move || load(&response)).await;
                }
                Err(error) => {
                    tracing::warn!(%error, "config watch on the control plane failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(failures)) => {}
                        _ = stop.changed() => return,
                    }
                    failures += 1;
                }
            }
        }
    })
}
