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
//! Pages in other orders (duration, span count) take the newest candidate
//! traces of the window (the same walk as a start-order page,
//! materialized): with span filters the newest [`SPAN_CHECK_CAP`], each
//! checked for a matching span, and sort the matching ones; without, the
//! newest [`SORT_CAP`], and sort them all. When the window holds more
//! candidates than that, the page says so ([`FoundTraces::order_exact`]):
//! older matching traces may be missing from it. Reading every matching
//! trace to sort them took 4.4 s at 10 M spans on SQLite with a tag (an
//! `EXISTS` per trace of the window), 61 ms at 1 M without; bounded, it
//! costs what the count costs, whatever the window holds. A walk in
//! duration order over an index on `trace_summaries (duration_nano)`
//! would be exact, but it costs every write (the summary's duration
//! changes with each batch of the trace, and lands on a random leaf), it
//! still reads the traces outside the window and the non-matching ones,
//! and Jaeger's own UI sorts only the traces a search returned.
//!
//! The `total` is counted only when asked ([`TraceQuery::count_total`]) and
//! the page cannot prove it: only up to [`TOTAL_CAP`] traces past the page;
//! with span filters, by checking at most [`SPAN_CHECK_CAP`] candidate
//! traces past the page, newest first, for a matching span (the matches
//! among them are a lower bound when the walk stops there), or, in the
//! other orders, as the matches among the candidates the order covers.

use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder, Row, Type,
};

use super::summary::{self, SUMMARY_COLUMNS, SearchPlan, SummaryRow};
use super::{
    FoundTraces, SORT_CAP, SPAN_CHECK_CAP, StoreError, TOTAL_CAP, TraceId, TraceOrder, TraceQuery,
};

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
    // Other orders sort the newest `sort_cap` candidates, checked for a
    // matching span when a span filter (or an operation without a service,
    // which the candidates of `trace_summaries` do not carry) must hold.
    let sorted_walk = !walk;
    let check_spans = plan.span_filter || plan.operation_only;
    let sort_cap = if check_spans {
        SPAN_CHECK_CAP
    } else {
        SORT_CAP
    };
    let mut page = if sorted_walk {
        checked_sort(query, check_spans.then_some(span_filters), sort_cap)
    } else {
        // A start order: a walk that stops at the page.
        let mut page = QueryBuilder::<DB>::new(SUMMARY_COLUMNS);
        if plan.operation_only {
            let services = services_with_operation(pool, query).await?;
            push_operation_walks(&mut page, query, &services);
            page.push(plan_order(query.order, "t.start_unix_nano", "t.trace_no"));
        } else if plan.span_filter {
            push_span_walk(&mut page, query, span_filters);
        } else {
            plan.push_filters(&mut page, query, false);
            let (start, id) = plan.columns();
            page.push(plan_order(query.order, start, id));
        }
        push_page(&mut page, query);
        page
    };
    let rows = page.build().fetch_all(pool).await?;
    let mut summaries = Vec::with_capacity(rows.len());
    let mut trace_nos: Vec<i64> = Vec::with_capacity(rows.len());
    // With `sorted_walk`: how many candidates the walk checked, and how many
    // of them have a matching span.
    let mut checked_walk: Option<(u64, u64)> = None;
    for row in rows {
        if sorted_walk {
            let checked = u64::try_from(row.try_get::<i64, _>(8)?).unwrap_or(0);
            let matched = u64::try_from(row.try_get::<i64, _>(9)?).unwrap_or(0);
            checked_walk = Some((checked, matched));
            // The one row of an empty page carries only the counts.
            if row.try_get::<Option<Vec<u8>>, _>(0)?.is_none() {
                continue;
            }
        }
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
    // The walk stopped at the cap: older candidates were not checked.
    let walk_capped = checked_walk.is_some_and(|(checked, _)| checked >= sort_cap);
    // At least this many match: the page and what it skipped.
    let proven = match summaries.len() {
        0 => 0,
        len => u64::try_from(query.offset + len).unwrap_or(u64::MAX),
    };
    let (total, total_exact) = match summary::total_from_page(query, summaries.len()) {
        // A short page proves the total, unless its walk stopped at the cap.
        Some(total) if !walk_capped => (total, true),
        // Not asked: what the page proves.
        _ if !query.count_total => (proven, false),
        // The matches among the candidates the order covers.
        _ if sorted_walk => {
            let (_, matched) = checked_walk.unwrap_or((0, 0));
            (matched.max(proven), !walk_capped)
        }
        None if plan.span_filter => {
            // Checks at most `cap` candidate traces (newest first) for a
            // matching span: a count over the span filters' `IN` list read
            // every span of the window (4.9 s at 10 M spans on SQLite).
            let cap = count_cap(query, SPAN_CHECK_CAP);
            let mut count =
                QueryBuilder::<DB>::new("SELECT COUNT(*), COALESCE(SUM(m), 0) FROM (SELECT");
            push_checked_walk(&mut count, query, Some(span_filters), cap);
            count.push(") checked");
            let row = count.build().fetch_one(pool).await?;
            let checked = u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
            let matched = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
            if checked < cap {
                (matched, true)
            } else {
                (matched.max(proven), false)
            }
        }
        _ => {
            // Counts at most `cap` traces: an index range stops there.
            let cap = count_cap(query, TOTAL_CAP);
            let mut count = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM (SELECT 1");
            plan.push_filters(&mut count, query, true);
            count.push(" LIMIT ");
            count.push_bind(i64::try_from(cap).unwrap_or(i64::MAX));
            count.push(") counted");
            let total: i64 = count.build().fetch_one(pool).await?.try_get(0)?;
            let total = u64::try_from(total).unwrap_or(0);
            (total, total < cap)
        }
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
        order_exact: !walk_capped,
        summaries,
    })
}

