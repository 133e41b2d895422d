//! Row models shared by the backends: how domain types become column values
//! and back. The backends only differ in SQL and placeholders.

use std::sync::Arc;

use super::{
    Attributes, Event, Labels, Link, PointValue, Scope, Span, SpanId, SpanKind, StatusCode,
    StoreError, TraceId,
};

/// A span as column values read back ([`SpanValues`] is the write side).
/// JSON columns are text here; PostgreSQL casts them to and from `jsonb` in
/// SQL.
pub(crate) struct SpanRow {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Option<Vec<u8>>,
    pub service_name: String,
    pub service_version: Option<String>,
    pub operation: String,
    pub kind: i32,
    pub start_unix_nano: i64,
    pub duration_nano: i64,
    pub status_code: i32,
    pub status_message: String,
    pub trace_state: String,
    pub flags: i64,
    pub attributes: String,
    pub events: String,
    pub links: String,
    pub resource: String,
    pub scope: String,
}

/// Reads a [`SpanRow`] from a database row with the column names of the
/// `spans` table (JSON columns as text).
macro_rules! span_row {
    ($row:expr) => {
        $crate::store::row::SpanRow {
            trace_id: $row.try_get("trace_id")?,
            span_id: $row.try_get("span_id")?,
            parent_span_id: $row.try_get("parent_span_id")?,
            service_name: $row.try_get("service_name")?,
            service_version: $row.try_get("service_version")?,
            operation: $row.try_get("operation")?,
            kind: $row.try_get("kind")?,
            start_unix_nano: $row.try_get("start_unix_nano")?,
            duration_nano: $row.try_get("duration_nano")?,
            status_code: $row.try_get("status_code")?,
            status_message: $row.try_get("status_message")?,
            trace_state: $row.try_get("trace_state")?,
            flags: $row.try_get("flags")?,
            attributes: $row.try_get("attributes")?,
            events: $row.try_get("events")?,
            links: $row.try_get("links")?,
            resource: $row.try_get("resource")?,
            scope: $row.try_get("scope")?,
        }
    };
}
pub(crate) use span_row;

/// The column values of a span to insert (the write side of [`SpanRow`]).
///
/// Built on the async workers before the writer connection is taken, so
/// that the connection only runs SQL. The JSON of a resource and scope is
/// encoded once per run of spans that share it (the spans of one
/// `ResourceSpans`) and shared, as are empty event and link lists and the
/// few distinct service, version and operation names of a batch: a shared
/// `Arc<str>` binds without a copy.
pub(crate) struct SpanValues {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Option<Vec<u8>>,
    pub service_name: Arc<str>,
    pub service_version: Option<Arc<str>>,
    pub operation: Arc<str>,
    pub kind: i32,
    pub start_unix_nano: i64,
    pub duration_nano: i64,
    pub status_code: i32,
    pub status_message: String,
    pub trace_state: String,
    pub flags: i64,
    pub attributes: String,
    pub events: Arc<str>,
    pub links: Arc<str>,
    pub resource: Arc<str>,
    pub scope: Arc<str>,
}

// === impl SpanValues ===

impl SpanValues {
    /// The values of every span of a batch, in order.
    pub fn from_spans(spans: &[Span]) -> Result<Vec<Self>, StoreError> {
        let empty_list: Arc<str> = Arc::from("[]");
        let mut names = Interner::default();
        let mut rows: Vec<Self> = Vec::with_capacity(spans.len());
        let mut previous: Option<&Span> = None;
        for span in spans {
            let shared = previous.zip(rows.last());
            let resource = match shared {
                Some((before, row))
                    if Arc::ptr_eq(&before.resource, &span.resource)
                        || before.resource == span.resource =>
                {
                    row.resource.clone()
                }
                _ => Arc::from(to_json(&*span.resource)?),
            };
            let scope = match shared {
                Some((before, row)) if before.scope == span.scope => row.scope.clone(),
                _ => Arc::from(to_json(&span.scope)?),
            };
            rows.push(Self {
                trace_id: span.trace_id.0.to_vec(),
                span_id: span.span_id.0.to_vec(),
                parent_span_id: span.parent_span_id.map(|id| id.0.to_vec()),
                service_name: names.get(&span.service_name),
                service_version: span
                    .service_version
                    .as_deref()
                    .map(|version| names.get(version)),
                operation: names.get(&span.operation),
                kind: span.kind.as_i32(),
                start_unix_nano: span.start_unix_nano,
                duration_nano: span.duration_nano,
                status_code: span.status_code.as_i32(),
                status_message: span.status_message.clone(),
                trace_state: span.trace_state.clone(),
                flags: i64::from(span.flags),
                attributes: to_json(&span.attributes)?,
                events: if span.events.is_empty() {
                    empty_list.clone()
                } else {
                    Arc::from(to_json(&span.events)?)
                },
                links: if span.links.is_empty() {
                    empty_list.clone()
                } else {
                    Arc::from(to_json(&span.links)?)
                },
                resource,
                scope,
            });
            previous = Some(span);
        }
        Ok(rows)
    }
}

/// One shared copy of each distinct string of a batch (service and span
/// names: a few dozen per batch of hundreds of spans).
#[derive(Default)]
pub(crate) struct Interner<'a> {
    strings: std::collections::HashMap<&'a str, Arc<str>>,
}

impl<'a> Interner<'a> {
    pub fn get(&mut self, text: &'a str) -> Arc<str> {
        self.strings
            .entry(text)
            .or_insert_with(|| Arc::from(text))
            .clone()
    }
}

// === impl SpanRow ===

