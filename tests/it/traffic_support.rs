//! Support for the traffic-management tests: small upstream servers on 127.0.0.1:0 with a
//! controllable failure rate and latency that count what they receive, and a weft proxy
//! started on a config folder the test writes (and rewrites, for hot reload).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::support::{Sample, client, parse_prometheus};

/// What an upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Behaviour {
    hits: AtomicU64,
    /// Connections accepted.
    connections: AtomicU64,
    /// Share of requests answered with `fail_status`, per million.
    fail_per_million: AtomicU32,
    fail_status: AtomicU32,
    latency_ms: AtomicU64,
    /// Delay between the response head (with a first chunk) and the rest of the body.
    trickle_ms: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

/// A test upstream: answers `200 <name>` (header `x-upstream: <name>`), or fails.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    _stop: watch::Sender<bool>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let behaviour = Arc::new(Behaviour {
            fail_status: AtomicU32::new(503),
            ..Default::default()
        });
        let (stop, mut stopped) = watch::channel(false);
        let state = behaviour.clone();
        let label = name.to_string();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    _ = stopped.changed() => break,
                };
                state.connections.fetch_add(1, Ordering::Relaxed);
                let state = state.clone();
                let label = label.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        let label = label.clone();
                        async move { Ok::<_, Infallible>(answer(&state, &label, request).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            name: name.to_string(),
            addr,
            behaviour,
            _stop: stop,
        }
    }

    /// Fail this share (0.0..=1.0) of requests with `status`.
    pub fn fail(&self, share: f64, status: u16) {
        self.behaviour
            .fail_status
            .store(u32::from(status), Ordering::Relaxed);
        self.behaviour
            .fail_per_million
            .store((share * 1_000_000.0) as u32, Ordering::Relaxed);
    }

    pub fn delay(&self, latency: Duration) {
        self.behaviour
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Send the head and a first chunk at once, the rest of the body after `delay`.
    pub fn trickle(&self, delay: Duration) {
        self.behaviour
            .trickle_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn hits(&self) -> u64 {
        self.behaviour.hits.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.behaviour.connections.load(Ordering::Relaxed)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.behaviour.seen.lock().expect("seen").clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A body that yields one chunk, then another after a delay.
struct Trickle {
    first: Option<Bytes>,
    rest: Option<(Pin<Box<tokio::time::Sleep>>, Bytes)>,
}

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(first))));
        }
        match &mut self.rest {
            Some((sleep, _)) => {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let (_, rest) = self.rest.take().expect("rest");
                Poll::Ready(Some(Ok(hyper::body::Frame::data(rest))))
            }
            None => Poll::Ready(None),
        }
    }
}

type AnswerBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(state: &Behaviour, name: &str, request: Request<Incoming>) -> Response<AnswerBody> {
    state.hits.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    {
        let mut seen = state.seen.lock().expect("seen");
        if seen.len() < 10_000 {
            seen.push(Seen {
                method: parts.method.to_string(),
                path_and_query: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                headers: parts.headers.clone(),
                body,
            });
        }
    }
    let latency = state.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fail = state.fail_per_million.load(Ordering::Relaxed);
    let status = if fail > 0 && rand::random_range(0..1_000_000) < fail {
        state.fail_status.load(Ordering::Relaxed) as u16
    } else {
        200
    };
    let trickle = state.trickle_ms.load(Ordering::Relaxed);
    let body: AnswerBody = if trickle > 0 {
        Trickle {
            first: Some(Bytes::from(name.to_string())),
            rest: Some((
                Box::pin(tokio::time::sleep(Duration::from_millis(trickle))),
                Bytes::from_static(b"-end"),
            )),
        }
        .boxed()
    } else {
        Full::new(Bytes::from(name.to_string())).boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).expect("status");
    response.headers_mut().insert(
        "x-upstream",
        http::HeaderValue::from_str(name).expect("name"),
    );
    response
}

/// An endpoint line of a ServiceEntry: (upstream, labels).
pub fn endpoints(list: &[(&Upstream, &[(&str, &str)])]) -> String {
    let mut out = String::new();
    for (upstream, labels) in list {
        out.push_str(&format!(
            "  - address: 127.0.0.1\n    ports:\n      http: {}\n    labels:\n      instance: {}\n",
            upstream.port(),
            upstream.name
        ));
        for (k, v) in labels.iter() {
            out.push_str(&format!("      {k}: {v}\n"));
        }
    }
    out
}

/// A MESH_INTERNAL ServiceEntry `NAME.default.svc.cluster.local:80` with inline endpoints.
pub fn service(name: &str, endpoint_lines: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  hosts:\n  - {name}.default.svc.cluster.local\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - number: 80\n    name: http\n    protocol: HTTP\n  endpoints:\n{endpoint_lines}---\n"
    )
}

/// A weft proxy (outbound side under test) on a config folder.
pub struct TestProxy {
    pub proxy: weft_proxy::Proxy,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    writes: AtomicU32,
}

impl TestProxy {
    pub async fn start(yaml: &str) -> TestProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("mesh.yaml"), yaml).expect("write config");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let proxy = weft_proxy::Config {
            workload: "client".into(),
            namespace: "default".into(),
            service_account: "client".into(),
            labels: BTreeMap::from([("app".to_string(), "client".to_string())]),
            config_paths: vec![dir.path().to_path_buf()],
            app: any,
            inbound: any.into(),
            outbound: any.into(),
            admin: any.into(),
            collector: None,
            sampling_rate: 1.0,
            metrics_interval: Duration::from_secs(60),
            telemetry: weft_proxy::TelemetryOptions::default(),
            tls: None,
        }
        .build()
        .await
        .expect("proxy starts");
        TestProxy {
            proxy,
            dir,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(20))
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            writes: AtomicU32::new(0),
        }
    }

    /// Replaces the config atomically (write a temp file, rename over), as ConfigMaps do.
    pub fn rewrite(&self, yaml: &str) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let temp: PathBuf = self.dir.path().join(format!(".mesh.yaml.{n}.tmp"));
        std::fs::write(&temp, yaml).expect("write temp config");
        std::fs::rename(&temp, self.dir.path().join("mesh.yaml")).expect("rename config");
    }

    /// A request builder for `host` + `path` through the outbound listener.
    pub fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("http://{}{path}", self.proxy.outbound_addr()),
            )
            .header("host", host)
    }

    pub async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, host, path)
            .send()
            .await
            .expect("request through the proxy")
    }

    pub async fn scrape(&self) -> Vec<Sample> {
        let text = client()
            .get(format!("http://{}/metrics", self.proxy.admin_addr()))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics");
        parse_prometheus(&text)
    }

    pub async fn config_dump(&self) -> serde_json::Value {
        client()
            .get(format!("http://{}/config_dump", self.proxy.admin_addr()))
            .send()
            .await
            .expect("config_dump")
            .json()
            .await
            .expect("config_dump json")
    }
}

/// Whether `observed` successes out of `n` trials are within 3σ of probability `p`.
pub fn within_3_sigma(observed: f64, n: f64, p: f64) -> bool {
    let sigma = (n * p * (1.0 - p)).sqrt();
    (observed - n * p).abs() <= 3.0 * sigma
}
