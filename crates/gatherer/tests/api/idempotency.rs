//! Idempotent retries: a request retried with the same `Idempotency-Key` is counted once,
//! whether the first attempt's reply was lost to a cut connection, the gatherer was killed
//! in between (write-ahead log on), the retries race each other, or the first attempt was
//! refused with 503. Bad keys get 400.

use std::collections::HashMap;
use std::time::Duration;

use detect::synth::Rng;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::helpers::{poll_until, spawn_app, spawn_app_with, table_totals, TestApp, TestDb};
use crate::metrics::sample;
use crate::outage::{pending_rows, spawn_app_behind_proxy};
use crate::process::{signal, start_with};
use crate::wal::TempDir;

/// A request's body and what it adds to the table: a batch of a shop's traffic, entities
/// of very different sizes, prices that jitter.
fn shop_batch(rng: &mut Rng, entity_base: i64, events: usize) -> (String, (i128, u64)) {
    let mut items = Vec::with_capacity(events);
    let mut sum = 0i128;
    for _ in 0..events {
        let (label, value) = if rng.uniform() < 0.7 {
            ("checkout", 1 + rng.overdispersed(2.0, 0.4) as i64)
        } else {
            (
                "price",
                (1_999.0 * (1.0 + 0.03 * rng.normal())).round() as i64,
            )
        };
        let id = entity_base + rng.between(0.0, 50f64.ln()).exp() as i64;
        sum += i128::from(value);
        items.push(json!({"label": label, "id": id, "value": value}));
    }
    (json!(items).to_string(), (sum, events as u64))
}

async fn post_keyed(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/gather"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /gather")
}

