//! Read queries over metric series, for the Prometheus API (`crate::prom`)
//! and the native RED views (`crate::graph`): the catalog (metric names,
//! label names and values, series) and the points of chosen series.
//!
//! Writes stay in [`super::Store::write_metrics`]; it fills the catalog
//! tables (`metric_names`, `metric_labels`, migration 0002) when it creates a
//! series, so catalog reads never parse the label JSON of every series.
//!
//! A series is *active* in a [`TimeRange`] when it has a point inside it.
//! Catalog queries take an optional range and then only answer from active
//! series (as Prometheus does for its `start`/`end` parameters).

mod sql;

use async_trait::async_trait;

pub(crate) use sql::{MetricsPool, index_series};

use super::row::from_json;
use super::{Labels, MetricKind, PointValue, StoreError, Temporality};

/// Inclusive bounds on point times, in Unix nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub start_unix_nano: i64,
    pub end_unix_nano: i64,
}

/// A metric name and its type (from the first series written under it).
#[derive(Clone, Debug, PartialEq)]
pub struct MetricInfo {
    pub name: String,
    pub kind: MetricKind,
    pub temporality: Temporality,
    pub monotonic: bool,
    pub unit: String,
}

/// One stored series: its id (for [`MetricQueries::series_points`]), name,
/// labels and type.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesInfo {
    pub id: i64,
    pub name: String,
    pub labels: Labels,
    pub kind: MetricKind,
    pub temporality: Temporality,
    pub monotonic: bool,
}

/// A point read back, of any kind.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPoint {
    pub time_unix_nano: i64,
    pub start_unix_nano: i64,
    pub value: PointValue,
}

/// The points of one series inside a range, oldest first (never empty).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoints {
    pub series_id: i64,
    pub points: Vec<StoredPoint>,
}

/// The points of one series (of any kind) around a window, like
/// [`super::SeriesWindow`] for number series.
#[derive(Clone, Debug, PartialEq)]
pub struct PointsWindow {
    pub labels: Labels,
    pub temporality: Temporality,
    /// The last point at or before the window start, if any.
    pub baseline: Option<StoredPoint>,
    /// The points inside the window, oldest first (never empty).
    pub points: Vec<StoredPoint>,
}

/// Metric reads beyond [`super::Store::series_window`]. Every [`super::Store`]
/// implements them; the conformance suite is `tests/store_metrics.rs`.
#[async_trait]
pub trait MetricQueries {
    /// Metric names, sorted, with their type; with `active`, only names with
    /// an active series.
    async fn metric_names(&self, active: Option<TimeRange>) -> Result<Vec<MetricInfo>, StoreError>;

    /// Label names of all series (or of active ones), sorted, without
    /// duplicates. Labels whose value is empty are absent.
    async fn label_names(&self, active: Option<TimeRange>) -> Result<Vec<String>, StoreError>;

    /// Values of one label across all series (or active ones), sorted,
    /// without duplicates and without the empty string.
    async fn label_values(
        &self,
        label: &str,
        active: Option<TimeRange>,
    ) -> Result<Vec<String>, StoreError>;

    /// The series of metric `name` that carry every `(label, value)` of
    /// `equal` (values non-empty), optionally only active ones; by id.
    async fn find_series(
        &self,
        name: &str,
        equal: &[(String, String)],
        active: Option<TimeRange>,
    ) -> Result<Vec<SeriesInfo>, StoreError>;

    /// The points of the given series inside `range`, one entry per series
    /// with at least one point, in the order of the series ids.
    async fn series_points(
        &self,
        series_ids: &[i64],
        range: TimeRange,
    ) -> Result<Vec<SeriesPoints>, StoreError>;

    /// Like [`super::Store::series_window`], for points of every kind
    /// (histograms included): the series of `name` with a point inside
    /// `(start_unix_nano, end_unix_nano]`, their points there and their
    /// last point at or before the start.
    async fn points_window(
        &self,
        name: &str,
        start_unix_nano: i64,
        end_unix_nano: i64,
    ) -> Result<Vec<PointsWindow>, StoreError>;
}

/// How many ids one `IN (...)` list binds (below every backend's limit).
pub(crate) const IDS_PER_QUERY: usize = 500;

/// The value columns of a `metric_points` row, back into a [`PointValue`].
pub(crate) fn point_value(
    value: Option<f64>,
    count: Option<i64>,
    sum: Option<f64>,
    bucket_counts: Option<String>,
    explicit_bounds: Option<String>,
) -> Result<PointValue, StoreError> {
    if let Some(value) = value {
        return Ok(PointValue::Number(value));
    }
    let count = u64::try_from(count.unwrap_or(0)).unwrap_or(0);
    match bucket_counts {
        Some(bucket_counts) => Ok(PointValue::Histogram {
            count,
            sum,
            bucket_counts: from_json(&bucket_counts, "bucket_counts")?,
            explicit_bounds: match explicit_bounds {
                Some(bounds) => from_json(&bounds, "explicit_bounds")?,
                None => Vec::new(),
            },
        }),
        None => Ok(PointValue::CountSum { count, sum }),
    }
}

/// The stored spelling of a kind, back.
pub(crate) fn metric_kind(text: &str) -> Result<MetricKind, StoreError> {
    Ok(match text {
        "gauge" => MetricKind::Gauge,
        "sum" => MetricKind::Sum,
        "histogram" => MetricKind::Histogram,
        "exponential_histogram" => MetricKind::ExponentialHistogram,
        "summary" => MetricKind::Summary,
        other => return Err(StoreError::Corrupt(format!("metric kind {other:?}"))),
    })
}

/// The labels the catalog lists for a new series (non-empty values only).
pub(crate) fn catalog_labels(labels: &Labels) -> impl Iterator<Item = (&str, &str)> {
    labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.as_str(), value.as_str()))
}
