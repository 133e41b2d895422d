//! The collector keeps PostgreSQL's planner statistics current itself
//! (`store/postgres/statistics.rs`): on this machine's server autovacuum is
//! off, so a table the collector filled is analyzed by the collector or by
//! no one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod postgres_support;

use std::time::{Duration, Instant};

use common::{TestCollector, demo_trace, now_nanos, trace_request};
use prost::Message;
use sqlx::Connection;

const SPAN_TABLES: [&str; 4] = [
    "spans",
    "trace_operations",
    "trace_services",
    "trace_summaries",
];

#[tokio::test]
async fn the_collector_analyzes_the_tables_it_fills() {
    postgres_support::with_schema("weft_statistics", analyzes).await;
}

async fn analyzes(url: String) {
    let collector = TestCollector::start_with(tempfile::tempdir().unwrap(), url.clone()).await;
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let analyzed = "SELECT relname::text FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND last_analyze IS NOT NULL ORDER BY relname";
    let none: Vec<String> = sqlx::query_scalar(analyzed)
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(none, Vec::<String>::new(), "nothing analyzed before ingest");

    // 1,200 traces of 3 spans in 2 services: every span table gets over the
    // threshold of an empty table (1,000 changed rows).
    let start = now_nanos() - 60_000_000_000;
    let mut export = trace_request(Vec::new());
    for n in 0..1200_u32 {
        let mut trace_id = [0x5a; 16];
        trace_id[12..].copy_from_slice(&n.to_be_bytes());
        export
            .resource_spans
            .extend(demo_trace(trace_id, start + u64::from(n) * 1_000_000).resource_spans);
    }
    let (status, _, _) = collector
        .post_otlp(
            "/v1/traces",
            "application/x-protobuf",
            false,
            export.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);

    // The background pass (every 5 s; the server publishes the row counts
    // it reads within about 10 s) analyzes the span tables.
    let deadline = Instant::now() + Duration::from_secs(60);
    let tables = loop {
        let tables: Vec<String> = sqlx::query_scalar(analyzed)
            .fetch_all(&mut db)
            .await
            .unwrap();
        let all = SPAN_TABLES
            .iter()
            .all(|table| tables.iter().any(|t| t == table));
        if all || Instant::now() > deadline {
            break tables;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for table in [
        "spans",
        "trace_operations",
        "trace_services",
        "trace_summaries",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} not analyzed: {tables:?}"
        );
    }
    // The planner now knows the spans' trace ids: one statistics row each
    // for the columns of `spans`. (The server counts an ANALYZE in
    // `last_analyze` before its transaction commits the statistics rows:
    // those may show up a moment later.)
    let distinct: f32 = loop {
        let distinct: Option<f32> = sqlx::query_scalar(
            "SELECT n_distinct FROM pg_stats WHERE schemaname = current_schema() \
             AND tablename = 'spans' AND attname = 'trace_id'",
        )
        .fetch_optional(&mut db)
        .await
        .unwrap();
        match distinct {
            Some(distinct) => break distinct,
            None if Instant::now() > deadline => panic!("no statistics for spans.trace_id"),
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    // (n_distinct is negative when it is a share of the rows: 1,200 of 3,600.)
    assert!(
        (distinct - 1200.0).abs() < 1.0 || (distinct + 1.0 / 3.0).abs() < 0.01,
        "n_distinct of spans.trace_id: {distinct}"
    );

    // Nothing changed since: a pass analyzes nothing.
    let store = weft_collector::store::open(&url).await.unwrap();
    assert_eq!(
        store.refresh_statistics().await.unwrap(),
        Vec::<String>::new()
    );
    store.close().await;
    db.close().await.unwrap();
    collector.stop().await;
}
