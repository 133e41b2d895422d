//! Storage of spans and metrics: one contract ([`Store`]), two backends
//! (SQLite for one machine, PostgreSQL for scale-out), one conformance suite
//! (`tests/store_conformance.rs`).
//!
//! Only this module talks SQL. The schema lives in `migrations/{sqlite,postgres}`
//! and is embedded into the binary by `build.rs`.

mod catalog;
mod links;
pub mod metrics;
mod migrate;
mod model;
pub mod postgres;
mod row;
mod search;
pub mod sqlite;
mod summary;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

pub use catalog::{DependencyLink, Operation, RETENTION_BATCH};
pub use model::{
    Attributes, Event, FoundTraces, InvalidId, Labels, Link, MetricKind, MetricPoint, MetricSeries,
    NumberPoint, PointValue, SORT_CAP, SPAN_CHECK_CAP, Scope, SeriesWindow, Span, SpanId, SpanKind,
    StatusCode, TOTAL_CAP, Temporality, TraceId, TraceOrder, TraceQuery, TraceSummary,
};

pub use metrics::{
    MetricInfo, MetricQueries, PointsWindow, SeriesInfo, SeriesPoints, StoredPoint, TimeRange,
};

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?} (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("database URL {url:?}: {message}")]
    UrlParameter { url: String, message: String },
    #[error("cannot start the SQLite writer thread: {0}")]
    WriterThread(std::io::Error),
}

