//! The dashboard in a real headless Chromium (through chromedriver), over a
//! collector filled by a real mesh run. Screenshots of each view go to
//! `tests/artifacts/screenshots/` (not in git) for a reviewer to look at.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Mesh, client, eventually, patience};

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn program(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_string())
}

impl Browser {
    /// Starts chromedriver on an ephemeral port and a headless Chromium
    /// session with a fresh profile.
    pub async fn start() -> Browser {
        let chromedriver = program("WEFT_CHROMEDRIVER", "chromedriver");
        let chromium = program("WEFT_CHROMIUM", "/usr/bin/chromium");
        let mut driver = Command::new(&chromedriver)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {chromedriver} ({e}); scripts/test installs chromium and chromium-driver")
            });
        let stdout = driver.stdout.take().expect("chromedriver stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(patience(), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver reports its port");
        // Keep draining chromedriver's output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let profile = tempfile::tempdir().expect("profile dir");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Waits until the dashboard's current view reports `ready` (or
    /// `empty`), and returns that state.
    pub async fn wait_view(&self, view: &str) -> String {
        let script = format!(
            "const v = document.getElementById('view'); \
             return v && v.dataset.view === '{view}' ? (v.dataset.state || '') : '';"
        );
        eventually(&format!("view {view} to render"), || async {
            let state = self
                .client
                .execute(&script, vec![])
                .await
                .map_err(|e| e.to_string())?;
            match state.as_str() {
                Some(s @ ("ready" | "empty")) => Ok(s.to_string()),
                Some("error") => panic!("view {view} failed to render"),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    pub async fn attribute_values(&self, selector: &str, attribute: &str) -> Vec<String> {
        let mut values = Vec::new();
        for element in self
            .client
            .find_all(Locator::Css(selector))
            .await
            .expect("find")
        {
            if let Ok(Some(value)) = element.attr(attribute).await {
                values.push(value);
            }
        }
        values
    }

    /// Errors the page reported (uncaught errors, rejected promises,
    /// console.error), collected by the dashboard in `window.__weftErrors`.
    pub async fn page_errors(&self) -> Vec<Value> {
        let errors = self
            .client
            .execute("return window.__weftErrors || null;", vec![])
            .await
            .expect("execute");
        errors
            .as_array()
            .cloned()
            .expect("the dashboard collects page errors in window.__weftErrors")
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts/screenshots");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_graph_and_traces_of_a_real_mesh() {
    let mesh = Mesh::start(25.0).await;
    let graph_url = mesh.collector_url("/api/weft/graph?window=300");
    eventually("traffic on every edge of the demo graph", || async {
        let graph: Value = client()
            .get(&graph_url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let edges = graph["edges"].as_array().map_or(0, Vec::len);
        // unknown -> web, web -> stock-api v1 and v2, stock-api v1/v2 -> products
        if edges >= 5 {
            Ok(())
        } else {
            Err(graph.to_string())
        }
    })
    .await;

    let browser = Browser::start().await;
    let base = mesh.collector_url("/");

    // Service graph.
    browser
        .client
        .goto(&format!("{base}#/graph?window=300"))
        .await
        .expect("open the dashboard");
    assert_eq!(browser.wait_view("graph").await, "ready");
    let apps = browser.attribute_values("g.node", "data-app").await;
    for app in ["web", "stock-api", "products"] {
        assert!(apps.iter().any(|a| a == app), "no {app} node in {apps:?}");
    }
    let versions = browser
        .attribute_values("g.node[data-app='stock-api']", "data-version")
        .await;
    assert!(versions.contains(&"v1".to_string()) && versions.contains(&"v2".to_string()));
    let requests = browser.attribute_values("g.edge", "data-requests").await;
    assert!(requests.len() >= 5, "edges: {requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.parse::<f64>().unwrap_or(0.0) > 0.0),
        "an edge without requests: {requests:?}"
    );
    browser.screenshot("graph").await;

    // Trace list, then one trace.
    browser
        .client
        .goto(&format!("{base}#/traces?service=web&limit=20"))
        .await
        .expect("open traces");
    assert_eq!(browser.wait_view("traces").await, "ready");
    let trace_ids = browser
        .attribute_values("tr.trace-row", "data-trace-id")
        .await;
    assert!(!trace_ids.is_empty());
    browser.screenshot("traces").await;
    let row = browser
        .client
        .find(Locator::Css("tr.trace-row"))
        .await
        .expect("a trace row");
    row.click().await.expect("click the trace");
    assert_eq!(browser.wait_view("trace").await, "ready");
    let services = eventually("the waterfall of a whole trace", || async {
        let services = browser
            .attribute_values("div.span-row", "data-service")
            .await;
        if ["web", "stock-api", "products"]
            .iter()
            .all(|s| services.iter().any(|x| x == s))
        {
            Ok(services)
        } else {
            Err(format!("{services:?}"))
        }
    })
    .await;
    assert!(services.len() >= 5, "{services:?}");
    let first_span = browser
        .client
        .find(Locator::Css("div.span-row"))
        .await
        .expect("a span row");
    first_span.click().await.expect("click a span");
    let detail = browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#span-detail"))
        .await
        .expect("span details");
    let detail_text = detail.text().await.expect("detail text");
    assert!(detail_text.contains("http.request.method"), "{detail_text}");
    browser.screenshot("trace").await;

    let errors = browser.page_errors().await;
    assert!(errors.is_empty(), "page errors: {errors:?}");
    browser.close().await;
    mesh.shutdown().await;
}
