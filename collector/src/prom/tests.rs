//! Unit tests of the evaluator on in-memory series (the promtool
//! cross-checks in `tests/prom_promtool.rs` cover the rest).

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::sync::Arc;

use promql_parser::parser;

use super::eval::{self, Evaluator, Sample, Value};
use super::series::Series;
use crate::store::Labels;

fn labels(pairs: &[(&str, &str)]) -> Arc<Labels> {
    Arc::new(
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    )
}

/// Evaluates `query` at `t` (ms) with every selector reading `series`
/// (filtered by its matchers).
fn eval_at(query: &str, series: &[Series], t: i64) -> Vec<Sample> {
    let expr = parser::parse(query).unwrap();
    let mut selectors = Vec::new();
    let node = eval::plan(&expr, &mut selectors).unwrap();
    let data: Vec<Vec<Series>> = selectors
        .iter()
        .map(|spec| {
            series
                .iter()
                .filter(|one| {
                    spec.matchers.iter().all(|matcher| {
                        matcher.is_match(one.labels.get(&matcher.name).map_or("", String::as_str))
                    })
                })
                .cloned()
                .collect()
        })
        .collect();
    match Evaluator::new(&data).eval(&node, t).unwrap() {
        Value::Vector(mut samples) => {
            samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            samples
        }
        Value::Scalar(value) => vec![Sample {
            labels: Arc::new(Labels::new()),
            value,
        }],
        other => panic!("unexpected {other:?}"),
    }
}

fn counter(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    Series::new(Labels::clone(&labels(pairs)), samples.to_vec())
}

#[test]
fn windows_are_left_open_like_prometheus_3() {
    let series = [counter(
        &[("__name__", "c")],
        &[(0, 1.0), (60_000, 2.0), (120_000, 3.0)],
    )];
    // The lookback (t − 5m, t]: the sample at exactly t − 5m is out.
    assert!(eval_at("c", &series, 420_000).is_empty());
    assert_eq!(eval_at("c", &series, 419_999)[0].value, 3.0);
    // The range (t − 1m, t]: at t = 120 s only the sample at 120 s is in.
    assert!(eval_at("rate(c[1m])", &series, 120_000).is_empty());
    assert_eq!(
        eval_at("count_over_time(c[1m])", &series, 120_000)[0].value,
        1.0
    );
    assert_eq!(
        eval_at("count_over_time(c[61s])", &series, 120_000)[0].value,
        2.0
    );
}

#[test]
fn group_left_copies_labels_from_the_one_side() {
    let series = [
        counter(
            &[("__name__", "requests"), ("app", "api"), ("version", "v1")],
            &[(0, 90.0)],
        ),
        counter(
            &[("__name__", "requests"), ("app", "api"), ("version", "v2")],
            &[(0, 10.0)],
        ),
        counter(
            &[("__name__", "owner"), ("app", "api"), ("team", "shop")],
            &[(0, 1.0)],
        ),
    ];
    let out = eval_at("requests * on (app) group_left (team) owner", &series, 1000);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].labels,
        labels(&[("app", "api"), ("team", "shop"), ("version", "v1")])
    );
    assert_eq!(out[0].value, 90.0);
    // One-to-one `on` keeps only the matching labels.
    let share = eval_at(
        r#"requests{version="v2"} / on (app) sum by (app) (requests)"#,
        &series,
        1000,
    );
    assert_eq!(share[0].labels, labels(&[("app", "api")]));
    assert_eq!(share[0].value, 0.1);
}

#[test]
fn histogram_quantile_groups_without_le() {
    let bucket = |le: &str, version: &str, value: f64| {
        counter(
            &[("__name__", "h_bucket"), ("le", le), ("version", version)],
            &[(0, value)],
        )
    };
    let series = [
        bucket("10", "v1", 50.0),
        bucket("100", "v1", 90.0),
        bucket("+Inf", "v1", 100.0),
        bucket("10", "v2", 0.0),
        bucket("+Inf", "v2", 0.0),
    ];
    let out = eval_at("histogram_quantile(0.5, h_bucket)", &series, 1000);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].labels, labels(&[("version", "v1")]));
    assert_eq!(out[0].value, 10.0);
    assert!(out[1].value.is_nan());
}

#[test]
fn unsupported_expressions_are_refused_at_planning() {
    for query in [
        "predict_linear(c[5m], 60)",
        "c @ 100",
        "rate(c[5m:1m])",
        "count_values(\"v\", c)",
        "label_replace(c, \"a\", \"$1\", \"b\", \"(.*)\")",
    ] {
        let expr = parser::parse(query).unwrap();
        let error = eval::plan(&expr, &mut Vec::new()).unwrap_err();
        assert!(
            error.to_string().starts_with("unsupported PromQL"),
            "{query}: {error}"
        );
    }
}
