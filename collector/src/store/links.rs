//! Service dependency links counted at ingest (`dependency_links`,
//! migration 0007): what both backends share.
//!
//! A link is a pair of stored spans (child, parent) of one trace where the
//! child is not INTERNAL and the parent belongs to another service; it counts
//! in the minute of the child's start. A pair is counted by the write that
//! stores the second of its two spans (whichever arrives last, in any batch)
//! and uncounted by the delete that removes the first of them, so the counts
//! always equal the pairs of the stored spans. Both backends serialize the
//! writes and deletes of one trace (SQLite has one writer; PostgreSQL takes
//! a transaction-level advisory lock per trace) so that a pair split across
//! two concurrent transactions is seen by the later one.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Span, SpanId, TraceId};

/// The bucket width of `dependency_links`.
pub(crate) const MINUTE_NANO: i64 = 60_000_000_000;

/// The minute bucket of a time (floor division).
pub(crate) fn minute(unix_nano: i64) -> i64 {
    unix_nano.div_euclid(MINUTE_NANO)
}

/// What a link needs of a stored span (columns [`LINK_SPAN_COLUMNS`]).
pub(crate) struct LinkSpan {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Option<Vec<u8>>,
    pub service_name: String,
    pub kind: i32,
    pub status_code: i32,
    pub start_unix_nano: i64,
}

/// What [`links_touching`] reads of a span, borrowed from a [`LinkSpan`]
/// read back from the database or from a [`Span`] of the batch being
/// written.
#[derive(Clone, Copy)]
pub(crate) struct LinkView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: Option<&'a [u8]>,
    pub service_name: &'a str,
    pub kind: i32,
    pub status_code: i32,
    pub start_unix_nano: i64,
}

impl LinkSpan {
    pub fn view(&self) -> LinkView<'_> {
        LinkView {
            trace_id: &self.trace_id,
            span_id: &self.span_id,
            parent_span_id: self.parent_span_id.as_deref(),
            service_name: &self.service_name,
            kind: self.kind,
            status_code: self.status_code,
            start_unix_nano: self.start_unix_nano,
        }
    }
}

impl<'a> From<&'a Span> for LinkView<'a> {
    fn from(span: &'a Span) -> Self {
        LinkView {
            trace_id: &span.trace_id.0,
            span_id: &span.span_id.0,
            parent_span_id: span.parent_span_id.as_ref().map(|id| id.0.as_slice()),
            service_name: &span.service_name,
            kind: span.kind.as_i32(),
            status_code: span.status_code.as_i32(),
            start_unix_nano: span.start_unix_nano,
        }
    }
}

/// The positions of the spans of a batch (`keys`, in order) to insert: the
/// first of each (trace id, span id) of the batch, unless it is among the
/// `stored` spans of the batch's traces (writes are idempotent).
pub(crate) fn spans_to_insert(
    keys: impl Iterator<Item = (TraceId, SpanId)>,
    stored: &[LinkSpan],
) -> Vec<usize> {
    let stored: HashSet<(&[u8], &[u8])> = stored
        .iter()
        .map(|span| (span.trace_id.as_slice(), span.span_id.as_slice()))
        .collect();
    let mut seen = HashSet::new();
    keys.enumerate()
        .filter(|(_, (trace_id, span_id))| {
            seen.insert((*trace_id, *span_id))
                && !stored.contains(&(trace_id.0.as_slice(), span_id.0.as_slice()))
        })
        .map(|(index, _)| index)
        .collect()
}

/// The span columns [`LinkSpan`] is read from, in order.
pub(crate) const LINK_SPAN_COLUMNS: &str =
    "trace_id, span_id, parent_span_id, service_name, kind, status_code, start_unix_nano";

/// Reads a [`LinkSpan`] from a row selected with [`LINK_SPAN_COLUMNS`].
macro_rules! link_span {
    ($row:expr, $small:ty) => {
        $crate::store::links::LinkSpan {
            trace_id: $row.try_get(0)?,
            span_id: $row.try_get(1)?,
            parent_span_id: $row.try_get(2)?,
            service_name: $row.try_get(3)?,
            kind: i32::try_from($row.try_get::<$small, _>(4)?).unwrap_or(0),
            status_code: i32::try_from($row.try_get::<$small, _>(5)?).unwrap_or(0),
            start_unix_nano: $row.try_get(6)?,
        }
    };
}
pub(crate) use link_span;

/// (minute, parent service, child service) → (calls, errors) changes.
pub(crate) type LinkChanges = BTreeMap<LinkKey, (i64, i64)>;
/// (minute, parent service, child service).
pub(crate) type LinkKey = (i64, String, String);

/// The changes that change something (a link counted and uncounted in one
/// write nets to zero and leaves its row alone).
pub(crate) fn effective_changes(changes: &LinkChanges) -> Vec<(&LinkKey, &(i64, i64))> {
    changes
        .iter()
        .filter(|(_, (calls, errors))| *calls != 0 || *errors != 0)
        .collect()
}