/// Where spans and metrics live.
///
/// Implementations are shared by all request handlers (`Arc<dyn Store>`) and
/// MUST be safe to call concurrently. Every method MAY fail with a
/// [`StoreError`]; callers treat that as transient (clients retry).
#[async_trait]
pub trait Store: metrics::MetricQueries + Send + Sync + 'static {
    /// Writes a batch of spans.
    ///
    /// The batch MUST be written in one transaction: after an error nothing
    /// of it is stored. The call MUST NOT return `Ok` before the transaction
    /// has committed (the collector acknowledges exports only then). Writing
    /// is idempotent on `(trace_id, span_id)`: a span that is already stored
    /// MUST be left as it is and MUST NOT be stored twice. An empty batch
    /// MUST succeed.
    async fn write_spans(&self, spans: &[Span]) -> Result<(), StoreError>;

    /// Writes a batch of metric points, creating series as needed.
    ///
    /// Same transaction and commit rules as [`Store::write_spans`]. A series
    /// is identified by `(name, labels)`; its other fields are taken from the
    /// first write. A point is identified by `(series, time_unix_nano)`: a
    /// point written again MUST be ignored.
    async fn write_metrics(&self, series: &[MetricSeries]) -> Result<(), StoreError>;

    /// Names of all services that sent spans, sorted and without duplicates.
    /// An empty store MUST return an empty list.
    async fn services(&self) -> Result<Vec<String>, StoreError>;

    /// Span names of one service (all span kinds), sorted and without
    /// duplicates. An unknown service MUST return an empty list.
    async fn operations(&self, service: &str) -> Result<Vec<String>, StoreError>;

    /// All spans of the given traces, grouped by trace in the order of
    /// `trace_ids` and ordered by start time within a trace. Unknown ids
    /// MUST be skipped silently (an unknown single trace gives an empty list).
    async fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError>;

    /// Traces that start inside the query's window (inclusive bounds on the
    /// earliest stored span start of the trace), whose whole-trace duration
    /// lies within `min/max_trace_duration_nano`, and that have at least one
    /// span matching every span filter (`service`, `operation`, `tags`,
    /// `min/max_duration_nano`; the filters apply to the same span).
    ///
    /// The ids MUST be sorted by `query.order`, ties broken by trace start
    /// then by a fixed per-trace order (the store's trace number: arrival
    /// order), both descending (ascending for `Oldest`); `offset` matching
    /// traces skipped, and MUST be at most `query.limit`; `total` MUST count
    /// all matching traces (not only the page). `summaries` MUST hold one
    /// [`TraceSummary`] per id, in the same order, computed over all stored
    /// spans of the trace (not only the matching ones). Tag filters MAY match
    /// resource attributes as well as span attributes.
    ///
    /// A trace's start, duration and summary MUST reflect every span stored
    /// so far, whatever the order and batching in which its spans arrived,
    /// and MUST follow the retention deletes.
    async fn find_traces(&self, query: &TraceQuery) -> Result<FoundTraces, StoreError>;

    /// The number points (gauge or sum) of metric `name` around the window
    /// `(start_unix_nano, end_unix_nano]`.
    ///
    /// One entry per series with at least one point inside the window. It
    /// MUST hold all points inside the window, oldest first, and as baseline
    /// the series' last point at or before `start_unix_nano`, if any.
    async fn series_window(
        &self,
        name: &str,
        start_unix_nano: i64,
        end_unix_nano: i64,
    ) -> Result<Vec<SeriesWindow>, StoreError>;

    /// The `(name, kind)` pairs of one service's spans, sorted by name then
    /// kind, optionally only of one kind. An unknown service MUST return an
    /// empty list.
    async fn operation_kinds(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError>;

    /// The distinct `peer.service` span attributes of one service's spans,
    /// sorted (Zipkin's remote services).
    async fn remote_services(&self, service: &str) -> Result<Vec<String>, StoreError>;

    /// Service-to-service links of spans that start inside the window, in
    /// whole minutes: a child span that is not INTERNAL and whose stored
    /// parent span belongs to another service counts one call from the
    /// parent's service to the child's (and one error if the child's status
    /// is ERROR) in the UTC minute of the child's start; the window selects
    /// every minute it overlaps (inclusive bounds). The counts MUST reflect
    /// every pair of stored spans, whatever the order and batching in which
    /// parent and child arrived (also from concurrent writers), and MUST
    /// follow the retention deletes.
    /// Sorted by `(parent, child)`; links without calls are left out.
    async fn dependencies(
        &self,
        start_unix_nano: i64,
        end_unix_nano: i64,
    ) -> Result<Vec<DependencyLink>, StoreError>;

    /// How many spans are stored.
    async fn span_count(&self) -> Result<u64, StoreError>;

    /// Deletes at most `limit` spans that started before `cutoff_unix_nano`,
    /// in one short transaction (which also updates the summaries of the
    /// traces concerned, dropping those left without spans); returns how
    /// many were deleted. The
    /// retention task calls it until it returns less than `limit`.
    async fn delete_spans_before(
        &self,
        cutoff_unix_nano: i64,
        limit: u32,
    ) -> Result<u64, StoreError>;

    /// Deletes the `limit` spans with the oldest start times (at most), in
    /// one short transaction (summaries as for
    /// [`Store::delete_spans_before`]); returns how many were deleted.
    async fn delete_oldest_spans(&self, limit: u32) -> Result<u64, StoreError>;

    /// Removes `operations` and `remote_services` rows that no stored span
    /// backs any more (after retention deleted spans).
    async fn prune_span_catalog(&self) -> Result<(), StoreError>;

    /// Brings the query planner's statistics up to date where the tables
    /// changed enough since they were last gathered; returns the tables it
    /// refreshed. Called every few seconds by the collector
    /// ([`crate::statistics`]). The default does nothing: SQLite's plans for
    /// these queries do not depend on statistics.
    async fn refresh_statistics(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the connection pools, waiting for connections in use. Calls
    /// after `close` fail.
    async fn close(&self);
}

/// Opens (creating and migrating as needed) the store named by `url`:
/// `sqlite://PATH[?synchronous=full|normal]` (also `sqlite:PATH`; see
/// [`sqlite::Durability`]) or `postgres://...` / `postgresql://...`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        if path.is_empty() {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let durability =
            sqlite::Durability::from_query(query).map_err(|message| StoreError::UrlParameter {
                url: url.to_owned(),
                message,
            })?;
        let store = sqlite::SqliteStore::open_with(path.as_ref(), durability).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PostgresStore::open(url).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}
