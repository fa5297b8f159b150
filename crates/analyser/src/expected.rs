//! Pure: what the checks considered normal at each step of a series, for charts.
//!
//! The analyser does not store an expectation per step (that would double its writes);
//! a chart asks for it and it is recomputed here from the stored step totals with the
//! dataset's own checks, the way the judging saw them: steps an incident covered are
//! judged but not learnt, so during a flood the band stays where normal was. For `auto` a
//! fresh detector is warmed up on the steps before the chart (the live one has a longer
//! memory, so the two agree closely, not bit for bit); the windowed methods and the level
//! checks are exact.
//!
//! The band is the range in which the check raises nothing: for counts, the expectation
//! plus or minus three noise units (`auto`) or `warning_multiplier` sample deviations (the
//! windowed methods); for levels, the median plus or minus the larger of the material
//! change and `warning_multiplier` robust scales.

use detect::level::{judge_level, LevelMetric, StepTotals};
use detect::sigma::{judge, mean_and_sample_sd};
use detect::AutoDetector;

use crate::configuration::Method;
use crate::judge::{Metric, Params};

/// What was expected at one step, and the range around it that raised nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub expected: f64,
    pub low: f64,
    pub high: f64,
}

/// Noise units either side of an `auto` expectation that the band spans.
const AUTO_BAND: f64 = 3.0;

/// One step of a series as the chart gets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartStep {
    pub start: i64,
    pub totals: StepTotals,
    /// An incident of the series covered this step: it was judged, not learnt.
    pub held: bool,
}

fn value(metric: Metric, t: &StepTotals) -> Option<f64> {
    match metric {
        Metric::Count => Some(t.sum),
        Metric::Events => Some(t.events as f64),
        Metric::Avg => t.level(LevelMetric::Avg),
        Metric::Min => t.level(LevelMetric::Min),
        Metric::Max => t.level(LevelMetric::Max),
        Metric::Population => None,
    }
}

/// The value of `metric` at each step (`None` for a level without events).
pub fn values(metric: Metric, steps: &[ChartStep]) -> Vec<Option<f64>> {
    steps.iter().map(|s| value(metric, &s.totals)).collect()
}

/// The band of `metric` at each step of `steps` (dense, oldest first, zeros included);
/// the first steps warm the checks up and get bands too, less reliable ones.
pub fn bands(params: &Params, metric: Metric, steps: &[ChartStep]) -> Vec<Option<Band>> {
    match metric {
        Metric::Count | Metric::Events if params.method == Method::Auto => {
            auto_bands(params, metric, steps)
        }
        Metric::Count | Metric::Events => window_bands(params, metric, steps),
        Metric::Avg | Metric::Min | Metric::Max => level_bands(params, metric, steps),
        Metric::Population => vec![None; steps.len()],
    }
}

fn auto_bands(params: &Params, metric: Metric, steps: &[ChartStep]) -> Vec<Option<Band>> {
    let mut detector = AutoDetector::with_shared(&params.auto);
    let mut scale: Option<f64> = None;
    steps
        .iter()
        .map(|step| {
            let x = value(metric, &step.totals).unwrap_or(0.0);
            let score = if step.held {
                detector.clone().update(step.start, x)
            } else {
                detector.update(step.start, x)
            };
            // The detector reports how far x is in its noise units; its scale is the ratio
            // whenever x is far enough off for the ratio to be meaningful.
            if score.deviation.abs() >= 0.5 && score.deviation.is_finite() {
                let s = (x - score.expected).abs() / score.deviation.abs();
                if s.is_finite() && s > 0.0 {
                    scale = Some(s);
                }
            }
            let s = scale?;
            let low = score.expected - AUTO_BAND * s;
            Some(Band {
                expected: score.expected,
                low: if low < 0.0 { 0.0 } else { low },
                high: score.expected + AUTO_BAND * s,
            })
        })
        .collect()
}

