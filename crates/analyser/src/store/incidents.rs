//! Incidents: the firing ones, the changes the judge decides, and what the webhook still
//! has to post.

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool};

use crate::judge::{Change, Incident, Signal};

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
            let result = sqlx::query!(
                "INSERT INTO anomalies (dataset, event_label, entity_id, metric, severity, method, period_start, \
                 period_end, observed, expected, deviation, signals, state, detected_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'firing', ?)",
                dataset,
                &**label,
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
                detected_at.naive_utc()
            )
            .execute(conn)
            .await?;
            Ok(Some(result.last_insert_id()))
        }
        Change::Update { incident } => {
            let top = incident.top();
            sqlx::query!(
                "UPDATE anomalies SET period_end = ?, metric = ?, severity = ?, method = ?, observed = ?, \
                 expected = ?, deviation = ?, signals = ? WHERE id = ?",
                date(incident.end),
                top.metric.as_str(),
                top.severity.as_str(),
                top.method.as_str(),
                top.observed,
                top.expected,
                top.deviation,
                signals_json(incident),
                incident.id
            )
            .execute(conn)
            .await?;
            Ok(None)
        }
        Change::Resolve { id, resolved_at } => {
            sqlx::query!(
                "UPDATE anomalies SET state = 'resolved', resolved_at = ? WHERE id = ? AND state = 'firing'",
                date(*resolved_at),
                id
            )
            .execute(conn)
            .await?;
            Ok(None)
        }
    }
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
