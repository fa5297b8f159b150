//! End-to-end harness: the real gatherer and analyser on port 0, each on its own fresh
//! MySQL database (dropped afterwards), and seeded synthetic traffic.

use std::time::Duration;

use analyser::configuration::{DatasetSettings, Method, Role, Settings, UserSettings};
use secrecy::SecretString;
use serde_json::Value;
pub use service::testing::{poll_until, TestDb};

pub const USER: &str = "analyst";
pub const PASSWORD: &str = "correct horse";
/// A user with the `viewer` role (reads only), same password.
pub const VIEWER: &str = "vic";
/// A user with the `analyst` role (verdicts and silences, not datasets), same password.
pub const ANALYST: &str = "ana";

/// A gatherer in this process that accepts backfill up to two days old.
pub struct Gatherer {
    pub url: String,
    pub db_url: String,
    /// Held so that the database lives as long as the gatherer that created it.
    _db: Option<TestDb>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Gatherer {
    pub async fn start() -> Self {
        let db = TestDb::new("pulse_test_g");
        let mut gatherer = Self::start_on(&db.url).await;
        gatherer._db = Some(db);
        gatherer
    }

    /// A gatherer that accepts backfill up to `max_event_age` old, for scenarios over days.
    pub async fn start_accepting(max_event_age: Duration) -> Self {
        let db = TestDb::new("pulse_test_g");
        let mut gatherer = Self::launch(&db.url, max_event_age).await;
        gatherer._db = Some(db);
        gatherer
    }

    /// Another replica on the database of an existing gatherer.
    pub async fn start_on(db_url: &str) -> Self {
        Self::launch(db_url, Duration::from_secs(2 * 86_400)).await
    }

    async fn launch(db_url: &str, max_event_age: Duration) -> Self {
        let mut settings = gatherer::configuration::Settings::load(None, Some(0)).unwrap();
        settings.server.workers = 2;
        // actix starts the header timeout when a connection is accepted: on a loaded
        // machine busy workers would answer 408 to requests nobody sent slowly.
        settings.server.request_header_timeout = Duration::from_secs(60);
        settings.server.keep_alive = Duration::from_secs(60);
        settings.database.url = SecretString::from(db_url.to_owned());
        settings.ingest.max_event_age = max_event_age;
        let app = gatherer::startup::Application::build(settings)
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Gatherer {
            url,
            db_url: db_url.to_owned(),
            _db: None,
            stop: Some(stop),
        }
    }

    /// Posts events as NDJSON, 20 000 a request. Like a careful client, each request has an
    /// `Idempotency-Key` and a connection lost under load is retried with it, so a body
    /// counts once whatever happened to the first try.
    pub async fn post(&self, events: &[Value]) {
        static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let client = reqwest::Client::new();
        for chunk in events.chunks(20_000) {
            let body: String = chunk.iter().map(|e| format!("{e}\n")).collect();
            let key = format!(
                "test-{}-{}",
                std::process::id(),
                REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let mut attempt = 0;
            let response = loop {
                attempt += 1;
                let sent = client
                    .post(format!("{}/gather", self.url))
                    .header("content-type", "application/x-ndjson")
                    .header("idempotency-key", &key)
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) => break response,
                    Err(error) if attempt < 3 && error.is_request() => continue,
                    Err(error) => panic!("POST /gather ({key}): {error}"),
                }
            };
            assert_eq!(response.status(), 200);
            let reply: Value = response.json().await.unwrap();
            assert_eq!(reply["rejected"], serde_json::json!([]), "{reply}");
        }
    }

    /// Waits until every accepted event is in MySQL.
    pub async fn flushed(&self) {
        let client = reqwest::Client::new();
        poll_until(Duration::from_secs(30), "the gatherer to flush", || async {
            let ready: Value = client
                .get(format!("{}/health/ready", self.url))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (ready["pending"] == 0).then_some(())
        })
        .await;
    }
}

