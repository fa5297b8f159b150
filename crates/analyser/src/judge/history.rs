//! Pure: a series' history window, the last steps it learnt from, held as compactly as its
//! label's kind allows.
//!
//! A counter's checks read only the sums and event counts of past steps; a level's read
//! every total (its smallest and largest value too). So a counter keeps 24 bytes a step
//! instead of the 40 of whole totals: with a window of 30 steps, about 500 bytes less per
//! series. Each window is allocated once at its full size and never grows.

use std::collections::VecDeque;

use detect::level::StepTotals;
use serde::{Deserialize, Serialize};

use super::series::Kind;

/// One learnt step of a counter: what its checks read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    start: i64,
    sum: f64,
    events: u64,
}

/// One learnt step of a level: its whole totals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    start: i64,
    totals: StepTotals,
}

/// The last steps a series learnt from, oldest first (steps an incident held back are not
/// in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum History {
    Counts(VecDeque<Counted>),
    Levels(VecDeque<Measured>),
}

impl History {
    /// An empty window of `window` steps for a series of this kind.
    pub fn new(kind: Kind, window: usize) -> Self {
        match kind {
            Kind::Counter => History::Counts(VecDeque::with_capacity(window)),
            Kind::Level => History::Levels(VecDeque::with_capacity(window)),
        }
    }

    /// The events of each step.
    pub fn events(&self) -> Vec<f64> {
        match self {
            History::Counts(steps) => steps.iter().map(|s| s.events as f64).collect(),
            History::Levels(steps) => steps.iter().map(|s| s.totals.events as f64).collect(),
        }
    }

    /// The sum of the values of each step.
    pub fn sums(&self) -> Vec<f64> {
        match self {
            History::Counts(steps) => steps.iter().map(|s| s.sum).collect(),
            History::Levels(steps) => steps.iter().map(|s| s.totals.sum).collect(),
        }
    }

    /// The whole totals of each step: a level's (a counter keeps no extremes, so it has
    /// none to give).
    pub fn totals(&self) -> Vec<StepTotals> {
        match self {
            History::Counts(_) => Vec::new(),
            History::Levels(steps) => steps.iter().map(|s| s.totals).collect(),
        }
    }

    /// Adds a late delta to the step starting at `start`, if the window still holds it.
    pub fn add_late(&mut self, start: i64, delta: &StepTotals) {
        match self {
            History::Counts(steps) => {
                if let Some(s) = steps.iter_mut().rev().find(|s| s.start == start) {
                    if delta.events > 0 {
                        s.sum += delta.sum;
                        s.events += delta.events;
                    }
                }
            }
            History::Levels(steps) => {
                if let Some(s) = steps.iter_mut().rev().find(|s| s.start == start) {
                    super::merge(&mut s.totals, delta);
                }
            }
        }
    }

    /// Learns the step starting at `start`, forgetting the oldest beyond `window` steps.
    pub fn learn(&mut self, start: i64, totals: &StepTotals, window: usize) {
        fn push<T>(steps: &mut VecDeque<T>, step: T, window: usize) {
            if window == 0 {
                return;
            }
            while steps.len() >= window {
                steps.pop_front();
            }
            steps.push_back(step);
        }
        match self {
            History::Counts(steps) => push(
                steps,
                Counted {
                    start,
                    sum: totals.sum,
                    events: totals.events,
                },
                window,
            ),
            History::Levels(steps) => push(
                steps,
                Measured {
                    start,
                    totals: *totals,
                },
                window,
            ),
        }
    }

    /// Bytes the window holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            History::Counts(steps) => steps.capacity() * std::mem::size_of::<Counted>(),
            History::Levels(steps) => steps.capacity() * std::mem::size_of::<Measured>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(sum: f64, events: u64) -> StepTotals {
        StepTotals {
            sum,
            events,
            min: 1.0,
            max: sum,
        }
    }

    #[test]
    fn a_window_keeps_its_last_steps_and_never_grows() {
        let mut history = History::new(Kind::Counter, 3);
        let capacity = history.heap_bytes();
        for step in 0..10 {
            history.learn(step * 60, &totals(step as f64 * 2.0, step as u64), 3);
            assert_eq!(history.heap_bytes(), capacity, "grew at step {step}");
        }
        assert_eq!(history.events(), [7.0, 8.0, 9.0]);
        assert_eq!(history.sums(), [14.0, 16.0, 18.0]);
        assert_eq!(capacity, 3 * 24);
    }

    #[test]
    fn a_late_delta_reaches_the_step_it_belongs_to_in_either_kind() {
        for kind in [Kind::Counter, Kind::Level] {
            let mut history = History::new(kind, 5);
            history.learn(0, &totals(3.0, 3), 5);
            history.learn(60, &totals(4.0, 4), 5);
            history.add_late(0, &totals(10.0, 2));
            history.add_late(120, &totals(10.0, 2));
            assert_eq!(history.sums(), [13.0, 4.0], "{kind:?}");
            assert_eq!(history.events(), [5.0, 4.0], "{kind:?}");
        }
        let mut level = History::new(Kind::Level, 5);
        level.learn(0, &totals(3.0, 3), 5);
        level.add_late(0, &totals(10.0, 2));
        assert_eq!(level.totals()[0].max, 10.0);
    }

    #[test]
    fn a_window_of_no_steps_learns_nothing() {
        let mut history = History::new(Kind::Counter, 0);
        history.learn(0, &totals(1.0, 1), 0);
        assert!(history.events().is_empty());
    }
}
