//! Export pages: the highest committed id and the rows up to it, read in one snapshot.

use sqlx::MySqlPool;

use protocol::{ExportPage, ExportRow};

use crate::export::{self, ExportQuery};

/// One `events_count` row as an export page selects it.
#[derive(Debug, sqlx::FromRow)]
struct ExportRecord {
    ec_id: u64,
    event_date: chrono::NaiveDateTime,
    event_label: Vec<u8>,
    entity_id: i64,
    event_counter: i64,
    events: u32,
    min_value: i64,
    max_value: i64,
}

/// The SQL of one export page; `EXPLAIN` of it is checked by the tests to use the
/// primary key, so a page costs the same at row 10 and at row 10 million. Built at run
/// time: the `from` and `to` conditions are there only when asked for, so that the
/// index is chosen for the filters a page has.
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
    let max_committed: Option<u64> =
        sqlx::query_scalar!("SELECT MAX(ec_id) AS max_committed FROM events_count")
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
    // Built at run time: see `export_sql`.
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
    let last_row_id = records.last().map(|r| r.ec_id);
    let (next_iterator, has_more) = export::next_iterator(query, last_row_id, full, max_committed);
    let rows = records
        .into_iter()
        .map(|record| ExportRow {
            ec_id: record.ec_id,
            event_date: record.event_date.and_utc(),
            // Labels were validated as UTF-8 before they were written.
            label: String::from_utf8(record.event_label)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            entity_id: record.entity_id,
            event_counter: record.event_counter,
            events: record.events,
            min_value: record.min_value,
            max_value: record.max_value,
        })
        .collect();
    Ok(ExportPage {
        rows,
        next_iterator,
        has_more,
    })
}