impl Drop for Gatherer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The dataset of the scenarios: 1-minute steps over 30 minutes, `auto`; `price` carries
/// measurements, as in the README's example configuration.
pub fn shop(labels: &[&str], method: Method) -> DatasetSettings {
    DatasetSettings {
        labels: labels.iter().map(|l| l.to_string()).collect(),
        levels: labels
            .iter()
            .filter(|l| **l == "price")
            .map(|l| l.to_string())
            .collect(),
        time_step: Duration::from_secs(60),
        time_ago: Some(Duration::from_secs(1800)),
        method,
        ..DatasetSettings::all("shop")
    }
}

pub fn analyser_settings(
    db: &TestDb,
    gatherer_url: &str,
    datasets: Vec<DatasetSettings>,
) -> Settings {
    let mut settings = Settings::load(None, Some(0)).unwrap();
    settings.server.workers = 2;
    settings.database.url = SecretString::from(db.url.clone());
    settings.gatherer.url = gatherer_url.to_owned();
    // Pulls are triggered by the tests; the timer's first pull finds nothing.
    settings.gatherer.poll_interval = Duration::from_secs(3600);
    // The main user has no role, so is an admin, as users configured before roles are.
    settings.auth.users = [
        (USER, None),
        (VIEWER, Some(Role::Viewer)),
        (ANALYST, Some(Role::Analyst)),
    ]
    .into_iter()
    .map(|(name, role)| UserSettings {
        name: name.into(),
        password: Some(PASSWORD.to_owned().into()),
        password_hash: None,
        role,
    })
    .collect();
    settings.datasets = datasets;
    settings
}

/// An analyser in this process.
pub struct Analyser {
    pub url: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Analyser {
    pub async fn start(gatherer_url: &str, datasets: Vec<DatasetSettings>) -> Self {
        let db = TestDb::new("pulse_test_a");
        let settings = analyser_settings(&db, gatherer_url, datasets);
        Self::start_with(db, settings).await
    }

    pub async fn start_with(db: TestDb, settings: Settings) -> Self {
        let app = analyser::startup::Application::build(settings, false)
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Analyser {
            url,
            client: reqwest::Client::new(),
            db,
            stop: Some(stop),
        }
    }

    /// Stops this analyser and starts it again on the same database with `settings`,
    /// once the old one no longer answers.
    pub async fn restart(&mut self, settings: Settings) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let old = format!("{}/health/live", self.url);
        poll_until(
            Duration::from_secs(30),
            "the old analyser to stop",
            || async { reqwest::get(&old).await.is_err().then_some(()) },
        )
        .await;
        let app = analyser::startup::Application::build(settings, false)
            .await
            .unwrap();
        self.url = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        self.stop = Some(stop);
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
    }

    /// GET `path` as the analyst; the reply's JSON, whatever the status (tests assert on it).
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).send().await.unwrap().json().await.unwrap()
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
    }

    /// A request as another of the configured users.
    pub fn request_as(
        &self,
        user: &str,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .basic_auth(user, Some(PASSWORD))
    }

    /// Runs a pull now; returns its reply.
    pub async fn pull(&self) -> Value {
        let response = self.post("/api/v1/pull").send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn state(&self, query: &str) -> Value {
        let response = self
            .get(&format!("/api/v1/state?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

impl Drop for Analyser {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The workspace's seeded generator, so scenarios are the same on every run.
pub use detect::synth::Rng;

/// The start of the step `minutes_ago` minutes before now, unix seconds.
pub fn minutes_ago(minutes: i64) -> i64 {
    let now = chrono::Utc::now().timestamp();
    (now - minutes * 60).div_euclid(60) * 60
}

/// `count` events of one (label, entity) stamped at `ts`, each with `value`.
pub fn events(label: &str, entity: i64, ts: i64, count: u64, value: i64, out: &mut Vec<Value>) {
    for _ in 0..count {
        out.push(serde_json::json!({"label": label, "id": entity, "value": value, "ts": ts}));
    }
}
