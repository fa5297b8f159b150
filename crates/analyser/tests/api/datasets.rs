//! Datasets at runtime: created, changed and deleted through the API, judged from the
//! next step on without a restart, kept by the database across restarts.

use std::collections::BTreeMap;

use analyser::configuration::{DatasetSettings, Method};
use reqwest::Method as Http;
use serde_json::{json, Value};

use crate::helpers::{
    analyser_settings, events, minutes_ago, shop, Analyser, Gatherer, TestDb, ANALYST, USER, VIEWER,
};

/// The steady part of a series: 96 to 104, the same ten values over and over.
const PATTERN: [i64; 10] = [0, 3, -2, 4, -3, 1, -4, 2, -1, 0];
/// A spike over two steps, about 2.68 then 2.32 standard deviations off over the 30-step
/// window: nothing under thresholds of 2.8 / 3; an alarm (confirmed by the second step)
/// under 2 / 2.5.
const SPIKE: i64 = 108;
/// Minutes of history before the first spike.
const HISTORY: i64 = 40;

/// One event a step on `label`, from `first` (a step start) for `steps` steps: entity 1
/// spikes for two steps from step `HISTORY`, entity 2 (its pattern three steps later)
/// from `HISTORY + 3`, so both spikes are judged over the same windows of values; entity 3
/// jumps tenfold for two steps from `HISTORY`, an alarm under any of the thresholds, and
/// again for good from `HISTORY + 5`.
fn pay_traffic(label: &str, first: i64, steps: std::ops::Range<i64>) -> Vec<Value> {
    let mut out = Vec::new();
    for step in steps {
        for (entity, lag, spike) in [(1, 0, SPIKE), (2, 3, SPIKE), (3, 0, 1000)] {
            let again = entity == 3 && step >= HISTORY + 5;
            let value = if again || (HISTORY + lag..HISTORY + lag + 2).contains(&step) {
                spike
            } else {
                100 + PATTERN[(step - lag).rem_euclid(10) as usize]
            };
            events(label, entity, first + step * 60 + 30, 1, value, &mut out);
        }
    }
    out
}

