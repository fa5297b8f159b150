//! `GET /health/live` and `GET /health/ready` (ready = the analyser's database answers).

use actix_web::{get, web, HttpResponse};
use protocol::Readiness;

use crate::state::AppState;

#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let up = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
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
