//! Name, host, address and label syntax checks (`istio: pkg/config/validation/agent`,
//! `pkg/config/labels`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// DNS-1123 label as Istio checks it (`pkg/config/labels`): `[a-zA-Z0-9]([-a-zA-Z0-9]*
/// [a-zA-Z0-9])?`, at most 63 characters. Istio accepts uppercase, unlike Kubernetes.
pub(crate) fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A DNS-1123 label optionally prefixed by `*` or `*-`, or `*` alone.
fn is_wildcard_dns1123_label(value: &str) -> bool {
    if value == "*" {
        return true;
    }
    if value.len() > 63 {
        return false;
    }
    let rest = value
        .strip_prefix("*-")
        .or_else(|| value.strip_prefix('*'))
        .unwrap_or(value);
    is_dns1123_label(rest)
}

fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    if let Some(top) = parts.last()
        && !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {top:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully-qualified (or short) DNS name.
pub(crate) fn validate_fqdn(name: &str) -> Result<(), String> {
    check_dns1123_preconditions(name)?;
    validate_dns1123_labels(name)
}

/// A DNS name whose first label may be a wildcard (`*.example.com`, `*`).
pub(crate) fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => validate_dns1123_labels(rest),
        None => Ok(()),
    }
}

/// An IPv4 or IPv6 address.
pub(crate) fn is_ip(value: &str) -> bool {
    value.parse::<IpAddr>().is_ok()
}

/// An IP address or a CIDR block.
pub(crate) fn validate_ip_subnet(value: &str) -> Result<(), String> {
    match value.split_once('/') {
        Some((address, bits)) => {
            let Ok(address) = address.parse::<IpAddr>() else {
                return Err(format!("{value} is not a valid CIDR block"));
            };
            let max = if address.is_ipv4() { 32 } else { 128 };
            match bits.parse::<u8>() {
                Ok(bits) if bits <= max => Ok(()),
                _ => Err(format!("{value} is not a valid CIDR block")),
            }
        }
        None if is_ip(value) => Ok(()),
        None => Err(format!("{value} is not a valid IP")),
    }
}

/// A port number in 1..=65535.
pub(crate) fn is_valid_port(port: u32) -> bool {
    (1..=65535).contains(&port)
}

/// Istio's `ValidateDuration`: at least 1ms, millisecond precision.
pub(crate) fn check_duration(duration: Duration) -> Result<(), &'static str> {
    if duration < Duration::from_millis(1) {
        return Err("duration must be greater than 1ms");
    }
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return Err("only durations to ms precision are supported");
    }
    Ok(())
}

/// `^[-_A-Za-z0-9]+$`, Istio's header name rule.
pub(crate) fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `@request.auth.claims.<c>` / `@request.auth.claims[a][b]` (JWT claim routing keys).
pub(crate) fn is_jwt_claim_route(name: &str) -> bool {
    name.starts_with("@request.auth.claims.") || name.starts_with("@request.auth.claims[")
}

/// A header value Envoy accepts (no control characters except tab).
pub(crate) fn is_valid_header_value(value: &str) -> bool {
    !value
        .chars()
        .any(|c| ((c as u32) < 0x20 && c != '\t') || c as u32 == 0x7f)
}

fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.split('.').all(is_dns1123_label)
}

/// Kubernetes label syntax (`labels.Instance.Validate`): one message per bad key or value.
pub(crate) fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        let key_ok = match key.split_once('/') {
            Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_label_name(name),
            None => is_label_name(key),
        };
        if !key_ok {
            errors.push(format!("invalid label key: {key:?}"));
        }
        if !value.is_empty() && !is_label_name(value) {
            errors.push(format!("invalid label value: {value:?}"));
        }
    }
    errors
}

