//! Anomaly likelihood: turns a raw deviation into a tail probability *of this series*.
//!
//! A standardised deviation `u = |z|` would be a fine score if residuals were Gaussian.
//! Real series have heavier tails, and how heavy differs from series to series (a spiky
//! disk-write counter against a smooth temperature), so one threshold for every series
//! needs each series' deviations measured against that series' own history:
//!
//! * an exponentially decayed histogram (log-spaced bins) of past deviations gives the
//!   empirical tail `P(U >= u)` wherever history has data;
//! * above the series' own `tail_share` quantile `t`, the tail is extrapolated as
//!   exponential, `P(U >= u) = tail_share * exp(-(u - t) / m)` with `m` the mean excess
//!   over `t` (peaks over threshold), so a deviation beyond anything seen still gets a
//!   finite, ordered probability;
//! * a Gaussian prior worth `prior_weight` steps covers the start, when history is thin.
//!
//! The result is `-log10 p`: comparable across series and directly comparable with the
//! target false-alarm rates.

use crate::stats::neg_log10_two_sided;

/// Bins per unit of `ln(1 + u)` in the body, up to `u = e^BODY_LN - 1` (about 19 standard
/// deviations), where a series' quantiles are read off the histogram.
const BINS_PER_LN: f64 = 12.0;
const BODY_LN: f64 = 3.0;
/// Beyond the body, where only the tail's mass and mean excess are read, a bin per quarter
/// of `ln(1 + u)`.
const TAIL_BINS_PER_LN: f64 = 4.0;
/// Bins in the body.
const BODY_BINS: usize = 36;
/// Number of bins: deviations up to `e^(3 + 25/4) - 1`, about 10 000 (the largest
/// deviation the detector learns), are resolved.
const BINS: usize = BODY_BINS + 25;

/// How a likelihood learns and calibrates: the same for every series of a configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LikelihoodSettings {
    /// Per-step decay of older steps' weight.
    decay: f64,
    /// Steps' worth of belief in the Gaussian tail.
    prior_weight: f64,
    /// The quantile above which the tail is fit.
    tail_share: f64,
}

impl LikelihoodSettings {
    /// `memory`: effective number of steps remembered; `prior_weight`: steps' worth of
    /// belief in the Gaussian tail; `tail_share`: the quantile above which the tail is fit.
    pub(crate) fn new(memory: f64, prior_weight: f64, tail_share: f64) -> Self {
        LikelihoodSettings {
            decay: 1.0 - 1.0 / memory.max(2.0),
            prior_weight,
            tail_share: tail_share.clamp(1e-4, 0.5),
        }
    }
}

/// Decayed histogram of a series' deviations, with its tail fit.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Likelihood {
    /// Weight per bin, in units of the current step's weight `unit`.
    #[cfg_attr(feature = "serde", serde(with = "serde_bins"))]
    hist: [f32; BINS],
    total: f64,
    /// Weight of the next observation; grows by `1 / decay` per step (renormalised).
    unit: f64,
}

fn bin_of(u: f64) -> usize {
    let x = u.max(0.0).ln_1p();
    let b = if x < BODY_LN {
        x * BINS_PER_LN
    } else {
        BODY_BINS as f64 + (x - BODY_LN) * TAIL_BINS_PER_LN
    };
    (b as usize).min(BINS - 1)
}

/// `ln(1 + u)` at bin position `b` (fractional positions inside a bin).
fn ln_at(b: f64) -> f64 {
    if b < BODY_BINS as f64 {
        b / BINS_PER_LN
    } else {
        BODY_LN + (b - BODY_BINS as f64) / TAIL_BINS_PER_LN
    }
}

/// Lower edges (`[0][b]`) and midpoints (`[1][b]`) of the bins, computed once.
fn edges() -> &'static [[f64; BINS + 1]; 2] {
    static EDGES: std::sync::OnceLock<[[f64; BINS + 1]; 2]> = std::sync::OnceLock::new();
    EDGES.get_or_init(|| {
        let low = std::array::from_fn(|b| ln_at(b as f64).exp_m1());
        let mid = std::array::from_fn(|b| ln_at(b as f64 + 0.5).exp_m1());
        [low, mid]
    })
}

fn bin_low(b: usize) -> f64 {
    edges()[0][b]
}

fn bin_mid(b: usize) -> f64 {
    edges()[1][b]
}

impl Likelihood {
    /// An empty history.
    pub(crate) fn new() -> Self {
        Likelihood {
            hist: [0.0; BINS],
            total: 0.0,
            unit: 1.0,
        }
    }

    /// Effective number of steps in the history.
    pub(crate) fn weight(&self) -> f64 {
        self.total / self.unit
    }

