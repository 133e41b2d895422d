//! Passive health checking with Envoy's outlier detection algorithm, as Istio configures it
//! (istio-model.md §2.6): consecutive 5xx (default 5 once the block is present) and,
//! when set, consecutive gateway errors; ejection for `baseEjectionTime × consecutive
//! ejections`, capped at `max(300 s, baseEjectionTime)`; the multiplier decays by one for every
//! `interval` a re-admitted host stays healthy; `maxEjectionPercent` (at least one host can
//! always be ejected); panic mode only with `minHealthPercent` > 0 (Istio's default 0 disables
//! it). Without `splitExternalLocalOriginErrors`, a connect failure or reset counts as a 503
//! and a timeout as a 504, as in Envoy.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use weft_config::model;

/// Envoy's `max_ejection_time` default (Istio does not expose it).
const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// The detector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierConfig {
    /// 5xx in a row before ejection (0: off).
    pub consecutive_5xx: u32,
    /// 502/503/504 in a row before ejection (0: off).
    pub consecutive_gateway: u32,
    /// Local-origin failures in a row (only with split local-origin errors; 0: off).
    pub consecutive_local_origin: u32,
    /// Count local-origin failures apart from HTTP statuses.
    pub split_local_origin: bool,
    /// Sweep interval.
    pub interval: Duration,
    /// Base ejection time.
    pub base_ejection_time: Duration,
    /// Max share of hosts ejected at once (percent).
    pub max_ejection_percent: u32,
    /// Panic threshold (percent of healthy hosts); 0 disables panic mode.
    pub min_health_percent: u32,
}

impl OutlierConfig {
    /// Istio's `applyOutlierDetection` defaults.
    pub fn from_model(od: &model::OutlierDetection) -> OutlierConfig {
        let split = od.split_external_local_origin_errors.unwrap_or(false);
        OutlierConfig {
            consecutive_5xx: od.consecutive_5xx_errors.unwrap_or(5),
            consecutive_gateway: od.consecutive_gateway_errors.unwrap_or(0),
            consecutive_local_origin: if split {
                od.consecutive_local_origin_failures.unwrap_or(5)
            } else {
                0
            },
            split_local_origin: split,
            interval: od
                .interval
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(10)),
            base_ejection_time: od
                .base_ejection_time
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(30)),
            max_ejection_percent: od.max_ejection_percent.unwrap_or(10).clamp(0, 100) as u32,
            min_health_percent: od.min_health_percent.unwrap_or(0).clamp(0, 100) as u32,
        }
    }

    fn max_ejection_time(&self) -> Duration {
        MAX_EJECTION_TIME.max(self.base_ejection_time)
    }
}

/// The result of one try against a host, as the detector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryResult {
    /// The host answered with this status.
    Status(u16),
    /// The connection could not be made.
    ConnectFailure,
    /// The per-try timeout fired.
    Timeout,
    /// The connection was reset before a response.
    Reset,
}

#[derive(Debug, Default)]
struct HostState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local: u32,
    /// When the current ejection started.
    ejected_at: Option<Instant>,
    /// Consecutive-ejection multiplier (Envoy's `ejectTimeBackoff`).
    multiplier: u32,
    last_unejected: Option<Instant>,
    times_ejected: u64,
}

/// Per-host detector state.
#[derive(Debug, Default)]
pub struct HostHealth {
    ejected: AtomicBool,
    state: Mutex<HostState>,
}

impl HostHealth {
    /// Whether the host is ejected now (the load balancer skips it).
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }
}

/// What happened when a result was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    Ejected,
}

/// The detector of one cluster.
#[derive(Debug)]
pub struct Detector {
    pub config: OutlierConfig,
    ejected_count: AtomicU32,
}

impl Detector {
    pub fn new(config: OutlierConfig) -> Detector {
        Detector {
            config,
            ejected_count: AtomicU32::new(0),
        }
    }

    /// Hosts ejected now.
    pub fn ejected(&self) -> u32 {
        self.ejected_count.load(Ordering::Relaxed)
    }

    /// Whether the load balancer is in panic mode (then ejected hosts are used again).
    pub fn panic(&self, hosts: usize) -> bool {
        let threshold = self.config.min_health_percent;
        if threshold == 0 || hosts == 0 {
            return false;
        }
        let healthy = hosts.saturating_sub(self.ejected() as usize);
        (healthy as u64 * 100) < u64::from(threshold) * hosts as u64
    }

