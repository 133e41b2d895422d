//! The README's first command as a user runs it: `weft demo` prints the
//! dashboard URL once everything is ready, serves it, and stops cleanly on
//! Ctrl-C (SIGINT).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::{client, eventually, patience};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_demo_prints_the_dashboard_and_stops_on_ctrl_c() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["demo", "--http", "127.0.0.1:0", "--rate", "20", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start weft demo");
    let stdout = demo.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(patience(), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("dashboard: ") {
                return Some(url.to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("a `dashboard: URL` line");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );

    let page = client().get(&url).send().await.expect("dashboard");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("weft"));
    // The load generator's traffic reaches the graph.
    let graph = format!("{url}api/weft/graph?window=60");
    eventually("demo traffic in the graph", || async {
        let body: serde_json::Value = client()
            .get(&graph)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if body["edges"].as_array().is_some_and(|e| e.len() >= 5) {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await;
    assert!(data.path().join("weft.db").exists());
    assert!(data.path().join("mesh/workloads.yaml").exists());

    let pid = demo.id().expect("pid");
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await
        .expect("kill -INT");
    assert!(status.success());
    let exit = tokio::time::timeout(patience(), demo.wait())
        .await
        .expect("demo stops after SIGINT")
        .expect("exit status");
    assert!(exit.success(), "demo exited with {exit}");
}

/// HTTP/2 without TLS (prior knowledge) on both listeners. As with
/// transparent interception, the client connects to the listener while its
/// `:authority` names the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served_on_outbound_and_inbound() {
    let mesh = crate::support::Mesh::start(0.0).await;
    let h2 = |host: &str, addr: std::net::SocketAddr| {
        reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .resolve(host, addr)
            .build()
            .expect("h2c client")
    };
    let inbound = mesh.workload("web").proxy.inbound_addr();
    let response = h2("web", inbound)
        .get("http://web/?item=fig")
        .send()
        .await
        .expect("h2c to inbound");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains(r#""item":"fig""#)
    );

    let outbound = mesh.workload("web").proxy.outbound_addr();
    let response = h2("stock-api", outbound)
        .get("http://stock-api/price?item=fig")
        .send()
        .await
        .expect("h2c to outbound");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains(r#""version":"#)
    );

    // A request naming the proxy itself is refused, not looped.
    let response = client()
        .get(format!("http://{outbound}/"))
        .header("host", outbound.to_string())
        .send()
        .await
        .expect("request to itself");
    assert_eq!(response.status(), 502);
    mesh.shutdown().await;
}
