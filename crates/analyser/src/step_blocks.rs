//! Step totals, packed: one row of `step_blocks` per (dataset, series, hour) holds the
//! hour's steps as short text records, `offset,sum,events,min,max;` (the step's start in
//! seconds after the hour, then its exact totals). A commit appends its records to the
//! row (`CONCAT`), so a series costs one row write per commit however many steps the
//! commit carries, and the table holds one row per series and hour instead of one per
//! series and step. Several records of one step (rows of that step read in several
//! commits, or from several gatherers) are summed when read. Replay reads the blocks of a
//! time range through the `(dataset, block_start)` index; charts read one series' blocks
//! through the primary key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

use crate::store::{date, seconds, statements, ExactTotals, SeriesKey, StoredTotals};

/// The span of one block, in seconds: an hour (60 steps of a minute).
pub const BLOCK_SECONDS: i64 = 3_600;

/// The start of the block holding the step that starts at `step`.
pub fn block_of(step: i64) -> i64 {
    step.div_euclid(BLOCK_SECONDS) * BLOCK_SECONDS
}

/// One series' totals of one step, to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTotals {
    pub label: Arc<str>,
    pub entity_id: i64,
    /// The step's start, in unix seconds.
    pub step_start: i64,
    pub totals: ExactTotals,
}

/// One record of a block: a step's totals as one commit wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StepRecord {
    step_start: i64,
    totals: ExactTotals,
}

/// Appends one step's record to a block's text.
fn push_record(text: &mut String, offset: i64, t: &ExactTotals) {
    let _ = write!(
        text,
        "{offset},{},{},{},{};",
        { t.sum },
        t.events,
        t.min,
        t.max
    );
}

fn bad(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("step block: {what}").into())
}

/// The records of a block, in the order they were written.
fn records(block_start: i64, text: &[u8]) -> Result<Vec<StepRecord>, sqlx::Error> {
    let text = std::str::from_utf8(text).map_err(|_| bad("not text"))?;
    let mut out = Vec::with_capacity(text.len() / 12);
    for record in text.split(';').filter(|r| !r.is_empty()) {
        let mut fields = record.split(',');
        let mut next = || fields.next().ok_or_else(|| bad("short record"));
        let offset: i64 = next()?.parse().map_err(|_| bad("offset"))?;
        let sum: i128 = next()?.parse().map_err(|_| bad("sum"))?;
        let events: u64 = next()?.parse().map_err(|_| bad("events"))?;
        let min: i64 = next()?.parse().map_err(|_| bad("min"))?;
        let max: i64 = next()?.parse().map_err(|_| bad("max"))?;
        out.push(StepRecord {
            step_start: block_start + offset,
            totals: ExactTotals {
                sum,
                events,
                min,
                max,
            },
        });
    }
    Ok(out)
}

