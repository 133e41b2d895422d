//! Per-trace summaries maintained at ingest (`trace_summaries` and
//! `trace_services`, migration 0004; `trace_operations`, migration 0006):
//! what both backends share — the
//! aggregation of a batch's inserted spans per trace, the search plan and
//! its `ORDER BY`, and the assembly of [`TraceSummary`] values.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{Span, StatusCode, TraceId, TraceQuery, TraceSummary};

/// What one batch adds to one trace's summary.
pub(crate) struct TraceDelta<'a> {
    pub trace_id: TraceId,
    pub start_unix_nano: i64,
    pub end_unix_nano: i64,
    pub span_count: i32,
    pub error_count: i32,
    /// The earliest span without parent in the batch: (start, service, operation).
    pub root: Option<(i64, &'a str, &'a str)>,
    /// Service → spans of the batch.
    pub services: BTreeMap<&'a str, i32>,
    /// The (service, operation) pairs of the batch's spans.
    pub operations: BTreeSet<(&'a str, &'a str)>,
}

impl TraceDelta<'_> {
    pub fn duration_nano(&self) -> i64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    pub fn root_service(&self) -> Option<&str> {
        self.root.map(|(_, service, _)| service)
    }

    pub fn root_operation(&self) -> Option<&str> {
        self.root.map(|(_, _, operation)| operation)
    }
}

/// A trace stored before the batch being written: its number
/// (`trace_summaries.trace_no`, migration 0009) and start (its summary's).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoredTrace {
    pub trace_no: i64,
    pub start_unix_nano: i64,
}

/// A trace read back with the columns `trace_id, trace_no, start_unix_nano`
/// of `trace_summaries`.
pub(crate) fn stored_trace<R>(row: &R) -> Result<(TraceId, StoredTrace), super::StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((
        summary_trace_id(&row.try_get::<Vec<u8>, _>(0)?)?,
        StoredTrace {
            trace_no: row.try_get(1)?,
            start_unix_nano: row.try_get(2)?,
        },
    ))
}

/// A trace id read back from `trace_summaries`.
pub(crate) fn summary_trace_id(bytes: &[u8]) -> Result<TraceId, super::StoreError> {
    TraceId::from_bytes(bytes)
        .ok_or_else(|| super::StoreError::Corrupt("trace_summaries.trace_id".to_owned()))
}

/// What [`trace_deltas`] reads of a span: the store model's [`Span`], or
/// a store's own smaller record of it.
pub(crate) trait DeltaSpan {
    fn trace_id(&self) -> TraceId;
    fn start_unix_nano(&self) -> i64;
    fn duration_nano(&self) -> i64;
    fn is_error(&self) -> bool;
    /// Without parent.
    fn is_root(&self) -> bool;
    fn service_name(&self) -> &str;
    fn operation(&self) -> &str;
}

impl DeltaSpan for Span {
    fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    fn start_unix_nano(&self) -> i64 {
        self.start_unix_nano
    }
    fn duration_nano(&self) -> i64 {
        self.duration_nano
    }
    fn is_error(&self) -> bool {
        self.status_code == StatusCode::Error
    }
    fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }
    fn service_name(&self) -> &str {
        &self.service_name
    }
    fn operation(&self) -> &str {
        &self.operation
    }
}

