//! The weft control plane (`weft control`): the certificate authority that signs SPIFFE
//! workload certificates from proxies' CSRs, and the distribution of the mesh config to
//! proxies (a long-poll watch). One HTTPS API (default port 15012):
//!
//! * `POST /v1/certificate` — `Authorization: Bearer <bootstrap token>`, body
//!   `{"csr": PEM, "lifetimeSeconds": N?}` → `{"certificateChain": [PEM], "trustBundle":
//!   [PEM], "notAfter": unix seconds}`. The token names the workload's namespace and service
//!   account; the certificate carries `spiffe://<trust-domain>/ns/<ns>/sa/<sa>` only.
//! * `GET /v1/trust-bundle` → `{"trustBundle": [PEM]}` (one or two roots).
//! * `GET /v1/config?version=V&waitSeconds=S` (token required) → `{"version", "documents":
//!   [{"name", "text"}]}` as soon as the version differs from `V`, else after `S` seconds
//!   with the same version.
//!
//! Private keys of workloads never reach the control plane (DESIGN invariant).

pub mod api;
pub mod ca;
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub use api::{CertificateRequest, CertificateResponse, ConfigDocument, ConfigResponse};
pub use ca::{Ca, CaError, SpiffeId};

/// Everything `weft control` needs; plain data.
#[derive(Debug, Clone)]
pub struct Config {
    /// API address (port 0 allowed).
    pub listen: SocketAddr,
    /// SPIFFE trust domain.
    pub trust_domain: String,
    /// CA folder: loaded, or created on first start. `None`: an in-memory CA.
    pub ca_dir: Option<PathBuf>,
    /// Istio YAML served to proxies; re-read every `config_poll`.
    pub config_paths: Vec<PathBuf>,
    /// Bootstrap tokens file: lines `TOKEN NAMESPACE SERVICEACCOUNT` (`#` comments).
    pub tokens_file: Option<PathBuf>,
    /// Lifetime of workload certificates (proxies may ask for less).
    pub workload_cert_lifetime: Duration,
    /// DNS names / IPs of the control plane's own serving certificate.
    pub server_names: Vec<String>,
    /// How often `config_paths` are re-read.
    pub config_poll: Duration,
}

impl Config {
    /// Defaults of `weft control`: 127.0.0.1:15012, `cluster.local`, 24 h certificates.
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            trust_domain: "cluster.local".into(),
            ca_dir: None,
            config_paths: Vec::new(),
            tokens_file: None,
            workload_cert_lifetime: ca::DEFAULT_WORKLOAD_LIFETIME,
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            config_poll: Duration::from_secs(2),
        }
    }
}

