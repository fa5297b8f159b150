//! Teachings: what an analyst's dismissal as expected teaches a series, in the store.
//!
//! Dismissing an anomaly with `{"reason":"expected"}` records a teaching for its series in
//! the verdict's transaction; any other verdict on it withdraws the teaching. A teaching
//! covers the series' anomalies that start from the end of the anomaly dismissed until its
//! start plus `feedback_ttl`, in the series' own time (so a backfill or a replay is judged
//! as live data was). Which new incident a teaching caps is the pure rule of
//! [`crate::judge::teaching`]; this module applies it where a pull records an incident, in
//! the same transaction, so no reader (the webhook task included) ever sees an alarm that
//! a teaching capped.

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use crate::judge::teaching::{capped, taught_by, Lesson, Teaching};
use crate::judge::{Change, Severity};
use crate::store::{self, date};

/// Records that the anomaly `id` was dismissed as expected by `user`: its series is taught
/// for `ttl` from the anomaly's start. Replaces an earlier teaching of the same anomaly.
pub async fn teach(
    conn: &mut MySqlConnection,
    id: u64,
    ttl: std::time::Duration,
    user: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO teachings (anomaly_id, dataset, event_label, entity_id, taught_from, \
         expires_at, created_by, created_at) \
         SELECT id, dataset, event_label, entity_id, period_end, \
         period_start + INTERVAL ? SECOND, ?, NOW(3) FROM anomalies WHERE id = ? \
         ON DUPLICATE KEY UPDATE taught_from = VALUES(taught_from), \
         expires_at = VALUES(expires_at), created_by = VALUES(created_by), \
         created_at = VALUES(created_at)",
        ttl.as_secs(),
        user,
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Withdraws the teaching of the anomaly `id`, if it had one (another verdict replaced
/// the dismissal as expected).
pub async fn withdraw(conn: &mut MySqlConnection, id: u64) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM teachings WHERE anomaly_id = ?", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The teachings in force for a series' incident starting at `at` (unix seconds), newest
/// first, the incident's own teaching (if it was dismissed while firing) left out.
async fn in_force(
    conn: &mut MySqlConnection,
    dataset: &str,
    label: &str,
    entity_id: i64,
    at: i64,
    incident_id: u64,
) -> Result<Vec<Teaching>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT t.anomaly_id, a.signals FROM teachings t JOIN anomalies a ON a.id = t.anomaly_id \
         WHERE t.dataset = ? AND t.event_label = ? AND t.entity_id = ? AND t.expires_at > ? \
         AND t.taught_from <= ? AND t.anomaly_id <> ? ORDER BY t.anomaly_id DESC",
        dataset,
        label,
        entity_id,
        date(at),
        date(at),
        incident_id
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let anomaly_id = row.anomaly_id;
            let signals: Vec<protocol::Signal> = match row.signals.as_deref() {
                None => Vec::new(),
                Some(json) => serde_json::from_str(json).map_err(|e| {
                    sqlx::Error::Decode(format!("anomaly {anomaly_id}: signals: {e}").into())
                })?,
            };
            Ok(Teaching {
                anomaly_id,
                lessons: signals
                    .iter()
                    .map(|s| Lesson {
                        metric: s.metric,
                        deviation: s.deviation,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// What recording a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The id of a new incident.
    pub id: Option<u64>,
    /// The severity recorded for an opened or grown incident (a warning when taught).
    pub severity: Option<Severity>,
}

/// Records one change of a judged step ([`store::apply_change`]), an opened or grown
/// incident capped at a warning, with `taught_by`, when a teaching in force covers it.
/// An incident that grows beyond what was taught is an alarm again, `taught_by` cleared.
pub async fn apply_change(
    conn: &mut MySqlConnection,
    dataset: &str,
    change: &Change,
    detected_at: DateTime<Utc>,
) -> Result<Recorded, sqlx::Error> {
    let (series, incident) = match change {
        Change::Open {
            label,
            entity_id,
            incident,
        } => (Some((label.to_string(), *entity_id)), incident),
        Change::Update { incident } => {
            let series = sqlx::query!(
                "SELECT event_label, entity_id FROM anomalies WHERE id = ?",
                incident.id
            )
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| {
                (
                    String::from_utf8_lossy(&row.event_label).into_owned(),
                    row.entity_id,
                )
            });
            (series, incident)
        }
        Change::Resolve { .. } => {
            let id = store::apply_change(conn, dataset, change, detected_at).await?;
            return Ok(Recorded { id, severity: None });
        }
    };
    let teachings = match &series {
        Some((label, entity_id)) => {
            in_force(
                &mut *conn,
                dataset,
                label,
                *entity_id,
                incident.start,
                incident.id,
            )
            .await?
        }
        None => Vec::new(),
    };
    let taught = taught_by(incident, &teachings);
    let capped_change = taught.map(|_| match change {
        Change::Open {
            label, entity_id, ..
        } => Change::Open {
            label: label.clone(),
            entity_id: *entity_id,
            incident: capped(incident),
        },
        _ => Change::Update {
            incident: capped(incident),
        },
    });
    let id = store::apply_change(
        &mut *conn,
        dataset,
        capped_change.as_ref().unwrap_or(change),
        detected_at,
    )
    .await?;
    // A grown incident may have outgrown its teaching: the mark follows every update.
    if taught.is_some() || matches!(change, Change::Update { .. }) {
        sqlx::query!(
            "UPDATE anomalies SET taught_by = ? WHERE id = ?",
            taught,
            id.unwrap_or(incident.id)
        )
        .execute(&mut *conn)
        .await?;
    }
    let severity = match taught {
        Some(_) => Severity::Warning,
        None => incident.severity(),
    };
    Ok(Recorded {
        id,
        severity: Some(severity),
    })
}
