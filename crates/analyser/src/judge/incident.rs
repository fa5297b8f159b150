//! Pure: incidents, the records an analyst sees. The checks that fire on one series in
//! overlapping periods are one incident; each check that fired is one of its [`Signal`]s,
//! holding its most extreme step and what was expected *before* the incident began.
//!
//! * An alarm opens an incident at once; warnings open one only when the step after them
//!   fires too (then from the first warning on): a lone step of modest surprise is what
//!   noise does now and then, while an analyst wants what lasts. (The checks add up a
//!   persistent excess over consecutive steps, so a modest anomaly that lasts fires on each.)
//! * While it fires, its series' checks judge against what was normal before it (see
//!   `series.rs`), so it is `firing` while they keep firing, or measure its series still
//!   [`CONTINUE_AT`] scales off on the incident's side (an anomaly that ebbs a little is not
//!   over), and `resolved` at the first step that is back within that: the way back is
//!   not news. A step none of its checks could judge (too few events for a level) keeps it
//!   firing.
//! * One that lasts longer than a baseline window while the series has traffic is the new
//!   normal: it resolves ([`Transition::Settled`]) and the series keeps what it learnt.

use serde::{Deserialize, Serialize};

use super::{Check, Metric, Severity};

/// One check's view of an incident: the most extreme step it saw, against what was
/// expected before the incident began.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub metric: Metric,
    pub method: Check,
    pub severity: Severity,
    pub observed: f64,
    pub expected: f64,
    /// Finite: clamped to +-1e6.
    pub deviation: f64,
}

/// An incident of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The store's id; 0 until it has one.
    pub id: u64,
    pub start: i64,
    /// End of the last step it covers.
    pub end: i64,
    /// One per metric, in metric order.
    pub signals: Vec<Signal>,
}

/// An incident continues while one of its checks still measures its series this many
/// scales off on the incident's side (the warning level of the windowed methods).
pub const CONTINUE_AT: f64 = 2.0;

/// An alarm this many noise units off opens an incident at once; a weaker one waits for
/// the next step, as warnings do.
pub const DECISIVE: f64 = 6.0;

/// What a step did to a series' incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing fired and nothing was firing.
    Quiet,
    /// Warnings wait for the next step to confirm them.
    Pending,
    Opened,
    /// It covers this step too (its signals may have changed).
    Grew,
    /// The incident `id` ended at the start of this step: the series is back to normal.
    Resolved {
        id: u64,
    },
    /// The incident `id` lasted longer than a baseline window: it ended at the start of
    /// this step, and its level is the new normal.
    Settled {
        id: u64,
    },
}

impl Incident {
    fn new(start: i64, end: i64, findings: Vec<Signal>) -> Self {
        let mut incident = Incident {
            id: 0,
            start,
            end,
            signals: Vec::with_capacity(findings.len()),
        };
        for finding in findings {
            incident.absorb(finding);
        }
        incident
    }

    /// The strongest signal: the worst severity, then the first metric in [`Metric`]'s
    /// order (counts before levels before the population).
    pub fn top(&self) -> &Signal {
        self.signals
            .iter()
            .rev()
            .max_by_key(|s| s.severity)
            .unwrap_or_else(|| unreachable!("an incident has at least one signal"))
    }

    pub fn severity(&self) -> Severity {
        self.top().severity
    }

    /// Adds a finding: a new signal, or the same check's signal grown to its worst
    /// severity and most extreme step on its side (its expectation stays the one from
    /// before the incident).
    fn absorb(&mut self, finding: Signal) {
        match self.signals.iter_mut().find(|s| s.metric == finding.metric) {
            Some(signal) => {
                signal.severity = signal.severity.max(finding.severity);
                if finding.deviation.signum() == signal.deviation.signum()
                    && finding.deviation.abs() > signal.deviation.abs()
                {
                    signal.observed = finding.observed;
                    signal.deviation = finding.deviation;
                }
            }
            None => {
                self.signals.push(finding);
                self.signals.sort_by_key(|s| s.metric);
            }
        }
    }
}

/// A series' incident state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Incidents {
    /// The firing incident, if any.
    pub live: Option<Box<Incident>>,
    /// Warnings of the last step, waiting for the next step to confirm them.
    pending: Option<Box<Incident>>,
}

impl Incidents {
    /// Warnings waiting for confirmation, if any.
    pub fn pending(&self) -> &Option<Box<Incident>> {
        &self.pending
    }

