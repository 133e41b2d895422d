//! The protobuf bytes of an OTLP `ExportTraceServiceRequest`, written straight from
//! [`SpanRecord`]s, one span at a time as each is recorded.
//!
//! Written by hand rather than through the prost-generated types: those own every string and
//! byte array, so a span would have to be rebuilt as ~20 `KeyValue`s (two `String`s each) only
//! to be encoded and freed. That copy was most of the proxies' cost of a span. The wire format
//! is the one of `opentelemetry/proto/trace/v1/trace.proto` (field numbers below); the tests
//! decode the output with the generated types and compare it with the spans built the old way.
//! All spans of a batch share one `ResourceSpans` and one `ScopeSpans`, encoded once per
//! exporter.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tokio::time::Instant;

use super::span::{Attribute, Event, SpanDraft, SpanRecord, Value};

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `Status.code` ERROR.
const STATUS_ERROR: u64 = 2;
/// `Span.flags`: the parent's context is known (bit 8) and it is remote (bit 9).
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// Encodes span batches for one exporter (its resource and scope are fixed).
pub struct BatchEncoder {
    /// `ResourceSpans.resource` (1), then `ScopeSpans` tag: the fixed head of every batch,
    /// without the lengths.
    resource: Vec<u8>,
    /// `ScopeSpans.scope` (1) with its key and length.
    scope: Vec<u8>,
}

/// Converts the request path's monotonic instants into Unix nanoseconds: one reading of both
/// clocks per batch instead of a `SystemTime::now()` per span and event.
#[derive(Clone, Copy)]
pub struct Clock {
    instant: Instant,
    unix_nanos: u64,
}

impl Clock {
    pub fn now() -> Self {
        Clock {
            instant: Instant::now(),
            unix_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        }
    }

    pub fn unix_nanos(&self, at: Instant) -> u64 {
        if at <= self.instant {
            let ago = self.instant.duration_since(at).as_nanos() as u64;
            self.unix_nanos.saturating_sub(ago)
        } else {
            let ahead = at.duration_since(self.instant).as_nanos() as u64;
            self.unix_nanos.saturating_add(ahead)
        }
    }
}

impl BatchEncoder {
    pub fn new(resource: &Resource, scope: &InstrumentationScope) -> Self {
        let mut head = Vec::new();
        bytes_field(&mut head, 1, &resource.encode_to_vec());
        let mut scope_field = Vec::new();
        bytes_field(&mut scope_field, 1, &scope.encode_to_vec());
        BatchEncoder {
            resource: head,
            scope: scope_field,
        }
    }

    /// `ExportTraceServiceRequest { resource_spans: [{ resource, scope_spans: [{ scope, spans }] }] }`.
    pub fn encode(&self, spans: &[SpanRecord], clock: &Clock) -> Bytes {
        let mut buf = Vec::new();
        self.open(&mut buf, spans.len());
        for span in spans {
            append_span(&mut buf, span, clock);
        }
        self.close(buf, Framing::None)
    }

    /// Starts a batch in `buf` (emptied) with room for `spans` usual spans: the spans are
    /// appended with [`append_span`] after a gap for the outer heads, whose lengths are known
    /// only once the batch is [closed](BatchEncoder::close).
    pub fn open(&self, buf: &mut Vec<u8>, spans: usize) {
        buf.clear();
        buf.reserve(self.gap() + self.scope.len() + spans * SPAN_BYTES);
        buf.resize(self.gap(), 0);
        buf.extend_from_slice(&self.scope);
    }

