//! The product brief's windowed detectors, `three_sigma` and `last_point`.
//!
//! Both look at a window `W` of `n` step totals, take its mean and *sample* standard
//! deviation (`n - 1`) and express the newest step `x` as a two-sided deviation
//! `d = (x - mean) / sd`. `|d|` at or above the warning / alarm multiplier (default 2 / 3)
//! gives a warning / an alarm; a window with zero spread makes any `x` that differs from its
//! mean an alarm (with an infinite deviation). The two methods differ only in `W`:
//!
//! * `three_sigma`: the last `n` steps *including* `x` (so `x` also inflates the spread,
//!   and `|d|` can never exceed `(n - 1) / sqrt(n)`);
//! * `last_point`: the `n` steps *before* `x`.
//!
//! The module also holds the sparsity gate of the count checks ([`count_gate_open`]) and
//! [`fill_gaps`], which turns a sparse list of step totals into the dense series these
//! methods expect: a step without events is a zero, not a gap.

use crate::Verdict;

/// Which window the deviation is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SigmaMethod {
    /// The brief's method: `W` = the last `n` steps including `x`.
    ThreeSigma,
    /// `W` = the `n` steps before `x`, so an outlier cannot hide itself by widening `W`.
    LastPoint,
}

/// Multipliers of the sample standard deviation at which a step becomes a warning / alarm.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SigmaConfig {
    /// `|d|` at or above this is a warning (default 2).
    pub warning_multiplier: f64,
    /// `|d|` at or above this is an alarm (default 3).
    pub alarm_multiplier: f64,
}

impl Default for SigmaConfig {
    fn default() -> Self {
        SigmaConfig {
            warning_multiplier: 2.0,
            alarm_multiplier: 3.0,
        }
    }
}

impl SigmaConfig {
    /// The verdict for a deviation `d` (two-sided; NaN is no verdict).
    pub fn verdict(&self, deviation: f64) -> Verdict {
        let a = deviation.abs();
        if a >= self.alarm_multiplier {
            Verdict::Alarm
        } else if a >= self.warning_multiplier {
            Verdict::Warning
        } else {
            Verdict::None
        }
    }
}

/// The outcome of judging one step: what was expected, how far off it was, and the verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Judgement {
    /// The judged value `x`.
    pub observed: f64,
    /// Mean of the window: what `x` was expected to be.
    pub mean: f64,
    /// Sample standard deviation of the window.
    pub sd: f64,
    /// `(x - mean) / sd`; `±inf` when `sd` is zero and `x` differs from the mean, 0 when equal.
    pub deviation: f64,
    /// Warning / alarm according to the multipliers.
    pub verdict: Verdict,
}

/// Mean and sample standard deviation (`n - 1`) of `values`; `None` for fewer than 2 values.
pub fn mean_and_sample_sd(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    // Two passes: stable for large values with a small spread (counters in the millions).
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    Some((mean, (ss / (n as f64 - 1.0)).sqrt()))
}

fn judge_against(window: &[f64], x: f64, config: &SigmaConfig) -> Option<Judgement> {
    let (mean, sd) = mean_and_sample_sd(window)?;
    let diff = x - mean;
    // A spread this small relative to the values is rounding noise of an exact constant.
    let flat = sd <= 1e-12 * mean.abs().max(1.0);
    let deviation = if !flat {
        diff / sd
    } else if diff.abs() <= 1e-9 * mean.abs().max(1.0) {
        0.0
    } else {
        f64::INFINITY.copysign(diff)
    };
    Some(Judgement {
        observed: x,
        mean,
        sd: if flat { 0.0 } else { sd },
        deviation,
        verdict: config.verdict(deviation),
    })
}

/// The brief's `three_sigma`: `window` is the last `n` steps, the newest (judged) one last.
///
/// `None` when the window holds fewer than 2 steps (no sample standard deviation).
pub fn three_sigma(window: &[f64], config: &SigmaConfig) -> Option<Judgement> {
    let x = *window.last()?;
    judge_against(window, x, config)
}

