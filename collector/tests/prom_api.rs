//! The Prometheus HTTP API, call by call as Grafana's Prometheus datasource
//! makes them: exact envelopes, GET and POST, health check, catalog
//! endpoints, range queries, and clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::float_cmp)]

mod common;
mod metrics_support;

use common::TestCollector;
use metrics_support::{Dataset, get_query, post_form};
use prost::Message;
use serde_json::{Value, json};

async fn with_data() -> TestCollector {
    let collector = TestCollector::start().await;
    let (status, _, body) = collector
        .post_otlp(
            "/v1/metrics",
            "application/x-protobuf",
            false,
            Dataset::new().export().encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    collector
}

/// GET and POST give the same answer; returns it.
async fn both(collector: &TestCollector, path: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let url = collector.api(path);
    let (status, body) = post_form(&collector.client, &url, pairs).await;
    let (get_status, get_body) = get_query(&collector.client, &url, pairs).await;
    assert_eq!(
        (status, &body),
        (get_status, &get_body),
        "GET vs POST {path}"
    );
    (status, body)
}

#[tokio::test]
async fn grafana_health_check_and_buildinfo() {
    let collector = TestCollector::start().await;
    // Exactly what Grafana sends: POST form `query=1%2B1&time=4`.
    let response = collector
        .client
        .post(collector.api("/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=1%2B1&time=4")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"status":"success","data":{"resultType":"scalar","result":[4,"2"]}}"#
    );
    let (status, body) = both(
        &collector,
        "/api/v1/query",
        &[("query", "1+1"), ("time", "4")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}})
    );

    let (status, body) = both(&collector, "/api/v1/status/buildinfo", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    for key in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(body["data"][key].is_string(), "{key}: {body}");
    }
    assert_eq!(body["data"]["features"], json!({}));
    collector.stop().await;
}

