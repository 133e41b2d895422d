//! Trace context: ids, sampling state, and extraction/injection of the W3C
//! `traceparent`/`tracestate` and B3 (multi-header and single `b3`) formats.
//!
//! Parsing is strict (W3C: lowercase hex, no all-zero ids, version `ff`
//! invalid, future versions tolerated; B3: 16 or 32 lowercase hex trace ids,
//! empty or nonsense values malformed). An invalid header never fails a
//! request: the caller starts a new trace and drops `tracestate`.

use std::fmt;

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const B3_SINGLE: HeaderName = HeaderName::from_static("b3");
pub const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub const B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A 128-bit trace id. B3 allows 64-bit ids; those are kept with their width
/// so they are propagated back in the form they arrived in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TraceId {
    bytes: [u8; 16],
    /// True when the id arrived as a 64-bit B3 id (16 hex characters).
    short: bool,
}

/// A 64-bit span id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SpanId([u8; 8]);

/// The sampling state a context carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sampling {
    /// Report this trace.
    Accept,
    /// Do not report this trace, but propagate the decision.
    Deny,
    /// No decision yet: the first proxy that decides, decides (B3 "defer").
    Defer,
    /// B3 debug (`X-B3-Flags: 1` or `b3: ...-d`): always report.
    Debug,
}

/// Where a context came from; keeps the incoming format's decision and lets
/// injection mirror the single `b3` header when the caller used it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    W3c,
    B3Single,
    B3Multi,
}

/// A remote parent extracted from request headers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Extracted {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampling: Sampling,
    pub format: Format,
    /// W3C trace-flags other than `sampled` (e.g. random-trace-id), preserved.
    pub w3c_flags: u8,
    /// `tracestate`, passed through unmodified, only with a valid traceparent.
    pub tracestate: Option<HeaderValue>,
}

/// The context of a span this proxy created, ready to be injected downstream.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SpanContext {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub sampling: Sampling,
    pub w3c_flags: u8,
    pub tracestate: Option<HeaderValue>,
    /// Mirror the single `b3` header downstream (the caller used it).
    pub b3_single: bool,
}

// === impl TraceId ===

impl TraceId {
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self {
            bytes,
            short: false,
        })
    }

    pub fn random() -> Self {
        loop {
            let bytes: [u8; 16] = rand::random();
            if let Some(id) = Self::from_bytes(bytes) {
                return id;
            }
        }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.bytes
    }

    /// Parses 32 (or, for B3, 16) lowercase hex characters; rejects all-zero.
    fn parse_hex(s: &str, allow_short: bool) -> Option<Self> {
        let mut bytes = [0u8; 16];
        let short = match s.len() {
            32 => {
                decode_lower_hex(s, &mut bytes)?;
                false
            }
            16 if allow_short => {
                decode_lower_hex(s, &mut bytes[8..])?;
                true
            }
            _ => return None,
        };
        (bytes != [0; 16]).then_some(Self { bytes, short })
    }

    /// 32 lowercase hex characters (W3C form).
    pub fn to_hex(self) -> String {
        hex::encode(self.bytes)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

// === impl SpanId ===

impl SpanId {
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(Self(bytes))
    }

    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::from_bytes(rand::random()) {
                return id;
            }
        }
    }

    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    fn parse_hex(s: &str) -> Option<Self> {
        let mut bytes = [0u8; 8];
        if s.len() != 16 {
            return None;
        }
        decode_lower_hex(s, &mut bytes)?;
        Self::from_bytes(bytes)
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn decode_lower_hex(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode_to_slice(s, out).ok()
}

// === impl Sampling ===

impl Sampling {
    pub fn is_sampled(self) -> bool {
        matches!(self, Sampling::Accept | Sampling::Debug)
    }
}

// === extraction ===

/// Extracts the remote parent from request headers.
///
/// Precedence: a valid W3C `traceparent`, then the single `b3` header (which
/// B3 says wins over the multi-header form), then `X-B3-*`. Returns `None`
/// when no valid context is present; the caller starts a new trace (a
/// sampling-only B3 header still carries a decision: see [`extract_sampling_only`]).
pub fn extract(headers: &HeaderMap) -> Option<Extracted> {
    extract_w3c(headers)
        .or_else(|| extract_b3_single(headers))
        .or_else(|| extract_b3_multi(headers))
}

/// A B3 header that carries only a sampling decision (`b3: 0`, or
/// `X-B3-Sampled`/`X-B3-Flags` without ids) applies to the new trace.
pub fn extract_sampling_only(headers: &HeaderMap) -> Option<Sampling> {
    if let Some(v) = single_value(headers, &B3_SINGLE) {
        return match v.trim() {
            "0" => Some(Sampling::Deny),
            "1" => Some(Sampling::Accept),
            "d" => Some(Sampling::Debug),
            _ => None,
        };
    }
    if headers.contains_key(&B3_TRACE_ID) {
        return None;
    }
    b3_multi_sampling(headers).ok().flatten()
}

fn single_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    // B3: when a header is repeated, the first value wins.
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn extract_w3c(headers: &HeaderMap) -> Option<Extracted> {
    let mut values = headers.get_all(&TRACEPARENT).iter();
    let first = values.next()?;
    if values.next().is_some() {
        // Two traceparent headers: restart the trace (W3C test "duplicated").
        return None;
    }
    let (trace_id, span_id, flags) = parse_traceparent(first.to_str().ok()?)?;
    let tracestate = combine_tracestate(headers);
    Some(Extracted {
        trace_id,
        span_id,
        sampling: if flags & 0x01 != 0 {
            Sampling::Accept
        } else {
            Sampling::Deny
        },
        format: Format::W3c,
        w3c_flags: flags & !0x01,
        tracestate,
    })
}

/// Parses a `traceparent` value per W3C Trace Context level 2/3.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, u8)> {
    let value = value.trim_matches([' ', '\t']);
    if value.len() < 55 {
        return None;
    }
    let version = value.get(0..2)?;
    let mut version_byte = [0u8; 1];
    decode_lower_hex(version, &mut version_byte)?;
    match version_byte[0] {
        0xff => return None,
        0x00 if value.len() != 55 => return None,
        // Future versions: parse the first 55 characters when followed by
        // end of string or '-'.
        _ if value.len() > 55 && value.as_bytes()[55] != b'-' => return None,
        _ => {}
    }
    let bytes = value.as_bytes();
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::parse_hex(&value[3..35], false)?;
    let span_id = SpanId::parse_hex(&value[36..52])?;
    let mut flags = [0u8; 1];
    decode_lower_hex(&value[53..55], &mut flags)?;
    Some((trace_id, span_id, flags[0]))
}

