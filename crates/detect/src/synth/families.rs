//! Stress families: seeded, labelled series of the kinds the benchmark corpora have too few
//! of, to check that a detector holds its quality on data it was never tuned on.
//!
//! Each family is one kind of real telemetry with the mess that makes it hard: ordinary
//! events that look like anomalies to a naive detector (bursts, spikes, on/off switching),
//! drift, correlated noise, a daily rhythm, and labelled anomalies of the kind that family
//! fails with. [`Family::generate`] returns a [`Labelled`] series; the anomalies are onsets
//! (row indices) from which [`crate::nab::windows`] derives NAB-style windows.
//!
//! | family | ordinary behaviour | labelled anomalies |
//! | --- | --- | --- |
//! | [`Family::BurstyCounts`] | over-dispersed counts, daily rhythm, frequent heavy-tailed bursts that die out within minutes | two sustained surges, several times the base for an hour or more |
//! | [`Family::SensorTemperature`] | a slowly drifting temperature, small daily cycle, correlated noise | a shutdown (cooling to ambient for a few hours); later a slow ramp up over hours, then a collapse to ambient that lasts (the failure) |
//! | [`Family::Latency`] | log-normal latency with rare single-step spikes of 3-8x | a lasting level shift, then a burst of very slow requests |
//! | [`Family::CpuVariance`] | CPU utilisation with a daily rhythm and correlated noise | two spells where the variance grows several-fold at the same mean |
//! | [`Family::KeyPresses`] | idle zeros and typing sessions of a few key presses a step | a key held down (auto-repeat for many steps), then frantic up/down toggling |

use super::Rng;

/// One of the stress families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Social-media-like mention counts: bursts are normal, a surge is not.
    BurstyCounts,
    /// Machine temperature that fails by a slow ramp and then a collapse.
    SensorTemperature,
    /// Request latency with ordinary spikes, a level shift and a failure.
    Latency,
    /// CPU utilisation whose misconfiguration changes the variance, not the level.
    CpuVariance,
    /// Key presses per step: on/off sessions, a stuck key, frantic toggling.
    KeyPresses,
}

/// A generated series with its labelled anomalies.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// `(timestamp in seconds, value)` per step, in time order.
    pub points: Vec<(i64, f64)>,
    /// Row indices where the labelled anomalies start.
    pub onsets: Vec<usize>,
}

impl Labelled {
    /// NAB-style windows around the onsets ([`crate::nab::windows`]).
    pub fn windows(&self) -> Vec<(usize, usize)> {
        crate::nab::windows(self.points.len(), &self.onsets)
    }
}

/// First timestamp of every series: a Monday at midnight UTC.
const START: i64 = 1_400_457_600;
const DAY: f64 = 86_400.0;

/// Position of `ts` in its day, in `[0, 1)`.
fn day_phase(ts: i64) -> f64 {
    ts.rem_euclid(86_400) as f64 / DAY
}

/// An onset uniformly in `[lo, hi)` of `rows` (shares of the series).
fn onset(rng: &mut Rng, rows: usize, lo: f64, hi: f64) -> usize {
    (rng.between(lo, hi) * rows as f64) as usize
}

