//! The outbound listener: the application's HTTP proxy. Each request is
//! routed by the compiled VirtualService/DestinationRule/ServiceEntry config
//! ([`weft_config::Snapshot::decide`]): forwarded to a cluster (see
//! [`crate::traffic`] for retries, pools, balancing and outlier detection),
//! redirected, answered directly, or refused (404 `NR`, 503 `NC`). Every
//! request is traced with CLIENT spans (one per try), counted once with
//! `reporter="source"`, and sent to the chosen endpoint (the peer sidecar's
//! inbound listener).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use weft_config::snapshot::WeightedCluster;
use weft_config::snapshot::policy::AbortStatus;
use weft_config::{Cluster, CompiledRoute, Decision, RequestInfo, Snapshot};

use crate::Shared;
use crate::http::body::{Counting, Observed, ProxyBody, boxed, synthetic};
use crate::http::forward::{retarget, strip_hop_by_hop};
use crate::peer::PEER_HEADER;
use crate::telemetry::exchange::request_head_bytes;
use crate::telemetry::{Exchange, Peer, Reporter, RequestLabels, ResponseFlags, SpanDraft};
use crate::trace::SpanContext;
use crate::trace::context::REQUEST_ID;
use crate::traffic::balance::{self, Balancer, HashKey};
use crate::traffic::forward::{self, Forward, RequestBody, Upstream};
use crate::traffic::{ClusterState, actions, mirror};

/// The target of an outbound request as the application addressed it.
pub(crate) struct Target {
    /// `Host` value to send upstream (as the app wrote it, with any port).
    pub authority: HeaderValue,
    /// Host without port, lowercase.
    pub host: String,
    pub port: u16,
}

/// Reads the target from an absolute-form URI (`GET http://stock-api/price`),
/// the HTTP/2 `:authority`, or the `Host` header.
pub(crate) fn target(uri: &http::Uri, headers: &http::HeaderMap) -> Option<Target> {
    let authority = match uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok()?,
        None => headers.get(header::HOST)?.clone(),
    };
    target_of(authority, uri.scheme_str())
}

/// The target of a request that reached an inbound listener from a peer sidecar: its `Host`,
/// the host the caller asked for. Over HTTP/2 the `:authority` (the URI's) names the endpoint
/// the client sidecar connected to, since the connection pool is keyed by it.
pub(crate) fn inbound_target(uri: &http::Uri, headers: &http::HeaderMap) -> Option<Target> {
    match headers.get(header::HOST) {
        Some(host) => target_of(host.clone(), uri.scheme_str()),
        None => target(uri, headers),
    }
}

