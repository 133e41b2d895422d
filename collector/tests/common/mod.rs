//! Helpers shared by the integration tests: a collector on 127.0.0.1:0 with
//! a temporary SQLite file, OTLP request builders, and an HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use weft_collector::{Collector, Config};

/// A running collector and the temporary directory holding its database.
pub struct TestCollector {
    pub collector: Collector,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl TestCollector {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("data/weft.db").display());
        Self::start_with(dir, db).await
    }

    pub async fn start_with(dir: tempfile::TempDir, db: String) -> Self {
        let any = "127.0.0.1:0".parse().unwrap();
        Self::start_config(
            dir,
            Config {
                db,
                http: any,
                otlp_grpc: any,
                otlp_http: any,
                zipkin: Some(any),
                ..Config::default()
            },
        )
        .await
    }

    /// A collector with a full [`Config`] (every address should use port 0).
    pub async fn start_config(dir: tempfile::TempDir, config: Config) -> Self {
        let collector = config.build().await.unwrap();
        Self {
            collector,
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// `http://ADDR/PATH` on the query listener.
    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.collector.http_addr())
    }

    /// `http://ADDR/PATH` on the OTLP/HTTP listener.
    pub fn otlp(&self, path: &str) -> String {
        format!("http://{}{path}", self.collector.otlp_http_addr())
    }

    /// `http://ADDR/PATH` on the Zipkin listener.
    pub fn zipkin(&self, path: &str) -> String {
        format!("http://{}{path}", self.collector.zipkin_addr().unwrap())
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.collector.otlp_grpc_addr())
    }

    /// GET a query URL, asserting the status, returning the JSON body.
    pub async fn get_json(&self, path: &str, status: u16) -> serde_json::Value {
        let response = self.client.get(self.api(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "GET {path}");
        response.json().await.unwrap()
    }

    /// POST an OTLP/HTTP body; returns status, content type and body.
    pub async fn post_otlp(
        &self,
        path: &str,
        content_type: &str,
        gzip: bool,
        body: Vec<u8>,
    ) -> (u16, String, Vec<u8>) {
        let mut request = self
            .client
            .post(self.otlp(path))
            .header("content-type", content_type);
        let body = if gzip {
            request = request.header("content-encoding", "gzip");
            gzip_bytes(&body)
        } else {
            body
        };
        let response = request.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            status,
            content_type,
            response.bytes().await.unwrap().to_vec(),
        )
    }

    pub async fn stop(self) {
        self.collector.shutdown().await;
    }
}

pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

pub fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// A span; `kind` 2 = SERVER, 3 = CLIENT.
pub fn span(
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &str,
    kind: i32,
    start: u64,
    duration: Duration,
) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.map(|id| id.to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration.as_nanos() as u64,
        attributes: vec![
            string_kv("http.method", "GET"),
            int_kv("http.status_code", 200),
        ],
        ..Default::default()
    }
}

pub fn with_error(mut span: Span) -> Span {
    span.status = Some(Status {
        message: "boom".to_owned(),
        code: 2,
    });
    span
}

/// One export: `(service, version, spans)` per resource.
pub fn trace_request(resources: Vec<(&str, &str, Vec<Span>)>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: resources
            .into_iter()
            .map(|(service, version, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", service),
                        string_kv("service.version", version),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// The demo trace: web (root SERVER) → web CLIENT → stock-api SERVER.
pub fn demo_trace(trace_id: [u8; 16], start: u64) -> ExportTraceServiceRequest {
    let ms = Duration::from_millis;
    trace_request(vec![
        (
            "web",
            "v1",
            vec![
                span(trace_id, [1; 8], None, "GET /", 2, start, ms(50)),
                span(
                    trace_id,
                    [2; 8],
                    Some([1; 8]),
                    "GET stock-api",
                    3,
                    start + 5_000_000,
                    ms(30),
                ),
            ],
        ),
        (
            "stock-api",
            "v2",
            vec![with_error(span(
                trace_id,
                [3; 8],
                Some([2; 8]),
                "GET /price",
                2,
                start + 10_000_000,
                ms(20),
            ))],
        ),
    ])
}

/// One `istio_requests_total` cumulative point.
pub struct RequestCount<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub start: u64,
    pub time: u64,
    pub value: i64,
}

pub fn requests_total(points: Vec<RequestCount<'_>>) -> ExportMetricsServiceRequest {
    let data_points = points
        .into_iter()
        .map(|point| NumberDataPoint {
            attributes: point
                .labels
                .iter()
                .map(|(key, value)| string_kv(key, value))
                .collect(),
            start_time_unix_nano: point.start,
            time_unix_nano: point.time,
            value: Some(number_data_point::Value::AsInt(point.value)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: None,
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics: vec![Metric {
                    name: "istio_requests_total".to_owned(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Istio labels of one reported edge.
pub fn istio_labels<'a>(
    reporter: &'a str,
    source: (&'a str, &'a str, &'a str),
    destination: (&'a str, &'a str, &'a str),
    code: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("reporter", reporter),
        ("source_workload", source.0),
        ("source_workload_namespace", "default"),
        ("source_app", source.1),
        ("source_version", source.2),
        ("destination_workload", destination.0),
        ("destination_workload_namespace", "default"),
        ("destination_app", destination.1),
        ("destination_version", destination.2),
        ("destination_service", "svc"),
        ("response_code", code),
        ("response_flags", "-"),
    ]
}
