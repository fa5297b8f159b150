//! `GET /api/v1/report?dataset=`: a dataset's check over its last `time_ago`, in the
//! product brief's shape.

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;

use super::{pick_dataset, ApiError};
use crate::reports;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    dataset: Option<String>,
}

/// A dataset's check over its last `time_ago`, in the product brief's shape, computed now
/// (`/api/v1/reports` holds those computed every `report_every`). Anomalies found inside a
/// silence are left out of `Warnings` and `Alarms` and counted in `Silenced`.
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
    let dataset = pick_dataset(&state, params.dataset.as_deref())?;
    let report = reports::compute(&state.pool, &dataset, &state.shard.key()).await?;
    Ok(HttpResponse::Ok().json(report))
}
