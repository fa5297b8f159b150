//! Pure bookkeeping of the NATS ingest: which stream messages are recorded, which drain
//! took their events, and which can be acknowledged. No clock, no I/O: times come in as
//! arguments, acknowledgements go out as values of the caller's type `A` (the message's
//! reply subject).
//!
//! **Counted, then acked.** Messages are recorded into an aggregator of their own. Each
//! drain of it (one flush transaction, however many rows) also carries the *coverage* of
//! the messages whose events it holds: a message whose buckets have all closed is covered
//! wholly (`covered_ms = i64::MAX`); one whose events span buckets still open is covered up
//! to the end of its last closed bucket. Only once that transaction commits are the wholly
//! covered messages handed out for acknowledgement.
//!
//! **Once through redelivery.** A message committed but not acked when the gatherer dies
//! is redelivered, to this gatherer or another. Its coverage, read back from MySQL, says
//! which of its events are already counted: all of them (ack and drop it), or those in
//! buckets ending at or before `covered_ms` (record the rest).
//!
//! The consumer records and the flusher drains under one lock, so a drain never splits a
//! message: it holds all of the message's events in closed buckets, or none.

use std::collections::{BTreeMap, VecDeque};

use crate::bucket::{Aggregator, Delta};
use crate::ingest::ValidEvent;

/// Consecutive stream sequences committed up to the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    pub first_seq: u64,
    pub last_seq: u64,
    /// Events in buckets ending at or before this (unix milliseconds) are committed;
    /// `i64::MAX`: all of the message's events.
    pub covered_ms: i64,
}

/// Everything of a message is committed.
pub const WHOLE: i64 = i64::MAX;

/// One drain: its rows and the coverage they carry, committed together.
#[derive(Debug)]
pub struct Drain {
    pub id: u64,
    pub deltas: Vec<Delta>,
    pub coverage: Vec<Coverage>,
}

#[derive(Debug)]
struct Held<A> {
    /// Ends (unix milliseconds) of the buckets its recorded events fall in, ascending.
    bucket_ends: Vec<i64>,
    /// The end of its last bucket already drained, or `i64::MIN`.
    covered_ms: i64,
    ack: A,
    /// When it was recorded or last reported in progress, unix milliseconds.
    touched_ms: i64,
}

/// Messages recorded from the stream, until they are acknowledged.
#[derive(Debug)]
pub struct Intake<A> {
    aggregator: Aggregator,
    width_ms: i64,
    held: BTreeMap<u64, Held<A>>,
    /// Drains queued for MySQL, oldest first, with the messages each covers wholly.
    draining: VecDeque<(u64, Vec<(u64, A)>)>,
    next_drain: u64,
    ready: Vec<A>,
}

impl<A: Clone> Intake<A> {
    pub fn new(bucket_seconds: u32) -> Self {
        Intake {
            aggregator: Aggregator::new(bucket_seconds, 16),
            width_ms: i64::from(bucket_seconds.max(1)) * 1000,
            held: BTreeMap::new(),
            draining: VecDeque::new(),
            next_drain: 0,
            ready: Vec::new(),
        }
    }

