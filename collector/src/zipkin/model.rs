//! Zipkin v2 spans (JSON v2 and proto3 `ListOfSpans`) ↔ the store's spans.
//!
//! Mapping (both directions; the OpenTelemetry Zipkin exporter's conventions):
//!
//! | Zipkin | store |
//! |---|---|
//! | `traceId` (16 or 32 hex), `id`, `parentId` | ids (64-bit trace ids left-padded with zeros) |
//! | `name` | operation |
//! | `kind` CLIENT/SERVER/PRODUCER/CONSUMER, absent | kind; absent = INTERNAL |
//! | `timestamp`, `duration` (µs) | start, duration (ns) |
//! | `localEndpoint.serviceName` | service (resource `service.name`; `unknown_service` when absent) |
//! | `localEndpoint.ipv4`/`ipv6`/`port` | resource `net.host.ip`/`net.host.ipv6`/`net.host.port` |
//! | `remoteEndpoint.serviceName`/`ipv4`/`ipv6`/`port` | attributes `peer.service`/`net.peer.ip`/`net.peer.ipv6`/`net.peer.port` |
//! | `tags` | attributes (string values), except: |
//! | tag `error` | status ERROR, message = the tag's value |
//! | tags `otel.status_code`, `otel.status_description` | status code and message |
//! | tags `otel.scope.name`/`otel.library.name`, `otel.scope.version`/`otel.library.version` | scope |
//! | `annotations` | events (name = value) |
//! | `shared: true` on a SERVER span | see below |
//!
//! **Shared spans.** In Zipkin's B3 single-span-per-RPC model the server half
//! of an RPC reuses the client's span id (`shared: true`). The store keys
//! spans by `(trace id, span id)`, so a shared SERVER span is stored under a
//! derived id (a hash of the original, so retries stay idempotent) as a child
//! of the client span, with the attribute `zipkin.shared = true` — as Jaeger
//! does. The Zipkin API gives it back under its original id with
//! `shared: true`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::otlp::decode::{InvalidData, UNKNOWN_SERVICE, cap_name, cap_string};
use crate::store::{Attributes, Event, Scope, Span, SpanId, SpanKind, StatusCode, TraceId};

/// Marks a shared SERVER span stored under a derived id.
pub const SHARED: &str = "zipkin.shared";

const LOCAL_IP: &str = "net.host.ip";
const LOCAL_IPV6: &str = "net.host.ipv6";
const LOCAL_PORT: &str = "net.host.port";
const PEER_SERVICE: &str = "peer.service";
const PEER_IP: &str = "net.peer.ip";
const PEER_IPV6: &str = "net.peer.ipv6";
const PEER_PORT: &str = "net.peer.port";

/// proto3 messages of `zipkin.proto` (package `zipkin.proto3`).
pub mod proto {
    use std::collections::HashMap;

    /// A list of spans with possibly different trace ids, in no order.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        /// 8 or 16 bytes.
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub id: Vec<u8>,
        /// 0 unspecified, 1 CLIENT, 2 SERVER, 3 PRODUCER, 4 CONSUMER.
        #[prost(int32, tag = "4")]
        pub kind: i32,
        #[prost(string, tag = "5")]
        pub name: String,
        /// Epoch microseconds.
        #[prost(fixed64, tag = "6")]
        pub timestamp: u64,
        /// Microseconds.
        #[prost(uint64, tag = "7")]
        pub duration: u64,
        #[prost(message, optional, tag = "8")]
        pub local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub remote_endpoint: Option<Endpoint>,
        #[prost(message, repeated, tag = "10")]
        pub annotations: Vec<Annotation>,
        #[prost(map = "string, string", tag = "11")]
        pub tags: HashMap<String, String>,
        #[prost(bool, tag = "12")]
        pub debug: bool,
        #[prost(bool, tag = "13")]
        pub shared: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(string, tag = "1")]
        pub service_name: String,
        /// 4 bytes.
        #[prost(bytes = "vec", tag = "2")]
        pub ipv4: Vec<u8>,
        /// 16 bytes.
        #[prost(bytes = "vec", tag = "3")]
        pub ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub port: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Annotation {
        #[prost(fixed64, tag = "1")]
        pub timestamp: u64,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

// === decoding ===

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    debug: Option<bool>,
    shared: Option<bool>,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    annotations: Option<Vec<JsonAnnotation>>,
    tags: Option<HashMap<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<i32>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    timestamp: Option<u64>,
    value: Option<String>,
}

