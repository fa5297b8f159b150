//! Everything the analyser says to its own MySQL database: cursor, dataset clocks,
//! snapshots, anomalies (step totals: `step_blocks.rs`). The pull writes step totals,
//! clocks and cursor in one transaction, so a restart resumes exactly where the last commit
//! left off.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

use crate::clock::DatasetClock;
use crate::judge::{Change, Incident, Signal};

pub fn date(seconds: i64) -> NaiveDateTime {
    DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .naive_utc()
}

pub(crate) fn seconds(date: NaiveDateTime) -> i64 {
    date.and_utc().timestamp()
}

/// Exact totals of one (dataset, series, step), as stored: the sum may exceed i64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExactTotals {
    pub sum: i128,
    pub events: u64,
    pub min: i64,
    pub max: i64,
}

impl ExactTotals {
    pub fn merge(&mut self, other: &ExactTotals) {
        self.sum += other.sum;
        self.events += other.events;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// One (series, step) of the stored step totals, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTotals {
    pub label: String,
    pub entity_id: i64,
    pub step_start: i64,
    pub totals: ExactTotals,
}

/// The shard's cursor row, created at iterator 0 if missing: (iterator, generation).
pub async fn claim_cursor(pool: &MySqlPool, shard: &str) -> Result<(u64, u64), sqlx::Error> {
    sqlx::query("INSERT IGNORE INTO cursors (shard, iterator) VALUES (?, 0)")
        .bind(shard)
        .execute(pool)
        .await?;
    sqlx::query_as("SELECT iterator, generation FROM cursors WHERE shard = ?")
        .bind(shard)
        .fetch_one(pool)
        .await
}

/// The shard's generation, as committed.
pub async fn load_generation(pool: &MySqlPool, shard: &str) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query_scalar("SELECT generation FROM cursors WHERE shard = ?")
        .bind(shard)
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
    let result = sqlx::query(
        "UPDATE cursors SET generation = generation + 1 WHERE shard = ? AND generation = ?",
    )
    .bind(shard)
    .bind(seen)
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
    sqlx::query(
        "INSERT INTO cursors (shard, iterator, rows_seen, updated_at) VALUES (?, ?, ?, NOW(3)) \
         ON DUPLICATE KEY UPDATE iterator = VALUES(iterator), rows_seen = rows_seen + VALUES(rows_seen), \
         updated_at = NOW(3)",
    )
    .bind(shard)
    .bind(iterator)
    .bind(rows)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn load_clock(
    pool: &MySqlPool,
    dataset: &str,
    shard: &str,
) -> Result<DatasetClock, sqlx::Error> {
    type ClockRecord = (
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
    );
    let row: Option<ClockRecord> = sqlx::query_as(
        "SELECT latest_event, last_row_at, judged_until, snapshot_until FROM dataset_clocks \
         WHERE dataset = ? AND shard = ?",
    )
    .bind(dataset)
    .bind(shard)
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or_else(
        DatasetClock::default,
        |(latest, last_row_at, judged_until, snapshot_until)| DatasetClock {
            latest_event: latest.map(seconds),
            last_row_at_ms: last_row_at.map(|d| d.and_utc().timestamp_millis()),
            judged_until: judged_until.map(seconds),
            snapshot_until: snapshot_until.map(seconds),
        },
    ))
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
    sqlx::query(
        "INSERT INTO dataset_clocks (dataset, shard, latest_event, last_row_at, judged_until, snapshot_until) \
         VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE latest_event = VALUES(latest_event), \
         last_row_at = VALUES(last_row_at), judged_until = VALUES(judged_until), snapshot_until = VALUES(snapshot_until)",
    )
    .bind(dataset)
    .bind(shard)
    .bind(clock.latest_event.map(date))
    .bind(last_row_at)
    .bind(clock.judged_until.map(date))
    .bind(clock.snapshot_until.map(date))
    .execute(conn)
    .await?;
    Ok(())
}

/// Statement sizes in rows, largest first: a run of rows is cut into statements of these
/// sizes so that every statement is one of a few texts, each prepared once per connection
/// and reused (a remainder of any other size would be prepared for one use and closed).
const ROWS_PER_STATEMENT: [usize; 11] = [1_000, 500, 250, 125, 64, 32, 16, 8, 4, 2, 1];

