//! The Jaeger APIs call by call as Grafana's Jaeger datasource and the
//! current Jaeger UI make them (shared/reference/apis.md a.3, a.4): v1
//! completions, search with µs and ms bounds, dependencies, prettyPrint,
//! error envelopes, and `/api/v3`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestCollector, demo_trace, now_nanos};
use prost::Message;
use serde_json::{Value, json};

async fn post(collector: &TestCollector, request: &impl Message) {
    let (status, _, body) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// GET on the main port: status, content type, raw body.
async fn get(collector: &TestCollector, path: &str) -> (u16, String, String) {
    let response = collector
        .client
        .get(collector.api(path))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

fn envelope(data: Value) -> Value {
    let total = data.as_array().map_or(0, Vec::len);
    json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null})
}

#[tokio::test]
async fn grafana_jaeger_datasource_calls() {
    let collector = TestCollector::start().await;
    let now = now_nanos();
    let start = now - 10_000_000_000;
    post(&collector, &demo_trace([1; 16], start)).await;
    let trace_hex = hex::encode([1u8; 16]);

    // 1. Health check and 2. service list.
    let (status, content_type, body) = get(&collector, "/api/services").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        envelope(json!(["stock-api", "web"]))
    );
    // 3. Operations.
    assert_eq!(
        collector
            .get_json("/api/services/web/operations", 200)
            .await,
        envelope(json!(["GET /", "GET stock-api"]))
    );
    // 4. Search, as Grafana builds it: tags JSON from logfmt, Go durations,
    // start/end in µs.
    let search = format!(
        "/api/traces?service=web&operation=GET%20%2F&tags=%7B%22http.method%22%3A%22GET%22%7D\
         &minDuration=10ms&maxDuration=1s&limit=20&start={}&end={}",
        (start - 1_000_000_000) / 1000,
        now / 1000
    );
    let found = collector.get_json(&search, 200).await;
    assert_eq!(found["total"], 1);
    let trace = &found["data"][0];
    assert_eq!(trace["traceID"], trace_hex);
    let root = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .min_by_key(|span| span["startTime"].as_i64().unwrap())
        .unwrap();
    assert_eq!(root["operationName"], "GET /");
    assert_eq!(root["startTime"], start / 1000);
    assert_eq!(root["duration"], 50_000);
    let process = root["processID"].as_str().unwrap();
    assert_eq!(trace["processes"][process]["serviceName"], "web");
    // The same window in ms (as Grafana sends on trace-by-id).
    let in_ms = format!(
        "/api/traces?service=web&start={}&end={}",
        (start - 1_000_000_000) / 1_000_000,
        now / 1_000_000
    );
    assert_eq!(collector.get_json(&in_ms, 200).await["total"], 1);
    let outside_ms = format!(
        "/api/traces?service=web&start={}&end={}",
        (start - 9_000_000_000) / 1_000_000,
        (start - 5_000_000_000) / 1_000_000
    );
    assert_eq!(collector.get_json(&outside_ms, 200).await["total"], 0);
    // 5. Trace by id, with start/end in ms.
    let by_id = collector
        .get_json(
            &format!(
                "/api/traces/{trace_hex}?start={}&end={}",
                start / 1_000_000,
                now / 1_000_000
            ),
            200,
        )
        .await;
    assert_eq!(by_id["data"][0]["spans"].as_array().unwrap().len(), 3);
    // 6. Dependency graph: endTs and lookback in ms.
    let dependencies = collector
        .get_json(
            &format!(
                "/api/dependencies?endTs={}&lookback={}",
                now / 1_000_000,
                3_600_000
            ),
            200,
        )
        .await;
    assert_eq!(
        dependencies,
        envelope(json!([{"parent": "web", "child": "stock-api", "callCount": 1}]))
    );
    let old = collector
        .get_json(
            &format!(
                "/api/dependencies?endTs={}&lookback=1000",
                start / 1_000_000 - 60_000
            ),
            200,
        )
        .await;
    assert_eq!(old, envelope(json!([])));

    // Jaeger UI completions.
    assert_eq!(
        collector
            .get_json("/api/operations?service=web&spanKind=server", 200)
            .await,
        envelope(json!([{"name": "GET /", "spanKind": "server"}]))
    );
    assert_eq!(
        collector.get_json("/api/operations?service=web", 200).await,
        envelope(json!([
            {"name": "GET /", "spanKind": "server"},
            {"name": "GET stock-api", "spanKind": "client"}
        ]))
    );

    // prettyPrint indents.
    let (_, _, pretty) = get(&collector, "/api/services?prettyPrint=true").await;
    assert!(pretty.contains("\n  \"data\""), "{pretty}");
    assert_eq!(
        serde_json::from_str::<Value>(&pretty).unwrap(),
        envelope(json!(["stock-api", "web"]))
    );

    // Errors: Jaeger's envelope with the status as code, text/plain.
    for (path, code) in [
        ("/api/operations", 400),
        ("/api/operations?service=web&spanKind=sideways", 400),
        ("/api/dependencies?endTs=soon", 400),
        ("/api/traces/00000000000000000000000000000abc", 404),
    ] {
        let (status, content_type, body) = get(&collector, path).await;
        assert_eq!(status, code, "GET {path}");
        assert_eq!(content_type, "text/plain; charset=utf-8", "GET {path}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["data"], Value::Null);
        assert_eq!(body["errors"][0]["code"], code);
    }
    collector.stop().await;
}

