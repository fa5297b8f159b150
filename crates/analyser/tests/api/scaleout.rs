//! Scale-out on one machine: three gatherers behind a "load balancer" (events spread
//! round-robin) on one database, and two analyser shards on one database, give exactly the
//! totals and the anomalies of a single gatherer and a single analyser.

use analyser::configuration::Method;
use serde_json::Value;
use sqlx::MySqlPool;

use crate::helpers::{analyser_settings, shop, Analyser, Gatherer, Rng, TestDb};
use crate::scenarios::{flood, traffic, ANOMALY_AT};

pub type Found = (
    Vec<u8>,
    i64,
    String,
    String,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    f64,
);

pub async fn anomalies(url: &str) -> Vec<Found> {
    let pool = MySqlPool::connect(url).await.unwrap();
    sqlx::query_as(
        "SELECT event_label, entity_id, metric, severity, period_start, period_end, observed FROM anomalies \
         ORDER BY event_label, entity_id, metric, period_start",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

async fn totals(url: &str) -> (String, String) {
    let pool = MySqlPool::connect(url).await.unwrap();
    sqlx::query_as(
        "SELECT CAST(SUM(event_counter) AS CHAR), CAST(SUM(events) AS CHAR) FROM events_count",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
}

/// Three labels, so that the two shards both have work: a flood, a stop and a price typo.
pub fn events() -> Vec<Value> {
    let mut all = flood().1;
    let mut rng = Rng::new(5);
    all.extend(
        traffic("visit", |step, entity| {
            let stopped = entity == 2 && (ANOMALY_AT..ANOMALY_AT + 10).contains(&step);
            (if stopped { 0 } else { rng.poisson(80.0) }, 1)
        })
        .1,
    );
    let mut rng = Rng::new(6);
    all.extend(
        traffic("price", |step, entity| {
            let typo = entity == 5 && (ANOMALY_AT..ANOMALY_AT + 3).contains(&step);
            (rng.poisson(50.0), if typo { 20 } else { 2_000 })
        })
        .1,
    );
    all
}

#[tokio::test]
async fn three_gatherers_and_two_analyser_shards_find_what_one_of_each_finds() {
    let events = events();
    let labels = ["checkout", "visit", "price"];
    assert!(
        labels
            .iter()
            .any(|l| analyser::configuration::ShardSettings { index: 0, count: 2 }.owns(l))
            && labels
                .iter()
                .any(|l| analyser::configuration::ShardSettings { index: 1, count: 2 }.owns(l)),
        "both shards must own a label for this test to mean anything"
    );

    // One of each.
    let single = Gatherer::start().await;
    single.post(&events).await;
    single.flushed().await;
    let reference = Analyser::start(&single.url, vec![shop(&labels, Method::Auto)]).await;
    reference.pull().await;

    // Three gatherers on one database, events spread over them request by request.
    let first = Gatherer::start().await;
    let replicas = [
        Gatherer::start_on(&first.db_url).await,
        Gatherer::start_on(&first.db_url).await,
    ];
    let gatherers = [&first, &replicas[0], &replicas[1]];
    let posts = events
        .chunks(5_000)
        .enumerate()
        .map(|(i, chunk)| gatherers[i % 3].post(chunk));
    futures_util::future::join_all(posts).await;
    for gatherer in gatherers {
        gatherer.flushed().await;
    }
    assert_eq!(totals(&first.db_url).await, totals(&single.db_url).await);

    // Two analyser shards on one database, each following a different gatherer.
    let db = TestDb::new("pulse_test_a");
    let url = db.url.clone();
    let mut settings = analyser_settings(&db, &first.url, vec![shop(&labels, Method::Auto)]);
    settings.shard.count = 2;
    let mut other = settings.clone();
    other.gatherer.url = replicas[0].url.clone();
    other.shard.index = 1;
    let shard0 = Analyser::start_with(db, settings).await;
    let shard1 = Analyser::start_with(TestDb::new("pulse_test_unused"), other).await;
    shard0.pull().await;
    shard1.pull().await;

    let expected = anomalies(&reference.db.url).await;
    assert!(
        expected.iter().any(|a| a.3 == "alarm"),
        "the reference found nothing: {expected:?}"
    );
    assert_eq!(anomalies(&url).await, expected);
    // Either shard serves the whole state.
    let count = |state: Value| state["data"].as_array().unwrap().len();
    assert_eq!(count(shard1.state("limit=1000").await), expected.len());
}