fn replayed(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// Sends a whole request with `key`, then closes the connection without reading the
/// reply: the client cannot know whether it was counted.
async fn send_and_cut(base: &str, key: &str, body: &str) {
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /gather HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         idempotency-key: {key}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    drop(stream);
}

async fn accepted_total(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sample(&text, "gatherer_events_accepted_total")
}

#[tokio::test]
async fn a_client_cut_off_after_sending_retries_with_the_same_key_and_is_counted_once() {
    let mut app = spawn_app().await;
    let pool = app.db.pool().await;
    let mut rng = Rng::new(1501);
    let (body, totals) = shop_batch(&mut rng, 1_000, 40);

    send_and_cut(&app.address, "order-7781-attempt", &body).await;
    // The gatherer handled the request though nobody read the reply.
    poll_until(
        Duration::from_secs(10),
        "the cut request counted",
        || async { (table_totals(&pool).await == totals).then_some(()) },
    )
    .await;

    let retry = post_keyed(&app.client, &app.address, "order-7781-attempt", &body).await;
    assert_eq!(retry.status(), 200);
    assert!(replayed(&retry), "the retry was not recognised");
    assert_eq!(
        retry.json::<Value>().await.unwrap(),
        json!({"ok": true, "accepted": 40, "rejected": []})
    );
    // Another key is another request.
    let (other, other_totals) = shop_batch(&mut rng, 2_000, 25);
    let fresh = post_keyed(&app.client, &app.address, "order-7782-attempt", &other).await;
    assert_eq!(fresh.status(), 200);
    assert!(!replayed(&fresh));

    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
    assert_eq!(
        table_totals(&pool).await,
        (totals.0 + other_totals.0, totals.1 + other_totals.1),
        "the retry was counted again"
    );
}

#[tokio::test]
async fn a_client_cut_off_retries_after_kill_9_with_the_write_ahead_log_and_is_counted_once() {
    let db = TestDb::new("pulse_test");
    let dir = TempDir::new("wal-idempotency");
    let wal_dir = dir.0.join("wal");
    let wal_dir_text = wal_dir.to_string_lossy().into_owned();
    let env = [
        ("GATHERER__WAL__ENABLED", "true"),
        ("GATHERER__WAL__DIR", wal_dir_text.as_str()),
    ];
    let (child, base) = start_with(&db, &env).await;
    let pool = db.pool().await;
    let client = reqwest::Client::new();
    let mut rng = Rng::new(1502);

    // "flushed": cut, then its events (and with them its key) reach MySQL and its segment
    // is removed. "logged": cut, then the gatherer is killed while the events are on disk
    // only, in the log.
    let (flushed, flushed_totals) = shop_batch(&mut rng, 10_000, 30);
    send_and_cut(&base, "flushed-1", &flushed).await;
    poll_until(
        Duration::from_secs(10),
        "the first request flushed",
        || async { (table_totals(&pool).await == flushed_totals).then_some(()) },
    )
    .await;
    let (logged, logged_totals) = shop_batch(&mut rng, 20_000, 30);
    let before = accepted_total(&base).await;
    send_and_cut(&base, "logged-2", &logged).await;
    poll_until(
        Duration::from_secs(10),
        "the second request accepted",
        || async { (accepted_total(&base).await >= before + 30.0).then_some(()) },
    )
    .await;
    signal(&child, "KILL");
    drop(child);

    let (mut child, base) = start_with(&db, &env).await;
    for (key, body) in [("flushed-1", &flushed), ("logged-2", &logged)] {
        let retry = post_keyed(&client, &base, key, body).await;
        assert_eq!(retry.status(), 200);
        assert!(
            replayed(&retry),
            "{key}: the retry after kill -9 was not recognised"
        );
        assert_eq!(retry.json::<Value>().await.unwrap()["accepted"], 30);
    }
    signal(&child, "TERM");
    let status = child.wait().await.unwrap();
    assert!(status.success());
    assert_eq!(
        table_totals(&pool).await,
        (flushed_totals.0 + logged_totals.0, 60),
        "a retry was counted again"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_retries_of_a_hundred_keys_count_each_key_once() {
    concurrent_retries(None).await;
}

/// The same with the write-ahead log on: each first attempt holds its key for the length
/// of an fsync, so most retries find it in flight and wait for its outcome.
#[tokio::test]
async fn a_thousand_concurrent_retries_with_the_write_ahead_log_count_each_key_once() {
    let dir = TempDir::new("wal-concurrent-keys");
    concurrent_retries(Some(dir.0.join("wal"))).await;
}

async fn concurrent_retries(wal_dir: Option<std::path::PathBuf>) {
    let mut app = spawn_app_with(|s| {
        if let Some(dir) = &wal_dir {
            s.wal.enabled = true;
            s.wal.dir = dir.to_string_lossy().into_owned();
        }
    })
    .await;
    let mut rng = Rng::new(1503);
    let mut expected = (0i128, 0u64);
    let mut requests = Vec::new();
    for key in 0..100i64 {
        let events = 1 + rng.overdispersed(8.0, 0.6) as usize;
        let (body, totals) = shop_batch(&mut rng, key * 100, events);
        expected.0 += totals.0;
        expected.1 += totals.1;
        for _ in 0..10 {
            requests.push((format!("burst-{key:03}"), body.clone()));
        }
    }
    // Interleave the copies so that every key races itself.
    for i in (1..requests.len()).rev() {
        let j = (rng.uniform() * (i + 1) as f64) as usize;
        requests.swap(i, j);
    }
    let metrics_before = app.get("/metrics").await.text().await.unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (key, body) in requests {
        let client = app.client.clone();
        let base = app.address.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = post_keyed(&client, &base, &key, &body).await;
            let status = response.status().as_u16();
            let was_replayed = replayed(&response);
            (key, status, was_replayed, response.text().await.unwrap())
        }));
    }
    let mut per_key: HashMap<String, (usize, Vec<String>)> = HashMap::new();
    for task in tasks {
        let (key, status, was_replayed, body) = task.await.unwrap();
        assert_eq!(status, 200, "{key}: {body}");
        let entry = per_key.entry(key).or_default();
        entry.0 += usize::from(!was_replayed);
        entry.1.push(body);
    }
    for (key, (originals, bodies)) in &per_key {
        assert_eq!(*originals, 1, "{key} was handled {originals} times");
        assert!(
            bodies.iter().all(|b| b == &bodies[0]),
            "{key}: replies differ"
        );
    }
    let metrics_after = app.get("/metrics").await.text().await.unwrap();
    let replays = sample(&metrics_after, "gatherer_idempotent_replays_total")
        - sample(&metrics_before, "gatherer_idempotent_replays_total");
    assert!(replays >= 900.0, "{replays} replays counted");

    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
    let pool = app.db.pool().await;
    assert_eq!(table_totals(&pool).await, expected);
}

