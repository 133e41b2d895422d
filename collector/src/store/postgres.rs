//! The PostgreSQL backend: the same contract as SQLite, for collectors that
//! run as stateless replicas in front of one database.
//!
//! JSON columns are `jsonb`; values travel as text and are cast in SQL.
//! Add `options[search_path]=SCHEMA` to the URL to keep the tables in a schema
//! of their own (the tests do).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::links::{
    LinkChanges, LinkSpan, LinkView, effective_changes, link_span, links_touching, lock_key,
    minute, spans_to_insert,
};
use super::row::{
    PointColumns, SpanValues, from_json, labels_json, order_by_request, span_row, to_json,
    unique_ids,
};
use super::row::{operation_rows, peer_service};
use super::search;
use super::summary::{self, StoredTrace, TraceDelta, summary_trace_id};
use super::{
    DependencyLink, FoundTraces, MetricSeries, NumberPoint, Operation, SeriesWindow, Span,
    SpanKind, Store, StoreError, Temporality, TraceId, TraceQuery, migrate,
};

mod metrics;
mod statistics;

const MAX_CONNECTIONS: u32 = 8;

/// Settings of every session of the store (startup parameters, after any
/// the URL sets). Its statements are index walks that stop at a page or a
/// batch's rows, whose cost estimates on large tables still cross the
/// thresholds of JIT compilation (tens of milliseconds to compile) and of
/// parallel workers (a worker process to start per query): at 1 M spans a
/// service + tag search took 39–62 ms with them and 9–13 ms without, on
/// this 2-core machine (BENCHMARKS.md).
const SESSION_SETTINGS: [(&str, &str); 2] =
    [("jit", "off"), ("max_parallel_workers_per_gather", "0")];

const INSERT_OPERATIONS: &str = "INSERT INTO operations (service_name, operation, kind) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[]) ON CONFLICT DO NOTHING";
const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, service_name, service_version, \
     operation, kind, start_unix_nano, duration_nano, status_code, status_message, trace_state, \
     flags, attributes::text AS attributes, events::text AS events, links::text AS links, \
     resource::text AS resource, scope::text AS scope";
const INSERT_SERIES: &str = "INSERT INTO metric_series \
     (name, labels, resource, kind, temporality, monotonic, unit) \
     VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) ON CONFLICT (name, labels) DO NOTHING RETURNING id";
const SELECT_SERIES: &str = "SELECT id FROM metric_series WHERE name = $1 AND labels = $2";
const INSERT_POINT: &str = "INSERT INTO metric_points (series_id, time_unix_nano, \
     start_unix_nano, value, count, sum, bucket_counts, explicit_bounds) \
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb) \
     ON CONFLICT (series_id, time_unix_nano) DO NOTHING";
const SELECT_SERVICES: &str = "SELECT DISTINCT service_name FROM operations ORDER BY service_name";
const SELECT_OPERATIONS: &str =
    "SELECT DISTINCT operation FROM operations WHERE service_name = $1 ORDER BY operation";
const SELECT_WINDOW_POINTS: &str = "SELECT s.id, s.labels, s.temporality, p.time_unix_nano, \
     p.start_unix_nano, p.value FROM metric_series s \
     JOIN metric_points p ON p.series_id = s.id \
     WHERE s.name = $1 AND p.time_unix_nano > $2 AND p.time_unix_nano <= $3 \
     AND p.value IS NOT NULL ORDER BY s.id, p.time_unix_nano";
const SELECT_BASELINES: &str = "SELECT b.series_id, b.time_unix_nano, b.start_unix_nano, b.value \
     FROM metric_series s CROSS JOIN LATERAL (SELECT p.series_id, p.time_unix_nano, \
         p.start_unix_nano, p.value FROM metric_points p \
         WHERE p.series_id = s.id AND p.time_unix_nano <= $2 AND p.value IS NOT NULL \
         ORDER BY p.time_unix_nano DESC LIMIT 1) b \
     WHERE s.name = $1 AND EXISTS (SELECT 1 FROM metric_points r WHERE r.series_id = s.id \
         AND r.time_unix_nano > $2 AND r.time_unix_nano <= $3)";

const INSERT_REMOTE_SERVICES: &str = "INSERT INTO remote_services (service_name, remote_service) \
     SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING";
const SELECT_OPERATION_KINDS: &str = "SELECT operation, kind FROM operations \
     WHERE service_name = $1 AND ($2::integer IS NULL OR kind = $2) ORDER BY operation, kind";
