//! Reports: a dataset's check over its last `time_ago` in the product brief's shape
//! ([`compute`], what `GET /api/v1/report` answers), and the history of them: computed
//! every `report_every` per dataset by [`run`], stored, kept `report_retention`.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use protocol::{Report, ReportOutlier, ReportResult, Severity};
use serde::Serialize;
use sqlx::MySqlPool;

use crate::configuration::{DatasetSettings, ReportSettings};
use crate::datasets::Datasets;
use crate::store::{self, AnomalyFilter};

/// A dataset's check over its last `time_ago`, as this shard's clock has judged it.
pub async fn compute(
    pool: &MySqlPool,
    dataset: &DatasetSettings,
    shard_key: &str,
) -> Result<Report, sqlx::Error> {
    let check_time_start = Utc::now();
    let time_ago = chrono::Duration::from_std(dataset.time_ago()).unwrap_or_default();
    let clock = store::load_clock(pool, &dataset.name, shard_key).await?;
    let date_end = clock
        .judged_until
        .map_or(check_time_start, |s| store::date(s).and_utc());
    let date_start = date_end - time_ago;
    let filter = AnomalyFilter {
        dataset: Some(dataset.name.clone()),
        since: Some(date_start + chrono::Duration::seconds(1)),
        until: Some(date_end),
        limit: 10_000,
        ..AnomalyFilter::default()
    };
    let mut anomalies = store::anomalies(pool, &filter).await?;
    anomalies.sort_by_key(|a| (a.period_start, a.id));
    let mut result = ReportResult {
        warnings: Vec::new(),
        alarms: Vec::new(),
        silenced: 0,
    };
    for anomaly in anomalies {
        if anomaly.silenced_by.is_some() {
            result.silenced += 1;
            continue;
        }
        // One entry per incident, naming every check that fired: "checkout (count, population)".
        let metrics: Vec<&str> = if anomaly.signals.is_empty() {
            vec![anomaly.metric.as_str()]
        } else {
            anomaly.signals.iter().map(|s| s.metric.as_str()).collect()
        };
        let outlier = ReportOutlier {
            outlier_period_start: anomaly.period_start,
            outlier_period_end: anomaly.period_end,
            metric: format!("{} ({})", anomaly.label, metrics.join(", ")),
            attribute: anomaly.entity_id.to_string(),
        };
        if anomaly.severity == Severity::Alarm {
            result.alarms.push(outlier);
        } else {
            result.warnings.push(outlier);
        }
    }
    Ok(Report {
        site_id: dataset.name.clone(),
        method: dataset.method,
        check_time_start,
        check_time_end: Utc::now(),
        time_ago: humantime::format_duration(dataset.time_ago()).to_string(),
        time_step: humantime::format_duration(dataset.time_step).to_string(),
        date_start,
        date_end,
        result,
    })
}

/// A stored report, as `/api/v1/reports` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredReport {
    pub id: u64,
    pub dataset: String,
    pub computed_at: DateTime<Utc>,
    /// The report, in the brief's shape.
    pub report: Report,
}

#[derive(Debug)]
struct ReportRecord {
    id: u64,
    dataset: Vec<u8>,
    computed_at: NaiveDateTime,
    body: String,
}

fn stored(r: ReportRecord) -> Result<StoredReport, sqlx::Error> {
    Ok(StoredReport {
        id: r.id,
        dataset: String::from_utf8_lossy(&r.dataset).into_owned(),
        computed_at: r.computed_at.and_utc(),
        report: serde_json::from_str(&r.body)
            .map_err(|e| sqlx::Error::Decode(format!("report {}: {e}", r.id).into()))?,
    })
}

/// Stores a report; returns its id.
pub async fn save(pool: &MySqlPool, shard_key: &str, report: &Report) -> Result<u64, sqlx::Error> {
    let body = serde_json::to_string(report)
        .map_err(|e| sqlx::Error::Encode(format!("report: {e}").into()))?;
    let result = sqlx::query!(
        "INSERT INTO reports (dataset, shard, computed_at, alarms, warnings, silenced, body) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        &report.site_id,
        shard_key,
        report.check_time_end.naive_utc(),
        report.result.alarms.len() as u64,
        report.result.warnings.len() as u64,
        report.result.silenced,
        body
    )
    .execute(pool)
    .await?;
    Ok(result.last_insert_id())
}

