#![allow(clippy::unwrap_used, clippy::float_cmp)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
use serde_json::json;

use super::{InvalidData, UNKNOWN_SERVICE, base64, spans};
use crate::otlp::json;
use crate::store::{SpanKind, StatusCode};

fn request(span: OtlpSpan) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn good() -> OtlpSpan {
    OtlpSpan {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        kind: 2,
        start_time_unix_nano: 10,
        end_time_unix_nano: 30,
        ..Default::default()
    }
}

fn rejects(span: OtlpSpan, needle: &str) {
    match spans(request(span)) {
        Err(InvalidData(message)) => assert!(message.contains(needle), "{message}"),
        Ok(spans) => panic!("accepted {spans:?}"),
    }
}

#[test]
fn converts_a_span() {
    let converted = spans(request(good())).unwrap();
    assert_eq!(converted.len(), 1);
    let span = &converted[0];
    assert_eq!(span.service_name, UNKNOWN_SERVICE);
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.status_code, StatusCode::Unset);
    assert_eq!((span.start_unix_nano, span.duration_nano), (10, 20));
    assert_eq!(span.parent_span_id, None);
    // An all-zero parent means "no parent".
    let mut zero_parent = good();
    zero_parent.parent_span_id = vec![0; 8];
    assert_eq!(spans(request(zero_parent)).unwrap()[0].parent_span_id, None);
}

#[test]
fn validates_spans() {
    rejects(
        OtlpSpan {
            trace_id: vec![0; 16],
            ..good()
        },
        "traceId",
    );
    rejects(
        OtlpSpan {
            trace_id: vec![1; 8],
            ..good()
        },
        "traceId",
    );
    rejects(
        OtlpSpan {
            span_id: vec![0; 8],
            ..good()
        },
        "spanId",
    );
    rejects(
        OtlpSpan {
            span_id: vec![],
            ..good()
        },
        "spanId",
    );
    rejects(
        OtlpSpan {
            parent_span_id: vec![1; 4],
            ..good()
        },
        "parentSpanId",
    );
    rejects(
        OtlpSpan {
            end_time_unix_nano: 5,
            ..good()
        },
        "endTimeUnixNano",
    );
    rejects(
        OtlpSpan {
            start_time_unix_nano: 0,
            ..good()
        },
        "startTimeUnixNano",
    );
    rejects(
        OtlpSpan {
            start_time_unix_nano: u64::MAX,
            end_time_unix_nano: u64::MAX,
            ..good()
        },
        "startTimeUnixNano",
    );
    rejects(OtlpSpan { kind: 9, ..good() }, "kind");
    let mut bad_status = good();
    bad_status.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        message: String::new(),
        code: 7,
    });
    rejects(bad_status, "status");
    let mut bad_link = good();
    bad_link.links.push(Default::default());
    rejects(bad_link, "links[0]");
}

#[test]
fn json_normalization() {
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0102030405060708090A0B0C0D0E0F10",
        "spanId": "0102030405060708",
        "parentSpanId": null,
        "kind": "SPAN_KIND_PRODUCER",
        "startTimeUnixNano": 5,
        "endTimeUnixNano": "6",
        "flags": "256",
        "droppedEventsCount": "1",
        "status": {"code": "STATUS_CODE_OK"},
        "attributes": [
            {"key": "inf", "value": {"doubleValue": "Infinity"}},
            {"key": "half", "value": {"doubleValue": "0.5"}},
            {"key": "bytes", "value": {"bytesValue": "AQID"}}
        ]
    }]}]}]});
    let request = json::traces(body.to_string().as_bytes()).unwrap();
    let converted = spans(request).unwrap();
    let span = &converted[0];
    assert_eq!(span.trace_id.to_hex(), "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(span.kind, SpanKind::Producer);
    assert_eq!(span.status_code, StatusCode::Ok);
    assert_eq!(span.flags, 256);
    assert_eq!(span.duration_nano, 1);
    assert_eq!(span.attributes["inf"], json!("Infinity"));
    assert_eq!(span.attributes["half"], json!(0.5));
    assert_eq!(span.attributes["bytes"], json!("AQID"));
}

#[test]
fn json_rejects_garbage() {
    for body in [
        "",
        "[]",
        "{\"resourceSpans\": 5}",
        "{\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [{\"traceId\": \"zz\"}]}]}]}",
    ] {
        assert!(json::traces(body.as_bytes()).is_err(), "{body}");
    }
    // Unknown enum names stay strings and fail.
    let body =
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_WEIRD"}]}]}]});
    assert!(json::traces(body.to_string().as_bytes()).is_err());
}

#[test]
fn json_metrics_data_is_strict() {
    let good = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "a", "gauge": {"dataPoints": [{"asDouble": "2.5", "timeUnixNano": "1"}]}},
        {"name": "b"},
        {"name": "c", "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA", "isMonotonic": true,
            "dataPoints": [{"asInt": "3", "timeUnixNano": 2}]}}
    ]}]}]});
    let request = json::metrics(good.to_string().as_bytes()).unwrap();
    let series = super::metrics(&request).unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].name, "a");
    assert_eq!(series[1].temporality, crate::store::Temporality::Delta);
    assert_eq!(
        series[1].points[0].value,
        crate::store::PointValue::Number(3.0)
    );

    let two_members = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "a", "gauge": {}, "sum": {}}
    ]}]}]});
    assert!(json::metrics(two_members.to_string().as_bytes()).is_err());
    let bad_temporality = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "a", "sum": {"aggregationTemporality": "SOMETIMES"}}
    ]}]}]});
    assert!(json::metrics(bad_temporality.to_string().as_bytes()).is_err());
}

#[test]
fn metric_labels_and_instances() {
    let body = json!({"resourceMetrics": [
        {"resource": {"attributes": [{"key": "service.instance.id", "value": {"stringValue": "pod-1"}}]},
         "scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [
            {"asInt": 1, "timeUnixNano": 1, "attributes": [{"key": "code", "value": {"intValue": 200}}, {"key": "ok", "value": {"boolValue": true}}]},
            {"asInt": 2, "timeUnixNano": 2, "attributes": [{"key": "ok", "value": {"boolValue": true}}, {"key": "code", "value": {"intValue": "200"}}]}
         ]}}]}]},
        {"resource": {"attributes": [{"key": "service.instance.id", "value": {"stringValue": "pod-2"}}]},
         "scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [
            {"asInt": 3, "timeUnixNano": 3, "attributes": [{"key": "code", "value": {"intValue": 200}}, {"key": "ok", "value": {"boolValue": true}}]}
         ]}}]}]}
    ]});
    let series = super::metrics(&json::metrics(body.to_string().as_bytes()).unwrap()).unwrap();
    assert_eq!(series.len(), 2, "one series per instance");
    assert_eq!(series[0].points.len(), 2, "same labels in any order");
    assert_eq!(
        series[0].labels.get("code").map(String::as_str),
        Some("200")
    );
    assert_eq!(series[0].labels.get("ok").map(String::as_str), Some("true"));
    assert_eq!(
        series[1].labels.get("instance").map(String::as_str),
        Some("pod-2")
    );
}

#[test]
fn base64_encodes() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[1, 2, 3, 255]), "AQID/w==");
}