impl Family {
    /// Every family, in a fixed order.
    pub const ALL: [Family; 5] = [
        Family::BurstyCounts,
        Family::SensorTemperature,
        Family::Latency,
        Family::CpuVariance,
        Family::KeyPresses,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::BurstyCounts => "bursty counts",
            Family::SensorTemperature => "sensor temperature",
            Family::Latency => "latency",
            Family::CpuVariance => "cpu variance",
            Family::KeyPresses => "key presses",
        }
    }

    /// The series of this family for `seed`: about two weeks of 5-minute steps (key presses:
    /// three days of 1-minute steps); every seed draws its own scale, noise and onsets.
    pub fn generate(self, seed: u64) -> Labelled {
        let mut rng = Rng::new(seed ^ (self as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        match self {
            Family::BurstyCounts => bursty_counts(&mut rng),
            Family::SensorTemperature => sensor_temperature(&mut rng),
            Family::Latency => latency(&mut rng),
            Family::CpuVariance => cpu_variance(&mut rng),
            Family::KeyPresses => key_presses(&mut rng),
        }
    }
}

const ROWS: usize = 4032;
const STEP: i64 = 300;

fn bursty_counts(rng: &mut Rng) -> Labelled {
    let base = rng.between(6.0, 60.0);
    let first = onset(rng, ROWS, 0.3, 0.55);
    let second = onset(rng, ROWS, 0.65, 0.9);
    // Surges: several times the base, building up over a few steps, lasting 1-3 hours.
    let surges = [first, second].map(|at| (at, rng.between(5.0, 10.0), rng.between(12.0, 36.0)));
    let mut burst = 0.0;
    let points = (0..ROWS)
        .map(|i| {
            let ts = START + i as i64 * STEP;
            let phase = day_phase(ts);
            // Busy afternoons, quiet nights.
            let rhythm = 0.55 + 0.45 * (std::f64::consts::TAU * (phase - 0.35)).cos();
            // Ordinary bursts: one every ~12 hours on average, heavy-tailed, gone in minutes.
            burst *= 0.55;
            if rng.uniform() < 1.0 / 144.0 {
                burst += (0.9 * rng.normal()).exp() * 1.5;
            }
            let mut mean = base * rhythm * (1.0 + burst);
            for &(at, factor, length) in &surges {
                let into = i as f64 - at as f64;
                if (0.0..length).contains(&into) {
                    let build = ((into + 1.0) / 3.0).min(1.0);
                    mean += base * factor * build;
                }
            }
            (ts, rng.overdispersed(mean, 0.25) as f64)
        })
        .collect();
    Labelled {
        points,
        onsets: vec![first, second],
    }
}

fn sensor_temperature(rng: &mut Rng) -> Labelled {
    let level = rng.between(60.0, 90.0);
    let noise_sd = rng.between(0.3, 0.8);
    let ambient = level * rng.between(0.25, 0.5);
    // A shutdown: cooling to ambient for a few hours, then back to work.
    let shutdown_at = onset(rng, ROWS, 0.25, 0.45);
    let shutdown_len = rng.between(24.0, 72.0) as usize;
    // The failure: a slow ramp up over hours, then a collapse to ambient that lasts.
    let ramp_at = onset(rng, ROWS, 0.6, 0.85);
    let ramp_len = rng.between(36.0, 96.0) as usize; // 3 to 8 hours
    let ramp_height = rng.between(10.0, 20.0) * noise_sd;
    let collapse_at = ramp_at + ramp_len;
    let mut drift = 0.0;
    let mut ar = 0.0;
    let cooling = |k: usize, from: f64| ambient + (from - ambient) * (-(k as f64) / 3.0).exp();
    let points = (0..ROWS)
        .map(|i| {
            let ts = START + i as i64 * STEP;
            // A mean-reverting wander of a few noise units, correlated noise on top.
            drift = 0.998 * drift + 0.08 * noise_sd * rng.normal();
            ar = 0.7 * ar + noise_sd * 0.71 * rng.normal();
            let daily = 0.8 * noise_sd * (std::f64::consts::TAU * day_phase(ts)).sin();
            let mut v = level + drift + daily + ar;
            if (shutdown_at..shutdown_at + shutdown_len).contains(&i) {
                v = cooling(i - shutdown_at, level) + 0.3 * ar;
            } else if (ramp_at..collapse_at).contains(&i) {
                v += ramp_height * (i - ramp_at) as f64 / ramp_len as f64;
            } else if i >= collapse_at {
                v = cooling(i - collapse_at, level + ramp_height) + 0.3 * ar;
            }
            (ts, (v * 100.0).round() / 100.0)
        })
        .collect();
    Labelled {
        points,
        onsets: vec![shutdown_at, ramp_at],
    }
}

fn latency(rng: &mut Rng) -> Labelled {
    let base = rng.between(40.0, 400.0);
    let spread = rng.between(0.1, 0.25);
    let shift_at = onset(rng, ROWS, 0.3, 0.5);
    let shift_len = rng.between(144.0, 432.0) as usize; // half a day to a day and a half
    let shift = rng.between(1.6, 2.2);
    let failure_at = onset(rng, ROWS, 0.7, 0.9);
    let points = (0..ROWS)
        .map(|i| {
            let ts = START + i as i64 * STEP;
            let rhythm = 1.0 + 0.15 * (std::f64::consts::TAU * (day_phase(ts) - 0.3)).cos();
            let mut v = base * rhythm * (spread * rng.normal()).exp();
            if rng.uniform() < 1.0 / 250.0 {
                v *= rng.between(3.0, 8.0); // an ordinary slow request
            }
            if (shift_at..shift_at + shift_len).contains(&i) {
                v *= shift;
            }
            if (failure_at..failure_at + 12).contains(&i) {
                v *= rng.between(10.0, 30.0);
            }
            (ts, (v * 10.0).round() / 10.0)
        })
        .collect();
    Labelled {
        points,
        onsets: vec![shift_at, failure_at],
    }
}

fn cpu_variance(rng: &mut Rng) -> Labelled {
    let level = rng.between(25.0, 60.0);
    let noise_sd = rng.between(1.0, 3.0);
    let first = onset(rng, ROWS, 0.3, 0.5);
    let second = onset(rng, ROWS, 0.65, 0.85);
    let spells = [first, second].map(|at| (at, rng.between(72.0, 216.0) as usize));
    let factor = rng.between(3.5, 5.0);
    let mut ar = 0.0;
    let points = (0..ROWS)
        .map(|i| {
            let ts = START + i as i64 * STEP;
            let daily = 0.25 * level * (std::f64::consts::TAU * (day_phase(ts) - 0.4)).cos();
            let wild = spells.iter().any(|&(at, len)| (at..at + len).contains(&i));
            let sd = if wild { noise_sd * factor } else { noise_sd };
            ar = 0.5 * ar + 0.87 * rng.normal();
            let v = (level + daily + sd * ar).clamp(0.0, 100.0);
            (ts, (v * 100.0).round() / 100.0)
        })
        .collect();
    Labelled {
        points,
        onsets: vec![first, second],
    }
}

fn key_presses(rng: &mut Rng) -> Labelled {
    const KEY_ROWS: usize = 4320;
    let rate = rng.between(2.0, 6.0);
    let hold_at = onset(rng, KEY_ROWS, 0.3, 0.55);
    let hold_len = rng.between(20.0, 40.0) as usize;
    let toggle_at = onset(rng, KEY_ROWS, 0.7, 0.9);
    let repeat = rng.between(25.0, 35.0); // auto-repeat: presses per step while held
    let mut typing = false;
    let points = (0..KEY_ROWS)
        .map(|i| {
            let ts = START + i as i64 * 60;
            // Sessions start about once an hour and last about 15 minutes.
            typing = if typing {
                rng.uniform() > 1.0 / 15.0
            } else {
                rng.uniform() < 1.0 / 60.0
            };
            let mut v = if typing {
                rng.poisson(rate) as f64
            } else {
                0.0
            };
            if (hold_at..hold_at + hold_len).contains(&i) {
                v = repeat.round();
            }
            if (toggle_at..toggle_at + 30).contains(&i) {
                v = if (i - toggle_at) % 2 == 0 {
                    rng.poisson(3.0 * repeat) as f64
                } else {
                    0.0
                };
            }
            (ts, v)
        })
        .collect();
    Labelled {
        points,
        onsets: vec![hold_at, toggle_at],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_seeded_and_labelled_after_the_learning_period() {
        for family in Family::ALL {
            let a = family.generate(1);
            assert_eq!(a, family.generate(1), "{}", family.name());
            assert_ne!(a, family.generate(2), "{}", family.name());
            let windows = a.windows();
            assert_eq!(windows.len(), a.onsets.len(), "{}", family.name());
            assert!(a.points.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(a.points.iter().all(|p| p.1.is_finite()));
        }
    }
}
