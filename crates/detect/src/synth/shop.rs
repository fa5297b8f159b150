//! Shop traffic as a platform of shops really sends it, for the analyser's tests and demo.
//!
//! Twelve (or more) shops whose sizes spread six times; a daily rhythm with a morning ramp,
//! an evening peak and nights at about 15 % of the peak, each shop a little shifted; counts
//! that vary more than Poisson (each shop's rate wobbles from step to step and drifts slowly
//! through the day); value-1 counter labels `visit` and `checkout`; and a `price` label whose
//! every event (one per item bought) jitters by +-2 % around its shop's own price (dearer
//! and cheaper shops), with a few discounted sales. Anomalies are injected on request. Seeded: the same seed gives
//! the same traffic.

use super::Rng;
use crate::level::StepTotals;

/// The labels a shop sends.
pub const VISIT: &str = "visit";
pub const CHECKOUT: &str = "checkout";
pub const PRICE: &str = "price";

/// One shop's habits.
#[derive(Debug, Clone, PartialEq)]
pub struct Shop {
    pub id: i64,
    /// Visits per minute at the daily peak.
    pub peak_visits_per_minute: f64,
    /// Share of visits that check out.
    pub conversion: f64,
    /// The shop's usual price (cents).
    pub price: f64,
    /// Hours the shop's day is shifted by.
    pub phase_hours: f64,
}

/// Something wrong, injected into the traffic over `steps` steps from step `from`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Injected {
    /// A shop's events of `label` multiplied by `factor` (a bot flood; 0 is a stop, 0.5 a
    /// halving).
    Scale {
        label: &'static str,
        shop: i64,
        factor: f64,
        from: u64,
        steps: u64,
    },
    /// A shop's prices multiplied by `factor` (0.01: typed a hundred times too low).
    Price {
        shop: i64,
        factor: f64,
        from: u64,
        steps: u64,
    },
}

impl Injected {
    fn covers(from: u64, steps: u64, step: u64) -> bool {
        (from..from + steps).contains(&step)
    }
}

/// One event as a client would send it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthEvent {
    pub label: &'static str,
    pub entity: i64,
    pub value: i64,
    /// Unix seconds.
    pub ts: i64,
}

/// One series' totals in one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesStep {
    pub label: &'static str,
    pub entity: i64,
    pub totals: StepTotals,
}

/// The traffic generator.
#[derive(Debug, Clone)]
pub struct ShopTraffic {
    pub shops: Vec<Shop>,
    /// Step width, seconds.
    pub step_seconds: i64,
    /// Start of step 0, unix seconds.
    pub start: i64,
    pub injected: Vec<Injected>,
    /// Multiplies every shop's traffic (1 = the sizes above).
    pub volume: f64,
    rng: Rng,
    /// Each shop's slow drift (a multiplicative random walk, mean-reverting).
    drift: Vec<f64>,
}

/// The daily shape at `hour` (0..24): a morning ramp, an afternoon plateau and an evening
/// peak at 1.0, nights at 0.15.
pub fn daily_rhythm(hour: f64) -> f64 {
    let x = std::f64::consts::TAU * (hour - 4.0) / 24.0;
    // Raised cosine with its trough at 04:00, plus a second harmonic that moves the peak
    // to the evening; scaled so the trough is 0.15 and the peak 1.
    let shape = 0.5 - 0.5 * x.cos() + 0.18 * (2.0 * x).sin();
    const LOW: f64 = -0.0912; // the shape's minimum, near 02:15
    const HIGH: f64 = 1.0912; // its maximum, near 17:45
    0.15 + 0.85 * ((shape - LOW) / (HIGH - LOW)).clamp(0.0, 1.0)
}

impl ShopTraffic {
    /// `shops` shops (at least 2) whose peak visits spread from 20 to 120 a minute.
    pub fn new(seed: u64, shops: usize, step_seconds: i64, start: i64) -> Self {
        let mut rng = Rng::new(seed);
        let n = shops.max(2);
        let shops = (0..n)
            .map(|i| {
                let size = i as f64 / (n - 1) as f64;
                Shop {
                    id: i as i64 + 1,
                    peak_visits_per_minute: 20.0 * (1.0 + 5.0 * size),
                    conversion: rng.between(0.12, 0.18),
                    price: (rng.between(800.0, 6_000.0)).round(),
                    phase_hours: rng.between(-1.0, 1.0),
                }
            })
            .collect();
        ShopTraffic {
            shops,
            step_seconds,
            start,
            injected: Vec::new(),
            volume: 1.0,
            rng,
            drift: vec![1.0; n],
        }
    }

