//! `auto`: the streaming detector of the analyser.
//!
//! One [`AutoDetector`] per series; [`AutoDetector::update`] takes each step's timestamp and
//! value in time order and returns a [`Score`] at once (causal, one pass, at most 2 500
//! bytes of state whatever the series' length; the configuration is a [`SharedConfig`]
//! that a dataset's detectors share). How it works, in short (the
//! long version is `docs/DETECT.md`):
//!
//! 1. **Forecasts.** Several forecasters run side by side: a fast and a slow robust level
//!    (exponential smoothing on winsorised errors), and a seasonal model with a daily
//!    profile plus a short-term offset (phase from the timestamp, so gaps do not shift it).
//!    Each tracks its own robust error scale and its recent accuracy; the most accurate
//!    ready forecaster is the one believed.
//!    Counts (non-negative integers) are measured in units of `sqrt(expected)`, so the
//!    busy hours of a daily rhythm do not look noisier than the quiet ones.
//! 2. **Deviation.** The residual is standardised (`z`); a short exponential mean of `z`
//!    (a persistent shift adds up before any single step is extreme) competes with it.
//! 3. **Likelihood.** That deviation is turned into a tail probability against the series'
//!    own history of deviations *on the same side* of the forecast ([`crate::likelihood`]:
//!    decayed histogram plus a fitted exponential tail, one for deviations above and one
//!    for deviations below), so a heavy-tailed series does not alarm more often than a tame
//!    one, one threshold fits every series, and a CPU series whose spikes go up is still
//!    surprised by a dip. When a seasonal forecaster takes over, the history judged by the
//!    worse one is mostly forgotten.
//! 4. **New territory.** A value beyond the (slowly forgetting) range seen so far, by a
//!    good share of the range and by more than the noise, is surprising however noisy the
//!    series is inside its range: a record among `n` steps has probability about `1 / n`.
//! 5. **Verdict.** The larger of the two surprises (`-log10 p`) is compared with `-log10`
//!    of the target rates (`warning_rate`, `alarm_rate`); the deviation must also be one
//!    that Gaussian noise reaches at most at that rate.
//! 6. **Score.** The same surprise plus half the contextual novelty ([`crate::context`]: has
//!    the series moved like this before?), divided by 12 and clamped to `[0, 1]`. Right
//!    after a detection the *score* is held back until the series has been calm for
//!    `calm_steps` steps, unless something clearly stronger comes (a continuing
//!    anomaly is not news: the benchmark rewards the first detection and charges for every
//!    later one), while the *verdict* keeps flagging the steps that stay abnormal. The
//!    verdict never uses the contextual channel, so its calibration to the target rates
//!    (tests/auto_counts.rs) does not depend on it.

use crate::context::{ContextNovelty, ContextSettings};
use std::sync::Arc;

use crate::likelihood::{Likelihood, LikelihoodSettings};
use crate::season::Profile;
use crate::stats::normal_quantile_two_sided;
use crate::Verdict;

/// The verdict floors allow for a noise scale that is too small by this much: the scale is
/// a robust mean of the last hundred or so errors (the memory of `scale_alpha`), which
/// leaves it about a fifth uncertain, and over-dispersed counts on their first day have not
/// shown their spread yet.
const SCALE_MARGIN: f64 = 1.2;
/// `-log10 p` at which `score` reaches 1.
const SCORE_FULL_SCALE: f64 = 12.0;
/// Scale of a residual's mean absolute deviation to a standard deviation (sqrt(pi / 2)).
const MAD_TO_SD: f64 = 1.253_314_137;

