//! `POST /gather` as a client sees it: replies, validation, and rows in `events_count`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{poll_until, spawn_app, spawn_app_with, table_totals};

#[tokio::test]
async fn accepted_events_reach_events_count_in_their_bucket() {
    let mut app = spawn_app().await;
    let response = app
        .post_gather(
            r#"{"label":"checkout","id":42,"value":5}"#,
            Some("application/json"),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"ok": true, "accepted": 1})
    );

    let batch = json!([
        {"label": "checkout", "id": 42, "value": 7},
        {"label": "visit", "id": 1, "value": 1, "extra": "ignored"}
    ]);
    let response = app.post_gather(batch.to_string(), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"ok": true, "accepted": 2, "rejected": []})
    );

    let ndjson = "{\"label\":\"visit\",\"id\":1,\"value\":2}\n\n{\"label\":\"visit\",\"id\":2,\"value\":3}\n";
    let response = app.post_gather(ndjson, Some("application/x-ndjson")).await;
    assert_eq!(response.json::<Value>().await.unwrap()["accepted"], 2);

    // curl -d sends a form content type; the body is read as JSON all the same.
    let response = app
        .post_gather(
            r#"{"label":"visit","id":2,"value":4}"#,
            Some("application/x-www-form-urlencoded"),
        )
        .await;
    assert_eq!(response.status(), 200);

    let pool = app.db.pool().await;
    poll_until(Duration::from_secs(10), "rows in events_count", || async {
        (table_totals(&pool).await == (22, 6)).then_some(())
    })
    .await;
    type Row = (chrono::NaiveDateTime, Vec<u8>, i64, i64, u32, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT event_date, event_label, entity_id, CAST(SUM(event_counter) AS SIGNED), CAST(SUM(events) AS UNSIGNED), MIN(min_value), MAX(max_value) \
         FROM events_count GROUP BY event_date, event_label, entity_id ORDER BY event_label, entity_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let checkout: Vec<_> = rows.iter().filter(|r| r.1 == b"checkout").collect();
    assert!(
        checkout.iter().all(|r| r.0.and_utc().timestamp() % 2 == 0),
        "{rows:?}"
    );
    let checkout_total: i64 = checkout.iter().map(|r| r.3).sum();
    assert_eq!(checkout_total, 12);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_events_get_a_clear_400_and_nothing_is_recorded() {
    let mut app = spawn_app().await;
    let long_label = "x".repeat(51);
    for (body, needle) in [
        (
            json!({"label": long_label, "id": 1, "value": 1}).to_string(),
            "longer than 50",
        ),
        (
            r#"{"label":"a","id":1,"value":1.5}"#.to_owned(),
            "value must be an integer, got 1.5",
        ),
        (
            r#"{"label":"a","id":1,"value":1e20}"#.to_owned(),
            "value out of range",
        ),
        (
            r#"{"label":"a","id":"1","value":1}"#.to_owned(),
            "id must be an integer",
        ),
        (
            r#"{"label":"a","id":1,"value":null}"#.to_owned(),
            "value must be an integer, got null",
        ),
        (
            r#"{"label":"a","value":1}"#.to_owned(),
            "missing field `id`",
        ),
        (
            r#"{"label":" a","id":1,"value":1}"#.to_owned(),
            "whitespace",
        ),
        (
            r#"{"label":"a","id":1,"value":1,"ts":1}"#.to_owned(),
            "older than",
        ),
        (
            r#"{"label":"a","id":1,"value":}"#.to_owned(),
            "line 1 column 29",
        ),
        ("[]".to_owned(), "no valid event"),
        ("".to_owned(), "empty body"),
    ] {
        let response = app
            .post_gather(body.clone(), Some("application/json"))
            .await;
        assert_eq!(response.status(), 400, "{body}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["ok"], false);
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains(needle), "{body}: {error}");
    }
    let response = app
        .post_gather(r#"{"label":"a","id":1,"value":1}"#, Some("text/xml"))
        .await;
    assert_eq!(response.status(), 415);

    // The valid items of a batch stand; the others are listed with their index.
    let batch = json!([
        {"label": "a", "id": 1, "value": 1},
        {"label": "x".repeat(51), "id": 1, "value": 1},
        {"label": "b", "id": 1, "value": 2.5},
    ]);
    let response = app.post_gather(batch.to_string(), None).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["accepted"], 1);
    let indexes: Vec<u64> = reply["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![1, 2]);

    let all_bad = json!([{"label": "", "id": 1, "value": 1}]);
    let response = app.post_gather(all_bad.to_string(), None).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["rejected"][0]["index"],
        0
    );

    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let mut app = spawn_app_with(|s| s.ingest.max_body_bytes = 1024).await;
    let event = r#"{"label":"a","id":1,"value":1}"#;
    let big = format!("[{}]", vec![event; 100].join(","));
    let response = app.post_gather(big, None).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.json::<Value>().await.unwrap()["ok"], false);
    // Without Content-Length (a streamed body), the limit still holds.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..100).map(|_| Ok(format!("{event}\n"))).collect();
    let stream = futures_util::stream::iter(chunks);
    let response = app
        .post_gather(
            reqwest::Body::wrap_stream(stream),
            Some("application/x-ndjson"),
        )
        .await;
    assert_eq!(response.status(), 413);
    app.shutdown().await;
}

#[tokio::test]
async fn service_info_and_health_answer() {
    let mut app = spawn_app().await;
    let info: Value = app.get("/").await.json().await.unwrap();
    assert_eq!(info["name"], "pulse-gatherer");
    assert_eq!(info["bucket_seconds"], 2);
    assert_eq!(app.get("/health/live").await.status(), 200);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "up");
    assert_eq!(ready["pending"], 0);
    let missing = app.get("/nope").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["ok"], false);
    app.shutdown().await;
}

#[tokio::test]
async fn ingest_tokens_when_configured_are_required() {
    let mut app = spawn_app_with(|s| s.auth.ingest_tokens = vec!["s3cret".to_owned().into()]).await;
    let event = r#"{"label":"a","id":1,"value":1}"#;
    assert_eq!(app.post_gather(event, None).await.status(), 401);
    let response = app
        .client
        .post(format!("{}/gather", app.address))
        .bearer_auth("wrong")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = app
        .client
        .post(format!("{}/gather", app.address))
        .bearer_auth("s3cret")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.shutdown().await;
}
