//! The domain types the store reads and writes: spans and metric points,
//! already validated by the OTLP decoder.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Attributes as a JSON object: `{"http.method": "GET", "retry": 2}`.
///
/// OTLP values map to JSON: string, bool, int (i64), double, array, kvlist
/// (object); bytes become a base64 string.
pub type Attributes = serde_json::Map<String, serde_json::Value>;

/// A 16-byte trace id, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

/// A trace or span id that is not valid hex of the right length, or is zero.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {value:?}: expected up to {max_hex} hex digits, not all zero")]
pub struct InvalidId {
    what: &'static str,
    value: String,
    max_hex: usize,
}

// === impl TraceId ===

impl TraceId {
    /// The id from raw bytes: `None` unless 16 bytes and not all zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 16] = bytes.try_into().ok()?;
        (array != [0; 16]).then_some(Self(array))
    }

    /// Parses 1 to 32 hex digits (either case); shorter ids, such as 64-bit
    /// Jaeger/Zipkin ids, are left-padded with zeros.
    pub fn parse_hex(text: &str) -> Result<Self, InvalidId> {
        let invalid = || InvalidId {
            what: "trace id",
            value: text.to_owned(),
            max_hex: 32,
        };
        let bytes = parse_padded_hex::<16>(text).ok_or_else(invalid)?;
        Self::from_bytes(&bytes).ok_or_else(invalid)
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_hex(&text).map_err(serde::de::Error::custom)
    }
}

// === impl SpanId ===

impl SpanId {
    /// The id from raw bytes: `None` unless 8 bytes and not all zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 8] = bytes.try_into().ok()?;
        (array != [0; 8]).then_some(Self(array))
    }

    /// Parses 1 to 16 hex digits, left-padded with zeros.
    pub fn parse_hex(text: &str) -> Result<Self, InvalidId> {
        let invalid = || InvalidId {
            what: "span id",
            value: text.to_owned(),
            max_hex: 16,
        };
        let bytes = parse_padded_hex::<8>(text).ok_or_else(invalid)?;
        Self::from_bytes(&bytes).ok_or_else(invalid)
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

impl Serialize for SpanId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SpanId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_hex(&text).map_err(serde::de::Error::custom)
    }
}

fn parse_padded_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.is_empty() || text.len() > 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>width$}", width = 2 * N);
    let mut bytes = [0; N];
    hex::decode_to_slice(padded, &mut bytes).ok()?;
    Some(bytes)
}

/// OTLP `Span.SpanKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Unspecified,
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => return None,
        })
    }

    pub fn as_i32(self) -> i32 {
        match self {
            Self::Unspecified => 0,
            Self::Internal => 1,
            Self::Server => 2,
            Self::Client => 3,
            Self::Producer => 4,
            Self::Consumer => 5,
        }
    }

    /// `SERVER`, `CLIENT`, ... (the native API's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "UNSPECIFIED",
            Self::Internal => "INTERNAL",
            Self::Server => "SERVER",
            Self::Client => "CLIENT",
            Self::Producer => "PRODUCER",
            Self::Consumer => "CONSUMER",
        }
    }
}

/// OTLP `Status.StatusCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Unset,
            1 => Self::Ok,
            2 => Self::Error,
            _ => return None,
        })
    }

    pub fn as_i32(self) -> i32 {
        match self {
            Self::Unset => 0,
            Self::Ok => 1,
            Self::Error => 2,
        }
    }

    /// `UNSET`, `OK` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "UNSET",
            Self::Ok => "OK",
            Self::Error => "ERROR",
        }
    }
}

/// One span, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// The resource's `service.name` (`unknown_service` when absent).
    pub service_name: String,
    /// The resource's `service.version`.
    pub service_version: Option<String>,
    /// The span name.
    pub operation: String,
    pub kind: SpanKind,
    pub start_unix_nano: i64,
    pub duration_nano: i64,
    pub status_code: StatusCode,
    pub status_message: String,
    pub trace_state: String,
    pub flags: u32,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    /// All resource attributes, `service.name` included; shared by the
    /// spans of one resource (an export's spans clone it per span).
    pub resource: std::sync::Arc<Attributes>,
    pub scope: Scope,
}

/// A span event (a log line inside the span).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time_unix_nano: i64,
    pub name: String,
    #[serde(default)]
    pub attributes: Attributes,
}

/// A link from a span to another span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    #[serde(default)]
    pub trace_state: String,
    #[serde(default)]
    pub attributes: Attributes,
}

/// The instrumentation scope that produced a span.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// What a trace search asks for. Times are inclusive bounds on the start
/// of the trace (its earliest stored span).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Span attribute (or resource attribute) equalities; a value matches the
    /// attribute's JSON text without quotes (`"200"` matches 200 and "200").
    pub tags: Vec<(String, String)>,
    pub start_unix_nano: i64,
    pub end_unix_nano: i64,
    pub min_duration_nano: Option<i64>,
    pub max_duration_nano: Option<i64>,
    pub limit: usize,
    /// Matching traces to skip (in `order`) before the page starts.
    pub offset: usize,
    /// Whole-trace duration bounds (trace end − trace start over all its spans), unlike
    /// min/max_duration_nano which, as in Jaeger, apply to the matching span.
    pub min_trace_duration_nano: Option<i64>,
    pub max_trace_duration_nano: Option<i64>,
    pub order: TraceOrder,
    /// Count the matching traces for [`FoundTraces::total`] (the dashboard
    /// shows it), up to [`TOTAL_CAP`] past the page; Jaeger's and Zipkin's
    /// APIs do not ask, and their searches then read only the page.
    pub count_total: bool,
}

