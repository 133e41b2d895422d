//! Hot reload of the `--config` folder: the folder is watched (not the files: editors and
//! Kubernetes ConfigMaps replace files by rename), changes are debounced, the mesh is loaded,
//! validated and compiled off the request path, and the new [`Snapshot`] is swapped in
//! atomically. In-flight requests finish on the snapshot they started with. An invalid change
//! is rejected with one log line per error finding (`PATH:LINE:COL`), counted as
//! `weft_proxy_config_reloads_total{result="failure"}`, and the last good config keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::Shared;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a stream of changes may postpone a reload.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// Starts watching `paths`; the task ends when `stop` turns true.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    paths: Vec<PathBuf>,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if paths.is_empty() {
        return None;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, EventKind::Access(_))
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the config folder; hot reload is off");
            return None;
        }
    };
    for path in &paths {
        let (target, mode) = watch_target(path);
        if let Err(error) = watcher.watch(&target, mode) {
            tracing::warn!(%error, path = %target.display(), "cannot watch a config path");
        }
    }
    Some(tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        loop {
            tokio::select! {
                event = rx.recv() => if event.is_none() { break },
                _ = stop.changed() => break,
            }
            let first = Instant::now();
            loop {
                let quiet = tokio::time::timeout(DEBOUNCE, rx.recv()).await;
                if quiet.is_err() || first.elapsed() >= MAX_DELAY {
                    break;
                }
            }
            reload(&shared, &paths).await;
        }
    }))
}

/// A folder is watched recursively; a file through its folder.
fn watch_target(path: &Path) -> (PathBuf, RecursiveMode) {
    if path.is_dir() {
        return (path.to_path_buf(), RecursiveMode::Recursive);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    (parent.to_path_buf(), RecursiveMode::NonRecursive)
}

/// Loads and compiles the config; swaps it in when valid and different.
pub(crate) async fn reload(shared: &Arc<Shared>, paths: &[PathBuf]) {
    let owned = paths.to_vec();
    crate::swap::apply(shared, "files", move || weft_config::load(&owned)).await;
}
