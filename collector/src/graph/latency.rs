//! Request-duration quantiles from the pushed cumulative histograms
//! (`istio_request_duration_milliseconds`): the bucket counts added inside a
//! window, then Prometheus' `histogram_quantile` interpolation.

use std::collections::BTreeMap;

use crate::prom::functions::{Bucket, bucket_quantile};
use crate::store::{PointValue, PointsWindow, StoredPoint, Temporality};

/// The request-duration histogram the proxies export.
pub const DURATION_METRIC: &str = "istio_request_duration_milliseconds";

/// Observations added to a histogram: per-bucket counts keyed by upper
/// bound (as bits, `+Inf` for the last bucket).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    buckets: BTreeMap<u64, f64>,
    count: f64,
}

/// p50, p95, p99 in milliseconds; `None` without observations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Latency {
    /// Adds the per-bucket counts of one histogram point (or delta).
    fn add_buckets(&mut self, bounds: &[f64], counts: &[f64]) {
        for (index, count) in counts.iter().enumerate() {
            let bound = bounds.get(index).copied().unwrap_or(f64::INFINITY);
            *self.buckets.entry(bound.to_bits()).or_default() += count;
            self.count += count;
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        for (bound, count) in &other.buckets {
            *self.buckets.entry(*bound).or_default() += count;
        }
        self.count += other.count;
    }

    #[cfg(test)]
    pub fn count(&self) -> f64 {
        self.count
    }

    /// Cumulative buckets sorted by bound.
    fn cumulative(&self) -> Vec<Bucket> {
        let mut buckets: Vec<(f64, f64)> = self
            .buckets
            .iter()
            .map(|(bits, count)| (f64::from_bits(*bits), *count))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut running = 0.0;
        buckets
            .into_iter()
            .map(|(upper_bound, count)| {
                running += count;
                Bucket {
                    upper_bound,
                    count: running,
                }
            })
            .collect()
    }

    /// The φ-quantile (`histogram_quantile`), `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        Some(bucket_quantile(q, &self.cumulative())).filter(|value| value.is_finite())
    }

    /// The bucket `(lower, upper]` holding the φ-quantile.
    pub fn quantile_bucket(&self, q: f64) -> Option<(f64, f64)> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let buckets = self.cumulative();
        let mut lower = 0.0;
        for bucket in buckets {
            if bucket.count >= rank && bucket.count > 0.0 {
                return Some((lower, bucket.upper_bound));
            }
            lower = bucket.upper_bound;
        }
        None
    }

    pub fn quantiles(&self) -> Quantiles {
        Quantiles {
            p50: self.quantile(0.5),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
        }
    }
}

/// Per-bucket counts of a histogram point.
fn bucket_counts(point: &StoredPoint) -> Option<(&[f64], Vec<f64>, u64)> {
    match &point.value {
        PointValue::Histogram {
            count,
            bucket_counts,
            explicit_bounds,
            ..
        } => Some((
            explicit_bounds.as_slice(),
            bucket_counts.iter().map(|count| *count as f64).collect(),
            *count,
        )),
        _ => None,
    }
}

/// The observations one histogram series added in its window, with the
/// time of each point (for step buckets): a point adds its counts minus the
/// previous point's, or all its counts after a reset (a count drop, a
/// start time after the previous point, other bounds) or without a previous
/// point. Delta points simply add up.
pub fn increments(window: &PointsWindow) -> Vec<(i64, Latency)> {
    let mut previous = window.baseline.as_ref();
    let mut out = Vec::with_capacity(window.points.len());
    for point in &window.points {
        let Some((bounds, counts, count)) = bucket_counts(point) else {
            continue;
        };
        let mut latency = Latency::default();
        let delta = window.temporality == Temporality::Delta;
        match previous.and_then(|previous| bucket_counts(previous).map(|b| (previous, b))) {
            Some((previous, (previous_bounds, previous_counts, previous_count)))
                if !delta
                    && count >= previous_count
                    && point.start_unix_nano <= previous.time_unix_nano
                    && previous_bounds == bounds
                    && previous_counts.len() == counts.len() =>
            {
                let added: Vec<f64> = counts
                    .iter()
                    .zip(&previous_counts)
                    .map(|(now, before)| (now - before).max(0.0))
                    .collect();
                latency.add_buckets(bounds, &added);
            }
            _ => latency.add_buckets(bounds, &counts),
        }
        out.push((point.time_unix_nano, latency));
        previous = Some(point);
    }
    out
}

/// All observations a series added in its window.
pub fn increase(window: &PointsWindow) -> Latency {
    let mut total = Latency::default();
    for (_, latency) in increments(window) {
        total.merge(&latency);
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::float_cmp)]

    use super::*;
    use crate::store::Labels;

    fn point(time: i64, counts: &[u64]) -> StoredPoint {
        StoredPoint {
            time_unix_nano: time,
            start_unix_nano: 0,
            value: PointValue::Histogram {
                count: counts.iter().sum(),
                sum: None,
                bucket_counts: counts.to_vec(),
                explicit_bounds: vec![10.0, 100.0],
            },
        }
    }

    #[test]
    fn window_increase_and_quantiles() {
        let window = PointsWindow {
            labels: Labels::new(),
            temporality: Temporality::Cumulative,
            baseline: Some(point(0, &[5, 5, 0])),
            // +50 fast, +40 medium, +10 slow; then a reset (+1 fast).
            points: vec![point(10, &[55, 45, 10]), point(20, &[1, 0, 0])],
        };
        let latency = increase(&window);
        assert_eq!(latency.count(), 101.0);
        // rank 50.5 of 101: just above the first bucket (51 observations ≤ 10).
        assert_eq!(latency.quantile(0.5), Some(10.0 * 50.5 / 51.0));
        assert_eq!(latency.quantile(0.99), Some(100.0));
        assert_eq!(latency.quantile_bucket(0.9), Some((10.0, 100.0)));
        assert_eq!(Latency::default().quantile(0.5), None);
    }
}