/// Decodes a JSON v2 body (a list of spans) into validated store spans.
pub fn decode_json(body: &[u8]) -> Result<Vec<Span>, InvalidData> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let spans: Vec<JsonSpan> = serde_json::from_slice(body).map_err(|error| {
        InvalidData(format!("Expected a JSON_V2 encoded list of spans: {error}"))
    })?;
    let mut decoded = Vec::with_capacity(spans.len());
    for (index, span) in spans.into_iter().enumerate() {
        let at = |message: String| InvalidData(format!("span[{index}]: {message}"));
        let proto = json_to_proto(span).map_err(at)?;
        decoded.push(to_span(&proto).map_err(at)?);
    }
    Ok(decoded)
}

/// Decodes a proto3 `ListOfSpans` body into validated store spans.
pub fn decode_proto(body: &[u8]) -> Result<Vec<Span>, InvalidData> {
    use prost::Message;
    let list = proto::ListOfSpans::decode(body).map_err(|error| {
        InvalidData(format!("Expected a PROTO3 encoded list of spans: {error}"))
    })?;
    list.spans
        .iter()
        .enumerate()
        .map(|(index, span)| {
            to_span(span).map_err(|message| InvalidData(format!("span[{index}]: {message}")))
        })
        .collect()
}

fn json_to_proto(span: JsonSpan) -> Result<proto::Span, String> {
    let trace_id = span.trace_id.ok_or("traceId is required")?;
    let trace_id = hex_id(&trace_id, "traceId", &[16, 32])?;
    let id = hex_id(span.id.as_deref().ok_or("id is required")?, "id", &[16])?;
    let parent_id = match span.parent_id.as_deref() {
        None | Some("") => Vec::new(),
        Some(parent) => hex_id(parent, "parentId", &[16])?,
    };
    let kind = match span.kind.as_deref() {
        None => 0,
        Some("CLIENT") => 1,
        Some("SERVER") => 2,
        Some("PRODUCER") => 3,
        Some("CONSUMER") => 4,
        Some(other) => return Err(format!("unknown kind {other:?}")),
    };
    let mut tags = HashMap::new();
    for (key, value) in span.tags.unwrap_or_default() {
        let value = match value {
            Value::Null => continue,
            Value::String(text) => text,
            Value::Bool(_) | Value::Number(_) => value.to_string(),
            _ => return Err(format!("tag {key:?} must be a string")),
        };
        tags.insert(key, value);
    }
    let mut annotations = Vec::new();
    for (index, annotation) in span.annotations.unwrap_or_default().into_iter().enumerate() {
        let (Some(timestamp), Some(value)) = (annotation.timestamp, annotation.value) else {
            return Err(format!(
                "annotations[{index}] needs a timestamp and a value"
            ));
        };
        annotations.push(proto::Annotation { timestamp, value });
    }
    Ok(proto::Span {
        trace_id,
        parent_id,
        id,
        kind,
        name: span.name.unwrap_or_default(),
        timestamp: span.timestamp.unwrap_or(0),
        duration: span.duration.unwrap_or(0),
        local_endpoint: span.local_endpoint.map(json_endpoint).transpose()?,
        remote_endpoint: span.remote_endpoint.map(json_endpoint).transpose()?,
        annotations,
        tags,
        debug: span.debug.unwrap_or(false),
        shared: span.shared.unwrap_or(false),
    })
}

fn json_endpoint(endpoint: JsonEndpoint) -> Result<proto::Endpoint, String> {
    let ipv4 = match endpoint.ipv4.as_deref() {
        None | Some("") => Vec::new(),
        Some(text) => text
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("invalid ipv4 {text:?}"))?
            .octets()
            .to_vec(),
    };
    let ipv6 = match endpoint.ipv6.as_deref() {
        None | Some("") => Vec::new(),
        Some(text) => text
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("invalid ipv6 {text:?}"))?
            .octets()
            .to_vec(),
    };
    Ok(proto::Endpoint {
        service_name: endpoint.service_name.unwrap_or_default(),
        ipv4,
        ipv6,
        port: endpoint.port.unwrap_or(0),
    })
}

