//! `GET /health/live` (the process answers), `GET /health/ready` (it accepts events) and
//! `GET /metrics` (Prometheus text).

use actix_web::{get, web, HttpResponse};
use protocol::{GathererReadiness, Readiness};

use crate::state::AppState;

#[utoipa::path(get, path = "/health/live", tag = "service", responses((status = 200, description = "The process answers")))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

/// Ready while `/gather` would accept events: not at the backlog bound, not shutting
/// down, and the database reached at least once. The body always reports the database
/// and the backlog, so an operator sees an outage before it turns into 503s, and the
/// NATS consumer's connection when it is on.
#[utoipa::path(
    get, path = "/health/ready", tag = "service",
    responses((status = 200, body = GathererReadiness), (status = 503, description = "Would refuse events", body = GathererReadiness))
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let reason = if state.is_shutting_down() {
        Some("shutting down")
    } else if state.backlog.is_full() {
        Some("pending rows at max_pending_rows")
    } else if !state.db.ever_up() {
        Some("database not reached since start")
    } else {
        None
    };
    let body = Readiness {
        ready: reason.is_none(),
        database: if state.db.is_up() { "up" } else { "down" }.to_owned(),
        pending: Some(state.backlog.pending()),
        reason: reason.map(str::to_owned),
    };
    let ready = body.ready;
    let body = GathererReadiness {
        readiness: body,
        nats: state
            .nats
            .as_ref()
            .map(|n| if n.is_up() { "up" } else { "down" }.to_owned()),
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text: events accepted / rejected by reason, pending rows, flush latency,
/// flush retries, rows flushed and exported.
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics() -> HttpResponse {
    service::http::metrics()
}