fn target_of(authority: HeaderValue, scheme: Option<&str>) -> Option<Target> {
    let text = authority.to_str().ok()?;
    let parsed: http::uri::Authority = text.parse().ok()?;
    let default_port = match scheme {
        Some("https") => 443,
        _ => 80,
    };
    Some(Target {
        host: parsed.host().trim_end_matches('.').to_ascii_lowercase(),
        port: parsed.port_u16().unwrap_or(default_port),
        authority,
    })
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    remote: SocketAddr,
) -> Response<ProxyBody> {
    let (parts, body) = request.into_parts();
    let request_bytes = Arc::new(AtomicU64::new(request_head_bytes(&parts)));
    let body = boxed(Counting::new(body, request_bytes.clone()));

    let context = shared.sampler.start_span(&parts.headers);
    let labels = RequestLabels {
        reporter: Reporter::Source,
        source: shared.me.clone(),
        // Set when an endpoint is picked; metrics render it `unknown` otherwise.
        destination: Peer::shared_not_yet_known(),
        destination_service: "unknown".into(),
        destination_service_name: "unknown".into(),
        destination_service_namespace: "unknown".into(),
        request_protocol: "http",
        response_code: 0,
        response_flags: "-",
        connection_security_policy: "unknown",
    };
    let mut request = Outbound {
        shared,
        context,
        labels,
        request_bytes,
        parts,
        remote,
    };

    let Some(target) = target(&request.parts.uri, &request.parts.headers) else {
        let mut exchange = request.exchange("unknown", |_| {});
        exchange.set_response(400, "-");
        exchange.set_error("missing host");
        return respond(
            synthetic(StatusCode::BAD_REQUEST, "missing host\n"),
            exchange,
        );
    };

    let snapshot = request.shared.snapshot.load_full();
    let uri = request.parts.uri.clone();
    let info = RequestInfo {
        host: &target.host,
        port: target.port,
        method: request.parts.method.as_str(),
        path: uri.path(),
        query: uri.query(),
        scheme: uri.scheme_str().unwrap_or("http"),
        headers: &request.parts.headers,
    };
    match snapshot.decide(&info, rand::random()) {
        Decision::Route {
            route,
            destination,
            cluster,
        } if !cluster.is_original_destination() => {
            routed(
                request,
                &snapshot,
                &target,
                route,
                destination,
                cluster,
                body,
            )
            .await
        }
        Decision::Route { .. } | Decision::Passthrough
            if request.shared.is_own_address(&target.host, target.port) =>
        {
            // Forwarding to ourselves would loop until sockets run out.
            request.labels.destination_service = target.host.clone();
            let mut exchange = request.exchange(&target.host, |_| {});
            exchange.set_outcome(502, ResponseFlags::NONE);
            exchange.set_error("request loop");
            respond(
                synthetic(
                    StatusCode::BAD_GATEWAY,
                    "request loop: the target is this proxy\n",
                ),
                exchange,
            )
        }
        Decision::Route { .. } | Decision::Passthrough => passthrough(request, &target, body).await,
        Decision::NoRoute { .. } => {
            request.labels.destination_service = target.host.clone();
            let mut exchange = request.exchange(&target.host, |_| {});
            exchange.set_outcome(404, ResponseFlags::NR);
            exchange.set_error("no route");
            respond(synthetic(StatusCode::NOT_FOUND, ""), exchange)
        }
        Decision::NoCluster { .. } => {
            request.labels.destination_service = target.host.clone();
            let mut exchange = request.exchange(&target.host, |_| {});
            exchange.set_outcome(503, ResponseFlags::NC);
            exchange.set_error("cluster not found");
            respond(synthetic(StatusCode::SERVICE_UNAVAILABLE, ""), exchange)
        }
        Decision::Redirect { route, redirect } => {
            request.labels.destination_service = target.host.clone();
            let explicit_port = target.authority.to_str().is_ok_and(|a| {
                a.parse::<http::uri::Authority>()
                    .is_ok_and(|a| a.port().is_some())
            });
            let location = actions::redirect_location(
                redirect,
                &actions::RequestParts {
                    scheme: uri.scheme_str().unwrap_or("http"),
                    host: &target.host,
                    port: target.port,
                    explicit_port,
                    path: uri.path(),
                    query: uri.query(),
                },
            );
            let mut response = actions::redirect_response(redirect, &location);
            apply_response_headers(response.headers_mut(), route, None);
            let mut exchange = request.exchange(&target.host, |span| route_attribute(span, route));
            exchange.set_outcome(response.status().as_u16(), ResponseFlags::NONE);
            respond(response, exchange)
        }
        Decision::DirectResponse { route, response } => {
            request.labels.destination_service = target.host.clone();
            let mut response = actions::direct_response(response);
            apply_response_headers(response.headers_mut(), route, None);
            let mut exchange = request.exchange(&target.host, |span| route_attribute(span, route));
            exchange.set_outcome(response.status().as_u16(), ResponseFlags::NONE);
            respond(response, exchange)
        }
    }
}

/// One outbound request while it is being routed.
struct Outbound {
    shared: Arc<Shared>,
    context: SpanContext,
    labels: RequestLabels,
    request_bytes: Arc<AtomicU64>,
    parts: http::request::Parts,
    remote: SocketAddr,
}

impl Outbound {
    /// The CLIENT span of a traced request, with the attributes every outbound span has;
    /// `None` when the request is not sampled.
    fn draft(&self, host: &str) -> Option<SpanDraft> {
        if !self.context.sampling.is_sampled() {
            return None;
        }
        let mut span = self.shared.telemetry.spans.draft(
            &self.context,
            SpanKind::Client,
            &self.parts.method,
            self.parts.uri.path(),
        );
        span.string("server.address", host);
        span.static_string("network.protocol.version", version_str(self.parts.version));
        span.encoded(&self.shared.me_as_source);
        Some(span)
    }

