//! The collector benchmark (BENCHMARKS.md, "Collector"): an in-process
//! collector and load generator in one run.
//!
//! ```text
//! cargo run --release -p weft-collector --example bench -- \
//!     [--db sqlite|postgres] [--spans 1000000] [--batch 512] [--clients 4] [--queries 200]
//!     [--lazy true] [--random-ids true] [--shape app|proxy] [--drop-indexes spans_start,...]
//!     [--synchronous full|normal]
//! ```
//!
//! `--shape proxy` (ingest only, with `--queries 0`): the spans weft's
//! proxies export instead of an app's. Each trace is one request through a
//! pair of sidecars: a CLIENT span from the caller's outbound (`client`) and
//! its child SERVER span from the callee's inbound (`server`), ~15
//! attributes each, starts counting up as time does. Each proxy exports its
//! own batches, so an export holds one span of each of `--batch` traces, and
//! the two halves of a trace arrive in different exports: the server's
//! exports lag the client's by half a batch, so half the traces arrive
//! server span first (their start then moves earlier when the client span
//! comes), as with two proxies flushing independently.
//!
//! `--queries 0` stops after the ingest (to profile the write path alone).
//!
//! 1. Ingest: `--clients` OTLP/gRPC clients send `--spans` spans in
//!    exports of `--batch` spans (traces of 8 spans over 4 services, realistic
//!    HTTP attributes), built and protobuf-encoded before the clock starts
//!    (`--lazy true`: built and encoded while sending, for runs too large to
//!    hold in memory). Each client is a real gRPC client over TCP (tonic,
//!    HTTP/2) that sends the encoded bytes as the body of
//!    `TraceService/Export`, so the measured CPU is the collector's plus the
//!    transport's, not the cost of building or encoding the load. Reports
//!    spans/s and the CPU time the process, the SQLite writer thread (the
//!    busiest `sqlx-sqlite` thread) and the other SQLite threads (the
//!    background checkpointer) used, since the machine may be shared; on
//!    PostgreSQL also the CPU of every `postgres` process of the host.
//! 2. Metrics: one hour of `istio_requests_total` and duration histograms for
//!    the 4-service graph, pushed every 5 s of simulated time.
//! 3. Queries over HTTP with the store full: trace by id, searches (service;
//!    service + operation; operation; service + tag; the dashboard's
//!    search by service and tag with its count, newest and longest first),
//!    the service graph, the span-derived dependencies, and trace by id
//!    again with the same ids; reports p50/p95/p99 per query. On
//!    PostgreSQL twice: as ingested, then after `VACUUM ANALYZE`.
//!
//! PostgreSQL: `$WEFT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), in a fresh schema dropped at
//! the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The `weft` binary's allocator (`src/main.rs`), so that the collector is
/// measured as it ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use sqlx::Connection;

const SERVICES: [&str; 4] = ["web", "cart", "stock-api", "payments"];
const SPANS_PER_TRACE: usize = 8;

struct Args {
    db: String,
    spans: usize,
    batch: usize,
    clients: usize,
    queries: usize,
    /// Build each export just before sending it (for 10 M spans, which do
    /// not fit in memory pre-built); the build time then counts.
    lazy: bool,
    /// `--shape proxy`: the spans of a pair of sidecars ([`proxy_request`]).
    proxy: bool,
    /// SQLite indexes to drop before the ingest (comma-separated), to
    /// measure what each costs the writer. The searches need them: the
    /// query phase is meaningless with any dropped.
    drop_indexes: Vec<String>,
    /// `--synchronous full|normal`: the SQLite store's durability
    /// (`sqlite://FILE?synchronous=...`; full, the default, syncs each
    /// commit).
    synchronous: String,
}

