//! `connectionPool` as Envoy's circuit breakers, **per proxy per cluster** (istio-model.md
//! §2.5, the ⚠ on "per host"): `http2MaxRequests` bounds active requests, `tcp.maxConnections`
//! bounds connections in use (an HTTP/1.1 upstream connection carries one request at a time,
//! so a request holds one while it is active), `http1MaxPendingRequests` bounds requests
//! waiting for one, `maxRetries` bounds concurrent retries. Past any limit the request fails
//! at once with 503 `UO`. The upstream client of the cluster carries `connectTimeout` and the
//! idle timeout; `maxRequestsPerConnection` retires a connection after that many requests
//! (hyper-util's `capture_connection` names it, `poison` keeps the pool from reusing it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{CaptureConnection, HttpConnector, HttpInfo};
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use weft_config::model;

use crate::http::forward::HttpClient;

/// Istio's mesh default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Istio's default upstream idle timeout.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The limits of one cluster (`u32::MAX`: unlimited, Istio's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    pub max_pending: u32,
    pub max_requests: u32,
    pub max_retries: u32,
    /// 0: unlimited. 1 disables keep-alive (`connection: close` upstream); above 1 a
    /// connection is retired after serving that many requests (see [`Pool::served_on`]).
    pub max_requests_per_connection: u32,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Istio applies only values > 0 (`applyConnectionPool`).
fn positive(value: Option<i32>) -> Option<u32> {
    value.filter(|v| *v > 0).map(|v| v as u32)
}

impl Limits {
    pub fn from_model(pool: Option<&model::ConnectionPoolSettings>) -> Limits {
        let tcp = pool.and_then(|p| p.tcp.as_ref());
        let http = pool.and_then(|p| p.http.as_ref());
        Limits {
            max_connections: positive(tcp.and_then(|t| t.max_connections)).unwrap_or(u32::MAX),
            max_pending: positive(http.and_then(|h| h.http1_max_pending_requests))
                .unwrap_or(u32::MAX),
            max_requests: positive(http.and_then(|h| h.http2_max_requests)).unwrap_or(u32::MAX),
            max_retries: positive(http.and_then(|h| h.max_retries)).unwrap_or(u32::MAX),
            max_requests_per_connection: positive(http.and_then(|h| h.max_requests_per_connection))
                .unwrap_or(0),
            connect_timeout: tcp
                .and_then(|t| t.connect_timeout)
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            idle_timeout: http
                .and_then(|h| h.idle_timeout)
                .or_else(|| tcp.and_then(|t| t.idle_timeout))
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// The circuit breakers and client of one cluster.
pub struct Pool {
    pub limits: Limits,
    pub client: HttpClient,
    connections: Option<Arc<Semaphore>>,
    active: AtomicU32,
    pending: AtomicU32,
    retries: AtomicU32,
    /// Requests served per upstream connection, keyed by its addresses, while
    /// `max_requests_per_connection` > 1.
    served: Mutex<HashMap<(SocketAddr, SocketAddr), u32>>,
}

/// Connections tracked for `maxRequestsPerConnection` at most; past that the counts start
/// over (a connection may then serve a few requests more than the limit, never fewer).
const MAX_TRACKED_CONNECTIONS: usize = 4096;

/// Held while a request is active (until its response body ends).
pub struct Admission {
    pool: Arc<super::ClusterState>,
    _connection: Option<OwnedSemaphorePermit>,
}

/// A limit was hit: 503 `UO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upstream overflow")]
pub struct Overflow;

impl Pool {
    pub fn new(limits: Limits) -> Pool {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(limits.connect_timeout));
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(limits.idle_timeout);
        if limits.max_connections != u32::MAX {
            builder.pool_max_idle_per_host(limits.max_connections as usize);
        }
        let connections = (limits.max_connections != u32::MAX).then(|| {
            Arc::new(Semaphore::new(
                (limits.max_connections as usize).min(Semaphore::MAX_PERMITS),
            ))
        });
        Pool {
            client: builder.build(connector),
            limits,
            connections,
            active: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            served: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request served on the connection `captured` names, and retires the connection
    /// (the pool will not reuse it; it closes once its in-flight requests end) when it has
    /// served `max_requests_per_connection` requests, as Envoy's `max_requests_per_connection`.
    pub fn served_on(&self, captured: &CaptureConnection) {
        let metadata = captured.connection_metadata();
        let Some(connected) = metadata.as_ref() else {
            return;
        };
        let mut extras = http::Extensions::new();
        connected.get_extras(&mut extras);
        let Some(info) = extras.get::<HttpInfo>() else {
            return;
        };
        let key = (info.local_addr(), info.remote_addr());
        let retire = {
            let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
            if served.len() >= MAX_TRACKED_CONNECTIONS && !served.contains_key(&key) {
                served.clear();
            }
            let count = served.entry(key).or_insert(0);
            *count += 1;
            let retire = *count >= self.limits.max_requests_per_connection;
            if retire {
                served.remove(&key);
            }
            retire
        };
        if retire {
            connected.poison();
        }
    }

    /// Active requests.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Takes a retry from the budget (`maxRetries` concurrent retries); give it back with
    /// [`Pool::retry_done`].
    pub fn try_retry(&self) -> bool {
        let previous = self.retries.fetch_add(1, Ordering::Relaxed);
        if previous >= self.limits.max_retries {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn retry_done(&self) {
        self.retries.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admits a request to `cluster`'s pool, waiting (bounded by the pending limit) for a
/// connection when all are in use.
pub async fn admit(cluster: &Arc<super::ClusterState>) -> Result<Admission, Overflow> {
    let pool = &cluster.pool;
    let previous = pool.active.fetch_add(1, Ordering::Relaxed);
    // Constructed first so that every early return gives the slot back.
    let mut admission = Admission {
        pool: cluster.clone(),
        _connection: None,
    };
    if previous >= pool.limits.max_requests {
        return Err(Overflow);
    }
    let Some(connections) = &pool.connections else {
        return Ok(admission);
    };
    match connections.clone().try_acquire_owned() {
        Ok(permit) => admission._connection = Some(permit),
        Err(_) => {
            let waiting = pool.pending.fetch_add(1, Ordering::Relaxed);
            let _pending = Pending(&pool.pending);
            if waiting >= pool.limits.max_pending {
                return Err(Overflow);
            }
            let permit = connections.clone().acquire_owned().await;
            match permit {
                Ok(permit) => admission._connection = Some(permit),
                Err(_) => return Err(Overflow),
            }
        }
    }
    Ok(admission)
}

/// Gives a pending slot back, also when the waiting request is cancelled.
struct Pending<'a>(&'a AtomicU32);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pool.pool.active.fetch_sub(1, Ordering::Relaxed);
    }
}
