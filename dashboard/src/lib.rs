//! The weft web dashboard: one HTML page, a stylesheet and hand-written ES
//! modules, compiled into the binary with `rust-embed`.
//!
//! There is no JS toolchain: the files in `dashboard/assets/` are served as
//! they are. The page reads only the collector's native JSON API
//! (`/api/weft/...`) on the same origin; this crate serves no data itself.
//!
//! **API Boundary:** [`router`] is the whole public surface. It is stateless;
//! the collector mounts it as the fallback of its HTTP router.
//!
//! **Invariant:** every response carries a strict `Content-Security-Policy`
//! (no inline scripts or styles, same-origin fetches only) and
//! `X-Content-Type-Options: nosniff`, so data rendered by the page can never
//! run as code even if escaping were missed somewhere.

use std::borrow::Cow;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, StatusCode};
use rust_embed::RustEmbed;

/// The policy sent with every dashboard response.
///
/// `img-src data:` allows small inline SVG data URIs in the stylesheet;
/// nothing else may come from anywhere but this origin.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// Assets are small and change with the binary, so browsers revalidate each
/// time (cheap thanks to the `ETag`) instead of caching a stale UI.
const CACHE_CONTROL_VALUE: &str = "no-cache";

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The dashboard: `GET /` (the page) and `GET /assets/{*path}` (its files).
///
/// Unknown assets answer 404. Every response, including errors, carries the
/// security headers.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .layer(middleware::map_response(security_headers))
}

async fn index(request_headers: HeaderMap) -> Response {
    serve("index.html", &request_headers)
}

async fn asset(Path(path): Path<String>, request_headers: HeaderMap) -> Response {
    serve(&path, &request_headers)
}

/// Serves one embedded file, answering `304 Not Modified` when the browser
/// already holds this exact version.
fn serve(path: &str, request_headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            "not found",
        )
            .into_response();
    };

    let etag = entity_tag(&file.metadata.sha256_hash());
    let cache_headers = [
        (CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL_VALUE)),
        (ETAG, etag.clone()),
    ];
    let already_cached = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    if already_cached {
        return (StatusCode::NOT_MODIFIED, cache_headers).into_response();
    }

    let content_type = HeaderValue::from_static(content_type(path));
    let body = match file.data {
        Cow::Borrowed(bytes) => Body::from(bytes),
        Cow::Owned(bytes) => Body::from(bytes),
    };
    (
        StatusCode::OK,
        [(CONTENT_TYPE, content_type)],
        cache_headers,
        body,
    )
        .into_response()
}

/// The media type of an asset, by extension.
///
/// Spelled out rather than guessed so that scripts are always
/// `text/javascript` (what `nosniff` and module loading require) and text
/// carries its charset.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A strong entity tag from the file's SHA-256 (the first 16 bytes suffice).
fn entity_tag(sha256: &[u8; 32]) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tag = Vec::with_capacity(34);
    tag.push(b'"');
    for byte in &sha256[..16] {
        tag.push(HEX[usize::from(byte >> 4)]);
        tag.push(HEX[usize::from(byte & 0x0f)]);
    }
    tag.push(b'"');
    HeaderValue::from_bytes(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str) -> Response {
        let request = Request::get(uri).body(Body::empty()).expect("request");
        router().oneshot(request).await.expect("infallible")
    }

    fn header(response: &Response, name: http::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    fn assert_security_headers(response: &Response) {
        assert_eq!(
            header(response, CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY_VALUE
        );
        assert_eq!(header(response, X_CONTENT_TYPE_OPTIONS), "nosniff");
    }

    #[tokio::test]
    async fn index_is_served_with_csp() {
        let response = get("/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_security_headers(&response);
        assert_eq!(header(&response, CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header(&response, CACHE_CONTROL), "no-cache");
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let html = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(html.contains(r#"<main id="view""#), "{html}");
        assert!(html.contains(r#"<script type="module" src="/assets/app.js">"#));
        // The CSP forbids inline code and styles; the page must not need them.
        assert!(!html.contains("<script>") && !html.contains("style="));
    }

    #[tokio::test]
    async fn javascript_is_served_as_text_javascript() {
        let response = get("/assets/app.js").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_security_headers(&response);
        assert_eq!(
            header(&response, CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header(&response, CACHE_CONTROL), "no-cache");
    }

    #[tokio::test]
    async fn stylesheet_is_served_as_css() {
        let response = get("/assets/weft.css").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, CONTENT_TYPE), "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn unknown_asset_is_404_with_security_headers() {
        for uri in [
            "/assets/nope.js",
            "/assets/../src/lib.rs",
            "/assets/%2e%2e/Cargo.toml",
            "/elsewhere",
        ] {
            let response = get(uri).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
            assert_security_headers(&response);
        }
    }

    #[tokio::test]
    async fn matching_etag_answers_not_modified() {
        let first = get("/assets/app.js").await;
        let etag = header(&first, ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        let request = Request::get("/assets/app.js")
            .header(IF_NONE_MATCH, &etag)
            .body(Body::empty())
            .expect("request");
        let second = router().oneshot(request).await.expect("infallible");
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_security_headers(&second);
    }

    /// Tidy check: data reaches the DOM only as text (`dom.js`), so no
    /// script may parse markup or code from strings.
    #[test]
    fn scripts_never_parse_markup_or_code_from_strings() {
        const FORBIDDEN: [&str; 6] = [
            ".innerHTML",
            ".outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ];
        for path in Assets::iter().filter(|path| path.ends_with(".js")) {
            let file = Assets::get(&path).expect("embedded");
            let text = String::from_utf8_lossy(&file.data);
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for pattern in FORBIDDEN {
                    assert!(!line.contains(pattern), "{path}: {pattern} in {line:?}");
                }
            }
        }
    }

    #[test]
    fn every_embedded_file_has_a_known_type() {
        for path in Assets::iter() {
            assert_ne!(
                content_type(&path),
                "application/octet-stream",
                "{path} needs an entry in content_type()"
            );
        }
    }
}