/// `rows` cut into statements of at most `max` rows, of the sizes in
/// [`ROWS_PER_STATEMENT`], largest first.
pub(crate) fn statements<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let size = *ROWS_PER_STATEMENT
            .iter()
            .find(|&&n| n <= rest.len() && n <= max)?;
        let (statement, tail) = rest.split_at(size);
        rest = tail;
        Some(statement)
    })
}

/// Writes series snapshots, each replacing the series' previous one.
pub async fn save_snapshots(
    conn: &mut MySqlConnection,
    dataset: &str,
    shard: &str,
    states: &[crate::judge::SeriesState],
) -> Result<(), sqlx::Error> {
    // A state is a few KiB: 64 a statement stay far below max_allowed_packet.
    for chunk in statements(states, 64) {
        let mut insert = QueryBuilder::<MySql>::new(
            "INSERT INTO series_snapshots (dataset, shard, event_label, entity_id, state) ",
        );
        insert.push_values(chunk, |mut row, (label, entity_id, state)| {
            row.push_bind(dataset)
                .push_bind(shard)
                .push_bind(&**label)
                .push_bind(*entity_id)
                .push_bind(state.as_slice());
        });
        insert.push(" ON DUPLICATE KEY UPDATE state = VALUES(state)");
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes the snapshots of series the model no longer holds.
pub async fn delete_snapshots(
    conn: &mut MySqlConnection,
    dataset: &str,
    shard: &str,
    series: &[crate::judge::SeriesKey],
) -> Result<(), sqlx::Error> {
    for (label, entity_id) in series {
        sqlx::query(
            "DELETE FROM series_snapshots WHERE dataset = ? AND shard = ? AND event_label = ? AND entity_id = ?",
        )
        .bind(dataset)
        .bind(shard)
        .bind(&**label)
        .bind(entity_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes every snapshot of a dataset shard (a full snapshot follows).
pub async fn clear_snapshots(
    conn: &mut MySqlConnection,
    dataset: &str,
    shard: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM series_snapshots WHERE dataset = ? AND shard = ?")
        .bind(dataset)
        .bind(shard)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A dataset shard's series snapshots: (label, entity, encoded state).
pub async fn load_snapshots(
    pool: &MySqlPool,
    dataset: &str,
    shard: &str,
) -> Result<Vec<(String, i64, Vec<u8>)>, sqlx::Error> {
    let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT event_label, entity_id, state FROM series_snapshots WHERE dataset = ? AND shard = ?",
    )
    .bind(dataset)
    .bind(shard)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(label, entity_id, state)| {
            (
                String::from_utf8_lossy(&label).into_owned(),
                entity_id,
                state,
            )
        })
        .collect())
}

/// A series the analyser holds step totals for: what the dashboard offers to chart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub dataset: String,
    pub label: String,
    pub entity_id: i64,
}

/// The id of the firing incident of a series that began at `period_start`, if the store
/// has one (used on start, for incidents a replay opened again).
pub async fn firing_incident_id(
    pool: &MySqlPool,
    dataset: &str,
    label: &str,
    entity_id: i64,
    period_start: i64,
) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM anomalies WHERE dataset = ? AND state = 'firing' AND event_label = ? \
         AND entity_id = ? AND period_start = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(dataset)
    .bind(label)
    .bind(entity_id)
    .bind(date(period_start))
    .fetch_optional(pool)
    .await
}

/// The firing incidents of a dataset: (id, label).
pub async fn firing_incidents(
    pool: &MySqlPool,
    dataset: &str,
) -> Result<Vec<(u64, String)>, sqlx::Error> {
    let rows: Vec<(u64, Vec<u8>)> = sqlx::query_as(
        "SELECT id, event_label FROM anomalies WHERE dataset = ? AND state = 'firing'",
    )
    .bind(dataset)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, label)| (id, String::from_utf8_lossy(&label).into_owned()))
        .collect())
}

fn signals_json(incident: &Incident) -> String {
    let mut signals: Vec<&Signal> = incident.signals.iter().collect();
    // Strongest first, as the API serves them.
    let top = *incident.top();
    signals.sort_by_key(|s| {
        (
            s.metric != top.metric,
            std::cmp::Reverse(s.severity),
            s.metric,
        )
    });
    let wire: Vec<protocol::Signal> = signals
        .into_iter()
        .map(|s| protocol::Signal {
            metric: s.metric.as_str().to_owned(),
            method: s.method.as_str().to_owned(),
            severity: s.severity.as_str().to_owned(),
            observed: s.observed,
            expected: s.expected,
            deviation: s.deviation,
        })
        .collect();
    serde_json::to_string(&wire).unwrap_or_else(|_| "[]".to_owned())
}