/// ` LIMIT ... OFFSET ...` of the query's page.
fn push_page<DB>(builder: &mut QueryBuilder<DB>, query: &TraceQuery)
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    builder.push(" LIMIT ");
    builder.push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
    builder.push(" OFFSET ");
    builder.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
}

/// How many traces a count reads at most: `cap` past the page.
fn count_cap(query: &TraceQuery, cap: u64) -> u64 {
    u64::try_from(query.offset.saturating_add(query.limit))
        .unwrap_or(u64::MAX)
        .saturating_add(cap)
}

/// A page in an order other than by start: the newest `cap` candidates of
/// the window are checked for a matching span once (materialized; all
/// match without span filters), the matching ones sorted and paged.
/// Columns: [`SUMMARY_COLUMNS`] (all NULL on the one row of an empty page),
/// then how many candidates were checked and how many matched.
fn checked_sort<DB>(
    query: &TraceQuery,
    span_filters: Option<SpanFilters<DB>>,
    cap: u64,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    let (_, id) = walk_columns(query);
    let mut builder = QueryBuilder::<DB>::new(format!(
        "WITH walk AS MATERIALIZED (SELECT {id} AS trace_no,"
    ));
    push_checked_walk(&mut builder, query, span_filters, cap);
    builder.push(
        ") SELECT p.trace_id, p.start_unix_nano, p.duration_nano, CAST(p.span_count AS BIGINT), \
         CAST(p.error_count AS BIGINT), p.root_service, p.root_operation, p.trace_no, \
         a.checked, a.matched \
         FROM (SELECT COUNT(*) AS checked, COALESCE(SUM(m), 0) AS matched FROM walk) a \
         LEFT JOIN (SELECT t.trace_id, t.start_unix_nano, t.duration_nano, t.span_count, \
         t.error_count, t.root_service, t.root_operation, t.trace_no \
         FROM walk w JOIN trace_summaries t ON t.trace_no = w.trace_no WHERE w.m = 1",
    );
    builder.push(sort_order(query.order, "t"));
    push_page(&mut builder, query);
    builder.push(") p ON 1 = 1");
    builder.push(sort_order(query.order, "p"));
    builder
}

/// ` ORDER BY` for `order` on the `trace_summaries` columns of `table`
/// (ties: newest start, then trace number, as [`SearchPlan::order_by`]).
fn sort_order(order: TraceOrder, table: &str) -> String {
    let key = match order {
        TraceOrder::Newest | TraceOrder::Oldest => {
            return plan_order(
                order,
                &format!("{table}.start_unix_nano"),
                &format!("{table}.trace_no"),
            );
        }
        TraceOrder::Longest => format!("{table}.duration_nano DESC"),
        TraceOrder::Shortest => format!("{table}.duration_nano"),
        TraceOrder::MostSpans => format!("{table}.span_count DESC"),
    };
    format!(" ORDER BY {key}, {table}.start_unix_nano DESC, {table}.trace_no DESC")
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
/// [`walk_columns`], and `t` (`trace_summaries`) when `summaries` (a walk
/// by service reads the summary only for trace-duration bounds otherwise).
fn push_candidates<DB>(builder: &mut QueryBuilder<DB>, query: &TraceQuery, summaries: bool)
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
        let trace_durations =
            query.min_trace_duration_nano.is_some() || query.max_trace_duration_nano.is_some();
        builder.push(format_args!(" FROM {table} s"));
        if summaries || trace_durations {
            builder.push(" JOIN trace_summaries t ON t.trace_no = s.trace_no");
        }
        builder.push(" WHERE s.service_name = ");
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

/// ` CASE WHEN EXISTS (...) THEN 1 ELSE 0 END AS m FROM ... ORDER BY ...
/// LIMIT cap`: the first `cap` candidate traces of the window, newest first,
/// each with `m` = 1 when it has a span that passes the span filters (`1 AS
/// m` without span filters; the bounded walk of the count and of the orders
/// that are not start orders).
fn push_checked_walk<DB>(
    builder: &mut QueryBuilder<DB>,
    query: &TraceQuery,
    span_filters: Option<SpanFilters<DB>>,
    cap: u64,
) where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
{
    let (start, id) = walk_columns(query);
    match span_filters {
        Some(span_filters) => {
            builder.push(" CASE WHEN");
            push_span_exists(builder, query, id, span_filters);
            builder.push(" THEN 1 ELSE 0 END AS m");
        }
        None => {
            builder.push(" 1 AS m");
        }
    }
    push_candidates(builder, query, false);
    builder.push(plan_order(TraceOrder::Newest, start, id));
    builder.push(" LIMIT ");
    builder.push_bind(i64::try_from(cap).unwrap_or(i64::MAX));
}

/// `EXISTS (...)`: the trace numbered by column `id` has a span that passes
/// the query's span filters, probed per candidate through the trace's
/// spans. `OFFSET 0` keeps PostgreSQL from planning the `EXISTS` as a hash
/// of every matching span of the store (it read all 125,000 spans of the
/// service at 1 M spans, whatever the walk's bound).
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
    builder.push(" LIMIT 1 OFFSET 0)");
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
    push_candidates(builder, query, true);
    builder.push(" AND");
    push_span_exists(builder, query, id, span_filters);
    builder.push(plan_order(query.order, start, id));
}
