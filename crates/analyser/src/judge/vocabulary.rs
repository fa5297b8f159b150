//! The words of a finding: which metric, how severe, which check. They are the wire
//! vocabulary of `protocol`, so what the judge decides is what the API serves.

pub use protocol::{Check, Metric, Severity};
