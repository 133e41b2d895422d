//! Test harness: the demo mesh in-process on ephemeral ports, HTTP helpers,
//! and a Prometheus text parser.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use weft::demo::{Demo, Workload};

/// How long eventual conditions may take; `WEFT_TEST_PATIENCE_MS` overrides.
pub fn patience() -> Duration {
    std::env::var("WEFT_TEST_PATIENCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(30))
}

/// Polls `check` until it returns `Some`, or fails the test after the
/// patience with the last observation.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + patience();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last observation: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub struct Mesh {
    pub demo: Demo,
    _data: tempfile::TempDir,
}

impl Mesh {
    /// The demo mesh with every port ephemeral, 100% sampling, fast metric
    /// pushes, and the load generator at `load_rate` (0 = off).
    pub async fn start(load_rate: f64) -> Mesh {
        Self::start_sampled(load_rate, 1.0).await
    }

    /// The demo mesh with new traces sampled at `sampling_rate`.
    pub async fn start_sampled(load_rate: f64, sampling_rate: f64) -> Mesh {
        let data = tempfile::tempdir().expect("temp dir");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let demo = weft::demo::Config {
            http: any,
            otlp_grpc: any,
            otlp_http: any,
            data_dir: data.path().to_path_buf(),
            load_rate,
            sampling_rate,
            metrics_interval: Duration::from_millis(500),
            telemetry: weft_proxy::TelemetryOptions::default(),
        }
        .build()
        .await
        .expect("demo mesh starts");
        Mesh { demo, _data: data }
    }

    pub fn workload(&self, name: &str) -> &Workload {
        self.demo.workload(name).expect("demo workload")
    }

    pub fn collector_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.demo.collector.http_addr())
    }

    /// Scrapes `/metrics` of a workload's sidecar.
    pub async fn scrape(&self, workload: &str) -> Vec<Sample> {
        let url = format!(
            "http://{}/metrics",
            self.workload(workload).proxy.admin_addr()
        );
        let text = client()
            .get(url)
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text");
        parse_prometheus(&text)
    }

    pub async fn shutdown(self) {
        self.demo.shutdown().await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// One Prometheus sample: `name{labels} value`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Parses the Prometheus text format (enough of it for our own output:
/// comments, labels with escaped values, float values).
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut end = body.len();
            let mut key = String::new();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'));
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => {}
                                },
                                '"' => break,
                                other => value.push(other),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    other => key.push(other),
                }
            }
            &body[end..]
        } else {
            rest
        };
        let value = rest.split_whitespace().next().unwrap_or("NaN");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// Sum of `name` over samples whose labels match all `matchers`.
pub fn sum(samples: &[Sample], name: &str, matchers: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && matchers.iter().all(|(k, v)| s.label(k) == *v))
        .map(|s| s.value)
        .sum()
}

/// The Python interpreter of the test venv (`scripts/test` makes it).
pub fn python() -> String {
    let python = std::env::var("WEFT_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/weft-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "no Python test venv at {python}: run scripts/test, which creates it"
    );
    python
}

/// A script under `tests/python/`.
pub fn python_script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// A Python upstream application (`tests/python/upstream.py`): extracts
/// trace context with the OpenTelemetry SDK's propagators and reports it.
pub struct PythonUpstream {
    pub addr: SocketAddr,
    _child: tokio::process::Child,
}

