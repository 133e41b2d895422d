//! Per-trace summaries maintained at ingest (`trace_summaries` and
//! `trace_services`, migration 0004; `trace_operations`, migration 0006):
//! what both backends share — the
//! aggregation of a batch's inserted spans per trace and the assembly of
//! [`TraceSummary`] values (the search plan is in `search.rs`).

use std::collections::{BTreeMap, BTreeSet};

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

/// Aggregates the spans actually inserted (duplicates already dropped) per
/// trace, sorted by trace id (so that concurrent PostgreSQL writers lock
/// summary rows in one order).
pub(crate) fn trace_deltas<'a>(spans: impl Iterator<Item = &'a Span>) -> Vec<TraceDelta<'a>> {
    let mut by_trace: BTreeMap<TraceId, TraceDelta<'a>> = BTreeMap::new();
    for span in spans {
        let end = span.start_unix_nano.saturating_add(span.duration_nano);
        let delta = by_trace.entry(span.trace_id).or_insert_with(|| TraceDelta {
            trace_id: span.trace_id,
            start_unix_nano: span.start_unix_nano,
            end_unix_nano: end,
            span_count: 0,
            error_count: 0,
            root: None,
            services: BTreeMap::new(),
            operations: BTreeSet::new(),
        });
        delta.start_unix_nano = delta.start_unix_nano.min(span.start_unix_nano);
        delta.end_unix_nano = delta.end_unix_nano.max(end);
        delta.span_count += 1;
        if span.status_code == StatusCode::Error {
            delta.error_count += 1;
        }
        if span.parent_span_id.is_none()
            && delta
                .root
                .is_none_or(|(start, _, _)| span.start_unix_nano < start)
        {
            delta.root = Some((
                span.start_unix_nano,
                span.service_name.as_str(),
                span.operation.as_str(),
            ));
        }
        *delta
            .services
            .entry(span.service_name.as_str())
            .or_insert(0) += 1;
        delta
            .operations
            .insert((span.service_name.as_str(), span.operation.as_str()));
    }
    by_trace.into_values().collect()
}

/// The summary columns a page query selects, in [`SummaryRow`] order.
pub(crate) const SUMMARY_COLUMNS: &str = "SELECT t.trace_id, t.start_unix_nano, t.duration_nano, \
     t.span_count, t.error_count, t.root_service, t.root_operation";

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

/// Reads a [`SummaryRow`] from a row selected with [`SUMMARY_COLUMNS`]
/// (counts as `i64` or `i32` depending on the backend).
macro_rules! summary_row {
    ($row:expr, $count:ty) => {
        $crate::store::summary::SummaryRow {
            trace_id: $row.try_get(0)?,
            start_unix_nano: $row.try_get(1)?,
            duration_nano: $row.try_get(2)?,
            span_count: i64::from($row.try_get::<$count, _>(3)?),
            error_count: i64::from($row.try_get::<$count, _>(4)?),
            root_service: $row.try_get(5)?,
            root_operation: $row.try_get(6)?,
        }
    };
}
pub(crate) use summary_row;

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
