//! Traffic management at request time: the per-cluster runtime state the immutable
//! [`Snapshot`] cannot hold (load-balancer counters, circuit breakers and their client,
//! outlier detection), and the route actions (redirects, direct responses, header operations,
//! rewrites, CORS, faults, mirrors, retries).
//!
//! **Invariant:** runtime state is keyed by cluster name and survives a config reload when the
//! cluster (endpoints and effective traffic policy) is unchanged; a changed cluster starts
//! afresh. Nothing here is locked across an `.await`.

pub mod actions;
pub mod balance;
pub mod forward;
pub mod mirror;
pub mod outlier;
pub mod pool;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntGauge};
use serde_json::{Value, json};
use tokio::time::Instant;
use weft_config::model::TrafficPolicy;
use weft_config::{Cluster, Endpoint, Snapshot};

use crate::telemetry::span::EncodedAttributes;
use crate::telemetry::{Metrics, Peer};
use balance::Balancer;
use outlier::{Detector, HostHealth, OutlierConfig, TryResult, Verdict};
use pool::{Limits, Pool};

/// One endpoint of a cluster at run time.
pub struct EndpointState {
    pub endpoint: Endpoint,
    /// The endpoint as a metrics peer (computed once, shared by every request's labels).
    pub peer: Arc<Peer>,
    /// The span attributes of a try to it (`weft.destination.*`, `network.peer.address`),
    /// encoded once.
    pub span_attributes: EncodedAttributes,
    active: AtomicU32,
    pub health: HostHealth,
}

/// The runtime state of one cluster.
pub struct ClusterState {
    pub name: String,
    pub endpoints: Box<[EndpointState]>,
    pub balancer: Balancer,
    pub pool: Pool,
    pub outlier: Option<Detector>,
    endpoints_config: Vec<Endpoint>,
    policy: Option<TrafficPolicy>,
    ejected_gauge: IntGauge,
    ejections: IntCounter,
}

