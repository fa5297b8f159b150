//! Wire types shared by the gatherer and the analyser.
//!
//! Both services, the demo traffic generator and the tests speak through these types, so
//! a change to a field shows up as a compile error on every side instead of a silent
//! mismatch at run time. Serde only: no I/O lives here.

use chrono::{DateTime, Utc};

use serde::{Deserialize, Serialize};

mod vocabulary;

pub use vocabulary::{
    words, Check, IncidentState, Method, Metric, Severity, Status, UnknownValue, VerdictReason,
};

/// One metric event as a client sends it to `POST /gather`.
///
/// The gatherer parses the body with its own zero-copy reader; this owned form is for
/// clients (the demo traffic generator, tests) that build events in Rust.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GatherReply {
    pub ok: bool,
    pub accepted: u64,
    /// Present for batch bodies (array or NDJSON): the items that were refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<Rejected>>,
}

/// One refused item of a batch: its 0-based array index or NDJSON line, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rejected {
    pub index: usize,
    pub error: String,
}

/// The body of every error reply of both services: `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorReply {
    /// Always `false`.
    #[cfg_attr(feature = "openapi", schema(example = false))]
    pub ok: bool,
    #[cfg_attr(feature = "openapi", schema(example = "what went wrong, and where"))]
    pub error: String,
    /// The query or body parameter at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Only on a `400` of `POST /gather` refusing a whole batch: why each item was refused.
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportPage {
    pub rows: Vec<ExportRow>,
    pub next_iterator: u64,
    pub has_more: bool,
}

/// One row of the seed-compatible `POST /stat` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatRow {
    pub ec_id: u64,
    pub event_date: DateTime<Utc>,
    pub entity_id: i64,
    pub event_label: String,
    pub event_counter: i64,
}

/// Service info served at `GET /` by the gatherer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceInfo {
    pub name: String,
    pub version: String,
    pub bucket_seconds: u32,
    pub uptime_seconds: u64,
}

/// Body of `GET /health/ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    pub ready: bool,
    /// `up` or `down`.
    pub database: String,
    /// Rows (series × buckets) held in memory and not yet committed to MySQL, the figure
    /// `max_pending_rows` bounds (gatherer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// Why the service is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Body of the gatherer's `GET /health/ready`: [`Readiness`], and its NATS consumer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GathererReadiness {
    #[serde(flatten)]
    pub readiness: Readiness,
    /// The NATS JetStream consumer's connection, `up` or `down`; absent while `[nats] url`
    /// is empty. It does not decide readiness: HTTP ingest works without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<String>,
}

/// One check that fired on an incident: its most extreme step, against what was expected
/// before the incident began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Signal {
    pub metric: Metric,
    /// The check that fired.
    pub method: Check,
    pub severity: Severity,
    pub observed: f64,
    pub expected: f64,
    /// How far `observed` is from `expected`, in the check's own noise units; finite.
    pub deviation: f64,
}

/// One anomaly (an incident) as the analyser serves it at `/api/v1/state`: the checks that
/// fired on one series in overlapping periods. The top-level `metric`, `method`,
/// `severity`, `observed`, `expected` and `deviation` are its strongest signal's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Anomaly {
    pub id: u64,
    pub dataset: String,
    pub label: String,
    pub entity_id: i64,
    pub metric: Metric,
    pub severity: Severity,
    /// The check that fired.
    pub method: Check,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub observed: f64,
    pub expected: f64,
    pub deviation: f64,
    /// Every check that fired, strongest first.
    pub signals: Vec<Signal>,
    /// `firing` while its checks fire, `resolved` once the series is back to normal.
    pub state: IncidentState,
    /// When it resolved (the end of its period).
    pub resolved_at: Option<DateTime<Utc>>,
    /// The analyst's verdict.
    pub status: Status,
    pub detected_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
    /// The silence it was found in (`/api/v1/silences`): recorded and shown, never sent to
    /// the webhook, counted apart in reports.
    #[serde(default)]
    pub silenced_by: Option<u64>,
    /// Why the verdict was given, when the analyst said: `expected` (dismissed) or `real`
    /// (approved).
    #[serde(default)]
    pub reason: Option<VerdictReason>,
    /// The anomaly dismissed as expected whose teaching capped this one at a warning (same
    /// signal and direction, at most about 1.5 times its deviation): never notified.
    #[serde(default)]
    pub taught_by: Option<u64>,
}

/// `meta` of `/api/v1/state`: where the analyser stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateMeta {
    /// The export iterator processed so far.
    pub iterator: u64,
    /// Seconds between now and the newest event judged, or null before any.
    pub lag_seconds: Option<f64>,
    /// Series the analyser follows.
    pub series: u64,
    pub last_pull_at: Option<DateTime<Utc>>,
    /// `up` or `down`: whether the last pull reached the gatherer.
    pub gatherer: String,
}

