//! One observed request/response exchange: its RED metrics and its span are
//! recorded once, when the response body ends (or is dropped), so durations
//! and byte counts cover the whole response, as Envoy measures them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};
use tokio::time::Instant;

use super::Telemetry;
use super::export::{int_attribute, string_attribute, unix_nanos};
use super::metrics::RequestLabels;
use crate::trace::SpanContext;

/// The parts of a span known when the request starts.
pub struct SpanDraft {
    pub context: SpanContext,
    pub kind: span::SpanKind,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<span::Event>,
}

pub struct Exchange {
    telemetry: Arc<Telemetry>,
    started: Instant,
    started_at: SystemTime,
    pub labels: RequestLabels,
    span: Option<SpanDraft>,
    request_bytes: Arc<AtomicU64>,
    /// A proxy-generated failure (no route, connect failure, ...).
    error: Option<&'static str>,
    /// Response header bytes on the wire: Istio's byte histograms count
    /// them too (request header bytes are in `request_bytes` from the start).
    response_header_bytes: u64,
}

/// Wire size of a request's line and headers (HTTP/1.1 framing): the seed
/// of the exchange's request byte counter.
pub fn request_head_bytes(parts: &http::request::Parts) -> u64 {
    // "METHOD SP target SP HTTP/1.1 CRLF"
    let line = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    line as u64 + header_block_bytes(&parts.headers)
}

/// Approximate HTTP/1.1 wire size of a header block: `name: value\r\n` per
/// field plus the blank line.
pub fn header_block_bytes(headers: &http::HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().len() + value.len() + 4) as u64)
        .sum::<u64>()
        + 2
}

impl Exchange {
    pub fn new(
        telemetry: Arc<Telemetry>,
        labels: RequestLabels,
        span: Option<SpanDraft>,
        request_bytes: Arc<AtomicU64>,
    ) -> Self {
        Self {
            telemetry,
            started: Instant::now(),
            started_at: SystemTime::now(),
            labels,
            span,
            request_bytes,
            error: None,
            response_header_bytes: 0,
        }
    }

    /// Records the status line and headers sent back.
    pub fn set_response_head(&mut self, headers: &http::HeaderMap) {
        // "HTTP/1.1 200 OK CRLF"
        self.response_header_bytes = 17 + header_block_bytes(headers);
    }

    pub fn set_response(&mut self, code: u16, flags: &'static str) {
        self.labels.response_code = code;
        self.labels.response_flags = flags;
    }

    /// Marks the exchange as failed by the proxy itself, with a reason for
    /// the span status.
    pub fn set_error(&mut self, reason: &'static str) {
        self.error = Some(reason);
    }

    pub fn add_attribute(&mut self, attribute: KeyValue) {
        if let Some(span) = &mut self.span {
            span.attributes.push(attribute);
        }
    }

    /// Records metrics and the span. Called exactly once (by the body
    /// wrapper at end of stream or drop).
    pub fn finish(self, response_bytes: u64) {
        let elapsed = self.started.elapsed();
        let request_bytes = self.request_bytes.load(Ordering::Relaxed);
        self.telemetry.metrics.record_request(
            &self.labels,
            elapsed.as_secs_f64() * 1000.0,
            request_bytes,
            response_bytes + self.response_header_bytes,
        );
        let Some(draft) = self.span else { return };
        if !self.telemetry.spans.is_enabled() {
            return;
        }
        let code = self.labels.response_code;
        let mut attributes = draft.attributes;
        if code != 0 {
            attributes.push(int_attribute("http.response.status_code", i64::from(code)));
        }
        attributes.push(string_attribute(
            "weft.response_flags",
            self.labels.response_flags,
        ));
        // Semantic conventions' `http.*.size`: wire bytes, head included.
        attributes.push(int_attribute("http.request.size", request_bytes as i64));
        attributes.push(int_attribute(
            "http.response.size",
            (response_bytes + self.response_header_bytes) as i64,
        ));
        let failed = code >= 500 || code == 0 || self.error.is_some();
        let status = failed.then(|| Status {
            code: status::StatusCode::Error as i32,
            message: self.error.unwrap_or_default().to_string(),
        });
        if let Some(reason) = self.error {
            attributes.push(string_attribute("error.type", reason));
        } else if code >= 500 {
            attributes.push(string_attribute("error.type", &code.to_string()));
        }
        let start = unix_nanos(self.started_at);
        let context = draft.context;
        self.telemetry.spans.record(Span {
            trace_id: context.trace_id.to_bytes().to_vec(),
            span_id: context.span_id.to_bytes().to_vec(),
            trace_state: context
                .tracestate
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            parent_span_id: context
                .parent_span_id
                .map(|id| id.to_bytes().to_vec())
                .unwrap_or_default(),
            // W3C trace-flags in the low byte, and "parent is remote" bits:
            // every parent of a proxy span lives in another process.
            flags: u32::from(u8::from(context.sampling.is_sampled()))
                | if context.parent_span_id.is_some() {
                    0x300
                } else {
                    0x100
                },
            name: draft.name,
            kind: draft.kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + elapsed.as_nanos() as u64,
            attributes,
            events: draft.events,
            status,
            ..Default::default()
        });
    }
}
