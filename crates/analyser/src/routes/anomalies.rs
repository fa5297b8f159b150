//! `POST /api/v1/anomalies/{id}/approve` and `/dismiss`: an analyst's verdict, with who
//! decided it, when, and an optional comment.

use actix_web::{post, web, HttpRequest, HttpResponse};
use protocol::Verdict;

use super::{Analyst, ApiError};
use crate::state::AppState;
use crate::store;

async fn decide(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
    status: &str,
) -> Result<HttpResponse, ApiError> {
    let id: u64 = path
        .parse()
        .map_err(|_| ApiError::bad("id", format!("{:?} is not an anomaly id", path.as_str())))?;
    let verdict: Verdict = if body.iter().all(u8::is_ascii_whitespace) {
        Verdict::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad("body", format!("expected {{\"comment\": \"…\"}}: {e}")))?
    };
    if verdict.comment.as_ref().is_some_and(|c| c.len() > 10_000) {
        return Err(ApiError::bad("comment", "longer than 10 000 bytes"));
    }
    let user = Analyst::of(&req).name;
    let decided = store::decide(&state.pool, id, status, &user, verdict.comment.as_deref()).await?;
    state.state_cache.invalidate();
    match decided {
        Some(anomaly) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": anomaly})))
        }
        None => Err(ApiError::NotFound(format!("no anomaly with id {id}"))),
    }
}

/// Records an analyst's verdict (approved), with who, when and an optional comment.
#[utoipa::path(
    post, path = "/api/v1/anomalies/{id}/approve", tag = "analysts", security(("basic" = [])),
    params(("id" = u64, Path)),
    request_body(content = Option<protocol::Verdict>, content_type = "application/json"),
    responses(
        (status = 200, description = "The anomaly as it now is"),
        (status = 400, body = protocol::ErrorReply),
        (status = 404, description = "No such anomaly", body = protocol::ErrorReply),
    )
)]
#[post("/api/v1/anomalies/{id}/approve")]
pub async fn approve(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path, body, state, "approved").await
}

/// Records an analyst's verdict (dismissed), with who, when and an optional comment.
#[utoipa::path(
    post, path = "/api/v1/anomalies/{id}/dismiss", tag = "analysts", security(("basic" = [])),
    params(("id" = u64, Path)),
    request_body(content = Option<protocol::Verdict>, content_type = "application/json"),
    responses(
        (status = 200, description = "The anomaly as it now is"),
        (status = 400, body = protocol::ErrorReply),
        (status = 404, description = "No such anomaly", body = protocol::ErrorReply),
    )
)]
#[post("/api/v1/anomalies/{id}/dismiss")]
pub async fn dismiss(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, path, body, state, "dismissed").await
}