const SELECT_REMOTE_SERVICES: &str = "SELECT remote_service FROM remote_services \
     WHERE service_name = $1 ORDER BY remote_service";
const SELECT_DEPENDENCIES: &str = "SELECT parent, child, SUM(calls)::bigint AS calls, \
     SUM(errors)::bigint AS errors FROM dependency_links WHERE minute >= $1 AND minute <= $2 \
     GROUP BY parent, child HAVING SUM(calls) > 0 ORDER BY parent, child";
/// Adds link changes (sorted by key: concurrent writers lock rows in one order).
const UPSERT_LINKS: &str = "INSERT INTO dependency_links AS l (minute, parent, child, calls, \
     errors) SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::int8[]) \
     ON CONFLICT (minute, parent, child) DO UPDATE SET \
     calls = l.calls + EXCLUDED.calls, errors = l.errors + EXCLUDED.errors";
const DELETE_EMPTY_LINKS: &str = "DELETE FROM dependency_links l \
     USING UNNEST($1::int8[], $2::text[], $3::text[]) AS u(minute, parent, child) \
     WHERE l.minute = u.minute AND l.parent = u.parent AND l.child = u.child AND l.calls <= 0";
/// Serializes the writes and deletes of the same traces across
/// transactions (and collector replicas), keys sorted.
const LOCK_TRACES: &str = "SELECT pg_advisory_xact_lock(k) FROM \
     (SELECT DISTINCT k FROM UNNEST($1::int8[]) AS u(k) ORDER BY k) AS keys";
const SELECT_LINK_SPANS: &str = "SELECT trace_id, span_id, parent_span_id, service_name, kind, \
     status_code, start_unix_nano FROM spans WHERE trace_no = ANY ($1)";
/// The number and start of the stored traces among the ids `$1`.
const SELECT_STORED_TRACES: &str = "SELECT trace_id, trace_no, start_unix_nano \
     FROM trace_summaries WHERE trace_id = ANY ($1)";
const DELETE_SPANS_BEFORE: &str = "DELETE FROM spans WHERE ctid = ANY (ARRAY(SELECT ctid \
     FROM spans WHERE start_unix_nano < $1 LIMIT $2)) RETURNING trace_id, span_id, parent_span_id, \
     service_name, kind, status_code, start_unix_nano, trace_no";
const DELETE_OLDEST_SPANS: &str = "DELETE FROM spans WHERE ctid = ANY (ARRAY(SELECT ctid \
     FROM spans ORDER BY start_unix_nano LIMIT $1)) RETURNING trace_id, span_id, parent_span_id, \
     service_name, kind, status_code, start_unix_nano, trace_no";

/// Merges a batch's share of trace summaries into the stored ones (one row
/// per trace, sorted by trace id: concurrent writers lock in one order);
/// returns each trace's number (a new trace gets the next of the sequence).
const UPSERT_SUMMARIES: &str = "INSERT INTO trace_summaries AS t (trace_id, start_unix_nano, \
     end_unix_nano, duration_nano, span_count, error_count, root_service, root_operation) \
     SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::int8[], $5::int4[], \
     $6::int4[], $7::text[], $8::text[]) \
     ON CONFLICT (trace_id) DO UPDATE SET \
     start_unix_nano = LEAST(t.start_unix_nano, EXCLUDED.start_unix_nano), \
     end_unix_nano = GREATEST(t.end_unix_nano, EXCLUDED.end_unix_nano), \
     duration_nano = GREATEST(t.end_unix_nano, EXCLUDED.end_unix_nano) \
         - LEAST(t.start_unix_nano, EXCLUDED.start_unix_nano), \
     span_count = t.span_count + EXCLUDED.span_count, \
     error_count = t.error_count + EXCLUDED.error_count, \
     root_service = COALESCE(t.root_service, EXCLUDED.root_service), \
     root_operation = CASE WHEN t.root_service IS NULL THEN EXCLUDED.root_operation \
         ELSE t.root_operation END \
     RETURNING trace_id, trace_no, start_unix_nano, span_count";
const UPSERT_TRACE_SERVICES: &str = "INSERT INTO trace_services AS s (trace_no, service_name, \
     span_count, trace_start) \
     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int4[], $4::int8[]) \
     ON CONFLICT (trace_no, service_name) DO UPDATE SET \
     span_count = s.span_count + EXCLUDED.span_count, trace_start = EXCLUDED.trace_start";
