//! The flush transaction: one batch, exactly once, in id order (see the module doc of
//! `store`), with the batch's idempotency keys and NATS coverage, and the deltas MySQL
//! refuses moved to `dead_letters`.

use sqlx::{MySql, MySqlPool, QueryBuilder, Transaction};

use super::{Batch, FlushOutcome};
use crate::bucket::Delta;
use crate::idempotency::{self, Accepted};
use crate::nats::intake::Coverage;

/// Rows per INSERT statement. A batch is cut into statements of these sizes, largest
/// first, so that every statement is one of a dozen texts, each prepared once per
/// connection and reused: a remainder of any other size would be prepared (its 7
/// placeholders a row described back by MySQL) for one use and closed. 2 000 rows of 7
/// placeholders stay far below MySQL's 65 535 per statement, and a few hundred KiB far
/// below `max_allowed_packet`.
const ROWS_PER_INSERT: [usize; 12] = [2_000, 1_000, 500, 250, 125, 64, 32, 16, 8, 4, 2, 1];

/// `deltas` cut into statements of the sizes in [`ROWS_PER_INSERT`], largest first.
fn statements(deltas: &[Delta]) -> impl Iterator<Item = &[Delta]> {
    let mut rest = deltas;
    std::iter::from_fn(move || {
        let size = *ROWS_PER_INSERT.iter().find(|&&n| n <= rest.len())?;
        let (statement, tail) = rest.split_at(size);
        rest = tail;
        Some(statement)
    })
}

/// Bytes of encoded idempotency keys in one `idempotency_keys` row: far below
/// `max_allowed_packet` (16 MiB on MariaDB, 64 MiB on MySQL 8).
const KEY_CHUNK_BYTES: usize = 1 << 20;

/// NATS coverage ranges in one INSERT.
const RANGES_PER_INSERT: usize = 1_000;

