//! `GET /api/v1/series`: one series' step totals, for charts, with one metric's value,
//! expectation and normal range at each step (`expected.rs`). Read from the analyser's own
//! step totals: a chart never costs the gatherer anything.

use actix_web::{get, web, HttpResponse};
use chrono::Utc;
use protocol::{SeriesPoint, SeriesReply};
use serde::Deserialize;

use super::{parse_time, pick_dataset, ApiError};
use crate::expected::{self, ChartStep};
use crate::judge::{Metric, Params};
use crate::state::AppState;
use crate::step_blocks;
use crate::store::{self, AnomalyFilter, ExactTotals};

#[derive(Debug, Deserialize)]
pub struct SeriesParams {
    dataset: Option<String>,
    label: Option<String>,
    entity_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    metric: Option<String>,
}

/// Baseline windows of history read before the chart to warm its checks up.
const WARM_UP_WINDOWS: i64 = 4;

/// One series' step totals, for charts.
#[utoipa::path(
    get, path = "/api/v1/series", tag = "analysts", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query, description = "required when there are several datasets"),
        ("label" = String, Query), ("entity_id" = i64, Query),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("metric" = Option<String>, Query, description = "count, events, avg, min or max; default avg for a level label, else count"),
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
    let judging = Params::from_settings(&dataset);
    let step = judging.rules.step;
    let metric = chart_metric(&judging, &label, params.metric.as_deref())?;
    let from_step = judging.rules.step_of(from.timestamp());
    let warm_from = from_step - WARM_UP_WINDOWS * judging.window_seconds();
    let rows = step_blocks::series_totals(
        &state.pool,
        &dataset.name,
        &label,
        entity_id,
        warm_from,
        to.timestamp(),
    )
    .await?;
    // A window of zeros reads as traffic that stopped: only a series the analyser holds
    // totals for gets one.
    if rows.is_empty()
        && !step_blocks::series_known(&state.pool, &dataset.name, &label, entity_id).await?
    {
        return Err(ApiError::NotFound(format!(
            "no such series: {label:?} / {entity_id} in dataset {:?}",
            dataset.name
        )));
    }
    // The steps its incidents covered: judged, not learnt.
    let incidents = store::anomalies(
        &state.pool,
        &AnomalyFilter {
            dataset: Some(dataset.name.clone()),
            label: Some(label.clone()),
            entity_id: Some(entity_id),
            since: chrono::DateTime::from_timestamp(warm_from, 0),
            limit: 1_000,
            ..AnomalyFilter::default()
        },
    )
    .await?;
    let held = |s: i64| {
        incidents
            .iter()
            .any(|a| a.period_start.timestamp() <= s && s < a.period_end.timestamp())
    };
    // Steps without rows are zeros, as the detector sees them; the history the stored
    // totals still hold warms the checks up.
    let first = rows
        .first()
        .map_or(from_step, |r| r.step_start.min(from_step));
    let mut steps = Vec::new();
    let mut rows = rows.into_iter().peekable();
    let mut s = first;
    while s < to.timestamp() && steps.len() < 100_000 {
        let totals = match rows.peek() {
            Some(row) if row.step_start == s => {
                let row = rows.next().unwrap_or_else(|| unreachable!("peeked"));
                row.totals
            }
            _ => ExactTotals {
                sum: 0,
                events: 0,
                min: 0,
                max: 0,
            },
        };
        steps.push((s, totals));
        s += step;
    }
    let chart: Vec<ChartStep> = steps
        .iter()
        .map(|&(start, t)| ChartStep {
            start,
            totals: t.as_step_totals(),
            held: held(start),
        })
        .collect();
    let bands = expected::bands(&judging, metric, &chart);
    let values = expected::values(metric, &chart);
    let points = steps
        .iter()
        .zip(bands.iter().zip(values))
        .filter(|((start, _), _)| *start >= from_step)
        .map(|(&(start, t), (band, value))| SeriesPoint {
            step_start: store::date(start).and_utc(),
            count: t.sum as f64,
            events: t.events,
            min: (t.events > 0).then_some(t.min),
            max: (t.events > 0).then_some(t.max),
            value,
            expected: band.map(|b| b.expected),
            low: band.map(|b| b.low),
            high: band.map(|b| b.high),
        })
        .collect();
    let unit = match metric {
        Metric::Count | Metric::Events => format!(
            "{} per {}",
            if metric == Metric::Count {
                "sum"
            } else {
                "events"
            },
            humantime::format_duration(dataset.time_step)
        ),
        _ => "value".to_owned(),
    };
    Ok(HttpResponse::Ok().json(SeriesReply {
        ok: true,
        dataset: dataset.name.clone(),
        label,
        entity_id,
        time_step_seconds: step as u64,
        metric,
        unit,
        points,
    }))
}

/// The metric to chart: the one asked for, else the level's average or the count.
fn chart_metric(judging: &Params, label: &str, asked: Option<&str>) -> Result<Metric, ApiError> {
    match asked {
        None if judging.is_level(label) => Ok(Metric::Avg),
        None => Ok(Metric::Count),
        // A population share is a finding about peers, not a step total: no chart of it.
        Some(text) => match text.parse() {
            Ok(Metric::Population) | Err(_) => Err(ApiError::bad(
                "metric",
                format!("{text:?}: expected count, events, avg, min or max"),
            )),
            Ok(metric) => Ok(metric),
        },
    }
}
