//! The judging on realistic shop traffic (`detect::synth::shop`): twelve shops whose sizes
//! spread six times, a daily rhythm, over-dispersed counts, value-1 counters and jittering
//! prices. Quiet days must stay within the alarm budget, and each injected anomaly must be
//! one incident on the right series that resolves when it ends.

use std::collections::BTreeMap;
use std::time::Duration;

use detect::synth::shop::{Injected, ShopTraffic, CHECKOUT, PRICE, VISIT};

use super::*;
use crate::configuration::{DatasetSettings, Method};

/// Midnight UTC of a fixed day.
pub(super) const DAY0: i64 = 1_790_035_200;

pub(super) fn shop_settings(step_seconds: u64) -> DatasetSettings {
    DatasetSettings {
        time_step: Duration::from_secs(step_seconds),
        time_ago: Some(Duration::from_secs(30 * step_seconds)),
        method: Method::Auto,
        levels: vec![PRICE.to_owned()],
        ..DatasetSettings::all("shop")
    }
}

/// An incident as the store would hold it at the end of a run.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    label: String,
    entity: i64,
    start: i64,
    end: i64,
    severity: Severity,
    metrics: Vec<Metric>,
    resolved_at: Option<i64>,
}

/// The export's exact totals of a synthetic step (its values are whole numbers).
fn exact(t: &StepTotals) -> ExactTotals {
    ExactTotals {
        sum: t.sum as i128,
        events: t.events,
        min: t.min as i64,
        max: t.max as i64,
    }
}

/// Runs `steps` steps of `traffic` through a model, assigning ids as the store would.
/// Returns the records and the series-steps judged.
fn run(traffic: &mut ShopTraffic, settings: &DatasetSettings, steps: u64) -> (Vec<Record>, u64) {
    let mut model = DatasetModel::new(settings, DatasetClock::default());
    model.clock.judged_until = Some(traffic.step_start(0));
    let mut records: BTreeMap<u64, Record> = BTreeMap::new();
    for step in 0..steps {
        let t = traffic.step_start(step);
        for s in traffic.step(step) {
            model.add_row(s.label, s.entity, t + 1, &exact(&s.totals));
        }
        model.take_unflushed();
        for change in model.judge_step(t) {
            match change {
                Change::Open {
                    label,
                    entity_id,
                    incident,
                } => {
                    let id = records.len() as u64 + 1;
                    model.assign_id(&label, entity_id, id);
                    records.insert(
                        id,
                        Record {
                            label: label.to_string(),
                            entity: entity_id,
                            start: incident.start,
                            end: incident.end,
                            severity: incident.severity(),
                            metrics: incident.signals.iter().map(|s| s.metric).collect(),
                            resolved_at: None,
                        },
                    );
                }
                Change::Update { incident, .. } => {
                    let record = records
                        .get_mut(&incident.id)
                        .expect("an update of a known id");
                    assert_eq!(record.start, incident.start);
                    record.end = incident.end;
                    record.severity = incident.severity();
                    record.metrics = incident.signals.iter().map(|s| s.metric).collect();
                }
                Change::Resolve { id, resolved_at } => {
                    let record = records.get_mut(&id).expect("a resolution of a known id");
                    assert_eq!(record.resolved_at, None, "resolved twice: {record:?}");
                    assert_eq!(resolved_at, record.end, "resolved where it ended");
                    record.resolved_at = Some(resolved_at);
                }
            }
        }
    }
    (records.into_values().collect(), model.judged_series_steps)
}

fn per_10k(count: usize, judged: u64) -> f64 {
    count as f64 * 10_000.0 / judged as f64
}

/// A quiet day, from no history at all: at most 2 alarms and 15 warnings per 10 000
/// judged series-steps, summed over 20 seeds.
fn quiet_days(step_seconds: u64, hours: u64, seeds: u64) {
    let settings = shop_settings(step_seconds);
    let steps = hours * 3600 / step_seconds;
    let (mut alarms, mut warnings, mut judged) = (Vec::new(), Vec::new(), 0);
    for seed in 1..=seeds {
        let mut traffic = ShopTraffic::new(seed, 12, step_seconds as i64, DAY0 + 6 * 3600);
        let (records, n) = run(&mut traffic, &settings, steps);
        judged += n;
        for r in records {
            match r.severity {
                Severity::Alarm => alarms.push((seed, r)),
                Severity::Warning => warnings.push((seed, r)),
            }
        }
    }
    let (a, w) = (
        per_10k(alarms.len(), judged),
        per_10k(warnings.len(), judged),
    );
    println!(
        "{step_seconds} s steps: {} alarms, {} warnings over {judged} judged series-steps: {a:.2} and {w:.2} per 10 000",
        alarms.len(),
        warnings.len()
    );
    assert!(a <= 2.0, "{a:.2} alarms per 10 000: {alarms:#?}");
    assert!(w <= 15.0, "{w:.2} warnings per 10 000: {warnings:#?}");
}

#[test]
fn quiet_days_of_five_minute_steps_stay_within_the_alarm_budget() {
    quiet_days(300, 24, 20);
}

