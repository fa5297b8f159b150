//! API tests: the real analyser (and gatherer), on port 0, against the real MySQL.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod cli;
mod dashboard;
mod datasets;
mod galera;
mod helpers;
mod incidents;
mod notify;
mod reports;
mod restart;
mod roles;
mod scaleout;
mod scenarios;
mod silences;
mod teaching;
