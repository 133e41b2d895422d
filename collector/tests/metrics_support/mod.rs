//! Shared by the Prometheus API, promtool and native RED tests: OTLP metric
//! builders, a synthetic Istio data set (the same data pushed to the
//! collector and written as promtool input series) and a promtool runner.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Envoy's default buckets (Istio's histograms).
pub const ENVOY_BOUNDS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

pub type Labels = BTreeMap<String, String>;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn attributes(labels: &Labels) -> Vec<KeyValue> {
    labels.iter().map(|(key, value)| kv(key, value)).collect()
}

/// A counter series: `(seconds, value)` samples.
#[derive(Clone, Debug)]
pub struct CounterSeries {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// A histogram series: per sample time, the cumulative per-bucket counts
/// (OTLP style: one count per bucket, `bounds.len() + 1` of them) and sum.
#[derive(Clone, Debug)]
pub struct HistogramSeries {
    pub labels: Labels,
    pub bounds: Vec<f64>,
    pub samples: Vec<(i64, Vec<u64>, f64)>,
}

/// One export with monotonic cumulative sums named `name`.
pub fn counters(name: &str, series: &[CounterSeries]) -> Metric {
    let data_points = series
        .iter()
        .flat_map(|one| {
            one.samples.iter().map(|(seconds, value)| NumberDataPoint {
                attributes: attributes(&one.labels),
                start_time_unix_nano: 1,
                time_unix_nano: (*seconds as u64) * 1_000_000_000,
                value: Some(number_data_point::Value::AsDouble(*value)),
                ..Default::default()
            })
        })
        .collect();
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

/// Gauges: `(labels, seconds, value)`.
pub fn gauges(name: &str, points: &[(Labels, i64, f64)]) -> Metric {
    let data_points = points
        .iter()
        .map(|(labels, seconds, value)| NumberDataPoint {
            attributes: attributes(labels),
            time_unix_nano: (*seconds as u64) * 1_000_000_000,
            value: Some(number_data_point::Value::AsDouble(*value)),
            ..Default::default()
        })
        .collect();
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Gauge(Gauge { data_points })),
        ..Default::default()
    }
}

pub fn histograms(name: &str, series: &[HistogramSeries]) -> Metric {
    let data_points = series
        .iter()
        .flat_map(|one| {
            one.samples
                .iter()
                .map(|(seconds, buckets, sum)| HistogramDataPoint {
                    attributes: attributes(&one.labels),
                    start_time_unix_nano: 1,
                    time_unix_nano: (*seconds as u64) * 1_000_000_000,
                    count: buckets.iter().sum(),
                    sum: Some(*sum),
                    bucket_counts: buckets.clone(),
                    explicit_bounds: one.bounds.clone(),
                    ..Default::default()
                })
        })
        .collect();
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}

