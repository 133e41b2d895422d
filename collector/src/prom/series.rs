//! The Prometheus view of the stored OTLP metrics.
//!
//! | stored (OTLP)                              | served (Prometheus)                    |
//! |--------------------------------------------|----------------------------------------|
//! | gauge, sum (either temporality) `N`        | `N` (no suffix is added)               |
//! | explicit-bounds histogram `N`              | `N_bucket{le}` (cumulative), `N_sum`, `N_count` |
//! | exponential histogram, summary `N`         | `N_sum`, `N_count`                     |
//!
//! Labels are the data point attributes (plus `instance`, see the OTLP
//! decoder) without the empty ones, and `__name__`. Point times become
//! milliseconds. `le` values print like Prometheus' (`0.5`, `1`, `+Inf`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher};

use crate::store::{
    Labels, MetricInfo, MetricKind, PointValue, SeriesInfo, Store, StoreError, TimeRange,
};

pub const METRIC_NAME: &str = "__name__";
pub const BUCKET_LABEL: &str = "le";

/// One served series: labels (with `__name__`), the same without
/// `__name__` (what functions and arithmetic return, shared between steps)
/// and samples `(ms, value)`, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Arc<Labels>,
    pub bare: Arc<Labels>,
    pub samples: Vec<(i64, f64)>,
}

impl Series {
    pub fn new(labels: Labels, samples: Vec<(i64, f64)>) -> Self {
        let mut bare = labels.clone();
        bare.remove(METRIC_NAME);
        Self {
            labels: Arc::new(labels),
            bare: Arc::new(bare),
            samples,
        }
    }
}

/// Which served series a stored metric gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Derived {
    /// The number series itself.
    Plain,
    /// `_bucket`, one series per `le`.
    Bucket,
    /// `_sum`.
    Sum,
    /// `_count`.
    Count,
}

/// The served names of a stored metric.
pub fn served_names(metric: &MetricInfo) -> Vec<(String, Derived)> {
    let name = &metric.name;
    match metric.kind {
        MetricKind::Gauge | MetricKind::Sum => vec![(name.clone(), Derived::Plain)],
        MetricKind::Histogram => vec![
            (format!("{name}_bucket"), Derived::Bucket),
            (format!("{name}_sum"), Derived::Sum),
            (format!("{name}_count"), Derived::Count),
        ],
        MetricKind::ExponentialHistogram | MetricKind::Summary => vec![
            (format!("{name}_sum"), Derived::Sum),
            (format!("{name}_count"), Derived::Count),
        ],
    }
}

/// Prometheus' spelling of a float label value (`le`) and of sample values:
/// shortest round-trip decimal, no exponent, `+Inf`, `-Inf`, `NaN`.
pub fn format_float(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else if value.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{value}")
    }
}

/// Milliseconds of a nanosecond time (floor).
pub fn nanos_to_ms(unix_nano: i64) -> i64 {
    unix_nano.div_euclid(1_000_000)
}

/// One stored metric chosen by a selector, with the served names wanted.
struct Wanted<'a> {
    metric: &'a MetricInfo,
    derived: Vec<(String, Derived)>,
}

/// Whether a served metric name satisfies the selector's `__name__`
/// matchers.
fn name_matches(matchers: &[Matcher], name: &str) -> bool {
    matchers
        .iter()
        .filter(|matcher| matcher.name == METRIC_NAME)
        .all(|matcher| matcher.is_match(name))
}

/// Label equalities the store can filter on (non-empty `label="value"`).
fn pushed_down(matchers: &[Matcher]) -> Vec<(String, String)> {
    matchers
        .iter()
        .filter(|matcher| {
            matches!(matcher.op, MatchOp::Equal)
                && !matcher.value.is_empty()
                && matcher.name != METRIC_NAME
                && matcher.name != BUCKET_LABEL
        })
        .map(|matcher| (matcher.name.clone(), matcher.value.clone()))
        .collect()
}

/// Whether `labels` (a missing label reads as "") satisfy every matcher
/// whose label is not in `skip`.
fn labels_match(matchers: &[Matcher], labels: &Labels, skip: &[&str]) -> bool {
    matchers
        .iter()
        .filter(|matcher| !skip.contains(&matcher.name.as_str()))
        .all(|matcher| matcher.is_match(labels.get(&matcher.name).map_or("", String::as_str)))
}

