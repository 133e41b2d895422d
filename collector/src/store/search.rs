//! Trace search ([`Store::find_traces`](super::Store::find_traces)) once for
//! both databases, over the summary tables of [`super::summary`].
//!
//! A page in start order (newest or oldest first) is read by walking an
//! index in that order and stopping after `offset + limit` traces, so its
//! cost grows with the page, not with the window:
//!
//! - service (and operation): `trace_services` / `trace_operations` by
//!   (service, [operation,] start), covering;
//! - operation without service: one such walk per service that has the
//!   operation (from the `operations` catalog), each stopped after
//!   `offset + limit` traces, merged;
//! - tag and per-span duration filters: the same walks (or
//!   `trace_summaries` by start without a service), with an `EXISTS` over
//!   the trace's own spans (`spans_trace_span`) per candidate — a scan that
//!   stops at the page, fast when matches are common, as long as the window
//!   when they are rare (as Tempo's search is).
//!
//! Every table here is keyed by the trace number (`trace_no`, migration
//! 0009), not the trace id: ties of start order are broken by it, and only
//! `trace_summaries` maps ids to numbers.
//!
//! Pages in other orders (duration, span count) read every matching trace
//! of the window and sort. The `total` is counted only when asked
//! ([`TraceQuery::count_total`]) and the page cannot prove it, and only up
//! to [`TOTAL_CAP`] traces past the page; with span filters, by checking at
//! most that many candidate traces, newest first, for a matching span (the
//! matches among them are a lower bound when the walk stops there).

use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row, Type,
};

use super::summary::{self, SUMMARY_COLUMNS, SearchPlan, SummaryRow};
use super::{FoundTraces, StoreError, TOTAL_CAP, TraceId, TraceOrder, TraceQuery};

/// Adds a database's ` AND ...` conditions on one span (table `spans`) for
/// the query's service, operation, span durations and tags.
pub(crate) type SpanFilters<DB> = fn(&mut QueryBuilder<DB>, &TraceQuery);

