//! Conformance of the metric read queries ([`MetricQueries`]) on both
//! backends: SQLite (a temporary file) and PostgreSQL (a fresh schema on
//! `WEFT_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`),
//! plus catalog speed with many series.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod postgres_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use weft_collector::store::{
    self, Labels, MetricKind, MetricPoint, MetricSeries, PointValue, Store, Temporality, TimeRange,
};

const SECOND: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SECOND;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect::<BTreeMap<_, _>>()
}

fn counter(name: &str, labels: Labels, points: &[(i64, f64)]) -> MetricSeries {
    MetricSeries {
        name: name.to_owned(),
        labels,
        resource: Default::default(),
        kind: MetricKind::Sum,
        temporality: Temporality::Cumulative,
        monotonic: true,
        unit: "1".to_owned(),
        points: points
            .iter()
            .map(|(time, value)| MetricPoint {
                time_unix_nano: *time,
                start_unix_nano: T0,
                value: PointValue::Number(*value),
            })
            .collect(),
    }
}

fn histogram(labels: Labels, points: &[(i64, Vec<u64>)]) -> MetricSeries {
    MetricSeries {
        name: "latency".to_owned(),
        labels,
        resource: Default::default(),
        kind: MetricKind::Histogram,
        temporality: Temporality::Cumulative,
        monotonic: false,
        unit: "ms".to_owned(),
        points: points
            .iter()
            .map(|(time, counts)| MetricPoint {
                time_unix_nano: *time,
                start_unix_nano: T0,
                value: PointValue::Histogram {
                    count: counts.iter().sum(),
                    sum: Some(1.5),
                    bucket_counts: counts.clone(),
                    explicit_bounds: vec![10.0, 100.0],
                },
            })
            .collect(),
    }
}

fn range(start: i64, end: i64) -> Option<TimeRange> {
    Some(TimeRange {
        start_unix_nano: start,
        end_unix_nano: end,
    })
}