pub fn export(service: &str, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The synthetic data set: samples every 15 s from 15 s to 20 min after the
/// epoch (promtool's time base), Istio-style labels.
pub struct Dataset {
    pub requests: Vec<CounterSeries>,
    pub durations: Vec<HistogramSeries>,
}

pub const INTERVAL_S: i64 = 15;
pub const STEPS: i64 = 80;

fn istio(reporter: &str, app: &str, version: &str, code: &str) -> Labels {
    labels(&[
        ("reporter", reporter),
        ("source_app", "web"),
        ("source_workload", "web-v1"),
        ("destination_app", app),
        ("destination_version", version),
        ("destination_workload", &format!("{app}-{version}")),
        (
            "destination_service",
            &format!("{app}.default.svc.cluster.local"),
        ),
        ("response_code", code),
        (
            "connection_security_policy",
            if reporter == "destination" {
                "mutual_tls"
            } else {
                "unknown"
            },
        ),
    ])
}

impl Dataset {
    pub fn new() -> Self {
        let times = || (1..=STEPS).map(|i| (i, i * INTERVAL_S));
        let mut requests = Vec::new();
        // stock-api v1 200s: +10 per sample.
        requests.push(CounterSeries {
            labels: istio("destination", "stock-api", "v1", "200"),
            samples: times().map(|(i, t)| (t, 3.0 + 10.0 * i as f64)).collect(),
        });
        // The same traffic as the source saw it.
        requests.push(CounterSeries {
            labels: istio("source", "stock-api", "v1", "200"),
            samples: times().map(|(i, t)| (t, 5.0 + 10.0 * i as f64)).collect(),
        });
        // stock-api v2 200s: +1 per sample.
        requests.push(CounterSeries {
            labels: istio("destination", "stock-api", "v2", "200"),
            samples: times().map(|(i, t)| (t, i as f64)).collect(),
        });
        // stock-api v2 503s: +0.5 per sample, reset after sample 40.
        requests.push(CounterSeries {
            labels: istio("destination", "stock-api", "v2", "503"),
            samples: times()
                .map(|(i, t)| {
                    let value = if i <= 40 {
                        0.5 * i as f64
                    } else {
                        0.5 * (i - 40) as f64 - 0.25
                    };
                    (t, value.max(0.0))
                })
                .collect(),
        });
        // web 200s: irregular increments and a gap (samples 50..=60 missing).
        let mut total = 0.0;
        let mut web = Vec::new();
        for (i, t) in times() {
            total += ((i * i) % 7) as f64;
            if !(50..=60).contains(&i) {
                web.push((t, total));
            }
        }
        requests.push(CounterSeries {
            labels: istio("destination", "web", "v1", "200"),
            samples: web,
        });

        let bounds = ENVOY_BOUNDS.to_vec();
        let histogram = |version: &str, per_step: &dyn Fn(i64) -> Vec<(usize, u64, f64)>| {
            let mut buckets = vec![0u64; bounds.len() + 1];
            let mut sum = 0.0;
            let mut samples = Vec::new();
            for (i, t) in times() {
                for (bucket, count, value) in per_step(i) {
                    buckets[bucket] += count;
                    sum += value * count as f64;
                }
                samples.push((t, buckets.clone(), sum));
            }
            HistogramSeries {
                labels: istio("destination", "stock-api", version, "200"),
                bounds: bounds.clone(),
                samples,
            }
        };
        // v1: mostly 5–25 ms, a slow tail. v2: 50–250 ms.
        let v1 = histogram("v1", &|i| {
            vec![
                (3, 6, 7.0),
                (4, 3, 18.0),
                (6, (i % 3) as u64, 80.0),
                (7, u64::from(i % 10 == 0), 200.0),
            ]
        });
        let v2 = histogram("v2", &|i| vec![(6, 1, 70.0), (7, (i % 2) as u64, 180.0)]);
        Self {
            requests,
            durations: vec![v1, v2],
        }
    }

    /// The OTLP export of the whole data set.
    pub fn export(&self) -> ExportMetricsServiceRequest {
        export(
            "web",
            vec![
                counters("istio_requests_total", &self.requests),
                histograms("istio_request_duration_milliseconds", &self.durations),
            ],
        )
    }

    /// promtool `input_series` (YAML list items, indented 6).
    pub fn promtool_series(&self) -> String {
        let mut out = String::new();
        let values = |samples: &[(i64, f64)]| {
            let by_step: BTreeMap<i64, f64> = samples
                .iter()
                .map(|(t, value)| (t / INTERVAL_S, *value))
                .collect();
            (0..=STEPS)
                .map(|step| match by_step.get(&step) {
                    Some(value) => format!("{value}"),
                    None => "_".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut series = |name: &str, labels: &Labels, samples: &[(i64, f64)]| {
            let labels = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{value}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "      - series: '{name}{{{labels}}}'\n        values: '{}'",
                values(samples)
            );
        };
        for one in &self.requests {
            series("istio_requests_total", &one.labels, &one.samples);
        }
        for one in &self.durations {
            let name = "istio_request_duration_milliseconds";
            let mut cumulative: Vec<Vec<(i64, f64)>> = vec![Vec::new(); one.bounds.len() + 1];
            let mut sums = Vec::new();
            let mut counts = Vec::new();
            for (t, buckets, sum) in &one.samples {
                let mut running = 0;
                for (index, count) in buckets.iter().enumerate() {
                    running += count;
                    cumulative[index].push((*t, running as f64));
                }
                sums.push((*t, *sum));
                counts.push((*t, running as f64));
            }
            for (index, samples) in cumulative.iter().enumerate() {
                let le = one
                    .bounds
                    .get(index)
                    .map_or("+Inf".to_owned(), |bound| format!("{bound}"));
                let mut labels = one.labels.clone();
                labels.insert("le".to_owned(), le);
                series(&format!("{name}_bucket"), &labels, samples);
            }
            series(&format!("{name}_sum"), &one.labels, &sums);
            series(&format!("{name}_count"), &one.labels, &counts);
        }
        out
    }
}

/// One result sample: labels (without `__name__` when absent) and value.
pub type Sample = (Labels, f64);

/// Evaluates `expr` at `eval_seconds` with promtool over `input_series`;
/// `None` when promtool is not installed. (promtool loads input samples
/// only up to the last `evaluation_interval` tick before the evaluation
/// time, hence the 1 s interval.)
pub fn promtool_eval(
    dir: &Path,
    input_series: &str,
    expr: &str,
    eval_seconds: i64,
) -> Option<Vec<Sample>> {
    let file = dir.join("case.yml");
    let yaml = format!(
        "evaluation_interval: 1s\ntests:\n  - interval: {INTERVAL_S}s\n    input_series:\n{input_series}    promql_expr_test:\n      - expr: '{}'\n        eval_time: {eval_seconds}s\n        exp_samples: []\n",
        expr.replace('\'', "''")
    );
    std::fs::write(&file, yaml).unwrap();
    let output = match std::process::Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("promtool: {error}"),
    };
    if output.status.success() {
        return Some(Vec::new());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let got = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("got:"))
        .unwrap_or_else(|| panic!("promtool failed on {expr}: {text}"));
    Some(parse_promtool_samples(got.trim()))
}

/// Parses promtool's `{a="b", c="d"} 1.5E+00, {...} 2E+00` listing.
pub fn parse_promtool_samples(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut rest = text.trim();
    if rest == "nil" || rest.is_empty() {
        return samples;
    }
    while !rest.is_empty() {
        // An optional metric name before the braces.
        let brace = rest.find('{').expect("a label set");
        let name = rest[..brace].trim().trim_start_matches(',').trim();
        rest = &rest[brace + 1..];
        let mut labels = Labels::new();
        if !name.is_empty() {
            labels.insert("__name__".to_owned(), name.to_owned());
        }
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').expect("name=value");
            let key = rest[..eq].trim().to_owned();
            rest = &rest[eq + 1..];
            assert!(rest.starts_with('"'), "quoted value in {text}");
            let mut value = String::new();
            let mut chars = rest[1..].char_indices();
            let mut end = 0;
            while let Some((index, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = index + 2;
                        break;
                    }
                    other => value.push(other),
                }
            }
            rest = &rest[end..];
            labels.insert(key, value);
        }
        rest = rest.trim_start();
        let end = rest.find(", ").unwrap_or(rest.len());
        let value = parse_go_float(&rest[..end]);
        samples.push((labels, value));
        rest = rest[end..].trim_start_matches([',', ' ']);
    }
    samples
}