    /// Whether an incident, or warnings waiting for confirmation, cover the step before
    /// `step`: the series' checks then judge against what was normal before them.
    pub fn in_progress(&self, step: i64) -> bool {
        self.live.as_ref().is_some_and(|i| i.end == step)
            || self.pending.as_ref().is_some_and(|p| p.end == step)
    }

    /// Advances the state by the step `[step, end)` with the checks' `findings`. `judged`
    /// lists the checks that could judge the step at all (a level needs enough events) and
    /// the deviation each measured; `settle` says whether an incident that lasted this long
    /// is the new normal.
    pub fn advance(
        &mut self,
        step: i64,
        end: i64,
        findings: Vec<Signal>,
        judged: &[(Metric, f64)],
        settle: impl Fn(&Incident) -> bool,
    ) -> Transition {
        if let Some(incident) = self.live.as_deref_mut().filter(|i| i.end == step) {
            let id = incident.id;
            let measured = |signal: &Signal| {
                judged
                    .iter()
                    .find(|(metric, _)| *metric == signal.metric)
                    .map(|&(_, d)| d)
            };
            // Resolved only when one of its checks judged the step: a step none of them
            // could judge says nothing.
            let unknown = !incident.signals.iter().any(|s| measured(s).is_some());
            let still_off = incident.signals.iter().any(|s| {
                measured(s)
                    .is_some_and(|d| d.signum() == s.deviation.signum() && d.abs() >= CONTINUE_AT)
            });
            let continues = !findings.is_empty() || unknown || still_off;
            if continues && settle(incident) {
                self.live = None;
                return Transition::Settled { id };
            }
            if !continues {
                self.live = None;
                return Transition::Resolved { id };
            }
            for finding in findings {
                incident.absorb(finding);
            }
            incident.end = end;
            return Transition::Grew;
        }
        self.live = None;
        let pending = self.pending.take().filter(|p| p.end == step);
        if findings.is_empty() {
            return Transition::Quiet;
        }
        match pending {
            Some(mut confirmed) => {
                for finding in findings {
                    confirmed.absorb(finding);
                }
                confirmed.end = end;
                self.live = Some(confirmed);
                Transition::Opened
            }
            None if findings
                .iter()
                .any(|f| f.severity == Severity::Alarm && f.deviation.abs() >= DECISIVE) =>
            {
                self.live = Some(Box::new(Incident::new(step, end, findings)));
                Transition::Opened
            }
            None => {
                self.pending = Some(Box::new(Incident::new(step, end, findings)));
                Transition::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every check judged the step normal.
    const ALL: &[(Metric, f64)] = &[
        (Metric::Count, 0.0),
        (Metric::Events, 0.0),
        (Metric::Avg, 0.0),
        (Metric::Min, 0.0),
        (Metric::Max, 0.0),
        (Metric::Population, 0.0),
    ];

    fn signal(
        metric: Metric,
        severity: Severity,
        observed: f64,
        expected: f64,
        deviation: f64,
    ) -> Signal {
        Signal {
            metric,
            method: Check::Auto,
            severity,
            observed,
            expected,
            deviation,
        }
    }

    /// A count of `x` against 60 expected with a scale of 8.
    fn count(x: f64, severity: Severity) -> Vec<Signal> {
        vec![signal(Metric::Count, severity, x, 60.0, (x - 60.0) / 8.0)]
    }

    fn flood(x: f64) -> Vec<Signal> {
        let mut found = count(x, Severity::Alarm);
        found.push(signal(Metric::Population, Severity::Warning, x, 60.0, 5.0));
        found
    }

    /// Steps of one minute, a window of ten.
    fn step(state: &mut Incidents, i: i64, findings: Vec<Signal>) -> Transition {
        state.advance(i * 60, i * 60 + 60, findings, ALL, |inc| {
            inc.end - inc.start > 600
        })
    }

    #[test]
    fn checks_firing_together_are_one_incident_with_the_strongest_signal_on_top() {
        let mut state = Incidents::default();
        assert_eq!(step(&mut state, 0, flood(600.0)), Transition::Opened);
        let incident = state.live.as_deref().unwrap();
        assert_eq!(incident.signals.len(), 2);
        assert_eq!(incident.top().metric, Metric::Count);
        assert_eq!(incident.severity(), Severity::Alarm);
        // A warning-only signal never outranks an alarm, whatever its metric.
        let mut mixed = Incident::new(
            0,
            60,
            vec![
                signal(Metric::Population, Severity::Alarm, 1.0, 0.0, 9.0),
                signal(Metric::Count, Severity::Warning, 1.0, 0.0, 3.0),
            ],
        );
        assert_eq!(mixed.top().metric, Metric::Population);
        mixed.absorb(signal(Metric::Count, Severity::Alarm, 2.0, 0.0, 6.0));
        assert_eq!(mixed.top().metric, Metric::Count);
    }

    #[test]
    fn an_incident_grows_while_it_fires_and_resolves_at_the_first_normal_step() {
        let mut state = Incidents::default();
        step(&mut state, 0, flood(600.0));
        state.live.as_deref_mut().unwrap().id = 7;
        assert_eq!(step(&mut state, 1, flood(900.0)), Transition::Grew);
        // A step on the other side does not turn the signal around.
        assert_eq!(
            step(&mut state, 2, count(0.0, Severity::Alarm)),
            Transition::Grew
        );
        let incident = state.live.as_deref().unwrap();
        assert_eq!((incident.start, incident.end), (0, 180));
        assert_eq!(incident.top().observed, 900.0, "the most extreme step");
        assert_eq!(
            incident.top().expected,
            60.0,
            "the pre-incident expectation"
        );
        // Nothing fires, but the count is still measured 3 scales high: not over yet.
        let still = [(Metric::Count, 3.0)];
        assert_eq!(
            state.advance(180, 240, vec![], &still, |_| false),
            Transition::Grew
        );
        // Measured 3 scales *low*: that is not the flood going on.
        let low = [(Metric::Count, -3.0)];
        assert_eq!(
            state.advance(240, 300, vec![], &low, |_| false),
            Transition::Resolved { id: 7 }
        );
        assert!(state.live.is_none());
        assert_eq!(step(&mut state, 5, vec![]), Transition::Quiet);
    }

    #[test]
    fn an_incident_longer_than_a_window_settles_as_the_new_normal() {
        let mut state = Incidents::default();
        step(&mut state, 0, count(200.0, Severity::Alarm));
        for i in 1..=10 {
            assert_eq!(
                step(&mut state, i, count(200.0, Severity::Alarm)),
                Transition::Grew,
                "step {i}"
            );
        }
        // Eleven minutes at the new level, more than the ten-minute window here.
        assert_eq!(
            step(&mut state, 11, count(200.0, Severity::Alarm)),
            Transition::Settled { id: 0 }
        );
        assert!(state.live.is_none());
    }

    #[test]
    fn a_warning_opens_an_incident_only_when_the_next_step_fires_too() {
        let warn = || count(85.0, Severity::Warning);
        let mut state = Incidents::default();
        assert_eq!(step(&mut state, 0, warn()), Transition::Pending);
        assert!(state.in_progress(60));
        assert_eq!(step(&mut state, 1, vec![]), Transition::Quiet);
        assert!(state.live.is_none(), "a lone warning is noise");
        assert_eq!(step(&mut state, 2, warn()), Transition::Pending);
        assert_eq!(step(&mut state, 3, warn()), Transition::Opened);
        let incident = state.live.as_deref().unwrap();
        assert_eq!(
            (incident.start, incident.end),
            (120, 240),
            "from the first warning on"
        );
        // An alarm needs no confirmation.
        let mut state = Incidents::default();
        assert_eq!(step(&mut state, 0, flood(600.0)), Transition::Opened);
    }

    #[test]
    fn a_step_its_checks_cannot_judge_does_not_resolve_an_incident() {
        let typo = || vec![signal(Metric::Avg, Severity::Alarm, 20.0, 2_000.0, -90.0)];
        let mut state = Incidents::default();
        step(&mut state, 0, typo());
        // Too few prices for a level: the count of events was judged, the level was not.
        let t = state.advance(60, 120, vec![], &[(Metric::Events, 0.0)], |_| false);
        assert_eq!(t, Transition::Grew);
        assert_eq!(step(&mut state, 2, typo()), Transition::Grew);
        assert_eq!(step(&mut state, 3, vec![]), Transition::Resolved { id: 0 });
    }

    #[test]
    fn a_gap_in_the_incident_closes_it_and_the_next_finding_opens_a_new_one() {
        let mut state = Incidents::default();
        step(&mut state, 0, flood(600.0));
        // The series was not judged at step 1 (forgotten and seen again): stale.
        assert_eq!(step(&mut state, 2, flood(600.0)), Transition::Opened);
        assert_eq!(state.live.as_deref().unwrap().start, 120);
    }
}
