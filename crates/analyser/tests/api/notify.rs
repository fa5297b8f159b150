//! New alarms reach a Slack-style webhook: retried when it fails, sent once each.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use analyser::configuration::Method;
use serde_json::Value;

use crate::helpers::{analyser_settings, poll_until, shop, Analyser, Gatherer, TestDb};
use crate::scenarios::flood;

/// A webhook that fails its first request, then records every message.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
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

#[tokio::test]
async fn each_new_alarm_is_posted_once_despite_a_failing_webhook() {
    let (url, received) = webhook().await;
    let gatherer = Gatherer::start().await;
    gatherer.post(&flood().1).await;
    gatherer.flushed().await;
    let db = TestDb::new("pulse_test_a");
    let mut settings =
        analyser_settings(&db, &gatherer.url, vec![shop(&["checkout"], Method::Auto)]);
    settings.notify.webhook_url = url;
    let analyser = Analyser::start_with(db, settings).await;
    analyser.pull().await;

    let alarms = analyser.state("severity=alarm&limit=1000").await;
    let ids: Vec<u64> = alarms["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    assert!(!ids.is_empty());
    let messages = poll_until(
        Duration::from_secs(30),
        "every alarm to be posted",
        || async {
            let messages = received.lock().unwrap().clone();
            (messages.len() >= ids.len()).then_some(messages)
        },
    )
    .await;
    assert_eq!(messages.len(), ids.len(), "{messages:#?}");
    for id in &ids {
        let sent = messages
            .iter()
            .filter(|m| m["text"].as_str().unwrap().contains(&format!("#{id}:")))
            .count();
        assert_eq!(sent, 1, "alarm {id}: {messages:#?}");
    }
    let flood = messages
        .iter()
        .filter_map(|m| m["text"].as_str())
        .find(|t| t.contains("entity 3"));
    assert!(
        flood.is_some_and(|t| t.contains("checkout (count)") && t.contains("observed 600")),
        "{messages:#?}"
    );

    // Each is marked as notified, so a restart does not post it again.
    // (The mark is written just after the webhook answers: poll for it.)
    let pool = analyser.db.pool().await;
    poll_until(
        Duration::from_secs(10),
        "every alarm marked as notified",
        || async {
            let unsent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM anomalies WHERE severity = 'alarm' AND notified_at IS NULL",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (unsent == 0).then_some(())
        },
    )
    .await;
    assert_eq!(received.lock().unwrap().len(), ids.len(), "posted again");
}
