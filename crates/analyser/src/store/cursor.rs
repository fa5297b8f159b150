//! The pull's bookkeeping: the shard's cursor and generation, and the datasets' clocks.

use chrono::DateTime;
use sqlx::{MySqlConnection, MySqlPool};

use crate::clock::DatasetClock;

use super::{date, seconds};

/// A shard's cursor row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorRow {
    /// The export iterator committed so far.
    pub iterator: u64,
    /// Moved on by every commit of a pull; a pull that finds it moved was superseded.
    pub generation: u64,
}

/// The shard's cursor row, created at iterator 0 if missing.
pub async fn claim_cursor(pool: &MySqlPool, shard: &str) -> Result<CursorRow, sqlx::Error> {
    sqlx::query!(
        "INSERT IGNORE INTO cursors (shard, iterator) VALUES (?, 0)",
        shard
    )
    .execute(pool)
    .await?;
    sqlx::query_as!(
        CursorRow,
        "SELECT iterator, generation FROM cursors WHERE shard = ?",
        shard
    )
    .fetch_one(pool)
    .await
}

/// The shard's generation, as committed.
pub async fn load_generation(pool: &MySqlPool, shard: &str) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query_scalar!("SELECT generation FROM cursors WHERE shard = ?", shard)
        .fetch_optional(pool)
        .await
}

/// Moves the shard's generation on from `seen`, first in every transaction of a pull;
/// false when another process moved it since (its commit is the one that counts). On a
/// Galera cluster two nodes moving it at once both get here, and certification fails
/// the later commit (a deadlock error).
pub async fn advance_generation(
    conn: &mut MySqlConnection,
    shard: &str,
    seen: u64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "UPDATE cursors SET generation = generation + 1 WHERE shard = ? AND generation = ?",
        shard,
        seen
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn save_cursor(
    conn: &mut MySqlConnection,
    shard: &str,
    iterator: u64,
    rows: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO cursors (shard, iterator, rows_seen, updated_at) VALUES (?, ?, ?, NOW(3)) \
         ON DUPLICATE KEY UPDATE iterator = VALUES(iterator), rows_seen = rows_seen + VALUES(rows_seen), \
         updated_at = NOW(3)",
        shard,
        iterator,
        rows
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn load_clock(
    pool: &MySqlPool,
    dataset: &str,
    shard: &str,
) -> Result<DatasetClock, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT latest_event, last_row_at, judged_until, snapshot_until FROM dataset_clocks \
         WHERE dataset = ? AND shard = ?",
        dataset,
        shard
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or_else(DatasetClock::default, |row| DatasetClock {
        latest_event: row.latest_event.map(seconds),
        last_row_at_ms: row.last_row_at.map(|d| d.and_utc().timestamp_millis()),
        judged_until: row.judged_until.map(seconds),
        snapshot_until: row.snapshot_until.map(seconds),
    }))
}

pub async fn save_clock(
    conn: &mut MySqlConnection,
    dataset: &str,
    shard: &str,
    clock: &DatasetClock,
) -> Result<(), sqlx::Error> {
    let last_row_at = clock
        .last_row_at_ms
        .and_then(DateTime::from_timestamp_millis)
        .map(|d| d.naive_utc());
    sqlx::query!(
        "INSERT INTO dataset_clocks (dataset, shard, latest_event, last_row_at, judged_until, snapshot_until) \
         VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE latest_event = VALUES(latest_event), \
         last_row_at = VALUES(last_row_at), judged_until = VALUES(judged_until), snapshot_until = VALUES(snapshot_until)",
        dataset,
        shard,
        clock.latest_event.map(date),
        last_row_at,
        clock.judged_until.map(date),
        clock.snapshot_until.map(date)
    )
    .execute(conn)
    .await?;
    Ok(())
}