/// Searches traces on `pool` (see the module comment for the plans).
pub(crate) async fn find_traces<DB>(
    pool: &Pool<DB>,
    query: &TraceQuery,
    span_filters: SpanFilters<DB>,
) -> Result<FoundTraces, StoreError>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> String: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB> + Decode<'t, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let plan = SearchPlan::new(query);
    let walk = matches!(query.order, TraceOrder::Newest | TraceOrder::Oldest);
    let mut page = QueryBuilder::<DB>::new(SUMMARY_COLUMNS);
    if walk && plan.operation_only {
        let services = services_with_operation(pool, query).await?;
        push_operation_walks(&mut page, query, &services);
        page.push(plan_order(query.order, "t.start_unix_nano", "t.trace_no"));
    } else if walk && plan.span_filter {
        push_span_walk(&mut page, query, span_filters);
    } else {
        plan.push_filters(&mut page, query, false, span_filters);
        page.push(plan.order_by(query.order));
    }
    page.push(" LIMIT ");
    page.push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    page.push(" OFFSET ");
    page.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
    let rows = page.build().fetch_all(pool).await?;
    let mut summaries = Vec::with_capacity(rows.len());
    let mut trace_nos: Vec<i64> = Vec::with_capacity(rows.len());
    for row in rows {
        trace_nos.push(row.try_get(7)?);
        summaries.push(
            SummaryRow {
                trace_id: row.try_get(0)?,
                start_unix_nano: row.try_get(1)?,
                duration_nano: row.try_get(2)?,
                span_count: row.try_get(3)?,
                error_count: row.try_get(4)?,
                root_service: row.try_get(5)?,
                root_operation: row.try_get(6)?,
            }
            .into_summary()?,
        );
    }
    let (total, total_exact) = match summary::total_from_page(query, summaries.len()) {
        Some(total) => (total, true),
        None if query.count_total && plan.span_filter => {
            // Checks at most `cap` candidate traces (newest first) for a
            // matching span: a count over the span filters' `IN` list read
            // every span of the window (4.9 s at 10 M spans on SQLite).
            let cap = count_cap(query);
            let mut count = QueryBuilder::<DB>::new(
                "SELECT COUNT(*), COALESCE(SUM(m), 0) FROM (SELECT CASE WHEN",
            );
            let (start, id) = walk_columns(query);
            push_span_exists(&mut count, query, id, span_filters);
            count.push(" THEN 1 ELSE 0 END AS m");
            push_candidates(&mut count, query);
            count.push(plan_order(TraceOrder::Newest, start, id));
            count.push(" LIMIT ");
            count.push_bind(i64::try_from(cap).unwrap_or(i64::MAX));
            count.push(") checked");
            let row = count.build().fetch_one(pool).await?;
            let checked = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
            let matched = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
            if checked < cap {
                (matched, true)
            } else {
                let proven = u64::try_from(query.offset + summaries.len()).unwrap_or(u64::MAX);
                (matched.max(proven), false)
            }
        }
        None if query.count_total => {
            // Counts at most `cap` traces: an index range stops there.
            let cap = count_cap(query);
            let mut count = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM (SELECT 1");
            plan.push_filters(&mut count, query, true, span_filters);
            count.push(" LIMIT ");
            count.push_bind(i64::try_from(cap).unwrap_or(i64::MAX));
            count.push(") counted");
            let total: i64 = count.build().fetch_one(pool).await?.try_get(0)?;
            let total = u64::try_from(total).unwrap_or(0);
            (total, total < cap)
        }
        // Not asked: what the page proves (at least this many).
        None if summaries.is_empty() => (0, false),
        None => (
            u64::try_from(query.offset + summaries.len()).unwrap_or(u64::MAX),
            false,
        ),
    };
    if !summaries.is_empty() {
        let mut services = QueryBuilder::<DB>::new(
            "SELECT t.trace_id, s.service_name, CAST(s.span_count AS BIGINT) FROM trace_services s \
             JOIN trace_summaries t ON t.trace_no = s.trace_no WHERE s.trace_no IN (",
        );
        let mut separated = services.separated(", ");
        for trace_no in &trace_nos {
            separated.push_bind(*trace_no);
        }
        services.push(")");
        let rows = services.build().fetch_all(pool).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let trace_id: Vec<u8> = row.try_get(0)?;
            let count: i64 = row.try_get(2)?;
            if let Some(trace_id) = TraceId::from_bytes(&trace_id) {
                entries.push((trace_id, row.try_get(1)?, u32::try_from(count).unwrap_or(0)));
            }
        }
        summary::attach_services(&mut summaries, entries);
    }
    Ok(FoundTraces {
        trace_ids: summaries.iter().map(|summary| summary.trace_id).collect(),
        total,
        total_exact,
        summaries,
    })
}

/// How many traces a count reads at most: [`TOTAL_CAP`] past the page.
fn count_cap(query: &TraceQuery) -> u64 {
    u64::try_from(query.offset.saturating_add(query.limit))
        .unwrap_or(u64::MAX)
        .saturating_add(TOTAL_CAP)
}

/// ` ORDER BY` in start order on the given columns.
fn plan_order(order: TraceOrder, start: &str, id: &str) -> String {
    if order == TraceOrder::Oldest {
        format!(" ORDER BY {start}, {id}")
    } else {
        format!(" ORDER BY {start} DESC, {id} DESC")
    }
}

/// The services that have the query's operation (the catalog may list
/// services whose spans are gone: their walks are empty).
async fn services_with_operation<DB>(
    pool: &Pool<DB>,
    query: &TraceQuery,
) -> Result<Vec<String>, StoreError>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Decode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut select =
        QueryBuilder::<DB>::new("SELECT DISTINCT service_name FROM operations WHERE operation = ");
    select.push_bind(query.operation.clone());
    let rows = select.build().fetch_all(pool).await?;
    let mut services = Vec::with_capacity(rows.len());
    for row in rows {
        services.push(row.try_get(0)?);
    }
    Ok(services)
}