    /// The shop with the smallest traffic and the one with the largest.
    pub fn smallest(&self) -> i64 {
        self.shops[0].id
    }

    pub fn biggest(&self) -> i64 {
        self.shops[self.shops.len() - 1].id
    }

    pub fn with(mut self, injected: Injected) -> Self {
        self.injected.push(injected);
        self
    }

    /// Start of step `step`, unix seconds.
    pub fn step_start(&self, step: u64) -> i64 {
        self.start + step as i64 * self.step_seconds
    }

    fn scale(&self, label: &str, shop: i64, step: u64) -> f64 {
        self.injected
            .iter()
            .map(|i| match *i {
                Injected::Scale {
                    label: l,
                    shop: s,
                    factor,
                    from,
                    steps,
                } if l == label && s == shop && Injected::covers(from, steps, step) => factor,
                _ => 1.0,
            })
            .product()
    }

    fn price_factor(&self, shop: i64, step: u64) -> f64 {
        self.injected
            .iter()
            .map(|i| match *i {
                Injected::Price {
                    shop: s,
                    factor,
                    from,
                    steps,
                } if s == shop && Injected::covers(from, steps, step) => factor,
                _ => 1.0,
            })
            .product()
    }

    /// What each shop sends in step `step`: (label, shop, values), where a counter label's
    /// values are all 1 and only their number is drawn.
    fn draw(&mut self, step: u64) -> Vec<(&'static str, i64, Draw)> {
        let t0 = self.step_start(step);
        let minutes = self.step_seconds as f64 / 60.0;
        let mut out = Vec::with_capacity(self.shops.len() * 3);
        for i in 0..self.shops.len() {
            let shop = self.shops[i].clone();
            // Mean-reverting drift of a few percent an hour.
            let d = &mut self.drift[i];
            *d = (*d * (1.0 + 0.01 * minutes.sqrt() * self.rng.normal())).clamp(0.8, 1.25);
            *d += 0.002 * minutes * (1.0 - *d);
            let hour = ((t0 as f64 / 3600.0 + shop.phase_hours) % 24.0 + 24.0) % 24.0;
            let rate = shop.peak_visits_per_minute * daily_rhythm(hour) * *d * self.volume;
            let visits_mean = rate * minutes * self.scale(VISIT, shop.id, step);
            let visits = self.rng.overdispersed(visits_mean, 0.05);
            let checkouts_mean = rate * minutes * shop.conversion;
            let bought = self.rng.overdispersed(checkouts_mean, 0.08);
            // A flood adds a bot's checkouts to the shoppers'; a stop or a drop thins them.
            let checkout_factor = self.scale(CHECKOUT, shop.id, step);
            let checkouts = if checkout_factor == 1.0 {
                bought
            } else {
                self.rng.poisson(checkouts_mean * checkout_factor)
            };
            // One price event per item; a basket holds one item, sometimes more.
            let items = bought + self.rng.poisson(0.3 * bought as f64);
            let prices = (items as f64 * self.scale(PRICE, shop.id, step)).round() as u64;
            let price_factor = self.price_factor(shop.id, step);
            let values: Vec<i64> = (0..prices)
                .map(|_| {
                    let discount = if self.rng.uniform() < 0.05 { 0.9 } else { 1.0 };
                    let value = shop.price * discount * self.rng.between(0.98, 1.02) * price_factor;
                    value.round().max(1.0) as i64
                })
                .collect();
            out.push((VISIT, shop.id, Draw::Ones(visits)));
            out.push((CHECKOUT, shop.id, Draw::Ones(checkouts)));
            out.push((PRICE, shop.id, Draw::Values(values)));
        }
        out
    }

    /// Every event of step `step`, stamped at random inside it (steps must be asked for in
    /// order, each once, either as events or as [`ShopTraffic::step`]).
    pub fn events(&mut self, step: u64) -> Vec<SynthEvent> {
        let t0 = self.step_start(step);
        let width = self.step_seconds.max(1);
        let mut out = Vec::new();
        for (label, entity, draw) in self.draw(step) {
            let values: Vec<i64> = match draw {
                Draw::Ones(n) => vec![1; n as usize],
                Draw::Values(values) => values,
            };
            for value in values {
                let offset = (self.rng.uniform() * width as f64) as i64;
                out.push(SynthEvent {
                    label,
                    entity,
                    value,
                    ts: t0 + offset.min(width - 1),
                });
            }
        }
        out
    }

