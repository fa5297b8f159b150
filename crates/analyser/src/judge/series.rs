//! Pure: one series' checks at one step, and what the series learns from it.
//!
//! A series is a (label, entity) of a dataset. What it is checked on depends on its label's
//! kind:
//!
//! * a **counter** label (`visit`, `checkout`) gets `count` (the sum of values) and `events`
//!   (the number of events), with the dataset's method, plus the population check (computed
//!   by the dataset, passed in). While every value has been 1, `count` and `events` are the
//!   same series, judged once as `count`; the first other value gives `events` a detector of
//!   its own, cloned from `count`'s (the two have seen the same history).
//! * a **level** label (`price`, the dataset's `levels`) gets `events` and the level checks
//!   `avg`, `min`, `max` on a robust scale with a material-change floor; a sum of prices
//!   means nothing, so no `count` and no population.
//!
//! What an incident teaches is forgotten. While one is in progress (or warnings wait for
//! confirmation) every check judges against what was normal before it: the history window
//! and the share baseline learn no step it covers, and the `auto` checks judge with a copy
//! of the detectors kept from before it. So an incident fires while the series is off its
//! old normal, the return to normal is judged against that normal (not against the flood)
//! and is not news, and on resolution the detectors are the old ones again. The live
//! detectors follow the incident meanwhile: should it last longer than a window, it is the
//! new normal, and the series keeps what they learnt.

use detect::level::{judge_level, LevelMetric, StepTotals};
use detect::population::ShareBaseline;
use detect::sigma::{count_gate_open, judge};
use detect::{AutoDetector, SharedConfig, Verdict};
use serde::{Deserialize, Serialize};

use super::history::History;
use super::incident::{Incidents, Signal, Transition};
use super::{Check, Metric, Params, Severity};
use crate::configuration::Method;

/// What a label carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Level,
}

/// A series' `auto` detectors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Detectors {
    /// Of `count` (counters).
    count: Option<Box<AutoDetector>>,
    /// Of `events` (levels, and counters once a value other than 1 came).
    events: Option<Box<AutoDetector>>,
}

impl Detectors {
    /// Uses `config` instead of each detector's own copy (after a restore).
    fn share_config(&mut self, config: &SharedConfig) {
        for det in [&mut self.count, &mut self.events].into_iter().flatten() {
            det.share(config);
        }
    }

