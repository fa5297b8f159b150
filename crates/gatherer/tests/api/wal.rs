//! Guarantee 4, crash durability: with `[wal] enabled`, a `200` is on disk. The real
//! binary is killed with SIGKILL under load, restarted (and killed again while it
//! replays); every acknowledged event is then in `events_count` exactly once. A log that
//! cannot be written answers 503 instead of crashing or acknowledging, and a damaged log
//! stops the start with one clear line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatherer::ingest::ValidEvent;
use gatherer::wal;
use serde_json::{json, Value};
use sqlx::MySqlPool;

use crate::helpers::{poll_until, spawn_app_with, table_totals, TestDb};
use crate::process::{fails_with_one_line, gatherer, signal, start_with};

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let seed = RandomState::new().hash_one(std::time::SystemTime::now());
        let path = std::env::temp_dir().join(format!("pulse-{what}-{seed:016x}"));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn segments(&self, dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a client learnt about one request: its entity (unique per request) and the
/// totals it carried.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Answered 200: must be counted exactly once.
    pub acknowledged: HashMap<i64, (i128, u64)>,
    /// No answer (the process died): counted wholly or not at all.
    pub in_doubt: HashMap<i64, (i128, u64)>,
}

/// Clients sending requests until `stop` (or their gatherer dies); request `r` of client `c` uses entity
/// `c * 1_000_000 + r`, so the table shows what became of each request.
pub async fn load(base: String, stop: Arc<AtomicBool>, clients: std::ops::Range<i64>) -> Outcomes {
    let mut tasks = Vec::new();
    for client in clients {
        let base = base.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut outcomes = Outcomes::default();
            let mut request = 0i64;
            while !stop.load(Ordering::SeqCst) {
                request += 1;
                let entity = client * 1_000_000 + request;
                // Every third request is stamped a few seconds ahead: its bucket stays
                // open while its epoch's other buckets are flushed, so a kill finds
                // segments that are partly in MySQL.
                let ts = (request % 3 == 0).then(|| chrono::Utc::now().timestamp() + 5);
                let events: Vec<Value> = (0..5i64)
                    .map(|i| json!({"label": "crash", "id": entity, "value": request * 10 + i, "ts": ts}))
                    .collect();
                let totals = ((0..5i64).map(|i| i128::from(request * 10 + i)).sum(), 5);
                match http
                    .post(format!("{base}/gather"))
                    .json(&events)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 200 => {
                        outcomes.acknowledged.insert(entity, totals);
                    }
                    Ok(response) => panic!("unexpected {}", response.status()),
                    Err(_) => {
                        outcomes.in_doubt.insert(entity, totals);
                        break;
                    }
                }
            }
            outcomes
        }));
    }
    let mut all = Outcomes::default();
    for task in tasks {
        let outcomes = task.await.unwrap();
        all.acknowledged.extend(outcomes.acknowledged);
        all.in_doubt.extend(outcomes.in_doubt);
    }
    all
}

pub async fn per_entity(pool: &MySqlPool) -> HashMap<i64, (i128, u64)> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT entity_id, CAST(SUM(event_counter) AS CHAR), CAST(SUM(events) AS CHAR) \
         FROM events_count GROUP BY entity_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(entity, sum, events)| (entity, (sum.parse().unwrap(), events.parse().unwrap())))
        .collect()
}