/// Writes one batch in one transaction, exactly once (see the module doc).
///
/// On a connection or lock error the transaction is rolled back and the error returned:
/// the caller retries the same batch. A delta that fails for a permanent reason (data the
/// column refuses) is moved to `dead_letters` and the rest of the batch still commits.
pub async fn insert_batch(pool: &MySqlPool, batch: &Batch) -> Result<FlushOutcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // A batch of idempotency keys alone writes no events_count row: it need not wait for
    // the ordering lock.
    let ordered = !batch.deltas.is_empty();
    if ordered {
        sqlx::query!("SELECT flushes FROM export_seq WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    }
    let claimed = sqlx::query!(
        "INSERT INTO flush_batches (batch_id, row_count, events) VALUES (?, ?, ?)",
        &*batch.id,
        u32::try_from(batch.deltas.len()).unwrap_or(u32::MAX),
        batch.events,
    )
    .execute(&mut *tx)
    .await;
    match claimed {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            tx.rollback().await?;
            return Ok(FlushOutcome::AlreadyCommitted);
        }
        other => other?,
    };
    let mut dead_letters = 0;
    for chunk in statements(&batch.deltas) {
        match insert_rows(&mut tx, chunk).await {
            Ok(()) => {}
            // A failed statement is rolled back alone; the transaction goes on, and the
            // chunk is retried row by row to isolate the rows MySQL refuses.
            Err(e) if is_permanent(&e) => {
                for delta in chunk {
                    match insert_rows(&mut tx, std::slice::from_ref(delta)).await {
                        Ok(()) => {}
                        Err(e) if is_permanent(&e) => {
                            insert_dead_letter(&mut tx, &batch.id, delta, &e.to_string()).await?;
                            dead_letters += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    insert_keys(&mut tx, &batch.id, &batch.keys).await?;
    if let Some((stream, coverage)) = &batch.consumed {
        insert_consumed(&mut tx, &batch.id, stream, coverage).await?;
    }
    if ordered {
        sqlx::query!("UPDATE export_seq SET flushes = flushes + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(FlushOutcome::Committed {
        rows: batch.deltas.len() - dead_letters,
        dead_letters,
    })
}

/// Writes accepted idempotency keys, encoded as in the write-ahead log, a few thousand to
/// a row: one INSERT per MiB rather than one row per key.
async fn insert_keys(
    tx: &mut Transaction<'_, MySql>,
    batch_id: &str,
    keys: &[Accepted],
) -> Result<(), sqlx::Error> {
    let mut chunk = 0u32;
    let mut rest = keys;
    while !rest.is_empty() {
        let mut entries = Vec::new();
        let mut newest = i64::MIN;
        let mut taken = 0;
        for key in rest {
            if !entries.is_empty()
                && entries.len() + idempotency::encoded_len(&key.key, &key.reply) > KEY_CHUNK_BYTES
            {
                break;
            }
            idempotency::encode(&key.key, key.accepted_ms, &key.reply, &mut entries);
            newest = newest.max(key.accepted_ms);
            taken += 1;
        }
        sqlx::query!(
            "INSERT INTO idempotency_keys (batch_id, chunk, newest_ms, entries) VALUES (?, ?, ?, ?)",
            batch_id,
            chunk,
            newest,
            entries,
        )
        .execute(&mut **tx)
        .await?;
        chunk += 1;
        rest = &rest[taken..];
    }
    Ok(())
}

/// Records which NATS messages this batch commits (see `nats::intake`).
async fn insert_consumed(
    tx: &mut Transaction<'_, MySql>,
    batch_id: &str,
    stream: &str,
    coverage: &[Coverage],
) -> Result<(), sqlx::Error> {
    for chunk in coverage.chunks(RANGES_PER_INSERT) {
        // Built at run time: one INSERT of as many rows as the chunk has ranges (a
        // handful a flush), which no static statement can say.
        let mut insert = QueryBuilder::<MySql>::new(
            "INSERT INTO nats_consumed (stream, first_seq, last_seq, covered_ms, batch_id) ",
        );
        insert.push_values(chunk, |mut row, c| {
            row.push_bind(stream)
                .push_bind(c.first_seq)
                .push_bind(c.last_seq)
                .push_bind(c.covered_ms)
                .push_bind(batch_id);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_rows(tx: &mut Transaction<'_, MySql>, deltas: &[Delta]) -> Result<(), sqlx::Error> {
    // Built at run time: one multi-row INSERT of one of the sizes in ROWS_PER_INSERT, a
    // dozen texts in all, each prepared once per connection; a static statement would
    // write one row a round trip.
    let mut insert = QueryBuilder::<MySql>::new(
        "INSERT INTO events_count \
         (event_date, event_label, entity_id, event_counter, events, min_value, max_value) ",
    );
    insert.push_values(deltas, |mut row, delta| {
        row.push_bind(bucket_date(delta))
            .push_bind(&*delta.label)
            .push_bind(delta.entity_id)
            .push_bind(delta.totals.sum)
            .push_bind(delta.totals.events)
            .push_bind(delta.totals.min)
            .push_bind(delta.totals.max);
    });
    insert.build().execute(&mut **tx).await?;
    Ok(())
}

async fn insert_dead_letter(
    tx: &mut Transaction<'_, MySql>,
    batch_id: &str,
    delta: &Delta,
    error: &str,
) -> Result<(), sqlx::Error> {
    tracing::error!(batch_id, label = %delta.label, entity_id = delta.entity_id, error, "delta moved to dead_letters");
    sqlx::query!(
        "INSERT INTO dead_letters (batch_id, event_date, event_label, entity_id, event_counter, \
         events, min_value, max_value, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch_id,
        bucket_date(delta),
        delta.label.as_bytes(),
        delta.entity_id,
        delta.totals.sum,
        delta.totals.events,
        delta.totals.min,
        delta.totals.max,
        error,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn bucket_date(delta: &Delta) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(delta.bucket.unix_seconds(), 0)
        .unwrap_or_default()
        .naive_utc()
}

/// A refusal of the data itself (SQLSTATE class 22, data exception, or 23, integrity
/// constraint): retrying cannot help. Everything else (lost connections, lock waits,
/// deadlocks, a server shutting down) is worth retrying.
fn is_permanent(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            matches!(e.code().as_deref(), Some(code) if code.starts_with("22") || code.starts_with("23"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::bucket::{Aggregator, Totals};

    #[test]
    fn a_batch_is_cut_into_statements_of_the_fixed_sizes_in_order() {
        let bucket = Aggregator::new(2, 1).bucket_of(0);
        let deltas: Vec<Delta> = (0..4_321)
            .map(|entity_id| Delta {
                bucket,
                label: Arc::from("l"),
                entity_id,
                totals: Totals {
                    sum: 1,
                    events: 1,
                    min: 1,
                    max: 1,
                },
            })
            .collect();
        let cut: Vec<&[Delta]> = statements(&deltas).collect();
        let sizes: Vec<usize> = cut.iter().map(|s| s.len()).collect();
        // 4 321 = 2 × 2 000 + 250 + 64 + 4 + 2 + 1
        assert_eq!(sizes, [2_000, 2_000, 250, 64, 4, 2, 1]);
        let ids: Vec<i64> = cut.concat().iter().map(|d| d.entity_id).collect();
        assert_eq!(ids, (0..4_321).collect::<Vec<_>>());
        assert_eq!(statements(&deltas[..0]).count(), 0);
    }
}
