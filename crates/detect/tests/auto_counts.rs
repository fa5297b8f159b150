//! `auto` on simulated per-step counts, the analyser's main diet: Poisson and over-dispersed
//! noise around a daily rhythm with a morning ramp, for entities from barely above the
//! sparsity gate to thousands of events a step. Checks the calibration the design asks for
//! (at most 2 alarms and 15 warnings per 10 000 judged steps of honest data) and that a bot
//! flood, a stop to zero and a hundredfold drop are still found within a step or two.

use detect::synth::Rng;
use detect::{AutoConfig, AutoDetector, Verdict};

const STEP: i64 = 60;
const DAY: i64 = 86_400;

/// Expected count per one-minute step: quiet nights, a morning ramp, a busy afternoon.
fn rhythm(ts: i64, base: f64) -> f64 {
    let hour = (ts.rem_euclid(DAY)) as f64 / 3600.0;
    let ramp = ((hour - 6.0) / 3.0).clamp(0.0, 1.0); // 06:00 -> 09:00
    let evening = ((23.0 - hour) / 3.0).clamp(0.0, 1.0); // 20:00 -> 23:00
    let day = ramp.min(evening);
    let wave = 1.0 + 0.15 * (2.0 * std::f64::consts::PI * hour / 24.0).sin();
    base * (0.2 + 0.8 * day) * wave
}

/// Runs one series for `warm + judged` steps; returns (warnings, alarms) over the judged.
/// `spread` is the relative wobble of the rate (0: plain Poisson).
fn false_verdicts(seed: u64, base: f64, spread: f64, warm: usize, judged: usize) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let mut det = AutoDetector::new(AutoConfig::default());
    let (mut warnings, mut alarms) = (0, 0);
    for i in 0..warm + judged {
        let ts = 1_700_000_000 - 1_700_000_000 % DAY + i as i64 * STEP;
        let v = rng.overdispersed(rhythm(ts, base), spread) as f64;
        let s = det.update(ts, v);
        assert!((0.0..=1.0).contains(&s.score));
        if i >= warm {
            match s.verdict {
                Verdict::Warning => warnings += 1,
                Verdict::Alarm => {
                    alarms += 1;
                    if std::env::var("DEBUG_ALARMS").is_ok() {
                        eprintln!(
                            "alarm seed {seed} step {i} v {v} exp {:.1} z {:.2} score {:.3}",
                            s.expected, s.deviation, s.score
                        );
                    }
                }
                Verdict::None => {}
            }
        }
    }
    (warnings, alarms)
}

#[test]
fn honest_poisson_counts_with_a_daily_rhythm_stay_within_the_target_rates() {
    let warm = 3 * 1440; // three days of history, as the analyser keeps
    let judged = 10_000;
    let (mut w, mut a, mut n) = (0, 0, 0);
    // Entities of very different sizes; half of them busier than Poisson (the rate itself
    // wobbles by 5-15 % from step to step, as real traffic does).
    let entities = [
        (40.0, 0.0),
        (100.0, 0.0),
        (300.0, 0.0),
        (1000.0, 0.0),
        (60.0, 0.0),
        (150.0, 0.0),
        (35.0, 0.1),
        (250.0, 0.05),
        (2000.0, 0.05),
        (5000.0, 0.1),
        (120.0, 0.15),
        (600.0, 0.08),
    ];
    for (k, (base, spread)) in entities.into_iter().enumerate() {
        let (wk, ak) = false_verdicts(0xC0FFEE + k as u64, base, spread, warm, judged);
        w += wk;
        a += ak;
        n += judged;
    }
    let per10k = |x: usize| x as f64 * 10_000.0 / n as f64;
    eprintln!(
        "warnings {:.1} / 10k, alarms {:.1} / 10k",
        per10k(w + a),
        per10k(a)
    );
    assert!(per10k(a) <= 2.0, "alarms per 10k: {}", per10k(a));
    assert!(per10k(w + a) <= 15.0, "warnings per 10k: {}", per10k(w + a));
}

/// Feeds three days of honest counts, then `anomaly(step, expected)` for a few steps;
/// returns the verdicts of those steps.
fn verdicts_of(anomaly: impl Fn(f64) -> f64, seed: u64) -> Vec<Verdict> {
    let mut rng = Rng::new(seed);
    let mut det = AutoDetector::new(AutoConfig::default());
    let start = 1_700_000_000 - 1_700_000_000 % DAY;
    let warm = 3 * 1440 + 14 * 60; // then 14:00 on day four, busy hours
    for i in 0..warm {
        let ts = start + i as i64 * STEP;
        det.update(ts, rng.overdispersed(rhythm(ts, 100.0), 0.1) as f64);
    }
    (warm..warm + 3)
        .map(|i| {
            let ts = start + i as i64 * STEP;
            let v = anomaly(rng.overdispersed(rhythm(ts, 100.0), 0.1) as f64);
            det.update(ts, v).verdict
        })
        .collect()
}

#[test]
fn a_bot_flood_is_an_alarm_at_once() {
    let v = verdicts_of(|x| 10.0 * x, 7);
    assert_eq!(v[0], Verdict::Alarm, "{v:?}");
}

#[test]
fn a_stop_to_zero_is_an_alarm_within_two_steps() {
    let v = verdicts_of(|_| 0.0, 8);
    assert!(v[..2].contains(&Verdict::Alarm), "{v:?}");
}

#[test]
fn a_hundredfold_drop_is_an_alarm_within_two_steps() {
    let v = verdicts_of(|x| (x / 100.0).round(), 9);
    assert!(v[..2].contains(&Verdict::Alarm), "{v:?}");
}

#[test]
fn state_stays_small_and_bounded() {
    let mut rng = Rng::new(1);
    let mut det = AutoDetector::new(AutoConfig::default());
    let mut after_a_day = 0;
    for i in 0..20_000 {
        let ts = i * STEP;
        det.update(ts, rng.poisson(rhythm(ts, 50.0)) as f64);
        if i == 1440 {
            after_a_day = det.state_bytes();
        }
    }
    assert_eq!(det.state_bytes(), after_a_day, "state grew with the series");
    assert!(det.state_bytes() <= 2_500, "{} bytes", det.state_bytes());
}

#[test]
fn a_five_minute_series_keeps_its_state_within_2500_bytes() {
    // Two weeks of 5-minute steps with gaps, jittering timestamps and a daily rhythm.
    let mut rng = Rng::new(7);
    let mut det = AutoDetector::new(AutoConfig::default());
    let mut ts = 0;
    for i in 0..4_032 {
        ts += 300 + if i % 97 == 0 { 3_600 } else { 0 } + (rng.uniform() * 3.0) as i64;
        det.update(ts, rng.overdispersed(rhythm(ts, 400.0), 0.1) as f64);
    }
    assert!(det.state_bytes() <= 2_500, "{} bytes", det.state_bytes());
}
