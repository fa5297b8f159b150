//! HTTP handlers, one module per route group, and the helpers they share.

pub mod export;
pub mod health;
pub mod info;
pub mod ingest;
pub mod openapi;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use protocol::ErrorReply;

use crate::auth::Tokens;

/// A JSON error reply: `{"ok":false,"error":...}`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorReply::new(message))
}

/// Whether the request's `Authorization: Bearer <token>` is one of `tokens` (any request
/// passes while none is configured); see [`Tokens::allow`].
pub fn bearer_allowed(req: &actix_web::HttpRequest, tokens: &Tokens) -> bool {
    tokens.allow(
        req.headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(actix_web::http::header::HeaderValue::as_bytes),
    )
}
