//! The admin listener: `/metrics` (Prometheus text), `/ready`, and
//! `/config_dump` (the snapshot in force, as JSON).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::Shared;
use crate::http::body::{ProxyBody, boxed};

pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<ProxyBody> {
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" | "/stats/prometheus" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.telemetry.metrics.render(),
        ),
        "/ready" | "/healthz/ready" => text(StatusCode::OK, "text/plain", "LIVE\n".into()),
        "/config_dump" => {
            let mut dump = shared.snapshot.load().dump();
            dump["clusterRuntime"] = shared.traffic.dump();
            let body = serde_json::to_string_pretty(&dump).unwrap_or_default();
            text(StatusCode::OK, "application/json", body)
        }
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(boxed(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
