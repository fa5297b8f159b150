//! Alarms reach a Slack-style webhook: one message when an incident fires, one when it
//! resolves, retried when the webhook fails, never twice, and no label can ping a channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use analyser::configuration::Method;
use serde_json::Value;

use crate::helpers::{analyser_settings, poll_until, shop, Analyser, Gatherer, TestDb};
use crate::scenarios::{traffic, ANOMALY_AT};

/// A webhook that fails its first request, then records every message.
pub async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls = Arc::new(Mutex::new(0u32));
    let (store, counter) = (received.clone(), calls.clone());
    let server = HttpServer::new(move || {
        let (store, counter) = (store.clone(), counter.clone());
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<Value>| {
                let (store, counter) = (store.clone(), counter.clone());
                async move {
                    let mut calls = counter.lock().unwrap();
                    *calls += 1;
                    if *calls == 1 {
                        return HttpResponse::InternalServerError().finish();
                    }
                    store.lock().unwrap().push(body.into_inner());
                    HttpResponse::Ok().body("ok")
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}/hook", server.addrs()[0]);
    tokio::spawn(server.run());
    (url, received)
}

/// The flood of `scenarios::flood`, on a label that tries to ping a Slack channel.
const LABEL: &str = "<!channel> & co";

pub fn messages_about(messages: &[Value], id: u64) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m["text"].as_str())
        .filter(|t| {
            t.starts_with(&format!("Pulse alarm #{id}:"))
                || t.starts_with(&format!("Pulse alarm #{id} "))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn an_incident_is_posted_once_when_it_fires_and_once_when_it_resolves() {
    let (url, received) = webhook().await;
    let gatherer = Gatherer::start().await;
    let mut rng = detect::synth::Rng::new(1);
    let (start, events) = traffic(LABEL, |step, entity| {
        let flood = entity == 3 && (ANOMALY_AT..ANOMALY_AT + 3).contains(&step);
        (if flood { 600 } else { rng.poisson(60.0) }, 1)
    });
    let flood_start = start + ANOMALY_AT * 60;
    // First the history up to the flood's second minute: the incident is firing.
    let (before, after): (Vec<Value>, Vec<Value>) = events
        .into_iter()
        .partition(|e| e["ts"].as_i64().unwrap() < flood_start + 120);
    gatherer.post(&before).await;
    gatherer.flushed().await;
    let db = TestDb::new("pulse_test_a");
    let mut dataset = shop(&[LABEL], Method::Auto);
    // The test, not wall time, says when the traffic goes on.
    dataset.idle_after = Duration::from_secs(3600);
    let mut settings = analyser_settings(&db, &gatherer.url, vec![dataset]);
    settings.notify.webhook_url = url.into();
    let analyser = Analyser::start_with(db, settings).await;
    analyser.pull().await;

    let firing = analyser.state("severity=alarm&state=firing").await;
    let incident = firing["data"].as_array().unwrap();
    assert_eq!(incident.len(), 1, "{firing:#}");
    let id = incident[0]["id"].as_u64().unwrap();
    assert_eq!(incident[0]["entity_id"], 3);
    let first = poll_until(Duration::from_secs(30), "the firing message", || async {
        let messages = messages_about(&received.lock().unwrap(), id);
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(first.len(), 1, "{first:#?}");
    let text = &first[0];
    // Every check that fired, in numbers a person reads; the label cannot ping anybody.
    assert!(
        text.contains("count 600 (9.") || text.contains("count 600 (10"),
        "{text}"
    );
    assert!(text.contains("population 600"), "{text}");
    assert!(
        text.contains("`&lt;!channel&gt; &amp; co` entity 3"),
        "{text}"
    );
    assert!(
        !text.contains("<!channel>") && text.contains("still firing"),
        "{text}"
    );

    // The rest of the traffic: the flood ends, the incident resolves, one more message.
    gatherer.post(&after).await;
    gatherer.flushed().await;
    analyser.pull().await;
    let resolved = analyser.state("state=resolved&entity_id=3").await;
    assert_eq!(resolved["data"][0]["id"], id, "{resolved:#}");
    assert_eq!(
        resolved["data"][0]["resolved_at"],
        resolved["data"][0]["period_end"]
    );
    let both = poll_until(
        Duration::from_secs(30),
        "the resolution message",
        || async {
            let messages = messages_about(&received.lock().unwrap(), id);
            (messages.len() >= 2).then_some(messages)
        },
    )
    .await;
    assert_eq!(both.len(), 2, "{both:#?}");
    assert!(
        both[1].contains(&format!("#{id} resolved")) && both[1].contains("back to normal"),
        "{both:#?}"
    );
    // The resolution names the label as harmlessly as the alarm did.
    assert!(
        both[1].contains("`&lt;!channel&gt; &amp; co` entity 3") && !both[1].contains("<!"),
        "{both:#?}"
    );
    // Nothing else was posted: no second incident on the recovery, nothing on the quiet
    // entities.
    assert_eq!(
        received.lock().unwrap().len(),
        2,
        "{:#?}",
        received.lock().unwrap()
    );

    // Both are marked as sent, so a restart posts neither again.
    // (The mark is written just after the webhook answers: poll for it.)
    let pool = analyser.db.pool().await;
    poll_until(
        Duration::from_secs(10),
        "the alarm marked as notified",
        || async {
            let unsent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM anomalies WHERE severity = 'alarm' \
             AND (notified_at IS NULL OR resolved_notified_at IS NULL)",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (unsent == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn yesterdays_digest_is_posted_once_in_blocks_with_counts_and_the_top_incident() {
    let (url, received) = webhook().await;
    let gatherer = Gatherer::start().await;
    // Five hours of traffic ending at midnight UTC, a flood on entity 3 near the end.
    let midnight = chrono::Utc::now().timestamp().div_euclid(86_400) * 86_400;
    let start = midnight - crate::scenarios::HISTORY * 60;
    let mut rng = detect::synth::Rng::new(3);
    let mut events = Vec::new();
    for step in 0..crate::scenarios::HISTORY {
        for entity in 1..=6 {
            let flood = entity == 3 && (ANOMALY_AT..ANOMALY_AT + 3).contains(&step);
            let count = if flood { 600 } else { rng.poisson(60.0) };
            crate::helpers::events(
                "checkout",
                entity,
                start + step * 60 + 30,
                count,
                1,
                &mut events,
            );
        }
    }
    gatherer.post(&events).await;
    gatherer.flushed().await;
    let db = TestDb::new("pulse_test_a");
    let mut dataset = shop(&["checkout"], Method::Auto);
    // The traffic has ended: the clock soon follows wall time past midnight.
    dataset.idle_after = Duration::from_secs(1);
    let mut settings = analyser_settings(&db, &gatherer.url, vec![dataset]);
    settings.notify.webhook_url = url.into();
    settings.notify.digest = true;
    let analyser = Analyser::start_with(db, settings).await;
    analyser.pull().await;
    let flood = analyser.state("severity=alarm&entity_id=3").await;
    let id = flood["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            let at = a["period_start"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp()
                < midnight
        })
        .map(|a| a["id"].as_u64().unwrap());
    let id = id.unwrap_or_else(|| panic!("no flood alarm: {flood:#}"));

    // Pulls judge the quiet steps past midnight; then yesterday is complete and sent.
    let digest = poll_until(Duration::from_secs(60), "the daily digest", || async {
        let sent = {
            let messages = received.lock().unwrap();
            messages.iter().find(|m| m.get("blocks").is_some()).cloned()
        };
        if sent.is_none() {
            analyser.pull().await;
        }
        sent
    })
    .await;
    let yesterday = chrono::DateTime::from_timestamp(midnight - 86_400, 0)
        .unwrap()
        .date_naive()
        .to_string();
    let text = digest["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "Pulse daily digest: dataset `shop` on {yesterday} (UTC): "
        )),
        "{text}"
    );
    let blocks = digest["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 3, "{digest:#}");
    let counts = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        counts.contains(" alarm") && counts.ends_with("0 silenced"),
        "{counts}"
    );
    let top = blocks[2]["text"]["text"].as_str().unwrap();
    assert!(
        top.starts_with(&format!(
            "Top incidents:\n• #{id} alarm `checkout` entity 3: "
        )),
        "{top}"
    );
    // Recorded, so it is not posted again (nor after a restart).
    let pool = analyser.db.pool().await;
    let days: Vec<chrono::NaiveDate> = sqlx::query_scalar("SELECT day FROM digests")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].to_string(), yesterday);
    let digests = received
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.get("blocks").is_some())
        .count();
    assert_eq!(digests, 1);
}
