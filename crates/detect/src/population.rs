//! The population check: within one label and one step, each entity against its own habit.
//!
//! A bot that floods one shop's checkout hides in the label's total but changes that shop's
//! *share* of the label's events. Shops differ in size (a big one may always take six times
//! the median's events), so an entity is compared with its own usual share, not with its
//! peers' counts: a big shop is not a bot, and a small shop whose checkouts jump tenfold is
//! one, even if it is still smaller than the others.
//!
//! Per entity, a [`ShareBaseline`] remembers (as exponential means) its own events per step
//! and the other entities' events per step. At a judged step its expected count is
//! `own / others x (the others' events in this step)`: leaving the entity out of the total
//! makes a flood of `k` times show as exactly `k` times the expectation, whatever the
//! entity's size, and a rhythm the whole label shares cancels out. An entity is flagged when
//!
//! * its count is at least `warning_ratio` / `alarm_ratio` times that expectation, and as
//!   many times the peers' median ratio (it stands out from its peers, not with them);
//! * the excess is beyond noise: `z` is the signed root of the Poisson deviance,
//!   `sqrt(2 (x ln(x / mu) - (x - mu)))`, which follows a standard normal closely even in the
//!   far tail of small counts, divided by `sqrt(1 + spread^2 mu)`, with `spread` the relative
//!   wobble of shares that real traffic shows beyond Poisson. So a handful of events is
//!   judged with Poisson noise and a big shop with its mix's own variation. A persistent
//!   excess adds up: when the step before was above the habit too, the two steps' excesses
//!   combine (`(z + z_before) / sqrt(2)`, again a standard normal under noise), so a small
//!   shop tripled for several steps stands out although no single step of it is extreme.
//!
//! Only counts far *above* the habit are flagged (a quiet entity is not a threat; traffic
//! that stops is the count checks' business), and a label's step is judged only when its
//! total events reach `min_count_per_step`.

use crate::Verdict;

/// Thresholds of the population check.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PopulationConfig {
    /// The label's events in the step must reach this (the dataset's `min_count_per_step`).
    pub min_count_per_step: f64,
    /// A warning needs at least this many times the entity's expected count.
    pub warning_ratio: f64,
    /// An alarm needs at least this many times the entity's expected count.
    pub alarm_ratio: f64,
    /// A warning needs at least this noise-scaled excess (standard-normal units).
    pub warning_z: f64,
    /// An alarm needs at least this noise-scaled excess.
    pub alarm_z: f64,
    /// Relative wobble of an entity's share beyond Poisson noise.
    pub spread: f64,
    /// Fewer entities with a known habit than this: no peers to compare with, nothing judged.
    pub min_entities: usize,
    /// Steps a baseline must have learnt before its entity is judged.
    pub min_history: u32,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig {
            min_count_per_step: 30.0,
            warning_ratio: 2.0,
            alarm_ratio: 3.0,
            warning_z: 3.5,
            alarm_z: 6.0,
            spread: 0.15,
            min_entities: 3,
            min_history: 10,
        }
    }
}

/// One entity's habit within its label: exponential means of its own events per step and of
/// the other entities' events per step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ShareBaseline {
    own: f64,
    others: f64,
    steps: u32,
}

impl ShareBaseline {
    /// Learns one step in which the entity had `own` events and the others `others`, with
    /// exponential rate `rate` (about 2 / (window + 1)). Steps in which the label was silent
    /// say nothing about shares and are skipped.
    pub fn learn(&mut self, own: u64, others: u64, rate: f64) {
        if own + others == 0 {
            return;
        }
        if self.steps == 0 {
            self.own = own as f64;
            self.others = others as f64;
        } else {
            self.own += rate * (own as f64 - self.own);
            self.others += rate * (others as f64 - self.others);
        }
        self.steps = self.steps.saturating_add(1);
    }

    /// The entity's expected events given the others' events in this step; `None` until the
    /// habit is known (`min_history` steps, and others that were ever busy).
    pub fn expected(&self, others: u64, min_history: u32) -> Option<f64> {
        (self.steps >= min_history && self.others > 0.0)
            .then(|| self.own / self.others * others as f64)
    }
}

/// One entity of a label's step, as [`population_outliers`] judges it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    pub entity_id: i64,
    /// Its events in the step.
    pub events: u64,
    /// Its expected events ([`ShareBaseline::expected`]); `None` when its habit is unknown.
    pub expected: Option<f64>,
    /// Its excess ([`excess`]) at the step before; 0 when unknown.
    pub excess_before: f64,
}

