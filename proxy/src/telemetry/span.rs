//! The request path's span: a compact record, encoded to OTLP only on the export task.
//!
//! A span used to be built on the request path as an `opentelemetry_proto` `Span`: ~20
//! `KeyValue`s with owned `String` keys and values, each a few allocations, then cloned and
//! encoded by prost on the same (single) worker thread. Here a span is two allocations: one
//! `String` holding every text value (the name first, then the values copied in), and one
//! `Vec` of attributes whose keys are `&'static str` and whose values are static strings,
//! integers or ranges of that text. The outcome (code, flags, sizes, error) stays as plain
//! fields until the span is recorded, when [`super::otlp`] writes its protobuf bytes into the
//! open batch.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::time::Instant;

use crate::trace::SpanContext;

/// An attribute value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    Static(&'static str),
    /// A range of the span's text.
    Text(u32, u32),
    Int(i64),
    /// A range of the span's text holding attributes already encoded (see
    /// [`EncodedAttributes`]); the key is unused.
    Encoded(u32, u32),
}

/// String attributes of a span encoded once, as `Span.attributes` `KeyValue`s, and copied into
/// every span as one run: this workload's own labels are the same on every span it makes.
#[derive(Clone, Debug)]
pub struct EncodedAttributes {
    /// The bytes, when they are valid UTF-8 (they are when every length fits in one byte) so
    /// that they fit in the span's text.
    encoded: Option<String>,
    /// The attributes one by one, when they are not.
    attributes: Vec<(&'static str, String)>,
}

impl EncodedAttributes {
    pub fn new(attributes: &[(&'static str, &str)]) -> Self {
        EncodedAttributes {
            encoded: String::from_utf8(super::otlp::span_attributes(attributes)).ok(),
            attributes: attributes
                .iter()
                .map(|&(key, value)| (key, value.to_owned()))
                .collect(),
        }
    }
}

/// An attribute: a static key and its value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Attribute {
    pub key: &'static str,
    pub value: Value,
}

/// A span event (a retry, a fault) with its one attribute.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub at: Instant,
    pub name: &'static str,
    pub attribute: Attribute,
}

/// The ids of a span and its W3C flags, as exported.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ids {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
}

impl Ids {
    fn of(context: &SpanContext) -> Self {
        Ids {
            trace_id: context.trace_id.to_bytes(),
            span_id: context.span_id.to_bytes(),
            parent_span_id: context.parent_span_id.map(|id| id.to_bytes()),
            sampled: context.sampling.is_sampled(),
        }
    }
}

/// The parts of a span known when the request (or the try) starts.
#[derive(Clone, Debug)]
pub struct SpanDraft {
    pub(crate) ids: Ids,
    pub(crate) kind: SpanKind,
    /// The name (`METHOD path`), then every other text value.
    pub(crate) text: String,
    pub(crate) name_len: u32,
    /// `tracestate` as received, a range of `text` (empty when absent).
    pub(crate) trace_state: (u32, u32),
    pub(crate) attributes: Vec<Attribute>,
    pub(crate) events: Vec<Event>,
    /// What every try shares (see [`SpanDraft::mark_shared`]): attributes and text lengths.
    shared: (usize, usize),
}

/// Attributes a span usually ends with: what the call sites add plus the outcome.
const ATTRIBUTES: usize = 24;
/// Text a span usually holds; more grows the string once.
const TEXT: usize = 240;

/// The two allocations of a span, its text and its attributes, empty: the span queue keeps
/// them once the span is encoded, when it is recorded (see `SpanSink::draft`), so that a span
/// costs no allocation on the request path.
#[derive(Debug)]
pub(crate) struct Storage {
    text: String,
    attributes: Vec<Attribute>,
}

impl Storage {
    pub(crate) fn new() -> Self {
        Storage {
            text: String::with_capacity(TEXT),
            attributes: Vec::with_capacity(ATTRIBUTES),
        }
    }

    /// Whether it is worth keeping: not grown far beyond a usual span by a long one.
    pub(crate) fn is_usual(&self) -> bool {
        self.text.capacity() <= 4 * TEXT && self.attributes.capacity() <= 2 * ATTRIBUTES
    }
}