    /// The exchange of a request answered without (or before) an upstream try; `extra` adds
    /// the attributes of the case to its span.
    fn exchange(&mut self, host: &str, extra: impl FnOnce(&mut SpanDraft)) -> Exchange {
        let draft = self.draft(host).map(|mut span| {
            extra(&mut span);
            span
        });
        Exchange::new(
            self.shared.telemetry.clone(),
            std::mem::replace(&mut self.labels, placeholder_labels()),
            draft,
            self.request_bytes.clone(),
        )
    }

    /// Headers every upstream request carries: no hop-by-hop headers, a request id, the
    /// peer-metadata header.
    fn prepare_headers(&mut self) {
        let headers = &mut self.parts.headers;
        strip_hop_by_hop(headers);
        ensure_request_id(headers);
        match &self.shared.me_header {
            Some(me) => {
                headers.insert(PEER_HEADER, me.clone());
            }
            None => {
                headers.remove(PEER_HEADER);
            }
        }
    }
}

/// Labels moved out of an [`Outbound`] leave this behind; it allocates nothing.
fn placeholder_labels() -> RequestLabels {
    RequestLabels {
        reporter: Reporter::Source,
        source: Peer::shared_not_yet_known(),
        destination: Peer::shared_not_yet_known(),
        destination_service: String::new(),
        destination_service_name: String::new(),
        destination_service_namespace: String::new(),
        request_protocol: "http",
        response_code: 0,
        response_flags: "-",
        connection_security_policy: "unknown",
    }
}

fn route_attribute(span: &mut SpanDraft, route: &CompiledRoute) {
    if let Some(name) = &route.name {
        span.string("weft.route", name);
    }
}

/// Response header operations: the rule's, then the destination's (istio-model.md §1.6).
fn apply_response_headers(
    headers: &mut http::HeaderMap,
    route: &CompiledRoute,
    destination: Option<&WeightedCluster>,
) {
    if let Some(policy) = &route.header_policy {
        policy.response.apply(headers);
    }
    if let Some(policy) = destination.and_then(|d| d.header_policy.as_ref()) {
        policy.response.apply(headers);
    }
}

/// Rolls a per-million share.
fn roll(per_million: u32) -> bool {
    per_million >= 1_000_000 || (per_million > 0 && rand::random_range(0..1_000_000) < per_million)
}

