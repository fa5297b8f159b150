//! On a three-node Galera cluster (`PULSE_GALERA_URLS`, see scripts/galera.sh): the
//! gatherer's guarantees with each replica writing to a different node. Three gatherers on
//! three nodes with the write-ahead log on, one killed with SIGKILL under load and
//! restarted: every acknowledged event exactly once, and a consumer following the export
//! on node 1 meanwhile sees every row once, skipping none. A node stopped mid-run: its
//! gatherer answers 503 and is not ready while the node is down, then lands everything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{poll_until, table_totals, TestDb};
use crate::process::{signal, start_on};
use crate::wal::{check, load, per_entity, Outcomes, TempDir};

/// The cluster tests stop nodes: one at a time.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The same database on another node.
fn on_node(db: &TestDb, node: &str) -> String {
    db.url.replacen(&db.server, node, 1)
}

/// What a consumer following the export saw: each row by id, and ids seen twice.
#[derive(Debug, Default)]
struct Followed {
    rows: HashMap<u64, (i64, i128, u64)>,
    repeated: Vec<u64>,
    iterator: u64,
}

impl Followed {
    /// Follows the export from where it stands until `has_more` is false.
    async fn catch_up(&mut self, http: &reqwest::Client, base: &str) {
        loop {
            let page: Value = http
                .get(format!(
                    "{base}/api/v1/export?iterator={}&limit=2000",
                    self.iterator
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for row in page["rows"].as_array().unwrap() {
                let id = row["ec_id"].as_u64().unwrap();
                let value = (
                    row["entity_id"].as_i64().unwrap(),
                    i128::from(row["event_counter"].as_i64().unwrap()),
                    row["events"].as_u64().unwrap(),
                );
                if self.rows.insert(id, value).is_some() {
                    self.repeated.push(id);
                }
            }
            self.iterator = page["next_iterator"].as_u64().unwrap();
            if page["has_more"] != true {
                return;
            }
        }
    }

    fn per_entity(&self) -> HashMap<i64, (i128, u64)> {
        let mut totals: HashMap<i64, (i128, u64)> = HashMap::new();
        for (entity, sum, events) in self.rows.values() {
            let t = totals.entry(*entity).or_default();
            t.0 += sum;
            t.1 += events;
        }
        totals
    }
}

#[tokio::test]
async fn three_gatherers_on_three_nodes_and_a_kill_9_count_every_event_once_and_skip_no_row() {
    let Some(nodes) = service::testing::galera_urls(
        "three_gatherers_on_three_nodes_and_a_kill_9_count_every_event_once_and_skip_no_row",
    ) else {
        return;
    };
    let _cluster = CLUSTER.lock().await;
    let db = TestDb::on(&nodes[0], "pulse_test");
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new("galera-wal")).collect();
    let wal_env = |i: usize| {
        vec![
            ("GATHERER__WAL__ENABLED", "true".to_owned()),
            (
                "GATHERER__WAL__DIR",
                dirs[i].0.to_string_lossy().into_owned(),
            ),
        ]
    };
    let start = |i: usize| {
        let url = on_node(&db, &nodes[i]);
        let env = wal_env(i);
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            start_on(&url, &env).await
        }
    };
    // The first creates the schema; the others find it replicated.
    let mut gatherers = vec![start(0).await];
    gatherers.push(start(1).await);
    gatherers.push(start(2).await);
    let bases: Vec<String> = gatherers.iter().map(|(_, base)| base.clone()).collect();
    let pool = db.pool().await;

