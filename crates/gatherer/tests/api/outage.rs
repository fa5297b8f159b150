//! Guarantee 3, MySQL outage: the gatherer reaches MySQL through a proxy the test can
//! cut. While it is cut, events are still accepted until the rows waiting for MySQL reach
//! `max_pending_rows`, then refused with 503 and `Retry-After`; readiness follows; when
//! MySQL is back everything acknowledged lands exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use secrecy::ExposeSecret;

use crate::helpers::{poll_until, server_url, spawn_app_with, table_totals, TestApp};

/// A TCP forwarder to MySQL that can refuse and drop connections, like a stopped server.
pub struct CuttableProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let up = up.clone();
            let connections = connections.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    connections.lock().unwrap().push(tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }));
                }
            }
        });
        CuttableProxy {
            port,
            up,
            connections,
            accept,
        }
    }

    /// MySQL "stops": open connections are dropped, new ones closed at once.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test]
async fn an_outage_turns_into_backpressure_and_loses_nothing() {
    outage_scenario(None).await;
}

/// The same outage with the write-ahead log on: epochs pile up while MySQL is away, their
/// batches are retried under the same ids, and each segment goes once it has landed.
#[tokio::test]
async fn an_outage_with_the_write_ahead_log_loses_nothing_and_leaves_no_segment() {
    let dir = std::env::temp_dir().join(format!(
        "pulse-wal-outage-{:016x}",
        std::hash::BuildHasher::hash_one(
            &std::hash::RandomState::new(),
            std::time::SystemTime::now()
        )
    ));
    outage_scenario(Some(dir.clone())).await;
    let left = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(left, 0, "segments left after everything landed");
}

/// A gatherer whose MySQL connections go through a [`CuttableProxy`].
pub async fn spawn_app_behind_proxy(
    configure: impl FnOnce(&mut gatherer::configuration::Settings),
) -> (TestApp, CuttableProxy) {
    let real = server_url();
    let upstream = real
        .trim_start_matches("mysql://")
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let proxy = CuttableProxy::start(upstream).await;
    let via_proxy = format!("mysql://root@127.0.0.1:{}", proxy.port);
    let app = spawn_app_with(|s| {
        let direct = s.database.url.expose_secret().to_owned();
        s.database.url = direct.replacen(&real, &via_proxy, 1).into();
        configure(s);
    })
    .await;
    (app, proxy)
}

/// Rows held and not yet committed, as `/health/ready` reports them.
pub async fn pending_rows(app: &TestApp) -> u64 {
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    ready["pending"].as_u64().unwrap()
}

async fn outage_scenario(wal_dir: Option<std::path::PathBuf>) {
    let (mut app, proxy) = spawn_app_behind_proxy(|s| {
        s.ingest.max_pending_rows = 1_000;
        if let Some(dir) = &wal_dir {
            s.wal.enabled = true;
            s.wal.dir = dir.to_string_lossy().into_owned();
        }
    })
    .await;
    let pool = app.db.pool().await;
    // Every event its own entity: each one is a row of its own, whatever its bucket.
    let event = |value: i64| json!({"label": "outage", "id": value, "value": value});

    let first: Vec<Value> = (1..=100).map(event).collect();
    assert_eq!(
        app.post_gather(json!(first).to_string(), None)
            .await
            .status(),
        200
    );
    let mut acknowledged: (i128, u64) = ((1..=100).sum::<i64>().into(), 100);
    poll_until(Duration::from_secs(10), "first events flushed", || async {
        (table_totals(&pool).await == acknowledged).then_some(())
    })
    .await;
    // The rows are visible as soon as MySQL commits; the gatherer releases them from its
    // backlog only once the COMMIT's reply is back. Cut before that and the reply is lost.
    poll_until(Duration::from_secs(10), "first events released", || async {
        let ready: Value = app.get("/health/ready").await.json().await.ok()?;
        (ready["pending"] == 0).then_some(())
    })
    .await;

    proxy.cut();
    // Accepted while the rows held are below the bound, then refused whole with 503 +
    // Retry-After: 150 new rows a request, so the seventh takes the backlog to 1 050 and
    // the eighth is refused.
    let mut value = 100;
    let refused = loop {
        let before = pending_rows(&app).await;
        let batch: Vec<Value> = (value + 1..=value + 150).map(event).collect();
        let response = app.post_gather(json!(batch).to_string(), None).await;
        if response.status() == 503 {
            assert!(before >= 1_000, "refused with {before} rows pending");
            break response;
        }
        assert_eq!(response.status(), 200);
        assert!(before < 1_000, "accepted with {before} rows pending");
        acknowledged.0 += i128::from((value + 1..=value + 150).sum::<i64>());
        acknowledged.1 += 150;
        value += 150;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(acknowledged.1, 100 + 7 * 150, "100 flushed + 1 050 pending");
    assert_eq!(
        pending_rows(&app).await,
        1_050,
        "the refused request added nothing"
    );
    // At the bound nothing is accepted, not even events that would add no row.
    let known = app.post_gather(event(101).to_string(), None).await;
    assert_eq!(known.status(), 503);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["pending"], 1_050);
    assert_eq!(ready["reason"], "pending rows at max_pending_rows");
    poll_until(
        Duration::from_secs(15),
        "readiness to report the database down",
        || async {
            let ready: Value = app.get("/health/ready").await.json().await.ok()?;
            (ready["database"] == "down").then_some(())
        },
    )
    .await;

    // Keep MySQL away until the buckets holding the outage's events have closed and their
    // flush has failed at least once: the flusher must retry them, not drop them.
    let flush_failed_by = chrono::Utc::now().timestamp_millis() / 2_000 * 2_000 + 2_000 + 1_500;
    poll_until(
        Duration::from_secs(10),
        "the outage's buckets to close",
        || async { (chrono::Utc::now().timestamp_millis() >= flush_failed_by).then_some(()) },
    )
    .await;
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["database"], "down");
    assert_eq!(
        table_totals(&pool).await.1,
        100,
        "nothing can land while MySQL is away"
    );
    proxy.restore();
    poll_until(
        Duration::from_secs(30),
        "the backlog to land after the outage",
        || async { (table_totals(&pool).await == acknowledged).then_some(()) },
    )
    .await;
    poll_until(Duration::from_secs(10), "readiness to return", || async {
        (app.get("/health/ready").await.status() == 200).then_some(())
    })
    .await;
    assert_eq!(
        app.post_gather(event(1).to_string(), None).await.status(),
        200
    );
    acknowledged.0 += 1;
    acknowledged.1 += 1;
    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
    assert_eq!(table_totals(&pool).await, acknowledged);
}