/// Errors are winsorised at this many standard deviations before a forecaster learns from
/// them: Gaussian noise goes beyond 4 sd once in 16 000 steps, so only outliers are cut.
const CLIP_SD: f64 = 4.0;
/// Share of a side's deviations that forms its tail, fitted as an exponential above it
/// (peaks over threshold): the top 1 %.
const TAIL_SHARE: f64 = 0.01;
/// Share of the likelihood history kept when a seasonal forecaster takes over: deviations
/// judged by a worse forecaster say little about the new one's, and a twentieth keeps the
/// first steps after the switch from resting on the prior alone.
const SWITCH_KEEP: f64 = 0.05;
/// A record is new territory only if it beats the range of values seen by this share of
/// the range's width and by `RANGE_MIN_SD` noise standard deviations: a stationary series
/// sets new records by hairs; a value that escapes by a twentieth of the range is a change.
const RANGE_MIN_SHARE: f64 = 0.05;
const RANGE_MIN_SD: f64 = 2.0;
/// Each further tenth of the range beyond it makes a record another ten times rarer.
const RANGE_GAIN: f64 = 10.0;
/// `-log10 p` of a score that counts as a detection and starts a hold-back (p = 1e-3).
const DETECTION: f64 = 3.0;
/// During a hold-back, a step is shown only if it is this much rarer (`-log10 p`) than the
/// held peak: ten times rarer is a new event, a run that keeps rising by a hair is not.
const HOLD_MARGIN: f64 = 1.0;
/// `-log10 p` below which a step is calm (p = 0.1, an ordinary step).
const CALM: f64 = 1.0;

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
    fn context(&self) -> ContextSettings {
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
}

/// An [`AutoConfig`] shared by many detectors (one per series of a dataset), with what
/// follows from it: a series' state then holds a pointer to it, not a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedConfig(Arc<Shared>);

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
struct Shared {
    config: AutoConfig,
    /// `-log10` of the warning and alarm rates: the calibrated surprise needed for each.
    thresholds: (f64, f64),
    /// `z` the believed forecaster must reach for a warning / an alarm (from the rates).
    floors: (f64, f64),
    likelihood: LikelihoodSettings,
    context: ContextSettings,
}

impl Shared {
    fn new(config: AutoConfig) -> Self {
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
mod shared_serde {
    //! The shared configuration is written as the [`AutoConfig`] it was made from; a
    //! restored detector gets a copy of its own until [`super::AutoDetector::share`].
    use super::{Arc, AutoConfig, Shared};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(shared: &Arc<Shared>, s: S) -> Result<S::Ok, S::Error> {
        shared.config.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Shared>, D::Error> {
        Ok(Arc::new(Shared::new(AutoConfig::deserialize(d)?)))
    }
}

/// The result of one [`AutoDetector::update`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Score {
    /// Anomaly score in `[0, 1]`, comparable across series: `-log10` of the calibrated tail
    /// probability plus half the contextual novelty, divided by 12, held back right after a
    /// detection. For ranking (the benchmark); the verdict is what the rates calibrate.
    pub score: f64,
    /// Warning / alarm according to the configured rates.
    pub verdict: Verdict,
    /// What the believed forecaster expected.
    pub expected: f64,
    /// Standardised residual `(value - expected) / scale` (signed).
    pub deviation: f64,
}

/// Robust error statistics of one forecaster.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct ErrorTrack {
    /// Exponential mean of |winsorised error| (a mean absolute deviation).
    mad: f32,
    /// Exponential mean of |error| over a longer horizon: accuracy for model choice.
    perf: f32,
    updates: u32,
}

impl ErrorTrack {
    fn sd(&self) -> f64 {
        f64::from(self.mad) * MAD_TO_SD
    }

    /// Winsorises the error of forecast `expected` at `clip` standard deviations, learns
    /// from it, returns it clipped. The spread is tracked in `noise` units.
    fn learn(&mut self, err: f64, expected: f64, noise: Noise, tuning: &Tuning) -> f64 {
        let unit = noise.unit(expected);
        let e = err / unit;
        let sd = self.sd().max(noise.floor(expected));
        let bound = CLIP_SD * sd;
        let clipped = if self.updates < 8 {
            e
        } else {
            e.clamp(-bound, bound)
        };
        self.updates = self.updates.saturating_add(1);
        let a = tuning.scale_alpha.max(1.0 / f64::from(self.updates));
        let mad = f64::from(self.mad);
        self.mad = (mad + a * (clipped.abs() - mad)) as f32;
        let p = (0.5 * tuning.scale_alpha).max(1.0 / f64::from(self.updates));
        let perf = f64::from(self.perf);
        self.perf = (perf + p * (err.abs().min(2.0 * bound * unit) - perf)) as f32;
        clipped * unit
    }

