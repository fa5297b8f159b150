//! A seasonal profile: the expected offset from the level at each phase of a period.
//!
//! The period is a wall-clock length (a day, a week), so the phase comes from the
//! timestamp and gaps in the data do not shift it. The profile holds a fixed number of bins
//! (at most a few hundred `f32`s, whatever the step), read with linear interpolation between
//! bin centres so that a morning ramp is followed smoothly rather than in stairs.

/// Expected offset per phase of one period, learnt by exponential smoothing.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Profile {
    period: i64,
    /// Interpolate between bins (coarser than the data) or take the bin the time falls in.
    interpolate: bool,
    bins: Vec<f32>,
    /// How many updates each bin has had, saturating (a bin not yet seen predicts 0).
    seen: Vec<u8>,
}

impl Profile {
    /// A profile of `bins` bins over `period` seconds; `interpolate` for bins coarser than
    /// the data's step.
    pub(crate) fn new(period: i64, bins: usize, interpolate: bool) -> Self {
        let bins = bins.max(1);
        Profile {
            period: period.max(1),
            interpolate,
            bins: vec![0.0; bins],
            seen: vec![0; bins],
        }
    }

    /// The period in seconds.
    pub(crate) fn period(&self) -> i64 {
        self.period
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<f32>() + self.seen.capacity()
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
        f64::from(self.bins[a]) * (1.0 - w) + f64::from(self.bins[b]) * w
    }

    /// `true` once the bins around `ts` have been learnt at least `times` times.
    pub(crate) fn ready_at(&self, ts: i64, times: u8) -> bool {
        let (a, b, _) = self.locate(ts);
        self.seen[a] >= times && self.seen[b] >= times
    }

    /// Moves the bins around `ts` towards `target` (the observed offset) with rate `rate`;
    /// the first observation of a bin is taken as is.
    pub(crate) fn update(&mut self, ts: i64, target: f64, rate: f64) {
        let (a, b, w) = self.locate(ts);
        for (i, share) in [(a, 1.0 - w), (b, w)] {
            if share <= 0.0 {
                continue;
            }
            let r = if self.seen[i] == 0 { 1.0 } else { rate * share };
            let old = f64::from(self.bins[i]);
            self.bins[i] = (old + r * (target - old)) as f32;
            if share >= 0.25 || self.seen[i] == 0 {
                self.seen[i] = self.seen[i].saturating_add(1);
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
