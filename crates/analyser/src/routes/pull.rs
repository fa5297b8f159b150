//! `POST /api/v1/pull`: one pull and detection cycle now (for cron).

use std::time::Instant;

use actix_web::{post, web, HttpResponse};
use protocol::PullReply;

use super::ApiError;
use crate::state::AppState;

/// Runs one pull and detection cycle now (for cron).
#[utoipa::path(
    post, path = "/api/v1/pull", tag = "operations", security(("basic" = [])),
    responses(
        (status = 200, body = protocol::PullReply),
        (status = 409, description = "Another pull of this shard is running", body = protocol::ErrorReply),
        (status = 502, description = "The gatherer is unreachable", body = protocol::ErrorReply),
    )
)]
#[post("/api/v1/pull")]
pub async fn pull(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let outcome = state.pull().await?;
    Ok(HttpResponse::Ok().json(PullReply {
        ok: true,
        rows: outcome.rows,
        iterator: outcome.iterator,
        duration_ms: started.elapsed().as_millis() as u64,
    }))
}