/// Control-plane failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CA.
    #[error("CA: {0}")]
    Ca(#[from] CaError),
    /// Binding the API listener.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The tokens file.
    #[error("tokens file {path}: {message}")]
    Tokens {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// TLS setup.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The mesh config as served: documents and their version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSet {
    /// Version (hash of the documents).
    pub version: String,
    /// `(name, text)` of each YAML file.
    pub documents: Vec<(String, String)>,
}

impl ConfigSet {
    /// Builds a set, computing its version.
    pub fn new(documents: Vec<(String, String)>) -> ConfigSet {
        // FNV-1a over names and texts: stable, cheap, no dependency.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (name, text) in &documents {
            for byte in name.bytes().chain([0]).chain(text.bytes()).chain([0]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        ConfigSet {
            version: format!("{hash:016x}"),
            documents,
        }
    }

    /// Reads every `*.yaml`/`*.yml` under `paths` (sorted; hidden entries skipped).
    pub fn read(paths: &[PathBuf]) -> ConfigSet {
        fn walk(path: &std::path::Path, out: &mut Vec<(String, String)>) {
            if path.is_dir() {
                let Ok(entries) = std::fs::read_dir(path) else {
                    return;
                };
                let mut entries: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .map(|e| e.path())
                    .collect();
                entries.sort();
                for entry in entries {
                    walk(&entry, out);
                }
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
                && let Ok(text) = std::fs::read_to_string(path)
            {
                out.push((path.display().to_string(), text));
            }
        }
        let mut documents = Vec::new();
        for path in paths {
            walk(path, &mut documents);
        }
        ConfigSet::new(documents)
    }
}

/// State shared by the API handlers.
pub(crate) struct State {
    pub ca: Mutex<Ca>,
    pub tokens: Mutex<HashMap<String, SpiffeId>>,
    pub config: watch::Sender<Arc<ConfigSet>>,
    pub max_lifetime: Duration,
}

impl State {
    pub(crate) fn identity(&self, token: &str) -> Option<SpiffeId> {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }
}

/// A running control plane.
pub struct Control {
    addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn read_tokens(path: &PathBuf, trust_domain: &str) -> Result<HashMap<String, SpiffeId>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Tokens {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [token, namespace, service_account] = fields[..] else {
            return Err(Error::Tokens {
                path: path.clone(),
                message: format!("line {}: want TOKEN NAMESPACE SERVICEACCOUNT", i + 1),
            });
        };
        tokens.insert(
            token.to_string(),
            SpiffeId {
                trust_domain: trust_domain.to_string(),
                namespace: namespace.to_string(),
                service_account: service_account.to_string(),
            },
        );
    }
    Ok(tokens)
}

impl Config {
    /// Loads or creates the CA, binds the API listener and starts serving.
    pub async fn build(self) -> Result<Control, Error> {
        let ca = match &self.ca_dir {
            Some(dir) => Ca::load_or_init(dir, &self.trust_domain)?,
            None => Ca::generate(&self.trust_domain)?,
        };
        let tokens = match &self.tokens_file {
            Some(path) => read_tokens(path, &self.trust_domain)?,
            None => HashMap::new(),
        };
        let (server_cert, server_key) = ca.issue(
            None,
            &self.server_names,
            Duration::from_secs(365 * 24 * 3600),
        )?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: self.listen,
            source,
        })?;
        let (config, _) = watch::channel(Arc::new(ConfigSet::read(&self.config_paths)));
        let state = Arc::new(State {
            ca: Mutex::new(ca),
            tokens: Mutex::new(tokens),
            config,
            max_lifetime: self.workload_cert_lifetime,
        });
        let tls = server::tls_config(&server_cert, &server_key)?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(server::serve(
            listener,
            tls,
            state.clone(),
            stop_rx.clone(),
        ))];
        if !self.config_paths.is_empty() {
            tasks.push(tokio::spawn(poll_config(
                self.config_paths.clone(),
                self.config_poll,
                state.clone(),
                stop_rx,
            )));
        }
        tracing::info!(%addr, trust_domain = %self.trust_domain, "control plane listening");
        Ok(Control {
            addr,
            state,
            stop,
            tasks,
        })
    }
}

async fn poll_config(
    paths: Vec<PathBuf>,
    every: Duration,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let paths = paths.clone();
        let Ok(set) = tokio::task::spawn_blocking(move || ConfigSet::read(&paths)).await else {
            continue;
        };
        state.config.send_if_modified(|current| {
            if current.version == set.version {
                false
            } else {
                *current = Arc::new(set);
                true
            }
        });
    }
}

impl Control {
    /// The bound API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR` of the API.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Registers a workload and returns its bootstrap token (what a projected
    /// service-account token is in Kubernetes).
    pub fn register_workload(&self, namespace: &str, service_account: &str) -> String {
        let token = hex::encode(rand::random::<[u8; 24]>());
        let trust_domain = self
            .state
            .ca
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .trust_domain()
            .to_string();
        self.state
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                token.clone(),
                SpiffeId {
                    trust_domain,
                    namespace: namespace.to_string(),
                    service_account: service_account.to_string(),
                },
            );
        token
    }

    /// The trust bundle (PEM roots).
    pub fn trust_bundle(&self) -> Vec<String> {
        self.state
            .ca
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .trust_bundle()
    }

    /// Runs `f` on the CA (root rotation, offline issuance in tests).
    pub fn with_ca<T>(&self, f: impl FnOnce(&mut Ca) -> T) -> T {
        f(&mut self.state.ca.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the served config (watchers get it at once).
    pub fn set_config(&self, documents: Vec<(String, String)>) {
        let set = ConfigSet::new(documents);
        self.state.config.send_if_modified(|current| {
            if current.version == set.version {
                false
            } else {
                *current = Arc::new(set);
                true
            }
        });
    }

    /// The version of the served config.
    pub fn config_version(&self) -> String {
        self.state.config.borrow().version.clone()
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
