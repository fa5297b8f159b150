//! Contextual novelty: has this series ever *moved like this* before?
//!
//! The forecasters judge one step against an expected value; they are blind to a change of
//! pattern that stays inside the usual range (spikes that come twice as often, a signal that
//! starts to oscillate, a plateau where the series used to wander). In the spirit of
//! contextOSE (CAD OSE, Smirnov 2016, the leading detector of the Numenta benchmark for
//! years), [`ContextNovelty`] quantises each value into a few levels, looks at the last
//! `2..=6` levels as *contexts*, and remembers which contexts it has seen. A step whose
//! contexts are all familiar is ordinary however far it is from the forecast; a step that
//! completes several contexts never seen before is novel.
//!
//! * **Levels.** Until `grid_after` steps have been seen the levels divide the running
//!   range into 8 equal parts; then the grid is frozen (origin and width of that
//!   range), and values beyond it get levels of their own (up to three ranges above and one
//!   below), so new territory makes new contexts instead of squeezing the old ones.
//! * **Memory.** Contexts are hashed into a fixed bit set (8 192 bits): bounded memory, no
//!   forgetting; a noisy series fills it up and stops producing novelty, which is right.
//! * **Calibration.** The share of new contexts is converted to `-log10 p` against this
//!   series' own history of novelty (decayed counts per novelty level, a prior of
//!   `PRIOR` steps that makes full novelty rare), so a series that always finds something
//!   new does not outrank one that never does.

/// Contexts longer than this are not tracked.
pub(crate) const MAX_ORDER: usize = 8;
/// Quantisation levels across the learnt range: 6 tell low, middle and high apart with
/// room for a shape, few enough that an ordinary wiggle stays in its level and that a
/// series' contexts repeat (6^6 = 46 656 possible contexts of 6 steps; 8 levels, tried
/// first, make 262 144 and scored lower in every held-out category).
const LEVELS: f64 = 6.0;
/// Longest context, in steps: patterns of up to half an hour at 5-minute steps.
const ORDER: usize = 6;
/// Bits of the seen-context set (1 KB): about a thousand distinct contexts before a
/// quarter of the set is taken, more than a series with a stable pattern ever makes.
const BITS: usize = 8192;
/// Steps' worth of prior belief in the novelty calibration.
const PRIOR: f64 = 20.0;

/// Settings of the contextual channel (from the `auto` tuning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ContextSettings {
    /// Steps after which the quantisation grid is frozen.
    pub(crate) grid_after: u32,
    /// Steps before novelty is reported (the detector's warm-up).
    pub(crate) start: u32,
    /// Effective number of steps the calibration remembers.
    pub(crate) memory: f64,
}

/// Per-series state of the contextual channel.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct ContextNovelty {
    grid: Grid,
    /// The last levels, newest first.
    recent: [i8; MAX_ORDER],
    steps: u32,
    seen: Box<[u64]>,
    /// Decayed number of steps per count of new contexts (`0..ORDER`).
    novelty_counts: [f32; ORDER],
    total: f64,
}

/// The quantisation grid.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
enum Grid {
    /// The running range, divided into `LEVELS` levels, until `grid_after` steps.
    Learning { low: f64, high: f64 },
    /// Then frozen: the origin and width of a level.
    Frozen { origin: f64, width: f64 },
}

