//! Level checks: the `avg`, `min` and `max` of the single values inside one step.
//!
//! A count can look perfectly normal while every value in it is wrong (a price typed a
//! hundred times too low). These checks judge the *level* of the values, and only on steps
//! with at least `min_count_per_step` events: an average over three events says little, and
//! a step without events has no level at all (unlike a count, it is not a zero). So the
//! level series of an entity is the sequence of its *gated* steps, and quiet steps are
//! skipped rather than filled.
//!
//! Real prices jitter: discounts, rounding, currencies move a shop's average by a percent or
//! two from one step to the next, and a window of nearly equal averages has a tiny (or zero)
//! standard deviation. So the level checks are robust and ask for a material change:
//!
//! * the expected level is the *median* of the window's gated levels, and the scale is the
//!   MAD (scaled to a standard deviation, 1.4826 x MAD), floored at
//!   [`LevelConfig::relative_floor`] of the level, so a near-constant window never turns a
//!   rounding difference into an infinite deviation;
//! * the deviation `(x - median) / scale` must reach the warning / alarm multiplier, *and*
//!   the level must have moved by at least [`LevelConfig::min_change`] of the expected level
//!   (the dataset's `level_min_change`, 25 % by default): a price a hundred times too low is
//!   news, a 1 % wobble is not.
//!
//! The window is the last `n` gated steps *before* the judged one, whatever the method: an
//! outlier cannot widen its own window, and the median needs no more than that.

use crate::sigma::Judgement;
use crate::Verdict;

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

    /// Whether every value in the step was 1 (or there was none): then the sum of values and
    /// the number of events are the same series.
    pub fn all_ones(&self) -> bool {
        self.events == 0 || (self.min == 1.0 && self.max == 1.0)
    }
}

/// Thresholds of the level checks.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LevelConfig {
    /// Robust deviation at or above which a step is a warning (the dataset's
    /// `warning_multiplier`).
    pub warning_multiplier: f64,
    /// Robust deviation at or above which a step is an alarm (`alarm_multiplier`).
    pub alarm_multiplier: f64,
    /// The level must also move by this share of the expected level (`level_min_change`).
    pub min_change: f64,
    /// The scale is at least this share of the level: prices are not measured more finely
    /// than a percent, whatever a quiet window says.
    pub relative_floor: f64,
    /// Fewer gated steps in the window than this: too little to know the level, not judged.
    pub min_history: usize,
}

impl Default for LevelConfig {
    fn default() -> Self {
        LevelConfig {
            warning_multiplier: 2.0,
            alarm_multiplier: 3.0,
            min_change: 0.25,
            relative_floor: 0.01,
            min_history: 5,
        }
    }
}

/// The sparsity gate of the level checks: a step is judged, and counts as history, only with
/// at least `min_count_per_step` events (and at least one).
pub fn level_gate_open(events: u64, min_count_per_step: f64) -> bool {
    events > 0 && events as f64 >= min_count_per_step
}