    /// The standardised deviation of `value` from forecast `expected`.
    fn z(&self, value: f64, expected: f64, noise: Noise) -> f64 {
        (value - expected) / (noise.unit(expected) * self.sd().max(noise.floor(expected)))
    }
}

/// How the noise of a series scales: counts (non-negative integers) have Poisson-like noise
/// that grows with the square root of the level, so their residuals are measured in units
/// of `sqrt(expected)` (Pearson residuals) and a daily rhythm does not make the busy hours
/// look noisy; anything else in its own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Noise {
    counts: bool,
}

impl Noise {
    fn unit(self, expected: f64) -> f64 {
        if self.counts {
            expected.max(1.0).sqrt()
        } else {
            1.0
        }
    }

    /// Smallest spread in `unit`s: no division by zero on flat lines, and for counts the
    /// Poisson noise that even a perfect forecast cannot beat (somewhat under-dispersed).
    fn floor(self, expected: f64) -> f64 {
        if self.counts {
            0.6
        } else {
            1e-6 * expected.abs().max(1e-3)
        }
    }
}

/// A level forecaster: robust exponential smoothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct LevelModel {
    level: f64,
    err: ErrorTrack,
}

impl LevelModel {
    fn learn(&mut self, x: f64, alpha: f64, tuning: &Tuning, noise: Noise) {
        let e = self.err.learn(x - self.level, self.level, noise, tuning);
        self.level += alpha * e;
    }
}

/// A seasonal forecaster: the value learnt for this phase of the period (a profile of raw
/// values, smoothed across periods) plus a short-term offset, the recent mean deviation
/// from the profile. The offset follows a level shift within a few steps while the profile
/// keeps the shape; unlike classic Holt-Winters, the level never absorbs the shape.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct SeasonModel {
    offset: f64,
    profile: Profile,
    first_ts: i64,
    err: ErrorTrack,
}

impl SeasonModel {
    fn new(period: i64, dt: i64, max_bins: i64, first_ts: i64) -> Self {
        let steps = period / dt;
        let bins = steps.clamp(1, max_bins);
        SeasonModel {
            offset: 0.0,
            profile: Profile::new(period, bins as usize, steps > bins),
            first_ts,
            err: ErrorTrack::default(),
        }
    }

    fn forecast(&self, ts: i64) -> f64 {
        self.profile.get(ts) + self.offset
    }

    /// Believable once two full periods have passed and the phase has been seen twice.
    fn ready(&self, ts: i64) -> bool {
        ts - self.first_ts >= 2 * self.profile.period()
            && self.profile.ready_at(ts, 2)
            && self.err.updates > 16
    }

    fn learn(&mut self, ts: i64, x: f64, tuning: &Tuning, noise: Noise) {
        if !self.profile.ready_at(ts, 1) {
            self.profile.update(ts, x, 1.0);
            return;
        }
        let base = self.profile.get(ts);
        let e = self
            .err
            .learn(x - base - self.offset, base + self.offset, noise, tuning);
        let xc = base + self.offset + e;
        self.offset += tuning.offset_alpha * (xc - base - self.offset);
        self.profile.update(ts, xc, tuning.season_alpha);
    }
}

/// Slowly forgetting extremes of the values seen.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Range {
    low: f64,
    high: f64,
}

impl Range {
    const EMPTY: Range = Range {
        low: f64::INFINITY,
        high: f64::NEG_INFINITY,
    };

    /// Surprise of `value` outside the range, in `-log10 p` units: a record among `seen`
    /// steps has probability about `1 / seen`, and one that exceeds the range by a large
    /// share of its width is far rarer. A record by less than `RANGE_MIN_SD` of the
    /// forecaster's noise `noise_sd`, or by less than `RANGE_MIN_SHARE` of the width, is
    /// within noise, not new territory.
    fn novelty(&self, value: f64, noise_sd: f64, seen: f64) -> f64 {
        let width = self.high - self.low;
        if !(width.is_finite() && width > 0.0) {
            return 0.0;
        }
        let beyond = (value - self.high).max(self.low - value);
        let excess = beyond / width;
        if excess > RANGE_MIN_SHARE && beyond > RANGE_MIN_SD * noise_sd {
            seen.log10() + RANGE_GAIN * (excess - RANGE_MIN_SHARE)
        } else {
            0.0
        }
    }