async fn routed(
    mut request: Outbound,
    snapshot: &Snapshot,
    target: &Target,
    route: &CompiledRoute,
    destination: &WeightedCluster,
    cluster: &Cluster,
    body: ProxyBody,
) -> Response<ProxyBody> {
    let shared = request.shared.clone();
    let state = shared.traffic.cluster(cluster);
    request.labels.destination_service = cluster.service_host.clone();
    let (name, namespace) = split_service(&cluster.service_host);
    request.labels.destination_service_name = name.into();
    request.labels.destination_service_namespace = namespace.into();
    let mut exchange = request.exchange(&target.host, |span| {
        span.string("weft.upstream_cluster", &cluster.name);
        route_attribute(span, route);
        if let Some(subset) = &cluster.subset {
            span.string("weft.subset", subset);
        }
        // Every try's span has these; the endpoint's are added per try.
        span.mark_shared();
    });

    // CORS preflights are answered here when the origin is allowed.
    let origin = request.parts.headers.get(header::ORIGIN).cloned();
    let cors = route
        .cors
        .as_ref()
        .zip(origin.as_ref())
        .filter(|(cors, origin)| origin.to_str().is_ok_and(|o| cors.allows(o)));
    if let Some(policy) = &route.cors
        && actions::is_preflight(&request.parts.method, &request.parts.headers)
    {
        match cors {
            Some((cors, origin)) => {
                exchange.set_outcome(200, ResponseFlags::NONE);
                return respond(actions::preflight_response(cors, origin), exchange);
            }
            None if !policy.forward_unmatched_preflights => {
                exchange.set_outcome(200, ResponseFlags::NONE);
                return respond(synthetic(StatusCode::OK, ""), exchange);
            }
            None => {}
        }
    }

    // Faults: the delay first, then the abort; an abort is a local reply (never retried), and
    // the delay does not count against the route timeout (istio-model.md §1.5).
    let mut flags = ResponseFlags::NONE;
    if let Some(fault) = &route.fault_policy {
        if let Some((delay, share)) = fault.delay
            && roll(share)
        {
            exchange.add_event(
                "fault.delay",
                "weft.fault.delay_ms",
                delay.as_millis() as i64,
            );
            flags |= ResponseFlags::DI;
            tokio::time::sleep(delay).await;
        }
        if let Some((status, share)) = fault.abort
            && roll(share)
        {
            let (response, code, grpc) = fault_abort(status);
            exchange.add_event(
                "fault.abort",
                "weft.fault.status",
                i64::from(grpc.unwrap_or(u32::from(code))),
            );
            exchange.set_outcome(code, flags | ResponseFlags::FI);
            exchange.set_error("fault injected");
            return respond(response, exchange);
        }
    }

    // The request as it goes upstream.
    request.prepare_headers();
    let mut host = target.authority.clone();
    for policy in [
        route.header_policy.as_ref(),
        destination.header_policy.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        policy.request.apply(&mut request.parts.headers);
        if let Some(authority) = &policy.request.authority {
            host = authority.clone();
        }
    }
    if let Some(authority) = route.rewrite.as_ref().and_then(|r| r.authority.as_deref())
        && let Ok(value) = HeaderValue::from_str(authority)
    {
        host = value;
    }
    let path_and_query = match actions::rewritten_path(route, request.parts.uri.path()) {
        Some(path) => {
            let text = match request.parts.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            http::uri::PathAndQuery::try_from(text).ok()
        }
        None => request.parts.uri.path_and_query().cloned(),
    }
    .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));

    let (hash, cookie) = request_hash(&state, &request);
    let body = match RequestBody::read(body).await {
        Ok(body) => body,
        Err(_) => {
            exchange.set_outcome(0, flags | ResponseFlags::DC);
            exchange.set_error("downstream connection termination");
            return respond(synthetic(StatusCode::BAD_REQUEST, ""), exchange);
        }
    };
    let upstream = Upstream {
        method: request.parts.method.clone(),
        path_and_query,
        host,
        headers: std::mem::take(&mut request.parts.headers),
        body,
    };

    for mirror in &route.mirrors {
        let (Some(bytes), Some(mirror_cluster)) =
            (upstream.body.bytes(), mirror.cluster(target.port))
        else {
            continue;
        };
        if roll((mirror.percentage.clamp(0.0, 100.0) * 10_000.0).round() as u32) {
            mirror::spawn(
                &shared.traffic,
                shared.traffic.cluster(mirror_cluster),
                mirror::Copy {
                    method: &upstream.method,
                    path_and_query: &upstream.path_and_query,
                    host: &upstream.host,
                    headers: &upstream.headers,
                    body: bytes,
                    context: &request.context,
                },
            );
        }
    }

    let (mut response, _) = forward::forward(
        Forward {
            mesh: forward::MeshRoute {
                shared: &shared,
                snapshot,
                cluster,
            },
            cluster: state,
            policy: &route.retry_policy,
            timeout: route.timeout,
            hash,
            context: request.context.clone(),
            flags,
        },
        upstream,
        exchange,
    )
    .await;
    let headers = response.headers_mut();
    apply_response_headers(headers, route, Some(destination));
    if let Some((cors, origin)) = cors {
        actions::decorate_response(cors, origin, headers);
    }
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// The answer of an abort fault: the HTTP status, or 200 with `grpc-status` for gRPC.
fn fault_abort(status: AbortStatus) -> (Response<Full<Bytes>>, u16, Option<u32>) {
    match status {
        AbortStatus::Http(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (
                synthetic(status, "fault filter abort"),
                status.as_u16(),
                None,
            )
        }
        AbortStatus::Grpc(code) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from(code));
            headers.insert(
                "grpc-message",
                HeaderValue::from_static("fault filter abort"),
            );
            (response, 200, Some(code))
        }
    }
}

