//! The baseline of `scripts/bench.sh ingest`: an actix-web server that answers `POST
//! /gather` with 200, doing nothing with the body, on the same worker count as the
//! gatherer. It does receive the body: a handler that leaves it unread makes actix drain
//! or drop it before the next request on a kept-alive connection, which is slower than
//! reading it and no fair floor. The gatherer's requests per second are reported as a
//! ratio to this one's.
//!
//! `cargo run --release -p gatherer --example bare_http -- 31299`

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(31299);
    HttpServer::new(|| {
        App::new().route(
            "/gather",
            web::post().to(|_body: web::Bytes| async {
                HttpResponse::Ok().body(r#"{"ok":true,"accepted":1}"#)
            }),
        )
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
