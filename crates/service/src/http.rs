//! Responses both services serve the same way: Prometheus text, bad query strings, and the
//! API reference page
//! (Redoc 2.5.4, MIT, see `assets/redoc.LICENSE`, bundled so it works without internet).

use actix_web::{web, HttpResponse};

/// Redoc's standalone bundle.
const REDOC_JS: &str = include_str!("../assets/redoc.standalone.js");

/// `GET /metrics`: the process's metrics as Prometheus text.
pub fn metrics() -> HttpResponse {
    let body = crate::telemetry::prometheus()
        .map(|handle| handle.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

/// `GET /api/v1/docs`: a page that renders `/api/v1/openapi.json` with Redoc.
pub fn docs_page(title: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<redoc spec-url="/api/v1/openapi.json"></redoc>
<script src="/api/v1/docs/redoc.standalone.js"></script>
</body>
</html>
"#
        ))
}

/// `GET /api/v1/docs/redoc.standalone.js`: the script of that page.
pub fn redoc_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=86400"))
        .body(REDOC_JS)
}

/// Query-string extraction that answers a malformed query string with the services'
/// JSON error body instead of actix's plain text.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _| {
        let body = protocol::ErrorReply::new(format!("bad query string: {error}"));
        actix_web::error::InternalError::from_response(error, HttpResponse::BadRequest().json(body))
            .into()
    })
}
