//! Everything the gatherer says to MySQL: connecting (creating the database and running
//! migrations), the flush transaction, and health pings.
//!
//! The flush keeps two promises of the contract. *Commit order = id order*: each flush
//! locks the one row of `export_seq` first and holds it until COMMIT, so ids become
//! visible in increasing order across every replica. *Exactly once*: the batch id is
//! inserted into `flush_batches` in the same transaction, so a retry of a batch whose
//! first attempt committed finds the id and is dropped.

use std::sync::Arc;

use sqlx::{MySql, MySqlPool, QueryBuilder, Transaction};

use protocol::{ExportPage, ExportRow};

use crate::bucket::Delta;
use crate::configuration::DatabaseSettings;
use crate::export::{self, ExportQuery};
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

/// One flush: the deltas that commit together, under one id.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `<instance>-<sequence>`: unique per gatherer process and flush.
    pub id: Arc<str>,
    pub deltas: Vec<Delta>,
    /// Number of events summed in the deltas.
    pub events: u64,
    /// Idempotency keys accepted since the previous batch, committed with this one.
    pub keys: Vec<Accepted>,
    /// The NATS stream and the sequences whose events this batch commits.
    pub consumed: Option<(Arc<str>, Vec<Coverage>)>,
}

impl Batch {
    pub fn new(id: String, deltas: Vec<Delta>) -> Self {
        let events = deltas.iter().map(|d| u64::from(d.totals.events)).sum();
        Batch {
            id: id.into(),
            deltas,
            events,
            keys: Vec::new(),
            consumed: None,
        }
    }
}

/// What a flush attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// The batch committed now; `dead_letters` of its deltas went to `dead_letters`.
    Committed { rows: usize, dead_letters: usize },
    /// An earlier attempt of the same batch had committed; nothing was written.
    AlreadyCommitted,
}

/// Creates the database if it is missing, connects, and runs the gatherer's migrations,
/// waiting up to `connect_timeout` for a database that is still starting.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<MySqlPool> {
    let migrations = sqlx::migrate!("../../migrations/gatherer");
    service::db::connect(
        &settings.url,
        settings.max_connections,
        settings.connect_timeout,
        migrations,
    )
    .await
}

/// For each epoch of a write-ahead log instance, the highest drain threshold committed
/// (see `wal`): the buckets it covers are in `events_count` already.
pub async fn wal_committed_thresholds(
    pool: &MySqlPool,
    instance: &str,
) -> Result<std::collections::HashMap<u64, i64>, sqlx::Error> {
    // The column is ASCII with a binary collation: MySQL sends it as bytes.
    let ids: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT batch_id FROM flush_batches WHERE batch_id LIKE ?")
            .bind(format!("w{instance}-%"))
            .fetch_all(pool)
            .await?;
    let ids: Vec<_> = ids.iter().map(|id| String::from_utf8_lossy(id)).collect();
    Ok(crate::wal::committed_thresholds(
        instance,
        ids.iter().map(|id| &**id),
    ))
}