pub fn parse_go_float(text: &str) -> f64 {
    match text.trim() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("not a float: {other:?}")),
    }
}

/// The samples of a Prometheus API `query` answer (vector or scalar).
pub fn api_samples(data: &serde_json::Value) -> Vec<Sample> {
    let value_of = |pair: &serde_json::Value| parse_go_float(pair[1].as_str().unwrap());
    match data["resultType"].as_str().unwrap() {
        "scalar" => vec![(Labels::new(), value_of(&data["result"]))],
        "vector" => data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let labels = sample["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
                    .collect();
                (labels, value_of(&sample["value"]))
            })
            .collect(),
        other => panic!("unexpected result type {other}"),
    }
}

/// Equal as multisets of samples, values within a relative 1e-9.
pub fn same_samples(mut a: Vec<Sample>, mut b: Vec<Sample>) -> bool {
    let order = |x: &Sample, y: &Sample| x.0.cmp(&y.0).then(x.1.total_cmp(&y.1));
    a.sort_by(order);
    b.sort_by(order);
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.0 == y.0
                && ((x.1.is_nan() && y.1.is_nan())
                    || x.1 == y.1
                    || (x.1 - y.1).abs() <= 1e-9 * x.1.abs().max(y.1.abs()))
        })
}

/// An `application/x-www-form-urlencoded` body.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let escape = |text: &str| {
        let mut out = String::new();
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(byte as char)
                }
                b' ' => out.push('+'),
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POSTs a form to the query listener; returns status and JSON body.
pub async fn post_form(
    client: &reqwest::Client,
    url: &str,
    pairs: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(pairs))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// GETs a URL with a query string built from `pairs`.
pub async fn get_query(
    client: &reqwest::Client,
    url: &str,
    pairs: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let response = client
        .get(format!("{url}?{}", form_body(pairs)))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}