/// `last_point`: `x` against the `n` steps before it (`before`, oldest first).
///
/// `None` when `before` holds fewer than 2 steps.
pub fn last_point(before: &[f64], x: f64, config: &SigmaConfig) -> Option<Judgement> {
    judge_against(before, x, config)
}

/// Either method from one call: `history` holds the steps before `x` (oldest first, at least
/// `n` of them for a full window), `n` the window length in steps (`time_ago / time_step`).
///
/// Only the last `n` (or `n - 1` plus `x` for `three_sigma`) steps of `history` are used.
pub fn judge(
    method: SigmaMethod,
    history: &[f64],
    x: f64,
    n: usize,
    config: &SigmaConfig,
) -> Option<Judgement> {
    match method {
        SigmaMethod::ThreeSigma => {
            let keep = n.saturating_sub(1).min(history.len());
            let mut window = Vec::with_capacity(keep + 1);
            window.extend_from_slice(&history[history.len() - keep..]);
            window.push(x);
            three_sigma(&window, config)
        }
        SigmaMethod::LastPoint => {
            let keep = n.min(history.len());
            last_point(&history[history.len() - keep..], x, config)
        }
    }
}

/// The sparsity gate of the `count` and `events` checks: judge a series only when its
/// baseline (the steps before the judged one) averages at least `min_count_per_step`.
///
/// The judged step itself is not part of the baseline, so a drop from a busy baseline to
/// zero is still judged, while a series that is mostly silent never raises noise alarms.
/// An empty baseline is not judged.
pub fn count_gate_open(baseline: &[f64], min_count_per_step: f64) -> bool {
    if baseline.is_empty() {
        return false;
    }
    baseline.iter().sum::<f64>() / baseline.len() as f64 >= min_count_per_step
}

