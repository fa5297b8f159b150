//! Pure: the one place export rows are summed, into exact totals per series and step:
//! those not committed yet for the store, those of steps not judged yet for the checks.

use std::collections::btree_map::Entry;
use std::collections::HashMap;

use super::DatasetModel;
use crate::step_blocks::NewTotals;
use crate::store::ExactTotals;

impl DatasetModel {
    /// Adds an export row's totals to its step, until the next
    /// [`DatasetModel::take_unflushed`]. Returns `true` for a late row: its step was judged
    /// already, so it goes to the history (and the store) but is not judged again.
    pub fn add_row(
        &mut self,
        label: &str,
        entity_id: i64,
        event_date: i64,
        delta: &ExactTotals,
    ) -> bool {
        let step = self.params.rules.step_of(event_date);
        let key = self.key(label, entity_id);
        self.unflushed
            .entry(step)
            .or_default()
            .entry(key)
            .and_modify(|t| t.merge(delta))
            .or_insert(*delta);
        self.is_judged(step)
    }

    fn is_judged(&self, step: i64) -> bool {
        self.clock.judged_until.is_some_and(|until| step < until)
    }

    /// Adds totals the store holds already (read back on a rebuild) to a step not judged.
    pub fn add_stored(&mut self, label: &str, entity_id: i64, step: i64, t: &ExactTotals) {
        let key = self.key(label, entity_id);
        self.pending
            .entry(step)
            .or_default()
            .entry(key)
            .and_modify(|sum| sum.merge(t))
            .or_insert(*t);
    }

    /// The totals summed since the last call, for the store to append: (label, entity, step
    /// start, totals). From then on the model counts them as stored: a step not judged
    /// keeps them until it is, a judged one has them added to its history. Should the
    /// store's commit fail, the model is ahead of the store and must be rebuilt.
    pub fn take_unflushed(&mut self) -> Vec<NewTotals> {
        let mut out = Vec::with_capacity(self.unflushed_len());
        for (step, sums) in std::mem::take(&mut self.unflushed) {
            out.extend(sums.iter().map(|(key, t)| NewTotals {
                label: key.label.clone(),
                entity_id: key.entity_id,
                step_start: step,
                totals: *t,
            }));
            if self.is_judged(step) {
                for (key, t) in &sums {
                    if let Some(series) = self.series.get_mut(key) {
                        series.add_late(step, &t.as_step_totals());
                    }
                }
                continue;
            }
            match self.pending.entry(step) {
                Entry::Vacant(vacant) => {
                    vacant.insert(sums);
                }
                Entry::Occupied(mut held) => {
                    let held = held.get_mut();
                    for (key, t) in sums {
                        held.entry(key).and_modify(|sum| sum.merge(&t)).or_insert(t);
                    }
                }
            }
        }
        out
    }

    /// (series, step) totals summed since the last [`DatasetModel::take_unflushed`].
    pub fn unflushed_len(&self) -> usize {
        self.unflushed.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use detect::synth::shop::VISIT;

    use super::super::tests::{shop_settings, DAY0};
    use super::super::SeriesKey;
    use super::*;
    use crate::clock::DatasetClock;

    /// Rows are summed once, exactly: the store gets what was summed since its last commit,
    /// the judging the whole step, in the float view of its exact totals.
    #[test]
    fn rows_are_summed_once_exactly_into_what_the_store_gets_and_what_is_judged() {
        let mut model = DatasetModel::new(&shop_settings(60), DatasetClock::default());
        let t0 = DAY0;
        model.clock.judged_until = Some(t0);
        // Beyond i64 together, and beyond f64's exact integers.
        let big = ExactTotals {
            sum: i128::from(i64::MAX),
            events: 1,
            min: i64::MAX,
            max: i64::MAX,
        };
        let small = ExactTotals {
            sum: 3,
            events: 2,
            min: 1,
            max: 2,
        };
        assert!(!model.add_row(VISIT, 1, t0 + 1, &big));
        assert!(!model.add_row(VISIT, 1, t0 + 59, &big));
        assert_eq!(model.unflushed_len(), 1);
        let first = model.take_unflushed();
        let sum = 2 * i128::from(i64::MAX);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (
                first[0].step_start,
                first[0].totals.sum,
                first[0].totals.events
            ),
            (t0, sum, 2)
        );
        assert!(model.take_unflushed().is_empty(), "taken once");
        // Rows of the same step after a commit: the store gets only them.
        model.add_row(VISIT, 1, t0 + 30, &small);
        let second = model.take_unflushed();
        assert_eq!((second[0].totals.sum, second[0].totals.events), (3, 2));
        assert_eq!((second[0].totals.min, second[0].totals.max), (1, 2));
        assert_eq!(model.pending_len(), 1);
        model.judge_step(t0);
        assert_eq!(model.pending_len(), 0);
        let history = model.series[&visit(1)].history_sums();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0], ((sum + 3) as f64, 4.0));
    }

    fn visit(entity_id: i64) -> SeriesKey {
        SeriesKey {
            label: Arc::from(VISIT),
            entity_id,
        }
    }

    /// A late row (its step judged) goes to the store and the history, and is not judged.
    #[test]
    fn a_late_row_is_stored_and_learnt_but_not_judged_again() {
        let mut model = DatasetModel::new(&shop_settings(60), DatasetClock::default());
        let t0 = DAY0;
        model.clock.judged_until = Some(t0);
        let one = ExactTotals {
            sum: 5,
            events: 5,
            min: 1,
            max: 1,
        };
        model.add_row(VISIT, 1, t0 + 1, &one);
        model.take_unflushed();
        model.judge_step(t0);
        assert!(model.add_row(VISIT, 1, t0 + 2, &one), "late");
        let stored = model.take_unflushed();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].step_start, stored[0].totals.events), (t0, 5));
        assert_eq!(model.pending_len(), 0, "nothing waits to be judged");
        let history = model.series[&visit(1)].history_sums();
        assert_eq!(history[0], (10.0, 10.0));
    }
}