/// Aggregates the spans actually inserted (duplicates already dropped) per
/// trace, sorted by trace id (so that concurrent PostgreSQL writers lock
/// summary rows in one order). The root is the earliest span without
/// parent, the first of equal starts.
pub(crate) fn trace_deltas<'a, S: DeltaSpan + 'a>(
    spans: impl Iterator<Item = &'a S>,
) -> Vec<TraceDelta<'a>> {
    let mut by_trace: BTreeMap<TraceId, TraceDelta<'a>> = BTreeMap::new();
    for span in spans {
        let start = span.start_unix_nano();
        let end = start.saturating_add(span.duration_nano());
        let delta = by_trace
            .entry(span.trace_id())
            .or_insert_with(|| TraceDelta {
                trace_id: span.trace_id(),
                start_unix_nano: start,
                end_unix_nano: end,
                span_count: 0,
                error_count: 0,
                root: None,
                services: BTreeMap::new(),
                operations: BTreeSet::new(),
            });
        delta.start_unix_nano = delta.start_unix_nano.min(start);
        delta.end_unix_nano = delta.end_unix_nano.max(end);
        delta.span_count += 1;
        if span.is_error() {
            delta.error_count += 1;
        }
        if span.is_root() && delta.root.is_none_or(|(root, _, _)| start < root) {
            delta.root = Some((start, span.service_name(), span.operation()));
        }
        *delta.services.entry(span.service_name()).or_insert(0) += 1;
        delta
            .operations
            .insert((span.service_name(), span.operation()));
    }
    by_trace.into_values().collect()
}

/// How a search reads the summary tables.
pub(crate) struct SearchPlan {
    /// A service filter and no span filter but the operation: walk
    /// `trace_services` (or `trace_operations`, see `by_operation`) by
    /// (service, [operation,] start).
    pub by_service: bool,
    /// With `by_service`: the operation is set too, walk `trace_operations`
    /// by (service, operation, start).
    pub by_operation: bool,
    /// An operation filter without service and no other span filter:
    /// restrict to traces in `trace_operations` (through the services that
    /// have that operation).
    pub operation_only: bool,
    /// Tag or span-duration filters: restrict to traces with a matching span.
    pub span_filter: bool,
    /// Whole-trace duration bounds are set.
    pub trace_durations: bool,
}

impl SearchPlan {
    pub fn new(query: &TraceQuery) -> Self {
        // Filters only the spans themselves can answer. Service and
        // operation on one span are what a `trace_operations` row records.
        let span_filter = !query.tags.is_empty()
            || query.min_duration_nano.is_some()
            || query.max_duration_nano.is_some();
        let by_service = query.service.is_some() && !span_filter;
        Self {
            by_service,
            by_operation: by_service && query.operation.is_some(),
            operation_only: !span_filter && query.service.is_none() && query.operation.is_some(),
            span_filter,
            trace_durations: query.min_trace_duration_nano.is_some()
                || query.max_trace_duration_nano.is_some(),
        }
    }

    /// `FROM ... WHERE ...` of a search without span filters over the
    /// summary tables, for either database (searches with span filters walk
    /// their candidates with an `EXISTS` each, `search.rs`).
    pub fn push_filters<DB>(&self, builder: &mut QueryBuilder<DB>, query: &TraceQuery, count: bool)
    where
        DB: Database,
        for<'t> i64: Encode<'t, DB> + Type<DB>,
        for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    {
        let plan = self;
        if plan.by_service {
            // Counting needs the summaries only for trace-duration bounds.
            let table = plan.service_table();
            if count && !plan.trace_durations {
                builder.push(format_args!(" FROM {table} s WHERE s.service_name = "));
            } else {
                builder.push(format_args!(
                    " FROM {table} s JOIN trace_summaries t ON t.trace_no = s.trace_no \
                     WHERE s.service_name = "
                ));
            }
            builder.push_bind(query.service.clone());
            if plan.by_operation {
                builder.push(" AND s.operation = ");
                builder.push_bind(query.operation.clone());
            }
            push_window(builder, query, "s.trace_start", "t");
        } else {
            builder.push(" FROM trace_summaries t WHERE 1 = 1");
            push_window(builder, query, "t.start_unix_nano", "t");
        }
        if plan.operation_only {
            // The index ranges of the services that have the operation (the
            // catalog may list more: their ranges are empty).
            builder.push(
                " AND t.trace_no IN (SELECT o.trace_no FROM trace_operations o \
                 WHERE o.service_name IN (SELECT service_name FROM operations WHERE operation = ",
            );
            builder.push_bind(query.operation.clone());
            builder.push(") AND o.operation = ");
            builder.push_bind(query.operation.clone());
            builder.push(" AND o.trace_start >= ");
            builder.push_bind(query.start_unix_nano);
            builder.push(" AND o.trace_start <= ");
            builder.push_bind(query.end_unix_nano);
            builder.push(")");
        }
    }