/// The order of a trace search's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceOrder {
    /// Latest trace start first.
    #[default]
    Newest,
    /// Earliest trace start first.
    Oldest,
    /// Longest whole-trace duration first.
    Longest,
    /// Shortest whole-trace duration first.
    Shortest,
    /// Most spans first.
    MostSpans,
}

/// One trace in a search result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    /// The earliest span start.
    pub start_unix_nano: i64,
    /// The latest span end − the earliest span start.
    pub duration_nano: i64,
    pub span_count: u32,
    /// Spans with status ERROR.
    pub error_count: u32,
    /// The service of the span without parent, if stored.
    pub root_service: Option<String>,
    /// The name of the span without parent, if stored.
    pub root_operation: Option<String>,
    /// Service name → span count, sorted by name.
    pub services: Vec<(String, u32)>,
}

/// How many matching traces past the page a counted search counts at most:
/// beyond it the total is "more than" (a count costs as much as the traces
/// it counts).
pub const TOTAL_CAP: u64 = 10_000;

/// How many candidate traces (the newest of the window that pass the
/// service, operation and trace-duration filters) a search with span
/// filters (tags, span durations) checks for a matching span at most: past
/// the page to count its total, and in all to order a page by anything but
/// the start. Each check reads the candidate's spans (about 3 µs on SQLite,
/// 14 µs on PostgreSQL, on the 2-core VM of BENCHMARKS.md), so this bounds
/// such a search's cost whatever the window holds.
pub const SPAN_CHECK_CAP: u64 = 4_000;

/// How many candidate traces (the newest of the window that pass the
/// service, operation and trace-duration filters) a search without span
/// filters sorts at most when ordered by duration or span count. Reading a
/// candidate's summary costs about 0.5 µs on either database (BENCHMARKS.md):
/// sorting every trace of an hour at 1 M spans took 61 ms on SQLite and
/// 72–84 ms on PostgreSQL, ten times that at 10 M.
pub const SORT_CAP: u64 = 10_000;

/// The result of a trace search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundTraces {
    /// At most `limit` ids in the query's order, after skipping `offset`.
    pub trace_ids: Vec<TraceId>,
    /// How many traces match in total (not only this page) when the query
    /// set `count_total` and `total_exact` is true; a lower bound otherwise:
    /// `offset + limit + TOTAL_CAP` when the count stopped there; with span
    /// filters (tags, span durations), the matching traces among the
    /// candidates checked ([`SPAN_CHECK_CAP`]: the newest `offset + limit +
    /// SPAN_CHECK_CAP` in start order, the newest `SPAN_CHECK_CAP` in the
    /// other orders, where they are exactly the traces the order covers, see
    /// `order_exact`), at least what the page proves; without span filters
    /// in the other orders, the candidates the order covers (at most
    /// [`SORT_CAP`]); what the page proves when not counted (`offset` + the
    /// page's length, 0 for an empty page).
    pub total: u64,
    /// Whether `total` is the exact number of matching traces.
    pub total_exact: bool,
    /// Whether the page is in the query's order over every matching trace
    /// of the window. False only for a search ordered by duration or span
    /// count whose window holds more candidate traces than it sorts
    /// ([`SPAN_CHECK_CAP`] with span filters, [`SORT_CAP`] without): the
    /// page is then in that order over the matching traces among the newest
    /// candidates (as Jaeger's UI sorts only the traces a search returned),
    /// and older matching traces may be missing from it.
    pub order_exact: bool,
    /// One summary per id of `trace_ids`, in the same order.
    pub summaries: Vec<TraceSummary>,
}

/// The kind of a metric, from its OTLP data case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Sum => "sum",
            Self::Histogram => "histogram",
            Self::ExponentialHistogram => "exponential_histogram",
            Self::Summary => "summary",
        }
    }
}

/// OTLP `AggregationTemporality`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Temporality {
    Unspecified,
    Delta,
    Cumulative,
}

impl Temporality {
    pub fn from_i32(value: i32) -> Option<Self> {
        Some(match value {
            0 => Self::Unspecified,
            1 => Self::Delta,
            2 => Self::Cumulative,
            _ => return None,
        })
    }

    pub fn as_i32(self) -> i32 {
        match self {
            Self::Unspecified => 0,
            Self::Delta => 1,
            Self::Cumulative => 2,
        }
    }
}

/// Labels of a series: data point attributes as strings, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// Points of one metric stream, to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSeries {
    pub name: String,
    pub labels: Labels,
    pub resource: Attributes,
    pub kind: MetricKind,
    pub temporality: Temporality,
    pub monotonic: bool,
    pub unit: String,
    pub points: Vec<MetricPoint>,
}

/// One data point.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    pub time_unix_nano: i64,
    pub start_unix_nano: i64,
    pub value: PointValue,
}

/// The value of a data point.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// Gauge or sum.
    Number(f64),
    /// Explicit-bounds histogram; `bucket_counts` has one more entry than
    /// `explicit_bounds` (or none at all).
    Histogram {
        count: u64,
        sum: Option<f64>,
        bucket_counts: Vec<u64>,
        explicit_bounds: Vec<f64>,
    },
    /// Exponential histogram or summary: only count and sum are kept.
    CountSum { count: u64, sum: Option<f64> },
}

/// A number point read back for windowed computations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NumberPoint {
    pub time_unix_nano: i64,
    pub start_unix_nano: i64,
    pub value: f64,
}

/// The points of one number series around a time window.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesWindow {
    pub labels: Labels,
    pub temporality: Temporality,
    /// The last point at or before the window start, if any.
    pub baseline: Option<NumberPoint>,
    /// The points inside the window, oldest first (never empty).
    pub points: Vec<NumberPoint>,
}
