//! The inbound listener: requests from peer sidecars (or from outside the
//! mesh) to the local application. Each request gets a SERVER span and is
//! counted with `reporter="destination"`; the application receives trace
//! headers naming the SERVER span as parent, so the calls it makes continue
//! the trace.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::Shared;
use crate::http::body::{Counting, Observed, ProxyBody, boxed, synthetic};
use crate::http::forward::{retarget, strip_hop_by_hop};
use crate::outbound::{ensure_request_id, inbound_target, respond, split_service, version_str};
use crate::peer::{self, PEER_HEADER};
use crate::telemetry::exchange::request_head_bytes;
use crate::telemetry::{Exchange, Peer, Reporter, RequestLabels};
use crate::tls::ConnInfo;

pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    conn: Arc<ConnInfo>,
) -> Response<ProxyBody> {
    let remote = conn.remote;
    let (mut parts, body) = request.into_parts();
    let request_bytes = Arc::new(AtomicU64::new(request_head_bytes(&parts)));
    let body = boxed(Counting::new(body, request_bytes.clone()));

    let mut source = parts
        .headers
        .remove(PEER_HEADER)
        .and_then(|value| peer::decode(&value))
        .unwrap_or_else(Peer::unknown);
    // Principals come from the verified certificate, never from headers (issue 4).
    if let Some(peer_id) = &conn.peer_id {
        source.principal = peer_id.to_string();
    }
    let context = shared.sampler.start_span(&parts.headers);
    let target = inbound_target(&parts.uri, &parts.headers);
    let destination_service = target
        .as_ref()
        .map(|t| {
            shared
                .snapshot
                .load()
                .virtual_host(&t.host)
                .map(|host| host.name.clone())
                .unwrap_or_else(|| t.host.clone())
        })
        .unwrap_or_else(|| "unknown".into());
    let (service_name, service_namespace) = split_service(&destination_service);
    let labels = RequestLabels {
        reporter: Reporter::Destination,
        destination: shared.me.clone(),
        destination_service_name: service_name.into(),
        destination_service_namespace: service_namespace.into(),
        destination_service: destination_service.clone(),
        source: Arc::new(source),
        request_protocol: "http",
        response_code: 0,
        response_flags: "-",
        connection_security_policy: if conn.tls { "mutual_tls" } else { "none" },
    };
    let path = parts.uri.path();
    let draft = context.sampling.is_sampled().then(|| {
        let mut span =
            shared
                .telemetry
                .spans
                .draft(&context, SpanKind::Server, &parts.method, path);
        span.static_string("url.scheme", "http");
        span.string("server.address", &destination_service);
        span.ip("client.address", remote.ip());
        span.static_string("network.protocol.version", version_str(parts.version));
        span.string("weft.source.workload", &labels.source.workload);
        span.string("weft.source.namespace", &labels.source.namespace);
        span.string("weft.source.version", &labels.source.version);
        span.encoded(&shared.me_as_destination);
        span.string(
            "weft.source.principal",
            conn.peer_id.as_deref().unwrap_or("unknown"),
        );
        span.static_string(
            "weft.connection_security_policy",
            if conn.tls { "mutual_tls" } else { "none" },
        );
        span
    });
    let mut exchange = Exchange::new(shared.telemetry.clone(), labels, draft, request_bytes);
    let Some(target) = target else {
        exchange.set_response(400, "-");
        exchange.set_error("missing host");
        return respond(
            synthetic(StatusCode::BAD_REQUEST, "missing host\n"),
            exchange,
        );
    };

    // RequestAuthentication and AuthorizationPolicy (issue 4).
    if let Err(refusal) = crate::authz::check(
        &shared,
        &mut parts,
        &conn,
        target.authority.to_str().unwrap_or(""),
    )
    .await
    {
        exchange.set_response(refusal.status.as_u16(), "-");
        if let Some(span) = exchange.span_mut() {
            span.string("weft.response_code_details", &refusal.details);
        }
        return respond(refusal.response(), exchange);
    }

    strip_hop_by_hop(&mut parts.headers);
    context.inject(&mut parts.headers);
    ensure_request_id(&mut parts.headers);
    let mut app_request = Request::from_parts(parts, body);
    if retarget(&mut app_request, &shared.app_authority, &target.authority).is_err() {
        exchange.set_response(503, "UF");
        exchange.set_error("invalid application address");
        return respond(synthetic(StatusCode::SERVICE_UNAVAILABLE, ""), exchange);
    }
    match shared.client.request(app_request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            exchange.set_response(parts.status.as_u16(), "-");
            exchange.set_response_head(&parts.headers);
            Response::from_parts(parts, boxed(Observed::new(body, exchange)))
        }
        Err(error) => {
            tracing::debug!(%error, app = %shared.app, "application request failed");
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