#[test]
fn quiet_days_of_one_minute_steps_stay_within_the_alarm_budget() {
    quiet_days(60, 24, 20);
}

/// Two and a half days of traffic with one anomaly injected on the third afternoon
/// (14:00, `steps` steps long); returns the records of the anomaly's series from its start
/// to five steps after its end, and the population alarms on its peers.
struct Scenario {
    step_seconds: u64,
    at: i64,
    end: i64,
    /// Records of the series the anomaly was injected on.
    on_series: Vec<Record>,
    /// Alarms of the population check on the same label's other entities during the
    /// anomaly (one shop's flood must not make its peers look odd).
    alarms_elsewhere: Vec<Record>,
}

fn scenario(
    step_seconds: u64,
    volume: f64,
    label: &'static str,
    shop: i64,
    build: impl Fn(u64, u64) -> Injected,
    steps: u64,
) -> Scenario {
    let per_day = 86_400 / step_seconds;
    let from = 2 * per_day + 14 * 3600 / step_seconds;
    let mut traffic = ShopTraffic::new(42, 12, step_seconds as i64, DAY0);
    traffic.volume = volume;
    let mut traffic = traffic.with(build(from, steps));
    let settings = shop_settings(step_seconds);
    let (records, _) = run(&mut traffic, &settings, from + steps + 40);
    let at = traffic.step_start(from);
    let end = traffic.step_start(from + steps);
    // The anomaly and the steps right after it, where its recovery would show.
    let after = end + 5 * step_seconds as i64;
    let (on_series, others): (Vec<Record>, Vec<Record>) = records
        .into_iter()
        .filter(|r| r.end > at && r.start < after)
        .partition(|r| r.label == label && r.entity == shop);
    let alarms_elsewhere = others
        .into_iter()
        .filter(|r| {
            r.label == label
                && r.metrics == [Metric::Population]
                && r.severity == Severity::Alarm
                && r.start < end
                && r.end > at
        })
        .collect();
    Scenario {
        step_seconds,
        at,
        end,
        on_series,
        alarms_elsewhere,
    }
}

impl Scenario {
    /// Exactly one record on the series, over the anomaly's period (give or take a step at
    /// its end), at least `severity`, resolved where it ended, and nothing new after it.
    fn found_once(&self, severity: Severity, what: &str) -> &Record {
        let step = self.step_seconds as i64;
        assert_eq!(
            self.on_series.len(),
            1,
            "{what}: one record on the series: {:#?}",
            self.on_series
        );
        let r = &self.on_series[0];
        assert!(r.severity >= severity, "{what}: {r:?}");
        assert!(
            r.start >= self.at && r.start <= self.at + step,
            "{what}: starts at the anomaly: {r:?}"
        );
        assert!(
            (r.end - self.end).abs() <= step,
            "{what}: ends with it ({}): {r:?}",
            self.end
        );
        assert_eq!(
            r.resolved_at,
            Some(r.end),
            "{what}: resolved once over: {r:?}"
        );
        assert!(
            self.alarms_elsewhere.is_empty(),
            "{what}: alarms elsewhere: {:#?}",
            self.alarms_elsewhere
        );
        r
    }
}

fn flood(label: &'static str, shop: i64, factor: f64) -> impl Fn(u64, u64) -> Injected {
    move |from, steps| Injected::Scale {
        label,
        shop,
        factor,
        from,
        steps,
    }
}

fn price(shop: i64, factor: f64) -> impl Fn(u64, u64) -> Injected {
    move |from, steps| Injected::Price {
        shop,
        factor,
        from,
        steps,
    }
}

#[test]
fn floods_and_stops_of_three_ten_and_thirty_steps_are_one_alarm_each_that_resolves() {
    for step_seconds in [60, 300] {
        for steps in [3, 10, 30] {
            // A small shop's flood is found by the population check (its counts are below
            // the count checks' gate); a big shop's by its count too.
            for shop in [3, 10] {
                let what =
                    format!("10x checkout flood of shop {shop}, {steps} steps of {step_seconds} s");
                let s = scenario(
                    step_seconds,
                    1.0,
                    CHECKOUT,
                    shop,
                    flood(CHECKOUT, shop, 10.0),
                    steps,
                );
                let r = s.found_once(Severity::Alarm, &what);
                assert!(r.metrics.contains(&Metric::Population), "{what}: {r:?}");
                if shop == 10 && step_seconds == 300 {
                    assert!(r.metrics.contains(&Metric::Count), "{what}: {r:?}");
                }
                assert!(
                    !r.metrics.contains(&Metric::Events),
                    "{what}: value-1 counts are judged once: {r:?}"
                );
            }
            let what = format!("visits stopped for {steps} steps of {step_seconds} s");
            let s = scenario(step_seconds, 1.0, VISIT, 5, flood(VISIT, 5, 0.0), steps);
            let r = s.found_once(Severity::Alarm, &what);
            assert_eq!(
                r.metrics,
                [Metric::Count],
                "{what}: value-1 counts are judged once"
            );
        }
    }
}