#[tokio::test]
async fn instant_and_range_queries() {
    let collector = with_data().await;
    // An instant vector: labels, [seconds, "value"].
    let (status, body) = both(
        &collector,
        "/api/v1/query",
        &[
            ("query", r#"istio_requests_total{reporter="destination", destination_version="v2", response_code="200"}"#),
            ("time", "1200.5"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["metric"]["__name__"], "istio_requests_total");
    assert_eq!(result[0]["value"], json!([1200.5, "80"]));

    // RFC 3339 time, a string, and a range selector in an instant query.
    let (_, body) = both(
        &collector,
        "/api/v1/query",
        &[("query", "\"hi\""), ("time", "1970-01-01T00:20:00Z")],
    )
    .await;
    assert_eq!(
        body["data"],
        json!({"resultType": "string", "result": [1200, "hi"]})
    );
    let (_, body) = both(
        &collector,
        "/api/v1/query",
        &[
            (
                "query",
                r#"istio_request_duration_milliseconds_count{destination_version="v2"}[31s]"#,
            ),
            ("time", "1200"),
        ],
    )
    .await;
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(
        body["data"]["result"][0]["values"],
        json!([[1170, "117"], [1185, "119"], [1200, "120"]])
    );

    // A range query: one value per step, equal to the instant queries.
    let query = r#"sum by (destination_version) (rate(istio_requests_total{reporter="destination", destination_app="stock-api"}[1m]))"#;
    let (status, body) = both(
        &collector,
        "/api/v1/query_range",
        &[
            ("query", query),
            ("start", "600"),
            ("end", "1200"),
            ("step", "1m"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let series = body["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    for one in series {
        let values = one["values"].as_array().unwrap();
        assert_eq!(values.len(), 11);
        for pair in values {
            let t = pair[0].as_i64().unwrap();
            let (_, instant) = both(
                &collector,
                "/api/v1/query",
                &[("query", query), ("time", &t.to_string())],
            )
            .await;
            let same = instant["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .find(|sample| sample["metric"] == one["metric"])
                .unwrap();
            assert_eq!(same["value"], *pair);
        }
    }
    // A scalar range query is a matrix with empty labels.
    let (_, body) = both(
        &collector,
        "/api/v1/query_range",
        &[
            ("query", "time()"),
            ("start", "10"),
            ("end", "20"),
            ("step", "5"),
        ],
    )
    .await;
    assert_eq!(
        body["data"]["result"],
        json!([{"metric": {}, "values": [[10, "10"], [15, "15"], [20, "20"]]}])
    );
    collector.stop().await;
}

#[tokio::test]
async fn catalog_endpoints() {
    let collector = with_data().await;
    let (status, body) = both(&collector, "/api/v1/label/__name__/values", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"],
        json!([
            "istio_request_duration_milliseconds_bucket",
            "istio_request_duration_milliseconds_count",
            "istio_request_duration_milliseconds_sum",
            "istio_requests_total",
        ])
    );
    let (_, body) = both(&collector, "/api/v1/labels", &[]).await;
    let names = body["data"].as_array().unwrap();
    for name in [
        "__name__",
        "destination_app",
        "le",
        "reporter",
        "response_code",
    ] {
        assert!(names.contains(&json!(name)), "{name} in {body}");
    }
    let (_, body) = both(&collector, "/api/v1/label/response_code/values", &[]).await;
    assert_eq!(body["data"], json!(["200", "503"]));
    // match[] and limit, as the query editor sends them.
    let (_, body) = both(
        &collector,
        "/api/v1/label/destination_version/values",
        &[
            ("match[]", r#"istio_requests_total{response_code="503"}"#),
            ("start", "0"),
            ("end", "2000"),
        ],
    )
    .await;
    assert_eq!(body["data"], json!(["v2"]));
    let (_, body) = both(
        &collector,
        "/api/v1/label/destination_app/values",
        &[("limit", "1")],
    )
    .await;
    assert_eq!(body["data"], json!(["stock-api"]));
    // A time range without data has no values.
    let (_, body) = both(
        &collector,
        "/api/v1/label/response_code/values",
        &[("start", "5000"), ("end", "6000")],
    )
    .await;
    assert_eq!(body["data"], json!([]));
    let (_, body) = both(
        &collector,
        "/api/v1/labels",
        &[(
            "match[]",
            r#"istio_request_duration_milliseconds_bucket{le="+Inf"}"#,
        )],
    )
    .await;
    assert!(body["data"].as_array().unwrap().contains(&json!("le")));

    let (status, body) = both(
        &collector,
        "/api/v1/series",
        &[("match[]", r#"istio_request_duration_milliseconds_bucket{destination_version="v2", le=~"100|\\+Inf"}"#)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let series = body["data"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{body}");
    assert_eq!(
        series[0]["__name__"],
        "istio_request_duration_milliseconds_bucket"
    );
    let les: Vec<&str> = series.iter().map(|s| s["le"].as_str().unwrap()).collect();
    assert_eq!(les, vec!["+Inf", "100"]);
    let (status, body) = both(&collector, "/api/v1/series", &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorType"], "bad_data");

    let (_, body) = both(&collector, "/api/v1/metadata", &[]).await;
    assert_eq!(body["data"]["istio_requests_total"][0]["type"], "counter");
    assert_eq!(
        body["data"]["istio_request_duration_milliseconds"][0]["type"],
        "histogram"
    );
    let (_, body) = both(
        &collector,
        "/api/v1/metadata",
        &[("metric", "istio_requests_total")],
    )
    .await;
    assert_eq!(body["data"].as_object().unwrap().len(), 1);
    collector.stop().await;
}

#[tokio::test]
async fn errors_have_the_prometheus_envelope() {
    let collector = with_data().await;
    /// Path, parameters, status, errorType, part of the message.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u16, &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        (
            "/api/v1/query",
            &[("query", "sum(")],
            400,
            "bad_data",
            "invalid parameter \"query\"",
        ),
        (
            "/api/v1/query",
            &[("query", "label_replace(up, \"a\", \"b\", \"c\", \"d\")")],
            400,
            "bad_data",
            "unsupported PromQL: the function label_replace()",
        ),
        (
            "/api/v1/query",
            &[("query", "rate(istio_requests_total[5m:1m])")],
            400,
            "bad_data",
            "subqueries",
        ),
        (
            "/api/v1/query",
            &[("query", "1"), ("time", "yesterday")],
            400,
            "bad_data",
            "invalid parameter \"time\"",
        ),
        (
            "/api/v1/query_range",
            &[("query", "1"), ("start", "10"), ("end", "20")],
            400,
            "bad_data",
            "invalid parameter \"step\"",
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "1"),
                ("start", "20"),
                ("end", "10"),
                ("step", "1"),
            ],
            400,
            "bad_data",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "1"),
                ("start", "0"),
                ("end", "100000"),
                ("step", "1"),
            ],
            400,
            "bad_data",
            "11,000 points",
        ),
        (
            "/api/v1/query_range",
            &[
                ("query", "istio_requests_total[5m]"),
                ("start", "0"),
                ("end", "10"),
                ("step", "1"),
            ],
            400,
            "bad_data",
            "range vector",
        ),
        // Both sides have several series per match group.
        (
            "/api/v1/query",
            &[
                (
                    "query",
                    "istio_requests_total + on (destination_app) istio_requests_total",
                ),
                ("time", "600"),
            ],
            422,
            "execution",
            "many-to-many",
        ),
        (
            "/api/v1/label/bad-name/values",
            &[],
            400,
            "bad_data",
            "invalid label name",
        ),
    ];
    for (path, pairs, status, kind, message) in cases {
        let (got, body) = both(&collector, path, pairs).await;
        assert_eq!(got, *status, "{path} {pairs:?}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], *kind, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{path} {pairs:?}: {body}"
        );
        assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    }
    collector.stop().await;
}
