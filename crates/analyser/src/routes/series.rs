//! `GET /api/v1/series`: one series' step totals, for charts. Read from the analyser's own
//! step totals: a chart never costs the gatherer anything.

use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use protocol::{SeriesPoint, SeriesReply};
use serde::Deserialize;

use super::{parse_time, pick_dataset, ApiError};
use crate::state::AppState;
use crate::store;

#[derive(Debug, Deserialize)]
pub struct SeriesParams {
    dataset: Option<String>,
    label: Option<String>,
    entity_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// One series' step totals, for charts.
#[utoipa::path(
    get, path = "/api/v1/series", tag = "analysts", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query, description = "required when there are several datasets"),
        ("label" = String, Query), ("entity_id" = i64, Query),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query),
    ),
    responses(
        (status = 200, body = protocol::SeriesReply),
        (status = 400, body = protocol::ErrorReply),
        (status = 404, description = "No such dataset, or no such series (the analyser holds no totals for it)", body = protocol::ErrorReply),
    )
)]
#[get("/api/v1/series")]
pub async fn series(
    params: web::Query<SeriesParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let dataset = pick_dataset(&state, params.dataset.as_deref())?;
    let label = params
        .label
        .clone()
        .ok_or_else(|| ApiError::bad("label", "required"))?;
    let entity_id: i64 = params
        .entity_id
        .as_deref()
        .ok_or_else(|| ApiError::bad("entity_id", "required"))?
        .parse()
        .map_err(|_| ApiError::bad("entity_id", "not an integer"))?;
    // By default the chart ends with the last judged step: later steps are still filling,
    // and would show as a drop to zero.
    let to = match &params.to {
        Some(text) => parse_time("to", text)?,
        None => store::load_clock(&state.pool, &dataset.name, &state.shard.key())
            .await?
            .judged_until
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .unwrap_or_else(Utc::now),
    };
    let from = match &params.from {
        Some(text) => parse_time("from", text)?,
        None => to - chrono::Duration::from_std(dataset.time_ago() * 4).unwrap_or_default(),
    };
    if from > to {
        return Err(ApiError::bad("from", "from is after to"));
    }
    let step = dataset.step_seconds();
    let from_step = from.timestamp().div_euclid(step) * step;
    let rows = store::series_totals(
        &state.pool,
        &dataset.name,
        &label,
        entity_id,
        from_step,
        to.timestamp(),
    )
    .await?;
    // A window of zeros reads as traffic that stopped: only a series the analyser holds
    // totals for gets one.
    if rows.is_empty() && !series_known(&state.pool, &dataset.name, &label, entity_id).await? {
        return Err(ApiError::NotFound(format!(
            "no such series: {label:?} / {entity_id} in dataset {:?}",
            dataset.name
        )));
    }
    // Steps without rows are zeros, as the detector sees them.
    let mut points = Vec::new();
    let mut rows = rows.into_iter().peekable();
    let mut s = from_step;
    while s < to.timestamp() && points.len() < 100_000 {
        let point = match rows.peek() {
            Some(row) if row.step_start == s => {
                let row = rows.next().unwrap_or_else(|| unreachable!("peeked"));
                SeriesPoint {
                    step_start: store::date(s).and_utc(),
                    count: row.totals.sum as f64,
                    events: row.totals.events,
                    min: Some(row.totals.min),
                    max: Some(row.totals.max),
                }
            }
            _ => SeriesPoint {
                step_start: store::date(s).and_utc(),
                count: 0.0,
                events: 0,
                min: None,
                max: None,
            },
        };
        points.push(point);
        s += step;
    }
    Ok(HttpResponse::Ok().json(SeriesReply {
        ok: true,
        dataset: dataset.name.clone(),
        label,
        entity_id,
        time_step_seconds: step as u64,
        points,
    }))
}

/// Whether the analyser holds any step totals of the series (a primary-key prefix probe).
async fn series_known(
    pool: &sqlx::MySqlPool,
    dataset: &str,
    label: &str,
    entity_id: i64,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM step_totals WHERE dataset = ? AND event_label = ? AND entity_id = ? LIMIT 1",
    )
    .bind(dataset)
    .bind(label)
    .bind(entity_id)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}