#[tokio::test]
async fn bad_idempotency_keys_get_400_and_nothing_is_recorded() {
    let mut app = spawn_app().await;
    let body = json!({"label": "checkout", "id": 1, "value": 5}).to_string();
    let long = "k".repeat(256);
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        long.into_bytes(),
        b"two words".to_vec(),
        b"tab\there".to_vec(),
        "caf\u{e9}".as_bytes().to_vec(),
    ];
    for key in &bad {
        let response = app
            .client
            .post(format!("{}/gather", app.address))
            .header(
                "idempotency-key",
                reqwest::header::HeaderValue::from_bytes(key).unwrap(),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{key:?}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["ok"], false);
        assert!(
            reply["error"].as_str().unwrap().contains("Idempotency-Key"),
            "{reply}"
        );
    }
    let twice = app
        .client
        .post(format!("{}/gather", app.address))
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);

    // The longest key there may be, and every visible ASCII character, are fine.
    let longest = "k".repeat(255);
    let visible: String = (b'!'..=b'~').map(char::from).collect();
    for key in [longest.as_str(), visible.as_str()] {
        let response = post_keyed(&app.client, &app.address, key, &body).await;
        assert_eq!(response.status(), 200, "{key}");
    }
    app.shutdown().await;
    assert_eq!(table_totals(&app.db.pool().await).await, (10, 2));
}

#[tokio::test]
async fn a_refused_request_does_not_use_up_its_key() {
    let mut app = spawn_app().await;
    // An invalid body is refused, and the key stays free for the corrected retry.
    let refused = post_keyed(
        &app.client,
        &app.address,
        "fix-me",
        r#"{"label":"","id":1,"value":1}"#,
    )
    .await;
    assert_eq!(refused.status(), 400);
    let body = json!({"label": "checkout", "id": 1, "value": 3}).to_string();
    let first = post_keyed(&app.client, &app.address, "fix-me", &body).await;
    assert_eq!(first.status(), 200);
    assert!(!replayed(&first));
    let again = post_keyed(&app.client, &app.address, "fix-me", &body).await;
    assert!(replayed(&again));
    app.shutdown().await;
    assert_eq!(table_totals(&app.db.pool().await).await, (3, 1));
}

#[tokio::test]
async fn a_request_refused_with_503_and_retried_later_with_the_same_key_is_counted_once() {
    let (mut app, proxy) = spawn_app_behind_proxy(|s| s.ingest.max_pending_rows = 200).await;
    let pool = app.db.pool().await;
    wait_ready(&app).await;
    proxy.cut();
    // Fill the bound with distinct series while MySQL is away.
    let filler: Vec<Value> = (0..200)
        .map(|id| json!({"label": "filler", "id": id, "value": 1}))
        .collect();
    assert_eq!(
        app.post_gather(json!(filler).to_string(), None)
            .await
            .status(),
        200
    );
    assert!(pending_rows(&app).await >= 200);

    let mut rng = Rng::new(1504);
    let (body, totals) = shop_batch(&mut rng, 5_000, 20);
    let refused = post_keyed(&app.client, &app.address, "during-outage", &body).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");

    proxy.restore();
    poll_until(Duration::from_secs(30), "the backlog to land", || async {
        (pending_rows(&app).await == 0).then_some(())
    })
    .await;
    let accepted = post_keyed(&app.client, &app.address, "during-outage", &body).await;
    assert_eq!(accepted.status(), 200);
    assert!(!replayed(&accepted), "a refused key was held as accepted");
    let again = post_keyed(&app.client, &app.address, "during-outage", &body).await;
    assert_eq!(again.status(), 200);
    assert!(replayed(&again));

    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
    assert_eq!(table_totals(&pool).await, (200 + totals.0, 200 + totals.1));
}

async fn wait_ready(app: &TestApp) {
    poll_until(Duration::from_secs(10), "readiness", || async {
        (app.get("/health/ready").await.status() == 200).then_some(())
    })
    .await;
}
