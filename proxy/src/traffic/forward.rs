//! Forwarding a routed request to a cluster: circuit breakers, endpoint picking, the route
//! timeout, per-try timeouts and retries with Envoy's conditions and jittered backoff, outlier
//! detection feedback — and the telemetry of it all: one CLIENT span per try (siblings, each
//! with `weft.retry.attempt`; a retried try carries a `retry` event), and the request counted
//! **once** with the final code and flags (`URX` when retries were exhausted, `UT`, `UF`,
//! `UC`, `UH`, `UO`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use weft_config::snapshot::policy::RetryPolicy;

use super::ClusterState;
use super::outlier::TryResult;
use super::pool::{self, Admission};
use crate::http::body::{BoxError, Observed, ProxyBody, boxed, synthetic};
use crate::http::forward::strip_hop_by_hop;
use crate::telemetry::{Exchange, ResponseFlags, SpanDraft};
use crate::trace::{Sampler, SpanContext};

/// Envoy's default per-request buffer: bodies up to this size are kept for retries and
/// mirrors; larger (or streamed, length-less) bodies are forwarded as they come, once.
pub const REPLAY_BUFFER_LIMIT: u64 = 64 * 1024;

/// A request body, kept whole when it can be replayed.
pub enum RequestBody {
    /// Complete and small enough: every try (and mirror) gets a copy.
    Replayable(Bytes),
    /// Streamed or large: one try only.
    Streaming(Option<ProxyBody>),
}

impl RequestBody {
    /// Buffers `body` when it is known to be complete and small (`Content-Length` ≤ the limit,
    /// or empty). A body without a length may be a long-lived stream (gRPC, SSE uploads) that
    /// must not be held back, so it is streamed.
    pub async fn read(body: ProxyBody) -> Result<RequestBody, BoxError> {
        if body.is_end_stream() {
            return Ok(RequestBody::Replayable(Bytes::new()));
        }
        match body.size_hint().exact() {
            Some(length) if length <= REPLAY_BUFFER_LIMIT => {
                let mut buffer = BytesMut::with_capacity(length as usize);
                let mut body = body;
                while let Some(frame) = body.frame().await {
                    let frame = frame?;
                    match frame.into_data() {
                        Ok(data) => buffer.extend_from_slice(&data),
                        // Trailers after a sized body: nothing to replay them with.
                        Err(_) => break,
                    }
                }
                Ok(RequestBody::Replayable(buffer.freeze()))
            }
            _ => Ok(RequestBody::Streaming(Some(body))),
        }
    }

    pub fn is_replayable(&self) -> bool {
        matches!(self, RequestBody::Replayable(_))
    }

    /// The bytes, when replayable (mirrors).
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            RequestBody::Replayable(bytes) => Some(bytes),
            RequestBody::Streaming(_) => None,
        }
    }

    fn take(&mut self) -> ProxyBody {
        match self {
            RequestBody::Replayable(bytes) => boxed(Full::new(bytes.clone())),
            RequestBody::Streaming(body) => body
                .take()
                .unwrap_or_else(|| boxed(Full::new(Bytes::new()))),
        }
    }
}

/// The request as it goes upstream (after rewrites and header operations).
pub struct Upstream {
    pub method: Method,
    /// Path and query.
    pub path_and_query: http::uri::PathAndQuery,
    /// Host header for the upstream.
    pub host: HeaderValue,
    pub headers: HeaderMap,
    pub body: RequestBody,
}

/// What decides each try's transport (plaintext or mTLS, istio-model §2.7).
pub struct MeshRoute<'a> {
    pub(crate) shared: &'a crate::Shared,
    pub(crate) snapshot: &'a weft_config::Snapshot,
    pub(crate) cluster: &'a weft_config::Cluster,
}

impl MeshRoute<'_> {
    /// The transport to `endpoint`: DestinationRule `tls.mode`, or auto mTLS.
    fn transport(&self, endpoint: &weft_config::Endpoint) -> crate::tls::Upstream {
        crate::tls::Upstream::decide(
            self.snapshot,
            self.cluster,
            endpoint,
            self.shared
                .mesh
                .as_ref()
                .map(|m| m.identity.trust_domain.as_str()),
        )
    }
}

/// Everything a routed forward needs.
pub struct Forward<'a> {
    pub mesh: MeshRoute<'a>,
    pub cluster: Arc<ClusterState>,
    pub policy: &'a RetryPolicy,
    pub timeout: Option<Duration>,
    /// Hash of the request for a consistent-hash cluster.
    pub hash: Option<u64>,
    /// The context of the first try's span; later tries get siblings.
    pub context: SpanContext,
    /// Flags already set (a delay fault: `DI`).
    pub flags: ResponseFlags,
}

