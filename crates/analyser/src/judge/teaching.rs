//! Pure: what dismissing an anomaly as expected teaches its series.
//!
//! An analyst who dismisses an anomaly as *expected* (a nightly batch job, a sale) says
//! that its series does this. For `feedback_ttl` afterwards, a new incident of the series
//! whose every alarm is one of the dismissed anomaly's signals again (the same metric, on
//! the same side of what was expected, at most [`TAUGHT_SCALE`] times as far off) is
//! recorded as a warning at most and never notified. Anything larger, on another metric
//! or on the other side still alarms: teaching never hides an anomaly larger than what
//! was taught. Which teachings are in force (series, expiry) is the store's to say; this
//! module only matches signals.

use super::{Incident, Metric, Severity, Signal};

/// A later deviation up to this many times the one dismissed is what was taught.
pub const TAUGHT_SCALE: f64 = 1.5;

/// One signal of an anomaly dismissed as expected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lesson {
    pub metric: Metric,
    /// As the anomaly recorded it: its sign is the side, its size the most it was off.
    pub deviation: f64,
}

/// A teaching in force for a series: the anomaly dismissed as expected and its signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Teaching {
    pub anomaly_id: u64,
    pub lessons: Vec<Lesson>,
}

impl Teaching {
    /// Whether the signal is one this teaching taught: the same metric, the same side, and
    /// at most [`TAUGHT_SCALE`] times as far off.
    pub fn covers(&self, signal: &Signal) -> bool {
        self.lessons.iter().any(|lesson| {
            lesson.metric == signal.metric
                && lesson.deviation.signum() == signal.deviation.signum()
                && signal.deviation.abs() <= TAUGHT_SCALE * lesson.deviation.abs()
        })
    }
}

/// The teaching (the id of the anomaly dismissed) that caps an incident at a warning: the
/// first of `teachings` that covers at least one of its signals and every one of its
/// alarms. `None`: the incident stands as found.
pub fn taught_by(incident: &Incident, teachings: &[Teaching]) -> Option<u64> {
    teachings
        .iter()
        .find(|teaching| {
            incident.signals.iter().any(|s| teaching.covers(s))
                && incident
                    .signals
                    .iter()
                    .filter(|s| s.severity == Severity::Alarm)
                    .all(|s| teaching.covers(s))
        })
        .map(|teaching| teaching.anomaly_id)
}

/// The incident as recorded once a teaching capped it: every signal a warning at most.
pub fn capped(incident: &Incident) -> Incident {
    let mut capped = incident.clone();
    for signal in &mut capped.signals {
        signal.severity = Severity::Warning;
    }
    capped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::Check;

    fn signal(metric: Metric, severity: Severity, deviation: f64) -> Signal {
        Signal {
            metric,
            method: Check::Auto,
            severity,
            observed: 0.0,
            expected: 0.0,
            deviation,
        }
    }

    fn incident(signals: Vec<Signal>) -> Incident {
        Incident {
            id: 9,
            start: 7_200,
            end: 7_800,
            signals,
        }
    }

    /// The batch job's spike, dismissed as expected: 20 scales high on the count, and
    /// the population check fired with it.
    fn batch_job() -> Teaching {
        Teaching {
            anomaly_id: 4,
            lessons: vec![
                Lesson {
                    metric: Metric::Count,
                    deviation: 20.0,
                },
                Lesson {
                    metric: Metric::Population,
                    deviation: 8.0,
                },
            ],
        }
    }

    #[test]
    fn the_same_spike_again_is_taught_up_to_one_and_a_half_times_the_deviation_dismissed() {
        let taught = [batch_job()];
        for deviation in [5.0, 20.0, 29.0, 30.0] {
            let again = incident(vec![signal(Metric::Count, Severity::Alarm, deviation)]);
            assert_eq!(taught_by(&again, &taught), Some(4), "{deviation}");
        }
        for deviation in [30.5, 60.0, 1e6] {
            let larger = incident(vec![signal(Metric::Count, Severity::Alarm, deviation)]);
            assert_eq!(taught_by(&larger, &taught), None, "{deviation}");
        }
    }

    #[test]
    fn a_drop_is_not_taught_by_a_dismissed_spike() {
        let drop = incident(vec![signal(Metric::Count, Severity::Alarm, -20.0)]);
        assert_eq!(taught_by(&drop, &[batch_job()]), None);
    }

    #[test]
    fn another_metric_is_not_taught() {
        let events = incident(vec![signal(Metric::Events, Severity::Alarm, 20.0)]);
        assert_eq!(taught_by(&events, &[batch_job()]), None);
        let price = incident(vec![signal(Metric::Avg, Severity::Alarm, 3.0)]);
        assert_eq!(taught_by(&price, &[batch_job()]), None);
    }

    #[test]
    fn every_alarm_of_the_incident_must_be_taught() {
        // The count is what was taught, but the population now alarms far beyond it.
        let wider = incident(vec![
            signal(Metric::Count, Severity::Alarm, 20.0),
            signal(Metric::Population, Severity::Alarm, 40.0),
        ]);
        assert_eq!(taught_by(&wider, &[batch_job()]), None);
        // A warning on an untaught metric does not stop the cap: it is a warning anyway.
        let with_warning = incident(vec![
            signal(Metric::Count, Severity::Alarm, 20.0),
            signal(Metric::Events, Severity::Warning, 2.5),
        ]);
        assert_eq!(taught_by(&with_warning, &[batch_job()]), Some(4));
        // Nothing of it was taught: no cap, even if nothing alarms.
        let unrelated = incident(vec![signal(Metric::Events, Severity::Warning, 2.5)]);
        assert_eq!(taught_by(&unrelated, &[batch_job()]), None);
    }

    #[test]
    fn the_first_teaching_that_covers_the_incident_names_it() {
        let small = Teaching {
            anomaly_id: 7,
            lessons: vec![Lesson {
                metric: Metric::Count,
                deviation: 10.0,
            }],
        };
        let spike = incident(vec![signal(Metric::Count, Severity::Alarm, 25.0)]);
        assert_eq!(taught_by(&spike, &[small.clone(), batch_job()]), Some(4));
        let modest = incident(vec![signal(Metric::Count, Severity::Alarm, 12.0)]);
        assert_eq!(taught_by(&modest, &[small, batch_job()]), Some(7));
        assert_eq!(taught_by(&modest, &[]), None);
    }

    #[test]
    fn a_capped_incident_is_a_warning_with_its_figures_kept() {
        let spike = incident(vec![
            signal(Metric::Count, Severity::Alarm, 20.0),
            signal(Metric::Population, Severity::Warning, 3.0),
        ]);
        let capped = capped(&spike);
        assert_eq!(capped.severity(), Severity::Warning);
        assert_eq!(capped.top().deviation, 20.0);
        assert_eq!((capped.id, capped.start, capped.end), (9, 7_200, 7_800));
    }
}
