//! A dataset's settings in the form the judging needs, and the rules derived from them.

use std::collections::HashSet;

use detect::level::LevelConfig;
use detect::population::PopulationConfig;
use detect::sigma::{SigmaConfig, SigmaMethod};
use detect::{AutoConfig, SharedConfig};

use super::series::Kind;

use crate::clock::ClockRules;
use crate::configuration::{DatasetSettings, Method};

/// Stored step totals replayed into the detectors by a rebuild without a snapshot, in
/// baseline windows.
const REPLAY_WINDOWS: i64 = 4;
/// Step totals are kept for this many baseline windows of judged time (charts, restarts).
const KEEP_WINDOWS: i64 = 8;
/// Detector state is snapshotted at least every this many baseline windows of judged time.
const SNAPSHOT_WINDOWS: i64 = 4;

/// A dataset's settings in the form the judging needs.
#[derive(Debug, Clone)]
pub struct Params {
    pub rules: ClockRules,
    /// The baseline window, `time_ago / time_step` steps.
    pub window_steps: usize,
    pub method: Method,
    pub sigma: SigmaConfig,
    pub level: LevelConfig,
    /// One configuration for every series' `auto` detectors (not a copy per series).
    pub auto: SharedConfig,
    pub population: PopulationConfig,
    pub min_count_per_step: f64,
    pub series_ttl: i64,
    pub labels: HashSet<String>,
    pub levels: HashSet<String>,
    pub entities: HashSet<i64>,
}

impl Params {
    pub fn from_settings(d: &DatasetSettings) -> Self {
        Params {
            rules: ClockRules {
                step: d.step_seconds(),
                idle_after: d.idle_after.as_secs() as i64,
                allowed_lateness: d.allowed_lateness.as_secs() as i64,
            },
            window_steps: d.window_steps(),
            method: d.method,
            sigma: SigmaConfig {
                warning_multiplier: d.warning_multiplier,
                alarm_multiplier: d.alarm_multiplier,
            },
            level: LevelConfig {
                warning_multiplier: d.warning_multiplier,
                alarm_multiplier: d.alarm_multiplier,
                min_change: d.level_min_change,
                ..LevelConfig::default()
            },
            // The analyser reads verdicts, never the benchmark's score: no contextual
            // channel (1 KB a detector).
            auto: SharedConfig::new(
                AutoConfig::with_rates(d.auto_warning_rate, d.auto_alarm_rate).for_verdicts(),
            ),
            population: PopulationConfig {
                min_count_per_step: d.min_count_per_step,
                ..PopulationConfig::default()
            },
            min_count_per_step: d.min_count_per_step,
            series_ttl: d.series_ttl.as_secs() as i64,
            labels: d.labels.iter().cloned().collect(),
            levels: d.levels.iter().cloned().collect(),
            entities: d.entities.iter().copied().collect(),
        }
    }

    /// Whether a row of this label and entity belongs to the dataset.
    pub fn selects(&self, label: &str, entity_id: i64) -> bool {
        (self.labels.is_empty() || self.labels.contains(label))
            && (self.entities.is_empty() || self.entities.contains(&entity_id))
    }

    /// Whether `label` carries measurements (judged on its levels) rather than counts.
    pub fn is_level(&self, label: &str) -> bool {
        self.levels.contains(label)
    }

    pub(super) fn kind(&self, label: &str) -> Kind {
        if self.levels.contains(label) {
            Kind::Level
        } else {
            Kind::Counter
        }
    }

    /// The windowed method of the count checks unless `auto`.
    pub fn sigma_method(&self) -> SigmaMethod {
        match self.method {
            Method::ThreeSigma => SigmaMethod::ThreeSigma,
            Method::LastPoint | Method::Auto => SigmaMethod::LastPoint,
        }
    }

    /// The baseline window, in seconds.
    pub fn window_seconds(&self) -> i64 {
        self.window_steps as i64 * self.rules.step
    }

