//! The tag index (`trace_tags`, migration 0008): one row per (trace,
//! service, key, value) of the stored spans' span and resource attributes,
//! carrying the trace's start, so that a search by service and tag walks an
//! index newest first instead of parsing every span of the service.
//!
//! Written at ingest from the spans actually inserted, rebuilt from the
//! remaining spans by the retention deletes. Only short strings, bools and
//! integers are indexed ([`value_text`]); [`indexable`] tells the search
//! which tag filters the index answers.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{Attributes, Span, StoreError, TraceId};

/// Longest indexed key and value, in bytes (the migrations repeat it).
pub(crate) const MAX_TAG_BYTES: usize = 128;

/// Trace ids per statement when reading starts or rebuilding rows.
const CHUNK: usize = 500;

/// The text a tag filter compares an attribute value with, if the index
/// holds it: strings as they are, bools as `true`/`false`, integers in
/// decimal. Doubles (whose text differs between the databases), arrays,
/// objects, nulls and values longer than [`MAX_TAG_BYTES`] are not indexed.
pub(crate) fn value_text(value: &Value) -> Option<Cow<'_, str>> {
    let text = match value {
        Value::String(text) => Cow::Borrowed(text.as_str()),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(number) => Cow::Owned(number.as_i64()?.to_string()),
        _ => return None,
    };
    (text.len() <= MAX_TAG_BYTES).then_some(text)
}

/// Whether every attribute matching the filter `key` = `value` is in the
/// index: the value could not be the text of a double, an array or an
/// object, and key and value are short enough.
pub(crate) fn indexable(key: &str, value: &str) -> bool {
    let double = value.parse::<f64>().is_ok() && value.parse::<i64>().is_err();
    key.len() <= MAX_TAG_BYTES
        && value.len() <= MAX_TAG_BYTES
        && !double
        && !value.starts_with(['[', '{'])
}

/// (service, key, value text) of one index row.
type Tag<'a> = (&'a str, &'a str, Cow<'a, str>);

/// The index rows one batch adds to one trace.
struct TraceTags<'a> {
    trace_id: TraceId,
    /// The earliest start among the batch's spans of the trace.
    start: i64,
    /// (service, key, value), deduplicated.
    tags: BTreeSet<Tag<'a>>,
}

/// Groups the inserted spans' indexable tags per trace, sorted by trace id.
fn trace_tags<'a>(spans: impl Iterator<Item = &'a Span>) -> Vec<TraceTags<'a>> {
    let mut by_trace: BTreeMap<TraceId, TraceTags<'a>> = BTreeMap::new();
    for span in spans {
        let entry = by_trace.entry(span.trace_id).or_insert_with(|| TraceTags {
            trace_id: span.trace_id,
            start: span.start_unix_nano,
            tags: BTreeSet::new(),
        });
        entry.start = entry.start.min(span.start_unix_nano);
        let service = span.service_name.as_str();
        for attributes in [&span.attributes, &span.resource] {
            add_tags(&mut entry.tags, service, attributes);
        }
    }
    by_trace.into_values().collect()
}

fn add_tags<'a>(tags: &mut BTreeSet<Tag<'a>>, service: &'a str, attributes: &'a Attributes) {
    for (key, value) in attributes {
        if key.len() <= MAX_TAG_BYTES
            && let Some(text) = value_text(value)
        {
            tags.insert((service, key.as_str(), text));
        }
    }
}

/// What the index rows of a batch need besides the tags: the trace start
/// after the batch, and whether it moved earlier (the stored rows of the
/// trace then carry the old start).
struct Starts {
    /// trace id → (start after the batch, moved).
    by_trace: HashMap<TraceId, (i64, bool)>,
}

impl Starts {
    /// From the stored starts (read before the batch's summaries are
    /// merged, or after: the minimum is the same).
    fn new(traces: &[TraceTags<'_>], stored: &HashMap<Vec<u8>, i64>) -> Self {
        let by_trace = traces
            .iter()
            .map(|trace| {
                let start = match stored.get(trace.trace_id.0.as_slice()) {
                    Some(&stored) if stored <= trace.start => (stored, false),
                    Some(_) => (trace.start, true),
                    None => (trace.start, false),
                };
                (trace.trace_id, start)
            })
            .collect();
        Self { by_trace }
    }

    fn start(&self, trace: &TraceTags<'_>) -> i64 {
        self.by_trace
            .get(&trace.trace_id)
            .map_or(trace.start, |s| s.0)
    }

    fn moved(&self) -> impl Iterator<Item = (&TraceId, i64)> {
        self.by_trace
            .iter()
            .filter(|(_, (_, moved))| *moved)
            .map(|(id, (start, _))| (id, *start))
    }
}

// === SQLite ===

/// Rows per multi-row INSERT (5 parameters each).
const SQLITE_ROWS: [usize; 3] = [100, 10, 1];

fn sqlite_insert(rows: usize) -> &'static str {
    use std::sync::OnceLock;
    static SQL: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = SQLITE_ROWS
        .iter()
        .position(|size| *size == rows)
        .unwrap_or(2);
    SQL[slot].get_or_init(|| {
        let mut sql = String::from(
            "INSERT INTO trace_tags (trace_id, service_name, key, value, trace_start) VALUES ",
        );
        for row in 0..SQLITE_ROWS[slot] {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?, ?, ?)");
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        sql
    })
}

