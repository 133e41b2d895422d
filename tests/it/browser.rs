//! The dashboard in a real headless Chromium (through chromedriver), over a
//! collector filled by a real mesh run (plus synthetic traces and a
//! 200-service metric set sent through the real ingest endpoints).
//! Screenshots of each view go to `weft-screenshots/` under Cargo's
//! test temp dir (inside the target dir, not in git); the path is printed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::browser_data::{
    big_trace, hostile_trace, paging_traces, post_otlp_metrics, post_zipkin, synthetic_mesh_metrics,
};
use crate::support::{Mesh, client, eventually, patience};

/// chromedriver's (pre-W3C, still served) browser log command.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &reqwest::Url) -> (reqwest::Method, Option<String>) {
        (
            reqwest::Method::POST,
            Some(r#"{"type":"browser"}"#.to_owned()),
        )
    }
}

/// Where screenshots go: under Cargo's temp dir for integration tests
/// (inside the target dir), never in the source tree.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("weft-screenshots")
}

async fn get_json(url: &str) -> Result<Value, String> {
    let response = client().get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

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
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
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
             return v && v.dataset.view === '{view}' && !v.dataset.stale ? (v.dataset.state || '') : '';"
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
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let path = dir.join(format!("{name}.png"));
            if std::fs::write(&path, png).is_ok() {
                println!("screenshot: {}", path.display());
            }
        }
    }

    /// Opens `hash` on the already loaded dashboard and returns how long
    /// the browser took from the navigation to painting the view, in ms
    /// (measured in the page with `performance.now()`).
    pub async fn timed_navigation(&self, view: &str, hash: &str) -> f64 {
        self.mark_stale().await;
        self.client
            .execute(
                "window.__navStart = performance.now(); window.location.hash = arguments[0];",
                vec![json!(hash)],
            )
            .await
            .expect("navigate");
        let state = self.wait_view(view).await;
        assert_eq!(state, "ready", "{hash}");
        eventually("the view to be painted", || async {
            let elapsed = self
                .client
                .execute(
                    "const v = document.getElementById('view'); \
                     return v.dataset.paintedMs ? Number(v.dataset.paintedMs) - window.__navStart : null;",
                    vec![],
                )
                .await
                .map_err(|e| e.to_string())?;
            elapsed.as_f64().ok_or_else(|| format!("{elapsed}"))
        })
        .await
    }

    /// Navigates; the view on screen is marked stale first so that
    /// [`Browser::wait_view`] waits for the new one even when the view
    /// name does not change (a hash navigation re-mounts asynchronously).
    pub async fn goto(&self, url: &str) {
        self.mark_stale().await;
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn mark_stale(&self) {
        let _ = self
            .client
            .execute(
                "const v = document.getElementById('view'); if (v) v.dataset.stale = '1';",
                vec![],
            )
            .await;
    }

    pub async fn text(&self, selector: &str) -> String {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// Clicks an element by dispatching the event (SVG groups have no
    /// reliable centre point for a pointer click).
    pub async fn dispatch_click(&self, selector: &str) {
        let found = self
            .client
            .execute(
                "const el = document.querySelector(arguments[0]); \
                 if (!el) return false; \
                 el.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true;",
                vec![json!(selector)],
            )
            .await
            .expect("execute");
        assert_eq!(found, json!(true), "no {selector}");
    }

    /// Waits until `selector` matches at least `n` elements.
    pub async fn wait_count(&self, selector: &str, n: usize) -> usize {
        eventually(&format!("{n} × {selector}"), || async {
            let count = self.count(selector).await;
            if count >= n {
                Ok(count)
            } else {
                Err(format!("{count}"))
            }
        })
        .await
    }

    pub async fn count(&self, selector: &str) -> usize {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .map_or(0, |all| all.len())
    }

    pub async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// The browser's console log since the last call (chromedriver's
    /// `se/log`), entries at level SEVERE: failed loads, CSP violations,
    /// uncaught errors, `console.error`.
    pub async fn severe_console_entries(&self) -> Vec<Value> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver returns the browser log");
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|entry| entry["level"] == "SEVERE")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// No errors on the page: neither what the page collected itself
    /// (`window.__weftErrors`) nor SEVERE entries in the browser log.
    pub async fn assert_no_page_errors(&self, page: &str) {
        let errors = self.page_errors().await;
        assert!(errors.is_empty(), "page errors on {page}: {errors:?}");
        let console = self.severe_console_entries().await;
        assert!(
            console.is_empty(),
            "browser console errors on {page}: {console:?}"
        );
    }

    pub async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_graph_split_and_traces_of_a_real_mesh() {
    let mesh = Mesh::start(25.0).await;
    let base = mesh.collector_url("/");
    let graph_url = mesh.collector_url("/api/weft/graph?window=300");
    eventually("traffic on every edge of the demo graph", || async {
        let graph = get_json(&graph_url).await?;
        let edges = graph["edges"].as_array().map_or(0, Vec::len);
        // unknown -> web, web -> stock-api v1 and v2, stock-api v1/v2 -> products
        if edges >= 5 {
            Ok(())
        } else {
            Err(graph.to_string())
        }
    })
    .await;

    // Synthetic traces through the real Zipkin ingest: 10,000 spans, and
    // one span whose attributes hold markup.
    let big_id = "0b1e0000000000000000000000010000";
    let hostile_id = "0e5c0000000000000000000000000001";
    for chunk in big_trace(big_id, 10_000).chunks(2_500) {
        post_zipkin(&base, chunk).await;
    }
    post_zipkin(&base, &hostile_trace(hostile_id)).await;
    let (paged_ids, paged_spans) = paging_traces(12);
    post_zipkin(&base, &paged_spans).await;

    let browser = Browser::start().await;
    println!("screenshots: {}", screenshot_dir().display());

    // --- Service graph ---
    browser.goto(&format!("{base}#/graph?window=300")).await;
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
    let rates = browser.attribute_values("g.edge", "data-rps").await;
    assert!(
        rates.len() >= 5 && rates.iter().all(|r| r.parse::<f64>().unwrap_or(0.0) > 0.0),
        "an edge without a rate: {rates:?}"
    );
    // Every in-mesh edge is mutual TLS (the demo runs STRICT); traffic from
    // outside the mesh is not.
    // (An edge counts as mTLS once its destination sidecar has reported it;
    // right after start only the source may have: wait for live refreshes.)
    eventually("mTLS on every in-mesh edge", || async {
        let mtls = browser.attribute_values("g.edge", "data-mtls").await;
        let secure = mtls.iter().filter(|m| *m == "true").count();
        if mtls.len() >= 5 && secure == mtls.len() - 1 {
            Ok(())
        } else {
            Err(format!("{mtls:?}"))
        }
    })
    .await;
    assert!(browser.count("g.mtls-badge").await >= 4);
    // The layout stays put across a live refresh.
    let positions = "return [...document.querySelectorAll('g.node')].map(g => \
        g.dataset.id + '@' + g.querySelector('circle.node-ring').getAttribute('cx') + ',' + \
        g.querySelector('circle.node-ring').getAttribute('cy')).sort().join(' ');";
    let before = browser
        .client
        .execute(positions, vec![])
        .await
        .expect("positions");
    let stamp = browser.text(".refresh-status").await;
    eventually("a live refresh of the graph", || async {
        let now = browser.text(".refresh-status").await;
        if now != stamp && now.starts_with("Updated") {
            Ok(())
        } else {
            Err(now)
        }
    })
    .await;
    let after = browser
        .client
        .execute(positions, vec![])
        .await
        .expect("positions");
    assert_eq!(before, after, "nodes moved on refresh");
    browser.screenshot("graph").await;
    browser.assert_no_page_errors("graph").await;

    // Click an edge: its recent traces, errors and slow ones first.
    browser
        .dispatch_click("g.edge[data-source='default/web'][data-target='default/stock-api-v2']")
        .await;
    browser.wait_count("#edge-traces tr.trace-row", 1).await;
    browser.screenshot("graph-edge-traces").await;
    // Click a node: its RED charts.
    browser
        .dispatch_click("g.node[data-workload='stock-api-v1']")
        .await;
    browser.wait_count("#node-red figure.chart-box", 3).await;
    browser.screenshot("graph-node-red").await;
    browser.assert_no_page_errors("graph clicks").await;

    // Edge labels switch to a latency quantile.
    browser
        .goto(&format!("{base}#/graph?window=300&label=p99"))
        .await;
    assert_eq!(browser.wait_view("graph").await, "ready");
    let label = browser.text("g.edge .edge-rate").await;
    assert!(label.starts_with("p99"), "{label}");
    // Replay of a past window (ending now) renders without live refresh.
    let now_ms = crate::browser_data::now_us() / 1000;
    browser
        .goto(&format!("{base}#/graph?window=300&end_ms={now_ms}"))
        .await;
    assert_eq!(browser.wait_view("graph").await, "ready");
    assert!(browser.count("g.edge").await >= 5);
    assert!(browser.text(".refresh-status").await.contains("Replay"));
    // One window earlier, before the mesh started: nothing to draw.
    browser.mark_stale().await;
    browser.click("#replay-earlier").await;
    assert_eq!(browser.wait_view("graph").await, "empty");
    browser.assert_no_page_errors("graph replay").await;

    // --- Canary split: configured 90/10 (demo.yaml), observed close to it ---
    let split_url = mesh.collector_url("/api/weft/split?service=stock-api&window=300");
    eventually("200 requests to stock-api", || async {
        let split = get_json(&split_url).await?;
        let requests: f64 = split["versions"]
            .as_array()
            .map(|all| all.iter().filter_map(|v| v["requests"].as_f64()).sum())
            .unwrap_or(0.0);
        if requests >= 200.0 {
            Ok(())
        } else {
            Err(format!("{requests} requests"))
        }
    })
    .await;
    browser
        .goto(&format!("{base}#/split?service=stock-api&window=300"))
        .await;
    assert_eq!(browser.wait_view("split").await, "ready");
    for (version, expected) in [("v1", 90.0), ("v2", 10.0)] {
        let selector = format!("tr.version-row[data-version='{version}']");
        let configured = browser.attribute_values(&selector, "data-configured").await;
        let observed = browser.attribute_values(&selector, "data-observed").await;
        let configured: f64 = configured
            .first()
            .and_then(|v| v.parse().ok())
            .expect("configured");
        let observed: f64 = observed
            .first()
            .and_then(|v| v.parse().ok())
            .expect("observed");
        assert!(
            (configured - expected).abs() < 0.01,
            "{version} configured {configured}"
        );
        // ≥ 200 requests: the binomial sd of a 10 % share is ≤ 2.1 points;
        // 8 points is ~4 sd.
        assert!(
            (observed - expected).abs() < 8.0,
            "{version} observed {observed}"
        );
    }
    let verdict = browser.attribute_values("#verdict", "data-status").await;
    assert!(
        verdict
            .iter()
            .any(|v| ["ok", "canary_worse", "insufficient_data"].contains(&v.as_str())),
        "{verdict:?}"
    );
    let rules = browser.text("#verdict").await;
    assert!(rules.contains("z-test") || rules.contains("z ="), "{rules}");
    browser.screenshot("split").await;
    browser.assert_no_page_errors("split").await;

    // --- Services, then the RED of one ---
    browser.goto(&format!("{base}#/service")).await;
    assert_eq!(browser.wait_view("service").await, "ready");
    let listed = browser.attribute_values("tr.service-row", "data-app").await;
    for app in ["web", "stock-api", "products"] {
        assert!(listed.iter().any(|a| a == app), "{listed:?}");
    }
    browser.screenshot("services").await;
    browser.assert_no_page_errors("services").await;
    browser
        .goto(&format!("{base}#/service/stock-api?window=300"))
        .await;
    assert_eq!(browser.wait_view("service").await, "ready");
    assert_eq!(browser.count("figure.chart-box").await, 3);
    browser.screenshot("service-red").await;
    browser.assert_no_page_errors("service").await;

    // --- Search by tag: traces that reached stock-api v2 ---
    let tag = "weft.destination.version=v2";
    let search_url = mesh.collector_url(&format!(
        "/api/weft/traces?service=web&tag={}&limit=20",
        tag.replace('=', "%3D")
    ));
    eventually("traces tagged with v2", || async {
        let found = get_json(&search_url).await?;
        if found["total"].as_u64().unwrap_or(0) > 0 {
            Ok(())
        } else {
            Err(found.to_string())
        }
    })
    .await;
    browser
        .goto(&format!(
            "{base}#/traces?service=web&tag={}&limit=20",
            tag.replace('=', "%3D")
        ))
        .await;
    assert_eq!(browser.wait_view("traces").await, "ready");
    let trace_ids = browser
        .attribute_values("tr.trace-row", "data-trace-id")
        .await;
    assert!(!trace_ids.is_empty());
    assert_eq!(
        browser.count("circle.scatter-dot").await,
        trace_ids.len(),
        "one scatter dot per result"
    );
    for id in &trace_ids {
        let trace = get_json(&mesh.collector_url(&format!("/api/weft/traces/{id}")))
            .await
            .expect("trace");
        let tagged = trace["spans"].as_array().is_some_and(|spans| {
            spans
                .iter()
                .any(|span| span["attributes"]["weft.destination.version"] == "v2")
        });
        assert!(tagged, "trace {id} has no span with {tag}");
    }
    let total: u64 = browser
        .attribute_values(".results-count", "data-total")
        .await
        .first()
        .and_then(|t| t.parse().ok())
        .expect("a total");
    assert!(total >= trace_ids.len() as u64);
    browser.screenshot("traces-by-tag").await;
    browser.assert_no_page_errors("traces").await;

    // The unique tag of the hostile trace finds exactly that trace.
    browser
        .goto(&format!("{base}#/traces?tag=test.marker%3Dxss-1"))
        .await;
    assert_eq!(browser.wait_view("traces").await, "ready");
    let found = browser
        .attribute_values("tr.trace-row", "data-trace-id")
        .await;
    assert_eq!(found, vec![hostile_id.to_string()]);

    // Pages, over traces that are whole and settled (the demo's live traces
    // can still gain an earlier span, or a late one, while the pages are
    // read, which moves them between offset pages): 12 traces, pages of 5,
    // newest first, exactly in order, the total exact on every page.
    let mut page_url = format!("{base}#/traces?service=pager&limit=5&lookback=3600");
    for (number, expected) in paged_ids.chunks(5).enumerate() {
        browser.goto(&page_url).await;
        assert_eq!(browser.wait_view("traces").await, "ready");
        let page = browser
            .attribute_values("tr.trace-row", "data-trace-id")
            .await;
        assert_eq!(page, expected, "page {}", number + 1);
        let total = browser
            .attribute_values(".results-count", "data-total")
            .await;
        assert_eq!(total, vec!["12".to_string()], "page {}", number + 1);
        let next = browser.attribute_values("#page-next", "href").await;
        if number == 2 {
            assert!(next.is_empty(), "no page after the last: {next:?}");
            break;
        }
        // The next page keeps the first page's window (pinned by the pager),
        // so the traces that keep arriving do not shift it.
        assert_eq!(next.len(), 1, "a next page link on page {}", number + 1);
        assert!(
            next[0].contains(&format!("offset={}", (number + 1) * 5))
                && next[0].contains("start_us=")
                && next[0].contains("end_us="),
            "{next:?}"
        );
        // (ChromeDriver answers an href resolved against the page.)
        page_url = if next[0].starts_with("http") {
            next[0].clone()
        } else {
            format!("{base}{}", next[0])
        };
    }

    // Whole-trace duration and the store's order: only the 10,000-span trace
    // (2 s) lasts over a second; ordered longest first it leads.
    browser
        .goto(&format!("{base}#/traces?min_duration=1s"))
        .await;
    assert_eq!(browser.wait_view("traces").await, "ready");
    assert_eq!(
        browser
            .attribute_values("tr.trace-row", "data-trace-id")
            .await,
        vec![big_id.to_string()]
    );
    let now = crate::browser_data::now_us();
    browser
        .goto(&format!(
            "{base}#/traces?max_duration=1s&start_us={}&end_us={now}&limit=50",
            now - 600_000_000
        ))
        .await;
    assert_eq!(browser.wait_view("traces").await, "ready");
    let short = browser
        .attribute_values("tr.trace-row", "data-trace-id")
        .await;
    assert!(!short.is_empty() && !short.contains(&big_id.to_string()));
    let range = browser
        .client
        .execute(
            "return document.getElementById('q-lookback').value;",
            vec![],
        )
        .await
        .expect("execute");
    assert_eq!(range, json!("custom"));
    browser
        .goto(&format!("{base}#/traces?order=longest&limit=10"))
        .await;
    assert_eq!(browser.wait_view("traces").await, "ready");
    let longest = browser
        .attribute_values("tr.trace-row", "data-trace-id")
        .await;
    assert_eq!(longest.first().map(String::as_str), Some(big_id));
    browser.assert_no_page_errors("trace search").await;

    // --- One mesh trace: waterfall, details, critical path, summary ---
    let first = trace_ids[0].clone();
    browser.goto(&format!("{base}#/trace/{first}")).await;
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
    assert!(
        browser.count("div.span-row.crit").await >= 1,
        "a critical path"
    );
    assert!(
        browser.count("#trace-summary tbody tr").await >= 3,
        "a summary table"
    );
    browser.click("div.span-row").await;
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
    browser.assert_no_page_errors("trace").await;

    // --- Compare two traces: tick two results, follow the link ---
    if trace_ids.len() >= 2 {
        browser
            .goto(&format!(
                "{base}#/traces?service=web&tag={}&limit=20",
                tag.replace('=', "%3D")
            ))
            .await;
        assert_eq!(browser.wait_view("traces").await, "ready");
        let on_page = browser
            .attribute_values("tr.trace-row", "data-trace-id")
            .await;
        assert!(on_page.len() >= 2, "{on_page:?}");
        for id in &on_page[..2] {
            browser.click(&format!("input.pick[value='{id}']")).await;
        }
        let href = browser.attribute_values("#compare-link", "href").await;
        assert_eq!(href.len(), 1, "the compare link is enabled");
        browser.mark_stale().await;
        browser.click("#compare-link").await;
        assert_eq!(browser.wait_view("compare").await, "ready");
        assert!(browser.count("tr.diff-row").await >= 3);
        browser.screenshot("compare").await;
        browser.assert_no_page_errors("compare").await;
    }

    // --- Markup in attributes is text ---
    browser.goto(&format!("{base}#/trace/{hostile_id}")).await;
    assert_eq!(browser.wait_view("trace").await, "ready");
    browser.click("div.span-row").await;
    let detail = browser.text("#span-detail").await;
    assert!(detail.contains("<script>alert(1)</script>"), "{detail}");
    assert!(
        detail.contains("<img src=x onerror=\"window.__xss=1\">"),
        "{detail}"
    );
    let injected = browser
        .client
        .execute(
            "return document.querySelectorAll('#view script, #view img[src=x], #view b').length + (window.__xss ? 100 : 0);",
            vec![],
        )
        .await
        .expect("execute");
    assert_eq!(
        injected.as_i64(),
        Some(0),
        "markup from a span became elements"
    );
    browser.screenshot("trace-hostile").await;
    browser.assert_no_page_errors("hostile trace").await;

    // --- 10,000 spans: navigation to painted view in under 2 s ---
    let elapsed = browser
        .timed_navigation("trace", &format!("#/trace/{big_id}"))
        .await;
    let fetch_ms = browser
        .client
        .execute(
            "const e = performance.getEntriesByType('resource') \
               .filter(r => r.name.includes('/api/weft/traces/' + arguments[0])).pop(); \
             return e ? e.responseEnd - e.startTime : null;",
            vec![json!(big_id)],
        )
        .await
        .expect("resource timing");
    println!(
        "10,000-span trace: fetched, laid out and painted in {elapsed:.0} ms \
         (of which the API call {fetch_ms} ms)"
    );
    let count = browser.attribute_values("#view", "data-span-count").await;
    assert_eq!(count, vec!["10000".to_string()]);
    // The 2 s budget is measured (BENCHMARKS.md ## Dashboard), not asserted:
    // on a loaded 2-core machine a debug collector alone can take longer.
    // Five times the budget means something hangs.
    assert!(elapsed < 10_000.0, "10,000-span trace took {elapsed:.0} ms");
    // Virtualized: scrolling to the end renders the last rows.
    browser
        .client
        .execute("window.scrollTo(0, document.body.scrollHeight);", vec![])
        .await
        .expect("scroll");
    eventually("the last rows after scrolling", || async {
        let ids = browser
            .attribute_values("div.span-row", "data-span-id")
            .await;
        if ids.iter().any(|id| id == &format!("{:016x}", 10_000)) {
            Ok(())
        } else {
            Err(format!("{} rows, last {:?}", ids.len(), ids.last()))
        }
    })
    .await;
    browser
        .client
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .expect("scroll");
    // Collapsing the root hides its 9,999 descendants; expanding shows them.
    let root_toggle = "div.span-row[data-span-id='0000000000000001'] .toggle";
    browser.wait_count(root_toggle, 1).await;
    browser.dispatch_click(root_toggle).await;
    eventually("the collapsed trace", || async {
        let rows = browser.count("div.span-row").await;
        if rows == 1 {
            Ok(())
        } else {
            Err(format!("{rows} rows"))
        }
    })
    .await;
    browser.dispatch_click(root_toggle).await;
    browser.wait_count("div.span-row", 40).await;
    // Find in trace: the 1,250 spans of service big-3, listed alone.
    browser
        .client
        .execute(
            "const i = document.getElementById('trace-find'); i.value = 'big-3'; \
             i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));",
            vec![],
        )
        .await
        .expect("find");
    let found = browser
        .attribute_values("#trace-find-count", "data-count")
        .await;
    assert_eq!(found, vec!["1250".to_string()]);
    let shown = browser
        .attribute_values("div.span-row", "data-service")
        .await;
    assert!(
        !shown.is_empty() && shown.iter().all(|s| s == "big-3"),
        "{shown:?}"
    );
    browser
        .client
        .execute(
            "const i = document.getElementById('trace-find'); i.value = ''; \
             i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));",
            vec![],
        )
        .await
        .expect("clear find");
    browser.screenshot("trace-10000-spans").await;
    browser.assert_no_page_errors("big trace").await;

    browser.close().await;
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_of_200_services_is_interactive_within_a_second() {
    let data = tempfile::tempdir().expect("temp dir");
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let collector = weft_collector::Config {
        db: format!("sqlite://{}", data.path().join("weft.db").display()),
        http: any,
        otlp_grpc: any,
        otlp_http: any,
        ..Default::default()
    }
    .build()
    .await
    .expect("collector");
    post_otlp_metrics(collector.otlp_http_addr(), &synthetic_mesh_metrics(200)).await;
    let base = format!("http://{}/", collector.http_addr());
    let graph = get_json(&format!("{base}api/weft/graph?window=300"))
        .await
        .expect("graph");
    let nodes = graph["nodes"].as_array().map_or(0, Vec::len);
    assert!(nodes >= 200, "{nodes} nodes");

    let browser = Browser::start().await;
    browser.goto(&format!("{base}#/traces")).await;
    browser.wait_view("traces").await;
    // The console-log channel works: a console.error shows up there.
    browser
        .client
        .execute(
            "console.error('probe'); window.__weftErrors.length = 0;",
            vec![],
        )
        .await
        .expect("execute");
    let probe = browser.severe_console_entries().await;
    assert!(
        probe
            .iter()
            .any(|e| e["message"].as_str().unwrap_or("").contains("probe")),
        "{probe:?}"
    );
    let mut timings = Vec::new();
    for round in 0..3 {
        // A different hash each round, so that the traces view re-mounts.
        browser
            .goto(&format!("{base}#/traces?limit={}", 10 + round))
            .await;
        browser.wait_view("traces").await;
        let elapsed = browser
            .timed_navigation("graph", "#/graph?window=300")
            .await;
        timings.push(elapsed);
    }
    let apps = browser.attribute_values("g.node", "data-app").await;
    assert!(apps.len() >= 200, "{} nodes drawn", apps.len());
    // Interactive: a click selects a node and fills the side panel.
    browser.dispatch_click("g.node[data-app='svc-042']").await;
    let side = browser.text(".graph-side").await;
    assert!(side.contains("svc-042"), "{side}");
    browser.screenshot("graph-200-services").await;
    browser.assert_no_page_errors("graph-200").await;

    // Usable at this size: find, hide, focus.
    browser
        .goto(&format!("{base}#/graph?window=300&find=svc-042"))
        .await;
    assert_eq!(browser.wait_view("graph").await, "ready");
    assert_eq!(browser.count("g.node.found").await, 1);
    browser
        .goto(&format!("{base}#/graph?window=300&hide=svc-1"))
        .await;
    assert_eq!(browser.wait_view("graph").await, "ready");
    let shown = browser.attribute_values("g.node", "data-app").await;
    assert!(
        shown.len() < 120 && shown.iter().all(|a| !a.starts_with("svc-1")),
        "{} nodes after hiding svc-1*",
        shown.len()
    );
    browser
        .goto(&format!("{base}#/graph?window=300&focus=svc-050"))
        .await;
    assert_eq!(browser.wait_view("graph").await, "ready");
    let mut focused = browser.attribute_values("g.node", "data-app").await;
    focused.sort();
    focused.dedup();
    assert_eq!(
        focused,
        [
            "svc-023", "svc-030", "svc-037", "svc-050", "svc-063", "svc-070", "svc-077"
        ]
    );
    browser.screenshot("graph-200-focus").await;
    browser.assert_no_page_errors("graph-200 filters").await;
    timings.sort_by(f64::total_cmp);
    println!(
        "200-service graph interactive after {timings:?} ms (median {:.0})",
        timings[1]
    );
    // Budget 1 s, measured (BENCHMARKS.md ## Dashboard); five times it is a hang.
    assert!(
        timings[1] < 5000.0,
        "200-service graph took {:.0} ms",
        timings[1]
    );
    browser.close().await;
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_guards_the_ui_and_apis() {
    let data = tempfile::tempdir().expect("temp dir");
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let collector = weft_collector::Config {
        db: format!("sqlite://{}", data.path().join("weft.db").display()),
        http: any,
        otlp_grpc: any,
        otlp_http: any,
        auth: Some("basic:admin:s3cret pass".parse().expect("auth")),
        ..Default::default()
    }
    .build()
    .await
    .expect("collector");
    let addr = collector.http_addr();
    for path in ["/", "/assets/app.js", "/api/weft/services", "/api/services"] {
        let response = client()
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 401, "{path}");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            challenge.starts_with("Basic realm=\"weft\""),
            "{path}: {challenge}"
        );
    }
    let health = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let with = client()
        .get(format!("http://{addr}/api/weft/services"))
        .basic_auth("admin", Some("s3cret pass"))
        .send()
        .await
        .expect("get");
    assert_eq!(with.status(), 200);
    let wrong = client()
        .get(format!("http://{addr}/api/weft/services"))
        .basic_auth("admin", Some("s3cret pasS"))
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);

    // The browser logs in with the credentials in the URL and then uses the
    // dashboard (its API calls carry the cached credentials).
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://admin:s3cret%20pass@{addr}/#/traces"))
        .await;
    assert_eq!(browser.wait_view("traces").await, "empty");
    browser.screenshot("auth-traces").await;
    browser.assert_no_page_errors("auth").await;
    browser.close().await;
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_collector_auth_flag_reads_a_bearer_token_file() {
    let data = tempfile::tempdir().expect("temp dir");
    let token_file = data.path().join("token");
    std::fs::write(&token_file, "t0ken-from-file\n").expect("token file");
    let db = format!("sqlite://{}", data.path().join("weft.db").display());
    let auth = format!("bearer-file:{}", token_file.display());
    let (mut collector, url) = crate::security_cli::start(
        &[
            "collector",
            "--http",
            "127.0.0.1:0",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--no-zipkin",
            "--db",
            &db,
            "--auth",
            &auth,
        ],
        "dashboard: ",
    )
    .await;
    let without = client().get(&url).send().await.expect("get");
    assert_eq!(without.status(), 401);
    assert_eq!(
        without
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"weft\"")
    );
    let with = client()
        .get(format!("{url}api/weft/services"))
        .bearer_auth("t0ken-from-file")
        .send()
        .await
        .expect("get");
    assert_eq!(with.status(), 200);
    let health = client()
        .get(format!("{url}ready"))
        .send()
        .await
        .expect("get");
    assert_eq!(health.status(), 200);
    let _ = collector.kill().await;
}

/// A dashboard reachable from other machines is never open by accident: without `--auth`
/// the collector refuses a non-loopback `--http` before binding anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_collector_refuses_an_open_dashboard_off_loopback() {
    let data = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["collector", "--http", "0.0.0.0:0", "--db"])
        .arg(format!(
            "sqlite://{}",
            data.path().join("weft.db").display()
        ))
        .output()
        .await
        .expect("run weft collector");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--http 0.0.0.0:0 is reachable from other machines")
            && stderr.contains("--auth none"),
        "{stderr}"
    );
    assert!(
        !data.path().join("weft.db").exists(),
        "refused before opening the store"
    );
    let usage = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["collector", "--auth", "token"])
        .output()
        .await
        .expect("run weft collector");
    assert_eq!(
        usage.status.code(),
        Some(2),
        "a bad --auth is a usage error"
    );
}
