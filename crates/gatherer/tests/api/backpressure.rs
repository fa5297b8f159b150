//! Backpressure measures what waits for MySQL, not the event rate: with MySQL healthy, a
//! burst of millions of events in one bucket is accepted whole, because events summed into
//! a series already held cost no memory. (The refusal at the row bound while MySQL is away
//! is `outage.rs`.)

use std::time::Duration;

use detect::synth::Rng;
use serde_json::Value;

use crate::helpers::{poll_until, spawn_app, table_totals};

/// NDJSON bodies of `per_body` events, all stamped `ts`: a bot flood on a few labels, over
/// entities of very different sizes (log-uniform ids, so a few entities get most events),
/// with over-dispersed values.
fn burst_bodies(seed: u64, bodies: usize, per_body: usize, ts: i64) -> Vec<(String, i128)> {
    let mut rng = Rng::new(seed);
    let labels = ["checkout", "visit", "price", "login"];
    (0..bodies)
        .map(|_| {
            let mut body = String::with_capacity(per_body * 64);
            let mut sum = 0i128;
            for _ in 0..per_body {
                let label = labels[(rng.uniform() * labels.len() as f64) as usize];
                let id = rng.between(0.0, 20_000f64.ln()).exp() as i64;
                let value = 1 + rng.overdispersed(3.0, 0.5) as i64;
                sum += i128::from(value);
                body.push_str(&format!(
                    "{{\"label\":\"{label}\",\"id\":{id},\"value\":{value},\"ts\":{ts}}}\n"
                ));
            }
            (body, sum)
        })
        .collect()
}

#[tokio::test]
async fn a_burst_of_millions_of_events_in_one_bucket_gets_no_503_while_mysql_keeps_up() {
    // The default bound (2 000 000 rows) is below the burst's 3 000 000 events: a bound on
    // events would refuse a third of it.
    let mut app = spawn_app().await;
    // One bucket, 55 s ahead (ingest takes up to 60 s): it stays open however long a
    // loaded machine takes to send the burst.
    let ts = chrono::Utc::now().timestamp() + 55;
    let bodies = burst_bodies(15, 30, 100_000, ts);
    let expected: (i128, u64) = (bodies.iter().map(|(_, sum)| sum).sum(), 3_000_000);

    let mut senders = Vec::new();
    for (c, chunk) in bodies.chunks(8).enumerate() {
        let chunk = chunk.to_vec();
        let client = app.client.clone();
        let url = format!("{}/gather", app.address);
        senders.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for (i, (body, _)) in chunk.into_iter().enumerate() {
                // As a careful client does: a connection lost under load is retried with
                // the same key, so the body counts once whatever happened to the first try.
                let key = format!("burst-{c}-{i}");
                let mut attempt = 0;
                let response = loop {
                    attempt += 1;
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .header("idempotency-key", &key)
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(response) => break response,
                        Err(error) if attempt < 3 && error.is_request() => continue,
                        Err(error) => panic!("{key}: {error}"),
                    }
                };
                let status = response.status().as_u16();
                let reply: Value = response.json().await.unwrap();
                statuses.push((status, reply["accepted"].as_u64()));
            }
            statuses
        }));
    }
    for sender in senders {
        for (status, accepted) in sender.await.unwrap() {
            assert_eq!(status, 200, "a burst with MySQL healthy was refused");
            assert_eq!(accepted, Some(100_000));
        }
    }
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    let pending = ready["pending"].as_u64().unwrap();
    assert_eq!(ready["ready"], true);
    // At most 4 labels × 20 000 entities: the rows held, whatever the number of events.
    assert!(
        (1_000..=80_000).contains(&pending),
        "{pending} rows pending for one bucket"
    );

    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
    let pool = app.db.pool().await;
    poll_until(
        Duration::from_secs(10),
        "the burst in the table",
        || async { (table_totals(&pool).await == expected).then_some(()) },
    )
    .await;
}