impl PythonUpstream {
    pub async fn start() -> PythonUpstream {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(python())
            .arg(python_script("upstream.py"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Python upstream");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let port = tokio::time::timeout(patience(), lines.next_line())
            .await
            .expect("the Python upstream reports its port")
            .expect("read")
            .and_then(|line| {
                line.strip_prefix("PORT ")
                    .and_then(|p| p.parse::<u16>().ok())
            })
            .expect("a PORT line");
        PythonUpstream {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _child: child,
        }
    }
}

/// Starts an in-process collector on ephemeral ports with a temporary
/// SQLite store.
pub async fn collector(dir: &std::path::Path) -> weft_collector::Collector {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    weft_collector::Config {
        db: format!("sqlite://{}", dir.join("weft.db").display()),
        http: any,
        otlp_grpc: any,
        otlp_http: any,
        ..Default::default()
    }
    .build()
    .await
    .expect("collector starts")
}

/// Two sidecars and a collector: a client calls hop A's outbound listener
/// with `Host: upstream`; A routes to hop B's inbound listener, which
/// forwards to the application at `upstream` (any HTTP server).
pub struct TwoHops {
    pub collector: weft_collector::Collector,
    /// Addresses the collector bound, to restart it in place.
    pub collector_addrs: (SocketAddr, SocketAddr, SocketAddr),
    pub a: weft_proxy::Proxy,
    pub b: weft_proxy::Proxy,
    pub dir: tempfile::TempDir,
}

fn two_hops_yaml(b_inbound: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: upstream
  namespace: default
spec:
  hosts: [upstream.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: upstream
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: upstream
  namespace: default
spec:
  address: 127.0.0.1
  ports:
    http: {b_inbound}
  labels:
    app: upstream
    version: v1
"
    )
}

impl TwoHops {
    pub async fn start(
        upstream: SocketAddr,
        sampling_rate: f64,
        telemetry: weft_proxy::TelemetryOptions,
    ) -> TwoHops {
        let dir = tempfile::tempdir().expect("temp dir");
        let collector = collector(dir.path()).await;
        let collector_addrs = (
            collector.http_addr(),
            collector.otlp_grpc_addr(),
            collector.otlp_http_addr(),
        );
        let b_inbound = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mesh = dir.path().join("mesh");
        std::fs::create_dir_all(&mesh).expect("mesh dir");
        std::fs::write(
            mesh.join("mesh.yaml"),
            two_hops_yaml(b_inbound.local_addr().expect("addr").port()),
        )
        .expect("write mesh");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let endpoint = match telemetry.protocol {
            weft_proxy::telemetry::export::OtlpProtocol::Grpc => collector.otlp_grpc_addr(),
            weft_proxy::telemetry::export::OtlpProtocol::HttpProtobuf => collector.otlp_http_addr(),
        };
        let proxy =
            |workload: &str, app: SocketAddr, inbound: weft_proxy::Listen| weft_proxy::Config {
                workload: workload.into(),
                namespace: "default".into(),
                service_account: workload.into(),
                labels: BTreeMap::from([
                    ("app".to_string(), workload.to_string()),
                    ("version".to_string(), "v1".to_string()),
                ]),
                config_paths: vec![mesh.clone()],
                app,
                inbound,
                outbound: any.into(),
                admin: any.into(),
                collector: Some(format!("http://{endpoint}")),
                sampling_rate,
                metrics_interval: Duration::from_millis(500),
                telemetry,
                tls: None,
            };
        let b = proxy("upstream", upstream, weft_proxy::Listen::Bound(b_inbound))
            .build()
            .await
            .expect("proxy B");
        let a = proxy("client", any, any.into())
            .build()
            .await
            .expect("proxy A");
        TwoHops {
            collector,
            collector_addrs,
            a,
            b,
            dir,
        }
    }

    /// `GET path` through hop A with extra headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = client()
            .get(format!("http://{}{path}", self.a.outbound_addr()))
            .header("host", "upstream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request through weft")
    }

    /// The spans of a trace from the native API, once there are `count`.
    pub async fn spans(&self, trace_id: &str, count: usize) -> Vec<serde_json::Value> {
        let url = format!(
            "http://{}/api/weft/traces/{trace_id}",
            self.collector.http_addr()
        );
        eventually(&format!("{count} spans of {trace_id}"), || async {
            let response = client().get(&url).send().await.map_err(|e| e.to_string())?;
            if response.status() != 200 {
                return Err(response.status().to_string());
            }
            let trace: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
            let spans = trace["spans"].as_array().cloned().unwrap_or_default();
            if spans.len() == count {
                Ok(spans)
            } else {
                Err(format!("{} spans", spans.len()))
            }
        })
        .await
    }

    /// Stops the collector and starts a new one on the same addresses and
    /// store after `downtime` resolves.
    pub async fn restart_collector<F: std::future::Future<Output = ()>>(&mut self, downtime: F) {
        let (http, otlp_grpc, otlp_http) = self.collector_addrs;
        let placeholder = collector(self.dir.path().join("placeholder").as_path()).await;
        let old = std::mem::replace(&mut self.collector, placeholder);
        old.shutdown().await;
        downtime.await;
        let restarted = weft_collector::Config {
            db: format!("sqlite://{}", self.dir.path().join("weft.db").display()),
            http,
            otlp_grpc,
            otlp_http,
            ..Default::default()
        }
        .build()
        .await
        .expect("collector restarts on its old addresses");
        let placeholder = std::mem::replace(&mut self.collector, restarted);
        placeholder.shutdown().await;
    }

    pub async fn shutdown(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
        self.collector.shutdown().await;
    }
}
/// An instant PromQL query against the collector's Prometheus API; returns
/// the vector as (labels, value) pairs.
pub async fn promql(
    mesh: &Mesh,
    query: &str,
) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
    let response = client()
        .get(mesh.collector_url("/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(result
        .iter()
        .map(|sample| {
            let labels = sample["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let value = sample["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect())
}
