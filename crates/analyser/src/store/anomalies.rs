//! The routes' reads of anomalies, and an analyst's decision on one.

use chrono::{DateTime, NaiveDateTime, Utc};
use protocol::{Check, IncidentState, Metric, Severity, Status, VerdictReason};
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

/// Filters of `/api/v1/state`.
#[derive(Debug, Default, Clone)]
pub struct AnomalyFilter {
    pub dataset: Option<String>,
    pub label: Option<String>,
    pub entity_id: Option<i64>,
    pub severity: Option<Severity>,
    pub status: Option<Status>,
    pub state: Option<IncidentState>,
    /// Anomalies that ended at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Anomalies that started before this (reports).
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// A row of `anomalies`. The vocabulary columns are parsed by [`anomaly`]: a stored word
/// outside it is a decode error of the whole read, never a row silently left out.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AnomalyRecord {
    pub(super) id: u64,
    pub(super) dataset: Vec<u8>,
    pub(super) event_label: Vec<u8>,
    pub(super) entity_id: i64,
    pub(super) metric: String,
    pub(super) severity: String,
    pub(super) method: String,
    pub(super) period_start: NaiveDateTime,
    pub(super) period_end: NaiveDateTime,
    pub(super) observed: f64,
    pub(super) expected: f64,
    pub(super) deviation: f64,
    pub(super) signals: Option<String>,
    pub(super) state: String,
    pub(super) resolved_at: Option<NaiveDateTime>,
    pub(super) status: String,
    pub(super) detected_at: NaiveDateTime,
    pub(super) decided_by: Option<String>,
    pub(super) decided_at: Option<NaiveDateTime>,
    pub(super) comment: Option<String>,
    pub(super) silenced_by: Option<u64>,
    pub(super) reason: Option<String>,
    pub(super) taught_by: Option<u64>,
}

/// The columns of [`AnomalyRecord`], for the statements built at run time; the checked
/// queries spell them out (`query_as!` takes a literal).
pub(super) const ANOMALY_COLUMNS: &str =
    "id, dataset, event_label, entity_id, metric, severity, method, period_start, period_end, \
     observed, expected, deviation, signals, state, resolved_at, status, detected_at, decided_by, \
     decided_at, comment, silenced_by, reason, taught_by";

/// The wire form of a stored anomaly; its signals and reason must parse too.
pub(super) fn anomaly(r: AnomalyRecord) -> Result<protocol::Anomaly, sqlx::Error> {
    let unreadable = |column: &str, error: &dyn std::fmt::Display| {
        sqlx::Error::Decode(format!("anomaly {}: {column}: {error}", r.id).into())
    };
    let signals: Vec<protocol::Signal> = match r.signals.as_deref() {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json).map_err(|e| unreadable("signals", &e))?,
    };
    let reason: Option<VerdictReason> = match r.reason.as_deref() {
        None => None,
        Some(text) => Some(text.parse().map_err(|e| unreadable("reason", &e))?),
    };
    let metric: Metric = r.metric.parse().map_err(|e| unreadable("metric", &e))?;
    let severity: Severity = r.severity.parse().map_err(|e| unreadable("severity", &e))?;
    let method: Check = r.method.parse().map_err(|e| unreadable("method", &e))?;
    let state: IncidentState = r.state.parse().map_err(|e| unreadable("state", &e))?;
    let status: Status = r.status.parse().map_err(|e| unreadable("status", &e))?;
    Ok(protocol::Anomaly {
        id: r.id,
        dataset: String::from_utf8_lossy(&r.dataset).into_owned(),
        label: String::from_utf8_lossy(&r.event_label).into_owned(),
        entity_id: r.entity_id,
        metric,
        severity,
        method,
        period_start: r.period_start.and_utc(),
        period_end: r.period_end.and_utc(),
        observed: r.observed,
        expected: r.expected,
        deviation: r.deviation,
        signals,
        state,
        resolved_at: r.resolved_at.map(|d| d.and_utc()),
        status,
        detected_at: r.detected_at.and_utc(),
        decided_by: r.decided_by,
        decided_at: r.decided_at.map(|d| d.and_utc()),
        comment: r.comment,
        silenced_by: r.silenced_by,
        reason,
        taught_by: r.taught_by,
    })
}

/// Anomalies matching the filter, newest first.
pub async fn anomalies(
    pool: &MySqlPool,
    filter: &AnomalyFilter,
) -> Result<Vec<protocol::Anomaly>, sqlx::Error> {
    // Only the filters given are in the statement: built at run time, so not checked at
    // compile time (`ANOMALY_COLUMNS` is the column list of the checked queries).
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
    if let Some(severity) = filter.severity {
        select.push(" AND severity = ").push_bind(severity.as_str());
    }
    if let Some(status) = filter.status {
        select.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(incident_state) = filter.state {
        select
            .push(" AND state = ")
            .push_bind(incident_state.as_str());
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
    records.into_iter().map(anomaly).collect()
}

pub async fn anomaly_by_id(
    pool: &MySqlPool,
    id: u64,
) -> Result<Option<protocol::Anomaly>, sqlx::Error> {
    let record = sqlx::query_as!(
        AnomalyRecord,
        "SELECT id, dataset, event_label, entity_id, metric, severity, method, period_start, period_end, \
         observed, expected, deviation, signals, state, resolved_at, status, detected_at, decided_by, \
         decided_at, comment, silenced_by, reason, taught_by FROM anomalies WHERE id = ?",
        id
    )
    .fetch_optional(pool)
    .await?;
    record.map(anomaly).transpose()
}

/// Records an analyst's verdict, in the caller's transaction; false when there is no
/// such anomaly.
pub async fn decide(
    conn: &mut MySqlConnection,
    id: u64,
    status: Status,
    reason: Option<VerdictReason>,
    user: &str,
    comment: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let exists = sqlx::query_scalar!("SELECT id FROM anomalies WHERE id = ? FOR UPDATE", id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE anomalies SET status = ?, reason = ?, decided_by = ?, decided_at = NOW(3), \
         comment = ? WHERE id = ?",
        status.as_str(),
        reason.map(VerdictReason::as_str),
        user,
        comment,
        id
    )
    .execute(conn)
    .await?;
    Ok(true)
}
