//! HTTP handlers, one module per route group, and the helpers they share.

pub mod export;
pub mod health;
pub mod info;
pub mod ingest;
pub mod openapi;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use protocol::ErrorReply;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// A JSON error reply: `{"ok":false,"error":...}`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorReply::new(message))
}

/// Checks `Authorization: Bearer <token>` against the accepted tokens, in constant time
/// per token. No tokens configured means the endpoint is open.
pub fn bearer_allowed(req: &actix_web::HttpRequest, tokens: &[SecretString]) -> bool {
    if tokens.iter().all(|t| t.expose_secret().is_empty()) {
        return true;
    }
    let Some(given) = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    tokens.iter().fold(false, |found, token| {
        let token = token.expose_secret();
        found | (!token.is_empty() && bool::from(token.as_bytes().ct_eq(given.trim().as_bytes())))
    })
}
