//! Cross-checks of the Prometheus API against Prometheus itself: the same
//! synthetic Istio data is pushed to the collector over OTLP and given to
//! `promtool test rules` as input series, and every expression below must
//! give the same samples at the same evaluation time (values within a
//! relative 1e-9).
//!
//! promtool (2.x) closes range and lookback windows on the left, weft (like
//! Prometheus 3) leaves them open; the evaluation times avoid sample times
//! on a window's left edge, where the two differ. Skipped (with a message)
//! when `promtool` is not installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod metrics_support;

use common::TestCollector;
use metrics_support::{Dataset, api_samples, post_form, promtool_eval, same_samples};
use prost::Message;

const EXPRESSIONS: &[&str] = &[
    "1+1",
    "2 * 3 - 10 / 4",
    "istio_requests_total",
    r#"istio_requests_total{destination_app=~"stock.*", response_code!="200"}"#,
    r#"istio_requests_total{reporter!~"sou.+"}"#,
    "rate(istio_requests_total[5m])",
    "rate(istio_requests_total[1m])",
    "increase(istio_requests_total[2m])",
    "irate(istio_requests_total[2m])",
    "delta(istio_requests_total[3m])",
    r#"sum by (destination_app) (rate(istio_requests_total{reporter="destination"}[5m]))"#,
    "sum without (response_code, connection_security_policy) (rate(istio_requests_total[5m]))",
    r#"sum(rate(istio_requests_total{reporter="destination", response_code=~"5.."}[5m])) by (destination_app) / sum(rate(istio_requests_total{reporter="destination"}[5m])) by (destination_app)"#,
    r#"sum by (destination_version) (rate(istio_requests_total{reporter="destination", destination_app="stock-api"}[5m])) / ignoring (destination_version) group_left sum(rate(istio_requests_total{reporter="destination", destination_app="stock-api"}[5m]))"#,
    "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (le, destination_version) (rate(istio_request_duration_milliseconds_bucket[5m])))",
    "histogram_quantile(0.95, rate(istio_request_duration_milliseconds_bucket[1m]))",
    "rate(istio_request_duration_milliseconds_sum[5m]) / rate(istio_request_duration_milliseconds_count[5m])",
    "istio_request_duration_milliseconds_count",
    r#"istio_request_duration_milliseconds_bucket{le="25"}"#,
    "istio_requests_total offset 5m",
    "rate(istio_requests_total[5m] offset 2m)",
    "istio_requests_total > 100",
    "istio_requests_total > bool 100",
    "200 < istio_requests_total",
    "-istio_requests_total",
    "max by (destination_app) (istio_requests_total)",
    "min(istio_requests_total)",
    "avg by (reporter) (istio_requests_total)",
    "count by (destination_app) (istio_requests_total)",
    "topk(2, istio_requests_total)",
    "bottomk(1, rate(istio_requests_total[5m]))",
    r#"sum(rate(istio_requests_total{response_code="404"}[5m])) or vector(0)"#,
    r#"istio_requests_total and on (destination_version) istio_requests_total{destination_version="v2"}"#,
    r#"istio_requests_total unless istio_requests_total{response_code="200"}"#,
    "rate(istio_requests_total[5m]) * 60",
    r#"rate(istio_requests_total{reporter="destination"}[5m]) / on (destination_app, destination_version, response_code) rate(istio_requests_total{reporter="destination"}[5m])"#,
    "sum_over_time(istio_requests_total[1m])",
    "max_over_time(istio_requests_total[2m]) - min_over_time(istio_requests_total[2m])",
    "clamp_max(rate(istio_requests_total[5m]), 0.5)",
    "round(rate(istio_requests_total[5m]), 0.1)",
    "scalar(sum(istio_requests_total)) * 2",
    "quantile(0.5, rate(istio_requests_total[5m]))",
    "stddev(istio_requests_total)",
];

/// Off the 15 s sample grid (and off it by 5m, 1m, 2m, 3m).
const EVAL_SECONDS: &[i64] = &[607, 901, 1111, 1203, 1499, 1620, 1790];

#[tokio::test(flavor = "multi_thread")]
async fn promql_agrees_with_promtool() {
    let dataset = Dataset::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dataset.promtool_series();
    if promtool_eval(dir.path(), &input, "1", 60).is_none() {
        eprintln!("promtool is not installed: skipping the cross-check");
        return;
    }
    let collector = TestCollector::start().await;
    let (status, _, body) = collector
        .post_otlp(
            "/v1/metrics",
            "application/x-protobuf",
            false,
            dataset.export().encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let mut failures = Vec::new();
    let mut compared = 0;
    for expr in EXPRESSIONS {
        for &t in EVAL_SECONDS {
            let expected = promtool_eval(dir.path(), &input, expr, t).unwrap();
            let (status, body) = post_form(
                &collector.client,
                &collector.api("/api/v1/query"),
                &[("query", expr), ("time", &t.to_string())],
            )
            .await;
            if status != 200 {
                failures.push(format!("{expr} @ {t}: HTTP {status} {body}"));
                continue;
            }
            let got = api_samples(&body["data"]);
            compared += 1;
            if !same_samples(got.clone(), expected.clone()) {
                failures.push(format!(
                    "{expr} @ {t}:\n  weft:     {got:?}\n  promtool: {expected:?}"
                ));
            }
        }
    }
    collector.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {compared} evaluations differ from promtool:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