/// Dense step totals from sparse ones: `points` are `(step_start, value)` pairs (any order,
/// duplicates summed); the result has one value per step of `[from, to)` with width `step`,
/// zero where no point fell. Points outside the range are ignored.
///
/// Returns an empty vector when `step <= 0` or `to <= from`.
pub fn fill_gaps(points: &[(i64, f64)], from: i64, to: i64, step: i64) -> Vec<f64> {
    if step <= 0 || to <= from {
        return Vec::new();
    }
    let len = usize::try_from((to - from + step - 1) / step).unwrap_or(0);
    let mut out = vec![0.0; len];
    for &(t, v) in points {
        if t < from || t >= to {
            continue;
        }
        let i = usize::try_from((t - from) / step).unwrap_or(usize::MAX);
        if let Some(slot) = out.get_mut(i) {
            *slot += v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SigmaConfig {
        SigmaConfig::default()
    }

    #[test]
    fn sample_sd_uses_n_minus_one() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sum of squares 32, sample variance 32 / 7.
        let (m, sd) = mean_and_sample_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(m, 5.0);
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn three_sigma_includes_the_judged_point_in_the_window() {
        // W = [10, 10, 10, 10, 20]: mean 12, squares 4+4+4+4+64 = 80, var 80/4 = 20.
        let j = three_sigma(&[10.0, 10.0, 10.0, 10.0, 20.0], &cfg()).unwrap();
        assert_eq!(j.mean, 12.0);
        assert!((j.sd - 20f64.sqrt()).abs() < 1e-12);
        assert!((j.deviation - 8.0 / 20f64.sqrt()).abs() < 1e-12); // 1.789
        assert_eq!(j.verdict, Verdict::None);
    }

    #[test]
    fn three_sigma_deviation_is_bounded_by_the_window_length() {
        // With x in W, |d| <= (n-1)/sqrt(n): n = 9 -> 8/3 = 2.67, never an alarm at 3.
        let mut w = vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0];
        w.push(1e9);
        let j = three_sigma(&w, &cfg()).unwrap();
        assert!(j.deviation <= 8.0 / 3.0 + 1e-9);
        assert_eq!(j.verdict, Verdict::Warning);
    }

    #[test]
    fn last_point_measures_against_the_steps_before() {
        // before = [10, 12, 14]: mean 12, sd 2; x = 18 -> d = 3 -> alarm.
        let j = last_point(&[10.0, 12.0, 14.0], 18.0, &cfg()).unwrap();
        assert_eq!((j.mean, j.sd, j.deviation), (12.0, 2.0, 3.0));
        assert_eq!(j.verdict, Verdict::Alarm);
        // x = 8 -> d = -2 -> warning (two-sided).
        let j = last_point(&[10.0, 12.0, 14.0], 8.0, &cfg()).unwrap();
        assert_eq!(j.deviation, -2.0);
        assert_eq!(j.verdict, Verdict::Warning);
        // x = 13.9 -> d = 0.95 -> nothing.
        assert_eq!(
            last_point(&[10.0, 12.0, 14.0], 13.9, &cfg())
                .unwrap()
                .verdict,
            Verdict::None
        );
    }

    #[test]
    fn zero_spread_makes_any_different_value_an_alarm() {
        let j = last_point(&[5.0, 5.0, 5.0], 5.0, &cfg()).unwrap();
        assert_eq!((j.deviation, j.verdict), (0.0, Verdict::None));
        let j = last_point(&[5.0, 5.0, 5.0], 5.5, &cfg()).unwrap();
        assert_eq!(j.deviation, f64::INFINITY);
        assert_eq!(j.verdict, Verdict::Alarm);
        let j = last_point(&[5.0, 5.0, 5.0], 0.0, &cfg()).unwrap();
        assert_eq!(j.deviation, f64::NEG_INFINITY);
        assert_eq!(j.verdict, Verdict::Alarm);
    }

    #[test]
    fn custom_multipliers_move_the_verdicts() {
        let c = SigmaConfig {
            warning_multiplier: 1.0,
            alarm_multiplier: 1.5,
        };
        assert_eq!(
            last_point(&[10.0, 12.0, 14.0], 15.0, &c).unwrap().verdict,
            Verdict::Alarm
        );
        assert_eq!(
            last_point(&[10.0, 12.0, 14.0], 14.0, &c).unwrap().verdict,
            Verdict::Warning
        );
    }

    #[test]
    fn too_short_windows_give_no_judgement() {
        assert!(three_sigma(&[1.0], &cfg()).is_none());
        assert!(three_sigma(&[], &cfg()).is_none());
        assert!(last_point(&[1.0], 3.0, &cfg()).is_none());
    }

    #[test]
    fn judge_takes_the_right_window_for_each_method() {
        let history = [100.0, 10.0, 12.0, 14.0];
        // last_point, n = 3: [10, 12, 14] against 18 -> d = 3.
        let j = judge(SigmaMethod::LastPoint, &history, 18.0, 3, &cfg()).unwrap();
        assert_eq!(j.deviation, 3.0);
        // three_sigma, n = 3: [12, 14, 18]: mean 44/3, sd of (12,14,18).
        let j = judge(SigmaMethod::ThreeSigma, &history, 18.0, 3, &cfg()).unwrap();
        let (m, sd) = mean_and_sample_sd(&[12.0, 14.0, 18.0]).unwrap();
        assert_eq!((j.mean, j.sd), (m, sd));
    }

    #[test]
    fn count_gate_judges_a_drop_to_zero_from_a_busy_baseline() {
        assert!(count_gate_open(&[40.0, 35.0, 30.0], 30.0));
        assert!(!count_gate_open(&[4.0, 3.0, 0.0], 30.0));
        assert!(!count_gate_open(&[], 30.0));
        // The judged zero is not in the baseline, and it is an alarm.
        let baseline = [40.0, 35.0, 30.0, 38.0];
        assert!(count_gate_open(&baseline, 30.0));
        let j = last_point(&baseline, 0.0, &cfg()).unwrap();
        assert_eq!(j.verdict, Verdict::Alarm);
    }

    #[test]
    fn fill_gaps_turns_missing_steps_into_zeros() {
        let pts = [(120, 3.0), (0, 1.0), (120, 2.0), (300, 9.0), (-60, 7.0)];
        assert_eq!(fill_gaps(&pts, 0, 300, 60), vec![1.0, 0.0, 5.0, 0.0, 0.0]);
        assert!(fill_gaps(&pts, 0, 0, 60).is_empty());
        assert!(fill_gaps(&pts, 0, 300, 0).is_empty());
    }
}
