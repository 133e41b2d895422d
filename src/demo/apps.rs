//! The demo's applications: small HTTP services that call each other
//! through their sidecars and forward trace headers, as Istio asks of every
//! application (istio-model.md 8.4).
//!
//! - `web`: `GET /?item=X` calls `stock-api` `/price?item=X`.
//! - `stock-api` (v1, v2): `GET /price?item=X` calls `products` `/products/X`.
//! - `products`: `GET /products/X`: 200 for a known item, 503 for the item
//!   `broken` (an injected failure), 404 otherwise.
//!
//! A downstream status other than 200 is passed back to the caller, so an
//! unknown item gives a 404 at every hop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Headers an application must copy from its inbound request to the
/// requests it makes, so the mesh can join the spans into one trace.
pub const PROPAGATED: [&str; 10] = [
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "baggage",
];

/// The item `products` always fails with 503 (an injected error).
pub const BROKEN_ITEM: &str = "broken";

/// Items `products` knows, with their price in cents.
pub const CATALOG: [(&str, u32); 6] = [
    ("apple", 120),
    ("banana", 45),
    ("cherry", 980),
    ("durian", 1500),
    ("elderberry", 760),
    ("fig", 310),
];

#[derive(Clone, Debug)]
pub enum Role {
    Web,
    StockApi { version: &'static str },
    Products,
}

struct App {
    role: Role,
    /// The sidecar's outbound listener, used as the HTTP proxy.
    outbound: Option<SocketAddr>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A running demo application.
pub struct AppHandle {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AppHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts an application on `127.0.0.1:0`.
pub async fn start(role: Role, outbound: Option<SocketAddr>) -> std::io::Result<AppHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        role,
        outbound,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
                _ = stop_rx.changed() => break,
            };
            let app = app.clone();
            let service = hyper::service::service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(request).await) }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
        graceful.shutdown().await;
    });
    Ok(AppHandle { addr, stop, task })
}

impl App {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let query_item = |request: &Request<Incoming>| {
            request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("item=")))
                .unwrap_or("apple")
                .to_string()
        };
        match (&self.role, request.uri().path()) {
            (Role::Web, "/") => {
                let item = query_item(&request);
                let (status, body) = self
                    .call(
                        request.headers(),
                        "stock-api",
                        &format!("/price?item={item}"),
                    )
                    .await;
                json(
                    status,
                    format!(r#"{{"page":"web","item":"{item}","stock":{body}}}"#),
                )
            }
            (Role::StockApi { version }, "/price") => {
                let item = query_item(&request);
                let (status, body) = self
                    .call(request.headers(), "products", &format!("/products/{item}"))
                    .await;
                json(
                    status,
                    format!(r#"{{"version":"{version}","item":"{item}","product":{body}}}"#),
                )
            }
            (Role::Products, path) if path.starts_with("/products/") => {
                let item = &path["/products/".len()..];
                if item == BROKEN_ITEM {
                    return json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"error":"injected failure"}"#.into(),
                    );
                }
                match CATALOG.iter().find(|(name, _)| *name == item) {
                    Some((name, cents)) => json(
                        StatusCode::OK,
                        format!(r#"{{"name":"{name}","price_cents":{cents}}}"#),
                    ),
                    None => json(StatusCode::NOT_FOUND, r#"{"error":"no such item"}"#.into()),
                }
            }
            _ => json(StatusCode::NOT_FOUND, r#"{"error":"no such page"}"#.into()),
        }
    }

    /// Calls `host` through the sidecar, copying the trace headers. Returns
    /// the downstream status and a JSON value for the response body.
    async fn call(
        &self,
        incoming: &HeaderMap,
        host: &'static str,
        path: &str,
    ) -> (StatusCode, String) {
        let Some(outbound) = self.outbound else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "null".into());
        };
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = match format!("http://{outbound}{path}").parse() {
            Ok(uri) => uri,
            Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "null".into()),
        };
        request
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static(host));
        for name in PROPAGATED {
            let name = HeaderName::from_static(name);
            if let Some(value) = incoming.get(&name) {
                request.headers_mut().insert(name, value.clone());
            }
        }
        match self.client.request(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let is_json = body.first().is_some_and(|b| *b == b'{');
                let body = if is_json {
                    String::from_utf8_lossy(&body).into_owned()
                } else {
                    "null".into()
                };
                (status, body)
            }
            Err(_) => (StatusCode::BAD_GATEWAY, "null".into()),
        }
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