const INTERNAL: i32 = 1;
const ERROR: i32 = 2;

/// The links among `spans` (every span of some traces, each once) that
/// involve at least one of its first `changed` spans (the spans just
/// inserted or being deleted), each counted `sign` (1 for spans just
/// inserted, -1 for spans being deleted).
pub(crate) fn links_touching(
    spans: &[LinkView<'_>],
    changed: usize,
    sign: i64,
    into: &mut LinkChanges,
) {
    let by_id: HashMap<(&[u8], &[u8]), usize> = spans
        .iter()
        .enumerate()
        .map(|(index, span)| ((span.trace_id, span.span_id), index))
        .collect();
    for (child_index, child) in spans.iter().enumerate() {
        if child.kind == INTERNAL {
            continue;
        }
        let Some(parent_id) = child.parent_span_id else {
            continue;
        };
        let Some(&parent_index) = by_id.get(&(child.trace_id, parent_id)) else {
            continue;
        };
        let parent = &spans[parent_index];
        if parent.service_name == child.service_name {
            continue;
        }
        if child_index >= changed && parent_index >= changed {
            continue;
        }
        let entry = into
            .entry((
                minute(child.start_unix_nano),
                parent.service_name.to_owned(),
                child.service_name.to_owned(),
            ))
            .or_insert((0, 0));
        entry.0 += sign;
        if child.status_code == ERROR {
            entry.1 += sign;
        }
    }
}

/// The advisory-lock key of a trace: its two halves XORed (trace ids are
/// not always random: some generators fix one half).
pub(crate) fn lock_key(trace_id: &[u8]) -> i64 {
    let mut bytes = [0u8; 16];
    for (to, from) in bytes.iter_mut().zip(trace_id) {
        *to = *from;
    }
    let half = |range: std::ops::Range<usize>| {
        let mut half = [0u8; 8];
        half.copy_from_slice(&bytes[range]);
        i64::from_be_bytes(half)
    };
    half(0..8) ^ half(8..16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first of each (trace, span) of a batch is inserted, unless stored.
    #[test]
    fn a_batch_inserts_each_new_span_once() {
        let key = |trace: u8, id: u8| (TraceId([trace; 16]), SpanId([id; 8]));
        let mut stored = span(2, None, "web", 2, 0);
        stored.trace_id = vec![7; 16];
        let batch = [key(7, 1), key(7, 2), key(7, 1), key(8, 2), key(8, 2)];
        assert_eq!(spans_to_insert(batch.into_iter(), &[stored]), [0, 3]);
        assert_eq!(spans_to_insert(batch.into_iter(), &[]), [0, 1, 3]);
    }

    fn span(id: u8, parent: Option<u8>, service: &str, kind: i32, status: i32) -> LinkSpan {
        LinkSpan {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|parent| vec![parent; 8]),
            service_name: service.to_owned(),
            kind,
            status_code: status,
            start_unix_nano: MINUTE_NANO * 10 + i64::from(id),
        }
    }

    #[test]
    fn pairs_touching_the_changed_spans_count_once() {
        let spans = [
            span(1, None, "web", 2, 0),
            span(2, Some(1), "db", 2, 2),
            span(3, Some(1), "web", 3, 0),
            span(4, Some(3), "cache", INTERNAL, 0),
            span(5, Some(3), "cache", 3, 0),
        ];
        // The changed spans first, then the others.
        let views = |changed: &[u8]| -> Vec<LinkView<'_>> {
            let first = spans
                .iter()
                .filter(|span| changed.contains(&span.span_id[0]));
            let rest = spans
                .iter()
                .filter(|span| !changed.contains(&span.span_id[0]));
            first.chain(rest).map(LinkSpan::view).collect()
        };
        let mut changes = LinkChanges::new();
        // The parent arrived last: both of its cross-service children count.
        links_touching(&views(&[1]), 1, 1, &mut changes);
        assert_eq!(
            changes,
            [((10, "web".to_owned(), "db".to_owned()), (1, 1))]
                .into_iter()
                .collect()
        );
        // Span 5 and its parent 3 both changed: one call.
        links_touching(&views(&[3, 5]), 2, -1, &mut changes);
        assert_eq!(
            changes,
            [
                ((10, "web".to_owned(), "cache".to_owned()), (-1, 0)),
                ((10, "web".to_owned(), "db".to_owned()), (1, 1)),
            ]
            .into_iter()
            .collect()
        );
        // Nothing changed: nothing counts.
        links_touching(&views(&[]), 0, 1, &mut changes);
        assert_eq!(changes.len(), 2);
        assert_eq!(minute(-1), -1);
        assert_eq!(
            lock_key(&[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 9]),
            267
        );
        assert_ne!(
            lock_key(&[[7; 8], [1; 8]].concat()),
            lock_key(&[[7; 8], [2; 8]].concat())
        );
    }
}