    /// Once `settled`, the extremes drift towards `mid` by `forget` of their distance per
    /// step; `value` widens the range if `widen`.
    fn learn(&mut self, value: f64, mid: f64, forget: f64, settled: bool, widen: bool) {
        if settled {
            self.high -= forget * (self.high - mid).max(0.0);
            self.low += forget * (mid - self.low).max(0.0);
        }
        if widen {
            self.high = self.high.max(value);
            self.low = self.low.min(value);
        }
    }
}

const DAY: i64 = 86_400;
/// Bins of the daily profile: one per step down to 5-minute steps.
const DAILY_BINS: i64 = 288;
/// Steps used to estimate the sampling interval before the seasonal models are set up.
const DT_SAMPLES: usize = 15;

/// The first steps' intervals, from which the sampling interval is estimated.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Intervals {
    last_ts: i64,
    deltas: Vec<i64>,
}

/// The `auto` detector's state for one series. Plain data: `Clone` it to snapshot.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AutoDetector {
    /// The configuration and what follows from it, shared by the detectors made from one
    /// [`SharedConfig`] (not a per-series cost). Serialised as the [`AutoConfig`].
    #[cfg_attr(feature = "serde", serde(with = "shared_serde"))]
    shared: Arc<Shared>,
    /// Steps learnt (saturating: a step a second for 136 years).
    steps: u32,
    /// The first steps' intervals, until the sampling interval is known.
    intervals: Option<Box<Intervals>>,
    integer_valued: bool,
    fast: LevelModel,
    slow: LevelModel,
    daily: Option<SeasonModel>,
    short_z: f64,
    /// The highest-numbered forecaster (fast, slow, daily) believed so far.
    best_model_seen: u8,
    /// Slowly forgetting extremes of the values seen: a step beyond them by a good part of
    /// the range is new territory, however noisy the series is inside it. The verdict's
    /// range learns every value; the score's range leaves out the steps of an ongoing
    /// anomaly (a hold-back), so that a later return to an anomaly's level is new again.
    range: Range,
    score_range: Range,
    /// Calibration of deviations above and below the forecast, kept apart: a series whose
    /// spikes go up (busy CPU) says nothing about how rare a dip is, and vice versa.
    likelihood: [Likelihood; 2],
    /// Has the series moved like this before (score only).
    context: Option<ContextNovelty>,
    /// After a detection the score is held back until the series has been calm for a while.
    holding: bool,
    held_peak: f32,
    /// Calm steps in a row during a hold-back.
    calm_run: u32,
}

impl AutoDetector {
    /// A detector for a new series, with a configuration of its own. Many series with one
    /// configuration should share it: [`AutoDetector::with_shared`].
    pub fn new(config: AutoConfig) -> Self {
        Self::with_shared(&SharedConfig::new(config))
    }

    /// A detector for a new series that shares `config` with the other detectors made from
    /// it.
    pub fn with_shared(config: &SharedConfig) -> Self {
        let shared = Arc::clone(&config.0);
        let side = Likelihood::new();
        let likelihood = [side.clone(), side];
        let context = (shared.config.tuning.context_weight > 0.0).then(ContextNovelty::new);
        AutoDetector {
            shared,
            steps: 0,
            intervals: Some(Box::new(Intervals {
                last_ts: 0,
                deltas: Vec::with_capacity(DT_SAMPLES),
            })),
            integer_valued: true,
            fast: LevelModel::default(),
            slow: LevelModel::default(),
            daily: None,
            short_z: 0.0,
            best_model_seen: 1,
            range: Range::EMPTY,
            score_range: Range::EMPTY,
            likelihood,
            context,
            holding: false,
            held_peak: 0.0,
            calm_run: 0,
        }
    }