/// The served labels of a stored series under a served name.
fn served_labels(series: &SeriesInfo, name: &str) -> Labels {
    let mut labels: Labels = series
        .labels
        .iter()
        .filter(|(key, value)| !value.is_empty() && key.as_str() != METRIC_NAME)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    labels.insert(METRIC_NAME.to_owned(), name.to_owned());
    labels
}

/// Reads the served series matching `matchers` with samples inside `range`
/// (inclusive). `catalog` is the store's metric list.
pub async fn select(
    store: &dyn Store,
    catalog: &[MetricInfo],
    matchers: &[Matcher],
    range: TimeRange,
) -> Result<Vec<Series>, StoreError> {
    let mut result = Vec::new();
    for wanted in wanted(catalog, matchers) {
        let found = store
            .find_series(&wanted.metric.name, &pushed_down(matchers), Some(range))
            .await?;
        // Filter on the labels before reading points (`le` and the name are
        // checked on the served series).
        let candidates: Vec<&SeriesInfo> = found
            .iter()
            .filter(|series| {
                let mut labels = served_labels(series, "");
                labels.remove(METRIC_NAME);
                labels_match(matchers, &labels, &[METRIC_NAME, BUCKET_LABEL])
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let ids: Vec<i64> = candidates.iter().map(|series| series.id).collect();
        let points = store.series_points(&ids, range).await?;
        let by_id: HashMap<i64, &SeriesInfo> = candidates
            .iter()
            .map(|series| (series.id, *series))
            .collect();
        for one in points {
            let Some(series) = by_id.get(&one.series_id) else {
                continue;
            };
            for (name, derived) in &wanted.derived {
                let labels = served_labels(series, name);
                for served in derive(labels, *derived, &one.points) {
                    if labels_match(matchers, &served.labels, &[]) {
                        result.push(served);
                    }
                }
            }
        }
    }
    result.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(result)
}

/// The label sets of the served series matching `matchers` that are active
/// in `range` (all when `None`). Bucket series get the `le` values of the
/// latest point of one series of their metric (bounds are per metric in
/// practice).
pub async fn select_labels(
    store: &dyn Store,
    catalog: &[MetricInfo],
    matchers: &[Matcher],
    range: Option<TimeRange>,
) -> Result<Vec<Labels>, StoreError> {
    let mut result = Vec::new();
    for wanted in wanted(catalog, matchers) {
        let found = store
            .find_series(&wanted.metric.name, &pushed_down(matchers), range)
            .await?;
        let mut bounds: Option<Vec<String>> = None;
        for series in &found {
            for (name, derived) in &wanted.derived {
                let labels = served_labels(series, name);
                if *derived != Derived::Bucket {
                    if labels_match(matchers, &labels, &[]) {
                        result.push(labels);
                    }
                    continue;
                }
                if !labels_match(matchers, &labels, &[BUCKET_LABEL]) {
                    continue;
                }
                if bounds.is_none() {
                    bounds = Some(bucket_bounds(store, series.id, range).await?);
                }
                for le in bounds.iter().flatten() {
                    let mut labels = labels.clone();
                    labels.insert(BUCKET_LABEL.to_owned(), le.clone());
                    if labels_match(matchers, &labels, &[]) {
                        result.push(labels);
                    }
                }
            }
        }
    }
    result.sort();
    result.dedup();
    Ok(result)
}

/// The `le` values of the latest point of one histogram series.
async fn bucket_bounds(
    store: &dyn Store,
    series_id: i64,
    range: Option<TimeRange>,
) -> Result<Vec<String>, StoreError> {
    let range = range.unwrap_or(TimeRange {
        start_unix_nano: i64::MIN,
        end_unix_nano: i64::MAX,
    });
    let points = store.series_points(&[series_id], range).await?;
    let last = points
        .into_iter()
        .next()
        .and_then(|series| series.points.into_iter().last());
    Ok(match last.map(|point| point.value) {
        Some(PointValue::Histogram {
            explicit_bounds, ..
        }) => explicit_bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .map(format_float)
            .collect(),
        _ => vec![format_float(f64::INFINITY)],
    })
}

fn wanted<'a>(catalog: &'a [MetricInfo], matchers: &[Matcher]) -> Vec<Wanted<'a>> {
    catalog
        .iter()
        .filter_map(|metric| {
            let derived: Vec<(String, Derived)> = served_names(metric)
                .into_iter()
                .filter(|(name, _)| name_matches(matchers, name))
                .collect();
            (!derived.is_empty()).then_some(Wanted { metric, derived })
        })
        .collect()
}

