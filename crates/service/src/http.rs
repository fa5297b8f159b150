//! What both services serve the same way: the request span, Prometheus text, bad query
//! strings, and the API reference page
//! (Redoc 2.5.4, MIT, see `assets/redoc.LICENSE`, bundled so it works without internet).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use tracing::Instrument;

/// The target of request spans: `RUST_LOG=access=info` logs one line per request.
pub const ACCESS_TARGET: &str = "access";

/// Middleware (`middleware::from_fn(service::http::request_span)`): each request runs in
/// an `info` span `request{method path status}` with target [`ACCESS_TARGET`], logged with
/// its latency when it closes. Never headers, so never credentials. When the span is
/// filtered out it costs a level check: no request id, no header parsing, no allocation
/// (a general-purpose request logger cost the gatherer about a tenth of its single-event
/// throughput, even switched off).
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let span = tracing::info_span!(
        target: ACCESS_TARGET,
        "request",
        method = %req.method(),
        path = req.path(),
        status = tracing::field::Empty,
    );
    let response = next.call(req).instrument(span.clone()).await;
    if let Ok(response) = &response {
        span.record("status", response.status().as_u16());
    }
    response
}

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
