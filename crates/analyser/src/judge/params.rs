//! A dataset's settings in the form the judging needs, and the rules derived from them.

use std::collections::HashSet;

use detect::level::LevelConfig;
use detect::population::PopulationConfig;
use detect::sigma::{SigmaConfig, SigmaMethod};
use detect::{AutoConfig, SharedConfig};

use super::series::Kind;

use crate::clock::ClockRules;
use crate::configuration::{DatasetSettings, Method};

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

    /// Rate of the exponential means of an entity's share: a memory of about one window.
    pub(super) fn share_rate(&self) -> f64 {
        2.0 / (self.window_steps as f64 + 1.0)
    }
}
