//! The outbound listener: the application's HTTP proxy. Each request is
//! routed by the compiled VirtualService/DestinationRule/ServiceEntry config,
//! traced with a CLIENT span, counted with `reporter="source"`, and sent to
//! the chosen endpoint (the peer sidecar's inbound listener).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use weft_config::{RequestInfo, RouteDecision};

use crate::Shared;
use crate::http::body::{Counting, Observed, ProxyBody, boxed, synthetic};
use crate::http::forward::{retarget, strip_hop_by_hop};
use crate::peer::PEER_HEADER;
use crate::telemetry::exchange::request_head_bytes;
use crate::telemetry::export::{int_attribute, string_attribute};
use crate::telemetry::{Exchange, Peer, Reporter, RequestLabels, SpanDraft};
use crate::trace::context::REQUEST_ID;

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
    let text = authority.to_str().ok()?;
    let parsed: http::uri::Authority = text.parse().ok()?;
    let default_port = match uri.scheme_str() {
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
    _remote: SocketAddr,
) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let request_bytes = Arc::new(AtomicU64::new(request_head_bytes(&parts)));
    let body = boxed(Counting::new(body, request_bytes.clone()));

    let context = shared.sampler.start_span(&parts.headers);
    let path = parts.uri.path().to_string();
    let mut labels = RequestLabels {
        reporter: Reporter::Source,
        source: shared.me.clone(),
        destination: Peer::unknown(),
        destination_service: "unknown".into(),
        destination_service_name: "unknown".into(),
        destination_service_namespace: "unknown".into(),
        request_protocol: "http",
        response_code: 0,
        response_flags: "-",
        connection_security_policy: "unknown",
    };
    let span = |name_host: &str, attributes| {
        context.sampling.is_sampled().then(|| SpanDraft {
            context: context.clone(),
            kind: SpanKind::Client,
            name: format!("{} {}", parts.method, path),
            attributes: {
                let mut all = vec![
                    string_attribute("http.request.method", parts.method.as_str()),
                    string_attribute("url.path", &path),
                    string_attribute("server.address", name_host),
                    string_attribute("network.protocol.version", version_str(parts.version)),
                    string_attribute("weft.source.workload", &shared.me.workload),
                    string_attribute("weft.source.namespace", &shared.me.namespace),
                    string_attribute("weft.source.version", &shared.me.version),
                ];
                all.extend::<Vec<_>>(attributes);
                all
            },
            events: Vec::new(),
        })
    };

    let Some(target) = target(&parts.uri, &parts.headers) else {
        let mut exchange = Exchange::new(
            shared.telemetry.clone(),
            labels,
            span("unknown", Vec::new()),
            request_bytes,
        );
        exchange.set_response(400, "-");
        exchange.set_error("missing host");
        return respond(
            synthetic(StatusCode::BAD_REQUEST, "missing host\n"),
            exchange,
        );
    };

    let snapshot = shared.snapshot.load_full();
    let info = RequestInfo {
        host: &target.host,
        port: target.port,
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query(),
        scheme: parts.uri.scheme_str().unwrap_or("http"),
        headers: &parts.headers,
    };
    let mut upstream_tls = crate::tls::Upstream::Plaintext;
    let (authority, draft) = match snapshot.route(&info, rand::random()) {
        RouteDecision::Route { route, cluster } => {
            labels.destination_service = cluster.service_host.clone();
            let (name, namespace) = split_service(&cluster.service_host);
            labels.destination_service_name = name.into();
            labels.destination_service_namespace = namespace.into();
            let mut attributes = vec![
                string_attribute("weft.upstream_cluster", &cluster.name),
                int_attribute("weft.retry.attempt", 0),
            ];
            if let Some(name) = &route.name {
                attributes.push(string_attribute("weft.route", name));
            }
            if let Some(subset) = &cluster.subset {
                attributes.push(string_attribute("weft.subset", subset));
            }
            let Some(endpoint) = cluster.next_endpoint() else {
                let mut exchange = Exchange::new(
                    shared.telemetry.clone(),
                    labels,
                    span(&target.host, attributes),
                    request_bytes,
                );
                exchange.set_response(503, "UH");
                exchange.set_error("no healthy upstream");
                return respond(
                    synthetic(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"),
                    exchange,
                );
            };
            // mTLS per DestinationRule tls.mode or auto mTLS (issue 4).
            upstream_tls = crate::tls::Upstream::decide(
                &snapshot,
                cluster,
                endpoint,
                shared
                    .mesh
                    .as_ref()
                    .map(|m| m.identity.trust_domain.as_str()),
            );
            labels.destination = Peer::from_labels(&endpoint.workload, &endpoint.namespace, |k| {
                endpoint.labels.get(k).map(String::as_str)
            });
            attributes.push(string_attribute(
                "weft.destination.workload",
                &endpoint.workload,
            ));
            attributes.push(string_attribute(
                "weft.destination.namespace",
                &endpoint.namespace,
            ));
            attributes.push(string_attribute(
                "weft.destination.version",
                &labels.destination.version,
            ));
            attributes.push(string_attribute(
                "network.peer.address",
                &endpoint.authority(),
            ));
            (endpoint.authority(), span(&target.host, attributes))
        }
        RouteDecision::Passthrough if shared.is_own_address(&target.host, target.port) => {
            // Forwarding to ourselves would loop until sockets run out.
            labels.destination_service = target.host.clone();
            let mut exchange = Exchange::new(
                shared.telemetry.clone(),
                labels,
                span(&target.host, Vec::new()),
                request_bytes,
            );
            exchange.set_response(502, "-");
            exchange.set_error("request loop");
            return respond(
                synthetic(
                    StatusCode::BAD_GATEWAY,
                    "request loop: the target is this proxy\n",
                ),
                exchange,
            );
        }
        RouteDecision::Passthrough => {
            labels.destination_service = target.host.clone();
            labels.destination_service_name = "PassthroughCluster".into();
            let authority = format!("{}:{}", target.host, target.port);
            let attributes = vec![string_attribute(
                "weft.upstream_cluster",
                "PassthroughCluster",
            )];
            (authority, span(&target.host, attributes))
        }
        RouteDecision::NoRoute => {
            labels.destination_service = target.host.clone();
            let mut exchange = Exchange::new(
                shared.telemetry.clone(),
                labels,
                span(&target.host, Vec::new()),
                request_bytes,
            );
            exchange.set_response(404, "NR");
            exchange.set_error("no route");
            return respond(synthetic(StatusCode::NOT_FOUND, ""), exchange);
        }
        RouteDecision::NoCluster => {
            labels.destination_service = target.host.clone();
            let mut exchange = Exchange::new(
                shared.telemetry.clone(),
                labels,
                span(&target.host, Vec::new()),
                request_bytes,
            );
            exchange.set_response(503, "NC");
            exchange.set_error("cluster not found");
            return respond(synthetic(StatusCode::SERVICE_UNAVAILABLE, ""), exchange);
        }
    };
    let mut exchange = Exchange::new(shared.telemetry.clone(), labels, draft, request_bytes);

    strip_hop_by_hop(&mut parts.headers);
    context.inject(&mut parts.headers);
    ensure_request_id(&mut parts.headers);
    match &shared.me_header {
        Some(me) => {
            parts.headers.insert(PEER_HEADER, me.clone());
        }
        None => {
            parts.headers.remove(PEER_HEADER);
        }
    }
    let mut upstream_request = Request::from_parts(parts, body);
    if retarget(&mut upstream_request, &authority, &target.authority).is_err() {
        exchange.set_response(503, "UF");
        exchange.set_error("invalid upstream address");
        return respond(synthetic(StatusCode::SERVICE_UNAVAILABLE, ""), exchange);
    }
    match crate::tls::upstream::send(&shared, &upstream_tls, upstream_request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            if let Some(peer) = parts.extensions.get::<crate::tls::upstream::UpstreamPeer>() {
                exchange.labels.destination.principal = peer.0.to_string();
            }
            strip_hop_by_hop(&mut parts.headers);
            exchange.set_response(parts.status.as_u16(), "-");
            exchange.set_response_head(&parts.headers);
            Response::from_parts(parts, boxed(Observed::new(body, exchange)))
        }
        Err(error) => {
            tracing::debug!(%error, upstream = %authority, "upstream request failed");
            exchange.set_response(503, "UF");
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

/// Adds an `x-request-id` when the caller sent none (Envoy generates a UUID).
pub(crate) fn ensure_request_id(headers: &mut http::HeaderMap) {
    if headers.contains_key(REQUEST_ID) {
        return;
    }
    let bytes: [u8; 16] = rand::random();
    let mut id = hex::encode(bytes);
    // UUID v4 layout.
    id.replace_range(12..13, "4");
    id.insert(20, '-');
    id.insert(16, '-');
    id.insert(12, '-');
    id.insert(8, '-');
    if let Ok(value) = HeaderValue::from_str(&id) {
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