/// One entity flagged by [`population_outliers`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PopulationOutlier {
    /// The entity's id, as given.
    pub entity_id: i64,
    /// Its events in the step.
    pub observed: f64,
    /// What its own habit expected.
    pub expected: f64,
    /// The noise-scaled excess `z` described in the module doc.
    pub deviation: f64,
    /// Warning or alarm (never `None`: entities within bounds are not returned).
    pub verdict: Verdict,
}

/// The noise-scaled excess of `observed` over `expected` (see the module doc); negative
/// below the expectation.
pub fn excess(observed: f64, expected: f64, spread: f64) -> f64 {
    if expected <= 0.0 {
        return 0.0;
    }
    let log_term = if observed > 0.0 {
        observed * (observed / expected).ln()
    } else {
        0.0
    };
    let deviance = (2.0 * (log_term - (observed - expected))).max(0.0);
    deviance.sqrt().copysign(observed - expected) / (1.0 + spread * spread * expected).sqrt()
}

/// Whether a label's step is judged at all: its events reach the gate and enough entities
/// have a known habit. Its members with a habit are then judged (flagged or normal).
pub fn population_judged(members: &[Member], total_events: u64, config: &PopulationConfig) -> bool {
    (total_events as f64) >= config.min_count_per_step
        && members
            .iter()
            .filter(|m| m.expected.is_some_and(|e| e > 0.0))
            .count()
            >= config.min_entities.max(2)
}

