//! `GET /api/v1/export` and its seed-compatible twin `POST /stat`: pages of
//! `events_count` in id order, for the analyser and for cron jobs.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse, ResponseError};
use protocol::{ErrorReply, ExportPage, StatRow};
use serde::Deserialize;
use serde_json::Value;

use crate::export::{ExportQuery, ParamError, RawParams, DEFAULT_LIMIT, MAX_LIMIT, STAT_LIMIT};
use crate::state::AppState;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("malformed JSON body: {0}")]
    Body(String),
    #[error("the database did not answer")]
    Database(#[from] sqlx::Error),
}

impl ResponseError for ExportError {
    fn status_code(&self) -> StatusCode {
        match self {
            ExportError::Unauthorized => StatusCode::UNAUTHORIZED,
            ExportError::Param(_) | ExportError::Body(_) => StatusCode::BAD_REQUEST,
            ExportError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let reply = match self {
            ExportError::Param(e) => ErrorReply::for_parameter(e.parameter, self.to_string()),
            ExportError::Database(e) => {
                tracing::error!(error = %e, "export query failed");
                ErrorReply::new(self.to_string())
            }
            _ => ErrorReply::new(self.to_string()),
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ExportError::Unauthorized => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ExportError::Database(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        response.json(reply)
    }
}

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ExportError> {
    if super::bearer_allowed(req, &state.export_token) {
        Ok(())
    } else {
        Err(ExportError::Unauthorized)
    }
}

/// Query string of `GET /api/v1/export`; every value is text until validated.
#[derive(Debug, Deserialize)]
pub struct ExportParams {
    from: Option<String>,
    to: Option<String>,
    iterator: Option<String>,
    limit: Option<String>,
}

/// A page of `events_count` in id order; follow `next_iterator` until `has_more` is false.
#[utoipa::path(
    get, path = "/api/v1/export", tag = "export",
    params(
        ("from" = Option<String>, Query, description = "event_date >= from (RFC 3339 or unix seconds)"),
        ("to" = Option<String>, Query, description = "event_date < to (RFC 3339 or unix seconds)"),
        ("iterator" = Option<u64>, Query, description = "rows with ec_id > iterator (default 0)"),
        ("limit" = Option<u32>, Query, description = "rows per page, 1 to 10 000 (default 500)"),
    ),
    responses(
        (status = 200, body = ExportPage),
        (status = 400, description = "A bad parameter, named in `parameter`", body = ErrorReply),
        (status = 401, description = "[auth] export_token is set and the Bearer token is missing or wrong", body = ErrorReply,
            example = json!({"ok": false, "error": "missing or wrong bearer token"})),
    )
)]
#[get("/api/v1/export")]
pub async fn export(
    req: HttpRequest,
    params: web::Query<ExportParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ExportError> {
    authorize(&req, &state)?;
    let raw = RawParams {
        from: params.from.as_deref(),
        to: params.to.as_deref(),
        iterator: params.iterator.as_deref(),
        limit: params.limit.as_deref(),
    };
    let query = ExportQuery::parse(raw, DEFAULT_LIMIT, MAX_LIMIT)?;
    let page = store::export_page(&state.pool, &query).await?;
    metrics::counter!("gatherer_export_rows_total").increment(page.rows.len() as u64);
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /stat`: body `{"from","to","iterator"}` (strings or numbers), reply a bare array
/// of at most 500 rows in the original service's shape.
/// The export in the original service's shape: a bare array of at most 500 rows.
#[utoipa::path(
    post, path = "/stat", tag = "export",
    request_body(content = Object, description = r#"{"from", "to", "iterator"}: strings or numbers; MySQL-style times allowed"#),
    responses(
        (status = 200, body = [StatRow]),
        (status = 400, description = "A bad parameter, named in `parameter`", body = ErrorReply),
        (status = 401, description = "Bearer token missing or wrong", body = ErrorReply,
            example = json!({"ok": false, "error": "missing or wrong bearer token"})),
    )
)]
#[post("/stat")]
pub async fn stat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ExportError> {
    authorize(&req, &state)?;
    let fields: serde_json::Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        serde_json::from_slice(&body).map_err(|e| ExportError::Body(e.to_string()))?
    };
    let from = text_field(&fields, "from")?;
    let to = text_field(&fields, "to")?;
    let iterator = text_field(&fields, "iterator")?;
    let raw = RawParams {
        from: from.as_deref(),
        to: to.as_deref(),
        iterator: iterator.as_deref(),
        limit: None,
    };
    let query = ExportQuery::parse(raw, STAT_LIMIT, STAT_LIMIT)?;
    let page = store::export_page(&state.pool, &query).await?;
    let rows: Vec<StatRow> = page
        .rows
        .into_iter()
        .map(|row| StatRow {
            ec_id: row.ec_id,
            event_date: row.event_date,
            entity_id: row.entity_id,
            event_label: row.label,
            event_counter: row.event_counter,
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

fn text_field(
    fields: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, ExportError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(ParamError {
            parameter: name,
            message: "expected a string or a number".to_owned(),
        }
        .into()),
    }
}