/// Hash step for a context key (a 64-bit multiply-xorshift mix).
fn mix(key: u64, level: i8) -> u64 {
    let mut h = (key ^ (level as u8 as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    h
}

impl ContextNovelty {
    pub(crate) fn new() -> Self {
        ContextNovelty {
            grid: Grid::Learning {
                low: f64::INFINITY,
                high: f64::NEG_INFINITY,
            },
            recent: [0; MAX_ORDER],
            steps: 0,
            seen: vec![0; BITS / 64].into_boxed_slice(),
            novelty_counts: [0.0; ORDER],
            total: 0.0,
        }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.seen)
    }

    fn level(&self, value: f64, levels: f64) -> i8 {
        let q = match self.grid {
            Grid::Frozen { origin, width } => ((value - origin) / width)
                .floor()
                .clamp(-levels, 3.0 * levels),
            Grid::Learning { low, high } if high > low => ((value - low) / (high - low) * levels)
                .floor()
                .min(levels - 1.0),
            Grid::Learning { .. } => 0.0,
        };
        q as i8
    }

    /// Takes `value`, learns its contexts and returns the calibrated novelty (`-log10 p`,
    /// 0 for a step that completes no new context or before `start` steps).
    pub(crate) fn update(&mut self, value: f64, settings: &ContextSettings) -> f64 {
        let (levels, order) = (LEVELS, ORDER);
        if let Grid::Learning { low, high } = self.grid {
            let (low, high) = (low.min(value), high.max(value));
            self.grid = if self.steps >= settings.grid_after {
                let width = if high > low {
                    (high - low) / levels
                } else {
                    1.0
                };
                Grid::Frozen { origin: low, width }
            } else {
                Grid::Learning { low, high }
            };
        }
        self.recent.copy_within(0..MAX_ORDER - 1, 1);
        self.recent[0] = self.level(value, levels);
        self.steps = self.steps.saturating_add(1);

        // Contexts of order 2..=order ending at this step: new ones are counted and learnt.
        let mut key = mix(0, self.recent[0]);
        let mut new = 0usize;
        let available = (self.steps as usize).min(order);
        let bits = self.seen.len() * 64;
        for k in 2..=available {
            key = mix(key.wrapping_add(k as u64), self.recent[k - 1]);
            let bit = (key % bits as u64) as usize;
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            if self.seen[word] & mask == 0 {
                self.seen[word] |= mask;
                new += 1;
            }
        }
        let new = if self.steps > settings.start { new } else { 0 };

        // Calibrate: the decayed share of past steps at least this novel, with a prior
        // that makes a share `x` of new contexts about as rare as `1 - x`.
        let share = new as f64 / (order - 1) as f64;
        let surprise = if new == 0 {
            0.0
        } else {
            let at_least: f64 = self.novelty_counts[new..]
                .iter()
                .map(|&c| f64::from(c))
                .sum();
            let p = (at_least + PRIOR * 0.5 * (1.0 - share) + 0.5) / (self.total + PRIOR + 1.0);
            -p.clamp(1e-12, 1.0).log10()
        };
        let decay = 1.0 - 1.0 / settings.memory.max(2.0);
        for c in self.novelty_counts.iter_mut() {
            *c = (f64::from(*c) * decay) as f32;
        }
        self.novelty_counts[new.min(ORDER - 1)] += 1.0;
        self.total = self.total * decay + 1.0;
        surprise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ContextSettings {
        ContextSettings {
            grid_after: 300,
            start: 100,
            memory: 5000.0,
        }
    }

    #[test]
    fn a_repeating_pattern_becomes_familiar_and_a_new_one_is_novel() {
        let s = settings();
        let mut c = ContextNovelty::new();
        let pattern = [0.0, 1.0, 5.0, 1.0, 0.0, 3.0, 7.0, 2.0];
        let mut late = 0.0;
        for i in 0..2000 {
            let n = c.update(pattern[i % pattern.len()], &s);
            if i > 1000 {
                late += n;
            }
        }
        assert_eq!(late, 0.0, "a known pattern is never novel");
        // The same values in a new order: several contexts never seen.
        let novel: f64 = [7.0, 0.0, 7.0, 0.0, 5.0, 5.0]
            .iter()
            .map(|&v| c.update(v, &s))
            .sum();
        assert!(novel > 2.0, "{novel}");
    }

    #[test]
    fn memory_is_fixed_whatever_the_series() {
        let s = settings();
        let mut c = ContextNovelty::new();
        let before = c.heap_bytes();
        let mut x = 1u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> 11) as f64 / (1u64 << 53) as f64;
            assert!(c.update(v, &s).is_finite());
        }
        assert_eq!(c.heap_bytes(), before);
        assert_eq!(before, 1024);
    }
}