    /// Records a try's result for `host` (one of `hosts` hosts).
    pub fn record(
        &self,
        host: &HostHealth,
        hosts: usize,
        result: TryResult,
        now: Instant,
    ) -> Verdict {
        let config = &self.config;
        let Ok(mut state) = host.state.lock() else {
            return Verdict::Healthy;
        };
        let code = match (result, config.split_local_origin) {
            (TryResult::Status(code), _) => code,
            (_, true) => {
                state.consecutive_local += 1;
                let trips = config.consecutive_local_origin > 0
                    && state.consecutive_local == config.consecutive_local_origin;
                if trips {
                    state.consecutive_local = 0;
                    return self.eject(host, &mut state, hosts, now);
                }
                return Verdict::Healthy;
            }
            (TryResult::Timeout, false) => 504,
            (TryResult::ConnectFailure | TryResult::Reset, false) => 503,
        };
        if !(500..600).contains(&code) {
            state.consecutive_5xx = 0;
            state.consecutive_gateway = 0;
            if matches!(result, TryResult::Status(_)) {
                state.consecutive_local = 0;
            }
            return Verdict::Healthy;
        }
        let mut trips = false;
        if matches!(code, 502..=504) {
            state.consecutive_gateway += 1;
            if config.consecutive_gateway > 0
                && state.consecutive_gateway == config.consecutive_gateway
            {
                trips = true;
            }
        }
        state.consecutive_5xx += 1;
        if config.consecutive_5xx > 0 && state.consecutive_5xx == config.consecutive_5xx {
            trips = true;
        }
        if trips {
            state.consecutive_5xx = 0;
            state.consecutive_gateway = 0;
            return self.eject(host, &mut state, hosts, now);
        }
        Verdict::Healthy
    }

    fn eject(
        &self,
        host: &HostHealth,
        state: &mut HostState,
        hosts: usize,
        now: Instant,
    ) -> Verdict {
        if state.ejected_at.is_some() {
            return Verdict::Healthy;
        }
        let ejected = self.ejected_count.load(Ordering::Relaxed);
        let percent_after = 100 * (u64::from(ejected) + 1) / hosts.max(1) as u64;
        // Envoy: eject while within maxEjectionPercent, and always at least one host.
        if ejected > 0 && percent_after > u64::from(self.config.max_ejection_percent) {
            return Verdict::Healthy;
        }
        let base = self.config.base_ejection_time;
        if base.saturating_mul(state.multiplier) < self.config.max_ejection_time() + base {
            state.multiplier += 1;
        }
        state.ejected_at = Some(now);
        state.times_ejected += 1;
        host.ejected.store(true, Ordering::Relaxed);
        self.ejected_count.fetch_add(1, Ordering::Relaxed);
        Verdict::Ejected
    }

