//! RED (rate, errors, duration) of a service's inbound traffic, per step,
//! and the canary split of a service across its versions, from the same
//! pushed counters and histograms as the graph (exact counts, no sampling,
//! no extrapolation: a step holds what the points inside it added).

use std::collections::BTreeMap;

use serde::Serialize;

use super::latency::{Latency, increments as latency_increments};
use super::{increments, is_error, label};
use crate::store::{Labels, PointsWindow, SeriesWindow};

/// The metric holding each proxy's configured route weights (a gauge, in
/// percent): labels `virtual_service`, `route`, `destination_service`,
/// `subset`, `destination_version`.
pub const ROUTE_WEIGHT_METRIC: &str = "weft_route_weight";

/// Both versions need this many requests in the window before the verdict
/// compares them.
pub const MIN_REQUESTS: f64 = 50.0;
/// One-sided significance level of the error-rate test.
pub const ALPHA: f64 = 0.05;
/// The canary's p99 must exceed the stable p99 by this factor.
pub const LATENCY_FACTOR: f64 = 1.2;

/// Consecutive steps `(start + i·step, start + (i+1)·step]`, nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    pub start_unix_nano: i64,
    pub step_nano: i64,
    pub count: usize,
}

impl Steps {
    /// The step holding time `t`, if any.
    fn index(&self, t: i64) -> Option<usize> {
        if t <= self.start_unix_nano || self.step_nano <= 0 {
            return None;
        }
        let offset = t - self.start_unix_nano;
        let index = usize::try_from((offset + self.step_nano - 1) / self.step_nano - 1).ok()?;
        (index < self.count).then_some(index)
    }

    /// The end of step `index`, in milliseconds.
    pub fn end_ms(&self, index: usize) -> i64 {
        let index = i64::try_from(index + 1).unwrap_or(i64::MAX);
        (self.start_unix_nano + index.saturating_mul(self.step_nano)) / 1_000_000
    }
}

/// Requests, errors and latency observations of some traffic.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    pub requests: f64,
    pub errors: f64,
    pub latency: Latency,
}

impl Traffic {
    /// The serialized RED figures over `seconds`.
    pub fn red(&self, seconds: f64) -> Red {
        let requests = self.requests.round().max(0.0);
        let errors = self.errors.round().max(0.0);
        let quantiles = self.latency.quantiles();
        Red {
            requests: requests as u64,
            errors: errors as u64,
            rps: requests / seconds.max(f64::MIN_POSITIVE),
            error_rate: (requests > 0.0).then(|| errors / requests),
            p50_ms: quantiles.p50,
            p95_ms: quantiles.p95,
            p99_ms: quantiles.p99,
        }
    }
}

/// RED figures of some traffic over a time span.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Red {
    pub requests: u64,
    /// 5xx answers and requests without an answer (code 0).
    pub errors: u64,
    /// Requests per second over the span.
    pub rps: f64,
    /// `errors / requests`, a fraction in `0..=1`; `null` without requests.
    pub error_rate: Option<f64>,
    /// Latency quantiles in milliseconds (histogram interpolation like
    /// Prometheus' `histogram_quantile`); `null` without observations.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The traffic of the selected series, in total and per step.
pub fn traffic(
    requests: &[&SeriesWindow],
    durations: &[&PointsWindow],
    steps: Steps,
) -> (Traffic, Vec<Traffic>) {
    let mut total = Traffic::default();
    let mut per_step = vec![Traffic::default(); steps.count];
    for series in requests {
        let error = is_error(&series.labels);
        for (time, added) in increments(series) {
            total.requests += added;
            if error {
                total.errors += added;
            }
            if let Some(step) = steps.index(time).and_then(|index| per_step.get_mut(index)) {
                step.requests += added;
                if error {
                    step.errors += added;
                }
            }
        }
    }
    for series in durations {
        for (time, added) in latency_increments(series) {
            total.latency.merge(&added);
            if let Some(step) = steps.index(time).and_then(|index| per_step.get_mut(index)) {
                step.latency.merge(&added);
            }
        }
    }
    (total, per_step)
}