/// Median of a slice, sorting it in place; `None` when empty.
pub(crate) fn median_in_place(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// The level of `step` judged against the last `n` gated steps of `history` (oldest
/// first), on the robust scale described in the module doc.
///
/// `None` when `step` is not gated or the window has fewer than `min_history` gated steps.
/// The returned [`Judgement`] carries the median as `mean` and the robust scale as `sd`; its
/// deviation is always finite.
pub fn judge_level(
    history: &[StepTotals],
    step: &StepTotals,
    metric: LevelMetric,
    n: usize,
    min_count_per_step: f64,
    config: &LevelConfig,
) -> Option<Judgement> {
    if !level_gate_open(step.events, min_count_per_step) {
        return None;
    }
    let x = step.level(metric)?;
    let mut levels: Vec<f64> = history
        .iter()
        .rev()
        .filter(|s| level_gate_open(s.events, min_count_per_step))
        .filter_map(|s| s.level(metric))
        .take(n)
        .collect();
    if levels.len() < config.min_history.max(1) {
        return None;
    }
    let median = median_in_place(&mut levels)?;
    for level in levels.iter_mut() {
        *level = (*level - median).abs();
    }
    let mad = median_in_place(&mut levels).unwrap_or(0.0);
    let scale = (1.4826 * mad)
        .max(config.relative_floor * median.abs())
        .max(f64::MIN_POSITIVE);
    let deviation = ((x - median) / scale).clamp(-1e12, 1e12);
    let material = (x - median).abs() >= config.min_change * median.abs();
    let verdict = if !material {
        Verdict::None
    } else if deviation.abs() >= config.alarm_multiplier {
        Verdict::Alarm
    } else if deviation.abs() >= config.warning_multiplier {
        Verdict::Warning
    } else {
        Verdict::None
    };
    Some(Judgement {
        observed: x,
        mean: median,
        sd: scale,
        deviation,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;

    fn step(avg: f64, events: u64) -> StepTotals {
        StepTotals {
            sum: avg * events as f64,
            events,
            min: avg * 0.5,
            max: avg * 2.0,
        }
    }

    /// Steps of a price jittering by +-2 % per event around `price`, 40 to 60 events each.
    fn jittering(rng: &mut Rng, price: f64, steps: usize) -> Vec<StepTotals> {
        (0..steps)
            .map(|_| {
                let events = 40 + rng.poisson(10.0);
                let mut t = StepTotals {
                    sum: 0.0,
                    events,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                };
                for _ in 0..events {
                    let v = (price * rng.between(0.98, 1.02)).round();
                    t.sum += v;
                    t.min = t.min.min(v);
                    t.max = t.max.max(v);
                }
                t
            })
            .collect()
    }

    fn judge(history: &[StepTotals], x: &StepTotals, metric: LevelMetric) -> Option<Judgement> {
        judge_level(history, x, metric, 30, 30.0, &LevelConfig::default())
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
        assert!(StepTotals::default().all_ones());
        assert!(!s.all_ones());
    }

    #[test]
    fn a_price_a_hundred_times_too_low_is_an_alarm_and_forty_percent_is_found_too() {
        let mut rng = Rng::new(3);
        let history = jittering(&mut rng, 3990.0, 30);
        for metric in [LevelMetric::Avg, LevelMetric::Min, LevelMetric::Max] {
            let typo = jittering(&mut rng, 39.9, 1)[0];
            let j = judge(&history, &typo, metric).unwrap();
            assert_eq!(j.verdict, Verdict::Alarm, "{metric:?}: {j:?}");
            assert!(j.deviation < 0.0 && j.deviation.is_finite());
            let low = jittering(&mut rng, 3990.0 * 0.6, 1)[0];
            assert!(judge(&history, &low, metric).unwrap().verdict.is_anomaly());
        }
    }

    #[test]
    fn a_jittering_price_never_raises_anything() {
        let mut rng = Rng::new(11);
        let steps = jittering(&mut rng, 3990.0, 3_000);
        for metric in [LevelMetric::Avg, LevelMetric::Min, LevelMetric::Max] {
            for i in 30..steps.len() {
                let j = judge(&steps[i - 30..i], &steps[i], metric).unwrap();
                assert_eq!(j.verdict, Verdict::None, "{metric:?} at {i}: {j:?}");
            }
        }
    }

    #[test]
    fn a_constant_window_gives_a_finite_deviation_and_needs_a_material_change() {
        let history: Vec<StepTotals> = (0..30).map(|_| step(20.0, 50)).collect();
        let cfg = LevelConfig::default();
        // 1 % off a perfectly flat price: deviation 1 (the floor), no verdict.
        let j = judge_level(&history, &step(20.2, 50), LevelMetric::Avg, 30, 30.0, &cfg).unwrap();
        assert!((j.deviation - 1.0).abs() < 1e-9, "{j:?}");
        assert_eq!(j.verdict, Verdict::None);
        // 20 % off: a huge deviation, but not the 25 % that makes it news.
        let j = judge_level(&history, &step(16.0, 50), LevelMetric::Avg, 30, 30.0, &cfg).unwrap();
        assert!(j.deviation.abs() >= 3.0 && j.deviation.is_finite());
        assert_eq!(j.verdict, Verdict::None);
        // 30 % off: an alarm.
        let j = judge_level(&history, &step(14.0, 50), LevelMetric::Avg, 30, 30.0, &cfg).unwrap();
        assert_eq!(j.verdict, Verdict::Alarm);
        // A price of zero against a price of zero: nothing, and finite.
        let zeros: Vec<StepTotals> = (0..30).map(|_| step(0.0, 50)).collect();
        let j = judge_level(&zeros, &step(0.0, 50), LevelMetric::Avg, 30, 30.0, &cfg).unwrap();
        assert_eq!((j.deviation, j.verdict), (0.0, Verdict::None));
    }

    #[test]
    fn steps_with_too_few_events_are_neither_judged_nor_history() {
        let mut history: Vec<StepTotals> = (0..10).map(|_| step(20.0, 50)).collect();
        history[9] = step(1000.0, 3); // quiet step with a wild level: skipped
        history[8] = step(21.0, 50);
        let cfg = LevelConfig::default();
        // Judged step below the gate: nothing.
        let quiet = step(0.1, 29);
        assert!(judge_level(&history, &quiet, LevelMetric::Avg, 5, 30.0, &cfg).is_none());
        // Window = the last 5 gated steps: 20, 20, 20, 20, 21 -> median 20.
        let j = judge_level(&history, &step(20.0, 40), LevelMetric::Avg, 5, 30.0, &cfg).unwrap();
        assert_eq!(j.mean, 20.0);
        assert_eq!(j.verdict, Verdict::None);
        // Too little history: not judged.
        assert!(judge_level(
            &history[..3],
            &step(1.0, 40),
            LevelMetric::Avg,
            5,
            30.0,
            &cfg
        )
        .is_none());
    }

    #[test]
    fn gate_needs_at_least_one_event() {
        assert!(!level_gate_open(0, 0.0));
        assert!(level_gate_open(1, 0.0));
        assert!(level_gate_open(30, 30.0));
        assert!(!level_gate_open(29, 30.0));
    }
}
