//! OTLP/JSON decoding.
//!
//! `opentelemetry-proto`'s serde support follows the OTLP/JSON rules for hex
//! ids, 64-bit integers as strings or numbers, integer enums and unknown
//! fields, but deviates from proto3 JSON in ways a receiver must tolerate.
//! [`normalize`] rewrites the parsed JSON first:
//!
//! - `null` fields are removed (proto3 JSON: null means the default); the
//!   crate rejects them.
//! - 32-bit integers sent as strings (`"droppedAttributesCount": "3"`) and
//!   doubles sent as strings become numbers.
//! - enum names (`"kind": "SPAN_KIND_SERVER"`) become their numbers.
//! - `doubleValue` of `"NaN"`/`"Infinity"` becomes a `stringValue` (JSON has
//!   no such numbers).
//!
//! And one deviation hides errors: `Metric.data` is a flattened `Option`, so
//! a malformed `sum`/`gauge`/... decodes as *no data* and would be dropped
//! silently. [`metrics`] therefore takes the data member out of each metric
//! and decodes it strictly on its own.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric;
use serde_json::{Map, Value};

/// Fields of 32-bit integer type in the trace and metric protos.
const INT32_FIELDS: &[&str] = &[
    "droppedAttributesCount",
    "droppedEventsCount",
    "droppedLinksCount",
    "flags",
    "scale",
    "offset",
];
/// Fields of double type (plus `explicitBounds`, an array of doubles).
const DOUBLE_FIELDS: &[&str] = &["asDouble", "sum", "min", "max", "zeroThreshold"];
/// The data members of `Metric`.
const METRIC_DATA: &[&str] = &[
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// Why an OTLP/JSON body was rejected.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON: {0}")]
pub struct JsonError(String);

impl From<serde_json::Error> for JsonError {
    fn from(error: serde_json::Error) -> Self {
        Self(error.to_string())
    }
}

/// Decodes an `ExportTraceServiceRequest` from OTLP/JSON.
pub fn traces(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    let mut value = parse_object(body)?;
    normalize(&mut value);
    Ok(serde_json::from_value(value)?)
}

/// Decodes an `ExportMetricsServiceRequest` from OTLP/JSON, failing on a
/// malformed metric data member instead of dropping it.
pub fn metrics(body: &[u8]) -> Result<ExportMetricsServiceRequest, JsonError> {
    let mut value = parse_object(body)?;
    normalize(&mut value);
    let data = take_metric_data(&mut value)?;
    let mut request: ExportMetricsServiceRequest = serde_json::from_value(value)?;
    let mut data = data.into_iter();
    for resource_metrics in &mut request.resource_metrics {
        for scope_metrics in &mut resource_metrics.scope_metrics {
            for metric in &mut scope_metrics.metrics {
                if let Some(Some((key, value))) = data.next() {
                    metric.data = Some(metric_data(&key, value)?);
                }
            }
        }
    }
    Ok(request)
}

/// The body as JSON; an export request must be an object (serde would also
/// take `[]` as an empty struct).
fn parse_object(body: &[u8]) -> Result<Value, JsonError> {
    match serde_json::from_slice(body)? {
        value @ Value::Object(_) => Ok(value),
        _ => Err(JsonError("the request must be a JSON object".to_owned())),
    }
}

fn metric_data(key: &str, value: Value) -> Result<metric::Data, JsonError> {
    let invalid = |error: serde_json::Error| JsonError(format!("metric {key}: {error}"));
    Ok(match key {
        "gauge" => metric::Data::Gauge(serde_json::from_value(value).map_err(invalid)?),
        "sum" => metric::Data::Sum(serde_json::from_value(value).map_err(invalid)?),
        "histogram" => metric::Data::Histogram(serde_json::from_value(value).map_err(invalid)?),
        "exponentialHistogram" => {
            metric::Data::ExponentialHistogram(serde_json::from_value(value).map_err(invalid)?)
        }
        _ => metric::Data::Summary(serde_json::from_value(value).map_err(invalid)?),
    })
}

/// Removes the data member of every metric, in document order (one entry per
/// metric element, `None` for a metric without data).
fn take_metric_data(request: &mut Value) -> Result<Vec<Option<(String, Value)>>, JsonError> {
    let mut taken = Vec::new();
    let Some(Value::Array(resource_metrics)) = request.get_mut("resourceMetrics") else {
        return Ok(taken);
    };
    for resource in resource_metrics {
        let Some(Value::Array(scope_metrics)) = resource.get_mut("scopeMetrics") else {
            continue;
        };
        for scope in scope_metrics {
            let Some(Value::Array(metrics)) = scope.get_mut("metrics") else {
                continue;
            };
            for metric in metrics {
                let Value::Object(fields) = metric else {
                    taken.push(None);
                    continue;
                };
                let mut present = METRIC_DATA
                    .iter()
                    .filter_map(|key| fields.remove(*key).map(|value| (key.to_string(), value)));
                let data = present.next();
                if present.next().is_some() {
                    return Err(JsonError("a metric has more than one data member".into()));
                }
                taken.push(data);
            }
        }
    }
    Ok(taken)
}

/// Rewrites proto3-JSON forms the generated serde code rejects (see the
/// module docs).
pub fn normalize(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Object(fields) => {
            fields.retain(|_, field| !field.is_null());
            normalize_any_value(fields);
            for (key, field) in fields.iter_mut() {
                normalize_field(key, field);
                normalize(field);
            }
        }
        _ => {}
    }
}

fn normalize_field(key: &str, field: &mut Value) {
    let Value::String(text) = field else {
        if key == "explicitBounds"
            && let Value::Array(bounds) = field
        {
            for bound in bounds {
                normalize_field("sum", bound);
            }
        }
        return;
    };
    let replacement = match key {
        "kind" => enum_number(text, "SPAN_KIND_", SPAN_KINDS),
        "code" => enum_number(text, "STATUS_CODE_", STATUS_CODES),
        "aggregationTemporality" => enum_number(text, "AGGREGATION_TEMPORALITY_", TEMPORALITIES),
        key if INT32_FIELDS.contains(&key) => text.parse::<i64>().ok().map(Value::from),
        key if DOUBLE_FIELDS.contains(&key) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        _ => None,
    };
    if let Some(replacement) = replacement {
        *field = replacement;
    }
}

const SPAN_KINDS: &[&str] = &[
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];
const STATUS_CODES: &[&str] = &["UNSET", "OK", "ERROR"];
const TEMPORALITIES: &[&str] = &["UNSPECIFIED", "DELTA", "CUMULATIVE"];

/// An enum given by name (`SPAN_KIND_SERVER`) or as a numeric string.
fn enum_number(text: &str, prefix: &str, names: &[&str]) -> Option<Value> {
    if let Ok(number) = text.parse::<i64>() {
        return Some(Value::from(number));
    }
    let name = text.strip_prefix(prefix)?;
    names
        .iter()
        .position(|candidate| *candidate == name)
        .map(Value::from)
}

/// An `AnyValue` whose `doubleValue` is a string: numeric strings become
/// numbers, `NaN`/`Infinity` become a `stringValue`.
fn normalize_any_value(fields: &mut Map<String, Value>) {
    let Some(Value::String(text)) = fields.get("doubleValue") else {
        return;
    };
    match text
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Some(number) => {
            fields.insert("doubleValue".to_owned(), Value::Number(number));
        }
        None => {
            if let Some(text) = fields.remove("doubleValue") {
                fields.insert("stringValue".to_owned(), text);
            }
        }
    }
}