/// ` FROM trace_summaries t WHERE t.trace_no IN (...)` over, per service,
/// the first `offset + limit` traces of (service, operation) in the window
/// and the query's order. The page's traces are among them: a trace has a
/// span of the operation in some service, and in that service's walk fewer
/// than `offset + limit` matching traces come before it.
fn push_operation_walks<DB>(builder: &mut QueryBuilder<DB>, query: &TraceQuery, services: &[String])
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    builder.push(" FROM trace_summaries t WHERE t.trace_no IN (");
    if services.is_empty() {
        builder.push("SELECT trace_no FROM trace_summaries WHERE 1 = 0");
    }
    let depth = i64::try_from(query.offset.saturating_add(query.limit)).unwrap_or(i64::MAX);
    for (index, service) in services.iter().enumerate() {
        if index > 0 {
            builder.push(" UNION ALL ");
        }
        // Each arm in its own subquery: SQLite allows ORDER BY and LIMIT
        // only on a whole compound SELECT otherwise.
        builder.push("SELECT trace_no FROM (SELECT o.trace_no FROM trace_operations o");
        if query.min_trace_duration_nano.is_some() || query.max_trace_duration_nano.is_some() {
            builder.push(" JOIN trace_summaries d ON d.trace_no = o.trace_no");
        }
        builder.push(" WHERE o.service_name = ");
        builder.push_bind(service.clone());
        builder.push(" AND o.operation = ");
        builder.push_bind(query.operation.clone());
        summary::push_window(builder, query, "o.trace_start", "d");
        builder.push(plan_order(query.order, "o.trace_start", "o.trace_no"));
        builder.push(" LIMIT ");
        builder.push_bind(depth);
        builder.push(") w");
    }
    builder.push(")");
}

/// The trace start and trace number columns of [`push_candidates`].
fn walk_columns(query: &TraceQuery) -> (&'static str, &'static str) {
    if query.service.is_some() {
        ("s.trace_start", "s.trace_no")
    } else {
        ("t.start_unix_nano", "t.trace_no")
    }
}

/// ` FROM ... WHERE ...`: the traces of the window that pass the query's
/// service, operation and trace-duration filters (through the service's
/// index when there is a service), before the span filters; columns
/// [`walk_columns`].
fn push_candidates<DB>(builder: &mut QueryBuilder<DB>, query: &TraceQuery)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    if query.service.is_some() {
        let table = if query.operation.is_some() {
            "trace_operations"
        } else {
            "trace_services"
        };
        builder.push(format_args!(
            " FROM {table} s JOIN trace_summaries t ON t.trace_no = s.trace_no WHERE s.service_name = "
        ));
        builder.push_bind(query.service.clone());
        if query.operation.is_some() {
            builder.push(" AND s.operation = ");
            builder.push_bind(query.operation.clone());
        }
    } else {
        builder.push(" FROM trace_summaries t WHERE 1 = 1");
    }
    summary::push_window(builder, query, walk_columns(query).0, "t");
}

/// `EXISTS (...)`: the trace numbered by column `id` has a span that passes
/// the query's span filters.
fn push_span_exists<DB>(
    builder: &mut QueryBuilder<DB>,
    query: &TraceQuery,
    id: &str,
    span_filters: SpanFilters<DB>,
) where
    DB: Database,
{
    builder.push(format_args!(
        " EXISTS (SELECT 1 FROM spans WHERE spans.trace_no = {id}"
    ));
    span_filters(builder, query);
    builder.push(")");
}

/// ` FROM ... WHERE ... ORDER BY ...` walking the traces of the window in
/// start order (through the service's index when there is a service) with
/// an `EXISTS` over each candidate's spans.
fn push_span_walk<DB>(
    builder: &mut QueryBuilder<DB>,
    query: &TraceQuery,
    span_filters: SpanFilters<DB>,
) where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    let (start, id) = walk_columns(query);
    push_candidates(builder, query);
    builder.push(" AND");
    push_span_exists(builder, query, id, span_filters);
    builder.push(plan_order(query.order, start, id));
}
