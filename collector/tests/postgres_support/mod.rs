//! Shared by the store suites that run against PostgreSQL: a fresh schema on
//! the server named by `WEFT_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use sqlx::Connection;

/// Runs `suite` with the URL of a new schema `{prefix}_{pid}_{n}_{nanos}`,
/// then drops the schema, also when the suite panics (the panic goes on).
pub async fn with_schema<F>(prefix: &str, suite: impl FnOnce(String) -> F)
where
    F: Future<Output = ()>,
{
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var("WEFT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|error| {
            panic!("PostgreSQL at {base} (set WEFT_TEST_POSTGRES_URL): {error}")
        });
    let schema = format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    let outcome = std::panic::AssertUnwindSafe(suite(url))
        .catch_unwind()
        .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    admin.close().await.unwrap();
}
