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
    let wave =
        |i: i64| 50.0 + 30.0 * (i as f64 * step as f64 / 86_400.0 * std::f64::consts::TAU).sin();
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

#[test]
fn a_detector_for_verdicts_judges_every_step_alike_in_less_memory() {
    use crate::synth::families::Family;
    for family in Family::ALL {
        let series = family.generate(1);
        let mut full = AutoDetector::new(AutoConfig::default());
        let mut lean = AutoDetector::new(AutoConfig::default().for_verdicts());
        for (i, &(ts, value)) in series.points.iter().enumerate() {
            let (a, b) = (full.update(ts, value), lean.update(ts, value));
            let judged = |s: Score| (s.verdict, s.expected.to_bits(), s.deviation.to_bits());
            assert_eq!(judged(a), judged(b), "{} step {i}", family.name());
        }
        assert!(
            lean.state_bytes() + 1_000 <= full.state_bytes(),
            "{}: {} bytes against {}",
            family.name(),
            lean.state_bytes(),
            full.state_bytes()
        );
    }
}
