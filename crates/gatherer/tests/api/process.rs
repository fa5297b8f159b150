//! The real binary: graceful shutdown on SIGTERM and SIGINT (guarantee 2), and one clear
//! line and a non-zero exit for a bad configuration or an unreachable database.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{table_totals, TestDb};

pub fn gatherer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatherer"));
    command
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts the binary on a free port and returns it with its base URL, read from the
/// `listening on` line it logs.
async fn start(db: &TestDb) -> (Child, String) {
    start_with(db, &[]).await
}

/// [`start`] with extra environment variables (configuration overrides).
pub async fn start_with(db: &TestDb, env: &[(&str, &str)]) -> (Child, String) {
    start_on(&db.url, env).await
}

/// [`start_with`] on a database named by its URL (another node of a cluster).
pub async fn start_on(database_url: &str, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = gatherer()
        .args(["--port", "0"])
        .env("GATHERER__DATABASE__URL", database_url)
        .envs(env.iter().copied())
        .spawn()
        .expect("spawn gatherer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(address) = line.split("listening on ").nth(1) {
                return address.trim().to_owned();
            }
        }
        panic!("gatherer exited before listening");
    })
    .await
    .expect("gatherer to listen");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}"))
}

pub fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", name, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn stop_with_signal_flushes_open_buckets(signal_name: &str) {
    let db = TestDb::new("pulse_test");
    let (mut child, base) = start(&db).await;
    let client = reqwest::Client::new();
    // Events stamped 30 s ahead sit in a bucket that is still open at shutdown: only the
    // shutdown flush can write them.
    let ahead = chrono::Utc::now().timestamp() + 30;
    let events: Vec<_> = (1..=50i64)
        .map(|i| json!({"label": "shutdown", "id": i % 4, "value": i, "ts": ahead}))
        .collect();
    let response = client
        .post(format!("{base}/gather"))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let now: Vec<_> = (1..=10i64)
        .map(|i| json!({"label": "now", "id": i, "value": 100}))
        .collect();
    let response = client
        .post(format!("{base}/gather"))
        .json(&now)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    signal(&child, signal_name);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exit within the shutdown timeout")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert_eq!(table_totals(&db.pool().await).await, (1275 + 1000, 60));
}

#[tokio::test]
async fn sigterm_flushes_everything_including_the_open_bucket_and_exits_0() {
    stop_with_signal_flushes_open_buckets("TERM").await;
}

#[tokio::test]
async fn sigint_flushes_everything_including_the_open_bucket_and_exits_0() {
    stop_with_signal_flushes_open_buckets("INT").await;
}

pub async fn fails_with_one_line(command: &mut Command) -> String {
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("exits")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

#[tokio::test]
async fn a_bad_configuration_or_an_unreachable_database_stops_the_start_with_one_line() {
    let stderr = fails_with_one_line(gatherer().env("GATHERER__INGEST__BUCKET_SECONDS", "0")).await;
    assert!(
        stderr.contains("invalid configuration") && stderr.contains("bucket_seconds"),
        "{stderr}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let stderr = fails_with_one_line(
        gatherer()
            .env(
                "DATABASE_URL",
                format!("mysql://root@127.0.0.1:{port}/pulse"),
            )
            .env("GATHERER__DATABASE__CONNECT_TIMEOUT", "1s"),
    )
    .await;
    assert!(stderr.contains("database unreachable"), "{stderr}");
}