    /// Shares `config` instead of this detector's own copy when the two are equal (a
    /// detector restored from a snapshot has a copy of its own); `false` if they differ.
    pub fn share(&mut self, config: &SharedConfig) -> bool {
        if Arc::ptr_eq(&self.shared, &config.0) {
            return true;
        }
        if self.shared.config != config.0.config {
            return false;
        }
        self.shared = Arc::clone(&config.0);
        true
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &AutoConfig {
        &self.shared.config
    }

    /// Bytes of state held for this series (the struct and its heap buffers): what keeping
    /// one more series costs the analyser.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.intervals.as_ref().map_or(0, |i| {
                std::mem::size_of::<Intervals>() + i.deltas.capacity() * std::mem::size_of::<i64>()
            })
            + self.daily.as_ref().map_or(0, |m| m.profile.heap_bytes())
            + self.context.as_ref().map_or(0, ContextNovelty::heap_bytes)
    }

    fn noise(&self) -> Noise {
        Noise {
            counts: self.integer_valued,
        }
    }

    /// Sets up the daily forecaster for the sampling interval `dt` (the median of the
    /// first intervals), if there are enough steps in a day for one.
    fn setup_seasons(&mut self, dt: i64, ts: i64) {
        if dt > 0 && dt * 8 <= DAY {
            self.daily = Some(SeasonModel::new(DAY, dt, DAILY_BINS, ts));
        }
    }

    /// `-log10 p` of a deviation `u` above (`up`) or below the forecast: the tail of its own
    /// side, weighted by how often that side comes up, on the two-sided scale (a symmetric
    /// series gets what one shared calibration would give).
    fn side_surprise(&self, up: bool, u: f64) -> f64 {
        let t = &self.shared.config.tuning;
        let [down, upper] = &self.likelihood;
        let (this, other) = if up { (upper, down) } else { (down, upper) };
        let (n, m) = (this.weight(), other.weight());
        // Share of steps on this side, with half a prior step each way.
        let share = (n + t.warmup * 0.5) / (n + m + t.warmup);
        this.calibrate(u, &self.shared.likelihood) - (2.0 * share).log10()
    }

    /// Judges `value` at `ts` (seconds; non-decreasing), then learns from it.
    pub fn update(&mut self, ts: i64, value: f64) -> Score {
        if !value.is_finite() {
            return Score::default();
        }
        if self.steps == 0 {
            self.fast.level = value;
            self.slow.level = value;
        } else if let Some(iv) = &mut self.intervals {
            if ts > iv.last_ts {
                iv.deltas.push(ts - iv.last_ts);
            }
            if iv.deltas.len() == DT_SAMPLES {
                iv.deltas.sort_unstable();
                let dt = iv.deltas[DT_SAMPLES / 2];
                self.intervals = None;
                self.setup_seasons(dt, ts);
            }
        }
        if let Some(iv) = &mut self.intervals {
            iv.last_ts = ts;
        }
        self.integer_valued &= value >= 0.0 && value.fract() == 0.0;

        // 1. Forecasts, and the most accurate ready one.
        let mut best = (self.fast.level, self.fast.err, self.fast.err.perf, 0u8);
        if self.slow.err.perf < best.2 {
            best = (self.slow.level, self.slow.err, self.slow.err.perf, 1);
        }
        if let Some(m) = &self.daily {
            if m.ready(ts) && m.err.perf < best.2 {
                best = (m.forecast(ts), m.err, m.err.perf, 2);
            }
        }
        let (expected, track, _, chosen) = best;
        if chosen > self.best_model_seen {
            // A seasonal model takes over for the first time: the surprises of the steps
            // before it were judged by a worse forecaster, so they count for little now.
            if self.best_model_seen >= 1 || chosen >= 2 {
                for side in &mut self.likelihood {
                    side.shrink(SWITCH_KEEP);
                }
            }
            self.best_model_seen = chosen;
        }
        let z = track.z(value, expected, self.noise());

        // 2. Surprise: this step alone, or the recent run of residuals.
        let noise_sd = self.noise().unit(expected) * track.sd();
        let shared = Arc::clone(&self.shared);
        let t = &shared.config.tuning;
        let seen = f64::from(self.steps).min(t.memory).max(1.0);
        let novelty = self.range.novelty(value, noise_sd, seen);
        let score_novelty = self.score_range.novelty(value, noise_sd, seen);
        let a = t.short_alpha;
        self.short_z += a * (z.clamp(-50.0, 50.0) - self.short_z);
        let short_norm = self.short_z / (a / (2.0 - a)).sqrt();
        let signed = if z.abs() >= short_norm.abs() {
            z
        } else {
            short_norm
        };
        let raw = signed.abs().min(1e4);

        // 3. Likelihood against this series' own history of deviations on the same side.
        let warm = f64::from(self.steps) >= t.warmup;
        let point = self.side_surprise(signed >= 0.0, raw);
        let calibrated = if warm { point.max(novelty) } else { 0.0 };
        let score_calibrated = if warm { point.max(score_novelty) } else { 0.0 };

        // 4. Verdict, and the score held back after a detection.
        let (warn, alarm) = self.shared.thresholds;
        let (warn_z, alarm_z) = self.shared.floors;
        let verdict = if calibrated >= alarm && z.abs() >= alarm_z {
            Verdict::Alarm
        } else if calibrated >= warn && raw >= warn_z {
            Verdict::Warning
        } else {
            Verdict::None
        };
        // The score adds the contextual novelty: a deviation that also breaks the series'
        // usual pattern is more likely an anomaly than one that does not.
        let mut shown = score_calibrated;
        if let Some(context) = &mut self.context {
            let novelty = context.update(value, &shared.context);
            if warm {
                shown += t.context_weight * novelty;
            }
        }
        let was_holding = self.holding;
        if self.holding {
            // Calm is judged by the forecasters alone: a lasting new level that the
            // forecasters have learnt ends the hold-back even while it is still outside the
            // score's range.
            self.calm_run = if point < CALM {
                self.calm_run.saturating_add(1)
            } else {
                0
            };
            if f64::from(self.calm_run) >= t.calm_steps {
                self.holding = false;
            }
            // To show through, the forecasters' surprise alone must beat the held peak
            // (which included the contextual novelty) by the margin.
            if score_calibrated <= f64::from(self.held_peak) + HOLD_MARGIN {
                shown = 0.0;
            }
        }
        if shown >= DETECTION {
            self.holding = true;
            self.calm_run = 0;
            self.held_peak = shown as f32;
        }

        // Learn. The score's range leaves out the steps after a detection until the
        // hold-back ends; the step that ends it is learnt (the series has been calm for
        // `calm_steps`, so where it is now is ordinary).
        let tuning = &shared.config.tuning;
        let forget = 1.0 / tuning.memory;
        let settled = f64::from(self.steps) >= tuning.warmup * 0.5;
        let mid = self.slow.level;
        self.range.learn(value, mid, forget, settled, true);
        let in_anomaly = was_holding && self.holding;
        self.score_range
            .learn(value, mid, forget, settled, !in_anomaly);
        if settled {
            let side = usize::from(signed >= 0.0);
            self.likelihood[side].learn(raw, &shared.likelihood);
            self.likelihood[1 - side].age(&shared.likelihood);
        }
        let noise = self.noise();
        let (fa, sa) = (tuning.fast_alpha, tuning.slow_alpha);
        self.fast.learn(value, fa, tuning, noise);
        self.slow.learn(value, sa, tuning, noise);
        if let Some(m) = &mut self.daily {
            m.learn(ts, value, tuning, noise);
        }
        self.steps = self.steps.saturating_add(1);

        Score {
            score: (shown / SCORE_FULL_SCALE).clamp(0.0, 1.0),
            verdict,
            expected,
            deviation: z,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small deterministic noise source (xorshift), uniform in [-1, 1).
    fn noise(state: &mut u64) -> f64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    #[test]
    fn a_flat_line_is_quiet_and_a_step_off_it_is_an_alarm() {
        let mut det = AutoDetector::new(AutoConfig::default());
        for i in 0..500 {
            let s = det.update(i * 300, 42.5);
            assert_eq!(s.verdict, Verdict::None);
            assert!(s.score < 0.01);
        }
        let s = det.update(500 * 300, 43.5);
        assert_eq!(s.verdict, Verdict::Alarm);
        assert!(s.score > 0.5);
        assert_eq!(s.expected, 42.5);
    }

    #[test]
    fn a_spike_in_a_noisy_daily_wave_is_found_and_the_wave_is_not() {
        let mut det = AutoDetector::new(AutoConfig::default());
        let mut rng = 0x1234_5678_u64;
        let step = 300;
        let wave = |i: i64| {
            50.0 + 30.0 * (i as f64 * step as f64 / 86_400.0 * std::f64::consts::TAU).sin()
        };
        let mut quiet = 0;
        for i in 0..288 * 6 {
            let s = det.update(i * step, wave(i) + 2.0 * noise(&mut rng));
            if i > 288 * 3 && s.verdict == Verdict::Alarm {
                quiet += 1;
            }
        }
        assert!(quiet <= 1, "{quiet} alarms on a clean wave");
        let i = 288 * 6;
        let s = det.update(i * step, wave(i) + 25.0);
        assert_eq!(s.verdict, Verdict::Alarm, "{s:?}");
    }

    #[test]
    fn the_daily_forecaster_takes_over_once_it_knows_the_shape() {
        let mut det = AutoDetector::new(AutoConfig::default());
        // A square wave: high from 08:00 to 18:00.
        let level = |ts: i64| {
            if (8..18).contains(&(ts % 86_400 / 3600)) {
                80.0
            } else {
                20.0
            }
        };
        let mut late_alarms = 0;
        for i in 0..288 * 7 {
            let ts = i * 300;
            let s = det.update(ts, level(ts));
            if i > 288 * 3 && s.verdict != Verdict::None {
                late_alarms += 1;
            }
        }
        assert_eq!(late_alarms, 0);
        // The shape is known: 80 at 10:00 is expected, 20 at 10:00 is not.
        let ts = 288 * 7 * 300 + 10 * 3600;
        assert!((det.clone().update(ts, 80.0).expected - 80.0).abs() < 1.0);
        assert_eq!(det.update(ts, 20.0).verdict, Verdict::Alarm);
    }

    #[test]
    fn a_series_whose_spikes_go_up_is_still_surprised_by_a_dip_of_the_same_size() {
        let mut det = AutoDetector::new(AutoConfig::default());
        let mut rng = 0x5EED_u64;
        for i in 0..3000 {
            // Ordinary spikes go up, one step in 40; a dip as deep happened three times.
            let v = if i % 40 == 7 {
                60.0
            } else if i == 150 || i == 900 || i == 1700 {
                40.0
            } else {
                50.0 + noise(&mut rng)
            };
            det.update(i * 60, v);
        }
        let spike = det.clone().update(3000 * 60, 60.0);
        let dip = det.update(3000 * 60, 40.0);
        assert!(dip.score > spike.score + 0.1, "{dip:?} vs {spike:?}");
        assert!(dip.verdict > spike.verdict, "{dip:?} vs {spike:?}");
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut det = AutoDetector::new(AutoConfig::default());
        for i in 0..100 {
            det.update(i * 60, 10.0 + (i % 3) as f64);
        }
        let before = det.clone();
        assert_eq!(det.update(100 * 60, f64::NAN), Score::default());
        assert_eq!(det, before);
    }

    /// A machine at about 80 degrees that shuts down (cooling to 30 over a few steps) for
    /// three hours, then works again; `second` is where it collapses to 30 again for good.
    fn machine_temperature(i: i64, second: i64, rng: &mut u64) -> f64 {
        let cooling = |k: i64| 30.0 + 50.0 * (-(k as f64) / 3.0).exp();
        let first = 1000;
        let noise = 0.5 * noise(rng);
        if (first..first + 36).contains(&i) {
            cooling(i - first) + 0.1 * noise
        } else if i >= second {
            cooling(i - second) + 0.1 * noise
        } else {
            80.0 + noise
        }
    }

    #[test]
    fn a_second_collapse_to_the_level_of_an_earlier_anomaly_is_found_again() {
        let mut det = AutoDetector::new(AutoConfig::default());
        let mut rng = 0x00C0_FFEE_u64;
        let second = 2500;
        let mut first_peak: f64 = 0.0;
        let mut second_peak: f64 = 0.0;
        for i in 0..second + 12 {
            let s = det.update(i * 300, machine_temperature(i, second, &mut rng));
            if (1000..1012).contains(&i) {
                first_peak = first_peak.max(s.score);
            }
            if i >= second {
                second_peak = second_peak.max(s.score);
            }
        }
        // Both collapses are detections (`-log10 p` >= 3); the values the first one went
        // through while it was held back are not learnt as ordinary.
        assert!(first_peak >= DETECTION / SCORE_FULL_SCALE, "{first_peak}");
        assert!(second_peak >= DETECTION / SCORE_FULL_SCALE, "{second_peak}");
    }

    #[test]
    fn a_lasting_new_level_ends_the_hold_back_and_a_dip_from_it_is_found() {
        let mut det = AutoDetector::new(AutoConfig::default());
        let mut rng = 0xBEEF_u64;
        let mut dip = Score::default();
        for i in 0..1400 {
            // A rise from 10 to 30 over ten steps from step 600 that lasts, then one dip
            // from the new level (above the old range, by less than the rise was).
            let level = 10.0 + 2.0 * (i - 600).clamp(0, 10) as f64;
            let v = if i == 1300 {
                24.0
            } else {
                level + noise(&mut rng)
            };
            let s = det.update(i * 300, v);
            if i == 1300 {
                dip = s;
            }
        }
        assert!(dip.score >= DETECTION / SCORE_FULL_SCALE, "{dip:?}");
    }

    #[test]
    fn detectors_share_one_configuration_and_a_copy_can_join_it() {
        let shared = SharedConfig::new(AutoConfig::with_rates(1e-3, 1e-4));
        let a = AutoDetector::with_shared(&shared);
        let b = AutoDetector::with_shared(&shared);
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        // A detector with a copy of its own (as restored from a snapshot) joins the shared
        // one when the configurations are equal, and keeps its own when they differ.
        let mut copy = AutoDetector::new(AutoConfig::with_rates(1e-3, 1e-4));
        assert!(!Arc::ptr_eq(&copy.shared, &shared.0));
        assert!(copy.share(&shared));
        assert!(Arc::ptr_eq(&copy.shared, &shared.0));
        let mut other = AutoDetector::new(AutoConfig::default());
        assert!(!other.share(&shared));
        assert_eq!(other.config(), &AutoConfig::default());
    }

    #[test]
    fn a_clone_is_a_snapshot_that_resumes_identically() {
        let mut rng = 99_u64;
        let mut det = AutoDetector::new(AutoConfig::default());
        for i in 0..1000 {
            det.update(i * 60, 100.0 + 10.0 * noise(&mut rng));
        }
        let mut copy = det.clone();
        for i in 1000..1100 {
            let v = 100.0 + 10.0 * noise(&mut rng);
            assert_eq!(det.update(i * 60, v), copy.update(i * 60, v));
        }
    }

    #[test]
    fn stricter_rates_never_give_more_verdicts() {
        let mut rng = 7_u64;
        let mut loose = AutoDetector::new(AutoConfig::with_rates(1e-2, 1e-3));
        let mut strict = AutoDetector::new(AutoConfig::with_rates(1e-4, 1e-5));
        for i in 0..3000 {
            let v = 20.0 + 5.0 * noise(&mut rng).powi(3) * 10.0;
            assert!(strict.update(i * 60, v).verdict <= loose.update(i * 60, v).verdict);
        }
    }

    proptest! {
        #[test]
        fn scores_stay_in_the_unit_interval(
            values in proptest::collection::vec(-1e12f64..1e12, 1..400),
            gaps in proptest::collection::vec(0i64..100_000, 1..400),
        ) {
            let mut det = AutoDetector::new(AutoConfig::default());
            let mut ts = 1_400_000_000;
            for (i, v) in values.iter().enumerate() {
                ts += gaps[i % gaps.len()];
                let s = det.update(ts, *v);
                prop_assert!((0.0..=1.0).contains(&s.score), "{:?}", s);
            }
            prop_assert!(det.state_bytes() < 16 * 1024);
        }
    }
}
