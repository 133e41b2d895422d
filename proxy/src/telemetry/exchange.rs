//! One observed request/response exchange: its RED metrics and its span are
//! recorded once, when the response body ends (or is dropped), so durations
//! and byte counts cover the whole response, as Envoy measures them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

use super::Telemetry;
use super::flags::ResponseFlags;
use super::metrics::RequestLabels;
use super::span::{Outcome, SpanDraft, SpanRecord, Value};

pub struct Exchange {
    telemetry: Arc<Telemetry>,
    started: Instant,
    pub labels: RequestLabels,
    span: Option<SpanDraft>,
    /// When the current span (the current try, after retries) started.
    span_started: Option<Instant>,
    /// Flags set with [`Exchange::set_outcome`].
    flags: ResponseFlags,
    /// Set when the route timeout fires while the response body streams.
    body_timeout: Option<Arc<std::sync::atomic::AtomicBool>>,
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
            labels,
            span,
            span_started: None,
            flags: ResponseFlags::NONE,
            body_timeout: None,
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

    /// Sets the response code and Envoy flags (see [`ResponseFlags`]).
    pub fn set_outcome(&mut self, code: u16, flags: ResponseFlags) {
        self.labels.response_code = code;
        self.flags = flags;
        self.labels.response_flags = flags.as_str();
    }

    /// Watches `timed_out`: when it is set by the time the exchange finishes (the route
    /// timeout fired while the body streamed and the stream was reset), the request carries
    /// `UT` too.
    pub fn watch_body_timeout(&mut self, timed_out: Arc<std::sync::atomic::AtomicBool>) {
        self.body_timeout = Some(timed_out);
    }

    /// Adds an event (a fault) with one integer attribute to the current span.
    pub fn add_event(&mut self, name: &'static str, key: &'static str, value: i64) {
        if let Some(span) = &mut self.span {
            span.add_event(name, key, Value::Int(value));
        }
    }

    /// Whether the request is traced (spans are built only then).
    pub fn is_traced(&self) -> bool {
        self.span.is_some()
    }

    /// The current span, to add attributes to; `None` when the request is not traced.
    pub fn span_mut(&mut self) -> Option<&mut SpanDraft> {
        self.span.as_mut()
    }

