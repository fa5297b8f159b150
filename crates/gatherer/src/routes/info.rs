//! `GET /`: what this service is, for people and probes.

use actix_web::{get, web, HttpResponse};
use protocol::ServiceInfo;

use crate::state::AppState;

/// Service info: name, version, bucket width, uptime.
#[utoipa::path(get, path = "/", tag = "service", responses((status = 200, body = ServiceInfo)))]
#[get("/")]
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ServiceInfo {
        name: "pulse-gatherer".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        bucket_seconds: state.ingest.bucket_seconds,
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}