/// The entities of one label's step whose events are far above their own habit.
///
/// `total_events` is the label's number of events in the step (the gate). Returns the
/// flagged entities in the order given; empty when the step is not judged.
pub fn population_outliers(
    members: &[Member],
    total_events: u64,
    config: &PopulationConfig,
) -> Vec<PopulationOutlier> {
    if !population_judged(members, total_events, config) {
        return Vec::new();
    }
    let mut ratios: Vec<f64> = members
        .iter()
        .filter_map(|m| m.expected.filter(|&e| e > 0.0).map(|e| m.events as f64 / e))
        .collect();
    let peers = crate::level::median_in_place(&mut ratios).unwrap_or(1.0);
    members
        .iter()
        .filter_map(|m| {
            let expected = m.expected.filter(|&e| e > 0.0)?;
            let observed = m.events as f64;
            let ratio = observed / expected;
            let stands_out = |r: f64| ratio >= r && ratio >= r * peers;
            let z_now = excess(observed, expected, config.spread);
            let z = if z_now > 0.0 && m.excess_before > 0.0 {
                z_now.max((z_now + m.excess_before) / std::f64::consts::SQRT_2)
            } else {
                z_now
            };
            let verdict = if stands_out(config.alarm_ratio) && z >= config.alarm_z {
                Verdict::Alarm
            } else if stands_out(config.warning_ratio) && z >= config.warning_z {
                Verdict::Warning
            } else {
                return None;
            };
            Some(PopulationOutlier {
                entity_id: m.entity_id,
                observed,
                expected,
                deviation: z,
                verdict,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;

    /// Shops 1..=12 whose sizes spread 6x, judged `steps` times with Poisson counts at
    /// `rate` events per size unit; `flood(step, shop)` multiplies a shop's mean.
    fn run(
        steps: usize,
        rate: f64,
        flood: impl Fn(usize, i64) -> f64,
    ) -> Vec<(usize, PopulationOutlier)> {
        let cfg = PopulationConfig::default();
        let mut rng = Rng::new(5);
        let sizes: Vec<f64> = (0..12).map(|i| 1.0 + 5.0 * i as f64 / 11.0).collect();
        let mut habits = [ShareBaseline::default(); 12];
        let mut before = [0.0; 12];
        let mut found = Vec::new();
        for step in 0..steps {
            // A daily rhythm the whole label shares: nights at 15 % of the peak.
            let rhythm =
                0.15 + 0.85 * (0.5 - 0.5 * (step as f64 / 288.0 * std::f64::consts::TAU).cos());
            let counts: Vec<u64> = (0..12)
                .map(|i| {
                    let mean = rate * sizes[i] * rhythm * flood(step, i as i64 + 1);
                    rng.overdispersed(mean, 0.1)
                })
                .collect();
            let total: u64 = counts.iter().sum();
            let members: Vec<Member> = (0..12)
                .map(|i| Member {
                    entity_id: i as i64 + 1,
                    events: counts[i],
                    expected: habits[i].expected(total - counts[i], cfg.min_history),
                    excess_before: before[i],
                })
                .collect();
            for outlier in population_outliers(&members, total, &cfg) {
                found.push((step, outlier));
            }
            for (i, m) in members.iter().enumerate() {
                before[i] = m
                    .expected
                    .map_or(0.0, |e| excess(m.events as f64, e, cfg.spread));
            }
            for i in 0..12 {
                habits[i].learn(counts[i], total - counts[i], 2.0 / 31.0);
            }
        }
        found
    }

    /// Within the analyser's budget on their own, before the analyser asks a warning to
    /// last two steps: at most 15 warnings and 2 alarms per 10 000 judged entity-steps.
    #[test]
    fn shops_of_different_sizes_with_a_shared_rhythm_are_quiet() {
        for rate in [2.0, 20.0, 300.0] {
            let found = run(5_000, rate, |_, _| 1.0);
            let alarms = found
                .iter()
                .filter(|(_, o)| o.verdict == Verdict::Alarm)
                .count();
            assert!(
                found.len() <= 90 && alarms <= 12,
                "{} outliers ({alarms} alarms) in 60 000 at rate {rate}: {found:?}",
                found.len()
            );
        }
    }

    #[test]
    fn a_tenfold_flood_on_the_smallest_shop_is_an_alarm_and_threefold_is_found() {
        for (factor, verdict) in [(10.0, Verdict::Alarm), (3.0, Verdict::Warning)] {
            let found = run(460, 20.0, |step, shop| {
                if shop == 1 && (430..433).contains(&step) {
                    factor
                } else {
                    1.0
                }
            });
            let hits: Vec<_> = found.iter().filter(|(s, _)| *s >= 400).collect();
            assert!(!hits.is_empty(), "{factor}x not found");
            assert!(hits
                .iter()
                .all(|(s, o)| (430..433).contains(s) && o.entity_id == 1));
            assert!(hits.iter().all(|(_, o)| o.verdict >= verdict), "{hits:?}");
        }
    }

    #[test]
    fn the_biggest_shop_is_not_a_bot_but_its_flood_is() {
        let cfg = PopulationConfig::default();
        let mut big = ShareBaseline::default();
        let mut small = ShareBaseline::default();
        for _ in 0..30 {
            big.learn(600, 1_400, 0.1);
            small.learn(100, 1_900, 0.1);
        }
        let members = |big_events: u64| {
            vec![
                Member {
                    entity_id: 1,
                    events: big_events,
                    expected: big.expected(1_400, 10),
                    excess_before: 0.0,
                },
                Member {
                    entity_id: 2,
                    events: 100,
                    expected: small.expected(1_900 + big_events - 600, 10),
                    excess_before: 0.0,
                },
                Member {
                    entity_id: 3,
                    events: 100,
                    expected: small.expected(1_900 + big_events - 600, 10),
                    excess_before: 0.0,
                },
                Member {
                    entity_id: 4,
                    events: 100,
                    expected: small.expected(1_900 + big_events - 600, 10),
                    excess_before: 0.0,
                },
            ]
        };
        assert!(population_outliers(&members(600), 2_000, &cfg).is_empty());
        let flood = population_outliers(&members(6_000), 7_400, &cfg);
        assert_eq!(flood.len(), 1);
        assert_eq!((flood[0].entity_id, flood[0].verdict), (1, Verdict::Alarm));
        assert!((flood[0].expected - 600.0).abs() < 1e-6, "{flood:?}");
    }

    #[test]
    fn a_step_below_the_gate_or_with_too_few_known_entities_is_not_judged() {
        let cfg = PopulationConfig::default();
        let m = |id, events, expected| Member {
            entity_id: id,
            events,
            expected,
            excess_before: 0.0,
        };
        let members = [
            m(1, 100, Some(1.0)),
            m(2, 1, Some(1.0)),
            m(3, 1, Some(1.0)),
            m(4, 1, None),
        ];
        assert!(population_outliers(&members, 29, &cfg).is_empty());
        assert_eq!(population_outliers(&members, 103, &cfg).len(), 1);
        assert!(population_outliers(&members[..2], 101, &cfg).is_empty());
        let mut baseline = ShareBaseline::default();
        baseline.learn(0, 0, 0.1);
        assert_eq!(
            baseline.expected(100, 0),
            None,
            "a silent label teaches nothing"
        );
    }
}
