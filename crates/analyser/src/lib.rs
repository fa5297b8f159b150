//! The Pulse analyser: follows the gatherer's export, judges every series step by step
//! with `detect`, keeps what it found in MySQL, and serves it to analysts.

pub mod auth;
pub mod clock;
pub mod configuration;
pub mod datasets;
pub mod expected;
pub mod gatherer_client;
pub mod judge;
pub mod notify;
pub mod present;
pub mod pull;
pub mod reports;
pub mod routes;
pub mod shard;
pub mod silences;
pub mod startup;
pub mod state;
pub mod step_blocks;
pub mod store;
pub mod teachings;
mod writes;