fn args() -> Args {
    let mut args = Args {
        db: "sqlite".to_owned(),
        spans: 1_000_000,
        batch: 512,
        clients: 4,
        queries: 200,
        lazy: false,
        proxy: false,
        drop_indexes: Vec::new(),
        synchronous: "full".to_owned(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().expect("a value after each flag");
        match flag.as_str() {
            "--db" => args.db = value,
            "--spans" => args.spans = value.parse().unwrap(),
            "--batch" => args.batch = value.parse().unwrap(),
            "--clients" => args.clients = value.parse().unwrap(),
            "--queries" => args.queries = value.parse().unwrap(),
            "--lazy" => args.lazy = value.parse().unwrap(),
            "--random-ids" => {
                RANDOM_IDS.store(value.parse().unwrap(), std::sync::atomic::Ordering::Relaxed)
            }
            "--shape" => {
                args.proxy = match value.as_str() {
                    "app" => false,
                    "proxy" => true,
                    other => panic!("--shape app|proxy, not {other}"),
                }
            }
            "--drop-indexes" => {
                args.drop_indexes = value.split(',').map(str::to_owned).collect();
            }
            "--synchronous" => args.synchronous = value,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

fn now_nanos() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// `--random-ids true`: trace ids spread like real ones (random), not
/// counting up.
static RANDOM_IDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The id of trace `n`: `0x5eed`, then n + 1 (every B-tree keyed by trace id
/// is appended at its right edge), or with `--random-ids` a splitmix64 of
/// n + 1 first (each trace lands on a random leaf, as real ids do).
fn trace_id_of(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    let high = if RANDOM_IDS.load(std::sync::atomic::Ordering::Relaxed) {
        let mut z = (n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    } else {
        0x5eed
    };
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&(n + 1).to_be_bytes());
    id
}

/// (service index, parent index, name, kind, offset µs, duration µs).
type SpanShape = (usize, Option<u64>, &'static str, i32, u64, u64);

/// Trace `n`: web → cart → stock-api, web → payments, with CLIENT/SERVER
/// pairs; starts spread over the last hour.
fn trace_spans(n: u64, base: u64) -> Vec<(usize, Span)> {
    let trace_id = trace_id_of(n);
    let start = base + (n * 7_919_000) % 3_600_000_000_000;
    let span_id = |i: u64| ((n + 1) << 8 | (i + 1)).to_be_bytes().to_vec();
    // (service, parent index, name, kind, offset µs, duration µs)
    let shape: [SpanShape; SPANS_PER_TRACE] = [
        (0, None, "GET /checkout", 2, 0, 40_000),
        (0, Some(0), "GET cart", 3, 1_000, 20_000),
        (1, Some(1), "GET /cart", 2, 1_500, 18_000),
        (1, Some(2), "GET stock-api", 3, 2_000, 10_000),
        (2, Some(3), "GET /price", 2, 2_500, 9_000),
        (2, Some(4), "SELECT price", 1, 3_000, 5_000),
        (0, Some(0), "POST payments", 3, 22_000, 15_000),
        (3, Some(6), "POST /charge", 2, 22_500, 14_000),
    ];
    shape
        .iter()
        .enumerate()
        .map(|(i, &(service, parent, name, kind, offset, duration))| {
            let begin = start + offset * 1000;
            let status = (n.is_multiple_of(50) && i == 7).then(|| Status {
                message: "card declined".to_owned(),
                code: 2,
            });
            let span = Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(i as u64),
                parent_span_id: parent.map(span_id).unwrap_or_default(),
                name: name.to_owned(),
                kind,
                start_time_unix_nano: begin,
                end_time_unix_nano: begin + duration * 1000,
                attributes: vec![
                    text(
                        "http.request.method",
                        if name.starts_with("POST") {
                            "POST"
                        } else {
                            "GET"
                        },
                    ),
                    kv(
                        "http.response.status_code",
                        any_value::Value::IntValue(if status.is_some() { 502 } else { 200 }),
                    ),
                    text("url.path", name.split(' ').nth(1).unwrap_or("/")),
                    text("user.id", &format!("user-{}", n % 1000)),
                ],
                status,
                ..Default::default()
            };
            (service, span)
        })
        .collect()
}

/// One resource's spans, in one scope.
fn resource_spans(attributes: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: None,
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// Export number `index`: spans `index * batch ..` (at most `batch`, fewer
/// at the end of `total`), grouped by service into resource spans.
fn trace_request(index: usize, batch: usize, total: usize, base: u64) -> ExportTraceServiceRequest {
    let first = index * batch;
    let last = (first + batch).min(total);
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut trace = None;
    for at in first..last {
        let n = (at / SPANS_PER_TRACE) as u64;
        let spans = match &trace {
            Some((cached, spans)) if *cached == n => spans,
            _ => &trace.insert((n, trace_spans(n, base))).1,
        };
        let (service, span) = spans[at % SPANS_PER_TRACE].clone();
        per_service[service].push(span);
    }
    ExportTraceServiceRequest {
        resource_spans: per_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(index, spans)| {
                resource_spans(
                    vec![
                        text("service.name", SERVICES[index]),
                        text("service.version", "v1"),
                        text("host.name", &format!("{}-7d9f", SERVICES[index])),
                    ],
                    spans,
                )
            })
            .collect(),
    }
}

/// Export number `index` of a pair of sidecars (`--shape proxy`): even
/// exports hold the client proxy's CLIENT spans of `batch` traces, odd ones
/// the server proxy's SERVER spans of traces half a batch later (wrapping
/// around at the end), so that half of each server export's traces are
/// still missing their client span. `total` spans make `total / 2` traces.
fn proxy_request(index: usize, batch: usize, total: usize, base: u64) -> ExportTraceServiceRequest {
    let traces = (total / 2).max(1);
    let server = index % 2 == 1;
    let first = (index / 2) * batch + if server { batch / 2 } else { 0 };
    let count = batch.min(traces.saturating_sub((index / 2) * batch));
    let spans = (first..first + count)
        .map(|at| proxy_span((at % traces) as u64, server, base))
        .collect();
    let (service, namespace) = if server {
        ("server", "shop")
    } else {
        ("client", "shop")
    };
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(
            vec![
                text("service.name", service),
                text("service.version", "v1"),
                text("k8s.namespace.name", namespace),
            ],
            spans,
        )],
    }
}

/// Trace `n`'s span from the client proxy (CLIENT, the root) or from the
/// server proxy (SERVER, its child), with the attributes weft's proxies set.
fn proxy_span(n: u64, server: bool, base: u64) -> Span {
    let int = |key: &str, value: i64| kv(key, any_value::Value::IntValue(value));
    // One request every 300 µs, the server's span 100 µs into the client's.
    let start = base + n * 300_000 + if server { 100_000 } else { 0 };
    let duration = if server { 1_000_000 } else { 1_200_000 };
    let span_id = |server: bool| ((n + 1) << 1 | u64::from(server)).to_be_bytes().to_vec();
    let request_id = format!("{:016x}-{n:08x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut attributes = vec![
        text("http.request.method", "GET"),
        text("url.path", &format!("/items/{}", n % 100)),
        text("server.address", "server.shop.svc.cluster.local"),
        text("network.protocol.version", "1.1"),
        text("guid:x-request-id", &request_id),
    ];
    if server {
        attributes.extend([
            text("url.scheme", "http"),
            text("client.address", "127.0.0.1"),
            text("weft.source.workload", "client"),
            text("weft.source.namespace", "shop"),
            text("weft.source.version", "v1"),
            text(
                "weft.source.principal",
                "spiffe://cluster.local/ns/shop/sa/client",
            ),
        ]);
    } else {
        attributes.extend([
            text("weft.route", "server-default"),
            text(
                "weft.upstream_cluster",
                "outbound|80|v1|server.shop.svc.cluster.local",
            ),
            text("weft.subset", "v1"),
            int("weft.retry.attempt", 0),
            text("network.peer.address", "127.0.0.1:8080"),
        ]);
    }
    attributes.extend([
        int("http.response.status_code", 200),
        text("weft.response_flags", "-"),
        int("http.request.size", 96),
        int("http.response.size", 1_100),
    ]);
    Span {
        trace_id: trace_id_of(n).to_vec(),
        span_id: span_id(server),
        parent_span_id: if server { span_id(false) } else { Vec::new() },
        name: "GET /items".to_owned(),
        kind: if server { 2 } else { 3 },
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes,
        ..Default::default()
    }
}

/// Export `index` of the chosen shape.
fn export_request(
    proxy: bool,
    index: usize,
    batch: usize,
    total: usize,
    base: u64,
) -> ExportTraceServiceRequest {
    if proxy {
        proxy_request(index, batch, total, base)
    } else {
        trace_request(index, batch, total, base)
    }
}

/// The gRPC method of OTLP trace export.
const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC codec whose request is an already encoded
/// `ExportTraceServiceRequest` (like the proxy's exporter, which resends
/// encoded batches): the generated client would encode the message again
/// for every export, inside the measured time.
#[derive(Clone, Copy)]
struct Encoded;

impl tonic::codec::Codec for Encoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Encoded {
        Encoded
    }

    fn decoder(&mut self) -> Encoded {
        Encoded
    }
}

impl tonic::codec::Encoder for Encoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Encoded {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

/// CPU seconds (user + system) used so far by this process, and by each of
/// its threads whose name starts with `sqlx-sqlite` (one per SQLite
/// connection: the writer, the background checkpointer, the readers), by
/// thread id.
fn cpu_seconds() -> (f64, std::collections::HashMap<String, f64>) {
    fn ticks(stat: &str) -> Option<f64> {
        // Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
    }
    let hz = 100.0; // USER_HZ on Linux
    let process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| ticks(&stat))
        .unwrap_or(0.0);
    let mut sqlite = std::collections::HashMap::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if stat.contains("(sqlx-sqlite") {
                let seconds = ticks(&stat).unwrap_or(0.0) / hz;
                sqlite.insert(task.file_name().to_string_lossy().into_owned(), seconds);
            }
        }
    }
    (process / hz, sqlite)
}

