//! `GET /api/v1/reports` and `GET /api/v1/reports/{id}`: the history of each dataset's
//! report, computed every `report_every` and kept `report_retention`.

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;

use super::{parse_time, ApiError};
use crate::reports;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    dataset: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

/// Stored reports, newest first: `{"ok":true,"data":[{"id","dataset","computed_at","report"}…]}`.
#[utoipa::path(
    get, path = "/api/v1/reports", tag = "analysts", security(("basic" = [])),
    params(
        ("dataset" = Option<String>, Query, description = "only this dataset's"),
        ("since" = Option<String>, Query, description = "computed at or after this (RFC 3339 or unix seconds)"),
        ("limit" = Option<u32>, Query, description = "at most this many (default 100, at most 1 000)"),
    ),
    responses(
        (status = 200, body = Vec<crate::reports::StoredReport>),
        (status = 400, body = protocol::ErrorReply),
        (status = 404, description = "No such dataset", body = protocol::ErrorReply),
    )
)]
#[get("/api/v1/reports")]
pub async fn list(
    params: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "must be between 1 and 1000"));
    }
    if let Some(name) = &params.dataset {
        if state.dataset(name).is_none() {
            return Err(ApiError::NotFound(format!("no dataset named {name:?}")));
        }
    }
    let since = params
        .since
        .as_deref()
        .map(|t| parse_time("since", t))
        .transpose()?;
    let data = reports::list(&state.pool, params.dataset.as_deref(), since, limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": data})))
}

/// One stored report: `{"ok":true,"data":{"id","dataset","computed_at","report"}}`.
#[utoipa::path(
    get, path = "/api/v1/reports/{id}", tag = "analysts", security(("basic" = [])),
    params(("id" = u64, Path)),
    responses(
        (status = 200, body = crate::reports::StoredReport),
        (status = 400, body = protocol::ErrorReply),
        (status = 404, description = "No such report (or deleted after report_retention)", body = protocol::ErrorReply),
    )
)]
#[get("/api/v1/reports/{id}")]
pub async fn one(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id: u64 = path
        .parse()
        .map_err(|_| ApiError::bad("id", format!("{:?} is not a report id", path.as_str())))?;
    match reports::by_id(&state.pool, id).await? {
        Some(report) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": report})))
        }
        None => Err(ApiError::NotFound(format!("no report with id {id}"))),
    }
}
