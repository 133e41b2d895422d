//! Reading a request body for ingest: within a size cap, gunzipped when
//! `Content-Encoding: gzip`, the cap applying after decompression.

use std::io::Read;

use axum::body::Body;
use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::{HeaderMap, HeaderValue};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request larger than {0} bytes")]
    TooLarge(usize),
    #[error("unsupported Content-Encoding {0:?} (expected gzip or none)")]
    UnsupportedEncoding(String),
    #[error("cannot read the request body: {0}")]
    Unreadable(String),
    #[error("invalid gzip body: {0}")]
    BadGzip(String),
    #[error("decoder failed: {0}")]
    Internal(String),
}

/// Reads the whole body, gunzipping it if needed, at most `limit` bytes
/// (before and after decompression).
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let gzip = match headers.get(CONTENT_ENCODING).map(HeaderValue::to_str) {
        None => false,
        Some(Ok(value)) if value.eq_ignore_ascii_case("identity") => false,
        Some(Ok(value)) if value.eq_ignore_ascii_case("gzip") => true,
        Some(value) => {
            return Err(BodyError::UnsupportedEncoding(format!("{value:?}")));
        }
    };
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(raw) => raw,
        Err(error) if is_length_limit(&error) => return Err(BodyError::TooLarge(limit)),
        Err(error) => return Err(BodyError::Unreadable(error.to_string())),
    };
    if !gzip {
        return Ok(raw);
    }
    let inflated = tokio::task::spawn_blocking(move || {
        let mut inflated = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        flate2::read::GzDecoder::new(raw.as_ref())
            .take(cap)
            .read_to_end(&mut inflated)
            .map(|_| inflated)
    })
    .await;
    match inflated {
        Ok(Ok(inflated)) if inflated.len() > limit => Err(BodyError::TooLarge(limit)),
        Ok(Ok(inflated)) => Ok(Bytes::from(inflated)),
        Ok(Err(error)) => Err(BodyError::BadGzip(error.to_string())),
        Err(error) => Err(BodyError::Internal(error.to_string())),
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}