/// The served series of one stored series' points.
fn derive(labels: Labels, derived: Derived, points: &[crate::store::StoredPoint]) -> Vec<Series> {
    let mut samples: Vec<(i64, f64)> = Vec::new();
    match derived {
        Derived::Plain => {
            for point in points {
                if let PointValue::Number(value) = point.value {
                    push(&mut samples, nanos_to_ms(point.time_unix_nano), value);
                }
            }
        }
        Derived::Sum => {
            for point in points {
                let sum = match &point.value {
                    PointValue::Histogram { sum, .. } | PointValue::CountSum { sum, .. } => *sum,
                    PointValue::Number(_) => None,
                };
                if let Some(sum) = sum {
                    push(&mut samples, nanos_to_ms(point.time_unix_nano), sum);
                }
            }
        }
        Derived::Count => {
            for point in points {
                let count = match &point.value {
                    PointValue::Histogram { count, .. } | PointValue::CountSum { count, .. } => {
                        Some(*count)
                    }
                    PointValue::Number(_) => None,
                };
                if let Some(count) = count {
                    push(
                        &mut samples,
                        nanos_to_ms(point.time_unix_nano),
                        count as f64,
                    );
                }
            }
        }
        Derived::Bucket => {
            // le (as printed) → samples; the bounds of consecutive points
            // are normally the same, so the current ones are kept by index.
            let mut buckets: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            let mut bounds: Vec<f64> = Vec::new();
            let mut current: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
            let flush = |current: &mut Vec<(String, Vec<(i64, f64)>)>,
                         buckets: &mut BTreeMap<String, Vec<(i64, f64)>>| {
                for (le, samples) in current.drain(..) {
                    buckets.entry(le).or_default().extend(samples);
                }
            };
            for point in points {
                let PointValue::Histogram {
                    count,
                    bucket_counts,
                    explicit_bounds,
                    ..
                } = &point.value
                else {
                    continue;
                };
                if current.is_empty() || *explicit_bounds != bounds {
                    flush(&mut current, &mut buckets);
                    bounds.clone_from(explicit_bounds);
                    current = bounds
                        .iter()
                        .copied()
                        .chain([f64::INFINITY])
                        .map(|bound| (format_float(bound), Vec::new()))
                        .collect();
                }
                let time = nanos_to_ms(point.time_unix_nano);
                let mut cumulative = 0u64;
                let last = current.len() - 1;
                for (index, (_, samples)) in current.iter_mut().enumerate() {
                    let value = if index == last {
                        *count
                    } else {
                        cumulative = cumulative
                            .saturating_add(bucket_counts.get(index).copied().unwrap_or(0));
                        cumulative
                    };
                    push(samples, time, value as f64);
                }
            }
            flush(&mut current, &mut buckets);
            return buckets
                .into_iter()
                .filter(|(_, samples)| !samples.is_empty())
                .map(|(le, mut samples)| {
                    samples.sort_by_key(|(time, _)| *time);
                    let mut labels = labels.clone();
                    labels.insert(BUCKET_LABEL.to_owned(), le);
                    Series::new(labels, samples)
                })
                .collect();
        }
    }
    if samples.is_empty() {
        return Vec::new();
    }
    vec![Series::new(labels, samples)]
}

/// Appends a sample; a sample at the same millisecond replaces the previous.
fn push(samples: &mut Vec<(i64, f64)>, time: i64, value: f64) {
    match samples.last_mut() {
        Some(last) if last.0 == time => last.1 = value,
        _ => samples.push((time, value)),
    }
}
