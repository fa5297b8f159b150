//! What becomes of one message: parsed with `ingest`, its valid events recorded in the
//! intake, the rest described for the dead-letter subject.

use std::sync::{Arc, Mutex};

use async_nats::Subject;

use super::{lock, NatsIntake};
use crate::backlog::Backlog;
use crate::ingest::{parse_body, Framing, TimeRules};

/// A message to parse and record.
pub(super) struct Job {
    pub(super) seq: u64,
    pub(super) reply: Subject,
    pub(super) payload: actix_web::web::Bytes,
    pub(super) published_ms: i64,
    /// What an earlier delivery committed (`i64::MIN`: nothing).
    pub(super) committed_through: i64,
}

/// What became of a message.
pub(super) enum Outcome {
    /// Its valid events are recorded; `rejected`: how many were not, and why (JSON).
    Recorded {
        seq: u64,
        payload: actix_web::web::Bytes,
        rejected: Option<(usize, String)>,
    },
    /// An earlier delivery committed all of it.
    AlreadyCommitted { reply: Subject },
    /// Nothing in it can be counted.
    Invalid {
        seq: u64,
        reply: Subject,
        payload: actix_web::web::Bytes,
        error: String,
        rejected: Option<String>,
    },
}

/// Parses and records messages; runs on a blocking thread.
pub(super) struct Recorder {
    pub(super) intake: Arc<Mutex<NatsIntake>>,
    pub(super) backlog: Arc<Backlog>,
    pub(super) max_body_bytes: usize,
    pub(super) max_age_ms: i64,
}

impl Recorder {
    pub(super) fn record(&self, job: Job) -> Outcome {
        let invalid = |job: Job, error: String, rejected: Option<String>| Outcome::Invalid {
            seq: job.seq,
            reply: job.reply,
            payload: job.payload,
            error,
            rejected,
        };
        if job.payload.len() > self.max_body_bytes {
            let error = format!(
                "message larger than max_body_bytes ({} bytes)",
                self.max_body_bytes
            );
            metrics::counter!("gatherer_events_rejected_total", "reason" => "too_large")
                .increment(1);
            return invalid(job, error, None);
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let rules = TimeRules {
            // An event without `ts` happened when the stream stored its message.
            now_ms: job.published_ms.min(now_ms),
            max_age_ms: self.max_age_ms,
        };
        let payload = job.payload.clone();
        let parsed = match parse_body(&payload, Framing::Json, &rules) {
            Ok(parsed) => parsed,
            Err(error) => {
                metrics::counter!("gatherer_events_rejected_total", "reason" => "malformed")
                    .increment(1);
                return invalid(job, error.to_string(), None);
            }
        };
        let rejected = (!parsed.rejected.is_empty())
            .then(|| (parsed.rejected_total, rejected_json(&parsed.rejected)));
        if let Some((count, _)) = &rejected {
            metrics::counter!("gatherer_events_rejected_total", "reason" => "invalid")
                .increment(*count as u64);
        }
        if parsed.events.is_empty() {
            return invalid(
                job,
                "no valid event in the message".to_owned(),
                rejected.map(|(_, json)| json),
            );
        }
        let accepted = parsed.events.len() as u64;
        let recorded = lock(&self.intake).record(
            job.seq,
            &parsed.events,
            job.committed_through,
            job.reply.clone(),
            now_ms,
        );
        match recorded {
            Some(rows) => {
                self.backlog.add(rows as u64);
                metrics::counter!("gatherer_events_accepted_total").increment(accepted);
                Outcome::Recorded {
                    seq: job.seq,
                    payload: job.payload,
                    rejected,
                }
            }
            None => Outcome::AlreadyCommitted { reply: job.reply },
        }
    }
}
/// The rejected items as JSON, `[{"index":i,"error":"…"}]`.
fn rejected_json(rejected: &[(usize, String)]) -> String {
    let items: Vec<protocol::Rejected> = rejected
        .iter()
        .map(|(index, error)| protocol::Rejected {
            index: *index,
            error: error.clone(),
        })
        .collect();
    serde_json::to_string(&items).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(max_body_bytes: usize) -> Recorder {
        Recorder {
            intake: Arc::new(Mutex::new(NatsIntake::new(2))),
            backlog: Arc::new(Backlog::new(1_000)),
            max_body_bytes,
            max_age_ms: 600_000,
        }
    }

    fn job(seq: u64, body: &str, committed_through: i64) -> Job {
        Job {
            seq,
            reply: Subject::from(format!("reply.{seq}")),
            payload: actix_web::web::Bytes::copy_from_slice(body.as_bytes()),
            published_ms: chrono::Utc::now().timestamp_millis(),
            committed_through,
        }
    }

    #[test]
    fn valid_events_are_recorded_and_the_rejected_ones_described() {
        let recorder = recorder(1 << 20);
        let body = r#"[{"label":"checkout","id":1,"value":2},{"label":"","id":1,"value":1}]"#;
        match recorder.record(job(7, body, i64::MIN)) {
            Outcome::Recorded { seq, rejected, .. } => {
                assert_eq!(seq, 7);
                assert_eq!(
                    rejected,
                    Some((1, r#"[{"index":1,"error":"label is empty"}]"#.to_owned()))
                );
            }
            _ => panic!("a message with a valid event was not recorded"),
        }
        assert_eq!(recorder.backlog.pending(), 1, "one row for one series");
        assert!(lock(&recorder.intake).holds(7));
    }

    #[test]
    fn a_message_with_nothing_to_count_is_invalid_and_records_nothing() {
        let recorder = recorder(64);
        let cases = [
            (
                "x".repeat(65),
                "message larger than max_body_bytes (64 bytes)",
                None,
            ),
            ("{not json".to_owned(), "malformed", None),
            (
                r#"[{"label":"","id":1,"value":1}]"#.to_owned(),
                "no valid event in the message",
                Some(r#"[{"index":0,"error":"label is empty"}]"#),
            ),
        ];
        for (seq, (body, error_part, dead_items)) in (1..).zip(cases) {
            match recorder.record(job(seq, &body, i64::MIN)) {
                Outcome::Invalid {
                    error, rejected, ..
                } => {
                    assert!(error.contains(error_part), "{body}: {error}");
                    assert_eq!(rejected.as_deref(), dead_items, "{body}");
                }
                _ => panic!("{body} was not refused"),
            }
            assert!(!lock(&recorder.intake).holds(seq), "{body} was recorded");
        }
        assert_eq!(recorder.backlog.pending(), 0);
    }

    #[test]
    fn a_redelivery_whose_events_an_earlier_delivery_committed_is_only_acked() {
        let recorder = recorder(1 << 20);
        let body = r#"{"label":"checkout","id":1,"value":2}"#;
        assert!(matches!(
            recorder.record(job(3, body, i64::MAX)),
            Outcome::AlreadyCommitted { .. }
        ));
        assert_eq!(recorder.backlog.pending(), 0);
        assert!(!lock(&recorder.intake).holds(3));
    }
}