/// Writes one change; returns the id of a new incident.
pub async fn apply_change(
    conn: &mut MySqlConnection,
    dataset: &str,
    change: &Change,
    detected_at: DateTime<Utc>,
) -> Result<Option<u64>, sqlx::Error> {
    match change {
        Change::Open {
            label,
            entity_id,
            incident,
        } => {
            let top = incident.top();
            let result = sqlx::query(
                "INSERT INTO anomalies (dataset, event_label, entity_id, metric, severity, method, period_start, \
                 period_end, observed, expected, deviation, signals, state, detected_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'firing', ?)",
            )
            .bind(dataset)
            .bind(&**label)
            .bind(entity_id)
            .bind(top.metric.as_str())
            .bind(top.severity.as_str())
            .bind(top.method.as_str())
            .bind(date(incident.start))
            .bind(date(incident.end))
            .bind(top.observed)
            .bind(top.expected)
            .bind(top.deviation)
            .bind(signals_json(incident))
            .bind(detected_at.naive_utc())
            .execute(conn)
            .await?;
            Ok(Some(result.last_insert_id()))
        }
        Change::Update { incident } => {
            let top = incident.top();
            sqlx::query(
                "UPDATE anomalies SET period_end = ?, metric = ?, severity = ?, method = ?, observed = ?, \
                 expected = ?, deviation = ?, signals = ? WHERE id = ?",
            )
            .bind(date(incident.end))
            .bind(top.metric.as_str())
            .bind(top.severity.as_str())
            .bind(top.method.as_str())
            .bind(top.observed)
            .bind(top.expected)
            .bind(top.deviation)
            .bind(signals_json(incident))
            .bind(incident.id)
            .execute(conn)
            .await?;
            Ok(None)
        }
        Change::Resolve { id, resolved_at } => {
            sqlx::query(
                "UPDATE anomalies SET state = 'resolved', resolved_at = ? WHERE id = ? AND state = 'firing'",
            )
            .bind(date(*resolved_at))
            .bind(id)
            .execute(conn)
            .await?;
            Ok(None)
        }
    }
}

/// Filters of `/api/v1/state`.
#[derive(Debug, Default, Clone)]
pub struct AnomalyFilter {
    pub dataset: Option<String>,
    pub label: Option<String>,
    pub entity_id: Option<i64>,
    pub severity: Option<String>,
    pub status: Option<String>,
    /// `firing` or `resolved`.
    pub state: Option<String>,
    /// Anomalies that ended at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Anomalies that started before this (reports).
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
}

#[derive(Debug, sqlx::FromRow)]
struct AnomalyRecord {
    id: u64,
    dataset: Vec<u8>,
    event_label: Vec<u8>,
    entity_id: i64,
    metric: String,
    severity: String,
    method: String,
    period_start: NaiveDateTime,
    period_end: NaiveDateTime,
    observed: f64,
    expected: f64,
    deviation: f64,
    signals: Option<String>,
    state: String,
    resolved_at: Option<NaiveDateTime>,
    status: String,
    detected_at: NaiveDateTime,
    decided_by: Option<String>,
    decided_at: Option<NaiveDateTime>,
    comment: Option<String>,
    silenced_by: Option<u64>,
    reason: Option<String>,
    taught_by: Option<u64>,
}

const ANOMALY_COLUMNS: &str =
    "id, dataset, event_label, entity_id, metric, severity, method, period_start, period_end, \
     observed, expected, deviation, signals, state, resolved_at, status, detected_at, decided_by, \
     decided_at, comment, silenced_by, reason, taught_by";

