//! On a three-node Galera cluster (`PULSE_GALERA_URLS`, see scripts/galera.sh): two
//! analysers of one shard on two nodes, pulling the same history at once, judge it as one
//! analyser does: no duplicate anomaly, no step lost or counted twice. Named locks are
//! each node's own there; the shard's generation, which every pull transaction moves on,
//! and certification serialise them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use analyser::configuration::Method;
use serde_json::Value;
use sqlx::MySqlPool;

use crate::helpers::{analyser_settings, shop, Analyser, Gatherer, TestDb};
use crate::scaleout::{anomalies, events};

type StepRow = (String, String, i64, i64, i128, u64);

/// Every dataset's step totals, as the analyser reads them back.
async fn step_totals(url: &str) -> Vec<StepRow> {
    let pool = MySqlPool::connect(url).await.unwrap();
    // The column's binary collation makes MariaDB send it as VARBINARY.
    let datasets: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT DISTINCT dataset FROM step_blocks ORDER BY dataset")
            .fetch_all(&pool)
            .await
            .unwrap();
    let datasets = datasets.into_iter().map(|d| String::from_utf8(d).unwrap());
    let mut rows = Vec::new();
    for dataset in datasets {
        for t in analyser::step_blocks::load_since(&pool, &dataset, 0)
            .await
            .unwrap()
        {
            rows.push((
                dataset.clone(),
                t.label,
                t.entity_id,
                t.step_start,
                t.totals.sum,
                t.totals.events,
            ));
        }
    }
    rows.sort();
    rows
}

/// An analyser built (migrated) but not yet serving: both of the test's start at once.
async fn build(settings: analyser::configuration::Settings) -> analyser::startup::Application {
    analyser::startup::Application::build(settings, false)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_analysers_of_one_shard_on_two_nodes_pulling_at_once_judge_as_one() {
    let Some(nodes) = service::testing::galera_urls(
        "two_analysers_of_one_shard_on_two_nodes_pulling_at_once_judge_as_one",
    ) else {
        return;
    };
    let labels = ["checkout", "visit", "price"];
    let events = events();
    let gatherer_db = TestDb::on(&nodes[0], "pulse_test_g");
    let gatherer = Gatherer::start_on(&gatherer_db.url).await;
    gatherer.post(&events).await;
    gatherer.flushed().await;
    let gatherer_pool = MySqlPool::connect(&gatherer_db.url).await.unwrap();
    let (last_id, rows): (u64, i64) =
        sqlx::query_as("SELECT MAX(ec_id), COUNT(*) FROM events_count")
            .fetch_one(&gatherer_pool)
            .await
            .unwrap();

    // What one analyser makes of the history.
    let reference = Analyser::start(&gatherer.url, vec![shop(&labels, Method::Auto)]).await;
    reference.pull().await;
    let expected = anomalies(&reference.db.url).await;
    assert!(
        expected.iter().any(|a| a.3 == "alarm"),
        "the reference found nothing: {expected:?}"
    );

    // Two analysers of the same shard, one on node 2 and one on node 3, on one database.
    // Small pages: catching up takes some 150 transactions, all contested (and fewer
    // than the 200 pages after which a long catch-up judges on the way, so that the
    // steps are judged once everything is read, as the reference judged them).
    let db = TestDb::on(&nodes[1], "pulse_test_a");
    let mut settings = analyser_settings(&db, &gatherer.url, vec![shop(&labels, Method::Auto)]);
    settings.gatherer.page_size = (rows / 150 + 1) as u32;
    let mut on_node3 = settings.clone();
    on_node3.database.url = db.url.replacen(&nodes[1], &nodes[2], 1).into();
    let apps = [build(settings).await, build(on_node3).await];
    let urls: Vec<String> = apps
        .iter()
        .map(|app| format!("http://127.0.0.1:{}", app.port()))
        .collect();
    let mut stops = Vec::new();
    for app in apps {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        stops.push(stop);
    }

    // Each pulls on its own (the timer's first pull starts at once), then on request
    // again and again, without waiting for the other: one that loses a conflict pulls
    // again at once while the other is mid-way. Each stops once a pull of its own finds
    // nothing to read and the shard's cursor is at the last row.
    let superseded = Arc::new(AtomicU64::new(0));
    let pool = MySqlPool::connect(&db.url).await.unwrap();
    let pullers: Vec<_> = urls
        .iter()
        .map(|url| {
            let (url, pool, superseded) = (url.clone(), pool.clone(), superseded.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let response = client
                        .post(format!("{url}/api/v1/pull"))
                        .basic_auth(crate::helpers::USER, Some(crate::helpers::PASSWORD))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap();
                    match status {
                        200 if body["rows"] == 0 => {
                            let cursor: u64 = sqlx::query_scalar("SELECT iterator FROM cursors")
                                .fetch_one(&pool)
                                .await
                                .unwrap();
                            if cursor == last_id {
                                return;
                            }
                        }
                        200 => {}
                        409 if body.to_string().contains("committed first") => {
                            superseded.fetch_add(1, Ordering::Relaxed);
                        }
                        409 => {}
                        other => panic!("pull answered {other}: {body}"),
                    }
                }
            })
        })
        .collect();
    tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::try_join_all(pullers),
    )
    .await
    .expect("both analysers to catch up within 2 minutes")
    .unwrap();
    for stop in stops {
        let _ = stop.send(());
    }

    let superseded = superseded.load(Ordering::Relaxed);
    eprintln!("pulls that found the other analyser had committed first: {superseded}");
    assert!(superseded > 0, "the two analysers never contended");
    // Read on node 1: what the cluster committed.
    let on_node1 = db.url.replacen(&nodes[1], &nodes[0], 1);
    assert_eq!(
        step_totals(&on_node1).await,
        step_totals(&reference.db.url).await,
        "step totals: none lost, none counted twice"
    );
    assert_eq!(
        anomalies(&on_node1).await,
        expected,
        "the same anomalies, none twice"
    );
}