const UPSERT_TRACE_OPERATIONS: &str = "INSERT INTO trace_operations AS o (trace_no, \
     service_name, operation, trace_start) \
     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[]) \
     ON CONFLICT (trace_no, service_name, operation) DO UPDATE SET \
     trace_start = EXCLUDED.trace_start WHERE o.trace_start <> EXCLUDED.trace_start";
/// Traces whose start moved earlier: rows of services and operations the
/// batch did not touch still carry the old start.
const UPDATE_TRACE_STARTS: [&str; 2] = [
    "UPDATE trace_services s SET trace_start = u.start \
     FROM UNNEST($1::int8[], $2::int8[]) AS u(trace_no, start) \
     WHERE s.trace_no = u.trace_no AND s.trace_start <> u.start",
    "UPDATE trace_operations o SET trace_start = u.start \
     FROM UNNEST($1::int8[], $2::int8[]) AS u(trace_no, start) \
     WHERE o.trace_no = u.trace_no AND o.trace_start <> u.start",
];
/// Recomputes the summaries of the traces numbered `$1` from their
/// remaining spans, keeping their numbers.
const REFRESH_SUMMARIES: [&str; 7] = [
    "DELETE FROM trace_services WHERE trace_no = ANY ($1)",
    "DELETE FROM trace_operations WHERE trace_no = ANY ($1)",
    "DELETE FROM trace_summaries WHERE trace_no = ANY ($1)",
    "INSERT INTO trace_summaries (trace_no, trace_id, start_unix_nano, end_unix_nano, \
     duration_nano, span_count, error_count) \
     SELECT trace_no, trace_id, MIN(start_unix_nano), MAX(start_unix_nano + duration_nano), \
     MAX(start_unix_nano + duration_nano) - MIN(start_unix_nano), COUNT(*), \
     SUM(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) FROM spans WHERE trace_no = ANY ($1) \
     GROUP BY trace_no, trace_id",
    "UPDATE trace_summaries SET (root_service, root_operation) = \
     (SELECT s.service_name, s.operation FROM spans s \
     WHERE s.trace_no = trace_summaries.trace_no AND s.parent_span_id IS NULL \
     ORDER BY s.start_unix_nano, s.span_id LIMIT 1) WHERE trace_no = ANY ($1)",
    "INSERT INTO trace_services (trace_no, service_name, span_count, trace_start) \
     SELECT s.trace_no, s.service_name, COUNT(*), MIN(t.start_unix_nano) \
     FROM spans s JOIN trace_summaries t ON t.trace_no = s.trace_no \
     WHERE s.trace_no = ANY ($1) GROUP BY s.trace_no, s.service_name",
    "INSERT INTO trace_operations (trace_no, service_name, operation, trace_start) \
     SELECT s.trace_no, s.service_name, s.operation, MIN(t.start_unix_nano) \
     FROM spans s JOIN trace_summaries t ON t.trace_no = s.trace_no \
     WHERE s.trace_no = ANY ($1) GROUP BY s.trace_no, s.service_name, s.operation",
];
const PRUNE_OPERATIONS: &str = "DELETE FROM operations o WHERE NOT EXISTS (SELECT 1 FROM spans s \
     WHERE s.service_name = o.service_name AND s.operation = o.operation AND s.kind = o.kind)";
/// Remote services are listed while their service has spans.
const PRUNE_REMOTE_SERVICES: &str = "DELETE FROM remote_services r WHERE NOT EXISTS \
     (SELECT 1 FROM operations o WHERE o.service_name = r.service_name)";

/// A batch of spans as one array per column (`UNNEST` binds), borrowing
/// the rows' values: the shared names and JSON of a batch are bound
/// without a copy per span.
#[derive(Default)]
struct SpanColumns<'a> {
    trace_id: Vec<&'a [u8]>,
    span_id: Vec<&'a [u8]>,
    parent_span_id: Vec<Option<&'a [u8]>>,
    service_name: Vec<&'a str>,
    service_version: Vec<Option<&'a str>>,
    operation: Vec<&'a str>,
    kind: Vec<i32>,
    start_unix_nano: Vec<i64>,
    duration_nano: Vec<i64>,
    status_code: Vec<i32>,
    status_message: Vec<&'a str>,
    trace_state: Vec<&'a str>,
    flags: Vec<i64>,
    attributes: Vec<&'a str>,
    events: Vec<&'a str>,
    links: Vec<&'a str>,
    resource: Vec<&'a str>,
    scope: Vec<&'a str>,
    trace_no: Vec<i64>,
}