/// Whether a series' `destination_service` is `service`: the full name, its
/// short name (`stock-api` for `stock-api.default.svc.cluster.local`) or
/// its `destination_service_name`.
pub fn is_service(labels: &Labels, service: &str) -> bool {
    let full = label(labels, "destination_service");
    full == service
        || full.split('.').next() == Some(service)
        || label(labels, "destination_service_name") == service
}

/// The version a series reports for its destination (`unknown` if none).
pub fn destination_version(labels: &Labels) -> String {
    label(labels, "destination_version").to_owned()
}

/// One destination of a weighted route.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteDestination {
    pub version: String,
    pub subset: String,
    /// The destination's share of the route, percent (0–100).
    pub weight_percent: f64,
}

/// A route of a VirtualService with its weighted destinations (of the
/// service asked for).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    /// `namespace/name`.
    pub virtual_service: String,
    /// The route's name, `""` when unnamed.
    pub route: String,
    pub destinations: Vec<RouteDestination>,
}

/// The routes configured for `service`, from the latest `weft_route_weight`
/// point of each series in the window (all proxies report the same
/// configuration; the newest point wins).
pub fn routes(weights: &[SeriesWindow], service: &str) -> Vec<Route> {
    // (vs, route) → (version, subset) → (time, weight)
    type Latest = BTreeMap<(String, String), BTreeMap<(String, String), (i64, f64)>>;
    let mut latest = Latest::new();
    for series in weights {
        let labels = &series.labels;
        if !is_service(labels, service) {
            continue;
        }
        let Some(point) = series.points.last() else {
            continue;
        };
        let get = |key: &str| labels.get(key).cloned().unwrap_or_default();
        let subset = get("subset");
        let version = match get("destination_version") {
            version if !version.is_empty() => version,
            _ if !subset.is_empty() => subset.clone(),
            _ => "unknown".to_owned(),
        };
        let slot = latest
            .entry((get("virtual_service"), get("route")))
            .or_default()
            .entry((version, subset))
            .or_insert((i64::MIN, 0.0));
        if point.time_unix_nano >= slot.0 {
            *slot = (point.time_unix_nano, point.value);
        }
    }
    latest
        .into_iter()
        .map(|((virtual_service, route), destinations)| Route {
            virtual_service,
            route,
            destinations: destinations
                .into_iter()
                .map(|((version, subset), (_, weight))| RouteDestination {
                    version,
                    subset,
                    weight_percent: weight,
                })
                .collect(),
        })
        .collect()
}

/// The overall configured share of each version: the mean over the routes
/// of its weight in each route (0 where a route does not send to it).
pub fn overall_weights(routes: &[Route]) -> BTreeMap<String, f64> {
    let mut overall: BTreeMap<String, f64> = BTreeMap::new();
    if routes.is_empty() {
        return overall;
    }
    for route in routes {
        for destination in &route.destinations {
            *overall.entry(destination.version.clone()).or_default() += destination.weight_percent;
        }
    }
    for weight in overall.values_mut() {
        *weight /= routes.len() as f64;
    }
    overall
}

/// The canary verdict: the canary (lowest configured weight, else fewest
/// requests) against the stable version (highest weight, else most
/// requests).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// `"ok"` (no significant difference), `"canary_worse"`,
    /// `"insufficient_data"` (a version has fewer than `min_requests`) or
    /// `"no_canary"` (fewer than two versions).
    pub status: &'static str,
    pub canary: Option<String>,
    pub stable: Option<String>,
    /// Both versions need this many requests in the window.
    pub min_requests: u64,
    pub errors: Option<ErrorTest>,
    pub latency: Option<LatencyTest>,
    /// One sentence per finding, for the page.
    pub summary: Vec<String>,
}

/// The error-rate comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorTest {
    /// The test, stated for the page.
    pub rule: String,
    pub canary_error_rate: f64,
    pub stable_error_rate: f64,
    /// `(p_canary − p_stable) / sqrt(p(1−p)(1/n_canary + 1/n_stable))` with
    /// the pooled rate `p`; 0 when both rates are 0 or 1.
    pub z: f64,
    /// One-sided: `P(Z ≥ z)`.
    pub p_value: f64,
    pub alpha: f64,
    pub significant: bool,
}

