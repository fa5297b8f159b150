//! Level checks: the `avg`, `min` and `max` of the single values inside one step.
//!
//! A count can look perfectly normal while every value in it is wrong (a price typed a
//! hundred times too low). These checks judge the *level* of the values, and only on steps
//! with at least `min_count_per_step` events: an average over three events says little, and
//! a step without events has no level at all (unlike a count, it is not a zero). So the
//! level series of an entity is the sequence of its *gated* steps, and quiet steps are
//! skipped rather than filled.
//!
//! With `three_sigma` / `last_point`, [`judge_level`] does the filtering and windowing; with
//! `auto`, feed an [`crate::AutoDetector`] only the steps for which [`level_gate_open`] holds.

use crate::sigma::{self, Judgement, SigmaConfig, SigmaMethod};

/// Which level of a step is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum LevelMetric {
    /// Sum of values / number of events.
    Avg,
    /// Smallest single value.
    Min,
    /// Largest single value.
    Max,
}

/// One step's totals of one series, as the gatherer's `events_count` rows sum up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepTotals {
    /// Sum of the values (`event_counter`).
    pub sum: f64,
    /// Number of events.
    pub events: u64,
    /// Smallest single value (meaningless when `events == 0`).
    pub min: f64,
    /// Largest single value (meaningless when `events == 0`).
    pub max: f64,
}

impl StepTotals {
    /// The step's level for `metric`; `None` for a step without events.
    pub fn level(&self, metric: LevelMetric) -> Option<f64> {
        if self.events == 0 {
            return None;
        }
        Some(match metric {
            LevelMetric::Avg => self.sum / self.events as f64,
            LevelMetric::Min => self.min,
            LevelMetric::Max => self.max,
        })
    }
}

/// The sparsity gate of the level checks: a step is judged, and counts as history, only with
/// at least `min_count_per_step` events (and at least one).
pub fn level_gate_open(events: u64, min_count_per_step: f64) -> bool {
    events > 0 && events as f64 >= min_count_per_step
}

/// The level of `step` judged against the gated steps of `history` (oldest first).
///
/// `n` is the window length in steps; only gated steps count towards it, so the window of
/// a series that is often quiet reaches further back. `None` when `step` is not gated or
/// there are too few gated steps for a sample standard deviation.
pub fn judge_level(
    method: SigmaMethod,
    history: &[StepTotals],
    step: &StepTotals,
    metric: LevelMetric,
    n: usize,
    min_count_per_step: f64,
    config: &SigmaConfig,
) -> Option<Judgement> {
    if !level_gate_open(step.events, min_count_per_step) {
        return None;
    }
    let x = step.level(metric)?;
    let keep = match method {
        SigmaMethod::ThreeSigma => n.saturating_sub(1),
        SigmaMethod::LastPoint => n,
    };
    let mut levels: Vec<f64> = history
        .iter()
        .rev()
        .filter(|s| level_gate_open(s.events, min_count_per_step))
        .filter_map(|s| s.level(metric))
        .take(keep)
        .collect();
    levels.reverse();
    sigma::judge(method, &levels, x, n, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    fn step(avg: f64, events: u64) -> StepTotals {
        StepTotals {
            sum: avg * events as f64,
            events,
            min: avg * 0.5,
            max: avg * 2.0,
        }
    }

    #[test]
    fn levels_of_a_step() {
        let s = StepTotals {
            sum: 100.0,
            events: 4,
            min: 5.0,
            max: 60.0,
        };
        assert_eq!(s.level(LevelMetric::Avg), Some(25.0));
        assert_eq!(s.level(LevelMetric::Min), Some(5.0));
        assert_eq!(s.level(LevelMetric::Max), Some(60.0));
        assert_eq!(StepTotals::default().level(LevelMetric::Avg), None);
    }

    #[test]
    fn a_price_a_hundred_times_too_low_is_an_alarm_while_the_count_is_normal() {
        let history: Vec<StepTotals> = (0..30).map(|i| step(20.0 + (i % 3) as f64, 50)).collect();
        let bad = step(0.2, 50);
        for method in [SigmaMethod::ThreeSigma, SigmaMethod::LastPoint] {
            let j = judge_level(
                method,
                &history,
                &bad,
                LevelMetric::Avg,
                30,
                30.0,
                &SigmaConfig::default(),
            )
            .unwrap();
            assert_eq!(j.verdict, Verdict::Alarm, "{method:?}");
            assert!(j.deviation < 0.0);
        }
    }

    #[test]
    fn steps_with_too_few_events_are_neither_judged_nor_history() {
        let mut history: Vec<StepTotals> = (0..10).map(|_| step(20.0, 50)).collect();
        history[9] = step(1000.0, 3); // quiet step with a wild level: skipped
        history[8] = step(21.0, 50);
        let cfg = SigmaConfig::default();
        // Judged step below the gate: nothing.
        let quiet = step(0.1, 29);
        let lp = SigmaMethod::LastPoint;
        assert!(judge_level(lp, &history, &quiet, LevelMetric::Avg, 5, 30.0, &cfg).is_none());
        // Window = the last 5 gated steps: 20, 20, 20, 20, 21 -> mean 20.2.
        let j = judge_level(
            lp,
            &history,
            &step(20.0, 40),
            LevelMetric::Avg,
            5,
            30.0,
            &cfg,
        )
        .unwrap();
        assert!((j.mean - 20.2).abs() < 1e-12);
        assert_eq!(j.verdict, Verdict::None);
    }

    #[test]
    fn gate_needs_at_least_one_event() {
        assert!(!level_gate_open(0, 0.0));
        assert!(level_gate_open(1, 0.0));
        assert!(level_gate_open(30, 30.0));
        assert!(!level_gate_open(29, 30.0));
    }
}
