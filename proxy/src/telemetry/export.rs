//! Background OTLP export of spans and metrics to the collector.
//!
//! The request path only calls [`SpanSink::record`], which encodes the span
//! into a bounded queue of batches under a short lock that is never held
//! across an await: when the queue is full the span is dropped and counted
//! (`weft_proxy_spans_dropped_total{reason="queue_full"}`), never waited for.
//! One task sends the batches over OTLP/gRPC (tonic's channel, the body
//! framed here) or OTLP/HTTP protobuf,
//! retrying retryable failures with backoff; another pushes the cumulative
//! RED metrics every interval, so the collector's graph does not depend on
//! sampling.
//!
//! We build OTLP messages directly instead of going through the
//! OpenTelemetry SDK's tracer: a proxy must control span and trace ids
//! exactly (they are injected downstream before the span ends), and the
//! SDK's batch processor neither exposes its drops nor runs on our runtime.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prometheus::IntCounter;
use prometheus::proto::MetricType;
use prost::Message as _;
use tokio::sync::{Notify, watch};
use tonic::transport::{Channel, Endpoint};

use super::metrics::Metrics;
use super::otlp::{BatchEncoder, Clock, Framing, append_span};
use super::span::{SpanDraft, SpanRecord, Storage};
use crate::trace::SpanContext;

/// Spans held while the collector is slow or away (default).
pub const DEFAULT_SPAN_QUEUE_CAPACITY: usize = 4096;
/// Spans per export call.
const MAX_BATCH: usize = 512;
/// A span waits at most this long before it is sent.
const BATCH_DELAY: Duration = Duration::from_millis(500);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry backoff for a failed span batch: doubling from the first value,
/// capped at the second, so export resumes within ~2 s of the collector's
/// return.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// The OTLP transport to the collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`TraceService/Export`, `MetricsService/Export`), the default.
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`POST /v1/traces`, `/v1/metrics`).
    HttpProtobuf,
}

/// Where telemetry goes.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Collector endpoint: `http://127.0.0.1:4317` for gRPC, or the base URL
    /// of the OTLP/HTTP receiver (`http://127.0.0.1:4318`).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// How often cumulative metrics are pushed.
    pub metrics_interval: Duration,
    /// Spans held while the collector is slow or away; beyond it spans are
    /// dropped and counted.
    pub span_queue_capacity: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid collector endpoint {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
}

/// The request path's handle: records finished spans without waiting.
#[derive(Clone)]
pub struct SpanSink {
    queue: Option<Arc<SpanQueue>>,
    metrics: Metrics,
    /// `weft_proxy_spans_dropped_total{reason="queue_full"}`, looked up once.
    queue_full: IntCounter,
}

/// The bounded queue between the sinks and the export task. A span is encoded into the open
/// batch's protobuf bytes when it is recorded, while the request path has just written it and
/// it is still in the CPU's caches, and its storage goes back to the next drafts at once; the
/// task only closes and sends batches. (Spans used to wait in the queue as records and be
/// encoded by the task: by then, up to a batch delay later, every span's ~1.5 KB had left the
/// caches, and was read back by the encoder and written again by the next draft from memory.)
/// A lock is held for the encoding of one span (about a microsecond, no await); the task takes
/// a whole batch under it. The task does not wait on the queue itself (a waiting receiver is
/// woken by every span): it wakes every [`BATCH_DELAY`], or when a sink has filled a batch.
pub(crate) struct SpanQueue {
    queued: Mutex<Queued>,
    /// Most spans queued (in all batches); beyond it spans are dropped.
    capacity: usize,
    encoder: BatchEncoder,
    batch_ready: Notify,
}

struct Queued {
    /// Batches waiting, oldest first; only the last one may be open (fewer than
    /// [`MAX_BATCH`] spans).
    batches: VecDeque<Batch>,
    /// Spans in `batches`.
    spans: usize,
    /// Span storage for the next drafts (at most [`MAX_BATCH`]).
    spare: Vec<Storage>,
    /// Buffers of sent batches, for the next batches.
    spare_buffers: Vec<Vec<u8>>,
}

