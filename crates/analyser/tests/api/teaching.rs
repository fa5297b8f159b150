//! Verdicts that teach: a nightly batch job dismissed as expected is a warning at most on
//! the nights after, never sent to the webhook, while a larger spike, another series and
//! a teaching past `feedback_ttl` still alarm; approving as real teaches nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use analyser::configuration::{DatasetSettings, Method, Settings};
use serde_json::{json, Value};

use crate::helpers::{analyser_settings, events, poll_until, Analyser, Gatherer, TestDb};
use crate::notify::{messages_about, webhook};
use crate::scenarios::ts;

const LABEL: &str = "orders";
const STEP: i64 = 600;
const DAY: i64 = 86_400;
/// The series the batch job spikes, and another one.
const BATCH: i64 = 1;
const OTHER: i64 = 2;
/// Orders the batch job adds to its series' 02:00 step (about 60 without it).
const SPIKE: u64 = 150;

/// Five nights at 02:00 UTC, the last at least an hour ago (its steps are then complete
/// and within the gatherer's backfill window).
fn nights() -> [i64; 5] {
    let now = chrono::Utc::now().timestamp();
    let last = (now - 3 * 3600).div_euclid(DAY) * DAY + 2 * 3600;
    [4, 3, 2, 1, 0].map(|days_before| last - days_before * DAY)
}

/// Ten-minute steps over a six-hour baseline, as a nightly job is watched; the test
/// decides when steps are judged, so the clock never follows wall time.
fn dataset() -> DatasetSettings {
    DatasetSettings {
        labels: vec![LABEL.to_owned()],
        time_step: Duration::from_secs(STEP as u64),
        time_ago: Some(Duration::from_secs(6 * 3600)),
        method: Method::Auto,
        idle_after: Duration::from_secs(7 * DAY as u64),
        ..DatasetSettings::all("shop")
    }
}

/// A day of quiet orders for entities 1 to 3 before the first night, until an hour after
/// the last; `spike(night, step, entity)` orders more in the night's step `step` (0: the
/// 02:00 step, 1: the one after).
fn traffic(nights: &[i64], spike: impl Fn(usize, i64, i64) -> u64) -> Vec<Value> {
    let mut rng = detect::synth::Rng::new(16);
    let mut out = Vec::new();
    let mut step = nights[0] - DAY;
    while step < nights[nights.len() - 1] + 3600 {
        for entity in 1..=3 {
            let extra = nights
                .iter()
                .position(|&n| (n..n + 2 * STEP).contains(&step))
                .map_or(0, |night| {
                    spike(night, (step - nights[night]) / STEP, entity)
                });
            let count = rng.poisson(60.0) + extra;
            events(LABEL, entity, step + STEP / 2, count, 1, &mut out);
        }
        step += STEP;
    }
    out
}

struct Run {
    gatherer: Gatherer,
    analyser: Analyser,
    received: Arc<Mutex<Vec<Value>>>,
    events: Vec<Value>,
    /// Events up to here are posted.
    posted_until: i64,
}

impl Run {
    async fn start(events: Vec<Value>, configure: impl FnOnce(&mut Settings)) -> Run {
        let (url, received) = webhook().await;
        let gatherer = Gatherer::start_accepting(Duration::from_secs(7 * DAY as u64)).await;
        let db = TestDb::new("pulse_test_a");
        let mut settings = analyser_settings(&db, &gatherer.url, vec![dataset()]);
        settings.notify.webhook_url = url.into();
        configure(&mut settings);
        let analyser = Analyser::start_with(db, settings).await;
        Run {
            gatherer,
            analyser,
            received,
            events,
            posted_until: i64::MIN,
        }
    }

    /// Posts the traffic up to an hour after `night` (the night's steps are then complete).
    async fn post_through(&mut self, night: i64) {
        let until = night + 3600;
        let part: Vec<Value> = self
            .events
            .iter()
            .filter(|e| (self.posted_until..until).contains(&e["ts"].as_i64().unwrap()))
            .cloned()
            .collect();
        self.gatherer.post(&part).await;
        self.gatherer.flushed().await;
        self.posted_until = until;
    }

    /// Posts the traffic through `night` and judges it.
    async fn night(&mut self, night: i64) {
        self.post_through(night).await;
        assert_eq!(self.analyser.pull().await["ok"], true);
    }

