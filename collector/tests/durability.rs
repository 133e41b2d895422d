//! Durability: a collector process killed with SIGKILL in the middle of
//! ingest loses no span whose export was acknowledged, and stores no export
//! half-way. SQLite runs in WAL mode with `synchronous=NORMAL`: a commit is
//! in the WAL (the OS page cache) before the answer is sent, which survives
//! the death of the process (only a power loss or kernel crash could lose
//! the last transactions; `synchronous=FULL` would cover those too).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{now_nanos, span, trace_request};
use prost::Message;
use std::io::BufRead;
use weft_collector::store::{self, TraceId};

const SPANS_PER_EXPORT: usize = 50;
const CLIENTS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Acknowledged,
    Failed,
}

#[tokio::test]
async fn sigkill_during_ingest_loses_no_acknowledged_span() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("weft.db").display());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weft-collectord"))
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The first line comes once every listener is bound (or the process
    // died, and the line is empty).
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let addresses: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = format!(
        "http://{}/v1/traces",
        addresses["otlp_http"].as_str().unwrap()
    );

    // Clients export as fast as they can, recording each export's outcome.
    let outcomes: Arc<Mutex<BTreeMap<u32, Outcome>>> = Arc::default();
    let mut clients = Vec::new();
    for client_index in 0..CLIENTS {
        let outcomes = outcomes.clone();
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0u32.. {
                let export = u32::try_from(client_index).unwrap() * 1_000_000 + n;
                let trace = trace_id(export);
                let start = now_nanos();
                let spans = (0..SPANS_PER_EXPORT)
                    .map(|i| {
                        let mut id = [0u8; 8];
                        id[..4].copy_from_slice(&export.to_be_bytes());
                        id[4..].copy_from_slice(&u32::try_from(i + 1).unwrap().to_be_bytes());
                        span(trace, id, None, "op", 2, start, Duration::from_millis(1))
                    })
                    .collect();
                let body = trace_request(vec![("svc", "v1", spans)]).encode_to_vec();
                let result = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                let outcome = match result {
                    Ok(response) if response.status().as_u16() == 200 => Outcome::Acknowledged,
                    Ok(_) => Outcome::Failed,
                    Err(_) => {
                        outcomes.lock().unwrap().insert(export, Outcome::Failed);
                        return;
                    }
                };
                outcomes.lock().unwrap().insert(export, outcome);
            }
        }));
    }
    // Kill once a good number of exports were acknowledged (mid-stream).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let acknowledged = outcomes
            .lock()
            .unwrap()
            .values()
            .filter(|outcome| **outcome == Outcome::Acknowledged)
            .count();
        if acknowledged >= 100 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "ingest too slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    for client in clients {
        client.await.unwrap();
    }

    let outcomes = outcomes.lock().unwrap().clone();
    let store = store::open(&db).await.unwrap();
    let mut acknowledged = 0;
    for (export, outcome) in &outcomes {
        let id = TraceId(trace_id(*export));
        let spans = store.get_traces(&[id]).await.unwrap();
        match outcome {
            Outcome::Acknowledged => {
                acknowledged += 1;
                assert_eq!(
                    spans.len(),
                    SPANS_PER_EXPORT,
                    "acknowledged export {export} lost spans"
                );
            }
            Outcome::Failed => assert!(
                spans.is_empty() || spans.len() == SPANS_PER_EXPORT,
                "export {export} stored half-way: {} spans",
                spans.len()
            ),
        }
    }
    assert!(acknowledged >= 100);
    store.close().await;
}

fn trace_id(export: u32) -> [u8; 16] {
    let mut id = [0xd0; 16];
    id[12..].copy_from_slice(&export.to_be_bytes());
    id
}
