//! Background OTLP export of spans and metrics to the collector.
//!
//! The request path only calls [`SpanSink::record`], a non-blocking
//! `try_send` into a bounded queue: when the queue is full the span is
//! dropped and counted (`weft_proxy_spans_dropped_total`), never waited for.
//! One task batches spans and sends them with the OTLP/gRPC client that
//! `opentelemetry-proto` generates; another pushes the cumulative RED metrics
//! every interval, so the collector's graph does not depend on sampling.
//!
//! We build OTLP messages directly instead of going through the
//! OpenTelemetry SDK's tracer: a proxy must control span and trace ids
//! exactly (they are injected downstream before the span ends), and the
//! SDK's batch processor neither exposes its drops nor runs on our runtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prometheus::proto::MetricType;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};

use super::metrics::Metrics;

/// Spans held while the collector is slow or away.
pub const SPAN_QUEUE_CAPACITY: usize = 4096;
/// Spans per export call.
const MAX_BATCH: usize = 512;
/// A span waits at most this long before it is sent.
const BATCH_DELAY: Duration = Duration::from_millis(500);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where telemetry goes.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// OTLP/gRPC endpoint of the collector, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// How often cumulative metrics are pushed.
    pub metrics_interval: Duration,
}

/// The request path's handle: records finished spans without waiting.
#[derive(Clone)]
pub struct SpanSink {
    queue: Option<mpsc::Sender<Span>>,
    metrics: Metrics,
}

impl SpanSink {
    /// A sink that drops everything (no collector configured).
    pub fn disabled(metrics: Metrics) -> Self {
        Self {
            queue: None,
            metrics,
        }
    }

    /// A sink whose spans the test reads from the returned queue.
    #[cfg(test)]
    pub(crate) fn for_test(metrics: Metrics) -> (Self, mpsc::Receiver<Span>) {
        let (queue, spans) = mpsc::channel(64);
        (
            Self {
                queue: Some(queue),
                metrics,
            },
            spans,
        )
    }

    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    pub fn record(&self, span: Span) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(span) {
            Ok(()) => self.metrics.span_queue_depth.inc(),
            Err(_) => self.metrics.spans_dropped.inc(),
        }
    }
}

/// Handles of the export tasks; `shutdown` flushes what is queued.
pub struct Exporter {
    span_task: tokio::task::JoinHandle<()>,
    metrics_task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Exporter {
    /// Starts the span and metric export tasks. The gRPC channel connects
    /// lazily, so a collector that starts later (or restarts) is fine.
    pub fn start(
        config: &ExportConfig,
        resource: Resource,
        metrics: Metrics,
    ) -> Result<(SpanSink, Exporter), tonic::transport::Error> {
        let channel = Endpoint::from_shared(config.endpoint.clone())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(EXPORT_TIMEOUT)
            .connect_lazy();
        let (tx, rx) = mpsc::channel(SPAN_QUEUE_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let span_task = tokio::spawn(export_spans(
            rx,
            TraceServiceClient::new(channel.clone()),
            resource.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
        let metrics_task = tokio::spawn(push_metrics(
            MetricsServiceClient::new(channel),
            resource,
            metrics.clone(),
            config.metrics_interval,
            stop_rx,
        ));
        let sink = SpanSink {
            queue: Some(tx),
            metrics,
        };
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
    mut rx: mpsc::Receiver<Span>,
    mut client: TraceServiceClient<Channel>,
    resource: Resource,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        if stopping {
            // Drain what is queued, then end.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
        } else {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(span) => batch.push(span),
                    None => break,
                },
                _ = stop.changed() => {
                    stopping = true;
                    continue;
                }
            }
            let deadline = tokio::time::Instant::now() + BATCH_DELAY;
            while batch.len() < MAX_BATCH {
                tokio::select! {
                    received = rx.recv() => match received {
                        Some(span) => batch.push(span),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = stop.changed() => {
                        stopping = true;
                        break;
                    }
                }
            }
        }
        metrics.span_queue_depth.sub(batch.len() as i64);
        let count = batch.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans: std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH)),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        match client.export(request).await {
            Ok(_) => metrics.spans_exported.inc_by(count),
            Err(status) => {
                metrics.export_failures.with_label_values(&["traces"]).inc();
                tracing::warn!(spans = count, error = %status, "span export failed; spans dropped");
            }
        }
    }
}

async fn push_metrics(
    mut client: MetricsServiceClient<Channel>,
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
        let request = metrics_request(&metrics, &resource, start_time);
        if let Err(status) = client.export(request).await {
            metrics
                .export_failures
                .with_label_values(&["metrics"])
                .inc();
            tracing::debug!(error = %status, "metrics push failed");
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