/// Keeps an endpoint's active-request count up while a try is in flight.
pub struct EndpointGuard {
    cluster: Arc<ClusterState>,
    index: usize,
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        if let Some(endpoint) = self.cluster.endpoints.get(self.index) {
            endpoint.active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

// === impl ClusterState ===

impl ClusterState {
    fn new(cluster: &Cluster, metrics: &Metrics) -> ClusterState {
        let policy = cluster.traffic_policy.as_ref();
        let authorities: Vec<&str> = cluster
            .endpoints
            .iter()
            .map(|e| e.authority_str())
            .collect();
        let endpoints = cluster
            .endpoints
            .iter()
            .map(|endpoint| {
                let peer = Arc::new(Peer::from_labels(
                    &endpoint.workload,
                    &endpoint.namespace,
                    |k| endpoint.labels.get(k).map(String::as_str),
                ));
                EndpointState {
                    span_attributes: EncodedAttributes::new(&[
                        ("weft.destination.workload", &peer.workload),
                        ("weft.destination.namespace", &peer.namespace),
                        ("weft.destination.version", &peer.version),
                        ("network.peer.address", endpoint.authority_str()),
                    ]),
                    peer,
                    endpoint: endpoint.clone(),
                    active: AtomicU32::new(0),
                    health: HostHealth::default(),
                }
            })
            .collect();
        let ejected_gauge = metrics
            .ejected_endpoints
            .with_label_values(&[&cluster.name]);
        ejected_gauge.set(0);
        ClusterState {
            name: cluster.name.clone(),
            endpoints,
            balancer: Balancer::new(policy.and_then(|p| p.load_balancer.as_ref()), &authorities),
            pool: Pool::new(Limits::from_model(
                policy.and_then(|p| p.connection_pool.as_ref()),
            )),
            outlier: policy
                .and_then(|p| p.outlier_detection.as_ref())
                .map(|od| Detector::new(OutlierConfig::from_model(od))),
            endpoints_config: cluster.endpoints.clone(),
            policy: cluster.traffic_policy.clone(),
            ejections: metrics.ejections.with_label_values(&[&cluster.name]),
            ejected_gauge,
        }
    }

    fn unchanged(&self, cluster: &Cluster) -> bool {
        self.endpoints_config == cluster.endpoints && self.policy == cluster.traffic_policy
    }

    /// Picks an endpoint: not ejected (unless in panic mode), not in `tried` when another is
    /// usable. `None`: no healthy upstream (503 `UH`).
    pub fn pick(&self, tried: &[usize], hash: Option<u64>) -> Option<usize> {
        let n = self.endpoints.len();
        let panic = self.outlier.as_ref().is_some_and(|d| d.panic(n));
        let healthy = |i: usize| panic || !self.endpoints[i].health.is_ejected();
        let active = |i: usize| self.endpoints[i].active.load(Ordering::Relaxed);
        if !tried.is_empty()
            && let Some(index) =
                self.balancer
                    .pick(n, |i| healthy(i) && !tried.contains(&i), active, hash)
        {
            return Some(index);
        }
        self.balancer.pick(n, healthy, active, hash)
    }

    /// Marks a try to endpoint `index` as started.
    pub fn start_try(self: &Arc<Self>, index: usize) -> EndpointGuard {
        if let Some(endpoint) = self.endpoints.get(index) {
            endpoint.active.fetch_add(1, Ordering::Relaxed);
        }
        EndpointGuard {
            cluster: self.clone(),
            index,
        }
    }

    /// Feeds a try's result to outlier detection.
    pub fn record(&self, index: usize, result: TryResult) {
        let (Some(detector), Some(endpoint)) = (&self.outlier, self.endpoints.get(index)) else {
            return;
        };
        if detector.record(
            &endpoint.health,
            self.endpoints.len(),
            result,
            Instant::now(),
        ) == Verdict::Ejected
        {
            self.ejections.inc();
            self.ejected_gauge.set(i64::from(detector.ejected()));
            tracing::info!(
                cluster = %self.name,
                endpoint = %endpoint.endpoint.authority_str(),
                "outlier detection ejected an endpoint"
            );
        }
    }

    fn sweep(&self) {
        if let Some(detector) = &self.outlier
            && detector.sweep(self.endpoints.iter().map(|e| &e.health), Instant::now()) > 0
        {
            self.ejected_gauge.set(i64::from(detector.ejected()));
        }
    }

    fn dump(&self) -> Value {
        let now = Instant::now();
        let limits = &self.pool.limits;
        let unlimited = |v: u32| (v != u32::MAX).then_some(v);
        json!({
            "name": self.name,
            "loadBalancer": match &self.balancer {
                Balancer::LeastRequest => "LEAST_REQUEST",
                Balancer::RoundRobin(_) => "ROUND_ROBIN",
                Balancer::Random => "RANDOM",
                Balancer::Ring { .. } => "RING_HASH",
            },
            "circuitBreakers": {
                "maxConnections": unlimited(limits.max_connections),
                "maxPendingRequests": unlimited(limits.max_pending),
                "maxRequests": unlimited(limits.max_requests),
                "maxRetries": unlimited(limits.max_retries),
                "activeRequests": self.pool.active(),
            },
            "outlierDetection": self.outlier.as_ref().map(|d| json!({
                "consecutive5xxErrors": d.config.consecutive_5xx,
                "consecutiveGatewayErrors": d.config.consecutive_gateway,
                "intervalMs": d.config.interval.as_millis() as u64,
                "baseEjectionTimeMs": d.config.base_ejection_time.as_millis() as u64,
                "maxEjectionPercent": d.config.max_ejection_percent,
                "minHealthPercent": d.config.min_health_percent,
                "ejected": d.ejected(),
            })),
            "endpoints": self.endpoints.iter().map(|e| json!({
                "address": e.endpoint.authority_str(),
                "activeRequests": e.active.load(Ordering::Relaxed),
                "health": self.outlier.as_ref().map(|d| d.dump_host(&e.health, now)),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The runtime state of every cluster of the snapshot in force.
pub struct Traffic {
    clusters: ArcSwap<HashMap<String, Arc<ClusterState>>>,
    metrics: Metrics,
    /// Mirrored requests in flight (bounded: mirrors never pile up without limit).
    pub mirrors_in_flight: AtomicUsize,
}

impl Traffic {
    /// State for every cluster of `snapshot`. Must run inside the runtime (outlier sweeps are
    /// spawned).
    pub fn new(snapshot: &Snapshot, metrics: Metrics) -> Traffic {
        let traffic = Traffic {
            clusters: ArcSwap::from_pointee(HashMap::new()),
            metrics,
            mirrors_in_flight: AtomicUsize::new(0),
        };
        traffic.update(snapshot);
        traffic
    }

    /// Adopts a new snapshot's clusters, keeping the state of unchanged ones.
    pub fn update(&self, snapshot: &Snapshot) {
        let current = self.clusters.load();
        let mut next = HashMap::new();
        for cluster in snapshot.clusters() {
            let state = match current.get(&cluster.name) {
                Some(state) if state.unchanged(cluster) => state.clone(),
                _ => {
                    let state = Arc::new(ClusterState::new(cluster, &self.metrics));
                    spawn_sweeper(&state);
                    state
                }
            };
            next.insert(cluster.name.clone(), state);
        }
        for name in current.keys().filter(|name| !next.contains_key(*name)) {
            self.metrics
                .ejected_endpoints
                .with_label_values(&[name])
                .set(0);
        }
        self.clusters.store(Arc::new(next));
    }

    /// The state of a snapshot's cluster. A cluster missing from the table (a request still
    /// on the previous snapshot during a swap) gets a fresh, unshared state.
    pub fn cluster(&self, cluster: &Cluster) -> Arc<ClusterState> {
        match self.clusters.load().get(&cluster.name) {
            Some(state) => state.clone(),
            None => Arc::new(ClusterState::new(cluster, &self.metrics)),
        }
    }

    /// The runtime view for `/config_dump`.
    pub fn dump(&self) -> Value {
        let clusters = self.clusters.load();
        let mut names: Vec<&String> = clusters.keys().collect();
        names.sort();
        Value::Array(names.into_iter().map(|n| clusters[n].dump()).collect())
    }
}

fn spawn_sweeper(state: &Arc<ClusterState>) {
    let Some(detector) = &state.outlier else {
        return;
    };
    let interval = detector.config.interval;
    let weak: Weak<ClusterState> = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(state) = weak.upgrade() else { break };
            state.sweep();
        }
    });
}
