//! The numeric kernels of PromQL functions, as Prometheus (3.x) computes
//! them: counter rates with extrapolation, instant rates, bucket quantiles
//! and the `quantile` aggregation. Also used by the native RED views
//! ([`bucket_quantile`]).

/// One sample: time in milliseconds, value.
pub type Point = (i64, f64);

/// `rate`, `increase` and `delta` over the samples of one series inside the
/// range `(range_end - range_ms, range_end]` (Prometheus'
/// `extrapolatedRate`).
///
/// Counter resets (a value lower than the previous one) add the previous
/// value. The result is extrapolated to the range boundaries when the first
/// or last sample is within 110% of the average sample interval of them,
/// else by half an average interval; a counter is never extrapolated below
/// zero. `None` with fewer than two samples.
pub fn extrapolated_rate(
    samples: &[Point],
    range_end_ms: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let (first, last) = match samples {
        [first, .., last] => (*first, *last),
        _ => return None,
    };
    let range_start_ms = range_end_ms - range_ms;
    let mut result = last.1 - first.1;
    if is_counter {
        let mut previous = 0.0;
        for &(_, value) in samples {
            if value < previous {
                result += previous;
            }
            previous = value;
        }
    }
    let mut duration_to_start = (first.0 - range_start_ms) as f64 / 1000.0;
    let mut duration_to_end = (range_end_ms - last.0) as f64 / 1000.0;
    let sampled_interval = (last.0 - first.0) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (samples.len() - 1) as f64;
    let threshold = average_between_samples * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between_samples / 2.0;
    }
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        // A counter cannot go below zero: do not extrapolate past the point
        // where it would have been zero.
        let duration_to_zero = sampled_interval * (first.1 / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between_samples / 2.0;
    }
    let extrapolate_to = sampled_interval + duration_to_start + duration_to_end;
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` (`is_rate`) and `idelta` from the last two samples. `None` with
/// fewer than two samples or two samples at the same time.
pub fn instant_value(samples: &[Point], is_rate: bool) -> Option<f64> {
    let (previous, last) = match samples {
        [.., previous, last] => (*previous, *last),
        _ => return None,
    };
    let mut result = if is_rate && last.1 < previous.1 {
        // Counter reset.
        last.1
    } else {
        last.1 - previous.1
    };
    let interval = last.0 - previous.0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// A classic histogram bucket: upper bound (`le`) and cumulative count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// Relative tolerance under which bucket count differences are float noise.
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

/// The φ-quantile of cumulative buckets (Prometheus' `BucketQuantile`), by
/// linear interpolation inside the bucket holding the rank `φ × count`.
///
/// NaN without a `+Inf` bucket, with fewer than two buckets or without
/// observations; the largest finite bound when the rank falls in the `+Inf`
/// bucket; `-Inf`/`+Inf` for φ < 0 / φ > 1. The lowest bucket starts at 0
/// (unless its bound is ≤ 0, then that bound is the answer). Counts that
/// decrease with the bound are raised to keep them monotonic.
pub fn bucket_quantile(q: f64, buckets: &[Bucket]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce buckets with the same bound.
    let mut coalesced: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        match coalesced.last_mut() {
            Some(last) if last.upper_bound == bucket.upper_bound => last.count += bucket.count,
            _ => coalesced.push(bucket),
        }
    }
    let mut buckets = coalesced;
    ensure_monotonic(&mut buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|bucket| bucket.count < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].upper_bound;
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return buckets[0].upper_bound;
    }
    let mut bucket_start = 0.0;
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Prometheus' `ensureMonotonicAndIgnoreSmallDeltas`.
fn ensure_monotonic(buckets: &mut [Bucket]) {
    let Some(first) = buckets.first() else {
        return;
    };
    let mut previous = first.count;
    for bucket in buckets.iter_mut().skip(1) {
        let current = bucket.count;
        if current == previous {
            continue;
        }
        if almost_equal(previous, current, SMALL_DELTA_TOLERANCE) || current < previous {
            bucket.count = previous;
            continue;
        }
        previous = current;
    }
}

/// Prometheus' `almost.Equal`: equal within a relative `epsilon`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The `quantile` aggregation: the φ-quantile of `values` with linear
/// interpolation between the closest ranks.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    #![allow(clippy::float_cmp)]

    use super::*;

    #[test]
    fn rate_of_a_regular_counter_extrapolates_to_the_range() {
        // Samples every 15 s, +10 each, range 60 s ending 7 s after the last.
        let samples: Vec<Point> = (0..4)
            .map(|i| (1000 * (15 * i + 8), 10.0 * i as f64 + 100.0))
            .collect();
        let rate = extrapolated_rate(&samples, 60_000 + 7_000 + 1_000, 60_000, true, true);
        // 30 over 45 s sampled; extrapolated to 45 + 8 + 7 = 60 s → 40/60.
        assert!((rate.unwrap_or(0.0) - 40.0 / 60.0).abs() < 1e-12);
    }

    #[test]
    fn counter_reset_adds_the_previous_value() {
        let samples = [(0, 5.0), (10_000, 8.0), (20_000, 2.0), (30_000, 6.0)];
        let increase = extrapolated_rate(&samples, 30_000, 30_000, true, false).unwrap_or(0.0);
        // raw increase 1 + 8 = 9 over 30 s sampled; the start is 0 s away.
        assert_eq!(increase, 9.0);
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        let buckets = [
            Bucket {
                upper_bound: 10.0,
                count: 50.0,
            },
            Bucket {
                upper_bound: 100.0,
                count: 90.0,
            },
            Bucket {
                upper_bound: f64::INFINITY,
                count: 100.0,
            },
        ];
        assert_eq!(bucket_quantile(0.5, &buckets), 10.0);
        assert_eq!(bucket_quantile(0.7, &buckets), 10.0 + 90.0 * (20.0 / 40.0));
        assert_eq!(bucket_quantile(0.95, &buckets), 100.0);
        assert!(bucket_quantile(0.5, &buckets[..2]).is_nan());
    }
}
