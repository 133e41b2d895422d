//! Optional protection of the HTTP listener (dashboard, native, Jaeger,
//! Prometheus and Zipkin APIs) with a bearer token or HTTP basic auth
//! (`--auth`). Off by default. `/healthz` and `/ready` stay open so that
//! probes need no secret.
//!
//! A request without valid credentials answers `401` with a
//! `WWW-Authenticate` challenge. Credentials are compared in constant time
//! (for equal lengths; the length itself is not secret-dependent work).
//!
//! The `--auth` value:
//! - `bearer:TOKEN`: `Authorization: Bearer TOKEN`;
//! - `basic:USER:PASSWORD`: `Authorization: Basic base64(USER:PASSWORD)`
//!   (what a browser sends after its login prompt);
//! - `bearer-file:PATH` / `basic-file:PATH`: the same, the secret (`TOKEN`
//!   or `USER:PASSWORD`) read from the first line of a file, so that it does
//!   not show in the process list.

use std::fmt;
use std::str::FromStr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

/// Paths answered without credentials.
const OPEN_PATHS: [&str; 2] = ["/healthz", "/ready"];

/// Who may use the HTTP listener.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic base64(<user>:<password>)`.
    Basic { user: String, password: String },
}

/// A bad `--auth` value.
#[derive(Debug, thiserror::Error)]
pub enum AuthParseError {
    #[error(
        "--auth must be bearer:TOKEN, basic:USER:PASSWORD, bearer-file:PATH or basic-file:PATH"
    )]
    Form,
    #[error("the {0} is empty")]
    Empty(&'static str),
    #[error("reading {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl Auth {
    /// The exact `Authorization` header value that grants access.
    fn expected_header(&self) -> String {
        match self {
            Self::Bearer(token) => format!("Bearer {token}"),
            Self::Basic { user, password } => {
                format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
            }
        }
    }

    fn challenge(&self) -> &'static str {
        match self {
            Self::Bearer(_) => "Bearer realm=\"weft\"",
            Self::Basic { .. } => "Basic realm=\"weft\", charset=\"UTF-8\"",
        }
    }

    fn basic(secret: &str) -> Result<Self, AuthParseError> {
        let (user, password) = secret.split_once(':').ok_or(AuthParseError::Form)?;
        if user.is_empty() {
            return Err(AuthParseError::Empty("user"));
        }
        if password.is_empty() {
            return Err(AuthParseError::Empty("password"));
        }
        Ok(Self::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    fn bearer(token: &str) -> Result<Self, AuthParseError> {
        if token.is_empty() {
            return Err(AuthParseError::Empty("token"));
        }
        Ok(Self::Bearer(token.to_owned()))
    }
}

fn first_line(path: &str) -> Result<String, AuthParseError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthParseError::File {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

impl FromStr for Auth {
    type Err = AuthParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = value.split_once(':').ok_or(AuthParseError::Form)?;
        match scheme {
            "bearer" => Self::bearer(rest),
            "basic" => Self::basic(rest),
            "bearer-file" => Self::bearer(&first_line(rest)?),
            "basic-file" => Self::basic(&first_line(rest)?),
            _ => Err(AuthParseError::Form),
        }
    }
}

/// Never prints the secret.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Auth::Bearer(<redacted>)"),
            Self::Basic { user, .. } => write!(f, "Auth::Basic({user}, <redacted>)"),
        }
    }
}

/// The middleware state: the expected header, computed once.
#[derive(Clone)]
pub struct Guard {
    expected: std::sync::Arc<[u8]>,
    challenge: &'static str,
}

impl Guard {
    pub fn new(auth: &Auth) -> Self {
        Self {
            expected: auth.expected_header().into_bytes().into(),
            challenge: auth.challenge(),
        }
    }
}

/// Lets a request through when it is for a health path or carries the
/// expected `Authorization` header; 401 with a challenge otherwise.
pub async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let granted = request
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .any(|value| constant_time_eq(value.as_bytes(), &guard.expected));
    if granted {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        Body::from(r#"{"error":"authentication required"}"#),
    )
        .into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(guard.challenge));
    response
}

/// Compares in time that depends only on the lengths, never on where the
/// first difference is.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (index, expected_byte) in expected.iter().enumerate() {
        let given_byte = given.get(index).copied().unwrap_or(0);
        difference |= given_byte ^ expected_byte;
    }
    std::hint::black_box(difference) == 0
}

/// Standard base64 with padding (RFC 4648 §4), as browsers send Basic
/// credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (index, symbol) in symbols.iter().enumerate() {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[*symbol as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(auth: &Auth) -> Router {
        Router::new()
            .route("/api/weft/services", get(|| async { "data" }))
            .route("/healthz", get(|| async { "ok" }))
            .fallback(|| async { "page" })
            .layer(axum::middleware::from_fn_with_state(
                Guard::new(auth),
                require,
            ))
    }

    async fn status(auth: &Auth, path: &str, header: Option<&str>) -> (StatusCode, String) {
        let mut request = http::Request::get(path);
        if let Some(header) = header {
            request = request.header(AUTHORIZATION, header);
        }
        let response = app(auth)
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (response.status(), challenge)
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn parses_every_form_and_rejects_the_rest() {
        assert_eq!(
            "bearer:s3cret".parse::<Auth>().expect("bearer"),
            Auth::Bearer("s3cret".into())
        );
        assert_eq!(
            "basic:ann:pa:ss".parse::<Auth>().expect("basic"),
            Auth::Basic {
                user: "ann".into(),
                password: "pa:ss".into()
            }
        );
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        assert_eq!(
            format!("bearer-file:{}", file.display())
                .parse::<Auth>()
                .expect("file"),
            Auth::Bearer("from-file".into())
        );
        for bad in [
            "",
            "bearer:",
            "basic:user",
            "basic::pw",
            "token:x",
            "bearer-file:/nope/x",
        ] {
            assert!(bad.parse::<Auth>().is_err(), "{bad}");
        }
        assert!(!format!("{:?}", Auth::Bearer("s3cret".into())).contains("s3cret"));
    }

    #[tokio::test]
    async fn bearer_guards_everything_but_health() {
        let auth = Auth::Bearer("t0ken".into());
        let (code, challenge) = status(&auth, "/api/weft/services", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge, "Bearer realm=\"weft\"");
        assert_eq!(status(&auth, "/", None).await.0, StatusCode::UNAUTHORIZED);
        for wrong in [
            "Bearer t0ke",
            "Bearer t0ken2",
            "bearer t0ken",
            "Basic t0ken",
        ] {
            let (code, _) = status(&auth, "/api/weft/services", Some(wrong)).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{wrong}");
        }
        let (code, _) = status(&auth, "/api/weft/services", Some("Bearer t0ken")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(status(&auth, "/healthz", None).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn basic_accepts_what_a_browser_sends() {
        let auth = Auth::Basic {
            user: "admin".into(),
            password: "open sesame".into(),
        };
        let (code, challenge) = status(&auth, "/", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(challenge.starts_with("Basic realm=\"weft\""));
        let header = format!("Basic {}", base64(b"admin:open sesame"));
        assert_eq!(status(&auth, "/", Some(&header)).await.0, StatusCode::OK);
        let wrong = format!("Basic {}", base64(b"admin:open sesamE"));
        assert_eq!(
            status(&auth, "/", Some(&wrong)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
    }
}