/// CPU seconds (user + system, with reaped children) used so far by every
/// `postgres` process of this host: the server's share when it runs on the
/// same machine, as in BENCHMARKS.md (other sessions' queries included).
fn postgres_cpu_seconds() -> f64 {
    let mut ticks = 0.0;
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for process in processes.flatten() {
        let path = process.path();
        let is_postgres =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim() == "postgres");
        if !is_postgres {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        // After the command name: utime, stime, cutime, cstime are fields 12-15.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        for field in fields.iter().skip(11).take(4) {
            ticks += field.parse::<f64>().unwrap_or(0.0);
        }
    }
    ticks / 100.0 // USER_HZ on Linux
}

/// The CPU seconds of the busiest SQLite thread between two
/// [`cpu_seconds`] readings (the writer, during the ingest) and of the
/// others together.
fn sqlite_threads(
    before: &std::collections::HashMap<String, f64>,
    after: &std::collections::HashMap<String, f64>,
) -> (f64, f64) {
    let used: Vec<f64> = after
        .iter()
        .map(|(thread, seconds)| seconds - before.get(thread).copied().unwrap_or(0.0))
        .collect();
    let busiest = used.iter().copied().fold(0.0, f64::max);
    (busiest, used.iter().sum::<f64>() - busiest)
}

