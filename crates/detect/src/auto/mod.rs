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

mod config;
mod models;

use crate::context::ContextNovelty;
use std::sync::Arc;

use crate::likelihood::Likelihood;
use crate::Verdict;

use config::Shared;
pub use config::{AutoConfig, SharedConfig, Tuning};
use models::{Intervals, LevelModel, Noise, Range, SeasonModel, DAILY_BINS, DT_SAMPLES};

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

const DAY: i64 = 86_400;

/// The `auto` detector's state for one series. Plain data: `Clone` it to snapshot.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AutoDetector {
    /// The configuration and what follows from it, shared by the detectors made from one
    /// [`SharedConfig`] (not a per-series cost). Serialised as the [`AutoConfig`].
    #[cfg_attr(feature = "serde", serde(with = "config::shared_serde"))]
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
mod tests;
