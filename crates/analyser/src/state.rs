//! What the HTTP handlers and the timer share: the detection engine (one pull at a time),
//! the last pull's status, the users, and the datasets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use protocol::Severity;
use sqlx::MySqlPool;
use tokio::sync::Notify;

use crate::auth::Users;
use crate::configuration::{DatasetSettings, ShardSettings};
use crate::datasets::Datasets;
use crate::pull::{Engine, PullError, PullOutcome};

/// Where the analyser stands, for `/api/v1/state`'s `meta` and readiness.
#[derive(Debug, Clone, Default)]
pub struct PullStatus {
    pub last_pull_at: Option<DateTime<Utc>>,
    pub gatherer_up: bool,
    pub iterator: u64,
    pub series: u64,
    pub latest_event: Option<i64>,
}

#[derive(Debug)]
pub struct AppState {
    pub pool: MySqlPool,
    pub engine: tokio::sync::Mutex<Engine>,
    pub status: Mutex<PullStatus>,
    /// `None` when started with `--insecure-no-auth`.
    pub users: Option<Users>,
    /// The datasets in force (the database's, refreshed at each rebuild and change).
    pub datasets: Datasets,
    pub shard: ShardSettings,
    pub notify: Arc<Notify>,
    /// Answers of `/api/v1/state` by query, see [`StateCache`].
    pub state_cache: StateCache,
    /// How long a dismissal as expected teaches its series (`[feedback] feedback_ttl`).
    pub feedback_ttl: Duration,
}

/// Recent answers of `/api/v1/state`, as JSON, by query.
///
/// Dashboards poll the same few queries, and the answer only changes when a pull or a
/// verdict commits: those bump the version, which empties the cache at once. Writes by
/// other processes (another shard's replica, a cron `analyser pull`) show within
/// [`StateCache::MAX_AGE`].
#[derive(Debug, Default)]
pub struct StateCache {
    version: AtomicU64,
    pages: Mutex<HashMap<String, CachedPage>>,
}

/// One cached answer.
#[derive(Debug)]
struct CachedPage {
    /// The cache's version when its query began.
    version: u64,
    computed_at: Instant,
    /// The JSON of `data`.
    json: Arc<str>,
}

impl StateCache {
    pub const MAX_AGE: Duration = Duration::from_secs(1);
    const MAX_ENTRIES: usize = 1_000;

    pub fn invalidate(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub fn get(&self, key: &str) -> Option<Arc<str>> {
        let version = self.version.load(Ordering::Acquire);
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages
            .get(key)
            .filter(|page| page.version == version && page.computed_at.elapsed() < Self::MAX_AGE)
            .map(|page| page.json.clone())
    }

    /// Stores an answer computed at `version` (read before the query ran, so an answer
    /// racing a commit is never kept as current).
    pub fn put(&self, key: String, version: u64, json: Arc<str>) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if pages.len() >= Self::MAX_ENTRIES {
            pages.clear();
        }
        pages.insert(
            key,
            CachedPage {
                version,
                computed_at: Instant::now(),
                json,
            },
        );
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

impl AppState {
    /// Runs one pull (waiting for one in progress to finish first) and records its status.
    pub async fn pull(&self) -> Result<PullOutcome, PullError> {
        let mut engine = self.engine.lock().await;
        let started = std::time::Instant::now();
        let result = engine.pull(Utc::now).await;
        metrics::histogram!("analyser_pull_seconds").record(started.elapsed().as_secs_f64());
        match &result {
            Ok(outcome) => {
                metrics::counter!("analyser_pull_rows_total").increment(outcome.rows);
                metrics::counter!("analyser_late_rows_total").increment(outcome.late_rows);
                metrics::counter!("analyser_anomalies_total", "severity" => Severity::Warning.as_str())
                    .increment(outcome.new_warnings);
                metrics::counter!("analyser_anomalies_total", "severity" => Severity::Alarm.as_str())
                    .increment(outcome.new_alarms);
            }
            Err(error) => {
                let kind = match error {
                    PullError::Busy(_) => "busy",
                    PullError::Superseded(_) => "superseded",
                    PullError::Gatherer(_) => "gatherer",
                    PullError::Database(_) => "database",
                    PullError::Snapshot { .. } => "snapshot",
                };
                metrics::counter!("analyser_pull_errors_total", "kind" => kind).increment(1);
            }
        }
        if let Some(latest) = engine.latest_event() {
            let lag = Utc::now().timestamp_millis() as f64 / 1000.0 - latest as f64;
            metrics::gauge!("analyser_pull_lag_seconds").set(lag.max(0.0));
        }
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.last_pull_at = Some(Utc::now());
        status.gatherer_up = !matches!(result, Err(PullError::Gatherer(_)));
        status.iterator = engine.cursor();
        status.series = engine.series();
        status.latest_event = engine.latest_event();
        drop(status);
        if let Ok(outcome) = &result {
            if outcome.judged_steps > 0 || outcome.late_rows > 0 {
                self.state_cache.invalidate();
            }
            if outcome.new_anomalies > 0 {
                self.notify.notify_one();
            }
        }
        result
    }

    pub fn status(&self) -> PullStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn dataset(&self, name: &str) -> Option<DatasetSettings> {
        self.datasets.get(name)
    }
}
