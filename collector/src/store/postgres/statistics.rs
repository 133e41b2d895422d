//! The query planner's statistics, kept current by the collector.
//!
//! PostgreSQL plans from statistics that `ANALYZE` gathers; autovacuum runs
//! it at most once a minute per database, and not at all where it is turned
//! off. A store that takes a burst of spans is then planned as if it were
//! empty or small: a read of one batch's traces (`trace_id = ANY(..)`) on
//! ten million spans never analyzed was planned as a sequential scan and
//! took seconds per batch. So the collector applies autovacuum's own rule
//! itself, every few seconds ([`crate::statistics::INTERVAL`]): a table of
//! its schema whose rows changed by more than [`BASE`] + [`SCALE`] × its
//! live rows since it was last analyzed (by anyone) is analyzed now.
//! `ANALYZE` samples a fixed number of rows (tens of milliseconds at ten
//! million spans) and does not block writes.
//!
//! Several collectors may share the database: a transaction-scoped advisory
//! lock on the schema lets one of them analyze at a time; the others skip
//! the pass (the next one sees what changed meanwhile).

use sqlx::{PgPool, Row};

use crate::store::StoreError;

/// Changed rows a table may take before it is analyzed again, at least
/// (autovacuum's `autovacuum_analyze_threshold` default).
pub const BASE: f64 = 1000.0;
/// ... plus this share of its live rows (`autovacuum_analyze_scale_factor`).
pub const SCALE: f64 = 0.1;

/// The tables of the store's schema that changed enough.
const STALE_TABLES: &str = "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables \
     WHERE schemaname = current_schema() \
     AND n_mod_since_analyze > $1 + $2 * GREATEST(n_live_tup, 0) ORDER BY relname";

/// One analyzing collector per schema (the advisory lock's two keys).
const LOCK: &str =
    "SELECT pg_try_advisory_xact_lock(hashtext('weft.statistics'), hashtext(current_schema()))";

/// Analyzes the tables that changed enough since they were last analyzed;
/// returns their qualified names (none when another collector holds the
/// lock).
pub(super) async fn refresh(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let stale: Vec<String> = sqlx::query_scalar(STALE_TABLES)
        .bind(BASE)
        .bind(SCALE)
        .fetch_all(pool)
        .await?;
    if stale.is_empty() {
        return Ok(stale);
    }
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query(LOCK).fetch_one(&mut *tx).await?.try_get(0)?;
    if !locked {
        return Ok(Vec::new());
    }
    for table in &stale {
        // The name was quoted by `format('%I.%I')` on the server.
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(stale)
}
