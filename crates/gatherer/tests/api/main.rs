//! API tests: the real gatherer, on port 0, against the real MySQL.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod backpressure;
mod exactly_once;
mod export;
mod galera;
mod helpers;
mod hostile;
mod idempotency;
mod ingest;
mod metrics;
mod nats;
mod openapi;
mod outage;
mod process;
mod wal;