/// Reply of `GET /api/v1/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateReply {
    pub ok: bool,
    pub data: Vec<Anomaly>,
    pub meta: StateMeta,
}

/// Reply of `POST /api/v1/pull`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullReply {
    pub ok: bool,
    pub rows: u64,
    pub iterator: u64,
    pub duration_ms: u64,
}

/// One step of a series, for charts (`GET /api/v1/series`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeriesPoint {
    pub step_start: DateTime<Utc>,
    /// Sum of values.
    pub count: f64,
    pub events: u64,
    pub min: Option<i64>,
    pub max: Option<i64>,
    /// The charted metric's value at this step (none for a level without events).
    pub value: Option<f64>,
    /// What the check expected, and the range around it in which it raises nothing
    /// (recomputed from the stored totals; none before the check has enough history).
    pub expected: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// Reply of `GET /api/v1/series`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeriesReply {
    pub ok: bool,
    pub dataset: String,
    pub label: String,
    pub entity_id: i64,
    pub time_step_seconds: u64,
    /// The charted metric: `count`, `events`, `avg`, `min` or `max`.
    pub metric: Metric,
    /// What the values measure, for an axis: `events per 1m` (counts) or `value` (levels).
    pub unit: String,
    pub points: Vec<SeriesPoint>,
}

/// Body of approve / dismiss: an optional comment and an optional reason (`real` for an
/// approval, `expected` for a dismissal).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<VerdictReason>,
}

/// One outlier of a report, in the product brief's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ReportOutlier {
    pub outlier_period_start: DateTime<Utc>,
    pub outlier_period_end: DateTime<Utc>,
    /// `label (metric)`.
    pub metric: String,
    /// The entity id.
    pub attribute: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "PascalCase")]
pub struct ReportResult {
    pub warnings: Vec<ReportOutlier>,
    pub alarms: Vec<ReportOutlier>,
    /// Anomalies of the window found inside a silence: left out of `Warnings` and `Alarms`.
    #[serde(default)]
    pub silenced: u64,
}

/// `GET /api/v1/report?dataset=`: a dataset's check over its last `time_ago`, in the
/// product brief's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    #[serde(rename = "siteId")]
    pub site_id: String,
    /// The detector the dataset's counts are judged by.
    pub method: Method,
    #[serde(rename = "checkTimeStart")]
    pub check_time_start: DateTime<Utc>,
    #[serde(rename = "checkTimeEnd")]
    pub check_time_end: DateTime<Utc>,
    #[serde(rename = "TimeAgo")]
    pub time_ago: String,
    #[serde(rename = "TimeStep")]
    pub time_step: String,
    #[serde(rename = "DateStart")]
    pub date_start: DateTime<Utc>,
    #[serde(rename = "DateEnd")]
    pub date_end: DateTime<Utc>,
    #[serde(rename = "Result")]
    pub result: ReportResult,
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
    fn a_verdicts_reason_is_spelt_in_snake_case_and_unknown_ones_are_refused() {
        let verdict: Verdict = serde_json::from_str(r#"{"reason":"expected"}"#).unwrap();
        assert_eq!(verdict.reason, Some(VerdictReason::Expected));
        assert_eq!(
            serde_json::to_string(&VerdictReason::Real).unwrap(),
            r#""real""#
        );
        let plain: Verdict = serde_json::from_str(r#"{"comment":"ok"}"#).unwrap();
        assert_eq!(plain.reason, None);
        assert!(serde_json::from_str::<Verdict>(r#"{"reason":"boring"}"#).is_err());
    }

    #[test]
    fn report_uses_the_briefs_field_names() {
        let at = DateTime::from_timestamp(0, 0).unwrap();
        let report = Report {
            site_id: "shop".into(),
            method: Method::ThreeSigma,
            check_time_start: at,
            check_time_end: at,
            time_ago: "30m".into(),
            time_step: "1m".into(),
            date_start: at,
            date_end: at,
            result: ReportResult {
                warnings: vec![],
                alarms: vec![ReportOutlier {
                    outlier_period_start: at,
                    outlier_period_end: at,
                    metric: "checkout (count)".into(),
                    attribute: "42".into(),
                }],
                silenced: 0,
            },
        };
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "siteId",
            "method",
            "checkTimeStart",
            "checkTimeEnd",
            "TimeAgo",
            "TimeStep",
            "DateStart",
            "DateEnd",
        ] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        let alarm = &json["Result"]["Alarms"][0];
        for key in [
            "OutlierPeriodStart",
            "OutlierPeriodEnd",
            "Metric",
            "Attribute",
        ] {
            assert!(alarm.get(key).is_some(), "{key} missing: {alarm}");
        }
        assert_eq!(json["Result"]["Warnings"], serde_json::json!([]));
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