    fn of(&mut self, metric: Metric) -> Option<&mut AutoDetector> {
        match metric {
            Metric::Count => self.count.as_deref_mut(),
            _ => self.events.as_deref_mut(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    /// The last `n` steps the series learnt from.
    history: History,
    /// The `auto` detectors.
    detectors: Detectors,
    /// The detectors as they were before the live (or pending) incident began.
    before_incident: Option<Box<Detectors>>,
    /// Every value so far was 1: `count` and `events` are one series.
    unit: bool,
    /// The entity's usual share of its label's events (counters).
    share: ShareBaseline,
    /// Its population excess at the last judged step (a persistent excess adds up).
    pub excess: f32,
    /// The last step with events, for `series_ttl`.
    pub last_active: i64,
    pub incidents: Incidents,
    /// A hash of the state the last snapshot stored (0: none), so that a snapshot writes
    /// only the series that changed since. Not part of the state itself.
    #[serde(skip)]
    pub snapshot_hash: u64,
}

fn severity(verdict: Verdict) -> Option<Severity> {
    match verdict {
        Verdict::None => None,
        Verdict::Warning => Some(Severity::Warning),
        Verdict::Alarm => Some(Severity::Alarm),
    }
}

fn finding(
    metric: Metric,
    method: Check,
    severity: Severity,
    observed: f64,
    expected: f64,
    deviation: f64,
) -> Signal {
    Signal {
        metric,
        method,
        severity,
        observed,
        expected,
        deviation: if deviation.is_nan() {
            0.0
        } else {
            deviation.clamp(-1e6, 1e6)
        },
    }
}

impl Series {
    pub fn new(params: &Params, kind: Kind, step: i64) -> Self {
        let auto = || Box::new(AutoDetector::with_shared(&params.auto));
        let is_auto = params.method == Method::Auto;
        Series {
            history: History::new(kind, params.window_steps),
            detectors: Detectors {
                count: (is_auto && kind == Kind::Counter).then(auto),
                events: (is_auto && kind == Kind::Level).then(auto),
            },
            before_incident: None,
            unit: kind == Kind::Counter,
            share: ShareBaseline::default(),
            excess: 0.0,
            last_active: step,
            incidents: Incidents::default(),
            snapshot_hash: 0,
        }
    }

    /// Lets the detectors of a restored series share the dataset's `auto` configuration
    /// instead of each holding the copy that came with the snapshot.
    pub fn share_config(&mut self, config: &SharedConfig) {
        self.detectors.share_config(config);
        if let Some(before) = &mut self.before_incident {
            before.share_config(config);
        }
    }

    /// Bytes held for this series: the struct, its history window, its detectors (and those
    /// kept from before an incident) and its incidents. Not the dataset's map entry.
    pub fn state_bytes(&self) -> usize {
        let detectors = |d: &Detectors| {
            [&d.count, &d.events]
                .into_iter()
                .flatten()
                .map(|det| det.state_bytes())
                .sum::<usize>()
        };
        let incident = |i: &Option<Box<super::Incident>>| {
            i.as_deref().map_or(0, |i| {
                std::mem::size_of::<super::Incident>()
                    + i.signals.capacity() * std::mem::size_of::<Signal>()
            })
        };
        std::mem::size_of::<Self>()
            + self.history.heap_bytes()
            + detectors(&self.detectors)
            + self
                .before_incident
                .as_deref()
                .map_or(0, |b| std::mem::size_of::<Detectors>() + detectors(b))
            + incident(&self.incidents.live)
            + incident(self.incidents.pending())
    }

    /// The entity's expected events given the others' events in this step (population).
    pub fn expected_share(&self, others: u64, params: &Params) -> Option<f64> {
        self.share.expected(others, params.population.min_history)
    }

    /// Adds a late delta to an already judged step, if the window still holds it.
    pub fn add_late(&mut self, step: i64, delta: &StepTotals) {
        self.history.add_late(step, delta);
    }

    /// The (sum, events) of the steps the history window holds, oldest first.
    #[cfg(test)]
    pub fn history_sums(&self) -> Vec<(f64, f64)> {
        let sums = self.history.sums();
        sums.into_iter().zip(self.history.events()).collect()
    }

    /// The checks of `[step, end)` with totals `x`; `label_events` is the label's events in
    /// the step, `population` the population check's outcome for this series (`None`: not
    /// judged; `Some(None)`: judged normal).
    #[allow(clippy::too_many_arguments)]
    pub fn judge(
        &mut self,
        kind: Kind,
        step: i64,
        end: i64,
        x: &StepTotals,
        label_events: u64,
        population: Option<Option<Signal>>,
        params: &Params,
    ) -> Transition {
        if kind == Kind::Counter && self.unit && !x.all_ones() {
            self.unit = false;
            self.detectors.events = self.detectors.count.clone();
            if let Some(before) = self.before_incident.as_deref_mut() {
                before.events = before.count.clone();
            }
        }
        let mut findings = Vec::new();
        // The checks that could judge this step, whether they fired or not, and how far off
        // they measured it.
        let mut judged: Vec<(Metric, f64)> = Vec::new();
        let baseline = self.history.events();
        let gate = count_gate_open(&baseline, params.min_count_per_step);
        let mut checks = [(Metric::Count, x.sum), (Metric::Events, x.events as f64)].to_vec();
        if kind == Kind::Level || self.unit {
            checks.retain(|c| {
                c.0 == if self.unit {
                    Metric::Count
                } else {
                    Metric::Events
                }
            });
        }
        // While an incident is in progress the `auto` checks judge with the detectors as
        // they were before it (a copy: they must not learn it), and the live detectors
        // follow along. Otherwise the live detectors judge a copy of themselves, kept aside
        // as the state before the incident if this step begins one.
        let in_progress = self.incidents.in_progress(step);
        let mut next = self.detectors.clone();
        let mut before = self
            .before_incident
            .as_deref()
            .filter(|_| in_progress)
            .cloned();
        for &(metric, value) in &checks {
            if let Some(detector) = next.of(metric) {
                let live_score = detector.update(step, value);
                let score = match before.as_mut().and_then(|b| b.of(metric)) {
                    Some(before) => before.update(step, value),
                    None => live_score,
                };
                if gate {
                    judged.push((metric, score.deviation));
                }
                if let (true, Some(severity)) = (gate, severity(score.verdict)) {
                    findings.push(finding(
                        metric,
                        Check::Auto,
                        severity,
                        value,
                        score.expected,
                        score.deviation,
                    ));
                }
            } else if gate {
                let values: Vec<f64> = match metric {
                    Metric::Count => self.history.sums(),
                    _ => baseline.clone(),
                };
                let method = params.sigma_method();
                if let Some(j) = judge(method, &values, value, params.window_steps, &params.sigma) {
                    judged.push((metric, j.deviation));
                    if let Some(severity) = severity(j.verdict) {
                        findings.push(finding(
                            metric,
                            Check::from(params.method),
                            severity,
                            value,
                            j.mean,
                            j.deviation,
                        ));
                    }
                }
            }
        }
        if kind == Kind::Level {
            let history = self.history.totals();
            for (metric, level) in [
                (Metric::Avg, LevelMetric::Avg),
                (Metric::Min, LevelMetric::Min),
                (Metric::Max, LevelMetric::Max),
            ] {
                let judged_level = judge_level(
                    &history,
                    x,
                    level,
                    params.window_steps,
                    params.min_count_per_step,
                    &params.level,
                );
                if let Some(j) = judged_level {
                    // A level within the material-change floor is not off, however many
                    // (tiny) scales it is from the median.
                    let material =
                        (j.observed - j.mean).abs() >= params.level.min_change * j.mean.abs();
                    judged.push((metric, if material { j.deviation } else { 0.0 }));
                    if let Some(severity) = severity(j.verdict) {
                        findings.push(finding(
                            metric,
                            Check::MedianMad,
                            severity,
                            j.observed,
                            j.mean,
                            j.deviation,
                        ));
                    }
                }
            }
        }
        if let Some(population) = population {
            judged.push((Metric::Population, f64::from(self.excess)));
            findings.extend(population);
        }

        let settle_after = params.window_seconds();
        let has_traffic = x.events > 0;
        let transition = self
            .incidents
            .advance(step, end, findings, &judged, |incident| {
                has_traffic && incident.end - incident.start > settle_after
            });

        let previous = std::mem::replace(&mut self.detectors, next);
        match transition {
            Transition::Pending | Transition::Opened if !in_progress => {
                self.before_incident = Some(Box::new(previous));
            }
            Transition::Pending | Transition::Opened | Transition::Grew => {}
            Transition::Resolved { .. } => {
                // Back to what was normal before the incident, with this (normal) step.
                if let Some(before) = before {
                    self.detectors = before;
                }
                self.before_incident = None;
            }
            Transition::Quiet | Transition::Settled { .. } => self.before_incident = None,
        }
        // The history window and the share baseline learn only steps no incident covers.
        let learn = matches!(
            transition,
            Transition::Quiet | Transition::Resolved { .. } | Transition::Settled { .. }
        );
        if learn {
            self.history.learn(step, x, params.window_steps);
            if kind == Kind::Counter {
                self.share.learn(
                    x.events,
                    label_events.saturating_sub(x.events),
                    params.share_rate(),
                );
            }
        }
        if has_traffic {
            self.last_active = step;
        }
        transition
    }
}
