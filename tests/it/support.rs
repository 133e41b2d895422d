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
        let data = tempfile::tempdir().expect("temp dir");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let demo = weft::demo::Config {
            http: any,
            otlp_grpc: any,
            otlp_http: any,
            data_dir: data.path().to_path_buf(),
            load_rate,
            sampling_rate: 1.0,
            metrics_interval: Duration::from_millis(500),
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
