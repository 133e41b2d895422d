//! The SQL migrations embedded at build time (see `build.rs`).

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The migrator for `migrations/sqlite`.
pub(crate) fn sqlite() -> Migrator {
    migrator(embedded::SQLITE)
}

/// The migrator for `migrations/postgres`.
pub(crate) fn postgres() -> Migrator {
    migrator(embedded::POSTGRES)
}

fn migrator(files: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_have_the_same_versions() {
        let versions = |files: &[(i64, &str, &str)]| -> Vec<i64> {
            files.iter().map(|(version, _, _)| *version).collect()
        };
        assert!(!super::embedded::SQLITE.is_empty());
        assert_eq!(
            versions(super::embedded::SQLITE),
            versions(super::embedded::POSTGRES)
        );
    }

    /// A database with spans from before the summary tables gets them
    /// backfilled: trace starts on every per-trace row, one
    /// `trace_operations` row per (trace, service, operation), the links of
    /// the stored (child, parent) pairs, and every span its trace's number.
    #[tokio::test]
    async fn sqlite_migrations_backfill_the_summaries() {
        use sqlx::sqlite::SqlitePoolOptions;

        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let early: Vec<_> = super::embedded::SQLITE
            .iter()
            .copied()
            .filter(|(version, _, _)| *version <= 3)
            .collect();
        super::migrator(early.leak()).run(&pool).await.unwrap();
        for (trace, span, parent, service, operation, start) in [
            (1u8, 1u8, None, "web", "GET /", 20),
            (1, 2, Some(1u8), "api", "GET /price", 10),
            (1, 3, Some(2), "api", "GET /price", 30),
            (2, 1, None, "web", "GET /x", 40),
        ] {
            sqlx::query(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, service_name, operation, \
                 kind, start_unix_nano, duration_nano, status_code) \
                 VALUES (?, ?, ?, ?, ?, 2, ?, 1, 0)",
            )
            .bind(vec![trace; 16])
            .bind(vec![span; 8])
            .bind(parent.map(|parent| vec![parent; 8]))
            .bind(service)
            .bind(operation)
            .bind(start)
            .execute(&pool)
            .await
            .unwrap();
        }
        super::sqlite().run(&pool).await.unwrap();
        let rows: Vec<(Vec<u8>, String, String, i64)> = sqlx::query_as(
            "SELECT t.trace_id, o.service_name, o.operation, o.trace_start \
             FROM trace_operations o JOIN trace_summaries t ON t.trace_no = o.trace_no \
             ORDER BY t.trace_id, o.service_name, o.operation",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let row = |trace: u8, service: &str, operation: &str, start: i64| {
            (
                vec![trace; 16],
                service.to_owned(),
                operation.to_owned(),
                start,
            )
        };
        assert_eq!(
            rows,
            vec![
                row(1, "api", "GET /price", 10),
                row(1, "web", "GET /", 10),
                row(2, "web", "GET /x", 40),
            ]
        );
        // Every span carries its trace's number (migration 0009).
        let numbered: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM spans s JOIN trace_summaries t \
             ON t.trace_no = s.trace_no AND t.trace_id = s.trace_id",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(numbered, 4);
        let links: Vec<(i64, String, String, i64, i64)> =
            sqlx::query_as("SELECT minute, parent, child, calls, errors FROM dependency_links")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(links, vec![(0, "web".to_owned(), "api".to_owned(), 1, 0)]);
    }

    /// The same on PostgreSQL, in a schema of its own on the server of
    /// `WEFT_TEST_POSTGRES_URL` (default: this machine's), up to trace
    /// numbers: a spans table keyed by (trace id, span id) becomes one
    /// keyed by (trace number, span id).
    #[tokio::test]
    async fn postgres_migrations_number_the_stored_traces() {
        use sqlx::Connection as _;
        use sqlx::postgres::PgPoolOptions;

        let base = std::env::var("WEFT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!("migrate_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{base}{separator}options[search_path]={schema}"))
            .await
            .unwrap();
        let early: Vec<_> = super::embedded::POSTGRES
            .iter()
            .copied()
            .filter(|(version, _, _)| *version <= 3)
            .collect();
        super::migrator(early.leak()).run(&pool).await.unwrap();
        for (trace, span, parent, service, start) in [
            (1u8, 1u8, None, "web", 20i64),
            (1, 2, Some(1u8), "api", 10),
            (2, 1, None, "web", 40),
        ] {
            sqlx::query(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, service_name, operation, \
                 kind, start_unix_nano, duration_nano, status_code) \
                 VALUES ($1, $2, $3, $4, 'op', 2, $5, 1, 0)",
            )
            .bind(vec![trace; 16])
            .bind(vec![span; 8])
            .bind(parent.map(|parent| vec![parent; 8]))
            .bind(service)
            .bind(start)
            .execute(&pool)
            .await
            .unwrap();
        }
        super::postgres().run(&pool).await.unwrap();
        // Numbered in order, and every per-trace row keyed by the number.
        let rows: Vec<(Vec<u8>, i64, i64, i64)> = sqlx::query_as(
            "SELECT t.trace_id, COUNT(DISTINCT s.span_id), COUNT(DISTINCT v.service_name), \
             COUNT(DISTINCT o.operation) FROM trace_summaries t \
             JOIN spans s ON s.trace_no = t.trace_no AND s.trace_id = t.trace_id \
             JOIN trace_services v ON v.trace_no = t.trace_no \
             JOIN trace_operations o ON o.trace_no = t.trace_no \
             GROUP BY t.trace_id ORDER BY t.trace_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows, vec![(vec![1; 16], 2, 2, 1), (vec![2; 16], 1, 1, 1)]);
        // A new trace gets a number past the stored ones.
        let numbers: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO trace_summaries (trace_id, start_unix_nano, end_unix_nano, \
             duration_nano, span_count, error_count) VALUES ($1, 0, 0, 0, 0, 0) \
             RETURNING trace_no",
        )
        .bind(vec![3u8; 16])
        .fetch_all(&pool)
        .await
        .unwrap();
        let max: i64 =
            sqlx::query_scalar("SELECT MAX(trace_no) FROM trace_summaries WHERE trace_id <> $1")
                .bind(vec![3u8; 16])
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(numbers[0] > max, "{numbers:?} after {max}");
        pool.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