    /// The anomaly of `entity` that began at `at`.
    async fn found(&self, entity: i64, at: i64) -> Value {
        let state = self
            .analyser
            .state(&format!("label={LABEL}&entity_id={entity}&limit=1000"))
            .await;
        state["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| ts(&a["period_start"]) == at)
            .cloned()
            .unwrap_or_else(|| panic!("no anomaly of entity {entity} at {at}: {state:#}"))
    }

    async fn verdict(&self, id: u64, verdict: &str, body: Value) -> reqwest::Response {
        self.analyser
            .post(&format!("/api/v1/anomalies/{id}/{verdict}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn dismiss_as_expected(&self, anomaly: &Value) {
        let id = anomaly["id"].as_u64().unwrap();
        let body = json!({"reason": "expected", "comment": "the nightly batch job"});
        let reply = self.verdict(id, "dismiss", body).await;
        assert_eq!(reply.status(), 200);
        let reply: Value = reply.json().await.unwrap();
        assert_eq!(reply["data"]["status"], "dismissed", "{reply}");
        assert_eq!(reply["data"]["reason"], "expected", "{reply}");
    }

    /// Waits until the webhook got the alarm.
    async fn notified(&self, anomaly: &Value) {
        let id = anomaly["id"].as_u64().unwrap();
        poll_until(
            Duration::from_secs(30),
            "the alarm to reach the webhook",
            || async {
                (!messages_about(&self.received.lock().unwrap(), id).is_empty()).then_some(())
            },
        )
        .await;
    }

    fn messages_about(&self, anomaly: &Value) -> Vec<String> {
        messages_about(
            &self.received.lock().unwrap(),
            anomaly["id"].as_u64().unwrap(),
        )
    }
}

fn id(anomaly: &Value) -> u64 {
    anomaly["id"].as_u64().unwrap()
}

fn deviation(anomaly: &Value) -> f64 {
    anomaly["deviation"].as_f64().unwrap()
}

/// The analyser's own pull, as cron runs it: another process, which knows the teachings
/// only from the database.
async fn pull_in_another_process(run: &Run, dir: &std::path::Path) {
    let config = dir.join("analyser.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[gatherer]\nurl = \"{}\"\n\
             [[datasets]]\nname = \"shop\"\nlabels = [\"{LABEL}\"]\ntime_step = \"10m\"\n\
             time_ago = \"6h\"\nmethod = \"auto\"\nidle_after = \"7d\"\n",
            run.analyser.db.url, run.gatherer.url
        ),
    )
    .unwrap();
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_analyser"))
        .arg("--config")
        .arg(&config)
        .arg("pull")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_nightly_batch_job_dismissed_as_expected_twice_raises_no_alarm_on_the_third_night() {
    let nights = nights();
    // The batch job spikes entity 1 at 02:00 every night, three times as much on the
    // fourth; on the fifth its usual spike goes on to three times as much at 02:10. On
    // the third night entity 2 gets the same spike, once.
    let events = traffic(&nights, |night, step, entity| match (night, step, entity) {
        (3, 0, BATCH) | (4, 1, BATCH) => 3 * SPIKE,
        (_, 0, BATCH) | (2, 0, OTHER) => SPIKE,
        _ => 0,
    });
    let mut run = Run::start(events, |_| {}).await;

    // First night: an alarm, sent; the analyst dismisses it as expected.
    run.night(nights[0]).await;
    let first = run.found(BATCH, nights[0]).await;
    assert_eq!(first["severity"], "alarm", "{first:#}");
    assert!(first["taught_by"].is_null(), "{first:#}");
    run.notified(&first).await;
    run.dismiss_as_expected(&first).await;

    // Second night: the same spike is what was taught, a warning naming the teaching.
    run.night(nights[1]).await;
    let second = run.found(BATCH, nights[1]).await;
    assert_eq!(second["severity"], "warning", "{second:#}");
    assert_eq!(second["taught_by"], id(&first), "{second:#}");
    assert_eq!(second["metric"], first["metric"], "{second:#}");
    run.dismiss_as_expected(&second).await;

    // Third night, judged by another process (a restart): the teachings are the
    // database's. The batch job is a warning; entity 2's same spike is an alarm.
    let dir = std::env::temp_dir().join(&run.analyser.db.name);
    std::fs::create_dir_all(&dir).unwrap();
    run.post_through(nights[2]).await;
    pull_in_another_process(&run, &dir).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.analyser.pull().await["ok"], true);
    let third = run.found(BATCH, nights[2]).await;
    assert_eq!(third["severity"], "warning", "{third:#}");
    assert_eq!(
        third["taught_by"],
        id(&second),
        "the newest teaching: {third:#}"
    );
    assert!(
        third["signals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["severity"] == "warning"),
        "{third:#}"
    );
    let other = run.found(OTHER, nights[2]).await;
    assert_eq!(
        other["severity"], "alarm",
        "another series is unaffected: {other:#}"
    );
    assert!(other["taught_by"].is_null(), "{other:#}");
    // The webhook posts alarms oldest first: once entity 2's is there, the batch job's
    // (recorded before it, in the same step) would have been too.
    run.notified(&other).await;
    assert!(id(&third) < id(&other));
    assert_eq!(run.messages_about(&third), Vec::<String>::new());
    assert_eq!(run.messages_about(&second), Vec::<String>::new());

    // Fourth night: three times the spike is more than was taught: an alarm, sent.
    run.night(nights[3]).await;
    let fourth = run.found(BATCH, nights[3]).await;
    assert!(
        deviation(&fourth) > 1.5 * deviation(&first).max(deviation(&second)),
        "{fourth:#}"
    );
    assert_eq!(
        fourth["severity"], "alarm",
        "teaching never hides an anomaly larger than what was taught: {fourth:#}"
    );
    assert!(fourth["taught_by"].is_null(), "{fourth:#}");
    run.notified(&fourth).await;

    // Fifth night: the usual spike, then three times as much: the incident that opened
    // as what was taught grows past it, and is an alarm again, sent.
    run.night(nights[4]).await;
    let fifth = run.found(BATCH, nights[4]).await;
    assert!(
        ts(&fifth["period_end"]) >= nights[4] + 2 * STEP,
        "one incident: {fifth:#}"
    );
    assert_eq!(
        fifth["severity"], "alarm",
        "an incident grown past its teaching alarms: {fifth:#}"
    );
    assert!(fifth["taught_by"].is_null(), "{fifth:#}");
    run.notified(&fifth).await;
}

#[tokio::test]
async fn a_teaching_past_feedback_ttl_no_longer_caps() {
    let nights = &nights()[2..];
    let events = traffic(nights, |_, step, entity| {
        if (step, entity) == (0, BATCH) {
            SPIKE
        } else {
            0
        }
    });
    let mut run = Run::start(events, |settings| {
        settings.feedback.feedback_ttl = Duration::from_secs(36 * 3600);
    })
    .await;
    run.night(nights[0]).await;
    let first = run.found(BATCH, nights[0]).await;
    assert_eq!(first["severity"], "alarm", "{first:#}");
    run.dismiss_as_expected(&first).await;

    // A day later the teaching holds: a warning.
    run.night(nights[1]).await;
    let second = run.found(BATCH, nights[1]).await;
    assert_eq!(second["severity"], "warning", "{second:#}");
    assert_eq!(second["taught_by"], id(&first), "{second:#}");

    // Two days later it has expired (36 h): the same spike alarms again, and is sent.
    run.night(nights[2]).await;
    let third = run.found(BATCH, nights[2]).await;
    assert_eq!(
        third["severity"], "alarm",
        "a teaching expires after feedback_ttl: {third:#}"
    );
    assert!(third["taught_by"].is_null(), "{third:#}");
    run.notified(&third).await;
}

#[tokio::test]
async fn approving_as_real_teaches_nothing_and_a_reason_must_fit_its_verdict() {
    let nights = &nights()[2..];
    let events = traffic(nights, |_, step, entity| {
        if (step, entity) == (0, BATCH) {
            SPIKE
        } else {
            0
        }
    });
    let mut run = Run::start(events, |_| {}).await;
    run.night(nights[0]).await;
    let first = run.found(BATCH, nights[0]).await;
    assert_eq!(first["severity"], "alarm", "{first:#}");

    // Reasons that are unknown or do not fit the verdict are refused, naming the field,
    // and change nothing.
    for (verdict, body) in [
        ("dismiss", json!({"reason": "real"})),
        ("approve", json!({"reason": "expected"})),
        ("dismiss", json!({"reason": "boring"})),
        ("approve", json!({"reason": 1, "comment": "x"})),
    ] {
        let reply = run.verdict(id(&first), verdict, body.clone()).await;
        assert_eq!(reply.status(), 400, "{verdict} {body}");
        let reply: Value = reply.json().await.unwrap();
        assert_eq!(reply["ok"], false);
        assert_eq!(reply["parameter"], "reason", "{verdict} {body}: {reply}");
    }
    assert_eq!(run.found(BATCH, nights[0]).await["status"], "open");

    for night in &nights[..2] {
        let anomaly = run.found(BATCH, *night).await;
        assert_eq!(anomaly["severity"], "alarm", "{anomaly:#}");
        let reply = run
            .verdict(id(&anomaly), "approve", json!({"reason": "real"}))
            .await;
        assert_eq!(reply.status(), 200);
        let reply: Value = reply.json().await.unwrap();
        assert_eq!(reply["data"]["status"], "approved", "{reply}");
        assert_eq!(reply["data"]["reason"], "real", "{reply}");
        run.night(night + DAY).await;
    }
    // Approved as real twice, the spike is still news on the third night: an alarm, sent.
    let third = run.found(BATCH, nights[2]).await;
    assert_eq!(third["severity"], "alarm", "{third:#}");
    assert!(third["taught_by"].is_null(), "{third:#}");
    // What the series expects at 02:00 is still its quiet level: the spikes were not learnt.
    let expected = |a: &Value| a["expected"].as_f64().unwrap();
    assert!(
        expected(&third) < expected(&first) + 0.2 * SPIKE as f64,
        "first {first:#}, third {third:#}"
    );
    run.notified(&third).await;
}
