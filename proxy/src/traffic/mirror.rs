//! Mirroring (`mirror` + `mirrorPercentage`, `mirrors[]`): a fire-and-forget copy of the
//! request on its own task; its response is discarded and it never delays or fails the
//! original (istio-model.md §1.5). The copy's Host gets Envoy's `-shadow` suffix and its trace
//! context is marked not sampled. Only replayable (complete, ≤ 64 KiB) bodies are mirrored,
//! and at most [`MAX_MIRRORS_IN_FLIGHT`] copies are in flight per proxy.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version, header};
use http_body_util::{BodyExt, Full};

use super::{ClusterState, Traffic};
use crate::http::body::boxed;
use crate::trace::{Sampling, SpanContext};

/// Mirrored requests in flight per proxy; past it a copy is skipped.
pub const MAX_MIRRORS_IN_FLIGHT: usize = 1024;

/// The request to copy.
pub struct Copy<'a> {
    pub method: &'a Method,
    pub path_and_query: &'a http::uri::PathAndQuery,
    pub host: &'a HeaderValue,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub context: &'a SpanContext,
}

/// `host[:port]` → `host-shadow[:port]` (Envoy's `shadowAppendedHost`).
pub fn shadow_host(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{host}-shadow"),
    }
}

/// Sends a copy to `cluster` in the background.
pub fn spawn(traffic: &Arc<Traffic>, cluster: Arc<ClusterState>, copy: Copy<'_>) {
    let in_flight = traffic.mirrors_in_flight.fetch_add(1, Ordering::Relaxed);
    if in_flight >= MAX_MIRRORS_IN_FLIGHT {
        traffic.mirrors_in_flight.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(cluster = %cluster.name, "mirror skipped: too many in flight");
        return;
    }
    let Some(index) = cluster.pick(&[], None) else {
        traffic.mirrors_in_flight.fetch_sub(1, Ordering::Relaxed);
        return;
    };
    let authority = cluster.endpoints[index].endpoint.authority_str();
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(copy.path_and_query.clone())
        .build()
    else {
        traffic.mirrors_in_flight.fetch_sub(1, Ordering::Relaxed);
        return;
    };
    let mut headers = copy.headers.clone();
    SpanContext {
        sampling: Sampling::Deny,
        ..copy.context.clone()
    }
    .inject(&mut headers);
    let host = copy.host.to_str().map(shadow_host).ok();
    if let Some(host) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
        headers.insert(header::HOST, host);
    }
    let mut request = Request::new(boxed(Full::new(copy.body.clone())));
    *request.method_mut() = copy.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    let traffic = traffic.clone();
    tokio::spawn(async move {
        let guard = cluster.start_try(index);
        match cluster.pool.client.request(request).await {
            Ok(response) => {
                // Drain so the connection can be reused.
                let _ = response.into_body().collect().await;
            }
            Err(error) => tracing::debug!(%error, cluster = %cluster.name, "mirror failed"),
        }
        drop(guard);
        traffic.mirrors_in_flight.fetch_sub(1, Ordering::Relaxed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_suffix_goes_before_the_port() {
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_host("reviews.default"), "reviews.default-shadow");
    }
}
