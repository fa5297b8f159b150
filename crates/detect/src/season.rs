//! A seasonal profile: the expected offset from the level at each phase of a period.
//!
//! The period is a wall-clock length (a day, a week), so the phase comes from the
//! timestamp and gaps in the data do not shift it. The profile holds a fixed number of bins
//! (at most a few hundred `f32`s, whatever the step), read with linear interpolation between
//! bin centres so that a morning ramp is followed smoothly rather than in stairs.

/// Largest `|q|` of a bin.
const Q_MAX: f64 = 32_767.0;

/// Expected value per phase of one period, learnt by exponential smoothing.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Profile {
    period: i64,
    /// Interpolate between bins (coarser than the data) or take the bin the time falls in.
    interpolate: bool,
    /// A bin's value is `origin + q * 2^exponent`; `exponent` is `i32::MIN` until the first
    /// value is learnt (it sets both).
    origin: f64,
    exponent: i32,
    bins: Box<[i16]>,
    /// How many updates each bin has had, two bits per bin, saturating at 3 (a bin not yet
    /// seen predicts nothing useful).
    seen: Box<[u8]>,
}

impl Profile {
    /// A profile of `bins` bins over `period` seconds; `interpolate` for bins coarser than
    /// the data's step.
    pub(crate) fn new(period: i64, bins: usize, interpolate: bool) -> Self {
        let bins = bins.max(1);
        Profile {
            period: period.max(1),
            interpolate,
            origin: 0.0,
            exponent: i32::MIN,
            bins: vec![0; bins].into_boxed_slice(),
            seen: vec![0; bins.div_ceil(4)].into_boxed_slice(),
        }
    }

    /// The period in seconds.
    pub(crate) fn period(&self) -> i64 {
        self.period
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.bins) + self.seen.len()
    }

    fn step(&self) -> f64 {
        2f64.powi(self.exponent)
    }

    fn value(&self, i: usize) -> f64 {
        if self.exponent == i32::MIN {
            return 0.0;
        }
        self.origin + f64::from(self.bins[i]) * self.step()
    }

    fn times_seen(&self, i: usize) -> u8 {
        (self.seen[i / 4] >> (2 * (i % 4))) & 3
    }

    fn count_visit(&mut self, i: usize) {
        if self.times_seen(i) < 3 {
            self.seen[i / 4] += 1 << (2 * (i % 4));
        }
    }

    /// Stores `v` in bin `i`, widening the scale of every bin first if `v` does not fit.
    fn set(&mut self, i: usize, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.exponent == i32::MIN {
            // The first value: the origin, with a resolution of 2^-15 of its magnitude.
            self.origin = v;
            self.exponent = if v == 0.0 {
                -40
            } else {
                (v.abs().log2().floor() as i32 - 15).max(-1000)
            };
        }
        let q = (v - self.origin) / self.step();
        if q.abs() > Q_MAX {
            self.rescale(v);
        }
        let q = ((v - self.origin) / self.step())
            .round()
            .clamp(-Q_MAX, Q_MAX);
        self.bins[i] = q as i16;
    }

    /// Re-centres the bins between their extremes and `v`, at the finest scale that holds
    /// them all.
    fn rescale(&mut self, v: f64) {
        let values: Vec<f64> = (0..self.bins.len()).map(|i| self.value(i)).collect();
        let (lo, hi) = values
            .iter()
            .fold((v, v), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let origin = 0.5 * (lo + hi);
        let half = 0.5 * (hi - lo);
        let mut exponent = self.exponent;
        while half / 2f64.powi(exponent) > Q_MAX - 1.0 {
            exponent += 1;
        }
        self.origin = origin;
        self.exponent = exponent;
        let step = self.step();
        for (q, x) in self.bins.iter_mut().zip(values) {
            *q = ((x - origin) / step).round().clamp(-Q_MAX, Q_MAX) as i16;
        }
    }

    /// The two bins around `ts` and the weight of the second one.
    fn locate(&self, ts: i64) -> (usize, usize, f64) {
        let n = self.bins.len();
        let offset = ts.rem_euclid(self.period);
        if !self.interpolate {
            // Integer arithmetic: the same time of day always lands in the same bin.
            let i = usize::try_from(offset * n as i64 / self.period)
                .unwrap_or(0)
                .min(n - 1);
            return (i, i, 0.0);
        }
        let phase = offset as f64 / self.period as f64 * n as f64;
        let phase = phase - 0.5;
        let phase = if phase < 0.0 { phase + n as f64 } else { phase };
        let lo = (phase.floor() as usize).min(n - 1);
        let w = phase - lo as f64;
        (lo, (lo + 1) % n, w)
    }

    /// The expected offset at `ts`.
    pub(crate) fn get(&self, ts: i64) -> f64 {
        let (a, b, w) = self.locate(ts);
        self.value(a) * (1.0 - w) + self.value(b) * w
    }

    /// `true` once the bins around `ts` have been learnt at least `times` times.
    pub(crate) fn ready_at(&self, ts: i64, times: u8) -> bool {
        let (a, b, _) = self.locate(ts);
        self.times_seen(a) >= times && self.times_seen(b) >= times
    }

    /// Moves the bins around `ts` towards `target` (the observed offset) with rate `rate`;
    /// the first observation of a bin is taken as is.
    pub(crate) fn update(&mut self, ts: i64, target: f64, rate: f64) {
        let (a, b, w) = self.locate(ts);
        for (i, share) in [(a, 1.0 - w), (b, w)] {
            if share <= 0.0 {
                continue;
            }
            let first = self.times_seen(i) == 0;
            let r = if first { 1.0 } else { rate * share };
            let old = self.value(i);
            self.set(i, old + r * (target - old));
            if share >= 0.25 || first {
                self.count_visit(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learnt_daily_shape_is_predicted_between_bin_centres() {
        let day = 86_400;
        let mut p = Profile::new(day, 24, true);
        for d in 0..5 {
            for h in 0..24 {
                let ts = d * day + h * 3600 + 1800; // bin centres
                p.update(ts, h as f64, 0.5);
            }
        }
        assert!((p.get(7 * 3600 + 1800) - 7.0).abs() < 1e-6);
        // Halfway between the 07:30 and 08:30 centres.
        assert!((p.get(8 * 3600) - 7.5).abs() < 1e-6);
        assert!(p.ready_at(3 * 3600, 2));
        // The phase comes from the wall clock: ten days later, same hour, same value.
        assert!((p.get(10 * day + 7 * 3600 + 1800) - 7.0).abs() < 1e-6);
    }

    #[test]
    fn unseen_bins_are_not_ready() {
        let p = Profile::new(86_400, 24, true);
        assert!(!p.ready_at(0, 1));
        assert_eq!(p.get(12_345), 0.0);
    }
}