    /// The interval sweep: re-admits hosts whose time is up and decays the multiplier of hosts
    /// that stayed healthy for a whole interval. Returns how many hosts were re-admitted.
    pub fn sweep<'h>(&self, hosts: impl Iterator<Item = &'h HostHealth>, now: Instant) -> u32 {
        let mut readmitted = 0;
        for host in hosts {
            let Ok(mut state) = host.state.lock() else {
                continue;
            };
            match state.ejected_at {
                None => {
                    if state
                        .last_unejected
                        .is_some_and(|at| now.saturating_duration_since(at) >= self.config.interval)
                        && state.multiplier > 0
                    {
                        state.multiplier -= 1;
                    }
                }
                Some(at) => {
                    if now.saturating_duration_since(at) >= self.ejection_time(state.multiplier) {
                        state.ejected_at = None;
                        state.last_unejected = Some(now);
                        state.consecutive_5xx = 0;
                        state.consecutive_gateway = 0;
                        state.consecutive_local = 0;
                        host.ejected.store(false, Ordering::Relaxed);
                        self.ejected_count.fetch_sub(1, Ordering::Relaxed);
                        readmitted += 1;
                    }
                }
            }
        }
        readmitted
    }

    /// How long an ejection with this multiplier lasts.
    pub fn ejection_time(&self, multiplier: u32) -> Duration {
        self.config
            .base_ejection_time
            .saturating_mul(multiplier.max(1))
            .min(self.config.max_ejection_time())
    }

    /// A JSON view of one host for `/config_dump`.
    pub fn dump_host(&self, host: &HostHealth, now: Instant) -> serde_json::Value {
        let Ok(state) = host.state.lock() else {
            return serde_json::Value::Null;
        };
        let remaining = state.ejected_at.map(|at| {
            self.ejection_time(state.multiplier)
                .saturating_sub(now.saturating_duration_since(at))
                .as_millis() as u64
        });
        serde_json::json!({
            "ejected": state.ejected_at.is_some(),
            "ejectionRemainingMs": remaining,
            "consecutiveEjections": state.multiplier,
            "timesEjected": state.times_ejected,
            "consecutive5xx": state.consecutive_5xx,
            "consecutiveGatewayErrors": state.consecutive_gateway,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(max_percent: i32) -> Detector {
        Detector::new(OutlierConfig::from_model(&model::OutlierDetection {
            consecutive_5xx_errors: Some(3),
            interval: Some(Duration::from_secs(1)),
            base_ejection_time: Some(Duration::from_secs(10)),
            max_ejection_percent: Some(max_percent),
            ..Default::default()
        }))
    }

    #[test]
    fn ejects_after_consecutive_5xx_and_success_resets_the_count() {
        let d = detector(100);
        let host = HostHealth::default();
        let now = Instant::now();
        assert_eq!(
            d.record(&host, 3, TryResult::Status(500), now),
            Verdict::Healthy
        );
        assert_eq!(
            d.record(&host, 3, TryResult::Status(503), now),
            Verdict::Healthy
        );
        assert_eq!(
            d.record(&host, 3, TryResult::Status(200), now),
            Verdict::Healthy
        );
        assert_eq!(
            d.record(&host, 3, TryResult::Status(500), now),
            Verdict::Healthy
        );
        assert_eq!(
            d.record(&host, 3, TryResult::ConnectFailure, now),
            Verdict::Healthy
        );
        assert_eq!(
            d.record(&host, 3, TryResult::Timeout, now),
            Verdict::Ejected
        );
        assert!(host.is_ejected());
        assert_eq!(d.ejected(), 1);
    }

    #[test]
    fn ejection_time_grows_with_consecutive_ejections_and_decays() {
        let d = detector(100);
        let host = HostHealth::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            d.record(&host, 2, TryResult::Status(500), t0);
        }
        assert!(host.is_ejected());
        let hosts = || std::iter::once(&host);
        assert_eq!(d.sweep(hosts(), t0 + Duration::from_secs(9)), 0);
        assert_eq!(d.sweep(hosts(), t0 + Duration::from_secs(10)), 1);
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            d.record(&host, 2, TryResult::Status(500), t1);
        }
        assert!(host.is_ejected());
        assert_eq!(d.sweep(hosts(), t1 + Duration::from_secs(19)), 0);
        assert_eq!(d.sweep(hosts(), t1 + Duration::from_secs(20)), 1);
        // Healthy intervals decay the multiplier back to zero.
        let t2 = t1 + Duration::from_secs(20);
        d.sweep(hosts(), t2 + Duration::from_secs(1));
        d.sweep(hosts(), t2 + Duration::from_secs(2));
        for _ in 0..3 {
            d.record(
                &host,
                2,
                TryResult::Status(500),
                t2 + Duration::from_secs(3),
            );
        }
        assert_eq!(d.sweep(hosts(), t2 + Duration::from_secs(13)), 1);
    }

    #[test]
    fn max_ejection_percent_still_ejects_one_host() {
        let d = detector(10);
        let hosts: Vec<HostHealth> = (0..3).map(|_| HostHealth::default()).collect();
        let now = Instant::now();
        for host in &hosts {
            for _ in 0..3 {
                d.record(host, 3, TryResult::Status(503), now);
            }
        }
        assert_eq!(d.ejected(), 1);
        assert!(!d.panic(3));
    }

    #[test]
    fn ejection_time_is_capped() {
        let d = detector(100);
        assert_eq!(d.ejection_time(100), Duration::from_secs(300));
    }
}
