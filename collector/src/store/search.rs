//! How a trace search reads the per-trace tables (`trace_summaries`,
//! `trace_services`, `trace_operations`, `trace_tags`), for either
//! database: which table the search walks, its `WHERE` and `ORDER BY`.
//!
//! Span-level filters (Jaeger semantics: ONE span of the trace matches
//! service, operation, every tag and the span duration bounds together)
//! are answered by the per-trace tables when a row records exactly that —
//! service; service and operation; service and one tag — and otherwise
//! confirmed on the spans, of the candidate traces only when an index
//! narrowed them down.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::tags::indexable;
use super::{TraceOrder, TraceQuery};

/// The table a search walks newest first (or reads in full for the other
/// orders).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    /// `trace_summaries` by start (no service filter, or span filters the
    /// per-trace tables cannot answer).
    Summaries,
    /// `trace_services` by (service, start).
    Services,
    /// `trace_operations` by (service, operation, start).
    Operations,
    /// `trace_tags` by (service, key, value, start) of the first indexed tag.
    Tags,
}

/// How a search reads the per-trace tables.
pub(crate) struct SearchPlan {
    walk: Walk,
    /// Walking `trace_summaries` with an operation filter and no other span
    /// filter: restrict to traces in `trace_operations` (through the
    /// services that have that operation).
    operation_only: bool,
    /// Walking `trace_summaries` with span filters: restrict to traces with
    /// a matching span.
    span_filter: bool,
    /// Walking `trace_tags`: the positions in `query.tags` of the indexed
    /// tags (the first one is walked, the others looked up).
    indexed: Vec<usize>,
    /// Walking `trace_tags`: the candidates must be confirmed on their spans
    /// (several tags, an unindexed tag, an operation or span durations, all
    /// of which ONE span must match together).
    confirm: bool,
    /// Whole-trace duration bounds are set.
    trace_durations: bool,
}

impl SearchPlan {
    pub fn new(query: &TraceQuery) -> Self {
        let span_durations = query.min_duration_nano.is_some() || query.max_duration_nano.is_some();
        let span_filter = !query.tags.is_empty() || span_durations;
        let indexed: Vec<usize> = if query.service.is_some() {
            (0..query.tags.len())
                .filter(|&at| indexable(&query.tags[at].0, &query.tags[at].1))
                .collect()
        } else {
            Vec::new()
        };
        let walk = match (&query.service, &query.operation) {
            (Some(_), _) if !indexed.is_empty() => Walk::Tags,
            (Some(_), None) if !span_filter => Walk::Services,
            (Some(_), Some(_)) if !span_filter => Walk::Operations,
            _ => Walk::Summaries,
        };
        Self {
            walk,
            operation_only: walk == Walk::Summaries
                && !span_filter
                && query.service.is_none()
                && query.operation.is_some(),
            span_filter: walk == Walk::Summaries && span_filter,
            confirm: walk == Walk::Tags
                && (indexed.len() > 1
                    || indexed.len() < query.tags.len()
                    || query.operation.is_some()
                    || span_durations),
            indexed,
            trace_durations: query.min_trace_duration_nano.is_some()
                || query.max_trace_duration_nano.is_some(),
        }
    }

