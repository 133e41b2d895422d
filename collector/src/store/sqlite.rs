//! The SQLite backend: one file in WAL mode, one writer connection (SQLite
//! serializes writers anyway; one connection avoids busy retries inside the
//! process) and a small pool of readers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::links::{
    LINK_SPAN_COLUMNS, LinkChanges, LinkSpan, LinkView, effective_changes, link_span,
    links_touching, minute, spans_to_insert,
};
use super::row::{
    Interner, PointColumns, SpanValues, labels_json, order_by_request, span_row, to_json,
    unique_ids,
};
use super::row::{operation_rows, peer_service};
use super::search;
use super::summary::{self, StoredTrace, TraceDelta};
use super::{
    DependencyLink, FoundTraces, MetricSeries, NumberPoint, Operation, SeriesWindow, Span, SpanId,
    SpanKind, StatusCode, Store, StoreError, Temporality, TraceId, TraceQuery, migrate,
};

mod metrics;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most spans one group commit takes from the queue (it takes whole
/// requests: one more request may exceed it).
const GROUP_SPANS: usize = 8192;
/// Spans written between two background checkpoints ([`run_checkpointer`]).
const CHECKPOINT_SPANS: usize = 8192;
const READERS: u32 = 4;

const INSERT_OPERATION: &str = "INSERT INTO operations (service_name, operation, kind) \
     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, service_name, service_version, \
     operation, kind, start_unix_nano, duration_nano, status_code, status_message, trace_state, \
     flags, attributes, events, links, resource, scope";
const INSERT_SERIES: &str = "INSERT INTO metric_series \
     (name, labels, resource, kind, temporality, monotonic, unit) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (name, labels) DO NOTHING RETURNING id";
const SELECT_SERIES: &str = "SELECT id FROM metric_series WHERE name = ?1 AND labels = ?2";
const INSERT_POINT: &str = "INSERT INTO metric_points (series_id, time_unix_nano, \
     start_unix_nano, value, count, sum, bucket_counts, explicit_bounds) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (series_id, time_unix_nano) DO NOTHING";
const SELECT_SERVICES: &str = "SELECT DISTINCT service_name FROM operations ORDER BY service_name";
const SELECT_OPERATIONS: &str =
    "SELECT DISTINCT operation FROM operations WHERE service_name = ?1 ORDER BY operation";
const SELECT_WINDOW_POINTS: &str = "SELECT s.id, s.labels, s.temporality, p.time_unix_nano, \
     p.start_unix_nano, p.value FROM metric_series s \
     JOIN metric_points p ON p.series_id = s.id \
     WHERE s.name = ?1 AND p.time_unix_nano > ?2 AND p.time_unix_nano <= ?3 \
     AND p.value IS NOT NULL ORDER BY s.id, p.time_unix_nano";
const SELECT_BASELINES: &str = "SELECT p.series_id, p.time_unix_nano, p.start_unix_nano, p.value \
     FROM metric_series s JOIN metric_points p ON p.series_id = s.id \
     WHERE s.name = ?1 AND p.value IS NOT NULL \
     AND p.time_unix_nano = (SELECT MAX(q.time_unix_nano) FROM metric_points q \
         WHERE q.series_id = s.id AND q.time_unix_nano <= ?2) \
     AND EXISTS (SELECT 1 FROM metric_points r WHERE r.series_id = s.id \
         AND r.time_unix_nano > ?2 AND r.time_unix_nano <= ?3)";

const INSERT_REMOTE_SERVICE: &str = "INSERT INTO remote_services (service_name, remote_service) \
     VALUES (?1, ?2) ON CONFLICT DO NOTHING";
const SELECT_OPERATION_KINDS: &str = "SELECT operation, kind FROM operations \
     WHERE service_name = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY operation, kind";
const SELECT_REMOTE_SERVICES: &str = "SELECT remote_service FROM remote_services \
     WHERE service_name = ?1 ORDER BY remote_service";
const SELECT_DEPENDENCIES: &str = "SELECT parent, child, SUM(calls) AS calls, \
     SUM(errors) AS errors FROM dependency_links WHERE minute >= ?1 AND minute <= ?2 \
     GROUP BY parent, child HAVING SUM(calls) > 0 ORDER BY parent, child";
/// Adds link counts (the keys of one statement are distinct).
static UPSERT_LINKS: Batched = Batched::new(
    "INSERT INTO dependency_links AS l (minute, parent, child, calls, errors) VALUES ",
    "(?, ?, ?, ?, ?)",
    " ON CONFLICT (minute, parent, child) DO UPDATE SET \
     calls = l.calls + excluded.calls, errors = l.errors + excluded.errors",
    [64, 16, 4, 1],
);
const DELETE_EMPTY_LINK: &str = "DELETE FROM dependency_links \
     WHERE minute = ?1 AND parent = ?2 AND child = ?3 AND calls <= 0";
const DELETE_SPANS_BEFORE: &str = "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans \
     WHERE start_unix_nano < ?1 LIMIT ?2) RETURNING trace_id, span_id, parent_span_id, service_name, \
     kind, status_code, start_unix_nano, trace_no";
const DELETE_OLDEST_SPANS: &str = "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans \
     ORDER BY start_unix_nano LIMIT ?1) RETURNING trace_id, span_id, parent_span_id, service_name, \
     kind, status_code, start_unix_nano, trace_no";

/// The summaries of a batch's new traces, numbered by the writer (the only
/// one: the next numbers past the largest stored, as SQLite's rowid would
/// be). Neither `ON CONFLICT` nor `RETURNING`: the writer read which of the
/// batch's traces are stored, in the same transaction ([`stored_traces`]).
static INSERT_SUMMARIES: Batched = Batched::new(
    "INSERT OR FAIL INTO trace_summaries (trace_no, trace_id, start_unix_nano, end_unix_nano, \
     duration_nano, span_count, error_count, root_service, root_operation) VALUES ",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "",
    [1024, 128, 16, 1],
);
/// Merges a batch's share into the summaries of stored traces, by number.
static UPDATE_SUMMARIES: Batched = Batched::new(
    "UPDATE trace_summaries AS t SET \
     start_unix_nano = MIN(t.start_unix_nano, m.column2), \
     end_unix_nano = MAX(t.end_unix_nano, m.column3), \
     duration_nano = MAX(t.end_unix_nano, m.column3) - MIN(t.start_unix_nano, m.column2), \
     span_count = t.span_count + m.column4, \
     error_count = t.error_count + m.column5, \
     root_service = COALESCE(t.root_service, m.column6), \
     root_operation = CASE WHEN t.root_service IS NULL THEN m.column7 \
         ELSE t.root_operation END \
     FROM (VALUES ",
    "(?, ?, ?, ?, ?, ?, ?)",
    ") AS m WHERE t.trace_no = m.column1",
    [1024, 128, 16, 1],
);
const MAX_TRACE_NO: &str = "SELECT COALESCE(MAX(trace_no), 0) FROM trace_summaries";
static UPSERT_TRACE_SERVICES: Batched = Batched::new(
    "INSERT INTO trace_services AS s (trace_no, service_name, span_count, trace_start) VALUES ",
    "(?, ?, ?, ?)",
    " ON CONFLICT (trace_no, service_name) DO UPDATE SET \
     span_count = s.span_count + excluded.span_count, trace_start = excluded.trace_start",
    [1024, 128, 16, 1],
);
static UPSERT_TRACE_OPERATIONS: Batched = Batched::new(
    "INSERT INTO trace_operations AS o (trace_no, service_name, operation, trace_start) VALUES ",
    "(?, ?, ?, ?)",
    " ON CONFLICT (trace_no, service_name, operation) DO UPDATE SET \
     trace_start = excluded.trace_start WHERE o.trace_start <> excluded.trace_start",
    [1024, 128, 16, 1],
);
/// Traces whose start moved earlier: the rows of services and operations
/// the batch did not touch still carry the old start. One statement per
/// chunk of (trace number, new start) pairs: a statement per trace cost a
/// round trip to SQLite's thread each, and half the traces a proxy exports
/// move (the server's span often arrives before the client's).
static UPDATE_TRACE_STARTS: [Batched; 2] = [
    Batched::new(
        "UPDATE trace_services SET trace_start = m.column2 FROM (VALUES ",
        "(?, ?)",
        ") AS m WHERE trace_services.trace_no = m.column1 \
         AND trace_services.trace_start <> m.column2",
        [1024, 128, 16, 1],
    ),
    Batched::new(
        "UPDATE trace_operations SET trace_start = m.column2 FROM (VALUES ",
        "(?, ?)",
        ") AS m WHERE trace_operations.trace_no = m.column1 \
         AND trace_operations.trace_start <> m.column2",
        [1024, 128, 16, 1],
    ),
];
/// Trace ids or numbers per statement when reading or recomputing the
/// summaries of several traces.
const REFRESH_CHUNK: usize = 500;
const PRUNE_OPERATIONS: &str = "DELETE FROM operations WHERE NOT EXISTS (SELECT 1 FROM spans s \
     WHERE s.service_name = operations.service_name AND s.operation = operations.operation \
     AND s.kind = operations.kind)";
/// Remote services are listed while their service has spans (checking each
/// remote against the span attributes would scan the service's spans).
const PRUNE_REMOTE_SERVICES: &str = "DELETE FROM remote_services WHERE NOT EXISTS \
     (SELECT 1 FROM operations o WHERE o.service_name = remote_services.service_name)";

/// Inserts spans, 19 parameters a row (SQLite allows 32766 a statement).
/// No `ON CONFLICT`: the spans already stored are filtered out before (a
/// conflict would be a bug, and fails the transaction). `OR FAIL` rather
/// than the default `ABORT`: a failing statement need not be undone alone
/// (its error rolls the whole transaction back), so SQLite keeps no
/// statement journal, which copied every page the statement touched.
static INSERT_SPANS: Batched = Batched::new(
    "INSERT OR FAIL INTO spans (trace_id, span_id, parent_span_id, service_name, service_version, \
     operation, kind, start_unix_nano, duration_nano, status_code, status_message, trace_state, \
     flags, attributes, events, links, resource, scope, trace_no) VALUES ",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "",
    [1024, 128, 16, 1],
);

/// A multi-row `INSERT ... VALUES (..), (..) ...` built once for each of
/// four row counts (fixed sizes keep the prepared-statement cache small).
/// Each statement is a round trip to SQLite's thread: chunks of up to 1,024
/// rows write a group of 4,096 spans in four (19 parameters a span row:
/// 19,456, within SQLite's 32,766), where chunks of 256 took sixteen (the
/// bench: 125 k → 132–147 k spans/s at 1 M; BENCHMARKS.md).
struct Batched {
    head: &'static str,
    row: &'static str,
    tail: &'static str,
    sizes: [usize; 4],
    sql: [std::sync::OnceLock<String>; 4],
}

impl Batched {
    const fn new(
        head: &'static str,
        row: &'static str,
        tail: &'static str,
        sizes: [usize; 4],
    ) -> Self {
        Self {
            head,
            row,
            tail,
            sizes,
            sql: [const { std::sync::OnceLock::new() }; 4],
        }
    }

    /// The largest statement size not above `remaining` (the smallest is 1).
    fn size_for(&self, remaining: usize) -> usize {
        self.sizes
            .into_iter()
            .find(|size| *size <= remaining)
            .unwrap_or(1)
    }

    /// `rows` cut into chunks of the statement's sizes, each with its
    /// statement (largest first).
    fn chunks<'a, T>(
        &'static self,
        rows: &'a [T],
    ) -> impl Iterator<Item = (&'static str, &'a [T])> {
        let mut rest = rows;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (chunk, tail) = rest.split_at(self.size_for(rest.len()));
            rest = tail;
            Some((self.sql(chunk.len()), chunk))
        })
    }

    /// The statement for `rows` rows, one of the four sizes.
    fn sql(&'static self, rows: usize) -> &'static str {
        let slot = self
            .sizes
            .iter()
            .position(|size| *size == rows)
            .unwrap_or(self.sizes.len() - 1);
        self.sql[slot].get_or_init(|| {
            let mut sql = String::from(self.head);
            for row in 0..self.sizes[slot] {
                if row > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(self.row);
            }
            sql.push_str(self.tail);
            sql
        })
    }
}

