//! Forwarding received spans to other backends: any OTLP/gRPC receiver
//! (Jaeger, Tempo, an OpenTelemetry Collector, another weft collector) and
//! Zipkin v2 (`POST /api/v2/spans`, JSON).
//!
//! Each target has its own bounded queue and worker. [`Exporters::offer`]
//! never waits: when a queue holds more than [`QUEUE_SPANS`] spans the
//! oldest batches are dropped and counted. The worker sends batches of up to
//! [`MAX_BATCH_SPANS`] spans and retries a failed send with exponential
//! backoff ([`INITIAL_BACKOFF`] doubling to [`MAX_BACKOFF`]); a batch the
//! target refuses as invalid is dropped. Nothing here can fail or delay the
//! acknowledgement of an ingest: exporters only see spans after the commit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::store::Span;

/// Spans a target's queue holds at most before it drops the oldest.
pub const QUEUE_SPANS: usize = 100_000;
/// Spans sent in one request at most.
pub const MAX_BATCH_SPANS: usize = 2_048;
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to forward received spans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportTarget {
    /// An OTLP/gRPC endpoint, e.g. `http://jaeger:4317`.
    Otlp(String),
    /// A Zipkin v2 spans URL, e.g. `http://zipkin:9411/api/v2/spans`.
    Zipkin(String),
}

impl std::fmt::Display for ExportTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Otlp(url) => write!(f, "otlp {url}"),
            Self::Zipkin(url) => write!(f, "zipkin {url}"),
        }
    }
}

/// What one exporter did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub target: String,
    /// Spans accepted by the target.
    pub sent: u64,
    /// Spans dropped: queue overflow, or refused by the target as invalid.
    pub dropped: u64,
    /// Failed send attempts (each retried).
    pub failures: u64,
    /// Spans waiting in the queue.
    pub queued: u64,
}

/// The exporters of a collector; cheap to clone. The default has none.
#[derive(Clone, Default)]
pub struct Exporters {
    targets: Arc<[Arc<Queue>]>,
}

struct Queue {
    target: ExportTarget,
    /// Spans held at most ([`QUEUE_SPANS`]).
    capacity: u64,
    batches: Mutex<VecDeque<Arc<Vec<Span>>>>,
    queued: AtomicU64,
    ready: Notify,
    sent: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
}

