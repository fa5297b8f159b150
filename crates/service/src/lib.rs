//! Plumbing the gatherer and the analyser run the same way: configuration layering, the
//! MySQL pool (create, connect, migrate),
//! logging and the Prometheus recorder, the shutdown signal, the `/metrics`, API-reference
//! and bad-query-string responses, the routes of the OpenAPI document enforced at the edge
//! (405 with `Allow`, unknown query parameters refused), and (feature `testing`) the API
//! tests' database harness. Nothing here knows either service's domain; the services share
//! their wire types through `protocol` and only this plumbing through here.

pub mod config;
pub mod db;
pub mod http;
pub mod routes;
pub mod signal;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