impl<'a> SpanColumns<'a> {
    /// The columns of `rows`, each with its trace's number.
    fn new(rows: impl Iterator<Item = (&'a SpanValues, i64)>) -> Self {
        let mut columns = Self::default();
        for (row, trace_no) in rows {
            columns.trace_no.push(trace_no);
            columns.trace_id.push(&row.trace_id);
            columns.span_id.push(&row.span_id);
            columns.parent_span_id.push(row.parent_span_id.as_deref());
            columns.service_name.push(&row.service_name);
            columns.service_version.push(row.service_version.as_deref());
            columns.operation.push(&row.operation);
            columns.kind.push(row.kind);
            columns.start_unix_nano.push(row.start_unix_nano);
            columns.duration_nano.push(row.duration_nano);
            columns.status_code.push(row.status_code);
            columns.status_message.push(&row.status_message);
            columns.trace_state.push(&row.trace_state);
            columns.flags.push(row.flags);
            columns.attributes.push(&row.attributes);
            columns.events.push(&row.events);
            columns.links.push(&row.links);
            columns.resource.push(&row.resource);
            columns.scope.push(&row.scope);
        }
        columns
    }
}

/// Inserts a whole batch in one statement. No `ON CONFLICT`: the spans
/// already stored are filtered out before, under the traces' advisory locks
/// (a conflict would be a bug, and fails the transaction).
const INSERT_SPANS_UNNEST: &str = "INSERT INTO spans (trace_id, span_id, parent_span_id, \
     service_name, service_version, operation, kind, start_unix_nano, duration_nano, \
     status_code, status_message, trace_state, flags, attributes, events, links, resource, scope, \
     trace_no) \
     SELECT u.trace_id, u.span_id, u.parent_span_id, u.service_name, u.service_version, \
     u.operation, u.kind, u.start_unix_nano, u.duration_nano, u.status_code, u.status_message, \
     u.trace_state, u.flags, u.attributes::jsonb, u.events::jsonb, u.links::jsonb, \
     u.resource::jsonb, u.scope::jsonb, u.trace_no \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::text[], $5::text[], $6::text[], \
     $7::int4[], $8::int8[], $9::int8[], $10::int4[], $11::text[], $12::text[], $13::int8[], \
     $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::int8[]) \
     AS u(trace_id, span_id, parent_span_id, service_name, service_version, operation, kind, \
     start_unix_nano, duration_nano, status_code, status_message, trace_state, flags, \
     attributes, events, links, resource, scope, trace_no)";

/// Merges the deltas of a batch into `trace_summaries`, `trace_services` and
/// `trace_operations`; returns the number of every trace of `deltas`.
async fn write_summaries(
    tx: &mut sqlx::PgConnection,
    deltas: &[TraceDelta<'_>],
) -> Result<HashMap<TraceId, i64>, StoreError> {
    if deltas.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Vec<u8>> = deltas.iter().map(|d| d.trace_id.0.to_vec()).collect();
    let returned = sqlx::query(UPSERT_SUMMARIES)
        .bind(&ids)
        .bind(deltas.iter().map(|d| d.start_unix_nano).collect::<Vec<_>>())
        .bind(deltas.iter().map(|d| d.end_unix_nano).collect::<Vec<_>>())
        .bind(
            deltas
                .iter()
                .map(TraceDelta::duration_nano)
                .collect::<Vec<_>>(),
        )
        .bind(deltas.iter().map(|d| d.span_count).collect::<Vec<_>>())
        .bind(deltas.iter().map(|d| d.error_count).collect::<Vec<_>>())
        .bind(
            deltas
                .iter()
                .map(TraceDelta::root_service)
                .collect::<Vec<_>>(),
        )
        .bind(
            deltas
                .iter()
                .map(TraceDelta::root_operation)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
    // trace id → (number, stored start, stored span count) after the merge.
    let mut merged: HashMap<TraceId, (i64, i64, i32)> = HashMap::with_capacity(returned.len());
    for row in returned {
        merged.insert(
            summary_trace_id(&row.try_get::<Vec<u8>, _>(0)?)?,
            (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
        );
    }
    let mut service_ids = Vec::new();
    let mut service_names = Vec::new();
    let mut service_counts = Vec::new();
    let mut service_starts = Vec::new();
    let mut operation_ids = Vec::new();
    let mut operation_services = Vec::new();
    let mut operation_names = Vec::new();
    let mut operation_starts = Vec::new();
    let mut moved_ids = Vec::new();
    let mut moved_starts = Vec::new();
    for delta in deltas {
        let (number, start, count) = merged.get(&delta.trace_id).copied().ok_or_else(|| {
            StoreError::Corrupt("a trace summary upsert returned no trace_no".to_owned())
        })?;
        for (service, spans) in &delta.services {
            service_ids.push(number);
            service_names.push(*service);
            service_counts.push(*spans);
            service_starts.push(start);
        }
        for (service, operation) in &delta.operations {
            operation_ids.push(number);
            operation_services.push(*service);
            operation_names.push(*operation);
            operation_starts.push(start);
        }
        if count > delta.span_count {
            moved_ids.push(number);
            moved_starts.push(start);
        }
    }
    sqlx::query(UPSERT_TRACE_SERVICES)
        .bind(service_ids)
        .bind(service_names)
        .bind(service_counts)
        .bind(service_starts)
        .execute(&mut *tx)
        .await?;
    sqlx::query(UPSERT_TRACE_OPERATIONS)
        .bind(operation_ids)
        .bind(operation_services)
        .bind(operation_names)
        .bind(operation_starts)
        .execute(&mut *tx)
        .await?;
    if !moved_ids.is_empty() {
        for sql in UPDATE_TRACE_STARTS {
            sqlx::query(sql)
                .bind(&moved_ids)
                .bind(&moved_starts)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(merged
        .into_iter()
        .map(|(trace_id, (number, _, _))| (trace_id, number))
        .collect())
}

/// Spans and metrics in a PostgreSQL database.
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` and runs the migrations. The sessions run with
    /// [`SESSION_SETTINGS`].
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.options(SESSION_SETTINGS);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        if let Err(error) = migrate::postgres().run(&pool).await {
            pool.close().await;
            return Err(error.into());
        }
        Ok(Self { pool })
    }
}

fn push_span_filters(builder: &mut QueryBuilder<Postgres>, query: &TraceQuery) {
    if let Some(service) = &query.service {
        builder.push(" AND service_name = ");
        builder.push_bind(service.clone());
    }
    if let Some(operation) = &query.operation {
        builder.push(" AND operation = ");
        builder.push_bind(operation.clone());
    }
    if let Some(min) = query.min_duration_nano {
        builder.push(" AND duration_nano >= ");
        builder.push_bind(min);
    }
    if let Some(max) = query.max_duration_nano {
        builder.push(" AND duration_nano <= ");
        builder.push_bind(max);
    }
    for (key, value) in &query.tags {
        builder.push(" AND (spans.attributes ->> ");
        builder.push_bind(key.clone());
        builder.push(" = ");
        builder.push_bind(value.clone());
        builder.push(" OR spans.resource ->> ");
        builder.push_bind(key.clone());
        builder.push(" = ");
        builder.push_bind(value.clone());
        builder.push(")");
    }
}

/// Takes the advisory locks of `trace_ids` (see [`LOCK_TRACES`]).
async fn lock_traces(tx: &mut sqlx::PgConnection, trace_ids: &[&[u8]]) -> Result<(), StoreError> {
    let keys: Vec<i64> = trace_ids.iter().map(|id| lock_key(id)).collect();
    sqlx::query(LOCK_TRACES)
        .bind(keys)
        .fetch_all(&mut *tx)
        .await?;
    Ok(())
}

/// The stored traces among `trace_ids` (through `trace_summaries`' primary
/// key, the one index keyed by the trace id).
async fn stored_traces(
    tx: &mut sqlx::PgConnection,
    trace_ids: &[&[u8]],
) -> Result<HashMap<TraceId, StoredTrace>, StoreError> {
    let mut stored = HashMap::new();
    for row in sqlx::query(SELECT_STORED_TRACES)
        .bind(trace_ids)
        .fetch_all(&mut *tx)
        .await?
    {
        let (trace_id, trace) = summary::stored_trace(&row)?;
        stored.insert(trace_id, trace);
    }
    Ok(stored)
}

/// The link columns of every stored span of the traces numbered `trace_nos`.
async fn link_spans(
    tx: &mut sqlx::PgConnection,
    trace_nos: &[i64],
) -> Result<Vec<LinkSpan>, StoreError> {
    let mut spans = Vec::new();
    if trace_nos.is_empty() {
        return Ok(spans);
    }
    for row in sqlx::query(SELECT_LINK_SPANS)
        .bind(trace_nos)
        .fetch_all(&mut *tx)
        .await?
    {
        spans.push(link_span!(row, i32));
    }
    Ok(spans)
}

/// Adds `changes` to `dependency_links`, dropping rows left without calls.
async fn apply_link_changes(
    tx: &mut sqlx::PgConnection,
    changes: &LinkChanges,
) -> Result<(), StoreError> {
    let changes = effective_changes(changes);
    if changes.is_empty() {
        return Ok(());
    }
    let minutes: Vec<i64> = changes.iter().map(|((minute, _, _), _)| *minute).collect();
    let parents: Vec<&str> = changes
        .iter()
        .map(|((_, parent, _), _)| parent.as_str())
        .collect();
    let children: Vec<&str> = changes
        .iter()
        .map(|((_, _, child), _)| child.as_str())
        .collect();
    sqlx::query(UPSERT_LINKS)
        .bind(&minutes)
        .bind(&parents)
        .bind(&children)
        .bind(
            changes
                .iter()
                .map(|(_, (calls, _))| *calls)
                .collect::<Vec<_>>(),
        )
        .bind(
            changes
                .iter()
                .map(|(_, (_, errors))| *errors)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    if changes.iter().any(|(_, (calls, _))| *calls < 0) {
        sqlx::query(DELETE_EMPTY_LINKS)
            .bind(&minutes)
            .bind(&parents)
            .bind(&children)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Deletes spans with `query` (which returns their link columns) and
/// refreshes the summaries and links of their traces, in one transaction.
async fn delete_spans(
    pool: &PgPool,
    query: sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments>,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = query.fetch_all(&mut *tx).await?;
    let deleted = u64::try_from(rows.len()).unwrap_or(u64::MAX);
    let mut gone = Vec::with_capacity(rows.len());
    let mut trace_nos = Vec::with_capacity(rows.len());
    for row in rows {
        gone.push(link_span!(row, i32));
        trace_nos.push(row.try_get::<i64, _>(7)?);
    }
    let mut trace_ids: Vec<Vec<u8>> = gone.iter().map(|span| span.trace_id.clone()).collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    trace_nos.sort_unstable();
    trace_nos.dedup();
    if !trace_ids.is_empty() {
        for sql in REFRESH_SUMMARIES {
            sqlx::query(sql).bind(&trace_nos).execute(&mut *tx).await?;
        }
        // The pairs that lose a span, among the deleted and remaining spans
        // (after the writers of these traces, which may have counted a pair
        // with a span deleted here, committed).
        let ids: Vec<&[u8]> = trace_ids.iter().map(Vec::as_slice).collect();
        lock_traces(&mut tx, &ids).await?;
        let remaining = link_spans(&mut tx, &trace_nos).await?;
        let gone_count = gone.len();
        let mut all = gone;
        all.extend(remaining);
        let views: Vec<LinkView<'_>> = all.iter().map(LinkSpan::view).collect();
        let mut changes = LinkChanges::new();
        links_touching(&views, gone_count, -1, &mut changes);
        apply_link_changes(&mut tx, &changes).await?;
    }
    tx.commit().await?;
    Ok(deleted)
}

fn number_point(row: &PgRow) -> Result<NumberPoint, sqlx::Error> {
    Ok(NumberPoint {
        time_unix_nano: row.try_get("time_unix_nano")?,
        start_unix_nano: row.try_get("start_unix_nano")?,
        value: row.try_get("value")?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn write_spans(&self, spans: &[Span]) -> Result<(), StoreError> {
        if spans.is_empty() {
            return Ok(());
        }
        let rows = SpanValues::from_spans(spans)?;
        let mut tx = self.pool.begin().await?;
        // Writers of the same traces one after the other: the later one sees
        // the spans of the earlier one and counts the links they complete.
        let mut trace_ids: Vec<&[u8]> = spans
            .iter()
            .map(|span| span.trace_id.0.as_slice())
            .collect();
        trace_ids.sort_unstable();
        trace_ids.dedup();
        lock_traces(&mut tx, &trace_ids).await?;
        // What is stored of the batch's traces before this batch (usually
        // nothing): their numbers, and the spans the new ones are not and
        // complete links with.
        let known = stored_traces(&mut tx, &trace_ids).await?;
        let known_nos: Vec<i64> = known.values().map(|trace| trace.trace_no).collect();
        let stored = link_spans(&mut tx, &known_nos).await?;
        let new = spans_to_insert(
            spans.iter().map(|span| (span.trace_id, span.span_id)),
            &stored,
        );
        // Only spans actually stored name operations and remote services (a
        // retried duplicate with another name must not add one).
        let mut operations = HashSet::new();
        let mut remotes = HashSet::new();
        let mut inserted = Vec::with_capacity(new.len());
        for &index in &new {
            let span = &spans[index];
            inserted.push(span);
            operations.insert((
                span.service_name.as_str(),
                span.operation.as_str(),
                span.kind.as_i32(),
            ));
            if let Some(remote) = peer_service(span) {
                remotes.insert((span.service_name.as_str(), remote));
            }
        }
        // Sorted, so that concurrent writers take row locks in one order;
        // one statement each (column arrays).
        let mut operations: Vec<_> = operations.into_iter().collect();
        operations.sort_unstable();
        if !operations.is_empty() {
            sqlx::query(INSERT_OPERATIONS)
                .bind(operations.iter().map(|op| op.0).collect::<Vec<_>>())
                .bind(operations.iter().map(|op| op.1).collect::<Vec<_>>())
                .bind(operations.iter().map(|op| op.2).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
        }
        let mut remotes: Vec<_> = remotes.into_iter().collect();
        remotes.sort_unstable();
        if !remotes.is_empty() {
            sqlx::query(INSERT_REMOTE_SERVICES)
                .bind(remotes.iter().map(|remote| remote.0).collect::<Vec<_>>())
                .bind(remotes.iter().map(|remote| remote.1).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
        }
        // The links the inserted spans complete, with the spans stored before
        // (the inserted spans first, then the others; none of them is one
        // of the inserted spans, which did not exist).
        let mut views: Vec<LinkView<'_>> =
            inserted.iter().map(|span| LinkView::from(*span)).collect();
        views.extend(stored.iter().map(LinkSpan::view));
        let mut changes = LinkChanges::new();
        links_touching(&views, inserted.len(), 1, &mut changes);
        // The summaries first: they number the new traces, and the spans are
        // stored with their trace's number (one statement for the whole
        // batch, a column array per column).
        let deltas = summary::trace_deltas(inserted.iter().copied());
        let numbers = write_summaries(&mut tx, &deltas).await?;
        let mut kept = Vec::with_capacity(new.len());
        for &index in &new {
            let number = numbers
                .get(&spans[index].trace_id)
                .copied()
                .ok_or_else(|| {
                    StoreError::Corrupt("an inserted span's trace has no trace_no".to_owned())
                })?;
            kept.push((&rows[index], number));
        }
        let columns = SpanColumns::new(kept.into_iter());
        sqlx::query(INSERT_SPANS_UNNEST)
            .bind(columns.trace_id)
            .bind(columns.span_id)
            .bind(columns.parent_span_id)
            .bind(columns.service_name)
            .bind(columns.service_version)
            .bind(columns.operation)
            .bind(columns.kind)
            .bind(columns.start_unix_nano)
            .bind(columns.duration_nano)
            .bind(columns.status_code)
            .bind(columns.status_message)
            .bind(columns.trace_state)
            .bind(columns.flags)
            .bind(columns.attributes)
            .bind(columns.events)
            .bind(columns.links)
            .bind(columns.resource)
            .bind(columns.scope)
            .bind(columns.trace_no)
            .execute(&mut *tx)
            .await?;
        // Last: the hottest rows (a few links per minute) stay locked the
        // shortest.
        apply_link_changes(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_metrics(&self, series: &[MetricSeries]) -> Result<(), StoreError> {
        if series.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for one in series {
            let labels = labels_json(&one.labels)?;
            let inserted: Option<i64> = sqlx::query_scalar(INSERT_SERIES)
                .bind(&one.name)
                .bind(&labels)
                .bind(to_json(&one.resource)?)
                .bind(one.kind.as_str())
                .bind(one.temporality.as_i32())
                .bind(one.monotonic)
                .bind(&one.unit)
                .fetch_optional(&mut *tx)
                .await?;
            let series_id = match inserted {
                Some(id) => {
                    metrics::index_series(&mut tx, id, one).await?;
                    id
                }
                None => {
                    sqlx::query_scalar(SELECT_SERIES)
                        .bind(&one.name)
                        .bind(&labels)
                        .fetch_one(&mut *tx)
                        .await?
                }
            };
            for point in &one.points {
                let columns = PointColumns::new(&point.value)?;
                sqlx::query(INSERT_POINT)
                    .bind(series_id)
                    .bind(point.time_unix_nano)
                    .bind(point.start_unix_nano)
                    .bind(columns.value)
                    .bind(columns.count)
                    .bind(columns.sum)
                    .bind(columns.bucket_counts)
                    .bind(columns.explicit_bounds)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(SELECT_SERVICES)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn operations(&self, service: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(SELECT_OPERATIONS)
            .bind(service)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        let trace_ids = unique_ids(trace_ids);
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder = QueryBuilder::<Postgres>::new(format!(
            "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_no IN \
             (SELECT trace_no FROM trace_summaries WHERE trace_id IN ("
        ));
        let mut separated = builder.separated(", ");
        for id in &trace_ids {
            separated.push_bind(id.0.to_vec());
        }
        builder.push("))");
        let rows = builder.build().fetch_all(&self.pool).await?;
        let mut spans = Vec::with_capacity(rows.len());
        for row in rows {
            spans.push(span_row!(row).into_span()?);
        }
        order_by_request(&trace_ids, &mut spans);
        super::row::reparent_under_shared(&mut spans);
        Ok(spans)
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<FoundTraces, StoreError> {
        search::find_traces(&self.pool, query, push_span_filters).await
    }

    async fn series_window(
        &self,
        name: &str,
        start_unix_nano: i64,
        end_unix_nano: i64,
    ) -> Result<Vec<SeriesWindow>, StoreError> {
        let rows = sqlx::query(SELECT_WINDOW_POINTS)
            .bind(name)
            .bind(start_unix_nano)
            .bind(end_unix_nano)
            .fetch_all(&self.pool)
            .await?;
        let mut windows: Vec<SeriesWindow> = Vec::new();
        let mut index_of: HashMap<i64, usize> = HashMap::new();
        for row in rows {
            let series_id: i64 = row.try_get("id")?;
            let point = number_point(&row)?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].points.push(point);
                continue;
            }
            let labels: String = row.try_get("labels")?;
            let temporality: i32 = row.try_get("temporality")?;
            index_of.insert(series_id, windows.len());
            windows.push(SeriesWindow {
                labels: from_json(&labels, "labels")?,
                temporality: Temporality::from_i32(temporality).unwrap_or(Temporality::Unspecified),
                baseline: None,
                points: vec![point],
            });
        }
        if windows.is_empty() {
            return Ok(windows);
        }
        let baselines = sqlx::query(SELECT_BASELINES)
            .bind(name)
            .bind(start_unix_nano)
            .bind(end_unix_nano)
            .fetch_all(&self.pool)
            .await?;
        for row in baselines {
            let series_id: i64 = row.try_get("series_id")?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].baseline = Some(number_point(&row)?);
            }
        }
        Ok(windows)
    }

    async fn operation_kinds(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let rows = sqlx::query(SELECT_OPERATION_KINDS)
            .bind(service)
            .bind(kind.map(SpanKind::as_i32))
            .fetch_all(&self.pool)
            .await?;
        operation_rows(rows.iter().map(|row| (row.try_get(0), row.try_get(1))))
    }

    async fn remote_services(&self, service: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(SELECT_REMOTE_SERVICES)
            .bind(service)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn dependencies(
        &self,
        start_unix_nano: i64,
        end_unix_nano: i64,
    ) -> Result<Vec<DependencyLink>, StoreError> {
        let rows = sqlx::query(SELECT_DEPENDENCIES)
            .bind(minute(start_unix_nano))
            .bind(minute(end_unix_nano))
            .fetch_all(&self.pool)
            .await?;
        let mut links = Vec::with_capacity(rows.len());
        for row in rows {
            links.push(DependencyLink {
                parent: row.try_get("parent")?,
                child: row.try_get("child")?,
                call_count: u64::try_from(row.try_get::<i64, _>("calls")?).unwrap_or(0),
                error_count: u64::try_from(row.try_get::<i64, _>("errors")?).unwrap_or(0),
            });
        }
        Ok(links)
    }

    async fn span_count(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spans")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn delete_spans_before(
        &self,
        cutoff_unix_nano: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let query = sqlx::query(DELETE_SPANS_BEFORE)
            .bind(cutoff_unix_nano)
            .bind(i64::from(limit));
        delete_spans(&self.pool, query).await
    }

    async fn delete_oldest_spans(&self, limit: u32) -> Result<u64, StoreError> {
        let query = sqlx::query(DELETE_OLDEST_SPANS).bind(i64::from(limit));
        delete_spans(&self.pool, query).await
    }

    async fn prune_span_catalog(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(PRUNE_OPERATIONS).execute(&mut *tx).await?;
        sqlx::query(PRUNE_REMOTE_SERVICES).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn refresh_statistics(&self) -> Result<Vec<String>, StoreError> {
        statistics::refresh(&self.pool).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