    /// Empirical `P(U >= u)` with the exponential tail above the `tail_share` quantile.
    fn empirical_tail(&self, u: f64, tail_share: f64) -> f64 {
        let total = self.total;
        if total <= 0.0 {
            return 1.0;
        }
        // Walk down from the top until the tail share is reached: threshold bin `tb`.
        let want = tail_share * total;
        let mut above = 0.0;
        let mut excess = 0.0;
        let mut tb = 0;
        for b in (0..BINS).rev() {
            let w = f64::from(self.hist[b]);
            above += w;
            excess += w * bin_mid(b);
            if above >= want {
                tb = b;
                break;
            }
        }
        let t = bin_low(tb);
        if u <= t {
            // Inside the body: plain empirical share of steps at least this far out.
            let b = bin_of(u);
            let mut at_least: f64 = self.hist[b + 1..].iter().map(|&w| f64::from(w)).sum();
            let (lo, hi) = (bin_low(b), bin_low(b + 1));
            let frac = ((hi - u) / (hi - lo)).clamp(0.0, 1.0);
            at_least += f64::from(self.hist[b]) * frac;
            return (at_least / total).max(above / total);
        }
        let share = above / total;
        let mean_excess = (excess / above.max(1e-300) - t).max(0.05 * (1.0 + t));
        share * (-(u - t) / mean_excess).exp()
    }

    /// The calibrated surprise `-log10 p` of deviation `u >= 0` (call before [`Self::learn`]).
    pub(crate) fn calibrate(&self, u: f64, settings: &LikelihoodSettings) -> f64 {
        let n = self.weight();
        let w = settings.prior_weight;
        let prior = 10f64.powf(-neg_log10_two_sided(u));
        let p = (n * self.empirical_tail(u, settings.tail_share) + w * prior) / (n + w);
        -p.max(1e-300).log10()
    }

    /// Keeps only `factor` of the history's weight (the prior and new steps count more).
    pub(crate) fn shrink(&mut self, factor: f64) {
        self.unit /= factor.clamp(1e-6, 1.0);
    }

    /// One step passes without a deviation for this history: older steps fade.
    pub(crate) fn age(&mut self, settings: &LikelihoodSettings) {
        self.unit /= settings.decay;
        self.renormalise();
    }

    fn renormalise(&mut self) {
        if self.unit > 1e30 {
            for w in self.hist.iter_mut() {
                *w = (f64::from(*w) / self.unit) as f32;
            }
            self.total /= self.unit;
            self.unit = 1.0;
        }
    }

    /// Adds deviation `u` to the history.
    pub(crate) fn learn(&mut self, u: f64, settings: &LikelihoodSettings) {
        self.unit /= settings.decay;
        self.renormalise();
        let b = bin_of(u);
        self.hist[b] = (f64::from(self.hist[b]) + self.unit) as f32;
        self.total += self.unit;
    }
}

#[cfg(feature = "serde")]
mod serde_bins {
    //! serde supports arrays up to 32 elements only: (de)serialise the bins as a sequence.
    use super::BINS;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(bins: &[f32; BINS], s: S) -> Result<S::Ok, S::Error> {
        bins.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f32; BINS], D::Error> {
        let v = Vec::<f32>::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("wrong number of histogram bins"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_history_the_gaussian_prior_is_returned() {
        let s = LikelihoodSettings::new(1000.0, 50.0, 0.02);
        let l = Likelihood::new();
        assert!((l.calibrate(3.0, &s) - neg_log10_two_sided(3.0)).abs() < 1e-9);
    }

    #[test]
    fn a_series_that_is_often_far_out_is_calibrated_down() {
        let s = LikelihoodSettings::new(10_000.0, 50.0, 0.02);
        let mut l = Likelihood::new();
        // Heavy tails: one step in ten is 6 sd out.
        for i in 0..5000 {
            l.learn(if i % 10 == 0 { 6.0 } else { 0.5 }, &s);
        }
        let c = l.calibrate(6.0, &s);
        assert!(c > 0.7 && c < 1.5, "{c}");
        // Beyond anything seen, the fitted tail keeps ordering the deviations.
        assert!(l.calibrate(30.0, &s) > l.calibrate(12.0, &s));
        assert!(l.calibrate(12.0, &s) > c);
    }

    #[test]
    fn a_tame_series_keeps_gaussian_like_surprise() {
        let s = LikelihoodSettings::new(10_000.0, 50.0, 0.02);
        let mut l = Likelihood::new();
        // Deterministic spread of |z| values roughly like a half-normal.
        for i in 0..5000 {
            let q = (i % 100) as f64 / 100.0;
            l.learn(q * 2.5, &s);
        }
        assert!(l.calibrate(8.0, &s) > 4.0, "{}", l.calibrate(8.0, &s));
    }
}
