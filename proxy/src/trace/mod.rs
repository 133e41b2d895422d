//! Trace context propagation and the sampling decision at each hop.

pub mod context;

use http::HeaderMap;

pub use context::{Extracted, Format, Sampling, SpanContext, SpanId, TraceId};

/// Parent-based sampler: follows the caller's decision when there is one;
/// new traces (and B3 "defer") are sampled at `rate` (0.0..=1.0).
#[derive(Clone, Copy, Debug)]
pub struct Sampler {
    rate: f64,
}

impl Sampler {
    pub fn new(rate: f64) -> Self {
        Self {
            rate: rate.clamp(0.0, 1.0),
        }
    }

    fn decide(&self) -> Sampling {
        if self.rate >= 1.0 || (self.rate > 0.0 && rand::random::<f64>() < self.rate) {
            Sampling::Accept
        } else {
            Sampling::Deny
        }
    }

    /// The context of a new span for a request carrying `headers`: a child
    /// of the extracted parent, or the root of a new trace when the headers
    /// carry no valid context.
    pub fn start_span(&self, headers: &HeaderMap) -> SpanContext {
        match context::extract(headers) {
            Some(parent) => SpanContext {
                trace_id: parent.trace_id,
                span_id: SpanId::random(),
                parent_span_id: Some(parent.span_id),
                sampling: match parent.sampling {
                    Sampling::Defer => self.decide(),
                    decided => decided,
                },
                w3c_flags: parent.w3c_flags,
                tracestate: parent.tracestate,
                // Mirror the single header whenever the caller sent one, even
                // when another format carried the context: the next hop (or
                // the app) may read only `b3`.
                b3_single: headers.contains_key(&context::B3_SINGLE),
            },
            None => SpanContext {
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
                parent_span_id: None,
                sampling: match context::extract_sampling_only(headers) {
                    Some(Sampling::Defer) | None => self.decide(),
                    Some(decided) => decided,
                },
                // New trace: random trace id flag set, tracestate dropped.
                w3c_flags: 0x02,
                tracestate: None,
                b3_single: headers.contains_key(&context::B3_SINGLE),
            },
        }
    }

    /// A child span of a span this proxy already created (e.g. the CLIENT
    /// span under a SERVER span), sharing its decision.
    pub fn child_of(parent: &SpanContext) -> SpanContext {
        SpanContext {
            span_id: SpanId::random(),
            parent_span_id: Some(parent.span_id),
            ..parent.clone()
        }
    }
}