    /// The totals of step `step` per series, in (label, entity) order; a series without
    /// events in the step is absent.
    pub fn step(&mut self, step: u64) -> Vec<SeriesStep> {
        let mut totals: Vec<SeriesStep> = self
            .draw(step)
            .into_iter()
            .filter_map(|(label, entity, draw)| {
                let totals = match draw {
                    Draw::Ones(0) => return None,
                    Draw::Ones(n) => StepTotals {
                        sum: n as f64,
                        events: n,
                        min: 1.0,
                        max: 1.0,
                    },
                    Draw::Values(values) => {
                        let first = *values.first()? as f64;
                        let mut t = StepTotals {
                            sum: 0.0,
                            events: 0,
                            min: first,
                            max: first,
                        };
                        for v in values {
                            let v = v as f64;
                            t.sum += v;
                            t.events += 1;
                            t.min = t.min.min(v);
                            t.max = t.max.max(v);
                        }
                        t
                    }
                };
                Some(SeriesStep {
                    label,
                    entity,
                    totals,
                })
            })
            .collect();
        totals.sort_by_key(|s| (s.label, s.entity));
        totals
    }
}

/// One series' draw in one step.
#[derive(Debug)]
enum Draw {
    /// So many events of value 1.
    Ones(u64),
    Values(Vec<i64>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nights_are_about_fifteen_percent_of_the_peak() {
        let values: Vec<f64> = (0..240).map(|i| daily_rhythm(i as f64 / 10.0)).collect();
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(0.0, f64::max);
        assert!((low - 0.15).abs() < 0.02, "{low}");
        assert!((high - 1.0).abs() < 0.03, "{high}");
        let peak_hour = values.iter().position(|&v| v == high).unwrap() as f64 / 10.0;
        assert!(
            (17.0..22.0).contains(&peak_hour),
            "evening peak, not {peak_hour}"
        );
    }

    #[test]
    fn shops_differ_in_size_and_price_and_prices_jitter() {
        let mut traffic = ShopTraffic::new(1, 12, 300, 1_700_000_000 - 1_700_000_000 % 86_400);
        let mut visits = vec![0u64; 12];
        for step in 0..288 {
            for s in traffic.step(step) {
                if s.label == VISIT {
                    visits[(s.entity - 1) as usize] += s.totals.events;
                }
                if s.label == PRICE && s.totals.events >= 30 {
                    let price = traffic.shops[(s.entity - 1) as usize].price;
                    assert!(s.totals.max <= (price * 1.021).round(), "{s:?}");
                    assert!(s.totals.min >= (price * 0.9 * 0.979).round(), "{s:?}");
                }
            }
        }
        let ratio = visits[11] as f64 / visits[0] as f64;
        assert!((5.0..7.5).contains(&ratio), "sizes spread {ratio}x");
        // 20 to 120 visits a minute at the peak: a day has tens of thousands each.
        assert!(visits[0] > 10_000, "{visits:?}");
    }

    #[test]
    fn injected_anomalies_change_only_their_shop_and_steps() {
        // 18:00, near the evening peak.
        let start = 1_700_000_000 - 1_700_000_000 % 86_400 + 18 * 3_600;
        let plain = ShopTraffic::new(2, 12, 60, start);
        let mut a = plain.clone().with(Injected::Scale {
            label: CHECKOUT,
            shop: 3,
            factor: 10.0,
            from: 5,
            steps: 3,
        });
        let mut b = plain.with(Injected::Price {
            shop: 4,
            factor: 0.01,
            from: 5,
            steps: 3,
        });
        for step in 0..10 {
            let flood = a.step(step);
            let typo = b.step(step);
            let checkout3 = flood.iter().find(|s| s.label == CHECKOUT && s.entity == 3);
            let price4 = typo
                .iter()
                .find(|s| s.label == PRICE && s.entity == 4)
                .unwrap();
            if (5..8).contains(&step) {
                assert!(checkout3.unwrap().totals.events > 30, "{checkout3:?}");
                assert!(price4.totals.max < 100.0, "{price4:?}");
            } else {
                assert!(price4.totals.min > 500.0, "{price4:?}");
            }
        }
    }
}
