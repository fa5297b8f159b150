//! The Pulse gatherer: takes `label / id / value` events over HTTP, sums them in memory
//! into fixed buckets, and appends the bucket totals to MySQL's `events_count`.

pub mod auth;
pub mod backlog;
pub mod bucket;
pub mod configuration;
pub mod export;
pub mod flusher;
pub mod idempotency;
pub mod ingest;
pub mod label;
pub mod nats;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod wal;