    /// Ends the current try's span now, with the try's own code and flags and a `retry` event,
    /// and starts `next` as the span of the following try. The request's metrics are not
    /// touched: they are recorded once, by [`Exchange::finish`], with the final outcome.
    pub fn retry_with(
        &mut self,
        code: u16,
        flags: ResponseFlags,
        error: Option<&'static str>,
        reason: &'static str,
        next: Option<SpanDraft>,
    ) {
        let now = Instant::now();
        let started = self.span_started.unwrap_or(self.started);
        if let Some(mut draft) = self.span.take() {
            draft.add_event("retry", "weft.retry.reason", Value::Static(reason));
            let request_bytes = self.request_bytes.load(Ordering::Relaxed);
            record_span(
                &self.telemetry,
                draft,
                started,
                now,
                Outcome {
                    code,
                    flags: flags.as_str(),
                    error,
                    request_bytes,
                    response_bytes: 0,
                },
            );
        }
        self.span = next;
        self.span_started = Some(now);
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

    /// Records metrics and the span. Called exactly once (by the body
    /// wrapper at end of stream or drop).
    pub fn finish(mut self, response_bytes: u64) {
        if self
            .body_timeout
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
        {
            self.labels.response_flags = (self.flags | ResponseFlags::UT).as_str();
            self.error = Some("upstream request timeout");
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.started);
        let request_bytes = self.request_bytes.load(Ordering::Relaxed);
        self.telemetry.metrics.record_request(
            &self.labels,
            elapsed.as_secs_f64() * 1000.0,
            request_bytes,
            response_bytes + self.response_header_bytes,
        );
        let Some(draft) = self.span else { return };
        record_span(
            &self.telemetry,
            draft,
            self.span_started.unwrap_or(self.started),
            now,
            Outcome {
                code: self.labels.response_code,
                flags: self.labels.response_flags,
                error: self.error,
                request_bytes,
                response_bytes: response_bytes + self.response_header_bytes,
            },
        );
    }
}

fn record_span(
    telemetry: &Telemetry,
    draft: SpanDraft,
    start: Instant,
    end: Instant,
    outcome: Outcome,
) {
    if !telemetry.spans.is_enabled() {
        return;
    }
    telemetry.spans.record(SpanRecord {
        draft,
        start,
        end,
        outcome,
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use opentelemetry_proto::tonic::trace::v1::Span;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

    use super::*;
    use crate::telemetry::export::{int_attribute, string_attribute};
    use crate::telemetry::{Metrics, Peer, Reporter, SpanSink};
    use crate::trace::{Sampler, SpanContext, SpanId};

    fn labels() -> RequestLabels {
        RequestLabels {
            reporter: Reporter::Source,
            source: Arc::new(Peer::unknown()),
            destination: Arc::new(Peer::unknown()),
            destination_service: "svc".into(),
            destination_service_name: "svc".into(),
            destination_service_namespace: "default".into(),
            request_protocol: "http",
            response_code: 0,
            response_flags: "-",
            connection_security_policy: "unknown",
        }
    }

    fn draft(context: &SpanContext, attempt: i64) -> SpanDraft {
        let mut draft = SpanDraft::new(context, SpanKind::Client, &http::Method::GET, "/");
        draft.int("weft.retry.attempt", attempt);
        draft
    }

    #[tokio::test]
    async fn one_span_per_try_and_the_request_counted_once() {
        let metrics = Metrics::new().unwrap();
        let (spans, queue) = SpanSink::for_test(metrics.clone());
        let telemetry = Arc::new(Telemetry {
            metrics: metrics.clone(),
            spans,
        });
        let caller = SpanId::random();
        let first = SpanContext::sampled(Some(caller));
        let mut exchange = Exchange::new(
            telemetry,
            labels(),
            Some(draft(&first, 0)),
            Arc::new(AtomicU64::new(0)),
        );
        let second = Sampler::child_of(&first);
        let second = SpanContext {
            parent_span_id: Some(caller),
            ..second
        };
        exchange.retry_with(
            503,
            ResponseFlags::NONE,
            None,
            "retriable status",
            Some(draft(&second, 1)),
        );
        let third = SpanContext {
            span_id: SpanId::random(),
            ..second.clone()
        };
        exchange.retry_with(
            503,
            ResponseFlags::UF,
            Some("upstream connect error"),
            "connect-failure",
            Some(draft(&third, 2)),
        );
        exchange.set_outcome(200, ResponseFlags::NONE);
        exchange.finish(10);

        let received = queue.decode_for_test();
        assert_eq!(received.len(), 3);
        let ids: BTreeSet<_> = received.iter().map(|s| s.span_id.clone()).collect();
        assert_eq!(ids.len(), 3, "each try has its own span");
        assert!(
            received
                .iter()
                .all(|s| s.parent_span_id == caller.to_bytes().to_vec())
        );
        let retried: Vec<_> = received
            .iter()
            .map(|s| s.events.iter().any(|e| e.name == "retry"))
            .collect();
        assert_eq!(retried, [true, true, false]);
        assert_eq!(
            received[1].events[0].attributes,
            [string_attribute("weft.retry.reason", "connect-failure")]
        );
        let attempts: Vec<_> = received
            .iter()
            .map(|s| {
                s.attributes
                    .iter()
                    .filter(|a| a.key == "weft.retry.attempt")
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            attempts,
            [0, 1, 2].map(|n| vec![int_attribute("weft.retry.attempt", n)])
        );
        assert!(
            received
                .iter()
                .all(|s| s.end_time_unix_nano >= s.start_time_unix_nano)
        );
        let flags = |s: &Span| {
            s.attributes
                .iter()
                .find(|a| a.key == "weft.response_flags")
                .and_then(|a| a.value.clone())
        };
        assert_ne!(flags(&received[1]), flags(&received[2]));
        let rendered = metrics.render();
        let requests: Vec<_> = rendered
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .collect();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert!(requests[0].contains("response_code=\"200\"") && requests[0].ends_with(" 1"));
    }
}