/// Encoded spans: an `ExportTraceServiceRequest` being written (see [`BatchEncoder::open`]).
pub(crate) struct Batch {
    buf: Vec<u8>,
    spans: usize,
    /// Converts the spans' instants: one clock reading per batch.
    clock: Clock,
}

/// Batch buffers kept for reuse: a sent batch's buffer is back before the next batch opens,
/// unless batches queue up while the collector is slow or away (then they are allocated).
const SPARE_BUFFERS: usize = 2;

// === impl SpanQueue ===

impl SpanQueue {
    fn new(capacity: usize, encoder: BatchEncoder) -> Self {
        SpanQueue {
            queued: Mutex::new(Queued {
                batches: VecDeque::new(),
                spans: 0,
                spare: Vec::new(),
                spare_buffers: Vec::new(),
            }),
            capacity: capacity.max(1),
            encoder,
            batch_ready: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Storage for a new draft: a spare one when there is one.
    fn storage(&self) -> Storage {
        let spare = self.lock().spare.pop();
        spare.unwrap_or_else(Storage::new)
    }

    /// Encodes and queues `span`; false when the queue is full: the span is then dropped.
    /// Either way its storage is kept for the next drafts (while the collector lags, most
    /// spans are dropped: their storage is not freed only to be allocated again by the next
    /// request).
    fn push(&self, span: SpanRecord) -> bool {
        let mut queued = self.lock();
        let accepted = queued.spans < self.capacity;
        let mut full = false;
        if accepted {
            let open = queued
                .batches
                .back()
                .is_some_and(|batch| batch.spans < MAX_BATCH);
            if !open {
                let mut buf = queued.spare_buffers.pop().unwrap_or_default();
                self.encoder.open(&mut buf, MAX_BATCH);
                queued.batches.push_back(Batch {
                    buf,
                    spans: 0,
                    clock: Clock::now(),
                });
            }
            queued.spans += 1;
            if let Some(batch) = queued.batches.back_mut() {
                append_span(&mut batch.buf, &span, &batch.clock);
                batch.spans += 1;
                full = batch.spans == MAX_BATCH;
            }
        }
        let storage = span.draft.into_storage();
        let kept = queued.spare.len() < MAX_BATCH && storage.is_usual();
        if kept {
            queued.spare.push(storage);
        }
        drop(queued);
        if full {
            self.batch_ready.notify_one();
        }
        // What is not kept (a long span's storage, or too many spare) is freed outside the
        // lock, here.
        accepted
    }

    /// The oldest batch, full or not, and whether more are queued after it.
    pub(crate) fn take(&self) -> Option<(Batch, bool)> {
        let mut queued = self.lock();
        let batch = queued.batches.pop_front()?;
        queued.spans -= batch.spans;
        Some((batch, !queued.batches.is_empty()))
    }

    /// The request of a taken batch.
    fn close(&self, batch: Batch, framing: Framing) -> Bytes {
        self.encoder.close(batch.buf, framing)
    }

    /// The spans of every queued batch, taken, as the collector decodes them.
    #[cfg(test)]
    pub(crate) fn decode_for_test(&self) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        std::iter::from_fn(|| self.take())
            .flat_map(|(batch, _)| {
                ExportTraceServiceRequest::decode(self.close(batch, Framing::None))
                    .expect("a batch decodes")
                    .resource_spans
            })
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    /// Keeps the buffer of a sent request for the next batches, when nothing else holds it.
    fn recycle(&self, request: Bytes) {
        let Ok(mut buf) = request.try_into_mut() else {
            return;
        };
        buf.clear();
        let buf = Vec::from(buf);
        let mut queued = self.lock();
        if queued.spare_buffers.len() < SPARE_BUFFERS {
            queued.spare_buffers.push(buf);
        }
    }
}

impl SpanSink {
    /// A sink that drops everything (no collector configured).
    pub fn disabled(metrics: Metrics) -> Self {
        Self::new(None, metrics)
    }

    fn new(queue: Option<Arc<SpanQueue>>, metrics: Metrics) -> Self {
        Self {
            queue,
            queue_full: metrics.spans_dropped.with_label_values(&["queue_full"]),
            metrics,
        }
    }

    /// A sink whose spans the test takes from the returned queue.
    #[cfg(test)]
    pub(crate) fn for_test(metrics: Metrics) -> (Self, Arc<SpanQueue>) {
        let queue = Arc::new(SpanQueue::new(64, test_encoder()));
        (Self::new(Some(queue.clone()), metrics), queue)
    }

    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// A span named `METHOD path` (see [`SpanDraft::new`]), in the storage of an exported span
    /// when there is one.
    pub fn draft(
        &self,
        context: &SpanContext,
        kind: SpanKind,
        method: &http::Method,
        path: &str,
    ) -> SpanDraft {
        let storage = match &self.queue {
            Some(queue) => queue.storage(),
            None => Storage::new(),
        };
        SpanDraft::new_in(storage, context, kind, method, path)
    }

    pub fn record(&self, span: SpanRecord) {
        let Some(queue) = &self.queue else { return };
        if queue.push(span) {
            self.metrics.span_queue_depth.inc();
        } else {
            self.queue_full.inc();
        }
    }
}

/// One OTLP client for both signals, over gRPC or HTTP.
#[derive(Clone)]
enum OtlpClient {
    Grpc {
        /// Traces are posted on the channel as they are encoded (see [`grpc_unary`]).
        channel: Channel,
        metrics: MetricsServiceClient<Channel>,
    },
    Http {
        /// Boxed: twice the size of the gRPC variant's fields.
        client: Box<Client<HttpConnector, Full<Bytes>>>,
        traces: Uri,
        metrics: Uri,
    },
}

/// Why an export call failed, and whether trying again can help.
struct Failure {
    retryable: bool,
    message: String,
}

impl OtlpClient {
    fn new(config: &ExportConfig) -> Result<Self, ExportError> {
        let invalid = |reason: String| ExportError::Endpoint {
            endpoint: config.endpoint.clone(),
            reason,
        };
        match config.protocol {
            OtlpProtocol::Grpc => {
                let channel = Endpoint::from_shared(config.endpoint.clone())
                    .map_err(|e| invalid(e.to_string()))?
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(EXPORT_TIMEOUT)
                    .connect_lazy();
                Ok(OtlpClient::Grpc {
                    channel: channel.clone(),
                    metrics: MetricsServiceClient::new(channel),
                })
            }
            OtlpProtocol::HttpProtobuf => {
                let base = config.endpoint.trim_end_matches('/');
                let url = |path: &str| {
                    format!("{base}{path}")
                        .parse::<Uri>()
                        .map_err(|e| invalid(e.to_string()))
                };
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(Duration::from_secs(5)));
                Ok(OtlpClient::Http {
                    client: Box::new(Client::builder(TokioExecutor::new()).build(connector)),
                    traces: url("/v1/traces")?,
                    metrics: url("/v1/metrics")?,
                })
            }
        }
    }

    /// How trace requests are framed for [`OtlpClient::export_traces`].
    fn framing(&self) -> Framing {
        match self {
            OtlpClient::Grpc { .. } => Framing::Grpc,
            OtlpClient::Http { .. } => Framing::None,
        }
    }

    /// Sends an encoded `ExportTraceServiceRequest`, framed as [`OtlpClient::framing`] says
    /// (a retry resends the same bytes).
    async fn export_traces(&mut self, request: Bytes) -> Result<(), Failure> {
        match self {
            OtlpClient::Grpc { channel, .. } => grpc_unary(channel, TRACE_EXPORT_PATH, request)
                .await
                .map_err(grpc_failure),
            OtlpClient::Http { client, traces, .. } => {
                http_post(client, traces.clone(), request).await
            }
        }
    }

    async fn export_metrics(
        &mut self,
        request: ExportMetricsServiceRequest,
    ) -> Result<(), Failure> {
        match self {
            OtlpClient::Grpc { metrics, .. } => metrics
                .export(request)
                .await
                .map(drop)
                .map_err(grpc_failure),
            OtlpClient::Http {
                client, metrics, ..
            } => {
                http_post(
                    client,
                    metrics.clone(),
                    Bytes::from(request.encode_to_vec()),
                )
                .await
            }
        }
    }
}

/// The gRPC method of OTLP trace export.
const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A unary gRPC call whose request body (`framed`: the gRPC prefix and the message) is
/// encoded already; the response message is not read. A batch is encoded once, straight into
/// the bytes that go on the wire, and resent as is on retries: tonic's client would copy every
/// ~350 KB batch into a buffer of its own (its codec writes each message into its encode
/// buffer), so it is used here for the connection only. The status is read as tonic's client
/// reads it: `grpc-status` in the headers (trailers-only) or the trailers, else inferred from
/// the HTTP status.
async fn grpc_unary(
    channel: &mut Channel,
    path: &'static str,
    framed: Bytes,
) -> Result<(), tonic::Status> {
    use http_body_util::BodyExt as _;
    use tonic::codegen::Service as _;

    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|error| tonic::Status::unknown(format!("Service was not ready: {error}")))?;
    let mut request = http::Request::new(tonic::body::Body::new(Full::new(framed)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = Uri::from_static(path);
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    let response = channel
        .call(request)
        .await
        .map_err(|error| tonic::Status::from_error(Box::new(error)))?;
    let status = response.status();
    if let Some(grpc) = tonic::Status::from_header_map(response.headers()) {
        return grpc_result(grpc);
    }
    let body = response.into_body().collect().await?;
    match body.trailers().and_then(tonic::Status::from_header_map) {
        Some(grpc) => grpc_result(grpc),
        None => Err(tonic::Status::new(
            // gRPC's mapping of HTTP statuses (doc/http-grpc-status-mapping.md), as tonic's.
            match status {
                http::StatusCode::BAD_REQUEST => tonic::Code::Internal,
                http::StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
                http::StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
                http::StatusCode::NOT_FOUND => tonic::Code::Unimplemented,
                http::StatusCode::TOO_MANY_REQUESTS
                | http::StatusCode::BAD_GATEWAY
                | http::StatusCode::SERVICE_UNAVAILABLE
                | http::StatusCode::GATEWAY_TIMEOUT => tonic::Code::Unavailable,
                _ => tonic::Code::Unknown,
            },
            format!("HTTP {status} without grpc-status"),
        )),
    }
}

fn grpc_result(status: tonic::Status) -> Result<(), tonic::Status> {
    if status.code() == tonic::Code::Ok {
        Ok(())
    } else {
        Err(status)
    }
}

/// OTLP's retryable gRPC codes (UNAVAILABLE and friends); everything else
/// (e.g. INVALID_ARGUMENT) means the data will never be accepted.
fn grpc_failure(status: tonic::Status) -> Failure {
    use tonic::Code;
    Failure {
        retryable: matches!(
            status.code(),
            Code::Unavailable
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::DataLoss
                | Code::Unknown
                | Code::Internal
        ),
        message: status.to_string(),
    }
}

async fn http_post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    body: Bytes,
) -> Result<(), Failure> {
    let mut request = http::Request::new(Full::new(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    let response = tokio::time::timeout(EXPORT_TIMEOUT, client.request(request))
        .await
        .map_err(|_| Failure {
            retryable: true,
            message: "timed out".into(),
        })?
        .map_err(|e| Failure {
            retryable: true,
            message: e.to_string(),
        })?;
    let status = response.status();
    // Drain the body so the connection can be reused.
    let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure {
            retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
            message: format!("HTTP {status}"),
        })
    }
}

/// Handles of the export tasks; `shutdown` flushes what is queued.
pub struct Exporter {
    span_task: tokio::task::JoinHandle<()>,
    metrics_task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Exporter {
    /// Starts the span and metric export tasks. Connections are made
    /// lazily, so a collector that starts later (or restarts) is fine.
    pub fn start(
        config: &ExportConfig,
        resource: Resource,
        metrics: Metrics,
    ) -> Result<(SpanSink, Exporter), ExportError> {
        let client = OtlpClient::new(config)?;
        let queue = Arc::new(SpanQueue::new(
            config.span_queue_capacity,
            BatchEncoder::new(&resource, &scope()),
        ));
        let (stop, stop_rx) = watch::channel(false);
        let span_task = tokio::spawn(export_spans(
            queue.clone(),
            client.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
        let metrics_task = tokio::spawn(push_metrics(
            client,
            resource,
            metrics.clone(),
            config.metrics_interval,
            stop_rx,
        ));
        let sink = SpanSink::new(Some(queue), metrics);
        Ok((
            sink,
            Exporter {
                span_task,
                metrics_task,
                stop,
            },
        ))
    }

    /// Flushes queued spans and pushes metrics one last time. Spans recorded
    /// after this are dropped (and counted).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.metrics_task.await;
        let _ = self.span_task.await;
    }
}

async fn export_spans(
    queue: Arc<SpanQueue>,
    mut client: OtlpClient,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut stopping = false;
    let mut closed = false;
    let mut tick = tokio::time::interval(BATCH_DELAY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !closed {
        if stopping {
            // Send what is queued, then end.
            closed = true;
        } else {
            tokio::select! {
                _ = queue.batch_ready.notified() => {}
                _ = tick.tick() => {}
                _ = stop.changed() => stopping = true,
            }
        }
        if Arc::strong_count(&queue) == 1 {
            // Every sink is gone: nothing more can be queued.
            closed = true;
        }
        // Everything queued goes, a batch at a time.
        while let Some((batch, more)) = queue.take() {
            send_spans(
                &mut client,
                &queue,
                batch,
                &metrics,
                &mut stop,
                &mut stopping,
            )
            .await;
            if !more {
                break;
            }
        }
    }
}

/// Sends a batch, retrying while that can help.
async fn send_spans(
    client: &mut OtlpClient,
    queue: &SpanQueue,
    batch: Batch,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
    stopping: &mut bool,
) {
    let count = batch.spans as u64;
    metrics.span_queue_depth.sub(count as i64);
    let request = queue.close(batch, client.framing());
    // Retry a retryable failure with backoff while the queue keeps
    // filling (and, once full, dropping): memory stays bounded and the
    // request path never waits. On shutdown, one last try.
    let mut backoff = RETRY_BACKOFF.0;
    let mut warned = false;
    loop {
        match client.export_traces(request.clone()).await {
            Ok(()) => {
                metrics.spans_exported.inc_by(count);
                if warned {
                    tracing::info!("span export resumed");
                }
                break;
            }
            Err(failure) => {
                metrics.export_failures.with_label_values(&["traces"]).inc();
                if !failure.retryable || *stopping {
                    metrics
                        .spans_dropped
                        .with_label_values(&["export_failed"])
                        .inc_by(count);
                    tracing::warn!(spans = count, error = %failure.message, "span export failed; spans dropped");
                    break;
                }
                if !warned {
                    tracing::warn!(error = %failure.message, "span export failed; retrying");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => *stopping = true,
                }
                backoff = (backoff * 2).min(RETRY_BACKOFF.1);
            }
        }
    }
    queue.recycle(request);
}

async fn push_metrics(
    mut client: OtlpClient,
    resource: Resource,
    metrics: Metrics,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let start_time = unix_nanos(SystemTime::now());
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = stop.changed() => true,
        };
        // Values are cumulative: a failed push loses nothing, the next one
        // carries the totals.
        let request = metrics_request(&metrics, &resource, start_time);
        if let Err(failure) = client.export_metrics(request).await {
            metrics
                .export_failures
                .with_label_values(&["metrics"])
                .inc();
            tracing::debug!(error = %failure.message, "metrics push failed");
        }
        if stopping {
            break;
        }
    }
}

/// Converts the registry's cumulative values into OTLP: counters become
/// monotonic cumulative Sums, histograms cumulative Histograms with the same
/// explicit bounds. Label pairs become data-point attributes.
pub fn metrics_request(
    metrics: &Metrics,
    resource: &Resource,
    start_time_unix_nano: u64,
) -> ExportMetricsServiceRequest {
    let now = unix_nanos(SystemTime::now());
    let mut out = Vec::new();
    for family in metrics.gather() {
        let data = match family.get_field_type() {
            MetricType::COUNTER | MetricType::GAUGE => {
                let points = family
                    .get_metric()
                    .iter()
                    .map(|m| NumberDataPoint {
                        attributes: labels(m.get_label()),
                        start_time_unix_nano,
                        time_unix_nano: now,
                        value: Some(number_data_point::Value::AsDouble(
                            if family.get_field_type() == MetricType::COUNTER {
                                m.get_counter().get_value()
                            } else {
                                m.get_gauge().get_value()
                            },
                        )),
                        ..Default::default()
                    })
                    .collect();
                if family.get_field_type() == MetricType::COUNTER {
                    metric::Data::Sum(Sum {
                        data_points: points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })
                } else {
                    metric::Data::Gauge(opentelemetry_proto::tonic::metrics::v1::Gauge {
                        data_points: points,
                    })
                }
            }
            MetricType::HISTOGRAM => {
                let points = family
                    .get_metric()
                    .iter()
                    .map(|m| {
                        let h = m.get_histogram();
                        let mut bounds = Vec::with_capacity(h.get_bucket().len());
                        let mut counts = Vec::with_capacity(h.get_bucket().len() + 1);
                        let mut previous = 0;
                        for bucket in h.get_bucket() {
                            bounds.push(bucket.upper_bound());
                            counts.push(bucket.cumulative_count() - previous);
                            previous = bucket.cumulative_count();
                        }
                        counts.push(h.get_sample_count() - previous);
                        HistogramDataPoint {
                            attributes: labels(m.get_label()),
                            start_time_unix_nano,
                            time_unix_nano: now,
                            count: h.get_sample_count(),
                            sum: Some(h.get_sample_sum()),
                            bucket_counts: counts,
                            explicit_bounds: bounds,
                            ..Default::default()
                        }
                    })
                    .collect();
                metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })
            }
            MetricType::SUMMARY | MetricType::UNTYPED => continue,
        };
        out.push(Metric {
            name: family.name().to_string(),
            description: family.help().to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: out,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn labels(pairs: &[prometheus::proto::LabelPair]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|p| string_attribute(p.name(), p.value()))
        .collect()
}

/// The encoder of the test queues: no resource.
#[cfg(test)]
pub(crate) fn test_encoder() -> BatchEncoder {
    BatchEncoder::new(&Resource::default(), &scope())
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "weft-proxy".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

pub fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use tokio::time::Instant;

    use opentelemetry_proto::tonic::trace::v1::Span;

    use super::*;
    use crate::telemetry::SpanDraft;
    use crate::telemetry::span::Outcome;
    use crate::trace::SpanContext;

    fn record(attempt: i64) -> SpanRecord {
        let context = SpanContext::sampled(None);
        let mut draft = SpanDraft::new(&context, SpanKind::Client, &http::Method::GET, "/");
        draft.int("weft.retry.attempt", attempt);
        SpanRecord {
            draft,
            start: Instant::now(),
            end: Instant::now(),
            outcome: Outcome {
                code: 200,
                flags: "-",
                error: None,
                request_bytes: 0,
                response_bytes: 0,
            },
        }
    }

    /// The batch's spans as the collector decodes them.
    fn spans(queue: &SpanQueue, batch: Batch) -> Vec<Span> {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        ExportTraceServiceRequest::decode(queue.close(batch, Framing::None))
            .expect("a batch decodes")
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    fn attempts(spans: &[Span]) -> Vec<i64> {
        spans
            .iter()
            .map(|span| {
                let attempt = span
                    .attributes
                    .iter()
                    .find(|a| a.key == "weft.retry.attempt")
                    .and_then(|a| a.value.as_ref()?.value.as_ref());
                match attempt {
                    Some(any_value::Value::IntValue(attempt)) => *attempt,
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn the_queue_is_bounded_and_counts_what_it_drops() {
        let metrics = Metrics::new().unwrap();
        let queue = Arc::new(SpanQueue::new(3, test_encoder()));
        let sink = SpanSink::new(Some(queue.clone()), metrics.clone());
        for attempt in 0..5 {
            sink.record(record(attempt));
        }
        assert_eq!(metrics.span_queue_depth.get(), 3);
        assert_eq!(
            metrics
                .spans_dropped
                .with_label_values(&["queue_full"])
                .get(),
            2
        );
        let (batch, more) = queue.take().expect("a batch");
        assert!(!more);
        assert_eq!(batch.spans, 3);
        assert_eq!(attempts(&spans(&queue, batch)), [0, 1, 2]);
        assert!(queue.take().is_none());
        // Taken spans make room again.
        sink.record(record(5));
        let (batch, _) = queue.take().expect("a batch");
        assert_eq!(attempts(&spans(&queue, batch)), [5]);
    }

    #[test]
    fn a_recorded_span_leaves_its_storage_to_the_next_draft() {
        let metrics = Metrics::new().unwrap();
        let queue = Arc::new(SpanQueue::new(8, test_encoder()));
        let sink = SpanSink::new(Some(queue.clone()), metrics);
        let recorded = record(0);
        let text = recorded.draft.text.as_ptr();
        sink.record(recorded);
        let context = SpanContext::sampled(None);
        let draft = sink.draft(&context, SpanKind::Server, &http::Method::POST, "/b");
        assert_eq!(draft.text.as_ptr(), text);
        assert_eq!(draft.name(), "POST /b");
        assert_eq!(draft.attributes.len(), 2);
        // None spare: a new one.
        let other = sink.draft(&context, SpanKind::Server, &http::Method::POST, "/b");
        assert_ne!(other.text.as_ptr(), text);
        // The queued span was encoded before its storage was reused.
        let (batch, _) = queue.take().expect("a batch");
        let spans = spans(&queue, batch);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name, "GET /");
    }

    #[test]
    fn a_dropped_span_leaves_its_storage_to_the_next_draft() {
        let metrics = Metrics::new().unwrap();
        let queue = Arc::new(SpanQueue::new(1, test_encoder()));
        let sink = SpanSink::new(Some(queue.clone()), metrics);
        sink.record(record(0));
        // The first span's storage is spare now: this draft takes it.
        let context = SpanContext::sampled(None);
        let _taken = sink.draft(&context, SpanKind::Client, &http::Method::GET, "/");
        let dropped = record(1);
        let text = dropped.draft.text.as_ptr();
        sink.record(dropped);
        let draft = sink.draft(&context, SpanKind::Client, &http::Method::GET, "/c");
        assert_eq!(draft.text.as_ptr(), text);
        assert_eq!(draft.name(), "GET /c");
    }

    #[test]
    fn a_backlog_is_taken_a_batch_at_a_time_oldest_first() {
        let queue = SpanQueue::new(MAX_BATCH * 3, test_encoder());
        for attempt in 0..(MAX_BATCH * 2 + 10) as i64 {
            assert!(queue.push(record(attempt)));
        }
        let mut taken = Vec::new();
        let mut sizes = Vec::new();
        while let Some((batch, more)) = queue.take() {
            sizes.push(batch.spans);
            taken.extend(attempts(&spans(&queue, batch)));
            assert_eq!(more, sizes.len() < 3);
        }
        assert_eq!(sizes, [MAX_BATCH, MAX_BATCH, 10]);
        assert_eq!(taken, (0..(MAX_BATCH * 2 + 10) as i64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_full_batch_wakes_the_export_task() {
        let queue = SpanQueue::new(MAX_BATCH * 2, test_encoder());
        for attempt in 0..MAX_BATCH as i64 - 1 {
            queue.push(record(attempt));
        }
        let notified = queue.batch_ready.notified();
        tokio::pin!(notified);
        assert!(poll_once(notified.as_mut()).is_pending());
        queue.push(record(0));
        assert!(poll_once(notified.as_mut()).is_ready());
    }

    fn poll_once<F: std::future::Future>(
        future: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        future.poll(&mut context)
    }

    #[test]
    fn a_sent_batch_leaves_its_buffer_to_the_next_batch() {
        let queue = SpanQueue::new(8, test_encoder());
        queue.push(record(0));
        let (batch, _) = queue.take().expect("a batch");
        let request = queue.close(batch, Framing::Grpc);
        let at = request.as_ptr();
        let held = request.clone();
        // Still held elsewhere (h2 has not written it yet): not taken back.
        queue.recycle(request);
        assert!(queue.lock().spare_buffers.is_empty());
        queue.recycle(held);
        queue.push(record(1));
        let (batch, _) = queue.take().expect("a batch");
        assert!(
            batch.buf.as_ptr() <= at && at < batch.buf.as_ptr().wrapping_add(batch.buf.capacity())
        );
        assert_eq!(attempts(&spans(&queue, batch)), [1]);
    }

    /// A collector's trace service that answers with the given codes in turn and keeps the
    /// spans it receives.
    struct Collector {
        codes: Mutex<VecDeque<tonic::Code>>,
        received: Arc<Mutex<Vec<Span>>>,
    }

    #[tonic::async_trait]
    impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
        for Collector
    {
        async fn export(
            &self,
            request: tonic::Request<
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
            >,
        ) -> Result<
            tonic::Response<
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
            >,
            tonic::Status,
        > {
            let code = self
                .codes
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(tonic::Code::Ok);
            if code != tonic::Code::Ok {
                return Err(tonic::Status::new(code, "refused"));
            }
            let spans = request
                .into_inner()
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans);
            self.received.lock().unwrap().extend(spans);
            Ok(tonic::Response::new(Default::default()))
        }
    }

    #[tokio::test]
    async fn a_grpc_export_sends_the_encoded_batch_and_reads_the_status() {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let collector = Collector {
            codes: Mutex::new(
                [
                    tonic::Code::Ok,
                    tonic::Code::Unavailable,
                    tonic::Code::InvalidArgument,
                ]
                .into(),
            ),
            received: received.clone(),
        };
        let incoming = futures_util::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| stream);
            Some((accepted, listener))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(incoming),
        );
        let mut client = OtlpClient::new(&ExportConfig {
            endpoint,
            protocol: OtlpProtocol::Grpc,
            metrics_interval: Duration::from_secs(60),
            span_queue_capacity: 8,
        })
        .unwrap();
        assert_eq!(client.framing(), Framing::Grpc);
        let queue = SpanQueue::new(8, test_encoder());
        for attempt in 0..3 {
            queue.push(record(attempt));
        }
        let (batch, _) = queue.take().unwrap();
        let request = queue.close(batch, client.framing());

        assert!(client.export_traces(request.clone()).await.is_ok());
        assert_eq!(attempts(&received.lock().unwrap()), [0, 1, 2]);
        let unavailable = client.export_traces(request.clone()).await.unwrap_err();
        assert!(unavailable.retryable, "{}", unavailable.message);
        let invalid = client.export_traces(request).await.unwrap_err();
        assert!(!invalid.retryable, "{}", invalid.message);
        assert_eq!(received.lock().unwrap().len(), 3);
    }
}