/// Appends a commit's totals to their blocks: one row per (series, block), whatever
/// number of steps it carries.
pub async fn append(
    conn: &mut MySqlConnection,
    dataset: &str,
    totals: &[NewTotals],
) -> Result<(), sqlx::Error> {
    let mut blocks: BTreeMap<(&str, i64, i64), String> = BTreeMap::new();
    for new in totals {
        let block = block_of(new.step_start);
        let text = blocks
            .entry((&*new.label, new.entity_id, block))
            .or_default();
        push_record(text, new.step_start - block, &new.totals);
    }
    let rows: Vec<_> = blocks.into_iter().collect();
    // 5 placeholders a row: 1 000 rows stay far below MySQL's 65 535. Multi-row statements
    // of several sizes: built at run time, so not checked at compile time.
    for chunk in statements(&rows, 1_000) {
        let mut insert = QueryBuilder::<MySql>::new(
            "INSERT INTO step_blocks (dataset, event_label, entity_id, block_start, steps) ",
        );
        insert.push_values(chunk, |mut row, ((label, entity_id, block), text)| {
            row.push_bind(dataset)
                .push_bind(*label)
                .push_bind(*entity_id)
                .push_bind(date(*block))
                .push_bind(text.as_bytes());
        });
        insert.push(" ON DUPLICATE KEY UPDATE steps = CONCAT(steps, VALUES(steps))");
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// A stored block; the label's binary collation reads back as bytes.
struct BlockRecord {
    event_label: Vec<u8>,
    entity_id: i64,
    block_start: sqlx::types::chrono::NaiveDateTime,
    steps: Vec<u8>,
}

/// Sums the records of each (series, step) and keeps the steps in `[from, to)`, in
/// (step, label, entity) order.
fn totals_of(
    blocks: Vec<BlockRecord>,
    from: i64,
    to: i64,
) -> Result<Vec<StoredTotals>, sqlx::Error> {
    let mut by_step: BTreeMap<(i64, Vec<u8>, i64), ExactTotals> = BTreeMap::new();
    for block in blocks {
        for record in records(seconds(block.block_start), &block.steps)? {
            if record.step_start < from || record.step_start >= to {
                continue;
            }
            by_step
                .entry((
                    record.step_start,
                    block.event_label.clone(),
                    block.entity_id,
                ))
                .and_modify(|sum| sum.merge(&record.totals))
                .or_insert(record.totals);
        }
    }
    Ok(by_step
        .into_iter()
        .map(|((step_start, label, entity_id), totals)| StoredTotals {
            label: String::from_utf8_lossy(&label).into_owned(),
            entity_id,
            step_start,
            totals,
        })
        .collect())
}

/// Step totals of a dataset from `since` (a step start) on, in step order.
pub async fn load_since(
    pool: &MySqlPool,
    dataset: &str,
    since: i64,
) -> Result<Vec<StoredTotals>, sqlx::Error> {
    let blocks = sqlx::query_as!(
        BlockRecord,
        "SELECT event_label, entity_id, block_start, steps FROM step_blocks \
         WHERE dataset = ? AND block_start >= ?",
        dataset,
        date(block_of(since))
    )
    .fetch_all(pool)
    .await?;
    totals_of(blocks, since, i64::MAX)
}

/// Sums a dataset's stored totals into steps of `step` seconds (a multiple of the old
/// step, so each old step falls wholly in one new one) and writes them back as new blocks;
/// returns how many distinct new steps hold history.
pub async fn regroup(
    conn: &mut MySqlConnection,
    dataset: &str,
    step: i64,
) -> Result<u64, sqlx::Error> {
    let blocks = sqlx::query_as!(
        BlockRecord,
        "SELECT event_label, entity_id, block_start, steps FROM step_blocks WHERE dataset = ?",
        dataset
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut regrouped: BTreeMap<(Arc<str>, i64, i64), ExactTotals> = BTreeMap::new();
    for stored in totals_of(blocks, i64::MIN, i64::MAX)? {
        let new_step = stored.step_start.div_euclid(step) * step;
        regrouped
            .entry((stored.label.into(), stored.entity_id, new_step))
            .and_modify(|sum| sum.merge(&stored.totals))
            .or_insert(stored.totals);
    }
    let steps: std::collections::BTreeSet<i64> = regrouped.keys().map(|k| k.2).collect();
    sqlx::query!("DELETE FROM step_blocks WHERE dataset = ?", dataset)
        .execute(&mut *conn)
        .await?;
    let totals: Vec<NewTotals> = regrouped
        .into_iter()
        .map(|((label, entity_id, step_start), totals)| NewTotals {
            label,
            entity_id,
            step_start,
            totals,
        })
        .collect();
    append(conn, dataset, &totals).await?;
    Ok(steps.len() as u64)
}

/// One series' step totals between two step starts, for charts.
pub async fn series_totals(
    pool: &MySqlPool,
    dataset: &str,
    label: &str,
    entity_id: i64,
    from: i64,
    to: i64,
) -> Result<Vec<StoredTotals>, sqlx::Error> {
    let blocks = sqlx::query_as!(
        BlockRecord,
        "SELECT event_label, entity_id, block_start, steps FROM step_blocks \
         WHERE dataset = ? AND event_label = ? AND entity_id = ? AND block_start >= ? AND block_start < ?",
        dataset,
        label,
        entity_id,
        date(block_of(from)),
        date(to)
    )
    .fetch_all(pool)
    .await?;
    totals_of(blocks, from, to)
}

/// Whether the analyser holds any step totals of the series (a primary-key prefix probe).
pub async fn series_known(
    pool: &MySqlPool,
    dataset: &str,
    label: &str,
    entity_id: i64,
) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        "SELECT 1 AS found FROM step_blocks WHERE dataset = ? AND event_label = ? AND entity_id = ? LIMIT 1",
        dataset,
        label,
        entity_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// The series with step totals, in (dataset, label, entity) order, at most `limit`.
/// Distinct over the primary key's prefix, so MySQL reads it with a loose index scan.
pub async fn known_series(pool: &MySqlPool, limit: u32) -> Result<Vec<SeriesKey>, sqlx::Error> {
    let records = sqlx::query!(
        "SELECT DISTINCT dataset, event_label, entity_id FROM step_blocks \
         ORDER BY dataset, event_label, entity_id LIMIT ?",
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(records
        .into_iter()
        .map(|row| SeriesKey {
            dataset: String::from_utf8_lossy(&row.dataset).into_owned(),
            label: String::from_utf8_lossy(&row.event_label).into_owned(),
            entity_id: row.entity_id,
        })
        .collect())
}

/// Forgets the blocks that end at or before `before`, in small batches (a block that
/// straddles it is kept whole).
pub async fn prune(pool: &MySqlPool, dataset: &str, before: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query!(
            "DELETE FROM step_blocks WHERE dataset = ? AND block_start <= ? LIMIT 5000",
            dataset,
            date(before - BLOCK_SECONDS)
        )
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < 5000 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_what_was_appended_even_beyond_a_bigint() {
        let wide = ExactTotals {
            sum: i128::from(i64::MAX) * 3,
            events: 7,
            min: -5,
            max: i64::MAX,
        };
        let small = ExactTotals {
            sum: -12,
            events: 1,
            min: -12,
            max: -12,
        };
        let mut text = String::new();
        push_record(&mut text, 0, &wide);
        push_record(&mut text, 3_540, &small);
        let block = 1_700_000_000 / 3_600 * 3_600;
        assert_eq!(
            records(block, text.as_bytes()).unwrap(),
            vec![
                StepRecord {
                    step_start: block,
                    totals: wide
                },
                StepRecord {
                    step_start: block + 3_540,
                    totals: small
                }
            ]
        );
    }

    #[test]
    fn records_of_one_step_are_summed_and_the_range_kept() {
        let one = ExactTotals {
            sum: 5,
            events: 2,
            min: 1,
            max: 4,
        };
        let block = 7_200;
        let mut text = String::new();
        for offset in [0, 60, 0, 120] {
            push_record(&mut text, offset, &one);
        }
        let record = BlockRecord {
            event_label: b"visit".to_vec(),
            entity_id: 3,
            block_start: date(block),
            steps: text.into_bytes(),
        };
        let totals = totals_of(vec![record], block, block + 120).unwrap();
        let steps: Vec<(i64, u64, i128)> = totals
            .iter()
            .map(|t| (t.step_start, t.totals.events, t.totals.sum))
            .collect();
        assert_eq!(steps, vec![(block, 4, 10), (block + 60, 2, 5)]);
    }

    #[test]
    fn a_corrupt_block_is_an_error_not_a_zero() {
        assert!(records(0, b"0,1,1,1;").is_err());
        assert!(records(0, b"x,1,1,1,1;").is_err());
    }
}
