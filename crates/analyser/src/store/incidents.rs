//! Incidents: the firing ones, the changes the judge decides, and what the webhook still
//! has to post.

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool};

use crate::judge::{Incident, Signal};

use super::anomalies::{anomaly, AnomalyRecord};
use super::date;

/// The id of the firing incident of a series that began at `period_start`, if the store
/// has one (used on start, for incidents a replay opened again).
pub async fn firing_incident_id(
    pool: &MySqlPool,
    dataset: &str,
    label: &str,
    entity_id: i64,
    period_start: i64,
) -> Result<Option<u64>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM anomalies WHERE dataset = ? AND state = 'firing' AND event_label = ? \
         AND entity_id = ? AND period_start = ? ORDER BY id DESC LIMIT 1",
        dataset,
        label,
        entity_id,
        date(period_start)
    )
    .fetch_optional(pool)
    .await
}

/// A firing incident, by id, and the label of its series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringIncident {
    pub id: u64,
    pub label: String,
}

/// The firing incidents of a dataset.
pub async fn firing_incidents(
    pool: &MySqlPool,
    dataset: &str,
) -> Result<Vec<FiringIncident>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, event_label FROM anomalies WHERE dataset = ? AND state = 'firing'",
        dataset
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| FiringIncident {
            id: row.id,
            label: String::from_utf8_lossy(&row.event_label).into_owned(),
        })
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
            metric: s.metric,
            method: s.method,
            severity: s.severity,
            observed: s.observed,
            expected: s.expected,
            deviation: s.deviation,
        })
        .collect();
    serde_json::to_string(&wire).unwrap_or_else(|_| "[]".to_owned())
}

/// Records a new firing incident of a series, with the teaching that capped it and the
/// silence it is inside; returns its id. One row per statement: the id is the statement's
/// own (a multi-row INSERT's ids need not be consecutive, e.g. on Galera).
#[allow(clippy::too_many_arguments)]
pub async fn open_incident(
    conn: &mut MySqlConnection,
    dataset: &str,
    label: &str,
    entity_id: i64,
    incident: &Incident,
    taught_by: Option<u64>,
    silenced_by: Option<u64>,
    detected_at: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let top = incident.top();
    let result = sqlx::query!(
        "INSERT INTO anomalies (dataset, event_label, entity_id, metric, severity, method, period_start, \
         period_end, observed, expected, deviation, signals, state, detected_at, taught_by, silenced_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'firing', ?, ?, ?)",
        dataset,
        label,
        entity_id,
        top.metric.as_str(),
        top.severity.as_str(),
        top.method.as_str(),
        date(incident.start),
        date(incident.end),
        top.observed,
        top.expected,
        top.deviation,
        signals_json(incident),
        detected_at.naive_utc(),
        taught_by,
        silenced_by
    )
    .execute(conn)
    .await?;
    Ok(result.last_insert_id())
}

/// A firing incident that grew, as it is recorded.
#[derive(Debug, Clone)]
pub struct Grown<'a> {
    pub label: &'a str,
    pub entity_id: i64,
    pub incident: &'a Incident,
    /// Follows every growth: cleared when the incident outgrew its teaching.
    pub taught_by: Option<u64>,
}

/// Rows per statement of [`grow_incidents`]: 16 placeholders and a few hundred bytes of
/// signals each, far below the protocol's limits.
const GROWN_PER_STATEMENT: usize = 250;

