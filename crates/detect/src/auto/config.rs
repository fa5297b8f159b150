//! The detector's settings: the internals' `Tuning`, the rates of `AutoConfig`, and the
//! `SharedConfig` a dataset's detectors share.

use std::sync::Arc;

use crate::context::ContextSettings;
use crate::likelihood::LikelihoodSettings;
use crate::stats::normal_quantile_two_sided;

use super::{SCALE_MARGIN, TAIL_SHARE};

/// The settings of the detector's internals: time scales, memories and one weight, each
/// with a reason that does not depend on any benchmark (docs/DETECT.md, "Settings").
///
/// Not part of the stable interface; `detect-csv --param name=value` sets them by name.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Tuning {
    /// Smoothing rate of the fast level forecaster (0.8: the last value, a fifth smoothed).
    pub fast_alpha: f64,
    /// Smoothing rate of the slow level forecaster (0.05: the level of the last 20 steps).
    pub slow_alpha: f64,
    /// Rate at which a seasonal forecaster's offset follows a level shift (0.1: 10 steps).
    pub offset_alpha: f64,
    /// Rate at which a seasonal profile bin learns, per visit (0.2: the last 5 periods).
    pub season_alpha: f64,
    /// Rate of each forecaster's noise scale (0.01: 100 steps); its accuracy, which picks
    /// the believed forecaster, is averaged over twice as long.
    pub scale_alpha: f64,
    /// Rate of the short mean of `z` that catches a persistent shift (0.25: 4 steps).
    pub short_alpha: f64,
    /// Steps before any score is given; also the weight, in steps, of the Gaussian prior of
    /// the likelihood, and a fifth of the steps after which the contextual grid is frozen.
    pub warmup: f64,
    /// Effective number of steps the likelihood, the range and the contextual calibration
    /// remember.
    pub memory: f64,
    /// Weight of the contextual novelty in the score (not the verdict); 0 turns it off.
    pub context_weight: f64,
    /// After a detection the score is held back until this many calm steps in a row.
    pub calm_steps: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            fast_alpha: 0.8,
            slow_alpha: 0.05,
            offset_alpha: 0.1,
            season_alpha: 0.2,
            scale_alpha: 0.01,
            short_alpha: 0.25,
            warmup: 60.0,
            memory: 20000.0,
            context_weight: 0.5,
            calm_steps: 20.0,
        }
    }
}

impl Tuning {
    pub(super) fn context(&self) -> ContextSettings {
        ContextSettings {
            grid_after: (5.0 * self.warmup).clamp(0.0, 1e9) as u32,
            start: self.warmup.clamp(0.0, 1e9) as u32,
            memory: self.memory,
        }
    }

    /// Sets a setting by name; `false` for an unknown name.
    pub fn set(&mut self, name: &str, value: f64) -> bool {
        let slot = match name {
            "fast_alpha" => &mut self.fast_alpha,
            "slow_alpha" => &mut self.slow_alpha,
            "offset_alpha" => &mut self.offset_alpha,
            "season_alpha" => &mut self.season_alpha,
            "scale_alpha" => &mut self.scale_alpha,
            "short_alpha" => &mut self.short_alpha,
            "warmup" => &mut self.warmup,
            "memory" => &mut self.memory,
            "context_weight" => &mut self.context_weight,
            "calm_steps" => &mut self.calm_steps,
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// Settings of the `auto` method.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AutoConfig {
    /// Share of judged steps of normal data that may raise a warning (default 1.5e-3).
    pub warning_rate: f64,
    /// Share of judged steps of normal data that may raise an alarm (default 2e-4).
    pub alarm_rate: f64,
    #[doc(hidden)]
    pub tuning: Tuning,
}

impl Default for AutoConfig {
    fn default() -> Self {
        AutoConfig {
            warning_rate: 1.5e-3,
            alarm_rate: 2e-4,
            tuning: Tuning::default(),
        }
    }
}

impl AutoConfig {
    /// The defaults with a dataset's `auto_warning_rate` / `auto_alarm_rate`.
    pub fn with_rates(warning_rate: f64, alarm_rate: f64) -> Self {
        AutoConfig {
            warning_rate,
            alarm_rate,
            ..AutoConfig::default()
        }
    }

    /// For a caller that reads only the verdict, `expected` and `deviation` of each
    /// [`crate::Score`], not its `score`: the same configuration without the
    /// contextual channel, which feeds the score alone. The verdicts, expectations and
    /// deviations are those of `self`, step for step; each series saves the channel's
    /// set of seen contexts (1 KB).
    pub fn for_verdicts(mut self) -> Self {
        self.tuning.context_weight = 0.0;
        self
    }
}

/// An [`AutoConfig`] shared by many detectors (one per series of a dataset), with what
/// follows from it: a series' state then holds a pointer to it, not a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedConfig(pub(super) Arc<Shared>);

impl SharedConfig {
    /// Shares `config`.
    pub fn new(config: AutoConfig) -> Self {
        SharedConfig(Arc::new(Shared::new(config)))
    }

    /// The configuration.
    pub fn config(&self) -> &AutoConfig {
        &self.0.config
    }
}

/// The configuration and the constants derived from it once.
#[derive(Debug, PartialEq)]
pub(super) struct Shared {
    pub(super) config: AutoConfig,
    /// `-log10` of the warning and alarm rates: the calibrated surprise needed for each.
    pub(super) thresholds: (f64, f64),
    /// `z` the believed forecaster must reach for a warning / an alarm (from the rates).
    pub(super) floors: (f64, f64),
    pub(super) likelihood: LikelihoodSettings,
    pub(super) context: ContextSettings,
}

impl Shared {
    pub(super) fn new(config: AutoConfig) -> Self {
        let w = -config.warning_rate.clamp(1e-300, 1.0).log10();
        let a = -config.alarm_rate.clamp(1e-300, 1.0).log10();
        // A verdict also needs a deviation that Gaussian noise reaches at most at the
        // verdict's own rate: what is rare for this series but ordinary for noise (a first
        // evening's new low while the daily profile is unlearnt, a lagging forecaster's run
        // of small residuals) is not reported.
        let floors = (
            SCALE_MARGIN * normal_quantile_two_sided(config.warning_rate),
            SCALE_MARGIN * normal_quantile_two_sided(config.alarm_rate),
        );
        let t = &config.tuning;
        Shared {
            thresholds: (w, a.max(w)),
            floors,
            likelihood: LikelihoodSettings::new(t.memory, t.warmup, TAIL_SHARE),
            context: t.context(),
            config,
        }
    }
}

#[cfg(feature = "serde")]
pub(super) mod shared_serde {
    //! The shared configuration is written as the [`AutoConfig`] it was made from; a
    //! restored detector gets a copy of its own until [`crate::auto::AutoDetector::share`].
    use super::{Arc, AutoConfig, Shared};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(shared: &Arc<Shared>, s: S) -> Result<S::Ok, S::Error> {
        shared.config.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Shared>, D::Error> {
        Ok(Arc::new(Shared::new(AutoConfig::deserialize(d)?)))
    }
}