/// One hour of cumulative request counters for the graph's edges, a point
/// every 5 s.
fn metric_requests(base: u64) -> Vec<ExportMetricsServiceRequest> {
    let edges = [("web", "cart"), ("cart", "stock-api"), ("web", "payments")];
    let mut requests = Vec::new();
    for step in 0..720u64 {
        let time = base + step * 5_000_000_000;
        let mut data_points = Vec::new();
        for (source, destination) in edges {
            for version in ["v1", "v2"] {
                for code in ["200", "503"] {
                    let value = if code == "200" { step * 50 } else { step };
                    data_points.push(NumberDataPoint {
                        attributes: vec![
                            text("reporter", "source"),
                            text("source_workload", source),
                            text("source_app", source),
                            text("source_version", "v1"),
                            text("source_workload_namespace", "default"),
                            text("destination_workload", &format!("{destination}-{version}")),
                            text("destination_app", destination),
                            text("destination_version", version),
                            text("destination_service", destination),
                            text("destination_workload_namespace", "default"),
                            text("response_code", code),
                            text("response_flags", "-"),
                        ],
                        start_time_unix_nano: base,
                        time_unix_nano: time,
                        value: Some(number_data_point::Value::AsInt(
                            i64::try_from(value).unwrap(),
                        )),
                        ..Default::default()
                    });
                }
            }
        }
        requests.push(ExportMetricsServiceRequest {
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
        });
    }
    requests
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn time_queries(
    client: &reqwest::Client,
    name: &str,
    urls: &[String],
) -> (String, Duration, Duration, Duration) {
    let mut samples = Vec::with_capacity(urls.len());
    for url in urls {
        let started = Instant::now();
        let response = client.get(url).send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        samples.push(started.elapsed());
        assert!(
            status.is_success(),
            "{url}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    samples.sort();
    (
        name.to_owned(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
    )
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let pg_base = std::env::var("WEFT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("weft_bench_{}", std::process::id());
    let db = match args.db.as_str() {
        "sqlite" => format!(
            "sqlite://{}?synchronous={}",
            dir.path().join("weft.db").display(),
            args.synchronous
        ),
        "postgres" => {
            let mut admin = sqlx::PgConnection::connect(&pg_base).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut admin)
                .await
                .unwrap();
            let separator = if pg_base.contains('?') { '&' } else { '?' };
            format!("{pg_base}{separator}options[search_path]={schema}")
        }
        other => panic!("--db sqlite|postgres, not {other}"),
    };
    let any = "127.0.0.1:0".parse().unwrap();
    let db_url = db.clone();
    let collector = weft_collector::Config {
        db,
        http: any,
        otlp_grpc: any,
        otlp_http: any,
        ..Default::default()
    }
    .build()
    .await
    .unwrap();
    if !args.drop_indexes.is_empty() {
        let mut connection = sqlx::SqliteConnection::connect(&db_url).await.unwrap();
        for index in &args.drop_indexes {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {index}")))
                .execute(&mut connection)
                .await
                .unwrap();
        }
        println!("dropped indexes: {}", args.drop_indexes.join(", "));
    }
    let grpc = format!("http://{}", collector.otlp_grpc_addr());
    let http = format!("http://{}", collector.http_addr());

    let base = now_nanos() - 3_600_000_000_000;
    let exports = if args.proxy {
        // Two exports (one per proxy) per `batch` traces of 2 spans.
        2 * (args.spans / 2).div_ceil(args.batch)
    } else {
        args.spans.div_ceil(args.batch)
    };
    // Client c sends exports c, c + clients, c + 2 × clients, ...
    let mut chunks: Vec<Vec<Bytes>> = vec![Vec::new(); args.clients];
    if !args.lazy {
        print!(
            "building {} spans in exports of {}... ",
            args.spans, args.batch
        );
        for index in 0..exports {
            chunks[index % args.clients].push(Bytes::from(
                export_request(args.proxy, index, args.batch, args.spans, base).encode_to_vec(),
            ));
        }
        println!("{exports} exports");
    }

    // 1. Ingest.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average before ingest: {}", load.trim());
    }
    let (cpu_before, writer_before) = cpu_seconds();
    let postgres_before = postgres_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client_index, chunk) in chunks.into_iter().enumerate() {
        let grpc = grpc.clone();
        let (lazy, clients, batch, total) = (args.lazy, args.clients, args.batch, args.spans);
        let proxy = args.proxy;
        tasks.push(tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::from_shared(grpc)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = tonic::client::Grpc::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
            let mut retried = 0u64;
            let requests: Box<dyn Iterator<Item = Bytes> + Send> = if lazy {
                Box::new((client_index..exports).step_by(clients).map(move |index| {
                    Bytes::from(export_request(proxy, index, batch, total, base).encode_to_vec())
                }))
            } else {
                Box::new(chunk.into_iter())
            };
            for request in requests {
                loop {
                    client.ready().await.unwrap();
                    let sent = client
                        .unary(
                            tonic::Request::new(request.clone()),
                            http::uri::PathAndQuery::from_static(TRACE_EXPORT_PATH),
                            Encoded,
                        )
                        .await;
                    match sent {
                        Ok(_) => break,
                        Err(status) if status.code() == tonic::Code::Unavailable => {
                            retried += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(status) => panic!("export failed: {status}"),
                    }
                }
            }
            retried
        }));
    }
    let mut retried = 0;
    for task in tasks {
        retried += task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (cpu_after, writer_after) = cpu_seconds();
    let postgres_used = postgres_cpu_seconds() - postgres_before;
    println!(
        "ingest: {} spans in {:.2} s = {:.0} spans/s ({} clients, {} UNAVAILABLE retries{}{})",
        args.spans,
        elapsed.as_secs_f64(),
        args.spans as f64 / elapsed.as_secs_f64(),
        args.clients,
        retried,
        if args.lazy {
            ", exports built while sending"
        } else {
            ""
        },
        if args.db == "sqlite" {
            format!(", synchronous={}", args.synchronous)
        } else {
            String::new()
        }
    );
    let cpu = cpu_after - cpu_before;
    let (writer, other_sqlite) = sqlite_threads(&writer_before, &writer_after);
    println!(
        "ingest CPU: {cpu:.1} s for the process ({:.1} µs/span, {:.0}% of 2 cores), \
         {writer:.1} s in the SQLite writer thread ({:.1} µs/span, {:.0}% of wall time), \
         {other_sqlite:.1} s in the other SQLite threads ({:.1} µs/span)",
        cpu * 1e6 / args.spans as f64,
        cpu * 100.0 / (2.0 * elapsed.as_secs_f64()),
        writer * 1e6 / args.spans as f64,
        writer * 100.0 / elapsed.as_secs_f64(),
        other_sqlite * 1e6 / args.spans as f64,
    );
    if args.db == "postgres" {
        println!(
            "ingest CPU of every postgres process on this host: {postgres_used:.1} s \
             ({:.1} µs/span; other sessions' work included)",
            postgres_used * 1e6 / args.spans as f64,
        );
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average after ingest: {}", load.trim());
    }

    if args.queries == 0 {
        // Ingest only (for profiling the write path).
        collector.shutdown().await;
        drop_schema(&args.db, &pg_base, &schema).await;
        return;
    }

    // 2. Metrics for the graph.
    let mut metrics = MetricsServiceClient::connect(grpc.clone()).await.unwrap();
    let started = Instant::now();
    for request in metric_requests(base) {
        metrics.export(request).await.unwrap();
    }
    println!(
        "metrics: 720 exports in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // 3. Queries.
    let client = reqwest::Client::new();
    let traces = args.spans.div_ceil(SPANS_PER_TRACE) as u64;
    let step = (traces / args.queries as u64).max(1);
    let trace_urls: Vec<String> = (0..args.queries as u64)
        .map(|i| {
            let id = trace_id_of((i * step) % traces);
            format!("{http}/api/traces/{}", hex::encode(id))
        })
        .collect();
    let end_us = now_nanos() / 1000;
    let start_us = base / 1000;
    let window = format!("start={start_us}&end={end_us}");
    let repeat = |url: String| vec![url; args.queries];
    // PostgreSQL: a second pass after VACUUM ANALYZE, since the searches'
    // index-only COUNTs read the heap until autovacuum has set the
    // visibility map of the newly inserted pages.
    let passes: &[&str] = if args.db == "postgres" {
        &["as ingested", "after VACUUM ANALYZE"]
    } else {
        &["as ingested"]
    };
    for (pass, label) in passes.iter().enumerate() {
        if pass > 0 {
            let mut connection = sqlx::PgConnection::connect(&db_url).await.unwrap();
            let started = Instant::now();
            // This schema's span tables only (search_path), not the database.
            sqlx::query(
                "VACUUM ANALYZE spans, trace_summaries, trace_services, trace_operations, \
                 dependency_links",
            )
            .execute(&mut connection)
            .await
            .unwrap();
            println!("VACUUM ANALYZE: {:.1} s", started.elapsed().as_secs_f64());
        }
        println!("queries, {label}:");
        let results = vec![
            time_queries(&client, "trace by id (/api/traces/{id})", &trace_urls).await,
            time_queries(
                &client,
                "search service (limit 20)",
                &repeat(format!("{http}/api/traces?service=cart&limit=20&{window}")),
            )
            .await,
            time_queries(
                &client,
                "search service+operation",
                &repeat(format!(
                    "{http}/api/traces?service=stock-api&operation=GET%20%2Fprice&limit=20&{window}"
                )),
            )
            .await,
            time_queries(
                &client,
                "search operation (no service)",
                &repeat(format!(
                    "{http}/api/traces?operation=GET%20%2Fprice&limit=20&{window}"
                )),
            )
            .await,
            time_queries(
                &client,
                "search service+tag",
                &repeat(format!(
                    "{http}/api/traces?service=payments&tags=%7B%22http.response.status_code%22%3A%22502%22%7D&limit=20&{window}"
                )),
            )
            .await,
            time_queries(
                &client,
                "native search (/api/weft/traces)",
                &repeat(format!("{http}/api/weft/traces?service=web&lookback=3600")),
            )
            .await,
            time_queries(
                &client,
                "native search service+tag, counted",
                &repeat(format!(
                    "{http}/api/weft/traces?service=payments&tag=http.response.status_code%3D502&lookback=3600"
                )),
            )
            .await,
            time_queries(
                &client,
                "native search service+tag, longest",
                &repeat(format!(
                    "{http}/api/weft/traces?service=payments&tag=http.response.status_code%3D502&lookback=3600&order=longest"
                )),
            )
            .await,
            time_queries(
                &client,
                "native search service, longest (no tag)",
                &repeat(format!(
                    "{http}/api/weft/traces?service=payments&lookback=3600&order=longest"
                )),
            )
            .await,
            time_queries(
                &client,
                "service graph (/api/weft/graph, 5 min)",
                &repeat(format!("{http}/api/weft/graph")),
            )
            .await,
            time_queries(
                &client,
                "dependencies (/api/dependencies, 1 h)",
                &repeat(format!(
                    "{http}/api/dependencies?endTs={}&lookback=3600000",
                    end_us / 1000
                )),
            )
            .await,
            // The same ids once more, last: on PostgreSQL the first row of
            // each phase is also the first use of each pooled connection
            // after the ingest's (or the vacuum's) ANALYZE.
            time_queries(&client, "trace by id, same ids again", &trace_urls).await,
        ];
        println!("{:<42} {:>10} {:>10} {:>10}", "query", "p50", "p95", "p99");
        for (name, p50, p95, p99) in results {
            println!(
                "{name:<42} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
                p50.as_secs_f64() * 1000.0,
                p95.as_secs_f64() * 1000.0,
                p99.as_secs_f64() * 1000.0
            );
        }
    }
    collector.shutdown().await;
    drop_schema(&args.db, &pg_base, &schema).await;
}

/// Drops the PostgreSQL schema of the run.
async fn drop_schema(db: &str, pg_base: &str, schema: &str) {
    if db == "postgres" {
        let mut admin = sqlx::PgConnection::connect(pg_base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
