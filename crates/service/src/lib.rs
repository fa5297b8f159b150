//! Plumbing the gatherer and the analyser run the same way: logging and the Prometheus
//! recorder, the `/metrics` and API-reference responses, and (feature `testing`) the API
//! tests' database harness. Nothing here knows either service's domain; the services share
//! their wire types through `protocol` and only this plumbing through here.

pub mod http;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