async fn conformance(store: &dyn Store) {
    assert!(store.metric_names(None).await.unwrap().is_empty());
    assert!(store.label_names(None).await.unwrap().is_empty());
    let web = labels(&[("app", "web"), ("code", "200"), ("empty", "")]);
    let api = labels(&[("app", "api"), ("code", "503")]);
    store
        .write_metrics(&[
            counter(
                "requests_total",
                web.clone(),
                &[(T0 + 10 * SECOND, 1.0), (T0 + 20 * SECOND, 3.0)],
            ),
            counter("requests_total", api.clone(), &[(T0 + 100 * SECOND, 7.0)]),
            histogram(
                labels(&[("app", "web")]),
                &[
                    (T0 + 10 * SECOND, vec![1, 2, 3]),
                    (T0 + 20 * SECOND, vec![2, 2, 4]),
                ],
            ),
        ])
        .await
        .unwrap();
    // Writing again (new points, same series) adds no catalog rows.
    store
        .write_metrics(&[counter(
            "requests_total",
            web.clone(),
            &[(T0 + 30 * SECOND, 4.0)],
        )])
        .await
        .unwrap();

    let names = store.metric_names(None).await.unwrap();
    let summary: Vec<(&str, MetricKind, bool, &str)> = names
        .iter()
        .map(|m| (m.name.as_str(), m.kind, m.monotonic, m.unit.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("latency", MetricKind::Histogram, false, "ms"),
            ("requests_total", MetricKind::Sum, true, "1"),
        ]
    );
    let early = range(T0, T0 + 50 * SECOND);
    assert_eq!(
        store
            .metric_names(range(T0 + 90 * SECOND, T0 + 200 * SECOND))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.label_names(None).await.unwrap(), vec!["app", "code"]);
    assert_eq!(
        store
            .label_names(range(T0 + 15 * SECOND, T0 + 15 * SECOND))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.label_values("app", None).await.unwrap(),
        vec!["api", "web"]
    );
    assert_eq!(
        store.label_values("code", early).await.unwrap(),
        vec!["200"]
    );
    assert!(store.label_values("empty", None).await.unwrap().is_empty());
    assert!(
        store
            .label_values("nothing", None)
            .await
            .unwrap()
            .is_empty()
    );

    let all = store
        .find_series("requests_total", &[], None)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].labels, web);
    assert_eq!(all[0].kind, MetricKind::Sum);
    assert!(all[0].monotonic);
    let only_api = store
        .find_series(
            "requests_total",
            &[("app".to_owned(), "api".to_owned())],
            None,
        )
        .await
        .unwrap();
    assert_eq!(only_api.len(), 1);
    assert_eq!(only_api[0].labels, api);
    assert!(
        store
            .find_series(
                "requests_total",
                &[("app".to_owned(), "x".to_owned())],
                None
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_series("requests_total", &[], early)
            .await
            .unwrap()
            .len(),
        1
    );

    let ids: Vec<i64> = all.iter().map(|s| s.id).collect();
    let points = store
        .series_points(
            &ids,
            TimeRange {
                start_unix_nano: T0 + 20 * SECOND,
                end_unix_nano: T0 + 100 * SECOND,
            },
        )
        .await
        .unwrap();
    assert_eq!(points.len(), 2);
    let values: Vec<Vec<(i64, PointValue)>> = points
        .iter()
        .map(|s| {
            s.points
                .iter()
                .map(|p| ((p.time_unix_nano - T0) / SECOND, p.value.clone()))
                .collect()
        })
        .collect();
    assert_eq!(
        values,
        vec![
            vec![(20, PointValue::Number(3.0)), (30, PointValue::Number(4.0))],
            vec![(100, PointValue::Number(7.0))],
        ]
    );

    let windows = store
        .points_window("latency", T0 + 10 * SECOND, T0 + 30 * SECOND)
        .await
        .unwrap();
    assert_eq!(windows.len(), 1);
    let window = &windows[0];
    assert_eq!(
        window.baseline.as_ref().unwrap().time_unix_nano,
        T0 + 10 * SECOND
    );
    assert_eq!(window.points.len(), 1);
    assert_eq!(
        window.points[0].value,
        PointValue::Histogram {
            count: 8,
            sum: Some(1.5),
            bucket_counts: vec![2, 2, 4],
            explicit_bounds: vec![10.0, 100.0]
        }
    );
    assert!(
        store
            .points_window("latency", T0 + 20 * SECOND, T0 + 30 * SECOND)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Catalog reads stay fast with many series (the index-driven queries).
async fn many_series(store: &dyn Store) {
    let mut batch = Vec::new();
    for service in 0..200 {
        for code in ["200", "404", "503"] {
            for version in ["v1", "v2", "v3", "v4", "v5"] {
                let labels = labels(&[
                    ("reporter", "destination"),
                    ("destination_app", &format!("svc-{service}")),
                    ("destination_version", version),
                    ("response_code", code),
                    ("source_app", &format!("client-{}", service % 17)),
                ]);
                batch.push(counter(
                    "many_total",
                    labels,
                    &[(T0 + SECOND, 1.0), (T0 + 2 * SECOND, 2.0)],
                ));
            }
        }
    }
    store.write_metrics(&batch).await.unwrap();
    let active = range(T0, T0 + 10 * SECOND);
    let started = Instant::now();
    assert_eq!(
        store
            .label_values("destination_app", None)
            .await
            .unwrap()
            .len(),
        200
    );
    assert_eq!(
        store
            .label_values("destination_app", active)
            .await
            .unwrap()
            .len(),
        200
    );
    assert_eq!(
        store
            .label_values("response_code", active)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(store.label_names(active).await.unwrap().len() >= 5);
    assert!(!store.metric_names(active).await.unwrap().is_empty());
    let found = store
        .find_series(
            "many_total",
            &[("destination_app".to_owned(), "svc-7".to_owned())],
            active,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 15);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "3000 series: catalog reads took {elapsed:?}"
    );
    eprintln!("catalog reads over 3000 series: {elapsed:?}");
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("weft.db").display());
    let store = store::open(&url).await.unwrap();
    conformance(store.as_ref()).await;
    many_series(store.as_ref()).await;
    store.close().await;
}

#[tokio::test]
async fn postgres() {
    postgres_support::with_schema("weft_metrics", |url| async move {
        let store = store::open(&url).await.unwrap();
        conformance(store.as_ref()).await;
        many_series(store.as_ref()).await;
        store.close().await;
    })
    .await;
}
