//! The API tests' harness: a fresh MySQL database per test (dropped afterwards, whatever
//! state its sessions were left in), and polling for a condition with a deadline instead of
//! sleeping for a fixed time.

// The harness of the tests: a failed setup is a failed test, with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, MySqlPool};

/// The server tests create their databases on (`TEST_MYSQL_URL`, default local root).
pub fn server_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// A database name for one test; dropped when this value is.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new(prefix: &str) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let name = format!(
            "{prefix}_{:016x}",
            RandomState::new().hash_one(std::time::SystemTime::now())
        );
        let url = format!("{}/{}", server_url(), name);
        TestDb { name, url }
    }

    pub async fn pool(&self) -> MySqlPool {
        MySqlPool::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    /// Drops the database. Sessions still using it (a pool whose runtime ended, a
    /// transaction a dropped future left open) are killed first, so that the drop never
    /// waits on their metadata locks.
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = server_url();
        // Drop runs outside async context: a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = MySqlConnectOptions::from_str(&server)?.connect().await?;
                let sessions: Vec<u64> = sqlx::query_scalar(
                    "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
                )
                .bind(&name)
                .fetch_all(&mut conn)
                .await?;
                for id in sessions {
                    let _ = sqlx::query(&format!("KILL {id}")).execute(&mut conn).await;
                }
                sqlx::query("SET SESSION lock_wait_timeout = 10").execute(&mut conn).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut conn).await?;
                conn.close().await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