/// The stored traces among `trace_ids` (through `trace_summaries`' index on
/// the trace id, the one tree keyed by it).
async fn stored_traces(
    tx: &mut sqlx::SqliteConnection,
    trace_ids: &[&[u8]],
) -> Result<HashMap<TraceId, StoredTrace>, StoreError> {
    let mut stored = HashMap::new();
    for chunk in trace_ids.chunks(REFRESH_CHUNK) {
        let mut builder = QueryBuilder::<Sqlite>::new(
            "SELECT trace_id, trace_no, start_unix_nano FROM trace_summaries WHERE trace_id IN (",
        );
        let mut separated = builder.separated(", ");
        for id in chunk {
            separated.push_bind(id.to_vec());
        }
        builder.push(")");
        for row in builder.build().fetch_all(&mut *tx).await? {
            let (trace_id, trace) = summary::stored_trace(&row)?;
            stored.insert(trace_id, trace);
        }
    }
    Ok(stored)
}

/// Merges the deltas of a batch into `trace_summaries`, `trace_services` and
/// `trace_operations`; returns the number of every trace of `deltas` (a new
/// trace gets the next one). `stored` holds the number and start of every
/// trace of the batch that had spans before it.
async fn write_summaries(
    tx: &mut sqlx::SqliteConnection,
    deltas: &[TraceDelta<'_>],
    stored: &HashMap<TraceId, StoredTrace>,
) -> Result<HashMap<TraceId, i64>, StoreError> {
    // Names bound as shared strings (a few per batch, bound for every row).
    let mut names = Interner::default();
    // Stored traces keep their number, new ones get the next ones.
    let mut known: Vec<(&TraceDelta<'_>, i64)> = Vec::new();
    let mut new: Vec<(&TraceDelta<'_>, i64)> = Vec::new();
    let mut next: Option<i64> = None;
    for delta in deltas {
        if let Some(trace) = stored.get(&delta.trace_id) {
            known.push((delta, trace.trace_no));
            continue;
        }
        let last = match next {
            Some(last) => last,
            None => {
                sqlx::query_scalar::<_, i64>(MAX_TRACE_NO)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let number = last
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("trace numbers exhausted".to_owned()))?;
        next = Some(number);
        new.push((delta, number));
    }
    for (sql, chunk) in UPDATE_SUMMARIES.chunks(&known) {
        let mut query = sqlx::query(sql);
        for (delta, number) in chunk {
            query = query
                .bind(*number)
                .bind(delta.start_unix_nano)
                .bind(delta.end_unix_nano)
                .bind(delta.span_count)
                .bind(delta.error_count)
                .bind(delta.root_service().map(|name| names.get(name)))
                .bind(delta.root_operation().map(|name| names.get(name)));
        }
        query.execute(&mut *tx).await?;
    }
    for (sql, chunk) in INSERT_SUMMARIES.chunks(&new) {
        let mut query = sqlx::query(sql);
        for (delta, number) in chunk {
            query = query
                .bind(*number)
                .bind(delta.trace_id.0.to_vec())
                .bind(delta.start_unix_nano)
                .bind(delta.end_unix_nano)
                .bind(delta.duration_nano())
                .bind(delta.span_count)
                .bind(delta.error_count)
                .bind(delta.root_service().map(|name| names.get(name)))
                .bind(delta.root_operation().map(|name| names.get(name)));
        }
        query.execute(&mut *tx).await?;
    }
    let numbers: HashMap<TraceId, i64> = known
        .iter()
        .chain(&new)
        .map(|(delta, number)| (delta.trace_id, *number))
        .collect();
    // The trace's number, and its start after the merge.
    let number_and_start = |delta: &TraceDelta<'_>| -> Result<(i64, i64), StoreError> {
        let number = numbers.get(&delta.trace_id).copied().ok_or_else(|| {
            StoreError::Corrupt("a trace summary upsert returned no trace_no".to_owned())
        })?;
        let start = stored
            .get(&delta.trace_id)
            .map_or(delta.start_unix_nano, |stored| {
                stored.start_unix_nano.min(delta.start_unix_nano)
            });
        Ok((number, start))
    };
    let mut rows: Vec<(i64, &str, i32, i64)> = Vec::new();
    for delta in deltas {
        let (number, start) = number_and_start(delta)?;
        for (service, count) in &delta.services {
            rows.push((number, *service, *count, start));
        }
    }
    for (sql, chunk) in UPSERT_TRACE_SERVICES.chunks(&rows) {
        let mut query = sqlx::query(sql);
        for (number, service, count, start) in chunk {
            query = query
                .bind(*number)
                .bind(names.get(service))
                .bind(*count)
                .bind(*start);
        }
        query.execute(&mut *tx).await?;
    }
    let mut rows: Vec<(i64, &str, &str, i64)> = Vec::new();
    for delta in deltas {
        let (number, start) = number_and_start(delta)?;
        for (service, operation) in &delta.operations {
            rows.push((number, *service, *operation, start));
        }
    }
    for (sql, chunk) in UPSERT_TRACE_OPERATIONS.chunks(&rows) {
        let mut query = sqlx::query(sql);
        for (number, service, operation, start) in chunk {
            query = query
                .bind(*number)
                .bind(names.get(service))
                .bind(names.get(operation))
                .bind(*start);
        }
        query.execute(&mut *tx).await?;
    }
    // Traces whose start moved earlier: the rows of the services and
    // operations the batch did not touch still carry the old start.
    let moved: Vec<(i64, i64)> = deltas
        .iter()
        .filter_map(|delta| {
            let before = stored.get(&delta.trace_id)?;
            (delta.start_unix_nano < before.start_unix_nano)
                .then_some((before.trace_no, delta.start_unix_nano))
        })
        .collect();
    for statement in &UPDATE_TRACE_STARTS {
        for (sql, chunk) in statement.chunks(&moved) {
            let mut query = sqlx::query(sql);
            for (number, start) in chunk {
                query = query.bind(*number).bind(*start);
            }
            query.execute(&mut *tx).await?;
        }
    }
    Ok(numbers)
}

/// Recomputes the summaries of the traces numbered `trace_nos` from their
/// remaining spans (after a delete), keeping their numbers: traces left
/// without spans lose theirs.
async fn refresh_summaries(
    tx: &mut sqlx::SqliteConnection,
    trace_nos: &[i64],
) -> Result<(), StoreError> {
    const STATEMENTS: [&str; 7] = [
        "DELETE FROM trace_services WHERE trace_no IN (",
        "DELETE FROM trace_operations WHERE trace_no IN (",
        "DELETE FROM trace_summaries WHERE trace_no IN (",
        "INSERT INTO trace_summaries (trace_no, trace_id, start_unix_nano, end_unix_nano, \
         duration_nano, span_count, error_count) \
         SELECT trace_no, trace_id, MIN(start_unix_nano), MAX(start_unix_nano + duration_nano), \
         MAX(start_unix_nano + duration_nano) - MIN(start_unix_nano), COUNT(*), \
         SUM(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) FROM spans WHERE trace_no IN (",
        "UPDATE trace_summaries SET (root_service, root_operation) = \
         (SELECT s.service_name, s.operation FROM spans s \
         WHERE s.trace_no = trace_summaries.trace_no AND s.parent_span_id IS NULL \
         ORDER BY s.start_unix_nano, s.span_id LIMIT 1) WHERE trace_no IN (",
        "INSERT INTO trace_services (trace_no, service_name, span_count, trace_start) \
         SELECT s.trace_no, s.service_name, COUNT(*), MIN(t.start_unix_nano) \
         FROM spans s JOIN trace_summaries t ON t.trace_no = s.trace_no WHERE s.trace_no IN (",
        "INSERT INTO trace_operations (trace_no, service_name, operation, trace_start) \
         SELECT s.trace_no, s.service_name, s.operation, MIN(t.start_unix_nano) \
         FROM spans s JOIN trace_summaries t ON t.trace_no = s.trace_no WHERE s.trace_no IN (",
    ];
    const TAILS: [&str; 7] = [
        ")",
        ")",
        ")",
        ") GROUP BY trace_no, trace_id",
        ")",
        ") GROUP BY s.trace_no, s.service_name",
        ") GROUP BY s.trace_no, s.service_name, s.operation",
    ];
    for chunk in trace_nos.chunks(REFRESH_CHUNK) {
        for (head, tail) in STATEMENTS.iter().zip(TAILS) {
            let mut builder = QueryBuilder::<Sqlite>::new(*head);
            let mut separated = builder.separated(", ");
            for number in chunk {
                separated.push_bind(*number);
            }
            builder.push(tail);
            builder.build().execute(&mut *tx).await?;
        }
    }
    Ok(())
}

/// The link columns of every stored span of the traces numbered `trace_nos`.
async fn link_spans(
    tx: &mut sqlx::SqliteConnection,
    trace_nos: &[i64],
) -> Result<Vec<LinkSpan>, StoreError> {
    let mut spans = Vec::new();
    for chunk in trace_nos.chunks(REFRESH_CHUNK) {
        let mut builder = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {LINK_SPAN_COLUMNS} FROM spans WHERE trace_no IN ("
        ));
        let mut separated = builder.separated(", ");
        for number in chunk {
            separated.push_bind(*number);
        }
        builder.push(")");
        for row in builder.build().fetch_all(&mut *tx).await? {
            spans.push(link_span!(row, i64));
        }
    }
    Ok(spans)
}

/// Adds `changes` to `dependency_links`, dropping rows left without calls.
async fn apply_link_changes(
    tx: &mut sqlx::SqliteConnection,
    changes: &LinkChanges,
) -> Result<(), StoreError> {
    let changes = effective_changes(changes);
    for (sql, chunk) in UPSERT_LINKS.chunks(&changes) {
        let mut query = sqlx::query(sql);
        for ((minute, parent, child), (calls, errors)) in chunk {
            query = query
                .bind(minute)
                .bind(parent)
                .bind(child)
                .bind(calls)
                .bind(errors);
        }
        query.execute(&mut *tx).await?;
    }
    for ((minute, parent, child), (calls, _)) in changes {
        if *calls < 0 {
            sqlx::query(DELETE_EMPTY_LINK)
                .bind(minute)
                .bind(parent)
                .bind(child)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// Deletes spans with `sql` (which returns their link columns) and
/// refreshes the summaries and links of their traces, in one transaction.
async fn delete_spans(
    writer: &SqlitePool,
    sql: &'static str,
    binds: (i64, Option<i64>),
) -> Result<u64, StoreError> {
    let mut tx = writer.begin().await?;
    let mut query = sqlx::query(sql).bind(binds.0);
    if let Some(second) = binds.1 {
        query = query.bind(second);
    }
    let rows = query.fetch_all(&mut *tx).await?;
    let deleted = u64::try_from(rows.len()).unwrap_or(u64::MAX);
    let mut gone = Vec::with_capacity(rows.len());
    let mut trace_nos = Vec::with_capacity(rows.len());
    for row in rows {
        gone.push(link_span!(row, i64));
        trace_nos.push(row.try_get::<i64, _>(7)?);
    }
    trace_nos.sort_unstable();
    trace_nos.dedup();
    refresh_summaries(&mut tx, &trace_nos).await?;
    // The pairs that lose a span: among the deleted and remaining spans.
    let remaining = link_spans(&mut tx, &trace_nos).await?;
    let gone_count = gone.len();
    let mut all = gone;
    all.extend(remaining);
    let views: Vec<LinkView<'_>> = all.iter().map(LinkSpan::view).collect();
    let mut changes = LinkChanges::new();
    links_touching(&views, gone_count, -1, &mut changes);
    apply_link_changes(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Inserts the rows, each with its trace's number (`trace_nos`, in the same
/// order), in statements of [`INSERT_SPANS`]'s sizes.
async fn insert_spans(
    tx: &mut sqlx::SqliteConnection,
    values: Vec<SpanValues>,
    trace_nos: Vec<i64>,
) -> Result<(), StoreError> {
    let mut rows = values.into_iter().zip(trace_nos);
    let mut remaining = rows.len();
    while remaining > 0 {
        let size = INSERT_SPANS.size_for(remaining);
        remaining -= size;
        let mut query = sqlx::query(INSERT_SPANS.sql(size));
        for (row, trace_no) in rows.by_ref().take(size) {
            query = query
                .bind(row.trace_id)
                .bind(row.span_id)
                .bind(row.parent_span_id)
                .bind(row.service_name)
                .bind(row.service_version)
                .bind(row.operation)
                .bind(row.kind)
                .bind(row.start_unix_nano)
                .bind(row.duration_nano)
                .bind(row.status_code)
                .bind(row.status_message)
                .bind(row.trace_state)
                .bind(row.flags)
                .bind(row.attributes)
                .bind(row.events)
                .bind(row.links)
                .bind(row.resource)
                .bind(row.scope)
                .bind(trace_no);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Catalog rows (`operations`, `remote_services`) of a batch.
#[derive(Default)]
struct CatalogRows {
    operations: Vec<(String, String, i32)>,
    remotes: Vec<(String, String)>,
}

/// The catalog rows known to be stored, so that a batch inserts only the
/// ones it adds (a handful a service, where every batch used to insert each
/// of its distinct operations again). Only committed rows are remembered.
/// [`SqliteStore::prune_span_catalog`], the only delete of catalog rows,
/// forgets them all inside its transaction: the writes after it (the writer
/// connection is the only one, and this process the file's only writer)
/// find nothing known, and a write that committed before the prune but
/// remembers after it is recognized by the generation it started with and
/// remembers nothing.
#[derive(Default)]
struct KnownCatalog {
    inner: std::sync::Mutex<KnownRows>,
}

#[derive(Default)]
struct KnownRows {
    generation: u64,
    operations: HashSet<(String, String, i32)>,
    remotes: HashSet<(String, String)>,
}

impl KnownCatalog {
    fn lock(&self) -> std::sync::MutexGuard<'_, KnownRows> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The catalog rows of `spans` not known to be stored.
    fn missing(&self, spans: &[&SpanFacts]) -> CatalogRows {
        let mut operations = HashSet::new();
        let mut remotes = HashSet::new();
        for span in spans {
            operations.insert((&*span.service_name, &*span.operation, span.kind));
            if let Some(remote) = &span.peer_service {
                remotes.insert((&*span.service_name, &**remote));
            }
        }
        let known = self.lock();
        CatalogRows {
            operations: operations
                .into_iter()
                .map(|(service, operation, kind)| (service.to_owned(), operation.to_owned(), kind))
                .filter(|row| !known.operations.contains(row))
                .collect(),
            remotes: remotes
                .into_iter()
                .map(|(service, remote)| (service.to_owned(), remote.to_owned()))
                .filter(|row| !known.remotes.contains(row))
                .collect(),
        }
    }

    /// Remembers rows that a transaction started at `generation` committed.
    fn remember(&self, generation: u64, rows: CatalogRows) {
        let mut known = self.lock();
        if known.generation == generation {
            known.operations.extend(rows.operations);
            known.remotes.extend(rows.remotes);
        }
    }

    /// Forgets every row (some may have been deleted).
    fn forget(&self) {
        let mut known = self.lock();
        known.generation += 1;
        known.operations.clear();
        known.remotes.clear();
    }
}

/// One export's spans waiting for the writer, prepared on the request's
/// task: the column values to insert and what the bookkeeping reads.
struct WriteJob {
    values: Vec<SpanValues>,
    facts: Vec<SpanFacts>,
    /// Answered once the transaction holding the batch committed (or failed).
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// What the writer's bookkeeping (duplicates, catalog, summaries, links)
/// reads of a span: small and owned, so that it outlives the request's
/// `&[Span]` while the batch waits in the queue.
pub(crate) struct SpanFacts {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    service_name: Arc<str>,
    operation: Arc<str>,
    kind: i32,
    status_code: i32,
    start_unix_nano: i64,
    duration_nano: i64,
    peer_service: Option<Arc<str>>,
}

// === impl SpanFacts ===

impl SpanFacts {
    /// The facts of every span of a batch, sharing the names of `values`
    /// (built by [`SpanValues::from_spans`] from the same spans).
    fn of_batch(spans: &[Span], values: &[SpanValues]) -> Vec<Self> {
        let mut peers: HashMap<&str, Arc<str>> = HashMap::new();
        spans
            .iter()
            .zip(values)
            .map(|(span, value)| Self {
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
                service_name: value.service_name.clone(),
                operation: value.operation.clone(),
                kind: value.kind,
                status_code: value.status_code,
                start_unix_nano: span.start_unix_nano,
                duration_nano: span.duration_nano,
                peer_service: peer_service(span).map(|remote| {
                    peers
                        .entry(remote)
                        .or_insert_with(|| Arc::from(remote))
                        .clone()
                }),
            })
            .collect()
    }

    fn link_view(&self) -> LinkView<'_> {
        LinkView {
            trace_id: &self.trace_id.0,
            span_id: &self.span_id.0,
            parent_span_id: self.parent_span_id.as_ref().map(|id| id.0.as_slice()),
            service_name: &self.service_name,
            kind: self.kind,
            status_code: self.status_code,
            start_unix_nano: self.start_unix_nano,
        }
    }
}

impl summary::DeltaSpan for SpanFacts {
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
        self.status_code == StatusCode::Error.as_i32()
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

/// The error of a request whose batch the writer could not take or answer
/// (the store is closing).
fn writer_gone() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// The writer task: takes every batch queued meanwhile (up to
/// [`GROUP_SPANS`] spans) and writes them in one transaction (group
/// commit), then answers each request. Ends when the store is dropped.
async fn run_writer(
    writer: SqlitePool,
    catalog: Arc<KnownCatalog>,
    mut queue: mpsc::UnboundedReceiver<WriteJob>,
    checkpoint: mpsc::Sender<()>,
) {
    let mut since_checkpoint = 0;
    while let Some(first) = queue.recv().await {
        let mut spans = first.values.len();
        let mut jobs = vec![first];
        while spans < GROUP_SPANS {
            let Ok(job) = queue.try_recv() else { break };
            spans += job.values.len();
            jobs.push(job);
        }
        let mut values = Vec::with_capacity(spans);
        let mut facts = Vec::with_capacity(spans);
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            values.extend(job.values);
            facts.extend(job.facts);
            answers.push(job.done);
        }
        since_checkpoint += spans;
        if since_checkpoint >= CHECKPOINT_SPANS {
            since_checkpoint = 0;
            // Full: a checkpoint is already due.
            let _ = checkpoint.try_send(());
        }
        match write_group(&writer, &catalog, values, &facts).await {
            Ok(()) => {
                for answer in answers {
                    // A request that went away needs no answer.
                    let _ = answer.send(Ok(()));
                }
            }
            Err(error) => {
                // Nothing of the group is stored: each request fails (and
                // its client retries). The first gets the error itself.
                let message = error.to_string();
                let mut answers = answers.into_iter();
                if let Some(answer) = answers.next() {
                    let _ = answer.send(Err(error));
                }
                for answer in answers {
                    let _ = answer.send(Err(StoreError::Database(sqlx::Error::Protocol(format!(
                        "the transaction holding this batch failed: {message}"
                    )))));
                }
            }
        }
    }
}

/// Runs the writer task ([`run_writer`]) on a thread of its own, in a
/// single-threaded runtime. The task and SQLite's thread for the writer
/// connection hand each statement back and forth, a few thousand times a
/// second: on the shared runtime every hand-back waited behind the request
/// tasks decoding their exports (the bench: 121 k spans/s, 135 k on its own
/// thread; BENCHMARKS.md). The thread ends with the task, when the store
/// and its queue are dropped.
fn spawn_writer(task: impl Future<Output = ()> + Send + 'static) -> Result<(), StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StoreError::WriterThread)?;
    std::thread::Builder::new()
        .name("weft-sqlite-writer".to_owned())
        .spawn(move || runtime.block_on(task))
        .map_err(StoreError::WriterThread)?;
    Ok(())
}

/// The checkpointer task: copies the WAL's committed pages back into the
/// database file (a passive checkpoint, which never blocks the writer) on
/// its own connection and thread each time the writer has written another
/// [`CHECKPOINT_SPANS`] spans, so that the writer's own automatic
/// checkpoint, which runs inside its commit, finds little left to copy.
/// Ends with the writer task.
async fn run_checkpointer(options: SqliteConnectOptions, mut due: mpsc::Receiver<()>) {
    let mut connection = None;
    while due.recv().await.is_some() {
        if connection.is_none() {
            match options.connect().await {
                Ok(opened) => connection = Some(opened),
                Err(error) => {
                    tracing::warn!(%error, "SQLite checkpointer cannot connect");
                    continue;
                }
            }
        }
        if let Some(opened) = connection.as_mut()
            && let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut *opened)
                .await
        {
            tracing::warn!(%error, "SQLite background checkpoint failed");
            connection = None;
        }
    }
}

/// Writes the spans of one or more requests (in queue order: the same as
/// writing the requests one after the other) in one transaction.
async fn write_group(
    writer: &SqlitePool,
    catalog: &KnownCatalog,
    mut values: Vec<SpanValues>,
    facts: &[SpanFacts],
) -> Result<(), StoreError> {
    let mut trace_ids: Vec<&[u8]> = facts
        .iter()
        .map(|span| span.trace_id.0.as_slice())
        .collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    let catalog_generation = catalog.generation();

    let mut tx = writer.begin().await?;
    // What is stored of the batch's traces (usually nothing): their numbers
    // and starts, and their spans. The spans stored before are left as they
    // are, the links they make with the new spans are counted, and the
    // traces' stored starts merged.
    let known = stored_traces(&mut tx, &trace_ids).await?;
    let known_nos: Vec<i64> = known.values().map(|trace| trace.trace_no).collect();
    let stored = link_spans(&mut tx, &known_nos).await?;
    let new = spans_to_insert(
        facts.iter().map(|span| (span.trace_id, span.span_id)),
        &stored,
    );
    if new.len() < values.len() {
        let mut keep = vec![false; values.len()];
        for &index in &new {
            keep[index] = true;
        }
        let mut index = 0;
        values.retain(|_| {
            index += 1;
            keep[index - 1]
        });
    }
    let inserted: Vec<&SpanFacts> = new.iter().map(|&index| &facts[index]).collect();
    // Only spans actually stored name operations and remote services (a
    // retried duplicate with another name must not add one).
    let catalog_rows = catalog.missing(&inserted);
    for (service, operation, kind) in &catalog_rows.operations {
        sqlx::query(INSERT_OPERATION)
            .bind(service)
            .bind(operation)
            .bind(kind)
            .execute(&mut *tx)
            .await?;
    }
    for (service, remote) in &catalog_rows.remotes {
        sqlx::query(INSERT_REMOTE_SERVICE)
            .bind(service)
            .bind(remote)
            .execute(&mut *tx)
            .await?;
    }
    // The summaries first: they number the new traces, and the spans are
    // stored with their trace's number.
    let deltas = summary::trace_deltas(inserted.iter().copied());
    let numbers = write_summaries(&mut tx, &deltas, &known).await?;
    let mut trace_nos = Vec::with_capacity(inserted.len());
    for span in &inserted {
        trace_nos.push(numbers.get(&span.trace_id).copied().ok_or_else(|| {
            StoreError::Corrupt("an inserted span's trace has no trace_no".to_owned())
        })?);
    }
    insert_spans(&mut tx, values, trace_nos).await?;
    // The links the inserted spans complete, among themselves and with
    // the spans stored before (the inserted spans first).
    let mut views: Vec<LinkView<'_>> = Vec::with_capacity(inserted.len() + stored.len());
    views.extend(inserted.iter().map(|span| span.link_view()));
    views.extend(stored.iter().map(LinkSpan::view));
    let mut changes = LinkChanges::new();
    links_touching(&views, inserted.len(), 1, &mut changes);
    apply_link_changes(&mut tx, &changes).await?;
    tx.commit().await?;
    catalog.remember(catalog_generation, catalog_rows);
    Ok(())
}

/// Spans and metrics in one SQLite file.
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    catalog: Arc<KnownCatalog>,
    /// Span batches for the writer task ([`run_writer`]).
    queue: mpsc::UnboundedSender<WriteJob>,
}

/// When a commit counts as stored: the `synchronous` parameter of a
/// `sqlite://FILE?synchronous=full|normal` URL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `full` (the default): each commit syncs the WAL to disk before the
    /// writer answers, so an acknowledged export survives a power loss or an
    /// OS crash, as with PostgreSQL's default `synchronous_commit`. One sync
    /// per group commit: 6–16 % of the ingest rate in the bench.
    #[default]
    Full,
    /// `normal`: commits reach the operating system, not the disk; an
    /// acknowledged export survives the collector's crash (SIGKILL), but the
    /// last commits before a power loss may be lost (as with Jaeger's Badger
    /// storage, which does not sync writes by default).
    Normal,
}

impl Durability {
    /// Parses the query of a `sqlite://` URL (`synchronous=full|normal`, the
    /// only parameter); an empty query is the default.
    pub fn from_query(query: &str) -> Result<Self, String> {
        let mut durability = Self::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            durability = match pair.split_once('=') {
                Some(("synchronous", "full")) => Self::Full,
                Some(("synchronous", "normal")) => Self::Normal,
                Some(("synchronous", other)) => {
                    return Err(format!("synchronous must be full or normal, not {other:?}"));
                }
                _ => {
                    return Err(format!(
                        "unknown parameter {pair:?} (the one SQLite parameter is synchronous=full|normal)"
                    ));
                }
            };
        }
        Ok(durability)
    }
}

impl SqliteStore {
    /// Opens the database file at `path` with the default [`Durability`].
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Durability::default()).await
    }

    /// Opens the database file at `path`, creating it and its parent
    /// directory if missing, and runs the migrations.
    pub async fn open_with(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| StoreError::CreateDir {
                    path: parent.to_owned(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // 8 KiB pages for a new file (an existing one keeps its own):
            // fewer page splits, cache entries and WAL frames per span (the
            // writer thread 8.3 -> 7.8 µs per span in the bench, the
            // searches no slower; BENCHMARKS.md).
            .page_size(8192)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Keeps the planner's statistics fresh as the tables grow.
            .optimize_on_close(true, 1000)
            // 64 MiB of page cache per connection: the span indexes of
            // millions of spans stay in memory for inserts and searches.
            .pragma("cache_size", "-65536")
            // Checkpoint every 8192 pages (64 MiB of WAL with 8 KiB pages)
            // instead of SQLite's 1000: the index pages a batch dirties are
            // copied back to the database (and fsynced) once per many
            // batches rather than every few. The background checkpointer
            // does most of it, this is the writer's backstop.
            .pragma("wal_autocheckpoint", "8192")
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        if let Err(error) = migrate::sqlite().run(&writer).await {
            writer.close().await;
            return Err(error.into());
        }
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options.clone())
            .await?;
        let catalog = Arc::new(KnownCatalog::default());
        // Unbounded: the requests admitted at once (`Ingest`) bound it.
        let (queue, jobs) = mpsc::unbounded_channel();
        let (checkpoint, due) = mpsc::channel(1);
        tokio::spawn(run_checkpointer(options.clone(), due));
        spawn_writer(run_writer(
            writer.clone(),
            catalog.clone(),
            jobs,
            checkpoint,
        ))?;
        Ok(Self {
            writer,
            readers,
            catalog,
            queue,
        })
    }
}

fn push_span_filters(builder: &mut QueryBuilder<Sqlite>, query: &TraceQuery) {
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
        builder.push(" AND (");
        for (index, column) in ["attributes", "resource"].into_iter().enumerate() {
            if index > 0 {
                builder.push(" OR ");
            }
            if verbatim_in_json(value) {
                // A cheap necessary condition first: most spans fail it,
                // and skip parsing their JSON.
                builder.push(format_args!("(instr(spans.{column}, "));
                builder.push_bind(value.clone());
                builder.push(") > 0 AND ");
            } else {
                builder.push("(");
            }
            builder.push(format_args!(
                "EXISTS (SELECT 1 FROM json_each(spans.{column}) AS j WHERE j.key = "
            ));
            builder.push_bind(key.clone());
            builder.push(
                " AND (CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                 ELSE CAST(j.value AS TEXT) END) = ",
            );
            builder.push_bind(value.clone());
            builder.push("))");
        }
        builder.push(")");
    }
}

/// Whether a tag value that matches an attribute (see
/// [`push_span_filters`]) always appears verbatim in the attribute
/// column's JSON text (serde_json's, `row.rs`), so that `instr` can rule a
/// span out before `json_each` parses it: a string attribute equal to it
/// when it has nothing JSON escapes (`"`, `\`, control characters); an
/// integer or a bool, whose JSON text is SQLite's text of it. Not a value a
/// real number's text could be (SQLite writes 1e300 as `1.0e+300`, JSON as
/// `1e300`: anything Rust parses as `f64` but plain integers, which SQLite
/// never writes for a real), nor an array or object (re-rendered by SQLite).
fn verbatim_in_json(value: &str) -> bool {
    let escaped = |c: char| c == '"' || c == '\\' || c < ' ';
    let container = value.starts_with('[') || value.starts_with('{');
    let integer = {
        let digits = value.strip_prefix('-').unwrap_or(value);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    !value.is_empty()
        && !value.chars().any(escaped)
        && !container
        && (integer || value.parse::<f64>().is_err())
}

fn number_point(row: &SqliteRow, time: &str) -> Result<NumberPoint, sqlx::Error> {
    Ok(NumberPoint {
        time_unix_nano: row.try_get(time)?,
        start_unix_nano: row.try_get("start_unix_nano")?,
        value: row.try_get("value")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn write_spans(&self, spans: &[Span]) -> Result<(), StoreError> {
        if spans.is_empty() {
            return Ok(());
        }
        // Everything that does not need the database, on this task (the
        // writer meanwhile writes the batches queued before).
        let values = SpanValues::from_spans(spans)?;
        let facts = SpanFacts::of_batch(spans, &values);
        let (done, answer) = oneshot::channel();
        self.queue
            .send(WriteJob {
                values,
                facts,
                done,
            })
            .map_err(|_| writer_gone())?;
        // Answered after the commit that holds the batch (or its failure).
        answer.await.map_err(|_| writer_gone())?
    }

    async fn write_metrics(&self, series: &[MetricSeries]) -> Result<(), StoreError> {
        if series.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
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
            .fetch_all(&self.readers)
            .await?)
    }

    async fn operations(&self, service: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(SELECT_OPERATIONS)
            .bind(service)
            .fetch_all(&self.readers)
            .await?)
    }

    async fn get_traces(&self, trace_ids: &[TraceId]) -> Result<Vec<Span>, StoreError> {
        let trace_ids = unique_ids(trace_ids);
        if trace_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_no IN \
             (SELECT trace_no FROM trace_summaries WHERE trace_id IN ("
        ));
        let mut separated = builder.separated(", ");
        for id in &trace_ids {
            separated.push_bind(id.0.to_vec());
        }
        builder.push("))");
        let rows = builder.build().fetch_all(&self.readers).await?;
        let mut spans = Vec::with_capacity(rows.len());
        for row in rows {
            spans.push(span_row!(row).into_span()?);
        }
        order_by_request(&trace_ids, &mut spans);
        super::row::reparent_under_shared(&mut spans);
        Ok(spans)
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<FoundTraces, StoreError> {
        search::find_traces(&self.readers, query, push_span_filters).await
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
            .fetch_all(&self.readers)
            .await?;
        let mut windows: Vec<SeriesWindow> = Vec::new();
        let mut index_of: HashMap<i64, usize> = HashMap::new();
        for row in rows {
            let series_id: i64 = row.try_get("id")?;
            let point = number_point(&row, "time_unix_nano")?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].points.push(point);
                continue;
            }
            let labels: String = row.try_get("labels")?;
            let temporality: i32 = row.try_get("temporality")?;
            index_of.insert(series_id, windows.len());
            windows.push(SeriesWindow {
                labels: super::row::from_json(&labels, "labels")?,
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
            .fetch_all(&self.readers)
            .await?;
        for row in baselines {
            let series_id: i64 = row.try_get("series_id")?;
            if let Some(&index) = index_of.get(&series_id) {
                windows[index].baseline = Some(number_point(&row, "time_unix_nano")?);
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
            .fetch_all(&self.readers)
            .await?;
        operation_rows(rows.iter().map(|row| (row.try_get(0), row.try_get(1))))
    }

    async fn remote_services(&self, service: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(SELECT_REMOTE_SERVICES)
            .bind(service)
            .fetch_all(&self.readers)
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
            .fetch_all(&self.readers)
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
            .fetch_one(&self.readers)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn delete_spans_before(
        &self,
        cutoff_unix_nano: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        delete_spans(
            &self.writer,
            DELETE_SPANS_BEFORE,
            (cutoff_unix_nano, Some(i64::from(limit))),
        )
        .await
    }

    async fn delete_oldest_spans(&self, limit: u32) -> Result<u64, StoreError> {
        delete_spans(&self.writer, DELETE_OLDEST_SPANS, (i64::from(limit), None)).await
    }

    async fn prune_span_catalog(&self) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(PRUNE_OPERATIONS).execute(&mut *tx).await?;
        sqlx::query(PRUNE_REMOTE_SERVICES).execute(&mut *tx).await?;
        // While this transaction holds the only writer connection: a write
        // after it looks its catalog rows up in an empty set.
        self.catalog.forget();
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000_000;

    fn span(id: u8, parent: Option<u8>, service: &str, operation: &str) -> Span {
        Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|parent| SpanId([parent; 8])),
            service_name: service.to_owned(),
            service_version: None,
            operation: operation.to_owned(),
            kind: SpanKind::Server,
            start_unix_nano: 10 * MINUTE + i64::from(id),
            duration_nano: 1,
            status_code: super::StatusCode::Unset,
            status_message: String::new(),
            trace_state: String::new(),
            flags: 0,
            attributes: super::super::Attributes::new(),
            events: Vec::new(),
            links: Vec::new(),
            resource: Default::default(),
            scope: super::super::Scope::default(),
        }
    }

    /// Requests queued together are written in one transaction as if one
    /// after the other: a span in two of them is stored once, from the
    /// first, and only it names an operation or counts a link.
    #[tokio::test]
    async fn a_group_commit_writes_its_requests_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("weft.db"))
            .await
            .unwrap();
        let first = [span(1, None, "web", "first")];
        let second = [
            span(1, None, "web", "second"),
            span(2, Some(1), "db", "query"),
        ];
        let (a, b) = tokio::join!(store.write_spans(&first), store.write_spans(&second));
        a.unwrap();
        b.unwrap();
        let stored = store.get_traces(&[TraceId([7; 16])]).await.unwrap();
        let operations: Vec<&str> = stored.iter().map(|span| span.operation.as_str()).collect();
        assert_eq!(operations, ["first", "query"]);
        assert_eq!(store.operations("web").await.unwrap(), ["first"]);
        let links = store.dependencies(0, 20 * MINUTE).await.unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(
            (
                links[0].parent.as_str(),
                links[0].child.as_str(),
                links[0].call_count
            ),
            ("web", "db", 1)
        );
        assert_eq!(store.span_count().await.unwrap(), 2);
    }

    /// `synchronous=full` by default, `normal` when the URL asks; anything
    /// else is refused with the parameter's name.
    #[tokio::test]
    async fn durability_is_the_synchronous_pragma() {
        assert_eq!(Durability::from_query(""), Ok(Durability::Full));
        assert_eq!(
            Durability::from_query("synchronous=normal"),
            Ok(Durability::Normal)
        );
        let bad = Durability::from_query("synchronous=off").unwrap_err();
        assert!(bad.contains("synchronous") && bad.contains("off"), "{bad}");
        let unknown = Durability::from_query("cache=big").unwrap_err();
        assert!(unknown.contains("cache=big"), "{unknown}");
        let dir = tempfile::tempdir().unwrap();
        for (durability, pragma) in [(Durability::Full, 2), (Durability::Normal, 1)] {
            let store = SqliteStore::open_with(&dir.path().join("weft.db"), durability)
                .await
                .unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&store.writer)
                .await
                .unwrap();
            assert_eq!(synchronous, pragma, "{durability:?}");
            store.close().await;
        }
    }

    /// A tag search finds every attribute value by the text SQLite's own
    /// comparison gives it (`json_each`), whether or not the `instr`
    /// prefilter applies: escaped strings, reals SQLite writes unlike JSON,
    /// integers, bools, containers.
    #[tokio::test]
    async fn a_tag_search_finds_each_value_by_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("weft.db"))
            .await
            .unwrap();
        let values = serde_json::json!({
            "quote": "a\"b", "newline": "x\ny", "plain": "GET /", "int": -42,
            "big": 9_007_199_254_740_993_i64, "huge": 1e300, "sum": 0.1 + 0.2, "real": 502.0,
            "yes": true, "list": [1, "two"], "map": {"k": 2}, "empty": "",
        });
        let mut one = span(1, None, "web", "GET /");
        one.attributes = values.as_object().unwrap().clone();
        store.write_spans(&[one]).await.unwrap();
        let texts: Vec<(String, String)> = sqlx::query_as(
            "SELECT j.key, CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
             ELSE CAST(j.value AS TEXT) END FROM json_each(?) AS j",
        )
        .bind(serde_json::to_string(&values).unwrap())
        .fetch_all(&store.readers)
        .await
        .unwrap();
        assert_eq!(texts.len(), 12);
        assert!(texts.contains(&("huge".to_owned(), "1.0e+300".to_owned())));
        for (key, text) in texts {
            let query = TraceQuery {
                tags: vec![(key, text)],
                end_unix_nano: i64::MAX,
                limit: 10,
                ..TraceQuery::default()
            };
            let found = store.find_traces(&query).await.unwrap();
            assert_eq!(found.trace_ids, [TraceId([7; 16])], "{:?}", query.tags);
        }
        for value in ["502", "-42", "GET /", "true", "x"] {
            assert!(verbatim_in_json(value), "{value}");
        }
        for value in [
            "502.0", "1e300", "inf", "NaN", "[1]", "{}", "a\"b", "a\\b", "x\ny", "",
        ] {
            assert!(!verbatim_in_json(value), "{value}");
        }
    }

    /// The catalog prune drops an (operation, kind) whose spans are gone, also when spans of
    /// the same operation with another kind remain, and keeps the rest.
    #[tokio::test]
    async fn the_prune_drops_each_kind_whose_spans_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("weft.db"))
            .await
            .unwrap();
        let mut client = span(1, None, "web", "GET /");
        client.kind = SpanKind::Client;
        client.trace_id = TraceId([1; 16]);
        client.start_unix_nano = MINUTE;
        let mut gone = span(2, None, "web", "GET /gone");
        gone.trace_id = TraceId([1; 16]);
        gone.start_unix_nano = MINUTE;
        let server = span(3, None, "web", "GET /");
        store.write_spans(&[client, gone, server]).await.unwrap();
        assert_eq!(store.operation_kinds("web", None).await.unwrap().len(), 3);
        // The two oldest: the CLIENT "GET /" and "GET /gone".
        assert_eq!(store.delete_oldest_spans(2).await.unwrap(), 2);
        store.prune_span_catalog().await.unwrap();
        let left = store.operation_kinds("web", None).await.unwrap();
        let left: Vec<(&str, SpanKind)> = left
            .iter()
            .map(|operation| (operation.name.as_str(), operation.kind))
            .collect();
        assert_eq!(left, [("GET /", SpanKind::Server)]);
    }
}