/// Answers whether MySQL responds.
pub async fn ping(pool: &MySqlPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

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
        sqlx::query("SELECT flushes FROM export_seq WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    }
    let claimed =
        sqlx::query("INSERT INTO flush_batches (batch_id, row_count, events) VALUES (?, ?, ?)")
            .bind(&*batch.id)
            .bind(u32::try_from(batch.deltas.len()).unwrap_or(u32::MAX))
            .bind(batch.events)
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
        sqlx::query("UPDATE export_seq SET flushes = flushes + 1 WHERE id = 1")
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
        sqlx::query(
            "INSERT INTO idempotency_keys (batch_id, chunk, newest_ms, entries) VALUES (?, ?, ?, ?)",
        )
        .bind(batch_id)
        .bind(chunk)
        .bind(newest)
        .bind(entries)
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
    for chunk in coverage.chunks(1_000) {
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

/// What earlier deliveries of NATS message `seq` committed: the highest `covered_ms` of
/// the ranges that contain it, or `None`.
pub async fn nats_committed_through(
    pool: &MySqlPool,
    stream: &str,
    seq: u64,
) -> Result<Option<i64>, sqlx::Error> {
    // Ranges do not overlap but for the partial coverage of messages spanning buckets;
    // the one holding `seq` is among the last few that start at or before it.
    let rows: Vec<(u64, u64, i64)> = sqlx::query_as(
        "SELECT first_seq, last_seq, covered_ms FROM nats_consumed \
         WHERE stream = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT 64",
    )
    .bind(stream)
    .bind(seq)
    .fetch_all(pool)
    .await?;
    let rows: Vec<Coverage> = rows
        .into_iter()
        .map(|(first_seq, last_seq, covered_ms)| Coverage {
            first_seq,
            last_seq,
            covered_ms,
        })
        .collect();
    Ok(crate::nats::intake::committed_through(&rows, seq))
}

/// The idempotency keys committed by every gatherer and accepted at `since_ms` or later,
/// oldest first. A row that does not decode is skipped and reported.
pub async fn load_idempotency_keys(
    pool: &MySqlPool,
    since_ms: i64,
) -> Result<Vec<Accepted>, sqlx::Error> {
    let rows: Vec<(Vec<u8>, u32, Vec<u8>)> = sqlx::query_as(
        "SELECT batch_id, chunk, entries FROM idempotency_keys WHERE newest_ms >= ? ORDER BY newest_ms",
    )
    .bind(since_ms)
    .fetch_all(pool)
    .await?;
    let mut keys = Vec::new();
    for (batch_id, chunk, entries) in rows {
        match idempotency::decode_all(&entries) {
            Ok(found) => keys.extend(found.into_iter().filter(|k| k.accepted_ms >= since_ms)),
            Err(error) => tracing::warn!(
                batch_id = %String::from_utf8_lossy(&batch_id), chunk, %error,
                "skipped an idempotency_keys row that does not decode"
            ),
        }
    }
    keys.sort_by_key(|k| k.accepted_ms);
    Ok(keys)
}

/// Deletes `idempotency_keys` rows whose newest key was accepted before `before_ms`, a
/// bounded number at a time; returns how many went.
pub async fn prune_idempotency_keys(pool: &MySqlPool, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM idempotency_keys WHERE newest_ms < ? ORDER BY newest_ms LIMIT 1000",
    )
    .bind(before_ms)
    .execute(pool)
    .await?
    .rows_affected())
}

async fn insert_rows(tx: &mut Transaction<'_, MySql>, deltas: &[Delta]) -> Result<(), sqlx::Error> {
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
    sqlx::query(
        "INSERT INTO dead_letters (batch_id, event_date, event_label, entity_id, event_counter, \
         events, min_value, max_value, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(batch_id)
    .bind(bucket_date(delta))
    .bind(delta.label.as_bytes())
    .bind(delta.entity_id)
    .bind(delta.totals.sum)
    .bind(delta.totals.events)
    .bind(delta.totals.min)
    .bind(delta.totals.max)
    .bind(error)
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

/// Columns of an export row, in `SELECT` order.
type ExportRecord = (u64, chrono::NaiveDateTime, Vec<u8>, i64, i64, u32, i64, i64);

/// The SQL of one export page; `EXPLAIN` of it is checked by the tests to use the
/// primary key, so a page costs the same at row 10 and at row 10 million.
pub fn export_sql(query: &ExportQuery) -> String {
    let mut sql = String::from(
        "SELECT ec_id, event_date, event_label, entity_id, event_counter, events, min_value, max_value \
         FROM events_count WHERE ec_id > ? AND ec_id <= ?",
    );
    if query.from.is_some() {
        sql.push_str(" AND event_date >= ?");
    }
    if query.to.is_some() {
        sql.push_str(" AND event_date < ?");
    }
    sql.push_str(" ORDER BY ec_id LIMIT ?");
    sql
}

/// One export page, read in one snapshot: the highest committed id and the rows up to it.
pub async fn export_page(pool: &MySqlPool, query: &ExportQuery) -> Result<ExportPage, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (max_committed,): (Option<u64>,) = sqlx::query_as("SELECT MAX(ec_id) FROM events_count")
        .fetch_one(&mut *tx)
        .await?;
    let max_committed = max_committed.unwrap_or(0);
    let upper = if query.has_time_filter() {
        query
            .iterator
            .saturating_add(query.scan_span())
            .min(max_committed)
    } else {
        max_committed
    };
    let sql = export_sql(query);
    let mut select = sqlx::query_as::<_, ExportRecord>(&sql)
        .bind(query.iterator)
        .bind(upper);
    if let Some(from) = query.from {
        select = select.bind(from.naive_utc());
    }
    if let Some(to) = query.to {
        select = select.bind(to.naive_utc());
    }
    let records = select.bind(query.limit).fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let full = records.len() == query.limit as usize;
    let last_row_id = records.last().map(|r| r.0);
    let (next_iterator, has_more) = export::next_iterator(query, last_row_id, full, max_committed);
    let rows = records
        .into_iter()
        .map(
            |(ec_id, date, label, entity_id, event_counter, events, min_value, max_value)| {
                ExportRow {
                    ec_id,
                    event_date: date.and_utc(),
                    // Labels were validated as UTF-8 before they were written.
                    label: String::from_utf8(label)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                    entity_id,
                    event_counter,
                    events,
                    min_value,
                    max_value,
                }
            },
        )
        .collect();
    Ok(ExportPage {
        rows,
        next_iterator,
        has_more,
    })
}

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
    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await?;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM events_count WHERE ec_id <= ? AND event_date < ? ORDER BY ec_id LIMIT ?",
        )
        .bind(keep_after_iterator)
        .bind(older_than.naive_utc())
        .bind(batch_rows)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        report.rows += deleted;
        if deleted < u64::from(batch_rows) {
            break;
        }
    }
    loop {
        let deleted = sqlx::query("DELETE FROM flush_batches WHERE created_at < ? LIMIT ?")
            .bind(older_than.naive_utc())
            .bind(batch_rows)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        report.batches += deleted;
        if deleted < u64::from(batch_rows) {
            break;
        }
    }
    loop {
        let deleted = sqlx::query("DELETE FROM nats_consumed WHERE created_at < ? LIMIT ?")
            .bind(older_than.naive_utc())
            .bind(batch_rows)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        report.nats_ranges += deleted;
        if deleted < u64::from(batch_rows) {
            break;
        }
    }
    // The pooled connection goes back with its default isolation level.
    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *conn)
        .await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
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