    /// `FROM ... WHERE ...` of a search, for either database: `span_filters`
    /// adds the span-level conditions (` AND ...` on a `spans` row) in its
    /// SQL dialect, `spans_by_trace` names the spans table read by trace id
    /// (SQLite without statistics would otherwise read a candidate's spans
    /// through the service index).
    pub fn push_filters<DB>(
        &self,
        builder: &mut QueryBuilder<DB>,
        query: &TraceQuery,
        count: bool,
        span_filters: fn(&mut QueryBuilder<DB>, &TraceQuery),
        spans_by_trace: &str,
    ) where
        DB: Database,
        for<'t> i64: Encode<'t, DB> + Type<DB>,
        for<'t> String: Encode<'t, DB> + Type<DB>,
        for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    {
        if self.walk == Walk::Summaries {
            builder.push(" FROM trace_summaries t WHERE t.start_unix_nano >= ");
            builder.push_bind(query.start_unix_nano);
            builder.push(" AND t.start_unix_nano <= ");
            builder.push_bind(query.end_unix_nano);
        } else {
            // Counting needs the summaries only for trace-duration bounds.
            let table = match self.walk {
                Walk::Operations => "trace_operations",
                Walk::Tags => "trace_tags",
                _ => "trace_services",
            };
            if count && !self.trace_durations {
                builder.push(format_args!(" FROM {table} s WHERE s.service_name = "));
            } else {
                builder.push(format_args!(
                    " FROM {table} s JOIN trace_summaries t ON t.trace_id = s.trace_id \
                     WHERE s.service_name = "
                ));
            }
            builder.push_bind(query.service.clone());
            if self.walk == Walk::Operations {
                builder.push(" AND s.operation = ");
                builder.push_bind(query.operation.clone());
            }
            if let Some(&first) = self.indexed.first() {
                let (key, value) = &query.tags[first];
                builder.push(" AND s.key = ");
                builder.push_bind(key.clone());
                builder.push(" AND s.value = ");
                builder.push_bind(value.clone());
            }
            builder.push(" AND s.trace_start >= ");
            builder.push_bind(query.start_unix_nano);
            builder.push(" AND s.trace_start <= ");
            builder.push_bind(query.end_unix_nano);
            for &at in self.indexed.iter().skip(1) {
                let (key, value) = &query.tags[at];
                builder.push(
                    " AND EXISTS (SELECT 1 FROM trace_tags x WHERE x.trace_id = s.trace_id \
                     AND x.service_name = ",
                );
                builder.push_bind(query.service.clone());
                builder.push(" AND x.key = ");
                builder.push_bind(key.clone());
                builder.push(" AND x.value = ");
                builder.push_bind(value.clone());
                builder.push(")");
            }
        }
        if let Some(min) = query.min_trace_duration_nano {
            builder.push(" AND t.duration_nano >= ");
            builder.push_bind(min);
        }
        if let Some(max) = query.max_trace_duration_nano {
            builder.push(" AND t.duration_nano <= ");
            builder.push_bind(max);
        }
        if self.operation_only {
            // The index ranges of the services that have the operation (the
            // catalog may list more: their ranges are empty).
            builder.push(
                " AND t.trace_id IN (SELECT o.trace_id FROM trace_operations o \
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
        if self.span_filter {
            // A trace's spans start at or after the trace: the window's start
            // bounds the span index range.
            builder
                .push(" AND t.trace_id IN (SELECT trace_id FROM spans WHERE start_unix_nano >= ");
            builder.push_bind(query.start_unix_nano);
            span_filters(builder, query);
            builder.push(")");
        }
        if self.confirm {
            // One span of the candidate has everything (spans_trace_span).
            builder.push(format_args!(
                " AND EXISTS (SELECT 1 FROM {spans_by_trace} WHERE spans.trace_id = s.trace_id \
                 AND spans.start_unix_nano >= "
            ));
            builder.push_bind(query.start_unix_nano);
            span_filters(builder, query);
            builder.push(")");
        }
    }

    /// The trace start column and the trace id column to order by.
    fn columns(&self) -> (&'static str, &'static str) {
        if self.walk == Walk::Summaries {
            ("t.start_unix_nano", "t.trace_id")
        } else {
            ("s.trace_start", "s.trace_id")
        }
    }

    /// ` ORDER BY ...` for `order` (ties: start, then id; see the contract).
    pub fn order_by(&self, order: TraceOrder) -> String {
        let (start, id) = self.columns();
        match order {
            TraceOrder::Newest => format!(" ORDER BY {start} DESC, {id} DESC"),
            TraceOrder::Oldest => format!(" ORDER BY {start}, {id}"),
            TraceOrder::Longest => {
                format!(" ORDER BY t.duration_nano DESC, {start} DESC, {id} DESC")
            }
            TraceOrder::Shortest => format!(" ORDER BY t.duration_nano, {start} DESC, {id} DESC"),
            TraceOrder::MostSpans => {
                format!(" ORDER BY t.span_count DESC, {start} DESC, {id} DESC")
            }
        }
    }
}

/// The operation of an operation-only search (no service, no other span
/// filter): when a single service has that operation, the search is that
/// service's (see [`with_service`]).
pub(crate) fn operation_only(query: &TraceQuery) -> Option<&str> {
    let span_filter = !query.tags.is_empty()
        || query.min_duration_nano.is_some()
        || query.max_duration_nano.is_some();
    match (&query.service, &query.operation) {
        (None, Some(operation)) if !span_filter => Some(operation),
        _ => None,
    }
}

/// `query` restricted to `service`: the same traces when `service` is the
/// only one the catalog lists for the query's operation (the catalog lists
/// at least every (service, operation) of the stored spans).
pub(crate) fn with_service(query: &TraceQuery, service: String) -> TraceQuery {
    TraceQuery {
        service: Some(service),
        ..query.clone()
    }
}

/// The services the catalog lists for an operation (SQLite and PostgreSQL).
pub(crate) const SELECT_OPERATION_SERVICES_SQLITE: &str =
    "SELECT DISTINCT service_name FROM operations WHERE operation = ?1 LIMIT 2";
pub(crate) const SELECT_OPERATION_SERVICES_POSTGRES: &str =
    "SELECT DISTINCT service_name FROM operations WHERE operation = $1 LIMIT 2";

#[cfg(test)]
mod tests {
    use super::*;

    fn query(service: Option<&str>, operation: Option<&str>, tags: &[(&str, &str)]) -> TraceQuery {
        TraceQuery {
            service: service.map(str::to_owned),
            operation: operation.map(str::to_owned),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            limit: 20,
            ..TraceQuery::default()
        }
    }

    #[test]
    fn tag_searches_walk_the_tag_index_and_confirm_only_when_needed() {
        let plan = SearchPlan::new(&query(Some("web"), None, &[("code", "502")]));
        assert_eq!((plan.walk, plan.confirm), (Walk::Tags, false));
        let plan = SearchPlan::new(&query(Some("web"), None, &[("a", "1"), ("b", "x")]));
        assert_eq!(
            (plan.walk, plan.indexed.clone(), plan.confirm),
            (Walk::Tags, vec![0, 1], true)
        );
        let plan = SearchPlan::new(&query(Some("web"), Some("GET"), &[("a", "1")]));
        assert_eq!((plan.walk, plan.confirm), (Walk::Tags, true));
        // A double's text is not indexed: the other tag is walked.
        let plan = SearchPlan::new(&query(Some("web"), None, &[("f", "1.5"), ("a", "1")]));
        assert_eq!(
            (plan.walk, plan.indexed.clone(), plan.confirm),
            (Walk::Tags, vec![1], true)
        );
        let plan = SearchPlan::new(&query(Some("web"), None, &[("f", "1.5")]));
        assert_eq!((plan.walk, plan.span_filter), (Walk::Summaries, true));
        // Without a service: the spans.
        let plan = SearchPlan::new(&query(None, None, &[("a", "1")]));
        assert_eq!((plan.walk, plan.span_filter), (Walk::Summaries, true));
    }

    #[test]
    fn service_and_operation_searches_walk_their_tables() {
        assert_eq!(
            SearchPlan::new(&query(Some("web"), None, &[])).walk,
            Walk::Services
        );
        assert_eq!(
            SearchPlan::new(&query(Some("web"), Some("GET"), &[])).walk,
            Walk::Operations
        );
        let plan = SearchPlan::new(&query(None, Some("GET"), &[]));
        assert_eq!((plan.walk, plan.operation_only), (Walk::Summaries, true));
        assert_eq!(operation_only(&query(None, Some("GET"), &[])), Some("GET"));
        assert_eq!(
            operation_only(&query(None, Some("GET"), &[("a", "1")])),
            None
        );
        assert_eq!(operation_only(&query(Some("web"), Some("GET"), &[])), None);
    }
}
