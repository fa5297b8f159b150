//! Everything the analyser says to its own MySQL database: cursor, dataset clocks,
//! snapshots, anomalies (step totals: `step_blocks.rs`). The pull writes step totals,
//! clocks and cursor in one transaction, so a restart resumes exactly where the last commit
//! left off.

mod anomalies;
mod cursor;
mod incidents;
mod snapshots;
#[cfg(test)]
mod tests;

use chrono::{DateTime, NaiveDateTime};
use detect::level::StepTotals;

pub use anomalies::{anomalies, anomaly_by_id, decide, AnomalyFilter};
pub use cursor::{
    advance_generation, claim_cursor, load_clock, load_generation, save_clock, save_cursor,
    CursorRow,
};
pub use incidents::{
    alarms_to_notify, firing_incident_id, firing_incidents, grow_incidents, mark_notified,
    open_incident, resolve_incidents, FiringIncident, Grown,
};
pub use snapshots::{
    clear_snapshots, delete_snapshots, load_snapshots, save_snapshots, StoredSnapshot,
};

pub fn date(seconds: i64) -> NaiveDateTime {
    DateTime::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .naive_utc()
}

pub(crate) fn seconds(date: NaiveDateTime) -> i64 {
    date.and_utc().timestamp()
}

/// Exact totals of one (dataset, series, step), as stored: the sum may exceed i64.
///
/// Aligned to 8 bytes, not the 16 of an `i128`: 40 bytes instead of 48, for the model
/// holds one per series and step until the step is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(8))]
pub struct ExactTotals {
    pub sum: i128,
    pub events: u64,
    pub min: i64,
    pub max: i64,
}

impl ExactTotals {
    pub fn merge(&mut self, other: &ExactTotals) {
        self.sum += other.sum;
        self.events += other.events;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The float view the detectors and charts judge (exact below 2^53).
    pub fn as_step_totals(&self) -> StepTotals {
        StepTotals {
            sum: self.sum as f64,
            events: self.events,
            min: self.min as f64,
            max: self.max as f64,
        }
    }
}

/// One (series, step) of the stored step totals, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTotals {
    pub label: String,
    pub entity_id: i64,
    pub step_start: i64,
    pub totals: ExactTotals,
}

/// Statement sizes in rows, largest first: a run of rows is cut into statements of these
/// sizes so that every statement is one of a few texts, each prepared once per connection
/// and reused (a remainder of any other size would be prepared for one use and closed).
const ROWS_PER_STATEMENT: [usize; 11] = [1_000, 500, 250, 125, 64, 32, 16, 8, 4, 2, 1];

/// `rows` cut into statements of at most `max` rows, of the sizes in
/// [`ROWS_PER_STATEMENT`], largest first.
pub(crate) fn statements<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let size = *ROWS_PER_STATEMENT
            .iter()
            .find(|&&n| n <= rest.len() && n <= max)?;
        let (statement, tail) = rest.split_at(size);
        rest = tail;
        Some(statement)
    })
}

/// A series the analyser holds step totals for: what the dashboard offers to chart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    pub dataset: String,
    pub label: String,
    pub entity_id: i64,
}