impl SpanRow {
    pub fn into_span(self) -> Result<Span, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("span column {what}"));
        Ok(Span {
            trace_id: TraceId::from_bytes(&self.trace_id).ok_or_else(|| corrupt("trace_id"))?,
            span_id: SpanId::from_bytes(&self.span_id).ok_or_else(|| corrupt("span_id"))?,
            parent_span_id: self.parent_span_id.as_deref().and_then(SpanId::from_bytes),
            service_name: self.service_name,
            service_version: self.service_version,
            operation: self.operation,
            kind: SpanKind::from_i32(self.kind).ok_or_else(|| corrupt("kind"))?,
            start_unix_nano: self.start_unix_nano,
            duration_nano: self.duration_nano,
            status_code: StatusCode::from_i32(self.status_code)
                .ok_or_else(|| corrupt("status_code"))?,
            status_message: self.status_message,
            trace_state: self.trace_state,
            flags: u32::try_from(self.flags).map_err(|_| corrupt("flags"))?,
            attributes: from_json::<Attributes>(&self.attributes, "attributes")?,
            events: from_json::<Vec<Event>>(&self.events, "events")?,
            links: from_json::<Vec<Link>>(&self.links, "links")?,
            resource: Arc::new(from_json::<Attributes>(&self.resource, "resource")?),
            scope: from_json::<Scope>(&self.scope, "scope")?,
        })
    }
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    column: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("column {column}: {error}")))
}

/// The canonical text of a label set (keys sorted): the identity of a series.
pub(crate) fn labels_json(labels: &Labels) -> Result<String, StoreError> {
    to_json(labels)
}

/// Orders spans like [`super::Store::get_traces`] promises: by the position
/// of their trace in `trace_ids`, then by start time.
pub(crate) fn order_by_request(trace_ids: &[TraceId], spans: &mut [Span]) {
    let position = |id: &TraceId| trace_ids.iter().position(|wanted| wanted == id);
    spans.sort_by_key(|span| (position(&span.trace_id), span.start_unix_nano, span.span_id));
}

/// Drops duplicate ids while keeping the first occurrence's order.
pub(crate) fn unique_ids(trace_ids: &[TraceId]) -> Vec<TraceId> {
    let mut seen = std::collections::HashSet::new();
    trace_ids
        .iter()
        .copied()
        .filter(|id| seen.insert(*id))
        .collect()
}

/// The value columns of `metric_points` for one point.
pub(crate) struct PointColumns {
    pub value: Option<f64>,
    pub count: Option<i64>,
    pub sum: Option<f64>,
    pub bucket_counts: Option<String>,
    pub explicit_bounds: Option<String>,
}

impl PointColumns {
    pub fn new(value: &PointValue) -> Result<Self, StoreError> {
        let count_column = |count: u64| Some(i64::try_from(count).unwrap_or(i64::MAX));
        Ok(match value {
            PointValue::Number(value) => Self {
                value: Some(*value),
                count: None,
                sum: None,
                bucket_counts: None,
                explicit_bounds: None,
            },
            PointValue::Histogram {
                count,
                sum,
                bucket_counts,
                explicit_bounds,
            } => Self {
                value: None,
                count: count_column(*count),
                sum: *sum,
                bucket_counts: Some(to_json(bucket_counts)?),
                explicit_bounds: Some(to_json(explicit_bounds)?),
            },
            PointValue::CountSum { count, sum } => Self {
                value: None,
                count: count_column(*count),
                sum: *sum,
                bucket_counts: None,
                explicit_bounds: None,
            },
        })
    }
}

/// The span's `peer.service` attribute (its remote service), if a
/// non-empty string.
pub(crate) fn peer_service(span: &super::Span) -> Option<&str> {
    span.attributes
        .get("peer.service")
        .and_then(serde_json::Value::as_str)
        .filter(|remote| !remote.is_empty())
}

/// `(operation, kind)` columns → [`super::Operation`]s.
pub(crate) fn operation_rows(
    rows: impl Iterator<Item = (Result<String, sqlx::Error>, Result<i32, sqlx::Error>)>,
) -> Result<Vec<super::Operation>, StoreError> {
    let mut operations = Vec::new();
    for (name, kind) in rows {
        let kind = kind?;
        operations.push(super::Operation {
            name: name?,
            kind: SpanKind::from_i32(kind)
                .ok_or_else(|| StoreError::Corrupt(format!("operations.kind {kind}")))?,
        });
    }
    Ok(operations)
}

/// Zipkin shared spans (see `crate::zipkin::model`): the server half of a
/// B3 single-span RPC is stored under a derived id as a child of the client
/// span, with attribute `zipkin.shared = true`. Its children in the same
/// service still name the shared id as their parent; this points them at
/// the server half, as Jaeger's span-id uniquifier does.
pub(crate) fn reparent_under_shared(spans: &mut [super::Span]) {
    let shared: Vec<(TraceId, SpanId, SpanId, String)> = spans
        .iter()
        .filter(|span| span.attributes.get("zipkin.shared") == Some(&serde_json::Value::Bool(true)))
        .filter_map(|span| {
            span.parent_span_id.map(|client| {
                (
                    span.trace_id,
                    client,
                    span.span_id,
                    span.service_name.clone(),
                )
            })
        })
        .collect();
    if shared.is_empty() {
        return;
    }
    for span in spans.iter_mut() {
        for (trace_id, client, server, service) in &shared {
            if span.trace_id == *trace_id
                && span.parent_span_id == Some(*client)
                && span.span_id != *server
                && span.service_name == *service
            {
                span.parent_span_id = Some(*server);
            }
        }
    }
}
