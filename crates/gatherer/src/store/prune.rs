//! Retention: old `events_count` rows (never those a consumer has not read), forgotten
//! batch ids and NATS ranges, expired idempotency keys.

use sqlx::MySqlPool;

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub rows: u64,
    pub batches: u64,
    /// `nats_consumed` ranges forgotten.
    pub nats_ranges: u64,
}

/// Deletes `events_count` rows older than `older_than` whose id is at most
/// `keep_after_iterator`, in small autocommitted batches so that flushes never wait long;
/// rows a consumer has not read yet (ids above the iterator) are never touched. Also
/// forgets `flush_batches` ids and `nats_consumed` ranges older than the cutoff: retries
/// and redeliveries happen within minutes.
pub async fn prune(
    pool: &MySqlPool,
    older_than: chrono::DateTime<chrono::Utc>,
    keep_after_iterator: u64,
    batch_rows: u32,
) -> Result<PruneReport, sqlx::Error> {
    let mut report = PruneReport::default();
    let mut conn = pool.acquire().await?;
    // No gap locks: concurrent flushes insert at the end of the table unhindered.
    sqlx::query!("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await?;
    loop {
        let deleted = sqlx::query!(
            "DELETE FROM events_count WHERE ec_id <= ? AND event_date < ? ORDER BY ec_id LIMIT ?",
            keep_after_iterator,
            older_than.naive_utc(),
            batch_rows,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        report.rows += deleted;
        if deleted < u64::from(batch_rows) {
            break;
        }
    }
    loop {
        let deleted = sqlx::query!(
            "DELETE FROM flush_batches WHERE created_at < ? LIMIT ?",
            older_than.naive_utc(),
            batch_rows,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        report.batches += deleted;
        if deleted < u64::from(batch_rows) {
            break;
        }
    }
    loop {
        let deleted = sqlx::query!(
            "DELETE FROM nats_consumed WHERE created_at < ? LIMIT ?",
            older_than.naive_utc(),
            batch_rows,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        report.nats_ranges += deleted;
        if deleted < u64::from(batch_rows) {
            break;
        }
    }
    // The pooled connection goes back with its default isolation level.
    sqlx::query!("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *conn)
        .await?;
    Ok(report)
}

/// Deletes `idempotency_keys` rows whose newest key was accepted before `before_ms`, a
/// bounded number at a time; returns how many went.
pub async fn prune_idempotency_keys(pool: &MySqlPool, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM idempotency_keys WHERE newest_ms < ? ORDER BY newest_ms LIMIT 1000",
        before_ms,
    )
    .execute(pool)
    .await?
    .rows_affected())
}
