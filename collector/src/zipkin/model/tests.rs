use serde_json::json;

use super::{decode_json, encode_spans, shared_server_id};
use crate::store::{SpanId, SpanKind, StatusCode};

#[test]
fn shared_server_ids_are_stable_and_distinct() {
    let id = SpanId([7; 8]);
    assert_eq!(shared_server_id(id), shared_server_id(id));
    assert_ne!(shared_server_id(id), id);
    assert_ne!(shared_server_id(id), shared_server_id(SpanId([8; 8])));
}

#[test]
fn json_round_trip() {
    let spans = json!([{
        "traceId": "0000000000000001000000000000000a", "id": "000000000000000b",
        "parentId": "000000000000000c", "name": "get /x", "kind": "CLIENT",
        "timestamp": 1_700_000_000_000_001_u64, "duration": 250,
        "localEndpoint": {"serviceName": "web", "ipv4": "10.0.0.1", "port": 8080},
        "remoteEndpoint": {"serviceName": "db", "ipv6": "2001:db8::1", "port": 5432},
        "annotations": [{"timestamp": 1_700_000_000_000_100_u64, "value": "ws"}],
        "tags": {"http.path": "/x", "error": "boom", "n": 3}
    }]);
    let decoded = decode_json(spans.to_string().as_bytes()).unwrap();
    assert_eq!(decoded.len(), 1);
    let span = &decoded[0];
    assert_eq!(span.service_name, "web");
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(span.status_code, StatusCode::Error);
    assert_eq!(span.status_message, "boom");
    assert_eq!(span.start_unix_nano, 1_700_000_000_000_001_000);
    assert_eq!(span.duration_nano, 250_000);
    assert_eq!(span.attributes["peer.service"], "db");
    assert_eq!(span.attributes["n"], "3");
    let encoded = encode_spans(&decoded);
    assert_eq!(
        encoded[0],
        json!({
            "traceId": "0000000000000001000000000000000a", "id": "000000000000000b",
            "parentId": "000000000000000c", "name": "get /x", "kind": "CLIENT",
            "timestamp": 1_700_000_000_000_001_u64, "duration": 250,
            "localEndpoint": {"serviceName": "web", "ipv4": "10.0.0.1", "port": 8080},
            "remoteEndpoint": {"serviceName": "db", "ipv6": "2001:db8::1", "port": 5432},
            "annotations": [{"timestamp": 1_700_000_000_000_100_u64, "value": "ws"}],
            "tags": {"http.path": "/x", "error": "boom", "n": "3", "otel.status_code": "ERROR"}
        })
    );
}

#[test]
fn invalid_spans_name_their_position() {
    let bad = |body: serde_json::Value| decode_json(body.to_string().as_bytes()).unwrap_err().0;
    let ok = json!({"traceId": "000000000000000a", "id": "000000000000000b", "timestamp": 1});
    let mut no_trace = ok.clone();
    no_trace["traceId"] = json!(null);
    assert!(bad(json!([ok, no_trace])).starts_with("span[1]: traceId is required"));
    let mut short = ok.clone();
    short["id"] = json!("abc");
    assert!(bad(json!([short])).contains("16 hex"));
    let mut no_time = ok.clone();
    no_time["timestamp"] = json!(null);
    assert!(bad(json!([no_time])).contains("timestamp is required"));
    let mut kind = ok.clone();
    kind["kind"] = json!("SIDEWAYS");
    assert!(bad(json!([kind])).contains("unknown kind"));
    assert!(bad(json!({"not": "a list"})).starts_with("Expected a JSON_V2 encoded list"));
    assert_eq!(decode_json(b"  ").unwrap(), Vec::new());
    assert_eq!(decode_json(b"[]").unwrap(), Vec::new());
}
