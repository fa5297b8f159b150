//! What earlier runs and deliveries committed, read back: the write-ahead log's drain
//! thresholds at start, the NATS coverage of a redelivered message, the idempotency keys
//! still within their window.

use sqlx::MySqlPool;

use crate::idempotency::{self, Accepted};
use crate::nats::intake::Coverage;

/// For each epoch of a write-ahead log instance, the highest drain threshold committed
/// (see `wal`): the buckets it covers are in `events_count` already.
pub async fn wal_committed_thresholds(
    pool: &MySqlPool,
    instance: &str,
) -> Result<std::collections::HashMap<u64, i64>, sqlx::Error> {
    // The column is ASCII with a binary collation: MySQL sends it as bytes.
    let ids: Vec<Vec<u8>> = sqlx::query_scalar!(
        "SELECT batch_id FROM flush_batches WHERE batch_id LIKE ?",
        format!("w{instance}-%"),
    )
    .fetch_all(pool)
    .await?;
    let ids: Vec<_> = ids.iter().map(|id| String::from_utf8_lossy(id)).collect();
    Ok(crate::wal::committed_thresholds(
        instance,
        ids.iter().map(|id| &**id),
    ))
}

/// What earlier deliveries of NATS message `seq` committed: the highest `covered_ms` of
/// the ranges that contain it, or `None`.
pub async fn nats_committed_through(
    pool: &MySqlPool,
    stream: &str,
    seq: u64,
) -> Result<Option<i64>, sqlx::Error> {
    // Ranges do not overlap but for the partial coverage of messages spanning buckets;
    // the one holding `seq` is among the last few that start at or before it.
    let rows = sqlx::query_as!(
        Coverage,
        "SELECT first_seq, last_seq, covered_ms FROM nats_consumed \
         WHERE stream = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT 64",
        stream,
        seq,
    )
    .fetch_all(pool)
    .await?;
    Ok(crate::nats::intake::committed_through(&rows, seq))
}

/// The idempotency keys committed by every gatherer and accepted at `since_ms` or later,
/// oldest first. A row that does not decode is skipped and reported.
pub async fn load_idempotency_keys(
    pool: &MySqlPool,
    since_ms: i64,
) -> Result<Vec<Accepted>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT batch_id, chunk, entries FROM idempotency_keys WHERE newest_ms >= ? ORDER BY newest_ms",
        since_ms,
    )
    .fetch_all(pool)
    .await?;
    let mut keys = Vec::new();
    for row in rows {
        match idempotency::decode_all(&row.entries) {
            Ok(found) => keys.extend(found.into_iter().filter(|k| k.accepted_ms >= since_ms)),
            Err(error) => tracing::warn!(
                batch_id = %String::from_utf8_lossy(&row.batch_id), chunk = row.chunk, %error,
                "skipped an idempotency_keys row that does not decode"
            ),
        }
    }
    keys.sort_by_key(|k| k.accepted_ms);
    Ok(keys)
}
