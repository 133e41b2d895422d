//! OTLP messages → validated domain types ([`crate::store`]).
//!
//! Validation is all-or-nothing: one bad span or data point rejects the whole
//! export, with a message that names its position.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;

use crate::store::{
    Attributes, Event, Labels, Link, MetricKind, MetricPoint, MetricSeries, PointValue, Scope,
    Span, SpanId, SpanKind, StatusCode, Temporality, TraceId,
};

/// Service name used when a resource has no `service.name` (OTel's default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The longest stored string value (attribute values, event names, status
/// messages), in bytes. Longer values are truncated at a character boundary,
/// not refused: OTLP clients cannot fix a batch we reject, and one large
/// attribute (a stack trace, a request body) should not lose the trace.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// The longest stored service or span name, in bytes (they are index keys).
pub const MAX_NAME_BYTES: usize = 1024;

/// `text` cut to at most [`MAX_VALUE_BYTES`] bytes, at a character boundary.
pub fn cap_string(text: String) -> String {
    truncate(text, MAX_VALUE_BYTES)
}

/// `text` cut to at most [`MAX_NAME_BYTES`] bytes, at a character boundary.
pub fn cap_name(text: String) -> String {
    truncate(text, MAX_NAME_BYTES)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Data that parsed but breaks the OTLP rules.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidData(pub String);

/// Converts and validates every span of an export, taking its strings
/// instead of copying them (the request is dropped right after anyway).
pub fn spans(request: ExportTraceServiceRequest) -> Result<Vec<Span>, InvalidData> {
    let count = request
        .resource_spans
        .iter()
        .flat_map(|resource_spans| &resource_spans.scope_spans)
        .map(|scope_spans| scope_spans.spans.len())
        .sum();
    let mut spans = Vec::with_capacity(count);
    for (resource_index, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let resource = std::sync::Arc::new(resource_attributes(resource_spans.resource));
        let service_name = cap_name(
            string_attribute(&resource, "service.name")
                .unwrap_or(UNKNOWN_SERVICE)
                .to_owned(),
        );
        let service_version = string_attribute(&resource, "service.version").map(str::to_owned);
        for (scope_index, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
            let scope = scope_spans
                .scope
                .map(|scope| Scope {
                    name: scope.name,
                    version: scope.version,
                })
                .unwrap_or_default();
            for (span_index, span) in scope_spans.spans.into_iter().enumerate() {
                let at = |message: String| {
                    InvalidData(format!(
                        "resourceSpans[{resource_index}].scopeSpans[{scope_index}]\
                         .spans[{span_index}]: {message}"
                    ))
                };
                let trace_id = TraceId::from_bytes(&span.trace_id).ok_or_else(|| {
                    at(format!(
                        "traceId must be 16 bytes and not all zero, got {:?}",
                        hex::encode(&span.trace_id)
                    ))
                })?;
                let span_id = SpanId::from_bytes(&span.span_id).ok_or_else(|| {
                    at(format!(
                        "spanId must be 8 bytes and not all zero, got {:?}",
                        hex::encode(&span.span_id)
                    ))
                })?;
                let parent_span_id = match span.parent_span_id.as_slice() {
                    [] => None,
                    bytes if bytes.len() == 8 => SpanId::from_bytes(bytes),
                    bytes => {
                        return Err(at(format!(
                            "parentSpanId must be empty or 8 bytes, got {:?}",
                            hex::encode(bytes)
                        )));
                    }
                };
                let start = timestamp(span.start_time_unix_nano)
                    .ok_or_else(|| at("startTimeUnixNano must be set".to_owned()))?;
                let end = timestamp(span.end_time_unix_nano)
                    .filter(|end| *end >= start)
                    .ok_or_else(|| {
                        at("endTimeUnixNano must be set and not before the start".to_owned())
                    })?;
                let kind = SpanKind::from_i32(span.kind)
                    .ok_or_else(|| at(format!("unknown span kind {}", span.kind)))?;
                let (status_code, status_message) = match span.status {
                    None => (StatusCode::Unset, String::new()),
                    Some(status) => (
                        StatusCode::from_i32(status.code)
                            .ok_or_else(|| at(format!("unknown status code {}", status.code)))?,
                        cap_string(status.message),
                    ),
                };
                let mut events = Vec::with_capacity(span.events.len());
                for event in span.events {
                    events.push(Event {
                        // An event without a time is kept at the span start.
                        time_unix_nano: timestamp(event.time_unix_nano).unwrap_or(start),
                        name: cap_string(event.name),
                        attributes: attributes(event.attributes),
                    });
                }
                let mut links = Vec::with_capacity(span.links.len());
                for (link_index, link) in span.links.into_iter().enumerate() {
                    let (Some(trace_id), Some(span_id)) = (
                        TraceId::from_bytes(&link.trace_id),
                        SpanId::from_bytes(&link.span_id),
                    ) else {
                        return Err(at(format!(
                            "links[{link_index}] needs a 16-byte traceId and an 8-byte spanId"
                        )));
                    };
                    links.push(Link {
                        trace_id,
                        span_id,
                        trace_state: link.trace_state,
                        attributes: attributes(link.attributes),
                    });
                }
                spans.push(Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    service_name: service_name.clone(),
                    service_version: service_version.clone(),
                    operation: cap_name(span.name),
                    kind,
                    start_unix_nano: start,
                    duration_nano: end - start,
                    status_code,
                    status_message,
                    trace_state: span.trace_state,
                    flags: span.flags,
                    attributes: attributes(span.attributes),
                    events,
                    links,
                    resource: resource.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    Ok(spans)
}

/// Converts and validates every data point of an export, one
/// [`MetricSeries`] per (metric, attribute set).
///
/// Labels are the data point attributes as strings, plus `instance` from the
/// resource's `service.instance.id` (as Prometheus does), so that replicas of
/// one workload keep separate cumulative counters.
pub fn metrics(request: &ExportMetricsServiceRequest) -> Result<Vec<MetricSeries>, InvalidData> {
    let mut batch: Vec<MetricSeries> = Vec::new();
    let mut index_of: BTreeMap<(String, Labels), usize> = BTreeMap::new();
    for (resource_index, resource_metrics) in request.resource_metrics.iter().enumerate() {
        let resource = resource_attributes(resource_metrics.resource.clone());
        let instance = string_attribute(&resource, "service.instance.id").map(str::to_owned);
        for (scope_index, scope_metrics) in resource_metrics.scope_metrics.iter().enumerate() {
            for (metric_index, metric) in scope_metrics.metrics.iter().enumerate() {
                let at = |message: String| {
                    InvalidData(format!(
                        "resourceMetrics[{resource_index}].scopeMetrics[{scope_index}]\
                         .metrics[{metric_index}]: {message}"
                    ))
                };
                if metric.name.is_empty() {
                    return Err(at("name must not be empty".to_owned()));
                }
                let Some(data) = &metric.data else {
                    continue; // no data case: nothing to store
                };
                let (kind, temporality, monotonic, points) =
                    data_points(data).map_err(|InvalidData(message)| at(message))?;
                for (attributes, point) in points {
                    let mut labels = labels(attributes);
                    if let Some(instance) = &instance {
                        labels
                            .entry("instance".to_owned())
                            .or_insert_with(|| instance.clone());
                    }
                    let key = (metric.name.clone(), labels);
                    let index = *index_of.entry(key.clone()).or_insert_with(|| {
                        batch.push(MetricSeries {
                            name: key.0,
                            labels: key.1,
                            resource: resource.clone(),
                            kind,
                            temporality,
                            monotonic,
                            unit: metric.unit.clone(),
                            points: Vec::new(),
                        });
                        batch.len() - 1
                    });
                    batch[index].points.push(point);
                }
            }
        }
    }
    Ok(batch)
}

type DataPoints<'a> = (
    MetricKind,
    Temporality,
    bool,
    Vec<(&'a [KeyValue], MetricPoint)>,
);

fn data_points(data: &metric::Data) -> Result<DataPoints<'_>, InvalidData> {
    let temporality = |value: i32| {
        Temporality::from_i32(value)
            .ok_or_else(|| InvalidData(format!("unknown aggregation temporality {value}")))
    };
    let times = |index: usize, time: u64, start: u64| {
        let time = timestamp(time)
            .ok_or_else(|| InvalidData(format!("dataPoints[{index}]: timeUnixNano must be set")))?;
        let start = i64::try_from(start).map_err(|_| {
            InvalidData(format!(
                "dataPoints[{index}]: startTimeUnixNano out of range"
            ))
        })?;
        Ok::<_, InvalidData>((time, start))
    };
    let number = |index: usize, value: &Option<number_data_point::Value>| match value {
        Some(number_data_point::Value::AsDouble(value)) => Ok(*value),
        // Counters beyond 2^53 lose precision; they are stored as REAL.
        #[allow(clippy::cast_precision_loss)]
        Some(number_data_point::Value::AsInt(value)) => Ok(*value as f64),
        None => Err(InvalidData(format!("dataPoints[{index}] has no value"))),
    };
    let mut points = Vec::new();
    let (kind, temporality, monotonic) = match data {
        metric::Data::Gauge(gauge) => {
            for (index, point) in gauge.data_points.iter().enumerate() {
                let (time, start) = times(index, point.time_unix_nano, point.start_time_unix_nano)?;
                let value = PointValue::Number(number(index, &point.value)?);
                points.push((point.attributes.as_slice(), at(time, start, value)));
            }
            (MetricKind::Gauge, Temporality::Unspecified, false)
        }
        metric::Data::Sum(sum) => {
            for (index, point) in sum.data_points.iter().enumerate() {
                let (time, start) = times(index, point.time_unix_nano, point.start_time_unix_nano)?;
                let value = PointValue::Number(number(index, &point.value)?);
                points.push((point.attributes.as_slice(), at(time, start, value)));
            }
            let temporality = temporality(sum.aggregation_temporality)?;
            (MetricKind::Sum, temporality, sum.is_monotonic)
        }
        metric::Data::Histogram(histogram) => {
            for (index, point) in histogram.data_points.iter().enumerate() {
                let (time, start) = times(index, point.time_unix_nano, point.start_time_unix_nano)?;
                if !point.bucket_counts.is_empty()
                    && point.bucket_counts.len() != point.explicit_bounds.len() + 1
                {
                    return Err(InvalidData(format!(
                        "dataPoints[{index}]: {} bucket counts for {} explicit bounds \
                         (expected bounds + 1)",
                        point.bucket_counts.len(),
                        point.explicit_bounds.len()
                    )));
                }
                let value = PointValue::Histogram {
                    count: point.count,
                    sum: point.sum,
                    bucket_counts: point.bucket_counts.clone(),
                    explicit_bounds: point.explicit_bounds.clone(),
                };
                points.push((point.attributes.as_slice(), at(time, start, value)));
            }
            let temporality = temporality(histogram.aggregation_temporality)?;
            (MetricKind::Histogram, temporality, false)
        }
        metric::Data::ExponentialHistogram(histogram) => {
            for (index, point) in histogram.data_points.iter().enumerate() {
                let (time, start) = times(index, point.time_unix_nano, point.start_time_unix_nano)?;
                let value = PointValue::CountSum {
                    count: point.count,
                    sum: point.sum,
                };
                points.push((point.attributes.as_slice(), at(time, start, value)));
            }
            let temporality = temporality(histogram.aggregation_temporality)?;
            (MetricKind::ExponentialHistogram, temporality, false)
        }
        metric::Data::Summary(summary) => {
            for (index, point) in summary.data_points.iter().enumerate() {
                let (time, start) = times(index, point.time_unix_nano, point.start_time_unix_nano)?;
                let value = PointValue::CountSum {
                    count: point.count,
                    sum: Some(point.sum),
                };
                points.push((point.attributes.as_slice(), at(time, start, value)));
            }
            (MetricKind::Summary, Temporality::Cumulative, false)
        }
    };
    Ok((kind, temporality, monotonic, points))
}

fn at(time_unix_nano: i64, start_unix_nano: i64, value: PointValue) -> MetricPoint {
    MetricPoint {
        time_unix_nano,
        start_unix_nano,
        value,
    }
}

/// A set timestamp that fits the store's i64 nanoseconds.
fn timestamp(unix_nano: u64) -> Option<i64> {
    i64::try_from(unix_nano).ok().filter(|time| *time > 0)
}

fn resource_attributes(resource: Option<Resource>) -> Attributes {
    resource
        .map(|resource| attributes(resource.attributes))
        .unwrap_or_default()
}

fn string_attribute<'a>(attributes: &'a Attributes, key: &str) -> Option<&'a str> {
    attributes
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
}

/// OTLP attributes as a JSON object (a repeated key keeps its last value).
pub fn attributes(key_values: Vec<KeyValue>) -> Attributes {
    key_values
        .into_iter()
        .map(|key_value| (key_value.key, any_value(key_value.value)))
        .collect()
}

fn any_value(value: Option<AnyValue>) -> Value {
    use any_value::Value as V;
    match value.and_then(|value| value.value) {
        None | Some(V::StringValueStrindex(_)) => Value::Null,
        Some(V::StringValue(text)) => Value::String(cap_string(text)),
        Some(V::BoolValue(value)) => Value::Bool(value),
        Some(V::IntValue(value)) => Value::from(value),
        Some(V::DoubleValue(value)) => serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string())),
        Some(V::ArrayValue(array)) => Value::Array(
            array
                .values
                .into_iter()
                .map(|value| any_value(Some(value)))
                .collect(),
        ),
        Some(V::KvlistValue(list)) => Value::Object(attributes(list.values)),
        Some(V::BytesValue(bytes)) => Value::String(cap_string(base64(&bytes))),
    }
}

/// Data point attributes as label strings: strings as they are, other values
/// as their JSON text.
fn labels(key_values: &[KeyValue]) -> Labels {
    attributes(key_values.to_vec())
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text) => (key, text),
            other => (key, other.to_string()),
        })
        .collect()
}

/// Standard base64 with padding (OTLP/JSON's encoding of `bytes`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
