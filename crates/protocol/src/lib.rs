//! Wire types shared by the gatherer and the analyser.
//!
//! Both services, the demo traffic generator and the tests speak through these types, so
//! a change to a field shows up as a compile error on every side instead of a silent
//! mismatch at run time. Serde only: no I/O lives here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One metric event as a client sends it to `POST /gather`.
///
/// The gatherer parses the body with its own zero-copy reader; this owned form is for
/// clients (the demo traffic generator, tests) that build events in Rust.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub label: String,
    pub id: i64,
    pub value: i64,
    /// Event time in unix seconds; absent means arrival time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

/// Reply of `POST /gather` when at least one event was accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatherReply {
    pub ok: bool,
    pub accepted: u64,
    /// Present for batch bodies (array or NDJSON): the items that were refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<Rejected>>,
}

/// One refused item of a batch: its 0-based array index or NDJSON line, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub index: usize,
    pub error: String,
}

/// The body of every error reply of both services: `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub ok: bool,
    pub error: String,
    /// The query or body parameter at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// For a batch refused whole: why each item was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<Rejected>>,
}

impl ErrorReply {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: error.into(),
            parameter: None,
            rejected: None,
        }
    }

    pub fn for_parameter(parameter: &str, error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: error.into(),
            parameter: Some(parameter.to_owned()),
            rejected: None,
        }
    }
}

/// One row of `events_count` as `GET /api/v1/export` serves it: the totals one gatherer
/// flushed for one (bucket, label, entity). Several rows may share a key; readers sum them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRow {
    pub ec_id: u64,
    pub event_date: DateTime<Utc>,
    pub label: String,
    pub entity_id: i64,
    pub event_counter: i64,
    pub events: u32,
    pub min_value: i64,
    pub max_value: i64,
}

/// One page of `GET /api/v1/export`.
///
/// Follow `next_iterator` until `has_more` is false to see every row committed so far,
/// exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPage {
    pub rows: Vec<ExportRow>,
    pub next_iterator: u64,
    pub has_more: bool,
}

/// One row of the seed-compatible `POST /stat` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatRow {
    pub ec_id: u64,
    pub event_date: DateTime<Utc>,
    pub entity_id: i64,
    pub event_label: String,
    pub event_counter: i64,
}

/// Service info served at `GET /` by the gatherer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub version: String,
    pub bucket_seconds: u32,
    pub uptime_seconds: u64,
}

/// Body of `GET /health/ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    /// `up` or `down`.
    pub database: String,
    /// Events held in memory but not yet in MySQL (gatherer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// Why the service is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_row_round_trips_through_json_with_utc_dates() {
        let json = r#"{"ec_id":17,"event_date":"2026-11-23T10:00:02Z","label":"checkout",
            "entity_id":42,"event_counter":12,"events":3,"min_value":1,"max_value":9}"#;
        let row: ExportRow = serde_json::from_str(json).unwrap();
        assert_eq!(row.ec_id, 17);
        assert_eq!(row.event_date.to_rfc3339(), "2026-11-23T10:00:02+00:00");
        let back = serde_json::to_string(&row).unwrap();
        assert!(
            back.contains(r#""event_date":"2026-11-23T10:00:02Z""#),
            "{back}"
        );
    }

    #[test]
    fn single_reply_omits_rejected_list() {
        let reply = GatherReply {
            ok: true,
            accepted: 1,
            rejected: None,
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"ok":true,"accepted":1}"#
        );
    }
}