    // A consumer follows the export on node 1 while the three write.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = tokio::spawn({
        let base = bases[0].clone();
        let stop = stop.clone();
        async move {
            let http = reqwest::Client::new();
            let mut followed = Followed::default();
            while !stop.load(Ordering::SeqCst) {
                followed.catch_up(&http, &base).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            followed
        }
    });
    let clients: Vec<_> = (0..3i64)
        .map(|i| {
            tokio::spawn(load(
                bases[i as usize].clone(),
                stop.clone(),
                i * 4..i * 4 + 4,
            ))
        })
        .collect();

    poll_until(
        Duration::from_secs(60),
        "flushes from every node",
        || async {
            let nodes: i64 =
                sqlx::query_scalar("SELECT COUNT(DISTINCT ec_id % 3) FROM events_count")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            let flushes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM flush_batches")
                .fetch_one(&pool)
                .await
                .unwrap();
            (nodes == 3 && flushes >= 12).then_some(())
        },
    )
    .await;
    // Kill the gatherer on node 2 under load; the others go on a little longer.
    signal(&gatherers[1].0, "KILL");
    let before = table_totals(&pool).await;
    poll_until(
        Duration::from_secs(30),
        "more flushes after the kill",
        || async { (table_totals(&pool).await.1 > before.1 + 100).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Outcomes::default();
    for client in clients {
        let o = client.await.unwrap();
        outcomes.acknowledged.extend(o.acknowledged);
        outcomes.in_doubt.extend(o.in_doubt);
    }
    let mut followed = consumer.await.unwrap();
    assert!(
        outcomes.acknowledged.len() > 300,
        "only {} requests acknowledged",
        outcomes.acknowledged.len()
    );

    // Restart the killed one on its node: it replays its log.
    gatherers[1] = start(1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let verdict = check(&per_entity(&pool).await, &outcomes);
        if verdict.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after the restart: {verdict:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (child, _) in &gatherers {
        signal(child, "TERM");
    }
    for (child, _) in &mut gatherers {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("exit within the shutdown timeout")
            .unwrap();
        assert!(status.success(), "exit status {status}");
    }
    let table = per_entity(&pool).await;
    assert_eq!(check(&table, &outcomes), Ok(()));

    // The consumer, caught up through a gatherer on node 1, saw every row once.
    let (mut reader, base) = start_on(&db.url, &[]).await;
    followed.catch_up(&reqwest::Client::new(), &base).await;
    signal(&reader, "TERM");
    reader.wait().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events_count")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(followed.repeated, Vec::<u64>::new(), "rows seen twice");
    assert_eq!(
        followed.rows.len() as i64,
        rows,
        "rows skipped by the consumer"
    );
    assert_eq!(followed.per_entity(), table);
}

/// Runs `scripts/galera.sh` with `args` (the cluster's directory comes from GALERA_DIR).
async fn galera_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/galera.sh");
    let status = tokio::process::Command::new(script)
        .args(args)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "scripts/galera.sh {args:?}: {status}");
}

#[tokio::test]
async fn a_node_stopped_mid_run_turns_its_gatherer_unready_then_everything_lands() {
    let Some(nodes) = service::testing::galera_urls(
        "a_node_stopped_mid_run_turns_its_gatherer_unready_then_everything_lands",
    ) else {
        return;
    };
    let _cluster = CLUSTER.lock().await;
    let db = TestDb::on(&nodes[0], "pulse_test");
    let (mut child, base) = start_on(
        &on_node(&db, &nodes[2]),
        &[("GATHERER__INGEST__MAX_PENDING_ROWS", "1000")],
    )
    .await;
    let pool = db.pool().await;
    let http = reqwest::Client::new();
    let post = |events: Vec<Value>| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/gather"))
                .json(&events)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let ready = || {
        let http = http.clone();
        let base = base.clone();
        async move {
            let response = http
                .get(format!("{base}/health/ready"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let event = |value: i64| json!({"label": "node", "id": value, "value": value});
    assert_eq!(post((1..=100).map(event).collect()).await, 200);
    let mut acknowledged: (i128, u64) = ((1..=100).sum::<i64>().into(), 100);
    poll_until(
        Duration::from_secs(20),
        "the first events on node 1",
        || async { (table_totals(&pool).await == acknowledged).then_some(()) },
    )
    .await;
    poll_until(
        Duration::from_secs(10),
        "the first events released",
        || async { (ready().await.1["pending"] == 0).then_some(()) },
    )
    .await;

    galera_script(&["stop-node", "3"]).await;
    // Accepted until the rows waiting for the node reach the bound, then 503.
    let mut value = 100;
    loop {
        let status = post((value + 1..=value + 150).map(event).collect()).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200);
        acknowledged.0 += i128::from((value + 1..=value + 150).sum::<i64>());
        acknowledged.1 += 150;
        value += 150;
        assert!(value < 10_000, "never refused while its node was down");
    }
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    poll_until(
        Duration::from_secs(20),
        "readiness to report the database down",
        || async { (ready().await.1["database"] == "down").then_some(()) },
    )
    .await;
    assert_eq!(table_totals(&pool).await.1, 100, "nothing landed meanwhile");

    galera_script(&["start-node", "3"]).await;
    poll_until(
        Duration::from_secs(60),
        "everything acknowledged to land once the node is back",
        || async { (table_totals(&pool).await == acknowledged).then_some(()) },
    )
    .await;
    poll_until(Duration::from_secs(20), "readiness to return", || async {
        (ready().await.0 == 200).then_some(())
    })
    .await;
    signal(&child, "TERM");
    let status = child.wait().await.unwrap();
    assert!(status.success(), "exit status {status}");
    assert_eq!(table_totals(&pool).await, acknowledged);
}