/// Every acknowledged request exactly once; an unanswered one wholly or not at all;
/// nothing else.
pub fn check(table: &HashMap<i64, (i128, u64)>, outcomes: &Outcomes) -> Result<(), String> {
    for (entity, expected) in &outcomes.acknowledged {
        match table.get(entity) {
            Some(found) if found == expected => {}
            found => {
                return Err(format!(
                    "acknowledged entity {entity}: {found:?}, expected {expected:?}"
                ))
            }
        }
    }
    for (entity, found) in table {
        if outcomes.acknowledged.contains_key(entity) {
            continue;
        }
        match outcomes.in_doubt.get(entity) {
            Some(expected) if expected == found => {}
            expected => {
                return Err(format!(
                    "entity {entity}: {found:?} in the table, request was {expected:?}"
                ))
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn kill_9_under_load_then_restart_counts_every_acknowledged_event_exactly_once() {
    let db = TestDb::new("pulse_test");
    let dir = TempDir::new("wal-kill");
    let wal_dir = dir.0.join("wal");
    let wal_dir_text = wal_dir.to_string_lossy().into_owned();
    let env = [
        ("GATHERER__WAL__ENABLED", "true"),
        ("GATHERER__WAL__DIR", wal_dir_text.as_str()),
    ];
    let (child, base) = start_with(&db, &env).await;
    let pool = db.pool().await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = tokio::spawn(load(base, stop.clone(), 0..8));

    // Kill once some flushes have committed, so that the log holds both events already
    // in MySQL and events only on disk.
    poll_until(
        Duration::from_secs(30),
        "a first flush under load",
        || async { (table_totals(&pool).await.1 > 0).then_some(()) },
    )
    .await;
    poll_until(
        Duration::from_secs(20),
        "flushes of several buckets",
        || {
            let pool = pool.clone();
            async move {
                let (flushes,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM flush_batches")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                (flushes >= 6).then_some(())
            }
        },
    )
    .await;
    signal(&child, "KILL");
    stop.store(true, Ordering::SeqCst);
    let outcomes = clients.await.unwrap();
    drop(child);
    assert!(
        outcomes.acknowledged.len() > 50,
        "only {} requests acknowledged before the kill",
        outcomes.acknowledged.len()
    );
    assert!(
        dir.segments(&wal_dir) > 0,
        "the kill left no segment to replay"
    );

    // Restart, and kill again at once: a crash during the replay must not count twice.
    let (child, _) = start_with(&db, &env).await;
    signal(&child, "KILL");
    drop(child);
    let (mut child, _) = start_with(&db, &env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
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

    signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exit within the shutdown timeout")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert_eq!(check(&per_entity(&pool).await, &outcomes), Ok(()));
    assert_eq!(dir.segments(&wal_dir), 0, "replayed segments are removed");
}

#[tokio::test]
async fn a_wal_dir_that_cannot_be_written_answers_503_and_recovers_when_fixed() {
    let dir = TempDir::new("wal-unwritable");
    let wal_dir = dir.0.join("wal");
    // A file where the directory should be.
    std::fs::write(&wal_dir, b"not a directory").unwrap();
    let mut app = spawn_app_with(|s| {
        s.wal.enabled = true;
        s.wal.dir = wal_dir.to_string_lossy().into_owned();
    })
    .await;
    let event = json!({"label": "wal", "id": 1, "value": 7}).to_string();
    let refused = app.post_gather(event.clone(), None).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert_eq!(app.get("/health/live").await.status(), 200);
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["pending"], 0, "a refused event is not held");

    std::fs::remove_file(&wal_dir).unwrap();
    let accepted = app.post_gather(event, None).await;
    assert_eq!(accepted.status(), 200);
    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
    let pool = app.db.pool().await;
    assert_eq!(
        table_totals(&pool).await,
        (7, 1),
        "only the acknowledged event"
    );
}

#[tokio::test]
async fn a_damaged_segment_stops_the_start_with_one_line_and_a_torn_tail_does_not() {
    let db = TestDb::new("pulse_test");
    let dir = TempDir::new("wal-damaged");
    let now = chrono::Utc::now().timestamp_millis();
    let events = [ValidEvent {
        label: gatherer::label::Label::parse("torn").unwrap(),
        id: 1,
        value: 5,
        at_ms: now,
    }];
    let mut bytes = wal::segment_header(2).to_vec();
    wal::encode_record(&events, None, &mut bytes).unwrap();
    wal::encode_record(&events, None, &mut bytes).unwrap();
    let whole = bytes.len();
    // A torn tail: half of a third record.
    let mut third = Vec::new();
    wal::encode_record(&events, None, &mut third).unwrap();
    bytes.extend_from_slice(&third[..third.len() / 2]);
    let segment = dir.0.join("00000000000000aa-00000000000000000000.wal");
    std::fs::write(&segment, &bytes).unwrap();

    let dir_text = dir.0.to_string_lossy().into_owned();
    let env = [
        ("GATHERER__WAL__ENABLED", "true"),
        ("GATHERER__WAL__DIR", dir_text.as_str()),
    ];
    // Damage in the first record, followed by an intact one: not a torn write.
    let mut damaged = bytes[..whole].to_vec();
    damaged[wal::segment_header(2).len() + 10] ^= 0x40;
    std::fs::write(&segment, &damaged).unwrap();
    let stderr = fails_with_one_line(
        gatherer()
            .env("GATHERER__DATABASE__URL", &db.url)
            .envs(env.iter().copied()),
    )
    .await;
    assert!(
        stderr.contains("damaged") && stderr.contains(".wal"),
        "{stderr}"
    );

    // The torn tail alone is dropped: the two whole records are replayed.
    std::fs::write(&segment, &bytes).unwrap();
    let (mut child, _) = start_with(&db, &env).await;
    let pool = db.pool().await;
    poll_until(Duration::from_secs(20), "the replayed records", || async {
        (table_totals(&pool).await == (10, 2)).then_some(())
    })
    .await;
    signal(&child, "TERM");
    let status = child.wait().await.unwrap();
    assert!(status.success());
    assert_eq!(table_totals(&pool).await, (10, 2));
    assert!(!segment.exists(), "a replayed segment is removed");
}
