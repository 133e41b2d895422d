//! Forwarding a request to an upstream address with a pooled HTTP client.

use std::time::Duration;

use http::{HeaderMap, HeaderName, Request, Uri, header, uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::body::ProxyBody;

pub type HttpClient = Client<HttpConnector, ProxyBody>;

/// Headers that describe one connection, not the request (RFC 9110 7.6.1),
/// plus `proxy-connection`, which some clients still send.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// An HTTP/1.1 client with a connection pool; the connect timeout is Istio's
/// mesh default (10 s).
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none (or only `Connection`): one pass over the names is cheaper
    // than nine hashed removals on every request and response.
    if !headers
        .keys()
        .any(|name| *name == header::UPGRADE || HOP_BY_HOP.contains(name))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Points the request at `authority` (an upstream `host:port`), keeping path
/// and query, and sets `Host` to the authority the client asked for, so the
/// upstream sees the service name rather than an endpoint address.
pub fn retarget(
    request: &mut Request<ProxyBody>,
    upstream: &str,
    host: &http::HeaderValue,
) -> Result<(), http::Error> {
    let path_and_query = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::builder()
        .scheme("http")
        .authority(upstream)
        .path_and_query(path_and_query)
        .build()?;
    // Upstream connections are HTTP/1.1; an HTTP/2 request's :authority
    // becomes the Host header.
    *request.version_mut() = http::Version::HTTP_11;
    request.headers_mut().insert(header::HOST, host.clone());
    Ok(())
}