enum TryOutcome {
    Response(Response<hyper::body::Incoming>),
    ConnectFailure,
    Reset,
    PerTryTimeout,
    RouteTimeout,
}

/// Sends `upstream` to the cluster, retrying per policy, and returns the response with the
/// exchange attached to its body (metrics and the last span are recorded when it ends).
pub async fn forward(
    forward: Forward<'_>,
    mut upstream: Upstream,
    mut exchange: Exchange,
) -> (Response<ProxyBody>, Option<usize>) {
    let Forward {
        mesh,
        cluster,
        policy,
        timeout,
        hash,
        context,
        flags: base,
    } = forward;
    let started = Instant::now();
    let deadline = timeout.map(|t| started + t);
    let ignore_previous = policy.ignore_previous_hosts && !cluster.balancer.is_consistent_hash();
    let max_attempts = if upstream.body.is_replayable() {
        policy.attempts
    } else {
        0
    };
    let mut tried = [usize::MAX; 8];
    let mut tries = 0usize;
    let mut attempt: u32 = 0;
    let mut context = context;
    loop {
        // Circuit breakers: past a limit the request fails at once.
        let admission = match pool::admit(&cluster).await {
            Ok(admission) => admission,
            Err(_) => {
                exchange.set_outcome(503, base | ResponseFlags::UO);
                exchange.set_error("upstream overflow");
                let response = synthetic(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream connect error or disconnect/reset before headers. reset reason: overflow",
                );
                return (finish(response, exchange), None);
            }
        };
        let previous: &[usize] = if ignore_previous {
            &tried[..tries.min(tried.len())]
        } else {
            &[]
        };
        let Some(index) = cluster.pick(previous, hash) else {
            exchange.set_outcome(503, base | ResponseFlags::UH);
            exchange.set_error("no healthy upstream");
            let response = synthetic(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
            return (finish(response, exchange), None);
        };
        if tries < tried.len() {
            tried[tries] = index;
        }
        tries += 1;
        let endpoint = &cluster.endpoints[index];
        exchange.labels.destination = endpoint.peer.clone();
        if let Some(span) = exchange.span_mut() {
            endpoint_attributes(span, &cluster, index, attempt);
        }
        let guard = cluster.start_try(index);
        let last_possible = attempt >= max_attempts;
        let request = build_request(
            &mut upstream,
            endpoint.endpoint.authority_str(),
            &context,
            last_possible,
        );
        let request = match request {
            Some(request) => request,
            None => {
                exchange.set_outcome(503, base | ResponseFlags::UF);
                exchange.set_error("invalid upstream address");
                let response = synthetic(StatusCode::SERVICE_UNAVAILABLE, "");
                return (finish(response, exchange), None);
            }
        };
        let try_deadline = match (policy.per_try_timeout, deadline) {
            (Some(per_try), Some(deadline)) => Some((Instant::now() + per_try).min(deadline)),
            (Some(per_try), None) => Some(Instant::now() + per_try),
            (None, deadline) => deadline,
        };
        let transport = mesh.transport(&endpoint.endpoint);
        let outcome = send(&cluster, &mesh, &transport, request, try_deadline, deadline).await;
        let (result, retriable) = match &outcome {
            TryOutcome::Response(response) => {
                let code = response.status().as_u16();
                let grpc = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let retriable =
                    policy.retries_status(code) || grpc.is_some_and(|g| policy.retries_grpc(g));
                (TryResult::Status(code), retriable)
            }
            TryOutcome::ConnectFailure => {
                (TryResult::ConnectFailure, policy.retries_connect_failure())
            }
            TryOutcome::Reset => (TryResult::Reset, policy.retries_reset()),
            TryOutcome::PerTryTimeout => (TryResult::Timeout, policy.retries_per_try_timeout()),
            TryOutcome::RouteTimeout => (TryResult::Timeout, false),
        };
        cluster.record(index, result);
        let budget_left = attempt < max_attempts;
        if retriable && budget_left && cluster.pool.try_retry() {
            let (code, flags, error, reason) = describe(&outcome);
            // The retried try's response is discarded; its connection goes back or closes.
            drop(outcome);
            drop(guard);
            drop(admission);
            attempt += 1;
            let next_context = SpanContext {
                parent_span_id: context.parent_span_id.or(Some(context.span_id)),
                ..Sampler::child_of(&context)
            };
            let next = exchange.span_mut().map(|span| span.next_try(&next_context));
            exchange.retry_with(code, flags, error, reason, next);
            context = next_context;
            let backoff = backoff(policy.backoff, attempt);
            let wake = Instant::now() + backoff;
            let retry_done = RetryDone(&cluster);
            match deadline {
                Some(deadline) if wake >= deadline => {
                    tokio::time::sleep_until(deadline).await;
                    drop(retry_done);
                    exchange.set_outcome(504, base | ResponseFlags::UT);
                    exchange.set_error("upstream request timeout");
                    let response =
                        synthetic(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
                    return (finish(response, exchange), None);
                }
                _ => tokio::time::sleep_until(wake).await,
            }
            drop(retry_done);
            continue;
        }
        let exhausted = if retriable && !budget_left {
            ResponseFlags::URX
        } else {
            ResponseFlags::NONE
        };
        let response = match outcome {
            TryOutcome::Response(response) => {
                let (mut parts, body) = response.into_parts();
                // Over mTLS the server's verified SPIFFE identity names the destination.
                if let Some(peer) = parts.extensions.get::<crate::tls::upstream::UpstreamPeer>() {
                    Arc::make_mut(&mut exchange.labels.destination).principal = peer.0.to_string();
                }
                strip_hop_by_hop(&mut parts.headers);
                exchange.set_outcome(parts.status.as_u16(), base | exhausted);
                // The route timeout covers the response body too (Envoy: until the upstream
                // response is complete); past it the stream is reset.
                let timed_out = Arc::new(AtomicBool::new(false));
                let deadline = deadline.map(|deadline| {
                    exchange.watch_body_timeout(timed_out.clone());
                    Box::pin(tokio::time::sleep_until(deadline))
                });
                let body = Held {
                    inner: body,
                    deadline,
                    timed_out,
                    _admission: admission,
                    _guard: guard,
                };
                exchange.set_response_head(&parts.headers);
                Response::from_parts(parts, boxed(Observed::new(body, exchange)))
            }
            TryOutcome::ConnectFailure => {
                exchange.set_outcome(503, base | ResponseFlags::UF | exhausted);
                exchange.set_error("upstream connect error");
                finish(
                    synthetic(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                    ),
                    exchange,
                )
            }
            TryOutcome::Reset => {
                exchange.set_outcome(503, base | ResponseFlags::UC | exhausted);
                exchange.set_error("upstream reset");
                finish(
                    synthetic(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                    ),
                    exchange,
                )
            }
            TryOutcome::PerTryTimeout | TryOutcome::RouteTimeout => {
                exchange.set_outcome(504, base | ResponseFlags::UT | exhausted);
                exchange.set_error("upstream request timeout");
                finish(
                    synthetic(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout"),
                    exchange,
                )
            }
        };
        return (response, Some(index));
    }
}

/// Gives a retry back to the cluster's `maxRetries` budget.
struct RetryDone<'a>(&'a ClusterState);

impl Drop for RetryDone<'_> {
    fn drop(&mut self) {
        self.0.pool.retry_done();
    }
}

fn describe(outcome: &TryOutcome) -> (u16, ResponseFlags, Option<&'static str>, &'static str) {
    match outcome {
        TryOutcome::Response(response) => (
            response.status().as_u16(),
            ResponseFlags::NONE,
            None,
            "retriable status",
        ),
        TryOutcome::ConnectFailure => (
            503,
            ResponseFlags::UF,
            Some("upstream connect error"),
            "connect-failure",
        ),
        TryOutcome::Reset => (503, ResponseFlags::UC, Some("upstream reset"), "reset"),
        TryOutcome::PerTryTimeout | TryOutcome::RouteTimeout => (
            504,
            ResponseFlags::UT,
            Some("upstream request timeout"),
            "per-try-timeout",
        ),
    }
}

/// Envoy's jittered exponential backoff: uniform in `[0, min(base·2^(n-1), 10·base))`.
fn backoff(base: Duration, retry: u32) -> Duration {
    let cap = base.saturating_mul(10);
    let upper = base
        .saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(cap);
    let nanos = upper.as_nanos().min(u128::from(u64::MAX)) as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::random_range(0..nanos))
}

