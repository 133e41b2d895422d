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
}
