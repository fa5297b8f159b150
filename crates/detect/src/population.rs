//! The population check: within one label and one step, each entity against its peers.
//!
//! A bot that orders a hundred t-shirts in a minute while every shopper orders one hides in
//! the label's total but stands out among the entities of the same step. The check is
//! robust: the peers' typical count is their median and their spread the MAD (scaled to a
//! standard deviation, 1.4826 x MAD), floored by the Poisson spread `sqrt(median)` and by 1
//! so that a population of identical counts (MAD 0) does not turn every difference into an
//! alarm. Only counts far *above* the peers are flagged (a quiet entity is not a threat),
//! and a label's step is judged only when its total events reach `min_count_per_step`.

use crate::Verdict;

/// Thresholds of the population check.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PopulationConfig {
    /// The label's events in the step must reach this (the dataset's `min_count_per_step`).
    pub min_count_per_step: f64,
    /// Robust deviation (in scaled MADs) at or above which an entity is a warning.
    pub warning_deviation: f64,
    /// Robust deviation at or above which an entity is an alarm.
    pub alarm_deviation: f64,
    /// Fewer entities than this in the step: no peers to compare with, nothing judged.
    pub min_entities: usize,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig {
            min_count_per_step: 30.0,
            warning_deviation: 6.0,
            alarm_deviation: 12.0,
            min_entities: 5,
        }
    }
}

/// One entity flagged by [`population_outliers`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PopulationOutlier {
    /// The entity's id, as given.
    pub entity_id: i64,
    /// Its count in the step.
    pub observed: f64,
    /// The peers' median count: what it was expected to be.
    pub expected: f64,
    /// `(observed - expected) / scale` with the robust scale described in the module doc.
    pub deviation: f64,
    /// Warning or alarm (never `None`: entities within bounds are not returned).
    pub verdict: Verdict,
}

/// Median of a slice, sorting it in place; `None` when empty.
fn median_in_place(values: &mut [f64]) -> Option<f64> {
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

/// The entities of one label's step whose count is far above their peers'.
///
/// `counts` holds `(entity_id, count)` for the entities seen in the step; `total_events` is
/// the label's number of events in the step (the gate). Returns the flagged entities in the
/// order given; empty when the step is not judged.
pub fn population_outliers(
    counts: &[(i64, f64)],
    total_events: u64,
    config: &PopulationConfig,
) -> Vec<PopulationOutlier> {
    if (total_events as f64) < config.min_count_per_step
        || counts.len() < config.min_entities.max(2)
    {
        return Vec::new();
    }
    let mut values: Vec<f64> = counts.iter().map(|&(_, c)| c).collect();
    let Some(median) = median_in_place(&mut values) else {
        return Vec::new();
    };
    for v in values.iter_mut() {
        *v = (*v - median).abs();
    }
    let mad = median_in_place(&mut values).unwrap_or(0.0);
    let scale = (1.4826 * mad).max(median.abs().sqrt()).max(1.0);
    counts
        .iter()
        .filter_map(|&(entity_id, observed)| {
            let deviation = (observed - median) / scale;
            let verdict = if deviation >= config.alarm_deviation {
                Verdict::Alarm
            } else if deviation >= config.warning_deviation {
                Verdict::Warning
            } else {
                return None;
            };
            Some(PopulationOutlier {
                entity_id,
                observed,
                expected: median,
                deviation,
                verdict,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bot_ordering_a_hundred_among_shoppers_ordering_one_is_an_alarm() {
        let mut counts: Vec<(i64, f64)> = (1..=40).map(|id| (id, 1.0)).collect();
        counts[3].1 = 2.0;
        counts.push((666, 100.0));
        let out = population_outliers(&counts, 41, &PopulationConfig::default());
        assert_eq!(out.len(), 1);
        let o = out[0];
        assert_eq!((o.entity_id, o.observed, o.expected), (666, 100.0, 1.0));
        // median 1, MAD 0 -> scale floored at 1 -> deviation 99.
        assert_eq!(o.deviation, 99.0);
        assert_eq!(o.verdict, Verdict::Alarm);
    }

    #[test]
    fn a_moderately_busy_entity_is_a_warning() {
        // 21 entities at 45, 50, 55 (median 50, MAD 5 -> scale 7.41), one at 100: d = 6.75.
        let mut counts: Vec<(i64, f64)> =
            (0..21).map(|i| (i, 45.0 + 5.0 * (i % 3) as f64)).collect();
        counts.push((99, 100.0));
        let out = population_outliers(&counts, 1000, &PopulationConfig::default());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].verdict, Verdict::Warning);
        assert!((out[0].deviation - 50.0 / (1.4826 * 5.0)).abs() < 1e-9);
    }

    #[test]
    fn quiet_entities_and_ordinary_spread_are_not_flagged() {
        let counts: Vec<(i64, f64)> = (0..30).map(|i| (i, (i % 7) as f64 + 1.0)).collect();
        assert!(population_outliers(&counts, 500, &PopulationConfig::default()).is_empty());
        let mut low = counts.clone();
        low.push((77, 0.0));
        assert!(population_outliers(&low, 500, &PopulationConfig::default()).is_empty());
    }

    #[test]
    fn a_step_below_the_gate_or_with_few_peers_is_not_judged() {
        let mut counts: Vec<(i64, f64)> = (0..10).map(|i| (i, 1.0)).collect();
        counts.push((9, 100.0));
        let cfg = PopulationConfig::default();
        assert!(population_outliers(&counts, 29, &cfg).is_empty());
        assert_eq!(population_outliers(&counts, 30, &cfg).len(), 1);
        assert!(population_outliers(&counts[8..], 500, &cfg).is_empty());
    }
}