/// The try's own span attributes: its attempt number and endpoint.
fn endpoint_attributes(span: &mut SpanDraft, cluster: &ClusterState, index: usize, attempt: u32) {
    let endpoint = &cluster.endpoints[index];
    span.int("weft.retry.attempt", i64::from(attempt));
    span.encoded(&endpoint.span_attributes);
}

fn build_request(
    upstream: &mut Upstream,
    authority: &str,
    context: &SpanContext,
    last: bool,
) -> Option<Request<ProxyBody>> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(upstream.path_and_query.clone())
        .build()
        .ok()?;
    let mut headers = if last {
        std::mem::take(&mut upstream.headers)
    } else {
        upstream.headers.clone()
    };
    context.inject(&mut headers);
    headers.insert(header::HOST, upstream.host.clone());
    let mut request = Request::new(upstream.body.take());
    *request.method_mut() = upstream.method.clone();
    *request.uri_mut() = uri;
    // Upstream connections are HTTP/1.1; an HTTP/2 request's :authority becomes Host.
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

async fn send(
    cluster: &ClusterState,
    mesh: &MeshRoute<'_>,
    transport: &crate::tls::Upstream,
    request: Request<ProxyBody>,
    try_deadline: Option<Instant>,
    route_deadline: Option<Instant>,
) -> TryOutcome {
    let mut request = request;
    let per_connection = cluster.pool.limits.max_requests_per_connection;
    if per_connection == 1 {
        request
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // maxRequestsPerConnection > 1: the pool learns which connection served the request.
    let captured = (per_connection > 1)
        .then(|| hyper_util::client::legacy::connect::capture_connection(&mut request));
    let call = match transport {
        crate::tls::Upstream::Plaintext => cluster.pool.client.request(request),
        crate::tls::Upstream::Mesh(expected) => {
            let client = mesh
                .shared
                .mesh
                .as_ref()
                .ok_or_else(|| "mutual TLS needs a workload certificate".to_string())
                .and_then(|m| m.clients.client(expected).map_err(|e| e.to_string()));
            match client {
                Ok(client) => client.request(request),
                Err(error) => {
                    tracing::warn!(%error, cluster = %cluster.name, "no mTLS client");
                    return TryOutcome::ConnectFailure;
                }
            }
        }
        crate::tls::Upstream::Originate(origination) => {
            // SNI defaults to the host the application asked for (istio-model.md §2.7).
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .map(|a| {
                    a.host()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                })
                .unwrap_or_default();
            match mesh.shared.origination.client(origination, &host) {
                Ok(client) => client.request(request),
                Err(error) => {
                    tracing::warn!(%error, cluster = %cluster.name, "cannot originate TLS");
                    return TryOutcome::ConnectFailure;
                }
            }
        }
        crate::tls::Upstream::Unsupported(what) => {
            tracing::warn!(cluster = %cluster.name, "{what} is not supported yet");
            return TryOutcome::ConnectFailure;
        }
    };
    let result = match try_deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => {
                return if route_deadline.is_some_and(|d| Instant::now() >= d) {
                    TryOutcome::RouteTimeout
                } else {
                    TryOutcome::PerTryTimeout
                };
            }
        },
        None => call.await,
    };
    match result {
        Ok(response) => {
            if let Some(captured) = captured {
                cluster.pool.served_on(&captured);
            }
            TryOutcome::Response(response)
        }
        Err(error) if error.is_connect() => {
            tracing::debug!(%error, cluster = %cluster.name, "upstream connect failure");
            TryOutcome::ConnectFailure
        }
        Err(error) => {
            tracing::debug!(%error, cluster = %cluster.name, "upstream reset");
            TryOutcome::Reset
        }
    }
}

fn finish(response: Response<Full<Bytes>>, mut exchange: Exchange) -> Response<ProxyBody> {
    exchange.set_response_head(response.headers());
    response.map(|body| boxed(Observed::new(body, exchange)))
}

/// The route timeout fired while the response body was streaming.
#[derive(Debug, thiserror::Error)]
#[error("upstream request timeout")]
pub struct BodyTimeout;

/// The response body of the final try: keeps the try's circuit-breaker admission and the
/// endpoint's active-request count until the body ends, and enforces the rest of the route
/// timeout on it.
struct Held<B> {
    inner: B,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
    _admission: Admission,
    _guard: super::EndpointGuard,
}

impl<B> Body for Held<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if let Some(deadline) = &mut self.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.deadline = None;
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let base = Duration::from_millis(25);
        for retry in 1..20 {
            let delay = backoff(base, retry);
            assert!(delay < base * 10, "{delay:?}");
            let cap = base * 2u32.pow((retry - 1).min(10));
            assert!(delay < cap.min(base * 10));
        }
    }
}