    /// Where a rebuild without a snapshot starts replaying the stored totals into the
    /// detectors, judging having reached `judged_until`.
    pub fn replay_from(&self, judged_until: i64) -> i64 {
        judged_until - REPLAY_WINDOWS * self.window_seconds()
    }

    /// The first step whose totals must be kept: a few windows of judged time, and never
    /// those a restart replays from the last snapshot (taken at `snapshot_until`).
    pub fn keep_from(&self, judged_until: i64, snapshot_until: Option<i64>) -> i64 {
        let keep = judged_until - KEEP_WINDOWS * self.window_seconds();
        snapshot_until.map_or(keep, |snapshot| snapshot.min(keep))
    }

    /// Whether the detector state is due a snapshot, judging having reached
    /// `judged_until`: at least every few windows of judged time (retention keeps the
    /// totals since), and every window once `a_minute_ago` the last one was taken. During a
    /// catch-up (`caught_up` false) the minute rule waits for its end: a snapshot of every
    /// series each minute of a long backlog would be most of what is written.
    pub fn snapshot_due(
        &self,
        judged_until: i64,
        snapshot_until: Option<i64>,
        a_minute_ago: bool,
        caught_up: bool,
    ) -> bool {
        let since = snapshot_until.map_or(i64::MAX, |s| judged_until.saturating_sub(s));
        let window = self.window_seconds();
        since >= SNAPSHOT_WINDOWS * window || (since >= window && a_minute_ago && caught_up)
    }

    /// Rate of the exponential means of an entity's share: a memory of about one window.
    pub(super) fn share_rate(&self) -> f64 {
        2.0 / (self.window_steps as f64 + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Steps of a minute, a baseline window of 30 minutes.
    fn params() -> Params {
        Params::from_settings(&DatasetSettings {
            time_step: Duration::from_secs(60),
            time_ago: Some(Duration::from_secs(1_800)),
            ..DatasetSettings::all("shop")
        })
    }

    const JUDGED: i64 = 1_790_035_200;
    const WINDOW: i64 = 1_800;

    #[test]
    fn the_window_is_its_steps_times_the_step() {
        assert_eq!(params().window_seconds(), WINDOW);
    }

    #[test]
    fn a_rebuild_without_a_snapshot_replays_four_windows() {
        assert_eq!(params().replay_from(JUDGED), JUDGED - 4 * WINDOW);
    }

    #[test]
    fn totals_are_kept_eight_windows_and_never_those_since_the_snapshot() {
        let p = params();
        assert_eq!(p.keep_from(JUDGED, None), JUDGED - 8 * WINDOW);
        assert_eq!(
            p.keep_from(JUDGED, Some(JUDGED - WINDOW)),
            JUDGED - 8 * WINDOW
        );
        let old = JUDGED - 9 * WINDOW;
        assert_eq!(p.keep_from(JUDGED, Some(old)), old);
    }

    #[test]
    fn a_first_snapshot_is_due_at_once() {
        assert!(params().snapshot_due(JUDGED, None, false, false));
    }

    #[test]
    fn a_snapshot_is_due_every_four_windows_of_judged_time_even_mid_catch_up() {
        let p = params();
        assert!(p.snapshot_due(JUDGED, Some(JUDGED - 4 * WINDOW), false, false));
        assert!(!p.snapshot_due(JUDGED, Some(JUDGED - 4 * WINDOW + 60), false, false));
    }

    #[test]
    fn a_snapshot_is_due_every_window_after_a_minute_once_caught_up() {
        let p = params();
        let last = Some(JUDGED - WINDOW);
        assert!(p.snapshot_due(JUDGED, last, true, true));
        assert!(
            !p.snapshot_due(JUDGED, last, false, true),
            "within the minute"
        );
        assert!(
            !p.snapshot_due(JUDGED, last, true, false),
            "during a catch-up"
        );
        let recent = Some(JUDGED - WINDOW + 60);
        assert!(
            !p.snapshot_due(JUDGED, recent, true, true),
            "within a window"
        );
    }
}