#[test]
fn a_price_a_hundred_times_too_low_is_one_alarm_with_its_level_signals() {
    // Level checks need min_count_per_step (30) events a step: at one-minute steps only a
    // busy shop has them.
    for (step_seconds, volume) in [(300, 1.0), (60, 6.0)] {
        let what = format!("price typo at {step_seconds} s steps");
        let s = scenario(step_seconds, volume, PRICE, 8, price(8, 0.01), 3);
        let r = s.found_once(Severity::Alarm, &what);
        assert!(
            r.metrics.contains(&Metric::Avg) && r.metrics.contains(&Metric::Min),
            "{what}: {r:?}"
        );
        assert!(
            !r.metrics.contains(&Metric::Count),
            "{what}: no sum checks on a level: {r:?}"
        );
    }
}

#[test]
fn smaller_anomalies_are_found_at_least_as_warnings() {
    let s = scenario(300, 1.0, CHECKOUT, 1, flood(CHECKOUT, 1, 3.0), 4);
    s.found_once(Severity::Warning, "3x checkout flood on the smallest shop");
    let s = scenario(300, 1.0, PRICE, 8, price(8, 0.6), 6);
    s.found_once(Severity::Warning, "a price 40 % too low");
    let s = scenario(300, 1.0, VISIT, 12, flood(VISIT, 12, 0.5), 6);
    s.found_once(
        Severity::Warning,
        "the biggest shop's visits halved for 30 minutes",
    );
}

#[test]
fn a_snapshot_writes_only_the_series_that_changed_and_drops_the_forgotten() {
    let settings = DatasetSettings {
        series_ttl: Duration::from_secs(180),
        ..shop_settings(60)
    };
    let mut model = DatasetModel::new(&settings, DatasetClock::default());
    let t0 = DAY0;
    model.clock.judged_until = Some(t0);
    let one = ExactTotals {
        sum: 5,
        events: 5,
        min: 1,
        max: 1,
    };
    let changed = |model: &mut DatasetModel| -> Vec<i64> {
        let mut keys = model.series_keys();
        keys.sort();
        keys.iter()
            .filter(|k| model.encode_changed(k).unwrap().is_some())
            .map(|k| k.entity_id)
            .collect()
    };
    model.add_row(VISIT, 1, t0 + 1, &one);
    model.add_row(VISIT, 2, t0 + 1, &one);
    model.take_unflushed();
    model.judge_step(t0);
    assert_eq!(
        changed(&mut model),
        vec![1, 2],
        "the first snapshot has every series"
    );
    assert_eq!(
        changed(&mut model),
        Vec::<i64>::new(),
        "nothing changed since"
    );
    // A stored state restores as unchanged.
    let mut keys = model.series_keys();
    keys.sort();
    let stored = model.series[&keys[0]].clone();
    let bytes = postcard::to_extend(&stored, SNAPSHOT_FORMAT.to_vec()).unwrap();
    model.restore_series(VISIT, 1, &bytes).unwrap();
    assert_eq!(changed(&mut model), Vec::<i64>::new());
    // A state of another format (an older analyser's) is refused, not misread.
    let older = postcard::to_allocvec(&stored).unwrap();
    assert!(model.restore_series(VISIT, 1, &older).is_err());
    let mut newer = bytes.clone();
    newer[1] += 1;
    assert!(model.restore_series(VISIT, 1, &newer).is_err());
    // Entity 1 goes on, entity 2 stops: after the ttl it is forgotten, and its stored
    // state must go.
    for step in 1..=4 {
        let t = t0 + step * 60;
        model.add_row(VISIT, 1, t + 1, &one);
        model.take_unflushed();
        model.judge_step(t);
    }
    assert_eq!(changed(&mut model), vec![1]);
    let forgotten: Vec<i64> = model.take_forgotten().iter().map(|k| k.entity_id).collect();
    assert_eq!(forgotten, vec![2]);
    assert!(model.take_forgotten().is_empty());
}

#[test]
fn a_counter_series_holds_at_most_2_400_bytes_with_its_detector_and_window() {
    let settings = shop_settings(60);
    let mut traffic = ShopTraffic::new(3, 12, 60, DAY0 + 6 * 3600);
    let mut model = DatasetModel::new(&settings, DatasetClock::default());
    model.clock.judged_until = Some(traffic.step_start(0));
    for step in 0..180 {
        let t = traffic.step_start(step);
        for s in traffic.step(step) {
            model.add_row(s.label, s.entity, t + 1, &exact(&s.totals));
        }
        model.take_unflushed();
        model.judge_step(t);
    }
    let mut sizes: Vec<(SeriesKey, usize)> = model
        .series
        .iter()
        .filter(|(key, s)| {
            let calm = s.incidents.live.is_none() && s.incidents.pending().is_none();
            model.params.kind(&key.label) == Kind::Counter && calm
        })
        .map(|(key, s)| (key.clone(), s.state_bytes()))
        .collect();
    sizes.sort();
    let per_series = model.series_bytes() / model.series_count();
    println!("{per_series} bytes a series with its slot in the map; counters: {sizes:?}");
    assert!(sizes.len() >= 12, "{sizes:?}");
    for (key, bytes) in sizes {
        assert!(bytes <= 2_400, "{key:?}: {bytes} bytes");
    }
}
