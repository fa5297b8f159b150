//! `GET /api/v1/report?dataset=`: a dataset's check over its last `time_ago`, in the
//! product brief's shape.

use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use protocol::{Report, ReportOutlier, ReportResult};
use serde::Deserialize;

use super::{pick_dataset, ApiError};
use crate::state::AppState;
use crate::store::{self, AnomalyFilter};

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    dataset: Option<String>,
}

/// A dataset's check over its last `time_ago`, in the product brief's shape.
#[utoipa::path(
    get, path = "/api/v1/report", tag = "analysts", security(("basic" = [])),
    params(("dataset" = Option<String>, Query, description = "required when there are several datasets")),
    responses((status = 200, body = protocol::Report), (status = 404, body = protocol::ErrorReply))
)]
#[get("/api/v1/report")]
pub async fn report(
    params: web::Query<ReportParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let check_time_start = Utc::now();
    let dataset = pick_dataset(&state, params.dataset.as_deref())?;
    let time_ago = chrono::Duration::from_std(dataset.time_ago()).unwrap_or_default();
    let clock = store::load_clock(&state.pool, &dataset.name, &state.shard.key()).await?;
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
    let mut anomalies = store::anomalies(&state.pool, &filter).await?;
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
        if anomaly.severity == "alarm" {
            result.alarms.push(outlier);
        } else {
            result.warnings.push(outlier);
        }
    }
    Ok(HttpResponse::Ok().json(Report {
        site_id: dataset.name.clone(),
        method: dataset.method.as_str().to_owned(),
        check_time_start,
        check_time_end: Utc::now(),
        time_ago: humantime::format_duration(dataset.time_ago()).to_string(),
        time_step: humantime::format_duration(dataset.time_step).to_string(),
        date_start,
        date_end,
        result,
    }))
}
