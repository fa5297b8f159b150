//! `GET/POST /api/v1/silences` and `DELETE /api/v1/silences/{id}`: keep a dataset's
//! series (all, a label's, an entity's) quiet for a span or a weekly window. Anomalies found
//! inside one are recorded and shown, marked `silenced_by`, never sent to the webhook.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;

use super::{Analyst, ApiError};
use crate::silences::{self, NewSilence};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    dataset: Option<String>,
    limit: Option<u32>,
}

/// Silences, newest first, expired and ended ones included (history).
#[utoipa::path(
    get, path = "/api/v1/silences", tag = "silences", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query, description = "only this dataset's"),
        ("limit" = Option<u32>, Query, description = "at most this many (default 100, at most 1 000)"),
    ),
    responses(
        (status = 200, description = "`{\"ok\":true,\"data\":[silence…]}`", body = Vec<crate::silences::Silence>),
        (status = 400, body = protocol::ErrorReply),
    )
)]
#[get("/api/v1/silences")]
pub async fn list(
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    let data = silences::list(&state.pool, params.dataset.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": data})))
}

/// Creates a silence: a span (`starts_at`, default now, to `ends_at` or `starts_at` +
/// `duration`), optionally only in a weekly window of local time.
#[utoipa::path(
    post, path = "/api/v1/silences", tag = "silences", security(("basic" = [])),
    request_body(content = crate::silences::NewSilence, content_type = "application/json"),
    responses(
        (status = 201, description = "`{\"ok\":true,\"data\":silence}`", body = crate::silences::Silence),
        (status = 400, description = "A bad field, named in `parameter`", body = protocol::ErrorReply),
    )
)]
#[post("/api/v1/silences")]
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let new: NewSilence = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("body", format!("not a silence: {e}")))?;
    if state.dataset(&new.dataset).is_none() {
        return Err(ApiError::bad(
            "dataset",
            format!("no dataset named {:?}", new.dataset),
        ));
    }
    let checked = new
        .check(Utc::now())
        .map_err(|(parameter, message)| ApiError::bad(parameter, message))?;
    let user = Analyst::of(&req).name;
    let silence = silences::create(&state.pool, &checked, &user).await?;
    tracing::info!(id = silence.id, dataset = %silence.dataset, user = %user, "silence created");
    Ok(HttpResponse::Created().json(serde_json::json!({"ok": true, "data": silence})))
}

/// Ends a silence now. It stays listed, as history, with who ended it and when.
#[utoipa::path(
    delete, path = "/api/v1/silences/{id}", tag = "silences", security(("basic" = [])),
    params(("id" = u64, Path)),
    responses(
        (status = 200, description = "`{\"ok\":true,\"data\":silence}`, now `expired`", body = crate::silences::Silence),
        (status = 400, body = protocol::ErrorReply),
        (status = 404, description = "No such silence", body = protocol::ErrorReply),
    )
)]
#[delete("/api/v1/silences/{id}")]
pub async fn end(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: u64 = path
        .parse()
        .map_err(|_| ApiError::bad("id", format!("{:?} is not a silence id", path.as_str())))?;
    let user = Analyst::of(&req).name;
    match silences::end(&state.pool, id, &user).await? {
        Some(silence) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": silence})))
        }
        None => Err(ApiError::NotFound(format!("no silence with id {id}"))),
    }
}
