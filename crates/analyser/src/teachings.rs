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

use sqlx::MySqlConnection;

use crate::judge::teaching::{capped, taught_by, Lesson, Teaching};
use crate::judge::{Incident, Severity};
use crate::store::{date, seconds};

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

/// One stored teaching, as [`in_force_from`] reads it.
#[derive(Debug, Clone)]
struct Stored {
    label: Vec<u8>,
    entity_id: i64,
    /// Unix seconds.
    taught_from: i64,
    expires_at: i64,
    teaching: Teaching,
}

/// The teachings of a dataset that may cover the incidents of one judged step, read once
/// for all of them (not once per incident).
#[derive(Debug, Clone, Default)]
pub struct InForce(Vec<Stored>);

/// The teachings of a dataset still in force for an incident starting at `from` (unix
/// seconds) or later, newest first.
pub async fn in_force_from(
    conn: &mut MySqlConnection,
    dataset: &str,
    from: i64,
) -> Result<InForce, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT t.anomaly_id, t.event_label, t.entity_id, t.taught_from, t.expires_at, a.signals \
         FROM teachings t JOIN anomalies a ON a.id = t.anomaly_id \
         WHERE t.dataset = ? AND t.expires_at > ? ORDER BY t.anomaly_id DESC",
        dataset,
        date(from)
    )
    .fetch_all(conn)
    .await?;
    let stored = rows
        .into_iter()
        .map(|row| {
            Ok(Stored {
                label: row.event_label,
                entity_id: row.entity_id,
                taught_from: seconds(row.taught_from),
                expires_at: seconds(row.expires_at),
                teaching: teaching(row.anomaly_id, row.signals.as_deref())?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(InForce(stored))
}

/// A stored teaching's lessons: the dismissed anomaly's signals, which must parse.
fn teaching(anomaly_id: u64, signals: Option<&str>) -> Result<Teaching, sqlx::Error> {
    let signals: Vec<protocol::Signal> = match signals {
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
}

/// An opened or grown incident as it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Capped at a warning when a teaching covers it.
    pub incident: Incident,
    /// The teaching that capped it: `None` also for an incident that grew beyond what was
    /// taught (an alarm again).
    pub taught_by: Option<u64>,
    pub severity: Severity,
}

impl InForce {
    /// The teachings in force for a series' incident, newest first, the incident's own
    /// teaching (if it was dismissed while firing) left out.
    fn for_incident(&self, label: &str, entity_id: i64, incident: &Incident) -> Vec<Teaching> {
        let at = incident.start;
        self.0
            .iter()
            .filter(|t| {
                t.label == label.as_bytes()
                    && t.entity_id == entity_id
                    && t.expires_at > at
                    && t.taught_from <= at
                    && t.teaching.anomaly_id != incident.id
            })
            .map(|t| t.teaching.clone())
            .collect()
    }

    /// How an opened or grown incident of a series is recorded: capped at a warning, with
    /// `taught_by`, when a teaching in force covers it.
    pub fn record(&self, label: &str, entity_id: i64, incident: &Incident) -> Recorded {
        let teachings = self.for_incident(label, entity_id, incident);
        match taught_by(incident, &teachings) {
            Some(id) => Recorded {
                incident: capped(incident),
                taught_by: Some(id),
                severity: Severity::Warning,
            },
            None => Recorded {
                incident: incident.clone(),
                taught_by: None,
                severity: incident.severity(),
            },
        }
    }
}