impl SpanDraft {
    /// A span named `METHOD path`, with `http.request.method` and `url.path`.
    pub fn new(context: &SpanContext, kind: SpanKind, method: &http::Method, path: &str) -> Self {
        Self::new_in(Storage::new(), context, kind, method, path)
    }

    /// [`SpanDraft::new`] in `storage` (empty).
    pub(crate) fn new_in(
        storage: Storage,
        context: &SpanContext,
        kind: SpanKind,
        method: &http::Method,
        path: &str,
    ) -> Self {
        let Storage {
            mut text,
            attributes,
        } = storage;
        text.reserve(path.len() + 64);
        let mut draft = SpanDraft {
            ids: Ids::of(context),
            kind,
            text,
            name_len: 0,
            trace_state: (0, 0),
            attributes,
            events: Vec::new(),
            shared: (0, 0),
        };
        let (start, end) = draft.push_text(method.as_str());
        draft.push("http.request.method", Value::Text(start, end));
        draft.text.push(' ');
        let (start, end) = draft.push_text(path);
        draft.push("url.path", Value::Text(start, end));
        draft.name_len = end;
        // Copied: the header value shares hyper's read buffer, which a queued span must not
        // keep alive.
        if let Some(state) = context.tracestate.as_ref().and_then(|v| v.to_str().ok()) {
            draft.trace_state = draft.push_text(state);
        }
        draft.mark_shared();
        draft
    }

    /// The draft's storage, emptied, for the next span.
    pub(crate) fn into_storage(self) -> Storage {
        let SpanDraft {
            mut text,
            mut attributes,
            ..
        } = self;
        text.clear();
        attributes.clear();
        Storage { text, attributes }
    }

    /// Marks the attributes added so far as those of every try of the request: the ones
    /// added later belong to this try only.
    pub fn mark_shared(&mut self) {
        self.shared = (self.attributes.len(), self.text.len());
    }

    /// The draft of the next try under `context`'s ids: the same name and the attributes
    /// marked shared, without this try's own attributes and events.
    pub fn next_try(&self, context: &SpanContext) -> SpanDraft {
        let (attributes, text) = self.shared;
        let mut next_text = String::with_capacity(self.text.capacity());
        next_text.push_str(&self.text[..text]);
        let mut next_attributes = Vec::with_capacity(self.attributes.capacity());
        next_attributes.extend_from_slice(&self.attributes[..attributes]);
        SpanDraft {
            ids: Ids::of(context),
            kind: self.kind,
            text: next_text,
            name_len: self.name_len,
            // The trace state is the request's, written before anything else is shared.
            trace_state: self.trace_state,
            attributes: next_attributes,
            events: Vec::new(),
            shared: self.shared,
        }
    }