/// Stored reports, newest first.
pub async fn list(
    pool: &MySqlPool,
    dataset: Option<&str>,
    since: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<Vec<StoredReport>, sqlx::Error> {
    let since = since.map(|t| t.naive_utc());
    let records = sqlx::query_as!(
        ReportRecord,
        "SELECT id, dataset, computed_at, body FROM reports \
         WHERE (? IS NULL OR dataset = ?) AND (? IS NULL OR computed_at >= ?) \
         ORDER BY computed_at DESC, id DESC LIMIT ?",
        dataset,
        dataset,
        since,
        since,
        limit
    )
    .fetch_all(pool)
    .await?;
    records.into_iter().map(stored).collect()
}

pub async fn by_id(pool: &MySqlPool, id: u64) -> Result<Option<StoredReport>, sqlx::Error> {
    let record = sqlx::query_as!(
        ReportRecord,
        "SELECT id, dataset, computed_at, body FROM reports WHERE id = ?",
        id
    )
    .fetch_optional(pool)
    .await?;
    record.map(stored).transpose()
}

/// When this shard last stored a report of the dataset.
async fn last_computed(
    pool: &MySqlPool,
    dataset: &str,
    shard_key: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let at = sqlx::query_scalar!(
        "SELECT MAX(computed_at) AS last FROM reports WHERE dataset = ? AND shard = ?",
        dataset,
        shard_key
    )
    .fetch_one(pool)
    .await?;
    Ok(at.map(|t| t.and_utc()))
}

/// Deletes the reports older than `retention`; returns how many.
pub async fn prune(pool: &MySqlPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let Some(before) = Utc::now().checked_sub_signed(retention) else {
        return Ok(0);
    };
    let result = sqlx::query!(
        "DELETE FROM reports WHERE computed_at < ? LIMIT 10000",
        before.naive_utc()
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// One round: stores the report of every dataset whose last one is `report_every` old (or
/// that has none), then prunes. Restarts keep the rhythm: the last report is in MySQL.
pub async fn round(
    pool: &MySqlPool,
    datasets: &[DatasetSettings],
    shard_key: &str,
    settings: &ReportSettings,
) -> Result<(), sqlx::Error> {
    let every = chrono::Duration::from_std(settings.report_every).unwrap_or(chrono::Duration::MAX);
    for dataset in datasets {
        let due = last_computed(pool, &dataset.name, shard_key)
            .await?
            .is_none_or(|last| last + every <= Utc::now());
        if due {
            let report = compute(pool, dataset, shard_key).await?;
            let id = save(pool, shard_key, &report).await?;
            tracing::debug!(id, dataset = %dataset.name, "report stored");
        }
    }
    let pruned = prune(pool, settings.report_retention).await?;
    if pruned > 0 {
        tracing::info!(pruned, "old reports deleted");
    }
    Ok(())
}

/// Computes and stores reports on schedule until aborted; a failed round is retried.
pub async fn run(pool: MySqlPool, datasets: Datasets, shard_key: String, settings: ReportSettings) {
    let tick = settings.report_every.min(Duration::from_secs(60));
    loop {
        if let Err(error) = round(&pool, &datasets.list(), &shard_key, &settings).await {
            tracing::warn!(%error, "storing reports failed; will retry");
        }
        tokio::time::sleep(tick).await;
    }
}

/// A dataset's day for the digest: its anomalies by severity and the strongest ones.
#[derive(Debug, Clone)]
pub struct Digest {
    pub dataset: String,
    pub day: chrono::NaiveDate,
    pub alarms: usize,
    pub warnings: usize,
    pub silenced: usize,
    /// The strongest incidents (alarms first, then by deviation), at most [`DIGEST_TOP`].
    pub top: Vec<protocol::Anomaly>,
}

pub const DIGEST_TOP: usize = 5;

/// Yesterday's digest (UTC) for the dataset, once its clock has judged the whole day and
/// if it was not sent yet; older days are never sent.
pub async fn digest_due(
    pool: &MySqlPool,
    dataset: &str,
    shard_key: &str,
) -> Result<Option<Digest>, sqlx::Error> {
    let clock = store::load_clock(pool, dataset, shard_key).await?;
    let Some(judged_until) = clock.judged_until else {
        return Ok(None);
    };
    let Some(day) = Utc::now().date_naive().pred_opt() else {
        return Ok(None);
    };
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = start + chrono::Duration::days(1);
    if store::date(judged_until).and_utc() < end {
        return Ok(None);
    }
    let sent = sqlx::query_scalar!(
        "SELECT 1 AS sent FROM digests WHERE dataset = ? AND day = ?",
        dataset,
        day
    )
    .fetch_optional(pool)
    .await?;
    if sent.is_some() {
        return Ok(None);
    }
    let filter = AnomalyFilter {
        dataset: Some(dataset.to_owned()),
        since: Some(start),
        until: Some(end),
        limit: 10_000,
        ..AnomalyFilter::default()
    };
    // Incidents that began that day.
    let anomalies: Vec<protocol::Anomaly> = store::anomalies(pool, &filter)
        .await?
        .into_iter()
        .filter(|a| a.period_start >= start)
        .collect();
    let (silenced, mut loud): (Vec<_>, Vec<_>) =
        anomalies.into_iter().partition(|a| a.silenced_by.is_some());
    let alarms = loud
        .iter()
        .filter(|a| a.severity == Severity::Alarm)
        .count();
    // Alarms first, then the farthest from what was expected.
    loud.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.deviation.abs().total_cmp(&a.deviation.abs()))
    });
    let warnings = loud.len() - alarms;
    loud.truncate(DIGEST_TOP);
    Ok(Some(Digest {
        dataset: dataset.to_owned(),
        day,
        alarms,
        warnings,
        silenced: silenced.len(),
        top: loud,
    }))
}

/// Records that the digest of the day was posted.
pub async fn digest_sent(pool: &MySqlPool, digest: &Digest) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT IGNORE INTO digests (dataset, day, sent_at) VALUES (?, ?, NOW(3))",
        &digest.dataset,
        digest.day
    )
    .execute(pool)
    .await?;
    Ok(())
}