    fn bucket_end(&self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.width_ms) * self.width_ms + self.width_ms
    }

    /// Records message `seq`'s events, but none in a bucket ending at or before
    /// `committed_through_ms` (an earlier delivery's coverage; `i64::MIN` for none).
    /// Returns the rows added, or `None` when nothing was left to record (the caller acks
    /// the message at once).
    pub fn record(
        &mut self,
        seq: u64,
        events: &[ValidEvent<'_>],
        committed_through_ms: i64,
        ack: A,
        now_ms: i64,
    ) -> Option<usize> {
        let kept: Vec<&ValidEvent<'_>> = events
            .iter()
            .filter(|e| self.bucket_end(e.at_ms) > committed_through_ms)
            .collect();
        if kept.is_empty() {
            return None;
        }
        let mut bucket_ends: Vec<i64> = kept.iter().map(|e| self.bucket_end(e.at_ms)).collect();
        bucket_ends.sort_unstable();
        bucket_ends.dedup();
        let rows = self.aggregator.record_all(&kept, |e| e.fields());
        self.held.insert(
            seq,
            Held {
                bucket_ends,
                covered_ms: committed_through_ms,
                ack,
                touched_ms: now_ms,
            },
        );
        Some(rows)
    }

    /// True while message `seq` is recorded here and not yet acknowledged: a redelivery
    /// of it is a duplicate.
    pub fn holds(&self, seq: u64) -> bool {
        self.held.contains_key(&seq)
            || self
                .draining
                .iter()
                .any(|(_, done)| done.iter().any(|(s, _)| *s == seq))
    }

    /// A redelivery of a message held here: acknowledge through the newest delivery.
    pub fn replace_ack(&mut self, seq: u64, ack: A) {
        if let Some(held) = self.held.get_mut(&seq) {
            held.ack = ack;
            return;
        }
        for (_, done) in &mut self.draining {
            if let Some(entry) = done.iter_mut().find(|(s, _)| *s == seq) {
                entry.1 = ack;
                return;
            }
        }
    }

    /// Takes the buckets closed by `threshold_ms` (everything for `None`) and the coverage
    /// of the messages they hold. `None` when there is nothing to commit.
    pub fn drain(&mut self, threshold_ms: Option<i64>) -> Option<Drain> {
        let (limit, mut deltas) = match threshold_ms {
            Some(t) => (t, self.aggregator.drain_closed(t)),
            None => (i64::MAX, self.aggregator.drain_all()),
        };
        let mut covered: Vec<(u64, i64)> = Vec::new();
        let mut whole = Vec::new();
        self.held.retain(|&seq, held| {
            let closed = held.bucket_ends.partition_point(|&end| end <= limit);
            if closed == held.bucket_ends.len() {
                covered.push((seq, WHOLE));
                whole.push((seq, held.ack.clone()));
                return false;
            }
            let through = if closed == 0 {
                i64::MIN
            } else {
                held.bucket_ends[closed - 1]
            };
            if through > held.covered_ms {
                held.covered_ms = through;
                covered.push((seq, through));
            }
            true
        });
        if deltas.is_empty() && covered.is_empty() {
            return None;
        }
        deltas.sort_unstable_by_key(|d| d.bucket);
        let id = self.next_drain;
        self.next_drain += 1;
        self.draining.push_back((id, whole));
        Some(Drain {
            id,
            deltas,
            coverage: ranges(covered),
        })
    }

    /// Drain `id` committed: the messages it covered wholly may be acknowledged.
    pub fn committed(&mut self, id: u64) {
        if let Some(at) = self.draining.iter().position(|(d, _)| *d == id) {
            if let Some((_, done)) = self.draining.remove(at) {
                self.ready.extend(done.into_iter().map(|(_, ack)| ack));
            }
        }
    }

    /// The acknowledgements due.
    pub fn take_acks(&mut self) -> Vec<A> {
        std::mem::take(&mut self.ready)
    }

    /// Messages held since before `older_than_ms`, marked as touched at `now_ms`, and
    /// every message whose drain waits for MySQL (it may wait long in an outage): the
    /// caller tells the server they are still in progress, so that it hands them to no
    /// other gatherer.
    pub fn due_for_progress(&mut self, older_than_ms: i64, now_ms: i64) -> Vec<A> {
        let mut due = Vec::new();
        for held in self.held.values_mut() {
            if held.touched_ms < older_than_ms {
                held.touched_ms = now_ms;
                due.push(held.ack.clone());
            }
        }
        for (_, done) in &self.draining {
            due.extend(done.iter().map(|(_, ack)| ack.clone()));
        }
        due
    }

    /// Messages recorded and not yet acknowledged (held or in a drain).
    pub fn in_flight(&self) -> usize {
        self.held.len() + self.draining.iter().map(|(_, d)| d.len()).sum::<usize>()
    }
}

/// `(seq, covered_ms)` pairs, in any order, as ranges of consecutive sequences with the
/// same coverage.
fn ranges(mut covered: Vec<(u64, i64)>) -> Vec<Coverage> {
    covered.sort_unstable();
    let mut out: Vec<Coverage> = Vec::new();
    for (seq, covered_ms) in covered {
        match out.last_mut() {
            Some(last) if last.covered_ms == covered_ms && last.last_seq + 1 == seq => {
                last.last_seq = seq;
            }
            _ => out.push(Coverage {
                first_seq: seq,
                last_seq: seq,
                covered_ms,
            }),
        }
    }
    out
}

