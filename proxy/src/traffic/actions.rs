//! Route actions answered by the proxy itself (redirect, direct response, CORS preflight)
//! and request rewrites (istio-model.md §1.4–1.6).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use weft_config::CompiledRoute;
use weft_config::model::{HttpDirectResponse, HttpRedirect, RedirectPortSelection};
use weft_config::snapshot::policy::CorsPolicy;

/// What the request looked like, for redirects.
pub struct RequestParts<'a> {
    pub scheme: &'a str,
    /// Host without port.
    pub host: &'a str,
    pub port: u16,
    /// Whether the client wrote an explicit port.
    pub explicit_port: bool,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// The `Location` of a redirect (istio-model.md §1.4, `ApplyRedirect`): `uri` replaces the
/// whole path (the query is kept unless the new uri has one), `authority` the host, `scheme`
/// the scheme; the port is `port`, or derived (`FROM_PROTOCOL_DEFAULT` / `FROM_REQUEST_PORT`),
/// else the request's explicit port unless the scheme changes; the scheme's default port is
/// omitted.
pub fn redirect_location(redirect: &HttpRedirect, request: &RequestParts<'_>) -> String {
    let scheme = redirect.scheme.as_deref().unwrap_or(request.scheme);
    let (host, authority_port) = match redirect.authority.as_deref() {
        Some(authority) => split_authority(authority),
        None => (request.host, None),
    };
    let port = match (redirect.port, redirect.derive_port) {
        (Some(port), _) => u16::try_from(port).ok(),
        (None, Some(RedirectPortSelection::FromProtocolDefault)) => Some(default_port(scheme)),
        (None, Some(RedirectPortSelection::FromRequestPort)) => Some(request.port),
        (None, None) => authority_port.or_else(|| {
            let same_scheme = scheme.eq_ignore_ascii_case(request.scheme);
            (request.explicit_port && same_scheme).then_some(request.port)
        }),
    };
    let mut location = String::with_capacity(64);
    location.push_str(scheme);
    location.push_str("://");
    location.push_str(host);
    if let Some(port) = port.filter(|p| *p != default_port(scheme)) {
        location.push(':');
        location.push_str(&port.to_string());
    }
    match redirect.uri.as_deref() {
        Some(uri) => {
            location.push_str(uri);
            if !uri.contains('?')
                && let Some(query) = request.query
            {
                location.push('?');
                location.push_str(query);
            }
        }
        None => {
            location.push_str(request.path);
            if let Some(query) = request.query {
                location.push('?');
                location.push_str(query);
            }
        }
    }
    location
}

fn split_authority(authority: &str) -> (&str, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            match port.parse() {
                Ok(port) => (host, Some(port)),
                Err(_) => (authority, None),
            }
        }
        _ => (authority, None),
    }
}

/// The redirect response.
pub fn redirect_response(redirect: &HttpRedirect, location: &str) -> Response<Full<Bytes>> {
    let status = redirect
        .redirect_code
        .and_then(|code| StatusCode::from_u16(code as u16).ok())
        .unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A `directResponse` answer: `body.string` as text, `body.bytes` base64-decoded.
pub fn direct_response(direct: &HttpDirectResponse) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(direct.status as u16).unwrap_or(StatusCode::OK);
    let body = direct
        .body
        .as_ref()
        .map(|body| match (&body.string, &body.bytes) {
            (Some(text), _) => Bytes::from(text.clone()),
            (None, Some(encoded)) => Bytes::from(base64_decode(encoded)),
            (None, None) => Bytes::new(),
        });
    let has_body = body.as_ref().is_some_and(|b| !b.is_empty());
    let mut response = Response::new(Full::new(body.unwrap_or_default()));
    *response.status_mut() = status;
    if has_body {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// Standard base64 (padding optional); invalid characters are skipped.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for sextet in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// The rewritten path of `rewrite.uri` / `uriRegexRewrite` (`None`: unchanged). `rewrite.uri`
/// replaces the matched prefix when the route matched by prefix, else the whole path (Envoy
/// `prefix_rewrite`, istio-model.md §1.5).
pub fn rewritten_path(route: &CompiledRoute, path: &str) -> Option<String> {
    let rewrite = route.rewrite.as_ref()?;
    if let Some(uri) = &rewrite.uri {
        return Some(match route.matched_prefix() {
            Some(prefix) if path.len() >= prefix.len() => {
                let mut out = uri.clone();
                out.push_str(&path[prefix.len()..]);
                out
            }
            _ => uri.clone(),
        });
    }
    let regex = rewrite.uri_regex.as_ref()?;
    let replacement = envoy_to_regex_replacement(&regex.rewrite);
    Some(
        regex
            .regex
            .replace_all(path, replacement.as_str())
            .into_owned(),
    )
}

/// RE2/Envoy substitutions use `\1`; the regex crate uses `${1}`.
fn envoy_to_regex_replacement(rewrite: &str) -> String {
    let mut out = String::with_capacity(rewrite.len() + 8);
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight whose origin is allowed.
pub fn preflight_response(cors: &CorsPolicy, origin: &HeaderValue) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    let mut put = |name, value: &Option<String>| {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    };
    put(header::ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods);
    put(header::ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers);
    put(header::ACCESS_CONTROL_MAX_AGE, &cors.max_age);
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// CORS headers on an actual (non-preflight) response whose request origin is allowed.
pub fn decorate_response(cors: &CorsPolicy, origin: &HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(value) = cors
        .expose_headers
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(path: &'a str, query: Option<&'a str>, port: Option<u16>) -> RequestParts<'a> {
        RequestParts {
            scheme: "http",
            host: "shop",
            port: port.unwrap_or(80),
            explicit_port: port.is_some(),
            path,
            query,
        }
    }

    #[test]
    fn redirect_locations() {
        let r =
            |uri: Option<&str>, authority: Option<&str>, scheme: Option<&str>, port| HttpRedirect {
                uri: uri.map(Into::into),
                authority: authority.map(Into::into),
                scheme: scheme.map(Into::into),
                port,
                ..Default::default()
            };
        let cases = [
            (
                r(Some("/new"), None, None, None),
                request("/old", Some("a=1"), None),
                "http://shop/new?a=1",
            ),
            (
                r(None, Some("other"), None, None),
                request("/p", None, Some(8080)),
                "http://other:8080/p",
            ),
            (
                r(None, None, Some("https"), None),
                request("/p", None, Some(80)),
                "https://shop/p",
            ),
            (
                r(None, None, Some("https"), Some(8443)),
                request("/p", None, None),
                "https://shop:8443/p",
            ),
            (
                r(None, Some("x:9000"), None, None),
                request("/", None, None),
                "http://x:9000/",
            ),
            (
                r(None, None, None, Some(80)),
                request("/", None, Some(8080)),
                "http://shop/",
            ),
        ];
        for (redirect, request, expected) in cases {
            assert_eq!(redirect_location(&redirect, &request), expected);
        }
        let derived = HttpRedirect {
            scheme: Some("https".into()),
            derive_port: Some(RedirectPortSelection::FromRequestPort),
            ..Default::default()
        };
        assert_eq!(
            redirect_location(&derived, &request("/", None, Some(8080))),
            "https://shop:8080/"
        );
        assert_eq!(
            redirect_response(&HttpRedirect::default(), "http://x/").status(),
            301
        );
    }

    #[test]
    fn base64_and_regex_replacements() {
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
        assert_eq!(envoy_to_regex_replacement(r"/v\1/\2$"), "/v${1}/${2}$$");
    }
}