/// Hex of one of the allowed lengths (either case) → bytes.
fn hex_id(text: &str, what: &str, lengths: &[usize]) -> Result<Vec<u8>, String> {
    if !lengths.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let lengths: Vec<String> = lengths.iter().map(ToString::to_string).collect();
        return Err(format!(
            "{what} {text:?} should be {} hex characters",
            lengths.join(" or ")
        ));
    }
    hex::decode(text).map_err(|error| format!("{what} {text:?}: {error}"))
}

fn trace_id_of(bytes: &[u8]) -> Result<TraceId, String> {
    let id = match bytes.len() {
        8 => {
            let mut padded = [0; 16];
            padded[8..].copy_from_slice(bytes);
            TraceId::from_bytes(&padded)
        }
        16 => TraceId::from_bytes(bytes),
        _ => None,
    };
    id.ok_or_else(|| {
        format!(
            "traceId must be 8 or 16 bytes, not all zero, got {:?}",
            hex::encode(bytes)
        )
    })
}

/// A derived, stable, non-zero span id for the server half of a shared span.
fn shared_server_id(id: SpanId) -> SpanId {
    // FNV-1a 64 over a tag and the original id.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"zipkin-shared".iter().chain(id.0.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    SpanId::from_bytes(&hash.to_be_bytes()).unwrap_or(SpanId([0, 0, 0, 0, 0, 0, 0, 1]))
}