#[tokio::test]
async fn jaeger_api_v3() {
    let collector = TestCollector::start().await;
    let now = now_nanos();
    let start = now - 10_000_000_000;
    post(&collector, &demo_trace([2; 16], start)).await;
    let trace_hex = hex::encode([2u8; 16]);

    assert_eq!(
        collector.get_json("/api/v3/services", 200).await,
        json!({"services": ["stock-api", "web"]})
    );
    assert_eq!(
        collector
            .get_json("/api/v3/operations?service=stock-api", 200)
            .await,
        json!({"operations": [{"name": "GET /price", "spanKind": "server"}]})
    );
    assert_eq!(
        collector
            .get_json("/api/v3/operations?service=web&spanKind=client", 200)
            .await,
        json!({"operations": [{"name": "GET stock-api", "spanKind": "client"}]})
    );

    let trace = collector
        .get_json(&format!("/api/v3/traces/{trace_hex}"), 200)
        .await;
    let resource_spans = trace["result"]["resourceSpans"].as_array().unwrap();
    assert_eq!(resource_spans.len(), 2, "{trace}");
    let web = &resource_spans[0];
    assert!(
        web["resource"]["attributes"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "service.name", "value": {"stringValue": "web"}})),
        "{web}"
    );
    let root = &web["scopeSpans"][0]["spans"][0];
    assert_eq!(root["traceId"], trace_hex);
    assert_eq!(root["spanId"], hex::encode([1u8; 8]));
    assert_eq!(root["name"], "GET /");
    assert_eq!(root["kind"], 2);
    assert_eq!(root["startTimeUnixNano"], start.to_string());
    assert_eq!(root["endTimeUnixNano"], (start + 50_000_000).to_string());
    assert!(
        root["attributes"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "http.status_code", "value": {"intValue": "200"}})),
        "{root}"
    );
    let price = &resource_spans[1]["scopeSpans"][0]["spans"][0];
    assert_eq!(price["parentSpanId"], hex::encode([2u8; 8]));
    assert_eq!(price["status"], json!({"message": "boom", "code": 2}));

    let missing = collector
        .get_json(&format!("/api/v3/traces/{}", "ab".repeat(16)), 404)
        .await;
    assert_eq!(
        missing,
        json!({"error": {"grpcCode": 5, "httpCode": 404, "message": "trace not found",
            "httpStatus": "Not Found"}})
    );
    assert_eq!(
        collector.get_json("/api/v3/traces/xyz", 400).await["error"]["grpcCode"],
        3
    );

    // Search and summaries: RFC 3339 bounds (required).
    let rfc3339 = |nanos: u64| {
        let seconds = i64::try_from(nanos / 1_000_000_000).unwrap();
        let nanos = u32::try_from(nanos % 1_000_000_000).unwrap();
        chrono_like(seconds, nanos)
    };
    let query = format!(
        "query.serviceName=web&query.startTimeMin={}&query.startTimeMax={}\
         &query.durationMin=10ms&query.searchDepth=5",
        rfc3339(start - 1_000_000_000),
        rfc3339(now)
    );
    let found = collector
        .get_json(&format!("/api/v3/traces?{query}"), 200)
        .await;
    assert_eq!(
        found["result"]["resourceSpans"].as_array().unwrap().len(),
        2
    );
    let summaries = collector
        .get_json(&format!("/api/v3/trace-summaries?{query}"), 200)
        .await;
    assert_eq!(
        summaries,
        json!({"summaries": [{
            "traceId": trace_hex, "rootServiceName": "web", "rootOperationName": "GET /",
            "minStartTimeUnixNano": start.to_string(),
            "maxEndTimeUnixNano": (start + 50_000_000).to_string(),
            "spanCount": 3, "errorSpanCount": 1, "orphanSpanCount": 0,
            "services": [
                {"name": "web", "spanCount": 2, "errorSpanCount": 0},
                {"name": "stock-api", "spanCount": 1, "errorSpanCount": 1}
            ]
        }]})
    );
    // Snake-case aliases; no match is 404; missing bounds are 400.
    let none = format!(
        "/api/v3/traces?query.service_name=nope&query.start_time_min={}&query.start_time_max={}",
        rfc3339(start),
        rfc3339(now)
    );
    assert_eq!(
        collector.get_json(&none, 404).await["error"]["message"],
        "No traces found"
    );
    collector
        .get_json("/api/v3/traces?query.serviceName=web", 400)
        .await;
    collector.stop().await;
}

/// RFC 3339 with nanoseconds, UTC, from Unix seconds (civil-from-days).
fn chrono_like(seconds: i64, nanos: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