/// The latency comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencyTest {
    /// The rule, stated for the page.
    pub rule: String,
    pub canary_p99_ms: Option<f64>,
    pub stable_p99_ms: Option<f64>,
    /// `factor × stable p99`.
    pub threshold_ms: Option<f64>,
    /// The histogram buckets `[lower, upper]` (ms) holding each p99.
    pub canary_p99_bucket: Option<[f64; 2]>,
    pub stable_p99_bucket: Option<[f64; 2]>,
    pub worse: bool,
}

/// The standard normal survival function `P(Z ≥ z)`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`,
/// fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The one-sided two-proportion z-test "canary error rate > stable error
/// rate".
pub fn error_test(canary: &Traffic, stable: &Traffic) -> ErrorTest {
    let (n1, n2) = (canary.requests.max(0.0), stable.requests.max(0.0));
    let p1 = if n1 > 0.0 { canary.errors / n1 } else { 0.0 };
    let p2 = if n2 > 0.0 { stable.errors / n2 } else { 0.0 };
    let pooled = if n1 + n2 > 0.0 {
        (canary.errors + stable.errors) / (n1 + n2)
    } else {
        0.0
    };
    let se = if n1 > 0.0 && n2 > 0.0 {
        (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt()
    } else {
        0.0
    };
    let z = if se > 0.0 { (p1 - p2) / se } else { 0.0 };
    let p_value = normal_sf(z);
    ErrorTest {
        rule: format!(
            "Two-proportion z-test, one-sided: the canary's error rate is significantly higher \
             than the stable version's when P(Z ≥ z) < {ALPHA}, with z = (p_canary − p_stable) / \
             √(p(1−p)(1/n_canary + 1/n_stable)) and p the pooled error rate; errors are 5xx \
             answers and requests without an answer."
        ),
        canary_error_rate: p1,
        stable_error_rate: p2,
        z,
        p_value,
        alpha: ALPHA,
        significant: p_value < ALPHA,
    }
}

/// "The canary's p99 is worse": above `LATENCY_FACTOR` × the stable p99 and
/// in a higher histogram bucket than the stable p99.
pub fn latency_test(canary: &Traffic, stable: &Traffic) -> LatencyTest {
    let canary_p99 = canary.latency.quantile(0.99);
    let stable_p99 = stable.latency.quantile(0.99);
    let canary_bucket = canary.latency.quantile_bucket(0.99);
    let stable_bucket = stable.latency.quantile_bucket(0.99);
    let threshold = stable_p99.map(|p99| p99 * LATENCY_FACTOR);
    let worse = match (canary_p99, threshold, canary_bucket, stable_bucket) {
        (Some(p99), Some(threshold), Some(canary_bucket), Some(stable_bucket)) => {
            p99 > threshold && canary_bucket.0 >= stable_bucket.1
        }
        _ => false,
    };
    LatencyTest {
        rule: format!(
            "Histograms allow no rank test, so the rule is: the canary's p99 latency is worse \
             when it exceeds {LATENCY_FACTOR} × the stable p99 and lies in a higher histogram \
             bucket than the stable p99 (a difference inside one bucket is interpolation, not \
             evidence); p99 is interpolated inside its bucket like Prometheus' \
             histogram_quantile."
        ),
        canary_p99_ms: canary_p99,
        stable_p99_ms: stable_p99,
        threshold_ms: threshold,
        canary_p99_bucket: canary_bucket.map(|(lower, upper)| [lower, upper]),
        stable_p99_bucket: stable_bucket.map(|(lower, upper)| [lower, upper]),
        worse,
    }
}

/// The verdict for versions with their traffic and configured weight.
pub fn verdict(versions: &BTreeMap<String, (Traffic, Option<f64>)>) -> Verdict {
    let mut verdict = Verdict {
        status: "no_canary",
        canary: None,
        stable: None,
        min_requests: MIN_REQUESTS as u64,
        errors: None,
        latency: None,
        summary: Vec::new(),
    };
    if versions.len() < 2 {
        verdict
            .summary
            .push("Fewer than two versions: nothing to compare.".to_owned());
        return verdict;
    }
    // Rank by configured weight, then by requests.
    let key =
        |(traffic, weight): &(Traffic, Option<f64>)| (weight.unwrap_or(f64::NAN), traffic.requests);
    let mut ranked: Vec<(&String, &(Traffic, Option<f64>))> = versions.iter().collect();
    let weighted = ranked.iter().all(|(_, (_, weight))| weight.is_some());
    ranked.sort_by(|a, b| {
        let (wa, ra) = key(a.1);
        let (wb, rb) = key(b.1);
        if weighted {
            wa.total_cmp(&wb).then(ra.total_cmp(&rb))
        } else {
            ra.total_cmp(&rb)
        }
    });
    let (Some((canary_name, (canary, _))), Some((stable_name, (stable, _)))) =
        (ranked.first(), ranked.last())
    else {
        return verdict;
    };
    verdict.canary = Some((*canary_name).clone());
    verdict.stable = Some((*stable_name).clone());
    let errors = error_test(canary, stable);
    let latency = latency_test(canary, stable);
    if canary.requests < MIN_REQUESTS || stable.requests < MIN_REQUESTS {
        verdict.status = "insufficient_data";
        verdict.summary.push(format!(
            "Not enough traffic to judge: {canary_name} has {} and {stable_name} {} requests \
             in the window (at least {MIN_REQUESTS} each are needed).",
            canary.requests.round(),
            stable.requests.round()
        ));
    } else {
        verdict.status = "ok";
        if errors.significant {
            verdict.status = "canary_worse";
            verdict.summary.push(format!(
                "{canary_name}'s error rate ({:.2}%) is significantly higher than \
                 {stable_name}'s ({:.2}%): z = {:.2}, p = {:.4} < {ALPHA}.",
                errors.canary_error_rate * 100.0,
                errors.stable_error_rate * 100.0,
                errors.z,
                errors.p_value
            ));
        }
        if latency.worse {
            verdict.status = "canary_worse";
            verdict.summary.push(format!(
                "{canary_name}'s p99 ({:.1} ms) exceeds {LATENCY_FACTOR} × {stable_name}'s \
                 ({:.1} ms) by more than a histogram bucket.",
                latency.canary_p99_ms.unwrap_or(f64::NAN),
                latency.stable_p99_ms.unwrap_or(f64::NAN)
            ));
        }
        if verdict.status == "ok" {
            verdict.summary.push(format!(
                "No significant difference between {canary_name} and {stable_name} in error \
                 rate or p99 latency."
            ));
        }
    }
    verdict.errors = Some(errors);
    verdict.latency = Some(latency);
    verdict
}

#[cfg(test)]
mod tests {
    #![allow(clippy::float_cmp, clippy::unwrap_used)]

    use super::*;

    #[test]
    fn normal_tail() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.644_853_6) - 0.05).abs() < 1e-6);
        assert!((normal_sf(-1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn z_test_of_a_worse_canary() {
        let canary = Traffic {
            requests: 200.0,
            errors: 20.0,
            ..Traffic::default()
        };
        let stable = Traffic {
            requests: 1800.0,
            errors: 36.0,
            ..Traffic::default()
        };
        let test = error_test(&canary, &stable);
        // p1 = 0.1, p2 = 0.02, pooled 0.028.
        let se = (0.028f64 * 0.972 * (1.0 / 200.0 + 1.0 / 1800.0)).sqrt();
        assert!((test.z - 0.08 / se).abs() < 1e-9);
        assert!(test.significant);
        assert!(!error_test(&stable, &stable).significant);
    }

    #[test]
    fn steps_hold_their_right_edge() {
        let steps = Steps {
            start_unix_nano: 100,
            step_nano: 10,
            count: 3,
        };
        assert_eq!(steps.index(100), None);
        assert_eq!(steps.index(101), Some(0));
        assert_eq!(steps.index(110), Some(0));
        assert_eq!(steps.index(111), Some(1));
        assert_eq!(steps.index(130), Some(2));
        assert_eq!(steps.index(131), None);
    }
}