fn anomaly(r: AnomalyRecord) -> protocol::Anomaly {
    protocol::Anomaly {
        id: r.id,
        dataset: String::from_utf8_lossy(&r.dataset).into_owned(),
        label: String::from_utf8_lossy(&r.event_label).into_owned(),
        entity_id: r.entity_id,
        metric: r.metric,
        severity: r.severity,
        method: r.method,
        period_start: r.period_start.and_utc(),
        period_end: r.period_end.and_utc(),
        observed: r.observed,
        expected: r.expected,
        deviation: r.deviation,
        signals: r
            .signals
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default(),
        state: r.state,
        resolved_at: r.resolved_at.map(|d| d.and_utc()),
        status: r.status,
        detected_at: r.detected_at.and_utc(),
        decided_by: r.decided_by,
        decided_at: r.decided_at.map(|d| d.and_utc()),
        comment: r.comment,
        silenced_by: r.silenced_by,
        reason: r.reason.as_deref().and_then(|reason| {
            serde_json::from_value(serde_json::Value::String(reason.to_owned())).ok()
        }),
        taught_by: r.taught_by,
    }
}

/// Anomalies matching the filter, newest first.
pub async fn anomalies(
    pool: &MySqlPool,
    filter: &AnomalyFilter,
) -> Result<Vec<protocol::Anomaly>, sqlx::Error> {
    let mut select = QueryBuilder::<MySql>::new(format!(
        "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE 1 = 1"
    ));
    if let Some(dataset) = &filter.dataset {
        select.push(" AND dataset = ").push_bind(dataset);
    }
    if let Some(label) = &filter.label {
        select.push(" AND event_label = ").push_bind(label);
    }
    if let Some(entity_id) = filter.entity_id {
        select.push(" AND entity_id = ").push_bind(entity_id);
    }
    if let Some(severity) = &filter.severity {
        select.push(" AND severity = ").push_bind(severity);
    }
    if let Some(status) = &filter.status {
        select.push(" AND status = ").push_bind(status);
    }
    if let Some(incident_state) = &filter.state {
        select.push(" AND state = ").push_bind(incident_state);
    }
    if let Some(since) = filter.since {
        select
            .push(" AND period_end >= ")
            .push_bind(since.naive_utc());
    }
    if let Some(until) = filter.until {
        select
            .push(" AND period_start < ")
            .push_bind(until.naive_utc());
    }
    select
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(filter.limit);
    let records: Vec<AnomalyRecord> = select.build_query_as().fetch_all(pool).await?;
    Ok(records.into_iter().map(anomaly).collect())
}

pub async fn anomaly_by_id(
    pool: &MySqlPool,
    id: u64,
) -> Result<Option<protocol::Anomaly>, sqlx::Error> {
    let record: Option<AnomalyRecord> = sqlx::query_as(&format!(
        "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(record.map(anomaly))
}

/// Records an analyst's verdict, in the caller's transaction; false when there is no
/// such anomaly.
pub async fn decide(
    conn: &mut MySqlConnection,
    id: u64,
    status: &str,
    reason: Option<protocol::VerdictReason>,
    user: &str,
    comment: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let exists: Option<u64> =
        sqlx::query_scalar("SELECT id FROM anomalies WHERE id = ? FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE anomalies SET status = ?, reason = ?, decided_by = ?, decided_at = NOW(3), \
         comment = ? WHERE id = ?",
    )
    .bind(status)
    .bind(reason.map(protocol::VerdictReason::as_str))
    .bind(user)
    .bind(comment)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Alarms not yet posted to the webhook (oldest first), and resolved alarms whose
/// resolution has not been posted; never one found inside a silence or capped by a
/// teaching.
pub async fn alarms_to_notify(
    pool: &MySqlPool,
    limit: u32,
) -> Result<Vec<protocol::Anomaly>, sqlx::Error> {
    let records: Vec<AnomalyRecord> = sqlx::query_as(&format!(
        "SELECT {ANOMALY_COLUMNS} FROM anomalies WHERE severity = 'alarm' AND silenced_by IS NULL AND taught_by IS NULL \
         AND ((notified_at IS NULL AND status = 'open') \
           OR (notified_at IS NOT NULL AND state = 'resolved' AND resolved_notified_at IS NULL)) \
         ORDER BY id LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(records.into_iter().map(anomaly).collect())
}

/// Marks an alarm as posted; `resolved` when the message also told its resolution.
pub async fn mark_notified(pool: &MySqlPool, id: u64, resolved: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE anomalies SET notified_at = COALESCE(notified_at, NOW(3)), \
         resolved_notified_at = IF(?, NOW(3), resolved_notified_at) WHERE id = ?",
    )
    .bind(resolved)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}
