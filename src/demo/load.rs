//! The demo's steady load: requests to `web` from outside the mesh, at a
//! fixed rate, mostly for known items and some for unknown ones (404s).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use super::apps::CATALOG;

/// Share of requests asking for an item that does not exist.
const MISSING_SHARE: f64 = 0.05;

pub struct LoadHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LoadHandle {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Sends `rate` requests per second to `target` (web's inbound listener).
pub fn start(target: SocketAddr, rate: f64) -> LoadHandle {
    let (stop, mut stop_rx) = watch::channel(false);
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let task = tokio::spawn(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop_rx.changed() => break,
            }
            let item = if rand::random::<f64>() < MISSING_SHARE {
                "unicorn"
            } else {
                CATALOG[rand::random_range(0..CATALOG.len())].0
            };
            let client = client.clone();
            // Each request on its own task: a slow response never delays
            // the schedule.
            tokio::spawn(async move {
                let Ok(uri) = format!("http://{target}/?item={item}").parse::<http::Uri>() else {
                    return;
                };
                let mut request = Request::new(Full::new(Bytes::new()));
                *request.uri_mut() = uri;
                request
                    .headers_mut()
                    .insert(header::HOST, HeaderValue::from_static("web"));
                if let Ok(response) = client.request(request).await {
                    let _ = response.into_body().collect().await;
                }
            });
        }
    });
    LoadHandle { stop, task }
}
