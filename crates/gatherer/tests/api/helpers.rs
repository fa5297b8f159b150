//! Test harness: a fresh MySQL database per test (dropped afterwards), the real
//! application on port 0, and polling helpers.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use gatherer::configuration::Settings;
use gatherer::flusher::FlushReport;
use gatherer::startup::Application;
use secrecy::SecretString;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, MySqlPool};

/// The server tests create their databases on (`TEST_MYSQL_URL`, default local root).
pub fn server_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// A database that exists for one test and is dropped when this value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A unique name; the gatherer creates the database itself on start.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        let name = format!(
            "pulse_test_{:016x}",
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

/// Settings for a test: port 0 on loopback, the given database.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::load(None, Some(0)).expect("default settings");
    settings.server.host = "127.0.0.1".to_owned();
    settings.server.workers = 2;
    settings.database.url = SecretString::from(database_url.to_owned());
    settings
}

/// A gatherer running in this process.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<FlushReport>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new();
    let mut settings = test_settings(&db.url);
    configure(&mut settings);
    let app = Application::build(settings)
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub async fn post_gather(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/gather", self.address))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("POST /gather")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("GET")
    }

    /// Stops the application the way a signal does, and returns its flush report.
    pub async fn shutdown(&mut self) -> FlushReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        task.await.expect("task").expect("clean shutdown")
    }
}

/// Sum of `event_counter` (exact: MySQL sums in DECIMAL) and of `events` over the table.
pub async fn table_totals(pool: &MySqlPool) -> (i128, u64) {
    let (sum, events): (String, String) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(event_counter), 0) AS CHAR), \
                CAST(COALESCE(SUM(events), 0) AS CHAR) FROM events_count",
    )
    .fetch_one(pool)
    .await
    .expect("totals");
    (
        sum.parse().expect("integer sum"),
        events.parse().expect("integer count"),
    )
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
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