/// Adds the index rows of the inserted `spans` (SQLite).
pub(crate) async fn write_sqlite<'a>(
    tx: &mut sqlx::SqliteConnection,
    spans: impl Iterator<Item = &'a Span>,
) -> Result<(), StoreError> {
    let traces = trace_tags(spans);
    if traces.is_empty() {
        return Ok(());
    }
    let mut stored = HashMap::new();
    for chunk in traces.chunks(CHUNK) {
        let mut select = QueryBuilder::<Sqlite>::new(
            "SELECT trace_id, start_unix_nano FROM trace_summaries WHERE trace_id IN (",
        );
        let mut separated = select.separated(", ");
        for trace in chunk {
            separated.push_bind(trace.trace_id.0.to_vec());
        }
        select.push(")");
        for row in select.build().fetch_all(&mut *tx).await? {
            stored.insert(row.try_get::<Vec<u8>, _>(0)?, row.try_get::<i64, _>(1)?);
        }
    }
    let starts = Starts::new(&traces, &stored);
    for (trace_id, start) in starts.moved() {
        sqlx::query("UPDATE trace_tags SET trace_start = ?2 WHERE trace_id = ?1")
            .bind(trace_id.0.to_vec())
            .bind(start)
            .execute(&mut *tx)
            .await?;
    }
    let rows: Vec<(&TraceTags<'_>, i64, &Tag<'_>)> = traces
        .iter()
        .flat_map(|trace| {
            let start = starts.start(trace);
            trace.tags.iter().map(move |tag| (trace, start, tag))
        })
        .collect();
    let mut rest = rows.as_slice();
    while !rest.is_empty() {
        let size = SQLITE_ROWS
            .into_iter()
            .find(|size| *size <= rest.len())
            .unwrap_or(1);
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut query = sqlx::query(sqlite_insert(size));
        for (trace, start, (service, key, value)) in chunk {
            query = query
                .bind(trace.trace_id.0.to_vec())
                .bind(*service)
                .bind(*key)
                .bind(value.as_ref())
                .bind(*start);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Rebuilds the rows of one attribute column (`{column}`) of the spans of
/// the traces in the list that follows (SQLite; same rows as
/// [`value_text`], see migration 0008).
const SQLITE_REBUILD: &str = "INSERT OR IGNORE INTO trace_tags (trace_id, service_name, key, \
     value, trace_start) SELECT s.trace_id, s.service_name, j.key, \
     CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
     ELSE CAST(j.value AS TEXT) END, t.start_unix_nano \
     FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id, json_each(s.{column}) j \
     WHERE j.type IN ('text', 'integer', 'true', 'false') \
     AND length(CAST(j.key AS BLOB)) <= 128 \
     AND length(CAST(CAST(j.value AS TEXT) AS BLOB)) <= 128 AND s.trace_id IN (";

/// Recomputes the rows of `trace_ids` from their remaining spans, after a
/// delete and after their summaries were recomputed (SQLite).
pub(crate) async fn refresh_sqlite(
    tx: &mut sqlx::SqliteConnection,
    trace_ids: &[Vec<u8>],
) -> Result<(), StoreError> {
    for chunk in trace_ids.chunks(CHUNK) {
        let heads = [
            "DELETE FROM trace_tags WHERE trace_id IN (".to_owned(),
            SQLITE_REBUILD.replace("{column}", "attributes"),
            SQLITE_REBUILD.replace("{column}", "resource"),
        ];
        for head in heads {
            let mut builder = QueryBuilder::<Sqlite>::new(head);
            let mut separated = builder.separated(", ");
            for id in chunk {
                separated.push_bind(id.clone());
            }
            builder.push(")");
            builder.build().execute(&mut *tx).await?;
        }
    }
    Ok(())
}

// === PostgreSQL ===

const PG_SELECT_STARTS: &str =
    "SELECT trace_id, start_unix_nano FROM trace_summaries WHERE trace_id = ANY ($1)";
const PG_MOVE: &str = "UPDATE trace_tags g SET trace_start = u.start \
     FROM UNNEST($1::bytea[], $2::int8[]) AS u(trace_id, start) \
     WHERE g.trace_id = u.trace_id AND g.trace_start <> u.start";
const PG_INSERT: &str = "INSERT INTO trace_tags (trace_id, service_name, key, value, \
     trace_start) SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::text[], $4::text[], \
     $5::int8[]) ON CONFLICT DO NOTHING";
/// Recomputes the rows of the traces `$1` from their remaining spans (same
/// rows as [`value_text`], see migration 0008).
const PG_REFRESH: [&str; 2] = [
    "DELETE FROM trace_tags WHERE trace_id = ANY ($1)",
    "INSERT INTO trace_tags (trace_id, service_name, key, value, trace_start) \
     SELECT s.trace_id, s.service_name, j.key, j.value #>> '{}', t.start_unix_nano \
     FROM spans s JOIN trace_summaries t ON t.trace_id = s.trace_id \
     CROSS JOIN LATERAL (SELECT * FROM jsonb_each(s.attributes) \
         UNION ALL SELECT * FROM jsonb_each(s.resource)) AS j \
     WHERE s.trace_id = ANY ($1) AND CASE jsonb_typeof(j.value) \
         WHEN 'string' THEN true WHEN 'boolean' THEN true \
         WHEN 'number' THEN (j.value #>> '{}') ~ '^-?[0-9]{1,19}$' \
             AND (j.value #>> '{}')::numeric \
                 BETWEEN -9223372036854775808 AND 9223372036854775807 \
         ELSE false END \
     AND octet_length(j.key) <= 128 AND octet_length(j.value #>> '{}') <= 128 \
     ON CONFLICT DO NOTHING",
];

/// Adds the index rows of the inserted `spans` (PostgreSQL; the caller
/// holds the advisory locks of their traces).
pub(crate) async fn write_postgres(
    tx: &mut sqlx::PgConnection,
    spans: &[&Span],
) -> Result<(), StoreError> {
    let traces = trace_tags(spans.iter().copied());
    if traces.is_empty() {
        return Ok(());
    }
    let ids: Vec<Vec<u8>> = traces.iter().map(|t| t.trace_id.0.to_vec()).collect();
    let mut stored = HashMap::new();
    for row in sqlx::query(PG_SELECT_STARTS)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
    {
        stored.insert(row.try_get::<Vec<u8>, _>(0)?, row.try_get::<i64, _>(1)?);
    }
    let starts = Starts::new(&traces, &stored);
    let (moved_ids, moved_starts): (Vec<Vec<u8>>, Vec<i64>) = starts
        .moved()
        .map(|(id, start)| (id.0.to_vec(), start))
        .unzip();
    if !moved_ids.is_empty() {
        sqlx::query(PG_MOVE)
            .bind(moved_ids)
            .bind(moved_starts)
            .execute(&mut *tx)
            .await?;
    }
    let mut trace_ids = Vec::new();
    let mut services = Vec::new();
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut trace_starts = Vec::new();
    for (trace, id) in traces.iter().zip(&ids) {
        let start = starts.start(trace);
        for (service, key, value) in &trace.tags {
            trace_ids.push(id.as_slice());
            services.push(*service);
            keys.push(*key);
            values.push(value.as_ref());
            trace_starts.push(start);
        }
    }
    sqlx::query(PG_INSERT)
        .bind(trace_ids)
        .bind(services)
        .bind(keys)
        .bind(values)
        .bind(trace_starts)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Recomputes the rows of `trace_ids` from their remaining spans, after a
/// delete and after their summaries were recomputed (PostgreSQL).
pub(crate) async fn refresh_postgres(
    tx: &mut sqlx::PgConnection,
    trace_ids: &[Vec<u8>],
) -> Result<(), StoreError> {
    for sql in PG_REFRESH {
        sqlx::query(sql).bind(trace_ids).execute(&mut *tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_indexed_as_a_tag_filter_compares_them() {
        assert_eq!(value_text(&json!("502")).as_deref(), Some("502"));
        assert_eq!(value_text(&json!(502)).as_deref(), Some("502"));
        assert_eq!(value_text(&json!(-42)).as_deref(), Some("-42"));
        assert_eq!(value_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(value_text(&json!(false)).as_deref(), Some("false"));
        assert_eq!(value_text(&json!(1.5)), None);
        assert_eq!(value_text(&json!([1])), None);
        assert_eq!(value_text(&json!({"k": 1})), None);
        assert_eq!(value_text(&json!(null)), None);
        assert!(value_text(&json!("x".repeat(MAX_TAG_BYTES))).is_some());
        assert_eq!(value_text(&json!("x".repeat(MAX_TAG_BYTES + 1))), None);
    }

    #[test]
    fn filters_that_may_match_unindexed_values_are_not_indexable() {
        assert!(indexable("http.response.status_code", "502"));
        assert!(indexable("error", "true"));
        assert!(indexable("user", "user-7"));
        assert!(indexable("n", "-0"));
        assert!(!indexable("f", "1.5"));
        assert!(!indexable("f", "1e20"));
        assert!(!indexable("f", "100000000000000000000"));
        assert!(!indexable("list", "[1,\"two\"]"));
        assert!(!indexable("map", "{\"k\":\"v\"}"));
        assert!(!indexable("long", &"x".repeat(MAX_TAG_BYTES + 1)));
        assert!(!indexable(&"k".repeat(MAX_TAG_BYTES + 1), "v"));
    }
}
