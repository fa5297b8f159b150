//! What the HTTP handlers and the timer share: the detection engine (one pull at a time),
//! the last pull's status, the users, and the datasets.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;
use tokio::sync::Notify;

use crate::auth::Users;
use crate::configuration::{DatasetSettings, ShardSettings};
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
    pub datasets: Vec<DatasetSettings>,
    pub shard: ShardSettings,
    pub notify: Arc<Notify>,
}

impl AppState {
    /// Runs one pull (waiting for one in progress to finish first) and records its status.
    pub async fn pull(&self) -> Result<PullOutcome, PullError> {
        let mut engine = self.engine.lock().await;
        let result = engine.pull(Utc::now).await;
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.last_pull_at = Some(Utc::now());
        status.gatherer_up = !matches!(result, Err(PullError::Gatherer(_)));
        status.iterator = engine.cursor();
        status.series = engine.series();
        status.latest_event = engine.latest_event();
        drop(status);
        if result.as_ref().is_ok_and(|o| o.new_anomalies > 0) {
            self.notify.notify_one();
        }
        result
    }

    pub fn status(&self) -> PullStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn dataset(&self, name: &str) -> Option<&DatasetSettings> {
        self.datasets.iter().find(|d| d.name == name)
    }
}