/// Records the growth of firing incidents (period end, strongest signal, signals,
/// `taught_by`), many per statement: an upsert on the id of rows that exist (anomalies
/// are never deleted), so it only ever updates.
pub async fn grow_incidents(
    conn: &mut MySqlConnection,
    dataset: &str,
    grown: &[Grown<'_>],
    detected_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // Id 0: an incident the store never recorded; there is nothing to update.
    let grown: Vec<&Grown> = grown.iter().filter(|g| g.incident.id != 0).collect();
    // Multi-row statements of several sizes: built at run time, so not checked at compile time.
    for rows in super::statements(&grown, GROWN_PER_STATEMENT) {
        let mut sql = String::with_capacity(400 + rows.len() * 60);
        sql.push_str(
            "INSERT INTO anomalies (id, dataset, event_label, entity_id, metric, severity, method, \
             period_start, period_end, observed, expected, deviation, signals, state, detected_at, \
             taught_by) VALUES ",
        );
        for i in 0..rows.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'firing', ?, ?)");
        }
        sql.push_str(
            " ON DUPLICATE KEY UPDATE period_end = VALUES(period_end), metric = VALUES(metric), \
             severity = VALUES(severity), method = VALUES(method), observed = VALUES(observed), \
             expected = VALUES(expected), deviation = VALUES(deviation), signals = VALUES(signals), \
             taught_by = VALUES(taught_by)",
        );
        let mut query = sqlx::query(&sql);
        for g in rows {
            let top = g.incident.top();
            query = query
                .bind(g.incident.id)
                .bind(dataset)
                .bind(g.label)
                .bind(g.entity_id)
                .bind(top.metric.as_str())
                .bind(top.severity.as_str())
                .bind(top.method.as_str())
                .bind(date(g.incident.start))
                .bind(date(g.incident.end))
                .bind(top.observed)
                .bind(top.expected)
                .bind(top.deviation)
                .bind(signals_json(g.incident))
                .bind(detected_at.naive_utc())
                .bind(g.taught_by);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Resolves firing incidents, each at its `resolved_at` (unix seconds): one statement per
/// time and chunk of ids. An incident resolved already stays as it was.
pub async fn resolve_incidents(
    conn: &mut MySqlConnection,
    resolved: &[(i64, u64)],
) -> Result<(), sqlx::Error> {
    let mut resolved = resolved.to_vec();
    resolved.sort_unstable();
    for at in resolved.chunk_by(|a, b| a.0 == b.0) {
        let ids: Vec<u64> = at.iter().map(|&(_, id)| id).collect();
        // IN lists of several sizes: built at run time, so not checked at compile time.
        for ids in super::statements(&ids, 1_000) {
            let mut sql = String::from(
                "UPDATE anomalies SET state = 'resolved', resolved_at = ? \
                 WHERE state = 'firing' AND id IN (",
            );
            for i in 0..ids.len() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
            }
            sql.push(')');
            let mut query = sqlx::query(&sql).bind(date(at[0].0));
            for id in ids {
                query = query.bind(id);
            }
            query.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Alarms not yet posted to the webhook (oldest first), and resolved alarms whose
/// resolution has not been posted; never one found inside a silence or capped by a
/// teaching.
pub async fn alarms_to_notify(
    pool: &MySqlPool,
    limit: u32,
) -> Result<Vec<protocol::Anomaly>, sqlx::Error> {
    let records = sqlx::query_as!(
        AnomalyRecord,
        "SELECT id, dataset, event_label, entity_id, metric, severity, method, period_start, period_end, \
         observed, expected, deviation, signals, state, resolved_at, status, detected_at, decided_by, \
         decided_at, comment, silenced_by, reason, taught_by \
         FROM anomalies WHERE severity = 'alarm' AND silenced_by IS NULL AND taught_by IS NULL \
         AND ((notified_at IS NULL AND status = 'open') \
           OR (notified_at IS NOT NULL AND state = 'resolved' AND resolved_notified_at IS NULL)) \
         ORDER BY id LIMIT ?",
        limit
    )
    .fetch_all(pool)
    .await?;
    records.into_iter().map(anomaly).collect()
}

/// Marks an alarm as posted; `resolved` when the message also told its resolution.
pub async fn mark_notified(pool: &MySqlPool, id: u64, resolved: bool) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE anomalies SET notified_at = COALESCE(notified_at, NOW(3)), \
         resolved_notified_at = IF(?, NOW(3), resolved_notified_at) WHERE id = ?",
        resolved,
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}
