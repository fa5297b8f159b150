//! The detector's parts, each plain data: robust error tracks, the noise scale, the level
//! and seasonal forecasters, the range seen so far, the first steps' intervals.

use crate::season::Profile;

use super::config::Tuning;
use super::{CLIP_SD, MAD_TO_SD, RANGE_GAIN, RANGE_MIN_SD, RANGE_MIN_SHARE};

/// Robust error statistics of one forecaster.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct ErrorTrack {
    /// Exponential mean of |winsorised error| (a mean absolute deviation).
    pub(super) mad: f32,
    /// Exponential mean of |error| over a longer horizon: accuracy for model choice.
    pub(super) perf: f32,
    pub(super) updates: u32,
}

impl ErrorTrack {
    pub(super) fn sd(&self) -> f64 {
        f64::from(self.mad) * MAD_TO_SD
    }

    /// Winsorises the error of forecast `expected` at `clip` standard deviations, learns
    /// from it, returns it clipped. The spread is tracked in `noise` units.
    pub(super) fn learn(&mut self, err: f64, expected: f64, noise: Noise, tuning: &Tuning) -> f64 {
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
    pub(super) fn z(&self, value: f64, expected: f64, noise: Noise) -> f64 {
        (value - expected) / (noise.unit(expected) * self.sd().max(noise.floor(expected)))
    }
}

/// How the noise of a series scales: counts (non-negative integers) have Poisson-like noise
/// that grows with the square root of the level, so their residuals are measured in units
/// of `sqrt(expected)` (Pearson residuals) and a daily rhythm does not make the busy hours
/// look noisy; anything else in its own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Noise {
    pub(super) counts: bool,
}

impl Noise {
    pub(super) fn unit(self, expected: f64) -> f64 {
        if self.counts {
            expected.max(1.0).sqrt()
        } else {
            1.0
        }
    }

    /// Smallest spread in `unit`s: no division by zero on flat lines, and for counts the
    /// Poisson noise that even a perfect forecast cannot beat (somewhat under-dispersed).
    pub(super) fn floor(self, expected: f64) -> f64 {
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
pub(super) struct LevelModel {
    pub(super) level: f64,
    pub(super) err: ErrorTrack,
}

impl LevelModel {
    pub(super) fn learn(&mut self, x: f64, alpha: f64, tuning: &Tuning, noise: Noise) {
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
pub(super) struct SeasonModel {
    pub(super) offset: f64,
    pub(super) profile: Profile,
    pub(super) first_ts: i64,
    pub(super) err: ErrorTrack,
}

impl SeasonModel {
    pub(super) fn new(period: i64, dt: i64, max_bins: i64, first_ts: i64) -> Self {
        let steps = period / dt;
        let bins = steps.clamp(1, max_bins);
        SeasonModel {
            offset: 0.0,
            profile: Profile::new(period, bins as usize, steps > bins),
            first_ts,
            err: ErrorTrack::default(),
        }
    }

    pub(super) fn forecast(&self, ts: i64) -> f64 {
        self.profile.get(ts) + self.offset
    }

    /// Believable once two full periods have passed and the phase has been seen twice.
    pub(super) fn ready(&self, ts: i64) -> bool {
        ts - self.first_ts >= 2 * self.profile.period()
            && self.profile.ready_at(ts, 2)
            && self.err.updates > 16
    }

    pub(super) fn learn(&mut self, ts: i64, x: f64, tuning: &Tuning, noise: Noise) {
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
pub(super) struct Range {
    pub(super) low: f64,
    pub(super) high: f64,
}

impl Range {
    pub(super) const EMPTY: Range = Range {
        low: f64::INFINITY,
        high: f64::NEG_INFINITY,
    };

    /// Surprise of `value` outside the range, in `-log10 p` units: a record among `seen`
    /// steps has probability about `1 / seen`, and one that exceeds the range by a large
    /// share of its width is far rarer. A record by less than `RANGE_MIN_SD` of the
    /// forecaster's noise `noise_sd`, or by less than `RANGE_MIN_SHARE` of the width, is
    /// within noise, not new territory.
    pub(super) fn novelty(&self, value: f64, noise_sd: f64, seen: f64) -> f64 {
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
    pub(super) fn learn(&mut self, value: f64, mid: f64, forget: f64, settled: bool, widen: bool) {
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

/// Bins of the daily profile: one per step down to 5-minute steps.
pub(super) const DAILY_BINS: i64 = 288;
/// Steps used to estimate the sampling interval before the seasonal models are set up.
pub(super) const DT_SAMPLES: usize = 15;

/// The first steps' intervals, from which the sampling interval is estimated.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(super) struct Intervals {
    pub(super) last_ts: i64,
    pub(super) deltas: Vec<i64>,
}
