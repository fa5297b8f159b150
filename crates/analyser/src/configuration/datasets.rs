//! A dataset's settings: which series, at which step, judged by which detector.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which detector judges a dataset's count series: the wire vocabulary, so the config
/// file, the datasets API and reports spell it alike.
pub use protocol::Method;

/// One dataset of the product brief: which series, at which step, judged how. Durations
/// are humantime text (`"90s"`, `"1m"`, `"7days"`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetSettings {
    pub name: String,
    /// Labels in the dataset; empty = all.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Entity ids in the dataset; empty = all.
    #[serde(default)]
    pub entities: Vec<i64>,
    #[serde(default = "defaults::time_step", with = "humantime_serde")]
    #[schema(value_type = String, example = "1m")]
    pub time_step: Duration,
    /// The trailing window the baseline is learnt from; default 30 × `time_step`.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "30m")]
    pub time_ago: Option<Duration>,
    #[serde(default = "defaults::method")]
    pub method: Method,
    /// Labels whose values are measurements (prices): judged on `events` and their levels
    /// (`avg`, `min`, `max`), never on sums or the population. The others are counters.
    #[serde(default)]
    pub levels: Vec<String>,
    /// A level anomaly also needs the level to move by this share of the expected level.
    #[serde(default = "defaults::level_min_change")]
    pub level_min_change: f64,
    #[serde(default = "defaults::min_count_per_step")]
    pub min_count_per_step: f64,
    #[serde(default = "defaults::warning_multiplier")]
    pub warning_multiplier: f64,
    #[serde(default = "defaults::alarm_multiplier")]
    pub alarm_multiplier: f64,
    #[serde(default = "defaults::auto_warning_rate")]
    pub auto_warning_rate: f64,
    #[serde(default = "defaults::auto_alarm_rate")]
    pub auto_alarm_rate: f64,
    /// With no new rows for this long, the dataset's clock follows wall time.
    #[serde(default = "defaults::idle_after", with = "humantime_serde")]
    #[schema(value_type = String, example = "30s")]
    pub idle_after: Duration,
    /// A step is judged once the clock passes its end plus this.
    #[serde(default = "defaults::allowed_lateness", with = "humantime_serde")]
    #[schema(value_type = String, example = "10s")]
    pub allowed_lateness: Duration,
    /// A series with no events for this long is forgotten.
    #[serde(default = "defaults::series_ttl", with = "humantime_serde")]
    #[schema(value_type = String, example = "7days")]
    pub series_ttl: Duration,
}

mod defaults {
    use super::Method;
    use std::time::Duration;
    pub fn time_step() -> Duration {
        Duration::from_secs(60)
    }
    pub fn method() -> Method {
        Method::Auto
    }
    pub fn min_count_per_step() -> f64 {
        30.0
    }
    pub fn level_min_change() -> f64 {
        0.25
    }
    pub fn warning_multiplier() -> f64 {
        2.0
    }
    pub fn alarm_multiplier() -> f64 {
        3.0
    }
    pub fn auto_warning_rate() -> f64 {
        1.5e-3
    }
    pub fn auto_alarm_rate() -> f64 {
        2e-4
    }
    pub fn idle_after() -> Duration {
        Duration::from_secs(30)
    }
    pub fn allowed_lateness() -> Duration {
        Duration::from_secs(10)
    }
    pub fn series_ttl() -> Duration {
        Duration::from_secs(7 * 86_400)
    }
}

impl DatasetSettings {
    /// A dataset over every label and entity, with the defaults.
    pub fn all(name: &str) -> Self {
        DatasetSettings {
            name: name.to_owned(),
            labels: Vec::new(),
            entities: Vec::new(),
            time_step: defaults::time_step(),
            time_ago: None,
            method: defaults::method(),
            levels: Vec::new(),
            level_min_change: defaults::level_min_change(),
            min_count_per_step: defaults::min_count_per_step(),
            warning_multiplier: defaults::warning_multiplier(),
            alarm_multiplier: defaults::alarm_multiplier(),
            auto_warning_rate: defaults::auto_warning_rate(),
            auto_alarm_rate: defaults::auto_alarm_rate(),
            idle_after: defaults::idle_after(),
            allowed_lateness: defaults::allowed_lateness(),
            series_ttl: defaults::series_ttl(),
        }
    }

    pub fn step_seconds(&self) -> i64 {
        self.time_step.as_secs() as i64
    }

    pub fn time_ago(&self) -> Duration {
        self.time_ago.unwrap_or(self.time_step * 30)
    }

    /// `n`: steps in the baseline window.
    pub fn window_steps(&self) -> usize {
        (self.time_ago().as_secs() / self.time_step.as_secs().max(1)) as usize
    }
}