/// Combines repeated `tracestate` headers in order; drops the list when it is
/// malformed (a bad tracestate must not affect traceparent).
fn combine_tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut combined = String::new();
    for value in headers.get_all(&TRACESTATE) {
        let value = value.to_str().ok()?;
        if !combined.is_empty() && !value.trim().is_empty() {
            combined.push(',');
        }
        combined.push_str(value.trim());
    }
    if combined.is_empty() || !valid_tracestate(&combined) {
        return None;
    }
    HeaderValue::from_str(&combined).ok()
}

fn valid_tracestate(list: &str) -> bool {
    let mut members = 0;
    for member in list.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        members += 1;
        let Some((key, value)) = member.split_once('=') else {
            return false;
        };
        if !valid_tracestate_key(key) || !valid_tracestate_value(value) {
            return false;
        }
    }
    members <= 32
}

fn valid_tracestate_key(key: &str) -> bool {
    let simple = |k: &str, max: usize| {
        let b = k.as_bytes();
        !b.is_empty()
            && b.len() <= max
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-*/".contains(c))
    };
    match key.split_once('@') {
        None => simple(key, 256),
        Some((tenant, system)) => simple(tenant, 241) && simple(system, 14),
    }
}

fn valid_tracestate_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

fn extract_b3_single(headers: &HeaderMap) -> Option<Extracted> {
    let value = single_value(headers, &B3_SINGLE)?.trim();
    let mut parts = value.split('-');
    let trace_id = TraceId::parse_hex(parts.next()?, true)?;
    let span_id = SpanId::parse_hex(parts.next()?)?;
    let sampling = match parts.next() {
        None => Sampling::Defer,
        Some("1") => Sampling::Accept,
        Some("0") => Sampling::Deny,
        Some("d") => Sampling::Debug,
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        SpanId::parse_hex(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Extracted {
        trace_id,
        span_id,
        sampling,
        format: Format::B3Single,
        w3c_flags: 0,
        tracestate: None,
    })
}

fn extract_b3_multi(headers: &HeaderMap) -> Option<Extracted> {
    let trace_id = TraceId::parse_hex(single_value(headers, &B3_TRACE_ID)?.trim(), true)?;
    let span_id = SpanId::parse_hex(single_value(headers, &B3_SPAN_ID)?.trim())?;
    if let Some(parent) = headers.get(&B3_PARENT_SPAN_ID) {
        SpanId::parse_hex(parent.to_str().ok()?.trim())?;
    }
    let sampling = b3_multi_sampling(headers).ok()?.unwrap_or(Sampling::Defer);
    Some(Extracted {
        trace_id,
        span_id,
        sampling,
        format: Format::B3Multi,
        w3c_flags: 0,
        tracestate: None,
    })
}

/// `Ok(None)` = no decision (defer); `Err` = malformed.
fn b3_multi_sampling(headers: &HeaderMap) -> Result<Option<Sampling>, ()> {
    if let Some(flags) = headers.get(&B3_FLAGS) {
        return match flags.to_str().map(str::trim) {
            Ok("1") => Ok(Some(Sampling::Debug)),
            Ok("0") => Ok(None),
            _ => Err(()),
        };
    }
    match headers.get(&B3_SAMPLED).map(|v| v.to_str().map(str::trim)) {
        None => Ok(None),
        Some(Ok("1" | "true")) => Ok(Some(Sampling::Accept)),
        Some(Ok("0" | "false")) => Ok(Some(Sampling::Deny)),
        Some(_) => Err(()),
    }
}

// === injection ===

#[cfg(test)]
impl SpanContext {
    /// A sampled context with random ids and no `tracestate`, for tests.
    pub(crate) fn sampled(parent_span_id: Option<SpanId>) -> Self {
        SpanContext {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_span_id,
            sampling: Sampling::Accept,
            w3c_flags: 0,
            tracestate: None,
            b3_single: false,
        }
    }
}

impl SpanContext {
    /// Writes the context in both formats (W3C and B3 multi-header), and the
    /// single `b3` header when the caller used it, replacing stale values.
    ///
    /// Every value is formatted into one buffer and each header value is a slice of it: one
    /// allocation per hop instead of one per header and per hex string (this runs on every
    /// request, sampled or not).
    pub fn inject(&self, headers: &mut HeaderMap) {
        let sampled = self.sampling.is_sampled();
        let flags = self.w3c_flags | u8::from(sampled);
        let trace = &self.trace_id.bytes;
        let b3_trace: &[u8] = if self.trace_id.short {
            &trace[8..]
        } else {
            trace
        };
        // traceparent (55) + B3 trace id (≤ 32) + span id (16) + parent (16) + single b3 (≤ 68).
        let mut buffer = BytesMut::with_capacity(192);
        buffer.extend_from_slice(b"00-");
        push_hex(&mut buffer, trace);
        buffer.extend_from_slice(b"-");
        push_hex(&mut buffer, &self.span_id.0);
        buffer.extend_from_slice(b"-");
        push_hex(&mut buffer, &[flags]);
        let traceparent = 0..buffer.len();
        let start = buffer.len();
        push_hex(&mut buffer, b3_trace);
        let b3_trace_id = start..buffer.len();
        let start = buffer.len();
        push_hex(&mut buffer, &self.span_id.0);
        let b3_span_id = start..buffer.len();
        let start = buffer.len();
        if let Some(parent) = self.parent_span_id {
            push_hex(&mut buffer, &parent.0);
        }
        let b3_parent = start..buffer.len();
        let start = buffer.len();
        if self.b3_single {
            push_hex(&mut buffer, b3_trace);
            buffer.extend_from_slice(b"-");
            push_hex(&mut buffer, &self.span_id.0);
            match self.sampling {
                Sampling::Debug => buffer.extend_from_slice(b"-d"),
                Sampling::Accept => buffer.extend_from_slice(b"-1"),
                Sampling::Deny => buffer.extend_from_slice(b"-0"),
                Sampling::Defer => {}
            }
            if let (Some(parent), false) = (self.parent_span_id, self.sampling == Sampling::Defer) {
                buffer.extend_from_slice(b"-");
                push_hex(&mut buffer, &parent.0);
            }
        }
        let b3_single = start..buffer.len();
        let buffer = buffer.freeze();
        let value = |range: std::ops::Range<usize>| {
            // Lowercase hex and dashes only: always a valid header value.
            HeaderValue::from_maybe_shared(buffer.slice(range)).ok()
        };

        insert(headers, TRACEPARENT, value(traceparent));
        match &self.tracestate {
            Some(state) => {
                headers.insert(TRACESTATE, state.clone());
            }
            None => {
                headers.remove(TRACESTATE);
            }
        }
        insert(headers, B3_TRACE_ID, value(b3_trace_id));
        insert(headers, B3_SPAN_ID, value(b3_span_id));
        if self.parent_span_id.is_some() {
            insert(headers, B3_PARENT_SPAN_ID, value(b3_parent));
        } else {
            headers.remove(B3_PARENT_SPAN_ID);
        }
        headers.remove(B3_SAMPLED);
        headers.remove(B3_FLAGS);
        match self.sampling {
            // Debug implies accept: send Flags alone.
            Sampling::Debug => {
                headers.insert(B3_FLAGS, HeaderValue::from_static("1"));
            }
            Sampling::Accept => {
                headers.insert(B3_SAMPLED, HeaderValue::from_static("1"));
            }
            Sampling::Deny => {
                headers.insert(B3_SAMPLED, HeaderValue::from_static("0"));
            }
            Sampling::Defer => {}
        }
        if self.b3_single {
            insert(headers, B3_SINGLE, value(b3_single));
        } else {
            headers.remove(B3_SINGLE);
        }
    }
}

fn push_hex(buffer: &mut BytesMut, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        buffer.extend_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0x0f)]]);
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: Option<HeaderValue>) {
    if let Some(value) = value {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests;
