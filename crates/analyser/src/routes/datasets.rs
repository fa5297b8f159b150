//! `/api/v1/datasets`: the datasets judged, managed at runtime (reading them needs a
//! viewer, changing them an admin), with the config file's fields and validation; and
//! `GET /api/v1/me`, who the dashboard is talking for.

use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{Analyst, ApiError};
use crate::configuration::{DatasetSettings, Role};
use crate::datasets::{self, FieldError, ModelChange};
use crate::state::AppState;

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::bad(error.field, error.message)
    }
}

/// The user a request is made as.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub name: String,
    pub role: Role,
}

/// A change's effect on the dataset's model, as the reply states it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelReply {
    /// `unchanged`, `kept` (same step, new settings from the next step), `rebuilt` (from
    /// the stored history summed into the new time_step) or `afresh` (history dropped).
    pub action: &'static str,
    pub message: String,
}

impl From<ModelChange> for ModelReply {
    fn from(change: ModelChange) -> Self {
        let action = match change {
            ModelChange::Unchanged => "unchanged",
            ModelChange::Kept => "kept",
            ModelChange::Rebuilt { .. } => "rebuilt",
            ModelChange::Afresh => "afresh",
        };
        ModelReply {
            action,
            message: change.describe(),
        }
    }
}

/// The user this request is made as, and their role (the dashboard shows only what the
/// role allows).
#[utoipa::path(
    get, path = "/api/v1/me", tag = "analysts", security(("basic" = [])),
    responses((status = 200, description = "`{\"ok\":true,\"data\":{\"name\",\"role\"}}`", body = Me))
)]
#[get("/api/v1/me")]
pub async fn me(req: HttpRequest) -> HttpResponse {
    let user = Analyst::of(&req);
    HttpResponse::Ok().json(serde_json::json!({
        "ok": true,
        "data": Me { name: user.name, role: user.role },
    }))
}

/// Every dataset, by name, with all its fields (defaults filled in).
#[utoipa::path(
    get, path = "/api/v1/datasets", tag = "datasets", security(("basic" = [])),
    responses((status = 200, description = "`{\"ok\":true,\"data\":[dataset…]}`", body = Vec<DatasetSettings>))
)]
#[get("/api/v1/datasets")]
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let data = state.datasets.list();
    HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": &*data}))
}

/// One dataset.
#[utoipa::path(
    get, path = "/api/v1/datasets/{name}", tag = "datasets", security(("basic" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "`{\"ok\":true,\"data\":dataset}`", body = DatasetSettings),
        (status = 404, description = "No such dataset", body = protocol::ErrorReply),
    )
)]
#[get("/api/v1/datasets/{name}")]
pub async fn one(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let dataset = state
        .dataset(&path)
        .ok_or_else(|| ApiError::NotFound(format!("no dataset named {:?}", path.as_str())))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "data": dataset})))
}

/// Creates a dataset, with the fields of the config file's `[[datasets]]` (absent ones
/// take their defaults). It is judged from the next rows the analyser reads.
#[utoipa::path(
    post, path = "/api/v1/datasets", tag = "datasets", security(("basic" = [])),
    request_body(content = DatasetSettings, content_type = "application/json"),
    responses(
        (status = 201, description = "`{\"ok\":true,\"data\":dataset}`", body = DatasetSettings),
        (status = 400, description = "A bad field, named in `parameter`; or the name is taken", body = protocol::ErrorReply),
    )
)]
#[post("/api/v1/datasets")]
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let dataset = datasets::parse(&body, None)?;
    let user = Analyst::of(&req).name;
    if !datasets::create(&state.pool, &dataset, &user).await? {
        return Err(ApiError::bad(
            "name",
            format!("a dataset named {:?} exists; PUT changes it", dataset.name),
        ));
    }
    refresh(&state).await?;
    tracing::info!(dataset = %dataset.name, user = %user, "dataset created");
    Ok(HttpResponse::Created().json(serde_json::json!({"ok": true, "data": dataset})))
}

/// Replaces a dataset (every field: absent ones take their defaults). A new `method`,
/// thresholds, labels or levels judge from the next step on, without a restart. A new
/// `time_step` that is a multiple of the old one rebuilds the model from the stored
/// history; any other new step drops it and the dataset learns afresh. `model` in the
/// reply says which.
#[utoipa::path(
    put, path = "/api/v1/datasets/{name}", tag = "datasets", security(("basic" = [])),
    params(("name" = String, Path)),
    request_body(content = DatasetSettings, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"ok\":true,\"data\":dataset,\"model\":{\"action\",\"message\"}}`", body = ModelReply),
        (status = 400, description = "A bad field, named in `parameter`", body = protocol::ErrorReply),
        (status = 404, description = "No such dataset", body = protocol::ErrorReply),
    )
)]
#[put("/api/v1/datasets/{name}")]
pub async fn replace(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let dataset = datasets::parse(&body, Some(&path))?;
    let user = Analyst::of(&req).name;
    let replaced = datasets::replace(&state.pool, &dataset, &user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dataset named {:?}", path.as_str())))?;
    refresh(&state).await?;
    tracing::info!(dataset = %dataset.name, user = %user, model = ?replaced.model, "dataset changed");
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "ok": true,
        "data": dataset,
        "model": ModelReply::from(replaced.model),
    })))
}

/// Deletes a dataset: it is judged no more. Its anomalies, silences and stored reports
/// stay.
#[utoipa::path(
    delete, path = "/api/v1/datasets/{name}", tag = "datasets", security(("basic" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "`{\"ok\":true}`"),
        (status = 404, description = "No such dataset", body = protocol::ErrorReply),
    )
)]
#[delete("/api/v1/datasets/{name}")]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !datasets::delete(&state.pool, &path).await? {
        return Err(ApiError::NotFound(format!(
            "no dataset named {:?}",
            path.as_str()
        )));
    }
    refresh(&state).await?;
    let user = Analyst::of(&req).name;
    tracing::info!(dataset = %path, user = %user, "dataset deleted");
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

/// This process's catalog and cached answers follow the change at once (the engine and
/// other analysers follow at their next pull).
async fn refresh(state: &AppState) -> Result<(), ApiError> {
    state.datasets.replace(datasets::load(&state.pool).await?);
    state.state_cache.invalidate();
    Ok(())
}
