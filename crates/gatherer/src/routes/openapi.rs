//! `GET /api/v1/openapi.json` and `GET /api/v1/docs`: the API described from the handlers and the `protocol`
//! types, so the document cannot drift from the code.

use actix_web::{get, HttpResponse};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pulse gatherer",
        description = "Metric events in, 2-second bucket totals in MySQL out, and their export."
    ),
    paths(
        super::info::info,
        super::ingest::gather,
        super::export::export,
        super::export::stat,
        super::health::live,
        super::health::ready,
        super::health::metrics,
        document,
        docs,
        redoc,
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service", responses((status = 200, description = "OpenAPI 3 document")))]
#[get("/api/v1/openapi.json")]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The API reference, rendered by Redoc from this service's document.
#[utoipa::path(get, path = "/api/v1/docs", tag = "service", responses((status = 200, description = "HTML", content_type = "text/html")))]
#[get("/api/v1/docs")]
pub async fn docs() -> HttpResponse {
    service::http::docs_page("Pulse gatherer API")
}

/// Redoc's script, for the page above.
#[utoipa::path(get, path = "/api/v1/docs/redoc.standalone.js", tag = "service", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
#[get("/api/v1/docs/redoc.standalone.js")]
pub async fn redoc() -> HttpResponse {
    service::http::redoc_script()
}