    /// The request of a batch [opened](BatchEncoder::open) in `buf`: its heads are written
    /// right before the spans, and the buffer becomes the `Bytes` as is (no copy). Framed
    /// for gRPC, the request is preceded by the gRPC message prefix (uncompressed, length),
    /// so that the bytes are the request's whole HTTP/2 body.
    pub fn close(&self, mut buf: Vec<u8>, framing: Framing) -> Bytes {
        let gap = self.gap();
        let scope_spans = buf.len() - gap;
        let mut head = Vec::with_capacity(gap);
        let resource_spans = self.resource.len() + 1 + varint_len(scope_spans as u64) + scope_spans;
        key(&mut head, 1, LEN);
        varint(&mut head, resource_spans as u64);
        head.extend_from_slice(&self.resource);
        key(&mut head, 2, LEN);
        varint(&mut head, scope_spans as u64);
        let mut start = gap - head.len();
        buf[start..gap].copy_from_slice(&head);
        if framing == Framing::Grpc {
            let message = u32::try_from(buf.len() - start).unwrap_or(u32::MAX);
            start -= GRPC_PREFIX;
            buf[start] = 0;
            buf[start + 1..start + GRPC_PREFIX].copy_from_slice(&message.to_be_bytes());
        }
        let mut bytes = Bytes::from(buf);
        bytes::Buf::advance(&mut bytes, start);
        bytes
    }

    /// Room for the heads: the gRPC prefix, the resource, and two keys and lengths of up to
    /// 5 bytes each.
    fn gap(&self) -> usize {
        GRPC_PREFIX + self.resource.len() + 2 * (1 + 5)
    }
}

/// How a closed batch is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The protobuf message alone (an OTLP/HTTP body).
    None,
    /// Preceded by the gRPC message prefix (an OTLP/gRPC body).
    Grpc,
}

/// A gRPC message's prefix: a compressed flag and a 4-byte big-endian length.
const GRPC_PREFIX: usize = 5;

/// Appends `span` to a batch [opened](BatchEncoder::open) in `buf` (`ScopeSpans.spans`, 2),
/// its instants converted by `clock`.
pub fn append_span(buf: &mut Vec<u8>, span: &SpanRecord, clock: &Clock) {
    message(buf, 2, 2, |buf| encode_span(buf, span, clock));
}

/// Bytes a span usually takes (a proxy span is 500–700): the batch buffer is sized once.
const SPAN_BYTES: usize = 768;

fn encode_span(buf: &mut Vec<u8>, span: &SpanRecord, clock: &Clock) {
    let draft = &span.draft;
    let ids = &draft.ids;
    bytes_field(buf, 1, &ids.trace_id);
    bytes_field(buf, 2, &ids.span_id);
    let (state_start, state_end) = draft.trace_state;
    if state_end > state_start {
        bytes_field(buf, 3, draft.text(state_start, state_end).as_bytes());
    }
    if let Some(parent) = &ids.parent_span_id {
        bytes_field(buf, 4, parent);
    }
    bytes_field(buf, 5, draft.name().as_bytes());
    key(buf, 6, VARINT);
    varint(buf, draft.kind as i32 as u64);
    fixed64(buf, 7, clock.unix_nanos(span.start));
    fixed64(buf, 8, clock.unix_nanos(span.end));
    for attribute in &draft.attributes {
        key_value(buf, 9, attribute, draft);
    }
    let outcome = &span.outcome;
    if outcome.code != 0 {
        int_key_value(buf, "http.response.status_code", i64::from(outcome.code));
    }
    string_key_value(buf, "weft.response_flags", outcome.flags);
    // Semantic conventions' `http.*.size`: wire bytes, head included.
    int_key_value(buf, "http.request.size", outcome.request_bytes as i64);
    int_key_value(buf, "http.response.size", outcome.response_bytes as i64);
    if let Some(reason) = outcome.error {
        string_key_value(buf, "error.type", reason);
    } else if outcome.code >= 500 {
        let mut digits = [0u8; 5];
        string_key_value(buf, "error.type", decimal(outcome.code, &mut digits));
    }
    for event in &draft.events {
        encode_event(buf, event, draft, clock);
    }
    if outcome.failed() {
        message(buf, 15, 1, |buf| {
            if let Some(reason) = outcome.error {
                bytes_field(buf, 2, reason.as_bytes());
            }
            key(buf, 3, VARINT);
            varint(buf, STATUS_ERROR);
        });
    }
    // Field 16, last as in prost's tag order.
    // W3C trace-flags in the low byte; every parent of a proxy span lives in another process.
    let flags = u32::from(ids.sampled)
        | if ids.parent_span_id.is_some() {
            HAS_IS_REMOTE | IS_REMOTE
        } else {
            HAS_IS_REMOTE
        };
    key(buf, 16, FIXED32);
    buf.extend_from_slice(&flags.to_le_bytes());
}