/// HTTP status codes Go's `http.StatusText` knows (Istio accepts those in `retryOn`).
pub(crate) fn is_known_http_status(code: u32) -> bool {
    matches!(
        code,
        100..=103
            | 200..=208
            | 226
            | 300..=305
            | 307
            | 308
            | 400..=418
            | 421..=426
            | 428
            | 429
            | 431
            | 451
            | 500..=508
            | 510
            | 511
    )
}

/// Envoy `x-envoy-retry-on` / `x-envoy-retry-grpc-on` policies Istio accepts.
pub(crate) const RETRY_ON_POLICIES: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names accepted for `fault.abort.grpcStatus`.
pub(crate) const GRPC_STATUSES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// HTTP methods accepted in `corsPolicy.allowMethods`.
pub(crate) const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// Port protocols Istio knows (case-insensitive).
pub(crate) fn is_known_protocol(protocol: &str) -> bool {
    const KNOWN: &[&str] = &[
        "tcp",
        "udp",
        "grpc",
        "grpc-web",
        "http",
        "http_proxy",
        "http2",
        "https",
        "tls",
        "mongo",
        "redis",
        "mysql",
    ];
    KNOWN.iter().any(|p| p.eq_ignore_ascii_case(protocol))
}

/// Whether a protocol is HTTP-like (`HTTP`, `HTTP2`, `GRPC`, `GRPC-Web`, `HTTP_PROXY`).
pub(crate) fn is_http_protocol(protocol: &str) -> bool {
    ["http", "http2", "grpc", "grpc-web", "http_proxy"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(protocol))
}

/// Whether a protocol is TLS-like (`HTTPS`, `TLS`).
pub(crate) fn is_tls_protocol(protocol: &str) -> bool {
    ["https", "tls"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(protocol))
}

/// Istio's `host.Name.Matches`: equal, or one wildcard covers the other.
pub(crate) fn hosts_overlap(a: &str, b: &str) -> bool {
    crate::mesh::host_covers(a, b) || crate::mesh::host_covers(b, a)
}

/// Gateway references: `ns/name`, or a (legacy) DNS name; `mesh` is valid.
pub(crate) fn validate_gateway_name(name: &str) -> Result<(), String> {
    match name.split_once('/') {
        Some((namespace, gateway)) => {
            if namespace.is_empty() || gateway.is_empty() {
                return Err("config namespace and gateway name cannot be empty".to_string());
            }
            if !is_dns1123_label(namespace) {
                return Err(format!("invalid value for namespace: {namespace:?}"));
            }
            if !is_dns1123_label(gateway) {
                return Err(format!("invalid value for gateway name: {gateway:?}"));
            }
            Ok(())
        }
        None => validate_fqdn(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_and_domains() {
        assert!(is_dns1123_label("v1"));
        assert!(is_dns1123_label("a-b"));
        assert!(is_dns1123_label("V1"));
        assert!(!is_dns1123_label("v_1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(""));
        assert!(validate_wildcard_domain("*.example.com").is_ok());
        assert!(validate_wildcard_domain("*").is_ok());
        assert!(validate_wildcard_domain("*x").is_ok());
        assert!(validate_wildcard_domain("reviews").is_ok());
        assert!(validate_wildcard_domain("a.*.com").is_err());
        assert!(validate_wildcard_domain("example.123").is_err());
        assert!(validate_wildcard_domain("").is_err());
        assert!(validate_fqdn("istio.io.").is_ok());
    }

    #[test]
    fn addresses_and_labels() {
        assert!(validate_ip_subnet("1.2.3.4/16").is_ok());
        assert!(validate_ip_subnet("001:db8::").is_ok());
        assert!(validate_ip_subnet("1.2.3.4/99").is_err());
        assert!(validate_ip_subnet("example.com").is_err());
        let mut labels = BTreeMap::new();
        labels.insert("app.kubernetes.io/name".to_string(), "web".to_string());
        labels.insert("version".to_string(), "".to_string());
        assert!(validate_labels(&labels).is_empty());
        labels.insert("bad key".to_string(), "*".to_string());
        assert_eq!(validate_labels(&labels).len(), 2);
    }
}