/// Converts and validates one Zipkin span.
fn to_span(span: &proto::Span) -> Result<Span, String> {
    let trace_id = trace_id_of(&span.trace_id)?;
    let span_id = SpanId::from_bytes(&span.id).ok_or_else(|| {
        format!(
            "id must be 8 bytes, not all zero, got {:?}",
            hex::encode(&span.id)
        )
    })?;
    let parent_span_id = match span.parent_id.len() {
        0 => None,
        8 => SpanId::from_bytes(&span.parent_id),
        _ => {
            return Err(format!(
                "parentId must be 8 bytes, got {:?}",
                hex::encode(&span.parent_id)
            ));
        }
    };
    let kind = match span.kind {
        0 => SpanKind::Internal,
        1 => SpanKind::Client,
        2 => SpanKind::Server,
        3 => SpanKind::Producer,
        4 => SpanKind::Consumer,
        other => return Err(format!("unknown kind {other}")),
    };
    let timestamp = if span.timestamp > 0 {
        span.timestamp
    } else {
        span.annotations
            .iter()
            .map(|annotation| annotation.timestamp)
            .filter(|timestamp| *timestamp > 0)
            .min()
            .ok_or("timestamp is required")?
    };
    let micros = |value: u64, what: &str| {
        value
            .checked_mul(1000)
            .and_then(|nanos| i64::try_from(nanos).ok())
            .ok_or_else(|| format!("{what} {value} is out of range"))
    };
    let start_unix_nano = micros(timestamp, "timestamp")?;
    let duration_nano = micros(span.duration, "duration")?;

    let mut resource = Attributes::new();
    let service_name = span
        .local_endpoint
        .as_ref()
        .map(|endpoint| endpoint.service_name.as_str())
        .filter(|name| !name.is_empty())
        .unwrap_or(UNKNOWN_SERVICE)
        .to_owned();
    let service_name = cap_name(service_name);
    resource.insert("service.name".to_owned(), Value::from(service_name.clone()));
    if let Some(endpoint) = &span.local_endpoint {
        endpoint_attributes(
            endpoint,
            None,
            [LOCAL_IP, LOCAL_IPV6, LOCAL_PORT],
            &mut resource,
        )?;
    }

    let mut attributes = Attributes::new();
    if let Some(endpoint) = &span.remote_endpoint {
        endpoint_attributes(
            endpoint,
            Some(PEER_SERVICE),
            [PEER_IP, PEER_IPV6, PEER_PORT],
            &mut attributes,
        )?;
    }
    let mut status_code = StatusCode::Unset;
    let mut status_message = String::new();
    let mut scope = Scope::default();
    let mut tags: Vec<(&String, &String)> = span.tags.iter().collect();
    tags.sort();
    for (key, value) in tags {
        match key.as_str() {
            "error" => {
                status_code = StatusCode::Error;
                if status_message.is_empty() {
                    status_message = cap_string(value.clone());
                }
            }
            "otel.status_code" => match value.as_str() {
                "ERROR" => status_code = StatusCode::Error,
                "OK" => status_code = StatusCode::Ok,
                _ => {}
            },
            "otel.status_description" => status_message = cap_string(value.clone()),
            "otel.scope.name" | "otel.library.name" => scope.name = value.clone(),
            "otel.scope.version" | "otel.library.version" => scope.version = value.clone(),
            _ => {
                attributes.insert(key.clone(), Value::from(cap_string(value.clone())));
            }
        }
    }

    let (span_id, parent_span_id) = if span.shared && kind == SpanKind::Server {
        attributes.insert(SHARED.to_owned(), Value::Bool(true));
        (shared_server_id(span_id), Some(span_id))
    } else {
        (span_id, parent_span_id)
    };
    let events = span
        .annotations
        .iter()
        .map(|annotation| {
            Ok(Event {
                time_unix_nano: micros(annotation.timestamp, "annotation timestamp")?,
                name: cap_string(annotation.value.clone()),
                attributes: Attributes::new(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        service_name,
        service_version: None,
        operation: cap_name(span.name.clone()),
        kind,
        start_unix_nano,
        duration_nano,
        status_code,
        status_message,
        trace_state: String::new(),
        flags: 0,
        attributes,
        events,
        links: Vec::new(),
        resource: std::sync::Arc::new(resource),
        scope,
    })
}

fn endpoint_attributes(
    endpoint: &proto::Endpoint,
    service_key: Option<&str>,
    [ip_key, ipv6_key, port_key]: [&str; 3],
    attributes: &mut Attributes,
) -> Result<(), String> {
    if let Some(key) = service_key
        && !endpoint.service_name.is_empty()
    {
        attributes.insert(key.to_owned(), Value::from(endpoint.service_name.clone()));
    }
    match endpoint.ipv4.len() {
        0 => {}
        4 => {
            let octets: [u8; 4] = endpoint.ipv4.as_slice().try_into().map_err(|_| "ipv4")?;
            attributes.insert(
                ip_key.to_owned(),
                Value::from(Ipv4Addr::from(octets).to_string()),
            );
        }
        _ => return Err("ipv4 must be 4 bytes".to_owned()),
    }
    match endpoint.ipv6.len() {
        0 => {}
        16 => {
            let octets: [u8; 16] = endpoint.ipv6.as_slice().try_into().map_err(|_| "ipv6")?;
            attributes.insert(
                ipv6_key.to_owned(),
                Value::from(Ipv6Addr::from(octets).to_string()),
            );
        }
        _ => return Err("ipv6 must be 16 bytes".to_owned()),
    }
    if endpoint.port > 0 {
        attributes.insert(port_key.to_owned(), Value::from(endpoint.port));
    }
    Ok(())
}

// === encoding ===

/// Zipkin's trace id spelling: 16 hex digits when the high half is zero.
pub fn zipkin_trace_id(id: TraceId) -> String {
    let hex = id.to_hex();
    if id.0[..8] == [0; 8] {
        hex[16..].to_owned()
    } else {
        hex
    }
}

/// The spans of one trace (or any list) as Zipkin v2 JSON spans.
pub fn encode_spans(spans: &[Span]) -> Vec<Value> {
    let parents: HashMap<SpanId, Option<SpanId>> = spans
        .iter()
        .map(|span| (span.span_id, span.parent_span_id))
        .collect();
    // Shared server halves go back to their original (the client's) id.
    let original: HashMap<SpanId, SpanId> = spans
        .iter()
        .filter(|span| is_shared(span))
        .filter_map(|span| span.parent_span_id.map(|client| (span.span_id, client)))
        .collect();
    spans
        .iter()
        .map(|span| encode_span(span, &parents, &original))
        .collect()
}

fn is_shared(span: &Span) -> bool {
    span.attributes.get(SHARED) == Some(&Value::Bool(true)) && span.parent_span_id.is_some()
}

fn encode_span(
    span: &Span,
    parents: &HashMap<SpanId, Option<SpanId>>,
    original: &HashMap<SpanId, SpanId>,
) -> Value {
    let shared = is_shared(span);
    let (id, parent) = match (shared, span.parent_span_id) {
        (true, Some(client)) => (client, parents.get(&client).copied().flatten()),
        _ => (
            span.span_id,
            span.parent_span_id
                .map(|parent| original.get(&parent).copied().unwrap_or(parent)),
        ),
    };
    let mut out = Map::new();
    out.insert(
        "traceId".into(),
        Value::from(zipkin_trace_id(span.trace_id)),
    );
    if let Some(parent) = parent {
        out.insert("parentId".into(), Value::from(parent.to_hex()));
    }
    out.insert("id".into(), Value::from(id.to_hex()));
    let kind = match span.kind {
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Server => Some("SERVER"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal | SpanKind::Unspecified => None,
    };
    if let Some(kind) = kind {
        out.insert("kind".into(), Value::from(kind));
    }
    if !span.operation.is_empty() {
        out.insert("name".into(), Value::from(span.operation.clone()));
    }
    let start_us = span.start_unix_nano / 1000;
    out.insert("timestamp".into(), Value::from(start_us));
    if span.duration_nano > 0 {
        let end_us = span.start_unix_nano.saturating_add(span.duration_nano) / 1000;
        out.insert("duration".into(), Value::from((end_us - start_us).max(1)));
    }
    let mut local = Map::new();
    local.insert("serviceName".into(), Value::from(span.service_name.clone()));
    endpoint_json(
        &span.resource,
        None,
        [LOCAL_IP, LOCAL_IPV6, LOCAL_PORT],
        &mut local,
    );
    out.insert("localEndpoint".into(), Value::Object(local));
    let mut remote = Map::new();
    endpoint_json(
        &span.attributes,
        Some(PEER_SERVICE),
        [PEER_IP, PEER_IPV6, PEER_PORT],
        &mut remote,
    );
    if !remote.is_empty() {
        out.insert("remoteEndpoint".into(), Value::Object(remote));
    }
    if !span.events.is_empty() {
        let annotations: Vec<Value> = span
            .events
            .iter()
            .map(|event| {
                let value = if event.attributes.is_empty() {
                    event.name.clone()
                } else {
                    format!(
                        "{}: {}",
                        event.name,
                        Value::Object(event.attributes.clone())
                    )
                };
                json!({ "timestamp": event.time_unix_nano / 1000, "value": value })
            })
            .collect();
        out.insert("annotations".into(), Value::Array(annotations));
    }
    let mut tags = Map::new();
    for (key, value) in &span.attributes {
        if matches!(
            key.as_str(),
            SHARED | PEER_SERVICE | PEER_IP | PEER_IPV6 | PEER_PORT
        ) || value.is_null()
        {
            continue;
        }
        tags.insert(key.clone(), Value::from(tag_text(value)));
    }
    match span.status_code {
        StatusCode::Unset => {}
        StatusCode::Ok => {
            tags.insert("otel.status_code".into(), Value::from("OK"));
        }
        StatusCode::Error => {
            tags.insert("otel.status_code".into(), Value::from("ERROR"));
            tags.insert("error".into(), Value::from(span.status_message.clone()));
        }
    }
    if !span.scope.name.is_empty() {
        tags.insert(
            "otel.scope.name".into(),
            Value::from(span.scope.name.clone()),
        );
    }
    if !span.scope.version.is_empty() {
        tags.insert(
            "otel.scope.version".into(),
            Value::from(span.scope.version.clone()),
        );
    }
    if !tags.is_empty() {
        out.insert("tags".into(), Value::Object(tags));
    }
    if shared {
        out.insert("shared".into(), Value::Bool(true));
    }
    Value::Object(out)
}

/// An attribute value as a Zipkin tag string.
pub fn tag_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn endpoint_json(
    attributes: &Attributes,
    service_key: Option<&str>,
    [ip_key, ipv6_key, port_key]: [&str; 3],
    out: &mut Map<String, Value>,
) {
    if let Some(service) = service_key
        .and_then(|key| attributes.get(key))
        .and_then(Value::as_str)
    {
        out.insert("serviceName".into(), Value::from(service));
    }
    if let Some(ip) = attributes.get(ip_key).and_then(Value::as_str) {
        match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => {
                out.insert("ipv4".into(), Value::from(ip));
            }
            Ok(std::net::IpAddr::V6(_)) => {
                out.insert("ipv6".into(), Value::from(ip));
            }
            Err(_) => {}
        }
    }
    if let Some(ipv6) = attributes.get(ipv6_key).and_then(Value::as_str) {
        out.insert("ipv6".into(), Value::from(ipv6));
    }
    if let Some(port) = attributes.get(port_key).and_then(Value::as_i64) {
        out.insert("port".into(), Value::from(port));
    }
}

#[cfg(test)]
mod tests;
