//! Request parameters of the Prometheus API: the query string and the
//! form-encoded body merged (Prometheus' `r.Form`), times as RFC 3339 or
//! Unix seconds, durations as Prometheus durations or float seconds.

use super::PromError;

/// Decoded `key=value` pairs of the query string, then of the body.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses the query string and, when it is form-encoded (or untyped), the
    /// body.
    pub fn new(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Self {
        let mut pairs = Vec::new();
        if let Some(query) = query {
            pairs.extend(decode(query.as_bytes()));
        }
        let form_body = content_type.is_none_or(|value| {
            value
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if form_body && !body.is_empty() {
            pairs.extend(decode(body));
        }
        Self(pairs)
    }

    /// The first value of `key` (empty values count as absent).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, value)| name == key && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Every non-empty value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(name, value)| name == key && !value.is_empty())
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// `key` as a time in milliseconds, or `default`.
    pub fn time_or(&self, key: &str, default: i64) -> Result<i64, PromError> {
        match self.get(key) {
            Some(text) => parse_time(text).ok_or_else(|| {
                PromError::BadData(format!(
                    "invalid parameter \"{key}\": cannot parse \"{text}\" to a valid timestamp"
                ))
            }),
            None => Ok(default),
        }
    }

    /// `key` as a time in milliseconds, if present.
    pub fn time(&self, key: &str) -> Result<Option<i64>, PromError> {
        match self.get(key) {
            Some(_) => self.time_or(key, 0).map(Some),
            None => Ok(None),
        }
    }

    /// `limit` (0 or absent: no limit).
    pub fn limit(&self) -> Result<Option<usize>, PromError> {
        match self.get("limit") {
            None => Ok(None),
            Some(text) => match text.trim().parse::<i64>() {
                Ok(0) => Ok(None),
                Ok(limit) if limit > 0 => Ok(usize::try_from(limit).ok()),
                _ => Err(PromError::BadData(format!(
                    "invalid parameter \"limit\": cannot parse \"{text}\" to a valid limit"
                ))),
            },
        }
    }
}

/// Percent-decodes `application/x-www-form-urlencoded` pairs.
fn decode(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|byte| *byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |byte| *byte == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            (unescape(key), unescape(value))
        })
        .collect()
}

fn unescape(input: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        match input[index] {
            b'+' => bytes.push(b' '),
            b'%' if index + 2 < input.len() => {
                match (hex(input[index + 1]), hex(input[index + 2])) {
                    (Some(high), Some(low)) => {
                        bytes.push(high * 16 + low);
                        index += 2;
                    }
                    _ => bytes.push(b'%'),
                }
            }
            other => bytes.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Prometheus' `parseTime`: Unix seconds (float, millisecond precision) or
/// RFC 3339; in milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return None;
        }
        let whole = seconds.trunc();
        let millis = ((seconds - whole) * 1000.0).round();
        let total = whole * 1000.0 + millis;
        if total.abs() > 9.2e15 {
            return None;
        }
        return Some(total as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.timestamp_millis())
}

/// Prometheus' `parseDuration`: float seconds or a duration like `1m30s`;
/// in milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        let millis = (seconds * 1000.0).round();
        if !millis.is_finite() || millis.abs() > 9.2e15 {
            return None;
        }
        return Some(millis as i64);
    }
    promql_parser::util::parse_duration(text)
        .ok()
        .and_then(|duration| i64::try_from(duration.as_millis()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_merges_query_and_body() {
        let form = Form::new(
            Some("query=1%2B1&time=4"),
            Some("application/x-www-form-urlencoded"),
            b"match[]=up&match%5B%5D=a+b",
        );
        assert_eq!(form.get("query"), Some("1+1"));
        assert_eq!(form.all("match[]"), vec!["up", "a b"]);
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("4"), Some(4000));
        assert_eq!(parse_time("1700000000.1234"), Some(1_700_000_000_123));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Some(1_435_781_451_781)
        );
        assert_eq!(parse_time("nope"), None);
        assert_eq!(parse_duration("15s"), Some(15_000));
        assert_eq!(parse_duration("1m30s"), Some(90_000));
        assert_eq!(parse_duration("0.5"), Some(500));
    }
}