/// The `pay` dataset's count anomalies of one entity, from `/api/v1/state`.
async fn anomalies_of(analyser: &Analyser, entity: i64) -> Vec<Value> {
    let state = analyser.state("limit=1000").await;
    state["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["dataset"] == "pay" && a["entity_id"] == entity && a["metric"] == "count")
        .cloned()
        .collect()
}

fn at_step(anomaly: &Value, first: i64, step: i64) -> bool {
    let start = chrono::DateTime::parse_from_rfc3339(anomaly["period_start"].as_str().unwrap())
        .unwrap()
        .timestamp();
    start == first + step * 60
}

#[tokio::test]
async fn a_dataset_created_changed_and_deleted_through_the_api_is_judged_accordingly_and_survives_a_restart(
) {
    let gatherer = Gatherer::start().await;
    let db = TestDb::new("pulse_test_a");
    let settings = analyser_settings(&db, &gatherer.url, vec![shop(&["checkout"], Method::Auto)]);
    let mut analyser = Analyser::start_with(db, settings.clone()).await;

    // The config file seeded the table; a viewer reads it, an analyst may not change it.
    let listed = analyser.get_json("/api/v1/datasets").await;
    assert_eq!(listed["data"][0]["name"], "shop", "{listed}");
    assert_eq!(listed["data"][0]["time_step"], "1m", "{listed}");
    let viewer = analyser
        .request_as(VIEWER, Http::GET, "/api/v1/datasets/shop")
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 200);
    let pay = json!({
        "name": "pay", "labels": ["pay"], "time_step": "1m", "time_ago": "30m",
        "method": "three_sigma", "min_count_per_step": 1, "warning_multiplier": 2.8,
    });
    for (method, path) in [
        (Http::POST, "/api/v1/datasets"),
        (Http::PUT, "/api/v1/datasets/shop"),
        (Http::DELETE, "/api/v1/datasets/shop"),
    ] {
        let refused = analyser
            .request_as(ANALYST, method.clone(), path)
            .json(&pay)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{method} {path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["required_role"], "admin", "{body}");
    }

    // Bad input: a 400 naming the field, and nothing created.
    for (body, field) in [
        (json!({"name": "pay", "time_ago": "90s"}), "time_ago"),
        (json!({"name": "pay", "time_step": 60}), "time_step"),
        (
            json!({"name": "pay", "warning_multiplier": 4}),
            "alarm_multiplier",
        ),
        (json!({"name": "pay", "method": "five_sigma"}), "method"),
        (json!({"name": "pay", "colour": "red"}), "body"),
    ] {
        let refused = analyser
            .post("/api/v1/datasets")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{body}");
        let reply: Value = refused.json().await.unwrap();
        assert_eq!(reply["parameter"], field, "{body}: {reply}");
    }
    let missing = analyser.get("/api/v1/datasets/pay").send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // Created, it is judged from the next rows on: entity 3's jump is an alarm, entity 1's
    // spike is below the thresholds.
    let created = analyser
        .post("/api/v1/datasets")
        .json(&pay)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let again = analyser
        .post("/api/v1/datasets")
        .json(&pay)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400, "a name is taken once");
    let first = minutes_ago(HISTORY + 13);
    gatherer
        .post(&pay_traffic("pay", first, 0..HISTORY + 3))
        .await;
    gatherer.flushed().await;
    analyser.pull().await;
    let jump = anomalies_of(&analyser, 3).await;
    assert!(
        jump.iter()
            .any(|a| at_step(a, first, HISTORY) && a["severity"] == "alarm"),
        "{jump:#?}"
    );
    let spike = anomalies_of(&analyser, 1).await;
    assert_eq!(spike, [] as [Value; 0], "below the thresholds");

    // Lower thresholds judge the next step: entity 2's same spike is an alarm.
    let changed = analyser
        .request_as(USER, Http::PUT, "/api/v1/datasets/pay")
        .json(&json!({
            "labels": ["pay"], "time_step": "1m", "time_ago": "30m",
            "method": "three_sigma", "min_count_per_step": 1, "warning_multiplier": 2.0,
            "alarm_multiplier": 2.5,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["model"]["action"], "kept", "{changed}");
    assert_eq!(changed["data"]["alarm_multiplier"], 2.5, "{changed}");
    gatherer
        .post(&pay_traffic("pay", first, HISTORY + 3..HISTORY + 8))
        .await;
    gatherer.flushed().await;
    analyser.pull().await;
    let second = anomalies_of(&analyser, 2).await;
    let second: Vec<_> = second
        .iter()
        .filter(|a| at_step(a, first, HISTORY + 3))
        .collect();
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_eq!(second[0]["severity"], "alarm", "{:#}", second[0]);
    let firing = |anomalies: Vec<Value>| -> Vec<String> {
        anomalies
            .iter()
            .filter(|a| at_step(a, first, HISTORY + 5))
            .map(|a| a["state"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(firing(anomalies_of(&analyser, 3).await), ["firing"]);

    // A restart with the same config file keeps what the API changed.
    analyser.restart(settings).await;
    let kept = analyser.get_json("/api/v1/datasets/pay").await;
    assert_eq!(kept["data"]["alarm_multiplier"], 2.5, "{kept}");
    let names: Vec<_> = analyser.get_json("/api/v1/datasets").await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["pay", "shop"]);

    // Deleted, it is judged no more; what it found stays, its firing incident resolved.
    let deleted = analyser
        .request_as(USER, Http::DELETE, "/api/v1/datasets/pay")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = analyser.get("/api/v1/datasets/pay").send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(firing(anomalies_of(&analyser, 3).await), ["resolved"]);
    let before = analyser.state("limit=1000").await["data"]
        .as_array()
        .unwrap()
        .len();
    let mut flood = Vec::new();
    for step in HISTORY + 8..HISTORY + 11 {
        events("pay", 1, first + step * 60 + 30, 1, 10_000, &mut flood);
    }
    gatherer.post(&flood).await;
    gatherer.flushed().await;
    let pulled = analyser.pull().await;
    assert_eq!(pulled["rows"], 3, "{pulled}");
    assert_eq!(anomalies_of(&analyser, 2).await.len(), 1);
    let after = analyser.state("limit=1000").await["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before, "a deleted dataset judges nothing new");
}

#[tokio::test]
async fn a_coarser_time_step_is_rebuilt_from_the_stored_history_and_another_learns_afresh() {
    let gatherer = Gatherer::start().await;
    let pay = DatasetSettings {
        labels: vec!["pay".into()],
        time_ago: Some(std::time::Duration::from_secs(1800)),
        ..DatasetSettings::all("pay")
    };
    let analyser = Analyser::start(&gatherer.url, vec![pay]).await;
    let first = minutes_ago(45);
    let mut sent = Vec::new();
    let mut by_five_minutes: BTreeMap<i64, (i64, u64)> = BTreeMap::new();
    for step in 0..40 {
        let (ts, value) = (first + step * 60 + 30, 100 + step);
        events("pay", 1, ts, 2, value, &mut sent);
        let total = by_five_minutes.entry(ts.div_euclid(300) * 300).or_default();
        *total = (total.0 + 2 * value, total.1 + 2);
    }
    gatherer.post(&sent).await;
    gatherer.flushed().await;
    analyser.pull().await;
    let put = |body: Value| {
        analyser
            .request_as(USER, Http::PUT, "/api/v1/datasets/pay")
            .json(&body)
            .send()
    };

    let rebuilt = put(json!({"labels": ["pay"], "time_step": "5m", "time_ago": "30m"}))
        .await
        .unwrap();
    assert_eq!(rebuilt.status(), 200);
    let rebuilt: Value = rebuilt.json().await.unwrap();
    assert_eq!(rebuilt["model"]["action"], "rebuilt", "{rebuilt}");
    let steps = by_five_minutes.len();
    assert!(
        rebuilt["model"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("from {steps} steps")),
        "{rebuilt}"
    );
    let to = chrono::Utc::now().timestamp();
    let series = analyser
        .get_json(&format!(
            "/api/v1/series?dataset=pay&label=pay&entity_id=1&from={first}&to={to}"
        ))
        .await;
    assert_eq!(series["time_step_seconds"], 300, "{series:#}");
    let points: BTreeMap<i64, (i64, u64)> = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["events"].as_u64().unwrap() > 0)
        .map(|p| {
            let at = chrono::DateTime::parse_from_rfc3339(p["step_start"].as_str().unwrap())
                .unwrap()
                .timestamp();
            (
                at,
                (
                    p["count"].as_f64().unwrap() as i64,
                    p["events"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(points, by_five_minutes, "the old steps summed into the new");

    // Seven minutes is no multiple of five: the history goes, the dataset learns afresh.
    let afresh = put(json!({"labels": ["pay"], "time_step": "7m", "time_ago": "70m"}))
        .await
        .unwrap();
    assert_eq!(afresh.status(), 200);
    let afresh: Value = afresh.json().await.unwrap();
    assert_eq!(afresh["model"]["action"], "afresh", "{afresh}");
    assert!(afresh["model"]["message"]
        .as_str()
        .unwrap()
        .contains("learn afresh"));
    let gone = analyser
        .get(&format!(
            "/api/v1/series?dataset=pay&label=pay&entity_id=1&from={first}&to={to}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "no history is kept at the new step");
}
