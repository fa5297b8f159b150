//! Test harness: a fresh MySQL database per test (dropped afterwards), the real
//! application on port 0, and polling helpers.

use gatherer::configuration::Settings;
use gatherer::flusher::FlushReport;
use gatherer::startup::Application;
use secrecy::SecretString;
use sqlx::MySqlPool;

pub use service::testing::{poll_until, server_url, TestDb};

/// Settings for a test: port 0 on loopback, the given database. The header timeout and
/// keep-alive are a minute: actix starts it when a connection is accepted, so on a loaded machine (a CI
/// runner, other suites in parallel) busy workers would answer 408 to requests nobody sent
/// slowly; the slow-client tests set their own.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::load(None, Some(0)).expect("default settings");
    settings.server.host = "127.0.0.1".to_owned();
    settings.server.workers = 2;
    settings.server.request_header_timeout = std::time::Duration::from_secs(60);
    settings.server.keep_alive = std::time::Duration::from_secs(60);
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
    let db = TestDb::new("pulse_test");
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
