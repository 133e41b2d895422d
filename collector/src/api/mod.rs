//! The HTTP query surface: native API (`/api/weft/*`, for the dashboard),
//! Jaeger v1 query API (`/api/services`, `/api/traces`, ..., for Grafana),
//! health, and the dashboard itself as the fallback.

pub mod auth;
mod jaeger;
mod jaeger_v3;
mod native;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;

use crate::store::{Store, StoreError};

/// The router of the HTTP listener.
pub fn router(store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/ready", get(health))
        .merge(native::routes())
        .merge(jaeger::routes())
        .merge(crate::prom::routes())
        .with_state(store)
        // The dashboard (`/`, `/assets/*`) answers everything else.
        .fallback_service(weft_dashboard::router())
}

/// 200 when the store answers a query, 503 otherwise.
async fn health(State(store): State<Arc<dyn Store>>) -> Response {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(error) => {
            tracing::warn!(%error, "health check: store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// A failed API request. Bad input answers 4xx with a message; store
/// failures answer 500 with a generic message and are logged here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the client.
    fn public_message(&self) -> String {
        match self {
            Self::Store(error) => {
                tracing::error!(%error, "query failed");
                "internal error".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// The native API's error body: `{"error": "..."}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.public_message() });
        (status, Json(body)).into_response()
    }
}

/// Query-string parameters, repeated keys kept (Jaeger repeats `tag`,
/// `tags` and `traceID`). Parsing never fails; conversions report
/// [`ApiError::BadRequest`].
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The first non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, value)| name == key && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// All non-empty values of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(name, value)| name == key && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// `key` as an integer, if present.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|value| {
                value.trim().parse::<i64>().map_err(|_| {
                    ApiError::BadRequest(format!("parameter {key}={value:?} is not an integer"))
                })
            })
            .transpose()
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nano() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `value * factor`, or a 400 when it overflows.
pub fn scale(key: &str, value: i64, factor: i64) -> Result<i64, ApiError> {
    value
        .checked_mul(factor)
        .ok_or_else(|| ApiError::BadRequest(format!("parameter {key}={value} is out of range")))
}
