//! Silences: an anomaly found inside one is recorded and shown with the silence's id, never
//! sent to the webhook and counted apart in the report; ended silences stay as history.

use std::time::Duration;

use analyser::configuration::Method;
use reqwest::Method as Http;
use serde_json::{json, Value};

use crate::helpers::{
    analyser_settings, poll_until, shop, Analyser, Gatherer, TestDb, ANALYST, VIEWER,
};
use crate::notify::{messages_about, webhook};
use crate::scenarios::{traffic, ANOMALY_AT};

/// Floods of three minutes: entity 3 first, entity 5 eight minutes later, entity 1 last.
const FLOODS: [(i64, i64); 3] = [(3, ANOMALY_AT), (5, ANOMALY_AT + 8), (1, ANOMALY_AT + 15)];

#[tokio::test]
async fn an_anomaly_inside_a_silence_is_shown_marked_but_never_notified_nor_reported_as_an_alarm() {
    let (url, received) = webhook().await;
    let gatherer = Gatherer::start().await;
    let db = TestDb::new("pulse_test_a");
    let mut settings =
        analyser_settings(&db, &gatherer.url, vec![shop(&["checkout"], Method::Auto)]);
    settings.notify.webhook_url = url.into();
    // Started before the traffic exists: the timer's first pull finds nothing, the
    // silences are in place before anything is judged.
    let analyser = Analyser::start_with(db, settings).await;
    let mut rng = detect::synth::Rng::new(7);
    let (start, events) = traffic("checkout", |step, entity| {
        let flood = FLOODS
            .iter()
            .any(|(e, at)| *e == entity && (*at..at + 3).contains(&step));
        (if flood { 600 } else { rng.poisson(60.0) }, 1)
    });
    let flood_at = |entity: i64| start + FLOODS.iter().find(|(e, _)| *e == entity).unwrap().1 * 60;

    let create = |body: Value| {
        analyser
            .request_as(ANALYST, Http::POST, "/api/v1/silences")
            .json(&body)
            .send()
    };
    // Entity 3: a span from just before its flood, for two hours.
    let span = create(json!({
        "dataset": "shop", "label": "checkout", "entity_id": 3,
        "starts_at": chrono::DateTime::from_timestamp(flood_at(3) - 120, 0).unwrap(),
        "duration": "2h", "comment": "load test on entity 3",
    }))
    .await
    .unwrap();
    assert_eq!(span.status(), 201);
    let span: Value = span.json().await.unwrap();
    let span_id = span["data"]["id"].as_u64().unwrap();
    assert_eq!(span["data"]["created_by"], ANALYST);
    assert_eq!(span["data"]["status"], "active");

    // Entity 5: every week on its flood's weekday, a few minutes around it, Paris time.
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let local = |seconds: i64| paris.to_datetime(jiff::Timestamp::from_second(seconds).unwrap());
    let (from, to) = (local(flood_at(5) - 60), local(flood_at(5) + 300));
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [from.weekday().to_monday_zero_offset() as usize];
    let weekly = create(json!({
        "dataset": "shop", "entity_id": 5,
        "starts_at": chrono::DateTime::from_timestamp(start, 0).unwrap(),
        "weekly": {"days": [day], "from": format!("{:02}:{:02}", from.hour(), from.minute()),
                   "to": format!("{:02}:{:02}", to.hour(), to.minute()), "time_zone": "Europe/Paris"},
        "comment": "nightly batch",
    }))
    .await
    .unwrap();
    assert_eq!(weekly.status(), 201);
    let weekly: Value = weekly.json().await.unwrap();
    let weekly_id = weekly["data"]["id"].as_u64().unwrap();
    assert!(weekly["data"]["ends_at"].is_null());

    gatherer.post(&events).await;
    gatherer.flushed().await;
    analyser.pull().await;

    let alarms = analyser.state("severity=alarm").await;
    let by_entity = |entity: i64| {
        alarms["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["entity_id"] == entity)
            .unwrap_or_else(|| panic!("no alarm on entity {entity}: {alarms:#}"))
            .clone()
    };
    let (silenced, weekly_silenced, loud) = (by_entity(3), by_entity(5), by_entity(1));
    assert_eq!(silenced["silenced_by"], span_id);
    assert_eq!(weekly_silenced["silenced_by"], weekly_id);
    assert!(loud["silenced_by"].is_null(), "{loud:#}");

    // The loud alarm is posted (after a failed first attempt); it came last, so had the
    // silenced ones been sent they would have been sent before it.
    let loud_id = loud["id"].as_u64().unwrap();
    poll_until(
        Duration::from_secs(30),
        "the loud alarm's message",
        || async { (!messages_about(&received.lock().unwrap(), loud_id).is_empty()).then_some(()) },
    )
    .await;
    for quiet in [&silenced, &weekly_silenced] {
        let id = quiet["id"].as_u64().unwrap();
        assert_eq!(
            messages_about(&received.lock().unwrap(), id),
            Vec::<String>::new()
        );
    }

    // The report leaves them out of its alarms and counts them.
    let report: Value = analyser.get_json("/api/v1/report?dataset=shop").await;
    let attributes: Vec<&str> = report["Result"]["Alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Attribute"].as_str().unwrap())
        .collect();
    assert_eq!(attributes, ["1"], "{report:#}");
    assert_eq!(report["Result"]["Silenced"], 2, "{report:#}");

    // Ending one keeps it as history; a viewer reads the list.
    let ended = analyser
        .request_as(
            ANALYST,
            Http::DELETE,
            &format!("/api/v1/silences/{span_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    let ended: Value = ended.json().await.unwrap();
    assert_eq!(ended["data"]["status"], "expired");
    assert_eq!(ended["data"]["ended_by"], ANALYST);
    let list: Value = analyser
        .request_as(VIEWER, Http::GET, "/api/v1/silences?dataset=shop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<(u64, &str)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_u64().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [(weekly_id, "active"), (span_id, "expired")]);
    let missing = analyser
        .request_as(ANALYST, Http::DELETE, "/api/v1/silences/999999")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_bad_silence_gets_400_naming_the_field() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    for (body, parameter) in [
        (
            json!({"dataset": "shopp", "duration": "1h", "comment": "x"}),
            "dataset",
        ),
        (json!({"dataset": "shop", "comment": "x"}), "ends_at"),
        (
            json!({"dataset": "shop", "duration": "1h", "comment": ""}),
            "comment",
        ),
        (json!({"dataset": "shop", "duration": "1h"}), "body"),
        (
            json!({"dataset": "shop", "duration": "1h", "comment": "x", "entity": 3}),
            "body",
        ),
        (
            json!({"dataset": "shop", "comment": "x",
                   "weekly": {"days": ["mon"], "from": "01:00", "to": "02:00", "time_zone": "Mars/Olympus"}}),
            "weekly.time_zone",
        ),
    ] {
        let response = analyser
            .post("/api/v1/silences")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["parameter"], parameter, "{body}: {reply}");
    }
    let list: Value = analyser.get_json("/api/v1/silences").await;
    assert_eq!(list["data"], json!([]));
}