    /// The table a service search walks.
    pub fn service_table(&self) -> &'static str {
        if self.by_operation {
            "trace_operations"
        } else {
            "trace_services"
        }
    }

    /// The trace start column and the trace number column to order by.
    pub fn columns(&self) -> (&'static str, &'static str) {
        if self.by_service {
            ("s.trace_start", "s.trace_no")
        } else {
            ("t.start_unix_nano", "t.trace_no")
        }
    }
}

/// ` AND ...`: the query's window (inclusive) on the trace start column
/// `start`, and its whole-trace duration bounds on the `duration_nano` of
/// the `trace_summaries` row named `summaries`.
pub(crate) fn push_window<DB>(
    builder: &mut QueryBuilder<DB>,
    query: &TraceQuery,
    start: &str,
    summaries: &str,
) where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    builder.push(format_args!(" AND {start} >= "));
    builder.push_bind(query.start_unix_nano);
    builder.push(format_args!(" AND {start} <= "));
    builder.push_bind(query.end_unix_nano);
    if let Some(min) = query.min_trace_duration_nano {
        builder.push(format_args!(" AND {summaries}.duration_nano >= "));
        builder.push_bind(min);
    }
    if let Some(max) = query.max_trace_duration_nano {
        builder.push(format_args!(" AND {summaries}.duration_nano <= "));
        builder.push_bind(max);
    }
}

/// The summary columns a page query selects, in [`SummaryRow`] order
/// (the counts as BIGINT on both databases), then the trace number.
pub(crate) const SUMMARY_COLUMNS: &str = "SELECT t.trace_id, t.start_unix_nano, t.duration_nano, \
     CAST(t.span_count AS BIGINT), CAST(t.error_count AS BIGINT), t.root_service, \
     t.root_operation, t.trace_no";

/// A `trace_summaries` row read back by a page query.
pub(crate) struct SummaryRow {
    pub trace_id: Vec<u8>,
    pub start_unix_nano: i64,
    pub duration_nano: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub root_service: Option<String>,
    pub root_operation: Option<String>,
}

impl SummaryRow {
    pub fn into_summary(self) -> Result<TraceSummary, super::StoreError> {
        let trace_id = TraceId::from_bytes(&self.trace_id)
            .ok_or_else(|| super::StoreError::Corrupt("trace_summaries.trace_id".to_owned()))?;
        Ok(TraceSummary {
            trace_id,
            start_unix_nano: self.start_unix_nano,
            duration_nano: self.duration_nano,
            span_count: u32::try_from(self.span_count).unwrap_or(0),
            error_count: u32::try_from(self.error_count).unwrap_or(0),
            root_service: self.root_service,
            root_operation: self.root_operation,
            services: Vec::new(),
        })
    }
}

/// Attaches `(trace id, service, span count)` rows (any order) to the
/// summaries, sorted by service name.
pub(crate) fn attach_services(
    summaries: &mut [TraceSummary],
    rows: impl IntoIterator<Item = (TraceId, String, u32)>,
) {
    let index: std::collections::HashMap<TraceId, usize> = summaries
        .iter()
        .enumerate()
        .map(|(index, summary)| (summary.trace_id, index))
        .collect();
    for (trace_id, service, count) in rows {
        if let Some(&at) = index.get(&trace_id) {
            summaries[at].services.push((service, count));
        }
    }
    for summary in summaries {
        summary.services.sort();
    }
}

/// `total` without a COUNT query when the page itself proves it: a page
/// shorter than `limit` that is not past the end.
pub(crate) fn total_from_page(query: &TraceQuery, page_len: usize) -> Option<u64> {
    (page_len < query.limit && (query.offset == 0 || page_len > 0))
        .then(|| u64::try_from(query.offset + page_len).unwrap_or(u64::MAX))
}