fn window_bands(params: &Params, metric: Metric, steps: &[ChartStep]) -> Vec<Option<Band>> {
    let mut learnt: Vec<f64> = Vec::new();
    let n = params.window_steps;
    steps
        .iter()
        .map(|step| {
            let x = value(metric, &step.totals).unwrap_or(0.0);
            let window = &learnt[learnt.len().saturating_sub(n)..];
            let band = judge(params.sigma_method(), window, x, n, &params.sigma).and_then(|_| {
                let (mean, sd) = mean_and_sample_sd(window)?;
                let half = params.sigma.warning_multiplier * sd;
                Some(Band {
                    expected: mean,
                    low: (mean - half).max(0.0),
                    high: mean + half,
                })
            });
            if !step.held {
                learnt.push(x);
            }
            band
        })
        .collect()
}

fn level_bands(params: &Params, metric: Metric, steps: &[ChartStep]) -> Vec<Option<Band>> {
    let level = match metric {
        Metric::Min => LevelMetric::Min,
        Metric::Max => LevelMetric::Max,
        _ => LevelMetric::Avg,
    };
    let mut learnt: Vec<StepTotals> = Vec::new();
    steps
        .iter()
        .map(|step| {
            // Judged as a well-filled step at the median, to read the window's median and
            // scale whatever this step holds.
            let probe = StepTotals {
                events: u64::MAX,
                ..step.totals
            };
            let band = judge_level(
                &learnt,
                &probe,
                level,
                params.window_steps,
                params.min_count_per_step,
                &params.level,
            )
            .map(|j| {
                let half = (params.level.min_change * j.mean.abs())
                    .max(params.sigma.warning_multiplier * j.sd);
                Band {
                    expected: j.mean,
                    low: j.mean - half,
                    high: j.mean + half,
                }
            });
            if !step.held {
                learnt.push(step.totals);
            }
            band
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::DatasetSettings;
    use std::time::Duration;

    fn params(method: Method) -> Params {
        Params::from_settings(&DatasetSettings {
            time_step: Duration::from_secs(60),
            time_ago: Some(Duration::from_secs(600)),
            method,
            min_count_per_step: 10.0,
            ..DatasetSettings::all("test")
        })
    }

    fn steps(values: impl Iterator<Item = (u64, f64, bool)>) -> Vec<ChartStep> {
        values
            .enumerate()
            .map(|(i, (events, price, held))| ChartStep {
                start: 1_790_000_000 + i as i64 * 60,
                totals: StepTotals {
                    sum: events as f64 * price,
                    events,
                    min: price,
                    max: price,
                },
                held,
            })
            .collect()
    }

    #[test]
    fn during_an_incident_the_band_stays_where_normal_was() {
        let mut rng = detect::synth::Rng::new(3);
        for method in [Method::Auto, Method::LastPoint] {
            let flood = 200..205;
            let data = steps((0..220).map(|i| {
                let held = flood.contains(&i);
                (if held { 600 } else { 50 + rng.poisson(10.0) }, 1.0, held)
            }));
            let bands = bands(&params(method), Metric::Count, &data);
            for i in flood.clone().chain([210]) {
                let band = bands[i].unwrap_or_else(|| panic!("{method:?}: no band at {i}"));
                assert!(
                    band.low < 60.0 && band.high < 120.0 && (50.0..75.0).contains(&band.expected),
                    "{method:?} at {i}: {band:?}"
                );
            }
            // The flood is outside the band; the ordinary steps are (mostly) inside it.
            assert!(bands[202].unwrap().high < 600.0);
            let inside = (100..200)
                .filter(|&i| {
                    let b = bands[i].unwrap();
                    let x = data[i].totals.sum;
                    b.low <= x && x <= b.high
                })
                .count();
            assert!(
                inside >= 90,
                "{method:?}: {inside} of 100 ordinary steps in the band"
            );
        }
    }

    #[test]
    fn a_level_band_is_the_material_change_around_the_median() {
        let data = steps((0..40).map(|i| {
            (
                50,
                if i == 35 {
                    20.0
                } else {
                    2_000.0 + (i % 3) as f64
                },
                i == 35,
            )
        }));
        let bands = bands(&params(Method::Auto), Metric::Avg, &data);
        let band = bands[36].unwrap();
        assert_eq!(band.expected, 2_001.0);
        assert!(
            (band.low - 2_001.0 * 0.75).abs() < 1e-6 && (band.high - 2_001.0 * 1.25).abs() < 1e-6,
            "{band:?}"
        );
        assert!(bands[0].is_none(), "no history, no band");
        assert_eq!(values(Metric::Avg, &data)[35], Some(20.0));
    }
}
