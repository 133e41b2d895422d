//! Stored spans → OTLP messages: the OTLP exporter sends them, and Jaeger's
//! `/api/v3/traces/{id}` answers them as OTLP/JSON.
//!
//! Spans are grouped by resource (service name plus resource attributes) and
//! then by scope, in order of first appearance. Attribute values map back to
//! OTLP `AnyValue`s by their JSON type (bytes were stored as base64 strings
//! and come back as strings).

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::Value;

use crate::store::{self, Attributes};

/// The spans as OTLP `ResourceSpans`.
pub fn resource_spans(spans: &[store::Span]) -> Vec<ResourceSpans> {
    let mut resources: Vec<(&str, &Attributes, ResourceSpans)> = Vec::new();
    for span in spans {
        let index = match resources.iter().position(|(service, resource, _)| {
            *service == span.service_name && *resource == &*span.resource
        }) {
            Some(index) => index,
            None => {
                let mut attributes = key_values(&span.resource);
                if !span.resource.contains_key("service.name") {
                    attributes.insert(0, string_key_value("service.name", &span.service_name));
                }
                resources.push((
                    &span.service_name,
                    &span.resource,
                    ResourceSpans {
                        resource: Some(Resource {
                            attributes,
                            ..Default::default()
                        }),
                        scope_spans: Vec::new(),
                        schema_url: String::new(),
                    },
                ));
                resources.len() - 1
            }
        };
        let scope_spans = &mut resources[index].2.scope_spans;
        let scope_index = match scope_spans.iter().position(|scope_spans| {
            scope_spans.scope.as_ref().is_some_and(|scope| {
                scope.name == span.scope.name && scope.version == span.scope.version
            })
        }) {
            Some(index) => index,
            None => {
                scope_spans.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: span.scope.name.clone(),
                        version: span.scope.version.clone(),
                        ..Default::default()
                    }),
                    spans: Vec::new(),
                    schema_url: String::new(),
                });
                scope_spans.len() - 1
            }
        };
        scope_spans[scope_index].spans.push(otlp_span(span));
    }
    resources
        .into_iter()
        .map(|(_, _, resource_spans)| resource_spans)
        .collect()
}

fn otlp_span(span: &store::Span) -> Span {
    let start = u64::try_from(span.start_unix_nano).unwrap_or(0);
    let duration = u64::try_from(span.duration_nano).unwrap_or(0);
    Span {
        trace_id: span.trace_id.0.to_vec(),
        span_id: span.span_id.0.to_vec(),
        trace_state: span.trace_state.clone(),
        parent_span_id: span
            .parent_span_id
            .map(|id| id.0.to_vec())
            .unwrap_or_default(),
        flags: span.flags,
        name: span.operation.clone(),
        kind: span.kind.as_i32(),
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(duration),
        attributes: key_values(&span.attributes),
        dropped_attributes_count: 0,
        events: span
            .events
            .iter()
            .map(|event| Event {
                time_unix_nano: u64::try_from(event.time_unix_nano).unwrap_or(0),
                name: event.name.clone(),
                attributes: key_values(&event.attributes),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: 0,
        links: span
            .links
            .iter()
            .map(|link| Link {
                trace_id: link.trace_id.0.to_vec(),
                span_id: link.span_id.0.to_vec(),
                trace_state: link.trace_state.clone(),
                attributes: key_values(&link.attributes),
                dropped_attributes_count: 0,
                flags: 0,
            })
            .collect(),
        dropped_links_count: 0,
        status: (span.status_code != store::StatusCode::Unset || !span.status_message.is_empty())
            .then(|| Status {
                message: span.status_message.clone(),
                code: span.status_code.as_i32(),
            }),
    }
}

/// Attributes as OTLP key-values (null values are left out).
pub fn key_values(attributes: &Attributes) -> Vec<KeyValue> {
    attributes
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| KeyValue {
            key: key.clone(),
            value: Some(any_value(value)),
            ..Default::default()
        })
        .collect()
}

fn string_key_value(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn any_value(value: &Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        Value::Null => None,
        Value::Bool(flag) => Some(V::BoolValue(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(int) => Some(V::IntValue(int)),
            None => number.as_f64().map(V::DoubleValue),
        },
        Value::String(text) => Some(V::StringValue(text.clone())),
        Value::Array(values) => Some(V::ArrayValue(ArrayValue {
            values: values.iter().map(any_value).collect(),
        })),
        Value::Object(map) => Some(V::KvlistValue(KeyValueList {
            values: key_values(map),
        })),
    };
    AnyValue { value }
}
