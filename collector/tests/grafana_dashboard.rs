//! Every PromQL expression of `deploy/grafana/dashboards/*.json` (panel
//! targets and template variables) runs against a collector holding data,
//! the way Grafana sends it (variables substituted, POST form,
//! `query_range` for time series panels, `query` for instant ones), and
//! must succeed with data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod metrics_support;

use common::TestCollector;
use metrics_support::{Dataset, export, gauges, histograms, labels, post_form};
use prost::Message;
use serde_json::Value;

fn dashboards() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/dashboards");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("deploy/grafana/dashboards") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((
                path.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            ));
        }
    }
    assert!(!found.is_empty(), "no dashboard in {dir}");
    found
}

/// `(panel title, expr, instant)` of every target, rows included.
fn targets(panels: &Value, out: &mut Vec<(String, String, bool)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let instant = target["instant"].as_bool().unwrap_or(false)
                    && !target["range"].as_bool().unwrap_or(false);
                out.push((title.clone(), expr.to_owned(), instant));
            }
        }
        targets(&panel["panels"], out);
    }
}

/// Grafana's substitution of the variables the dashboards use.
fn substitute(expr: &str) -> String {
    expr.replace("${service}", ".*")
        .replace("$service", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
}

#[tokio::test]
async fn every_dashboard_query_succeeds_with_data() {
    let collector = TestCollector::start().await;
    let dataset = Dataset::new();
    let mut request = dataset.export();
    let weights = ["v1", "v2"]
        .into_iter()
        .zip([90.0, 10.0])
        .map(|(version, weight)| {
            (
                labels(&[
                    ("virtual_service", "default/stock-api"),
                    ("route", ""),
                    ("destination_service", "stock-api.default.svc.cluster.local"),
                    ("subset", version),
                    ("destination_version", version),
                ]),
                1190,
                weight,
            )
        });
    let extra = export(
        "web",
        vec![
            gauges("weft_route_weight", &weights.collect::<Vec<_>>()),
            histograms("istio_response_bytes", &dataset.durations),
        ],
    );
    request.resource_metrics.extend(extra.resource_metrics);
    let (status, _, body) = collector
        .post_otlp(
            "/v1/metrics",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let mut checked = 0;
    for (file, dashboard) in dashboards() {
        let mut all = Vec::new();
        targets(&dashboard["panels"], &mut all);
        assert!(!all.is_empty(), "{file}: no PromQL target");
        for (title, expr, instant) in all {
            let query = substitute(&expr);
            let (status, body) = if instant {
                post_form(
                    &collector.client,
                    &collector.api("/api/v1/query"),
                    &[("query", &query), ("time", "1195")],
                )
                .await
            } else {
                post_form(
                    &collector.client,
                    &collector.api("/api/v1/query_range"),
                    &[
                        ("query", &query),
                        ("start", "900"),
                        ("end", "1200"),
                        ("step", "15"),
                    ],
                )
                .await
            };
            assert_eq!(status, 200, "{file} / {title}: {query}: {body}");
            assert_eq!(body["status"], "success", "{file} / {title}: {query}");
            let result = body["data"]["result"].as_array().unwrap();
            assert!(!result.is_empty(), "{file} / {title}: no data for {query}");
            checked += 1;
        }
        // Template variables: `label_values(SELECTOR, LABEL)` is a label
        // values call with `match[]`.
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let definition = variable["query"]["query"]
                .as_str()
                .or(variable["query"].as_str())
                .unwrap_or_default();
            let Some(inner) = definition
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
            else {
                continue;
            };
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let (status, body) = post_form(
                &collector.client,
                &collector.api(&format!("/api/v1/label/{}/values", label.trim())),
                &[
                    ("match[]", selector.trim()),
                    ("start", "0"),
                    ("end", "1200"),
                ],
            )
            .await;
            assert_eq!(status, 200, "{file}: variable {definition}: {body}");
            assert!(
                !body["data"].as_array().unwrap().is_empty(),
                "{file}: variable {definition} has no values"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} expressions checked");
    collector.stop().await;
}