    /// Appends `value` to the text; returns its range.
    fn push_text(&mut self, value: &str) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.push_str(value);
        (start, self.text.len() as u32)
    }

    fn push(&mut self, key: &'static str, value: Value) {
        self.attributes.push(Attribute { key, value });
    }

    /// A string attribute whose value is copied into the span.
    pub fn string(&mut self, key: &'static str, value: &str) {
        let (start, end) = self.push_text(value);
        self.push(key, Value::Text(start, end));
    }

    /// A string attribute written with `Display` straight into the span (an address).
    pub fn display(&mut self, key: &'static str, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let start = self.text.len() as u32;
        // Writing into a `String` cannot fail.
        let _ = write!(self.text, "{value}");
        let end = self.text.len() as u32;
        self.push(key, Value::Text(start, end));
    }

    /// A string attribute holding an IP address, as `Display` writes it; IPv4 without going
    /// through the formatting machinery (a few hundred instructions per span).
    pub fn ip(&mut self, key: &'static str, ip: std::net::IpAddr) {
        let std::net::IpAddr::V4(v4) = ip else {
            return self.display(key, ip);
        };
        let start = self.text.len() as u32;
        // "255.255.255.255"
        let mut dotted = [0u8; 15];
        let mut at = 0;
        for (index, octet) in v4.octets().into_iter().enumerate() {
            if index > 0 {
                dotted[at] = b'.';
                at += 1;
            }
            if octet >= 100 {
                dotted[at] = b'0' + octet / 100;
                at += 1;
            }
            if octet >= 10 {
                dotted[at] = b'0' + octet / 10 % 10;
                at += 1;
            }
            dotted[at] = b'0' + octet % 10;
            at += 1;
        }
        // ASCII digits and dots.
        self.text
            .push_str(std::str::from_utf8(&dotted[..at]).unwrap_or_default());
        let end = self.text.len() as u32;
        self.push(key, Value::Text(start, end));
    }

    /// The attributes of `block`, in its order.
    pub fn encoded(&mut self, block: &EncodedAttributes) {
        match &block.encoded {
            Some(encoded) => {
                let (start, end) = self.push_text(encoded);
                self.push("", Value::Encoded(start, end));
            }
            None => {
                for (key, value) in &block.attributes {
                    self.string(key, value);
                }
            }
        }
    }

    /// A string attribute whose value is a constant.
    pub fn static_string(&mut self, key: &'static str, value: &'static str) {
        self.push(key, Value::Static(value));
    }

    pub fn int(&mut self, key: &'static str, value: i64) {
        self.push(key, Value::Int(value));
    }

    /// The span's name.
    pub fn name(&self) -> &str {
        &self.text[..self.name_len as usize]
    }

    pub(crate) fn text(&self, start: u32, end: u32) -> &str {
        &self.text[start as usize..end as usize]
    }

    pub(crate) fn add_event(&mut self, name: &'static str, key: &'static str, value: Value) {
        self.events.push(Event {
            at: Instant::now(),
            name,
            attribute: Attribute { key, value },
        });
    }
}

/// A finished span, queued for export.
#[derive(Debug)]
pub struct SpanRecord {
    pub(crate) draft: SpanDraft,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) outcome: Outcome,
}

/// How a span's request (or try) ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome {
    /// The response code; 0 when there was none (e.g. the client went away).
    pub code: u16,
    /// Envoy response flags.
    pub flags: &'static str,
    /// A proxy-generated failure (no route, connect failure, ...).
    pub error: Option<&'static str>,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl Outcome {
    /// Status ERROR: a 5xx, no response at all, or a failure of the proxy's own.
    pub fn failed(&self) -> bool {
        self.code >= 500 || self.code == 0 || self.error.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::trace::{Sampler, SpanId};

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let context = SpanContext::sampled(None);
        let addresses = [
            IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 9, 99, 100)),
            IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255)),
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7)),
        ];
        for ip in addresses {
            let mut draft = SpanDraft::new(&context, SpanKind::Server, &http::Method::GET, "/");
            draft.ip("client.address", ip);
            let Value::Text(start, end) = draft.attributes[2].value else {
                panic!("{:?}", draft.attributes[2]);
            };
            assert_eq!(draft.text(start, end), ip.to_string());
        }
    }

    #[test]
    fn the_next_try_keeps_the_shared_attributes_only() {
        let context = SpanContext {
            tracestate: Some(http::HeaderValue::from_static("k=v")),
            ..SpanContext::sampled(Some(SpanId::random()))
        };
        let mut first = SpanDraft::new(&context, SpanKind::Client, &http::Method::PUT, "/a");
        first.string("weft.upstream_cluster", "outbound|80||a");
        first.mark_shared();
        first.int("weft.retry.attempt", 0);
        first.string("network.peer.address", "10.0.0.1:80");
        first.add_event("retry", "weft.retry.reason", Value::Static("reset"));

        let sibling = Sampler::child_of(&context);
        let next = first.next_try(&sibling);
        assert_eq!(next.name(), "PUT /a");
        assert_eq!(next.ids.span_id, sibling.span_id.to_bytes());
        assert_eq!(next.ids.trace_id, context.trace_id.to_bytes());
        assert_eq!(next.text(next.trace_state.0, next.trace_state.1), "k=v");
        let keys: Vec<_> = next.attributes.iter().map(|a| a.key).collect();
        assert_eq!(
            keys,
            ["http.request.method", "url.path", "weft.upstream_cluster"]
        );
        assert_eq!(next.attributes, first.attributes[..3]);
        assert!(next.events.is_empty());
        assert_eq!(next.text, "PUT /ak=voutbound|80||a");
    }
}
