//! `GET /health/live`, `GET /health/ready` (ready = the analyser's database answers) and
//! `GET /metrics` (Prometheus text).

use actix_web::{get, web, HttpResponse};
use protocol::Readiness;

use crate::state::AppState;

#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, description = "The process answers")))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

#[utoipa::path(
    get, path = "/health/ready", tag = "operations",
    responses((status = 200, body = protocol::Readiness), (status = 503, body = protocol::Readiness))
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let up = sqlx::query_scalar!("SELECT 1 AS answer")
        .fetch_one(&state.pool)
        .await
        .is_ok();
    let body = Readiness {
        ready: up,
        database: if up { "up" } else { "down" }.to_owned(),
        pending: None,
        reason: (!up).then(|| "database unreachable".to_owned()),
    };
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text: rows pulled, pull lag and duration, late rows, anomalies by severity,
/// pull errors.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics() -> HttpResponse {
    service::http::metrics()
}