/// What an earlier delivery of message `seq` committed, from the coverage rows that
/// contain it: the highest `covered_ms`, or `None` when none does.
pub fn committed_through(rows: &[Coverage], seq: u64) -> Option<i64> {
    rows.iter()
        .filter(|r| r.first_seq <= seq && seq <= r.last_seq)
        .map(|r| r.covered_ms)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(label: &str, id: i64, value: i64, at_ms: i64) -> ValidEvent<'_> {
        ValidEvent {
            label: crate::label::Label::parse(label).unwrap(),
            id,
            value,
            at_ms,
        }
    }

    fn sum(deltas: &[Delta]) -> i64 {
        deltas.iter().map(|d| d.totals.sum).sum()
    }

    #[test]
    fn a_message_is_acknowledged_only_after_the_drain_that_holds_it_commits() {
        let mut intake = Intake::new(2);
        intake.record(7, &[event("a", 1, 5, 10_100)], i64::MIN, "ack-7", 10_100);
        assert!(intake.drain(Some(11_999)).is_none(), "its bucket is open");
        let drain = intake.drain(Some(12_000)).unwrap();
        assert_eq!(sum(&drain.deltas), 5);
        assert_eq!(
            drain.coverage,
            [Coverage {
                first_seq: 7,
                last_seq: 7,
                covered_ms: WHOLE
            }]
        );
        assert!(
            intake.take_acks().is_empty(),
            "acknowledged before the commit"
        );
        assert!(intake.holds(7));
        intake.committed(drain.id);
        assert_eq!(intake.take_acks(), ["ack-7"]);
        assert!(!intake.holds(7));
        assert_eq!(intake.in_flight(), 0);
    }

    #[test]
    fn a_message_across_buckets_is_covered_bucket_by_bucket_and_a_redelivery_records_the_rest() {
        let mut intake = Intake::new(2);
        let events = [event("a", 1, 1, 10_000), event("a", 1, 10, 14_000)];
        intake.record(3, &events, i64::MIN, (), 14_000);
        let first = intake.drain(Some(12_000)).unwrap();
        assert_eq!(sum(&first.deltas), 1);
        assert_eq!(first.coverage[0].covered_ms, 12_000);
        // The gatherer dies after that commit: the redelivery skips what it covered.
        let mut restarted = Intake::new(2);
        let through = committed_through(&first.coverage, 3).unwrap();
        assert_eq!(restarted.record(3, &events, through, (), 20_000), Some(1));
        let rest = restarted.drain(None).unwrap();
        assert_eq!(sum(&rest.deltas), 10);
        assert_eq!(rest.coverage[0].covered_ms, WHOLE);
        // Wholly committed: nothing left to record.
        assert_eq!(restarted.record(3, &events, WHOLE, (), 20_000), None);
    }

    #[test]
    fn coverage_comes_in_ranges_of_consecutive_sequences() {
        let covered = vec![(5, WHOLE), (3, WHOLE), (4, WHOLE), (9, WHOLE), (6, 100)];
        assert_eq!(
            ranges(covered),
            [
                Coverage {
                    first_seq: 3,
                    last_seq: 5,
                    covered_ms: WHOLE
                },
                Coverage {
                    first_seq: 6,
                    last_seq: 6,
                    covered_ms: 100
                },
                Coverage {
                    first_seq: 9,
                    last_seq: 9,
                    covered_ms: WHOLE
                },
            ]
        );
    }

    #[test]
    fn a_redelivery_of_a_held_message_acknowledges_through_the_newest_delivery() {
        let mut intake = Intake::new(2);
        intake.record(1, &[event("a", 1, 1, 0)], i64::MIN, "first", 0);
        intake.replace_ack(1, "second");
        let drain = intake.drain(Some(2_000)).unwrap();
        intake.committed(drain.id);
        assert_eq!(intake.take_acks(), ["second"]);
    }

    #[test]
    fn held_messages_are_reported_in_progress_once_per_interval_and_drained_ones_until_committed() {
        let mut intake = Intake::new(2);
        intake.record(1, &[event("a", 1, 1, 0)], i64::MIN, 1, 0);
        intake.record(2, &[event("a", 1, 1, 5_000)], i64::MIN, 2, 0);
        assert!(intake.due_for_progress(0, 100).is_empty());
        assert_eq!(intake.due_for_progress(50, 100), [1, 2]);
        assert!(intake.due_for_progress(50, 120).is_empty());
        // Message 1's drain waits for MySQL: it is reported every time until it commits.
        let drain = intake.drain(Some(2_000)).unwrap();
        assert_eq!(intake.due_for_progress(50, 130), [1]);
        assert_eq!(intake.due_for_progress(50, 140), [1]);
        intake.committed(drain.id);
        assert!(intake.due_for_progress(50, 150).is_empty());
    }
}