impl Exporters {
    /// Starts one worker per target on `tasks`; they stop when `shutdown`
    /// turns true.
    pub fn start(
        targets: &[ExportTarget],
        tasks: &mut JoinSet<()>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, ExportError> {
        let mut queues = Vec::with_capacity(targets.len());
        for target in targets {
            let sender = Sender::new(target)?;
            let queue = Arc::new(Queue::new(target.clone(), QUEUE_SPANS));
            tasks.spawn(run(queue.clone(), sender, shutdown.clone()));
            queues.push(queue);
        }
        Ok(Self {
            targets: queues.into(),
        })
    }

    /// Queues committed spans for every target; never waits.
    pub fn offer(&self, spans: Arc<Vec<Span>>) {
        for queue in self.targets.iter() {
            queue.push(spans.clone());
        }
    }

    pub fn stats(&self) -> Vec<ExportStats> {
        self.targets
            .iter()
            .map(|queue| ExportStats {
                target: queue.target.to_string(),
                sent: queue.sent.load(Ordering::Relaxed),
                dropped: queue.dropped.load(Ordering::Relaxed),
                failures: queue.failures.load(Ordering::Relaxed),
                queued: queue.queued.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// An export target that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid export target {target}: {reason}")]
pub struct ExportError {
    target: String,
    reason: String,
}

impl Queue {
    fn new(target: ExportTarget, capacity: usize) -> Self {
        Self {
            target,
            capacity: capacity as u64,
            batches: Mutex::new(VecDeque::new()),
            queued: AtomicU64::new(0),
            ready: Notify::new(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn push(&self, spans: Arc<Vec<Span>>) {
        let Ok(mut batches) = self.batches.lock() else {
            return;
        };
        let mut queued = self.queued.load(Ordering::Relaxed) + spans.len() as u64;
        batches.push_back(spans);
        while queued > self.capacity {
            let Some(oldest) = batches.pop_front() else {
                break;
            };
            queued -= oldest.len() as u64;
            self.dropped
                .fetch_add(oldest.len() as u64, Ordering::Relaxed);
        }
        self.queued.store(queued, Ordering::Relaxed);
        drop(batches);
        self.ready.notify_one();
    }

    /// Up to [`MAX_BATCH_SPANS`] spans (at least one whole batch).
    fn take(&self) -> Vec<Span> {
        let Ok(mut batches) = self.batches.lock() else {
            return Vec::new();
        };
        let mut taken: Vec<Span> = Vec::new();
        while let Some(next) = batches.front() {
            if !taken.is_empty() && taken.len() + next.len() > MAX_BATCH_SPANS {
                break;
            }
            let Some(next) = batches.pop_front() else {
                break;
            };
            taken.extend(next.iter().cloned());
        }
        let queued = self.queued.load(Ordering::Relaxed);
        self.queued
            .store(queued.saturating_sub(taken.len() as u64), Ordering::Relaxed);
        taken
    }
}

async fn run(queue: Arc<Queue>, mut sender: Sender, mut shutdown: watch::Receiver<bool>) {
    loop {
        let batch = queue.take();
        if batch.is_empty() {
            tokio::select! {
                () = queue.ready.notified() => continue,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
        let mut backoff = INITIAL_BACKOFF;
        loop {
            match sender.send(&batch).await {
                Ok(()) => {
                    queue.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(SendError::Refused(reason)) => {
                    tracing::warn!(target = %queue.target, %reason, spans = batch.len(), "export refused; dropping the batch");
                    queue
                        .dropped
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(SendError::Retry(reason)) => {
                    queue.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target = %queue.target, %reason, ?backoff, "export failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

enum SendError {
    /// The target rejected the data itself: retrying cannot help.
    Refused(String),
    /// Transient: retry later.
    Retry(String),
}

enum Sender {
    Otlp(TraceServiceClient<tonic::transport::Channel>),
    Zipkin {
        client: Box<Client<HttpConnector, Full<Bytes>>>,
        url: http::Uri,
    },
}

impl Sender {
    fn new(target: &ExportTarget) -> Result<Self, ExportError> {
        let invalid = |reason: String| ExportError {
            target: target.to_string(),
            reason,
        };
        match target {
            ExportTarget::Otlp(url) => {
                let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|error| invalid(error.to_string()))?
                    .timeout(SEND_TIMEOUT)
                    .connect_timeout(SEND_TIMEOUT);
                Ok(Self::Otlp(TraceServiceClient::new(endpoint.connect_lazy())))
            }
            ExportTarget::Zipkin(url) => {
                let url: http::Uri = url.parse().map_err(|error| {
                    invalid(format!("{error} (expected http://HOST:PORT/api/v2/spans)"))
                })?;
                if url.scheme_str() != Some("http") {
                    return Err(invalid("only http:// URLs are supported".to_owned()));
                }
                let client = Box::new(Client::builder(TokioExecutor::new()).build_http());
                Ok(Self::Zipkin { client, url })
            }
        }
    }

    async fn send(&mut self, spans: &[Span]) -> Result<(), SendError> {
        match self {
            Self::Otlp(client) => {
                let request = ExportTraceServiceRequest {
                    resource_spans: crate::otlp::encode::resource_spans(spans),
                };
                match client.export(request).await {
                    Ok(_) => Ok(()),
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        Err(SendError::Refused(status.to_string()))
                    }
                    Err(status) => Err(SendError::Retry(status.to_string())),
                }
            }
            Self::Zipkin { client, url } => {
                let body =
                    serde_json::Value::Array(crate::zipkin::model::encode_spans(spans)).to_string();
                let request = http::Request::post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|error| SendError::Refused(error.to_string()))?;
                let response = tokio::time::timeout(SEND_TIMEOUT, client.request(request))
                    .await
                    .map_err(|_| SendError::Retry("timed out".to_owned()))?
                    .map_err(|error| SendError::Retry(error.to_string()))?;
                let status = response.status();
                // Drain the (small) body so the connection can be reused.
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    Ok(())
                } else if status.is_client_error()
                    && status != http::StatusCode::TOO_MANY_REQUESTS
                    && status != http::StatusCode::REQUEST_TIMEOUT
                {
                    Err(SendError::Refused(format!("HTTP {status}")))
                } else {
                    Err(SendError::Retry(format!("HTTP {status}")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::{ExportTarget, MAX_BATCH_SPANS, Queue};
    use crate::store::{Attributes, Scope, Span, SpanId, SpanKind, StatusCode, TraceId};

    fn spans(first: u8, count: usize) -> Arc<Vec<Span>> {
        Arc::new(
            (0..count)
                .map(|index| Span {
                    trace_id: TraceId([first; 16]),
                    span_id: SpanId::from_bytes(&(index as u64 + 1).to_be_bytes()).unwrap(),
                    parent_span_id: None,
                    service_name: "s".to_owned(),
                    service_version: None,
                    operation: "op".to_owned(),
                    kind: SpanKind::Server,
                    start_unix_nano: 1,
                    duration_nano: 1,
                    status_code: StatusCode::Unset,
                    status_message: String::new(),
                    trace_state: String::new(),
                    flags: 0,
                    attributes: Attributes::new(),
                    events: Vec::new(),
                    links: Vec::new(),
                    resource: Default::default(),
                    scope: Scope::default(),
                })
                .collect(),
        )
    }

    #[test]
    fn a_full_queue_drops_the_oldest_batches_and_counts_them() {
        let queue = Queue::new(ExportTarget::Otlp("http://127.0.0.1:1".to_owned()), 10);
        queue.push(spans(1, 4));
        queue.push(spans(2, 4));
        queue.push(spans(3, 4)); // 12 > 10: batch 1 goes
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 4);
        assert_eq!(queue.queued.load(Ordering::Relaxed), 8);
        let taken = queue.take();
        assert_eq!(taken.len(), 8);
        assert_eq!(taken[0].trace_id, TraceId([2; 16]));
        assert_eq!(queue.queued.load(Ordering::Relaxed), 0);
        assert!(queue.take().is_empty());
    }

    #[test]
    fn batches_are_merged_up_to_the_batch_size() {
        let queue = Queue::new(ExportTarget::Otlp("http://127.0.0.1:1".to_owned()), 100_000);
        for n in 0..5 {
            queue.push(spans(n, 1000));
        }
        assert_eq!(queue.take().len(), 2000);
        assert_eq!(queue.take().len(), 2000);
        assert_eq!(queue.take().len(), 1000);
        // One batch larger than the limit still goes whole.
        queue.push(spans(9, MAX_BATCH_SPANS + 1));
        assert_eq!(queue.take().len(), MAX_BATCH_SPANS + 1);
    }
}
