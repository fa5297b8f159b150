//! `GET /api/v1/openapi.json` and `GET /api/v1/docs` (public: it holds no data): the API described from the
//! handlers and the `protocol` types, so the document cannot drift from the code.

use actix_web::{get, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "Pulse analyser", description = "Anomalies found in the gatherer's metrics, for analysts (HTTP basic auth)."),
    paths(
        super::state::state,
        super::series::series,
        super::report::report,
        super::anomalies::approve,
        super::anomalies::dismiss,
        super::pull::pull,
        super::health::live,
        super::health::ready,
        super::health::metrics,
        super::dashboard::dashboard,
        super::assets::asset,
        document,
        docs,
        redoc,
    ),
    modifiers(&BasicAuth)
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3 document")))]
#[get("/api/v1/openapi.json")]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The API reference, rendered by Redoc from this service's document.
#[utoipa::path(get, path = "/api/v1/docs", tag = "operations", responses((status = 200, description = "HTML", content_type = "text/html")))]
#[get("/api/v1/docs")]
pub async fn docs() -> HttpResponse {
    service::http::docs_page("Pulse analyser API")
}

/// Redoc's script, for the page above.
#[utoipa::path(get, path = "/api/v1/docs/redoc.standalone.js", tag = "operations", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
#[get("/api/v1/docs/redoc.standalone.js")]
pub async fn redoc() -> HttpResponse {
    service::http::redoc_script()
}