/// The consistent-hash key of a request, and a `Set-Cookie` when a cookie key was generated.
fn request_hash(state: &ClusterState, request: &Outbound) -> (Option<u64>, Option<HeaderValue>) {
    let Balancer::Ring { key, .. } = &state.balancer else {
        return (None, None);
    };
    let headers = &request.parts.headers;
    match key {
        HashKey::Header(name) => (
            headers.get(name).map(|v| balance::hash_bytes(v.as_bytes())),
            None,
        ),
        HashKey::SourceIp => {
            let ip = request.remote.ip().to_string();
            (Some(balance::hash_bytes(ip.as_bytes())), None)
        }
        HashKey::QueryParameter(name) => {
            let value = request.parts.uri.query().and_then(|query| {
                query.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == name).then_some(v)
                })
            });
            (value.map(|v| balance::hash_bytes(v.as_bytes())), None)
        }
        HashKey::Cookie { name, path, ttl } => {
            let found = headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    (k == name).then_some(v)
                });
            if let Some(value) = found {
                return (Some(balance::hash_bytes(value.as_bytes())), None);
            }
            // Envoy generates the cookie when a TTL is configured (0: session cookie).
            let Some(ttl) = ttl else { return (None, None) };
            let value = hex::encode(rand::random::<[u8; 8]>());
            let mut cookie = format!("{name}={value}");
            if let Some(path) = path {
                cookie.push_str("; Path=");
                cookie.push_str(path);
            }
            if !ttl.is_zero() {
                cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
            }
            cookie.push_str("; HttpOnly");
            (
                Some(balance::hash_bytes(value.as_bytes())),
                HeaderValue::from_str(&cookie).ok(),
            )
        }
    }
}

/// Unknown hosts (and `resolution: NONE` services): one try to the original destination.
async fn passthrough(
    mut request: Outbound,
    target: &Target,
    body: ProxyBody,
) -> Response<ProxyBody> {
    let shared = request.shared.clone();
    request.labels.destination_service = target.host.clone();
    request.labels.destination_service_name = "PassthroughCluster".into();
    let authority = format!("{}:{}", target.host, target.port);
    let mut exchange = request.exchange(&target.host, |span| {
        span.static_string("weft.upstream_cluster", "PassthroughCluster");
    });
    request.prepare_headers();
    request.context.inject(&mut request.parts.headers);
    let mut upstream_request = Request::from_parts(request.parts, body);
    if retarget(&mut upstream_request, &authority, &target.authority).is_err() {
        exchange.set_outcome(503, ResponseFlags::UF);
        exchange.set_error("invalid upstream address");
        return respond(synthetic(StatusCode::SERVICE_UNAVAILABLE, ""), exchange);
    }
    match shared.client.request(upstream_request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            exchange.set_outcome(parts.status.as_u16(), ResponseFlags::NONE);
            exchange.set_response_head(&parts.headers);
            Response::from_parts(parts, boxed(Observed::new(body, exchange)))
        }
        Err(error) => {
            tracing::debug!(%error, upstream = %authority, "upstream request failed");
            exchange.set_outcome(503, ResponseFlags::UF);
            exchange.set_error("upstream connect error");
            respond(
                synthetic(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream connect error or disconnect/reset before headers",
                ),
                exchange,
            )
        }
    }
}

/// Adds an `x-request-id` when the caller sent none (Envoy generates a UUID v4), formatted on
/// the stack.
pub(crate) fn ensure_request_id(headers: &mut http::HeaderMap) {
    if headers.contains_key(REQUEST_ID) {
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut id = [0u8; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id[at] = b'-';
            at += 1;
        }
        id[at] = HEX[usize::from(byte >> 4)];
        id[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    if let Ok(value) = HeaderValue::from_bytes(&id) {
        headers.insert(REQUEST_ID, value);
    }
}

/// Finishes a proxy-generated response through the same observation path.
pub(crate) fn respond(
    response: Response<http_body_util::Full<bytes::Bytes>>,
    mut exchange: Exchange,
) -> Response<ProxyBody> {
    exchange.set_response_head(response.headers());
    response.map(|body| boxed(Observed::new(body, exchange)))
}

/// `stock-api.default.svc.cluster.local` → (`stock-api`, `default`).
pub(crate) fn split_service(fqdn: &str) -> (&str, &str) {
    let mut labels = fqdn.split('.');
    let name = labels.next().unwrap_or(fqdn);
    let namespace = labels.next().unwrap_or("unknown");
    (name, namespace)
}

pub(crate) fn version_str(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