fn encode_event(buf: &mut Vec<u8>, event: &Event, draft: &SpanDraft, clock: &Clock) {
    message(buf, 11, 1, |buf| {
        fixed64(buf, 1, clock.unix_nanos(event.at));
        bytes_field(buf, 2, event.name.as_bytes());
        key_value(buf, 3, &event.attribute, draft);
    });
}

/// A `KeyValue` in field `tag`.
fn key_value(buf: &mut Vec<u8>, tag: u32, attribute: &Attribute, draft: &SpanDraft) {
    match attribute.value {
        Value::Static(value) => string_pair(buf, tag, attribute.key, value.as_bytes()),
        // Bytes, not `str`: slicing the text as a `str` checks both ends are char boundaries.
        Value::Text(start, end) => string_pair(
            buf,
            tag,
            attribute.key,
            &draft.text.as_bytes()[start as usize..end as usize],
        ),
        Value::Int(value) => int_pair(buf, tag, attribute.key, value),
        Value::Encoded(start, end) => {
            buf.extend_from_slice(&draft.text.as_bytes()[start as usize..end as usize]);
        }
    }
}

/// String attributes as they are written in `Span.attributes`, for
/// [`super::span::EncodedAttributes`].
pub(crate) fn span_attributes(attributes: &[(&'static str, &str)]) -> Vec<u8> {
    let mut buf = Vec::new();
    for (key, value) in attributes {
        string_key_value(&mut buf, key, value);
    }
    buf
}

/// A span attribute (`Span.attributes`, field 9) with a string value.
fn string_key_value(buf: &mut Vec<u8>, key: &str, value: &str) {
    string_pair(buf, 9, key, value.as_bytes());
}

fn int_key_value(buf: &mut Vec<u8>, key: &str, value: i64) {
    int_pair(buf, 9, key, value);
}

/// `KeyValue { key (1), value (2): AnyValue { string_value (1) } }`.
#[inline(always)]
fn string_pair(buf: &mut Vec<u8>, tag: u32, name: &str, value: &[u8]) {
    // `KeyValue` = key head (2) + name + value head (2) + `AnyValue` (2 + value): when that is
    // below 128, so is every length in it, and each takes one byte. Proxy attributes are.
    let pair = 6 + name.len() + value.len();
    if pair < 0x80 && tag < 16 {
        short_pair_key(buf, tag, pair, name);
        buf.extend_from_slice(&[
            short_key(2, LEN),
            (2 + value.len()) as u8,
            short_key(1, LEN),
            value.len() as u8,
        ]);
        buf.extend_from_slice(value);
    } else {
        long_string_pair(buf, tag, name, value);
    }
}

/// [`string_pair`] with lengths of any size (a long path, a long address).
#[cold]
#[inline(never)]
fn long_string_pair(buf: &mut Vec<u8>, tag: u32, name: &str, value: &[u8]) {
    let any = 1 + varint_len(value.len() as u64) + value.len();
    let pair = 1 + varint_len(name.len() as u64) + name.len() + 1 + varint_len(any as u64) + any;
    key(buf, tag, LEN);
    varint(buf, pair as u64);
    bytes_field(buf, 1, name.as_bytes());
    key(buf, 2, LEN);
    varint(buf, any as u64);
    bytes_field(buf, 1, value);
}

/// The head of a short `KeyValue` (field `tag` below 16, `pair` bytes below 128) and its
/// `key` (1): every key and length in one byte.
#[inline(always)]
fn short_pair_key(buf: &mut Vec<u8>, tag: u32, pair: usize, name: &str) {
    buf.extend_from_slice(&[
        short_key(tag, LEN),
        pair as u8,
        short_key(1, LEN),
        name.len() as u8,
    ]);
    buf.extend_from_slice(name.as_bytes());
}

/// The one-byte key of a field numbered below 16.
#[inline(always)]
fn short_key(tag: u32, wire_type: u32) -> u8 {
    (tag << 3 | wire_type) as u8
}

/// `KeyValue { key (1), value (2): AnyValue { int_value (3) } }`.
#[inline(always)]
fn int_pair(buf: &mut Vec<u8>, tag: u32, name: &str, value: i64) {
    // As in `string_pair`: key head (2) + name + value head (2) + `AnyValue` (1 + varint).
    let any = 1 + varint_len(value as u64);
    let pair = 4 + name.len() + any;
    if pair < 0x80 && tag < 16 {
        short_pair_key(buf, tag, pair, name);
        buf.extend_from_slice(&[short_key(2, LEN), any as u8, short_key(3, VARINT)]);
        varint(buf, value as u64);
    } else {
        long_int_pair(buf, tag, name, value);
    }
}

#[cold]
#[inline(never)]
fn long_int_pair(buf: &mut Vec<u8>, tag: u32, name: &str, value: i64) {
    let any = 1 + varint_len(value as u64);
    let pair = 1 + varint_len(name.len() as u64) + name.len() + 1 + varint_len(any as u64) + any;
    key(buf, tag, LEN);
    varint(buf, pair as u64);
    bytes_field(buf, 1, name.as_bytes());
    key(buf, 2, LEN);
    varint(buf, any as u64);
    key(buf, 3, VARINT);
    varint(buf, value as u64);
}

/// A length-delimited field whose length is known only once `body` has written it: `reserve`
/// bytes are left for the length, and the body moves when the length needs more or fewer.
fn message(buf: &mut Vec<u8>, tag: u32, reserve: usize, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, tag, LEN);
    let at = buf.len();
    buf.resize(at + reserve, 0);
    body(buf);
    let end = buf.len();
    let len = end - at - reserve;
    let need = varint_len(len as u64);
    if need > reserve {
        buf.resize(end + need - reserve, 0);
        buf.copy_within(at + reserve..end, at + need);
    } else if need < reserve {
        buf.copy_within(at + reserve..end, at + need);
        buf.truncate(end - (reserve - need));
    }
    let mut value = len as u64;
    for byte in &mut buf[at..at + need] {
        *byte = value as u8 | 0x80;
        value >>= 7;
    }
    buf[at + need - 1] &= 0x7f;
}

#[inline]
fn bytes_field(buf: &mut Vec<u8>, tag: u32, value: &[u8]) {
    key(buf, tag, LEN);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

#[inline]
fn fixed64(buf: &mut Vec<u8>, tag: u32, value: u64) {
    key(buf, tag, FIXED64);
    buf.extend_from_slice(&value.to_le_bytes());
}

#[inline]
fn key(buf: &mut Vec<u8>, tag: u32, wire_type: u32) {
    varint(buf, u64::from(tag << 3 | wire_type));
}

#[inline]
fn varint(buf: &mut Vec<u8>, mut value: u64) {
    // Keys, and most lengths and values here, take one byte.
    if value < 0x80 {
        buf.push(value as u8);
        return;
    }
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

#[inline]
fn varint_len(value: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// `value` in decimal, without allocating.
fn decimal(mut value: u16, digits: &mut [u8; 5]) -> &str {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderValue, Method};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

    use super::*;
    use crate::telemetry::export::{int_attribute, string_attribute};
    use crate::telemetry::span::Outcome;
    use crate::trace::{SpanContext, SpanId};

    /// A 200 of `request_bytes` in and 2 bytes out, instant at `clock`'s reading.
    fn ok_record(draft: SpanDraft, clock: &Clock, request_bytes: u64) -> SpanRecord {
        SpanRecord {
            draft,
            start: clock.instant,
            end: clock.instant,
            outcome: Outcome {
                code: 200,
                flags: "-",
                error: None,
                request_bytes,
                response_bytes: 2,
            },
        }
    }

    fn context(parent: Option<SpanId>, tracestate: Option<&'static str>) -> SpanContext {
        SpanContext {
            tracestate: tracestate.map(HeaderValue::from_static),
            ..SpanContext::sampled(parent)
        }
    }

    /// What the generated types carry, written out for each case: the spans the proxy built
    /// with `opentelemetry_proto` before it encoded them itself.
    #[test]
    fn a_batch_is_the_request_the_generated_types_encode() {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", "web")],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "weft-proxy".into(),
            version: "0.1.0".into(),
            ..Default::default()
        };
        let encoder = BatchEncoder::new(&resource, &scope);
        let clock = Clock::now();
        let at = |ago_ms: u64| clock.instant - Duration::from_millis(ago_ms);
        let unix = |ago_ms: u64| clock.unix_nanos - ago_ms * 1_000_000;

        // A SERVER span with a remote parent, a tracestate, a long path (a two-byte length)
        // and a 200.
        let server = context(Some(SpanId::random()), Some("vendor=a,other=b"));
        let long_path = format!("/{}", "x".repeat(300));
        let mut draft = SpanDraft::new(&server, SpanKind::Server, &Method::GET, &long_path);
        draft.static_string("url.scheme", "http");
        draft.display("client.address", std::net::Ipv4Addr::new(10, 0, 0, 7));
        draft.string("weft.subset", "");
        let first = SpanRecord {
            draft,
            start: at(30),
            end: at(20),
            outcome: Outcome {
                code: 200,
                flags: "-",
                error: None,
                request_bytes: 120,
                response_bytes: 70_000,
            },
        };
        // A CLIENT root span: a retried try with a fault event, failed by the proxy.
        let client = context(None, None);
        let mut draft = SpanDraft::new(
            &client,
            SpanKind::Client,
            &Method::from_bytes(b"PURGE").unwrap(),
            "/cart",
        );
        draft.int("weft.retry.attempt", 0);
        draft.int("weft.negative", -3);
        draft.add_event("fault.delay", "weft.fault.delay_ms", Value::Int(5));
        draft.events[0].at = at(9);
        draft.add_event("retry", "weft.retry.reason", Value::Static("reset"));
        draft.events[1].at = at(8);
        let second = SpanRecord {
            draft,
            start: at(10),
            end: at(8),
            outcome: Outcome {
                code: 503,
                flags: "UF",
                error: Some("upstream connect error"),
                request_bytes: 0,
                response_bytes: 0,
            },
        };
        // A 503 from upstream (error.type is the code) and a request without a response.
        let third = SpanRecord {
            draft: SpanDraft::new(&client, SpanKind::Client, &Method::POST, "/"),
            start: at(7),
            end: at(6),
            outcome: Outcome {
                code: 503,
                flags: "URX",
                error: None,
                request_bytes: 10,
                response_bytes: 20,
            },
        };
        let fourth = SpanRecord {
            draft: SpanDraft::new(&client, SpanKind::Client, &Method::GET, "/"),
            start: at(5),
            end: at(5),
            outcome: Outcome {
                code: 0,
                flags: "DC",
                error: None,
                request_bytes: 10,
                response_bytes: 0,
            },
        };

        let ids = |c: &SpanContext| {
            (
                c.trace_id.to_bytes().to_vec(),
                c.span_id.to_bytes().to_vec(),
            )
        };
        let error = |message: &str| {
            Some(Status {
                message: message.into(),
                code: 2,
            })
        };
        let expected = vec![
            Span {
                trace_id: ids(&server).0,
                span_id: ids(&server).1,
                trace_state: "vendor=a,other=b".into(),
                parent_span_id: server.parent_span_id.unwrap().to_bytes().to_vec(),
                flags: 0x301,
                name: format!("GET {long_path}"),
                kind: SpanKind::Server as i32,
                start_time_unix_nano: unix(30),
                end_time_unix_nano: unix(20),
                attributes: vec![
                    string_attribute("http.request.method", "GET"),
                    string_attribute("url.path", &long_path),
                    string_attribute("url.scheme", "http"),
                    string_attribute("client.address", "10.0.0.7"),
                    string_attribute("weft.subset", ""),
                    int_attribute("http.response.status_code", 200),
                    string_attribute("weft.response_flags", "-"),
                    int_attribute("http.request.size", 120),
                    int_attribute("http.response.size", 70_000),
                ],
                ..Default::default()
            },
            Span {
                trace_id: ids(&client).0,
                span_id: ids(&client).1,
                flags: 0x101,
                name: "PURGE /cart".into(),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: unix(10),
                end_time_unix_nano: unix(8),
                attributes: vec![
                    string_attribute("http.request.method", "PURGE"),
                    string_attribute("url.path", "/cart"),
                    int_attribute("weft.retry.attempt", 0),
                    int_attribute("weft.negative", -3),
                    int_attribute("http.response.status_code", 503),
                    string_attribute("weft.response_flags", "UF"),
                    int_attribute("http.request.size", 0),
                    int_attribute("http.response.size", 0),
                    string_attribute("error.type", "upstream connect error"),
                ],
                events: vec![
                    span::Event {
                        time_unix_nano: unix(9),
                        name: "fault.delay".into(),
                        attributes: vec![int_attribute("weft.fault.delay_ms", 5)],
                        dropped_attributes_count: 0,
                    },
                    span::Event {
                        time_unix_nano: unix(8),
                        name: "retry".into(),
                        attributes: vec![string_attribute("weft.retry.reason", "reset")],
                        dropped_attributes_count: 0,
                    },
                ],
                status: error("upstream connect error"),
                ..Default::default()
            },
            Span {
                trace_id: ids(&client).0,
                span_id: ids(&client).1,
                flags: 0x101,
                name: "POST /".into(),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: unix(7),
                end_time_unix_nano: unix(6),
                attributes: vec![
                    string_attribute("http.request.method", "POST"),
                    string_attribute("url.path", "/"),
                    int_attribute("http.response.status_code", 503),
                    string_attribute("weft.response_flags", "URX"),
                    int_attribute("http.request.size", 10),
                    int_attribute("http.response.size", 20),
                    string_attribute("error.type", "503"),
                ],
                status: error(""),
                ..Default::default()
            },
            Span {
                trace_id: ids(&client).0,
                span_id: ids(&client).1,
                flags: 0x101,
                name: "GET /".into(),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: unix(5),
                end_time_unix_nano: unix(5),
                attributes: vec![
                    string_attribute("http.request.method", "GET"),
                    string_attribute("url.path", "/"),
                    string_attribute("weft.response_flags", "DC"),
                    int_attribute("http.request.size", 10),
                    int_attribute("http.response.size", 0),
                ],
                status: error(""),
                ..Default::default()
            },
        ];
        let expected = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope),
                    spans: expected,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let encoded = encoder.encode(&[first, second, third, fourth], &clock);
        let decoded = ExportTraceServiceRequest::decode(encoded.clone()).expect("decodes");
        assert_eq!(decoded, expected);
        // Fields in the generated order, every default left out: the very same bytes.
        assert_eq!(encoded, expected.encode_to_vec());
        // An empty batch (never sent) is still a valid request.
        let empty = ExportTraceServiceRequest::decode(encoder.encode(&[], &clock)).unwrap();
        assert_eq!(empty.resource_spans[0].scope_spans[0].spans, []);
    }

    /// Attributes encoded once are the bytes of the same attributes added one by one, in
    /// place, including lengths that need two bytes (written one by one then).
    #[test]
    fn encoded_attributes_are_the_attributes_one_by_one() {
        let context = context(Some(SpanId::random()), None);
        let encoder = BatchEncoder::new(&Resource::default(), &InstrumentationScope::default());
        let clock = Clock::now();
        let long = "v".repeat(200);
        for values in [["web", "default", "v1"], ["web", &long, ""]] {
            let attributes = [
                ("weft.source.workload", values[0]),
                ("weft.source.namespace", values[1]),
                ("weft.source.version", values[2]),
            ];
            let block = crate::telemetry::span::EncodedAttributes::new(&attributes);
            let spans = [true, false].map(|encoded| {
                let mut draft = SpanDraft::new(&context, SpanKind::Client, &Method::GET, "/a");
                draft.string("server.address", "reviews");
                if encoded {
                    draft.encoded(&block);
                } else {
                    for (key, value) in attributes {
                        draft.string(key, value);
                    }
                }
                draft.int("weft.retry.attempt", 0);
                ok_record(draft, &clock, 1)
            });
            assert_eq!(
                encoder.encode(&spans[..1], &clock),
                encoder.encode(&spans[1..], &clock)
            );
        }
    }

    /// Framed for gRPC, a batch is the gRPC message prefix (uncompressed, big-endian length)
    /// and then the very same request.
    #[test]
    fn a_grpc_framed_batch_is_the_prefix_and_the_request() {
        let resource = Resource {
            attributes: vec![string_attribute("service.name", "web")],
            ..Default::default()
        };
        let encoder = BatchEncoder::new(&resource, &InstrumentationScope::default());
        let clock = Clock::now();
        let context = context(None, None);
        let spans: Vec<_> = (0..3)
            .map(|n| {
                ok_record(
                    SpanDraft::new(&context, SpanKind::Client, &Method::GET, "/a"),
                    &clock,
                    n,
                )
            })
            .collect();
        let plain = encoder.encode(&spans, &clock);
        let mut buf = vec![1; 7];
        encoder.open(&mut buf, 1);
        for span in &spans {
            append_span(&mut buf, span, &clock);
        }
        let framed = encoder.close(buf, Framing::Grpc);
        assert_eq!(framed[0], 0);
        assert_eq!(
            u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize,
            plain.len()
        );
        assert_eq!(framed[5..], plain[..]);
    }

    #[test]
    fn instants_become_unix_times_around_the_reading() {
        let clock = Clock::now();
        let second = Duration::from_secs(1);
        assert_eq!(
            clock.unix_nanos(clock.instant - second),
            clock.unix_nanos - 1_000_000_000
        );
        assert_eq!(
            clock.unix_nanos(clock.instant + second),
            clock.unix_nanos + 1_000_000_000
        );
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
            assert_eq!(
                prost::encoding::decode_varint(&mut &buf[..]).unwrap(),
                value
            );
        }
    }

    #[test]
    fn decimal_codes() {
        let mut digits = [0; 5];
        assert_eq!(decimal(503, &mut digits), "503");
        assert_eq!(decimal(0, &mut digits), "0");
        assert_eq!(decimal(u16::MAX, &mut digits), "65535");
    }

    #[test]
    fn a_length_that_needs_more_or_fewer_bytes_than_reserved_moves_the_body() {
        for (reserve, len) in [(1, 0), (1, 200), (2, 5), (2, 20_000), (1, 127), (1, 128)] {
            let mut buf = vec![0xAA];
            message(&mut buf, 3, reserve, |buf| buf.resize(buf.len() + len, 7));
            buf.push(0xBB);
            let mut rest = &buf[..];
            assert_eq!(bytes::Buf::get_u8(&mut rest), 0xAA);
            assert_eq!(bytes::Buf::get_u8(&mut rest), 3 << 3 | 2);
            let decoded = prost::encoding::decode_varint(&mut rest).unwrap();
            assert_eq!(decoded as usize, len);
            assert!(rest[..len].iter().all(|&b| b == 7));
            assert_eq!(&rest[len..], [0xBB]);
        }
    }
}
