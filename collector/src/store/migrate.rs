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
    /// the stored (child, parent) pairs.
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
            "SELECT trace_id, service_name, operation, trace_start FROM trace_operations \
             ORDER BY trace_id, service_name, operation",
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
        let links: Vec<(i64, String, String, i64, i64)> =
            sqlx::query_as("SELECT minute, parent, child, calls, errors FROM dependency_links")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(links, vec![(0, "web".to_owned(), "api".to_owned(), 1, 0)]);
    }
}
