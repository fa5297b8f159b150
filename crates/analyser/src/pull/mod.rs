//! One pull cycle: follow the gatherer's export from the stored cursor until caught up,
//! sum the rows into each dataset's steps (the step totals, clocks and cursor of the pages
//! read since the last commit commit together, once about three steps of every series are
//! held and before every judgement), then judge the steps the clocks completed (their anomalies and the
//! clocks commit together). Judging after reading everything committed so far means rows
//! that committed out of time order still count in their steps.
//!
//! Pulls never overlap: in this process the [`Engine`] sits behind a mutex, and across
//! processes (the service, a cron `analyser pull`, another replica of the same shard) a
//! MySQL named lock that includes the database and the shard serialises them. A named
//! lock is the server's own, not replicated: on a multi-primary cluster (Galera) two
//! analysers of one shard on two nodes both get it. What makes them safe there is the
//! shard's *generation*: every transaction of a pull first moves it on from the one this
//! process last saw, so a process whose view is stale finds it moved and stops
//! ([`PullError::Superseded`]), and two that move it at once on two nodes conflict on
//! the cursor row, which certification turns into a deadlock error for one of them:
//! that one's transaction rolls back whole and it stops the same way. The in-memory model
//! is a cache of what is committed: whenever the stored generation is not the one this
//! process last committed (another process pulled, or a commit failed), it is rebuilt
//! from the database, so a restart neither loses nor repeats anything.

mod rebuild;

use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, MySqlPool};

use crate::configuration::ShardSettings;
use crate::datasets::Datasets;
use crate::gatherer_client::{ClientError, GathererClient};
use crate::judge::{DatasetModel, Severity};
use crate::step_blocks;
use crate::store::{self, ExactTotals};
use crate::writes::{record_step, save_snapshot, Unflushed};

/// During a long catch-up, judge at least every this many pages.
const JUDGE_EVERY_PAGES: u64 = 200;
/// During a long catch-up, judge once the unjudged series-steps held exceed this many
/// steps of every known series (and a floor): the totals held wait for judging in memory.
const PENDING_STEPS: usize = 3;
const PENDING_FLOOR: usize = 100_000;
/// What was read is committed once it holds more than [`PENDING_STEPS`] steps of every
/// known series (plus this floor), and before every judgement: a series' steps are written
/// together, as one row write per series and block.
const FLUSH_FLOOR: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("another pull of shard {0} is running")]
    Busy(String),
    /// Another process committed this shard's state first (on a cluster, certification
    /// failed this one's commit); nothing of this pull's last transaction committed, and
    /// the next pull resumes from the state that did.
    #[error("another analyser of shard {0} committed first; the next pull resumes from its state")]
    Superseded(String),
    #[error(transparent)]
    Gatherer(#[from] ClientError),
    #[error("analyser database: {0}")]
    Database(#[from] sqlx::Error),
    /// A series' detector state could not be encoded into the snapshot; nothing of the
    /// transaction committed. (A stored one that cannot be decoded is not an error: the
    /// model is rebuilt from stored totals.)
    #[error("snapshot of dataset {dataset}, series {series}: {source}")]
    Snapshot {
        dataset: String,
        /// `label/entity_id`.
        series: String,
        source: postcard::Error,
    },
}

/// What one pull did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullOutcome {
    /// Export rows read (all shards' rows count: they were read).
    pub rows: u64,
    pub iterator: u64,
    pub judged_steps: u64,
    pub late_rows: u64,
    pub new_anomalies: u64,
    pub new_warnings: u64,
    pub new_alarms: u64,
}

/// The analyser's detection state for one shard, and the means to advance it.
#[derive(Debug)]
pub struct Engine {
    pool: MySqlPool,
    client: GathererClient,
    shard: ShardSettings,
    page_size: u32,
    /// Refreshed from the database at every rebuild (a dataset change forces one).
    datasets: Datasets,
    models: Vec<DatasetModel>,
    cursor: u64,
    /// The shard's generation as this process last read or committed it.
    generation: u64,
    loaded: bool,
    last_prune: Option<Instant>,
    /// When each dataset's detector state was last snapshotted (wall time).
    last_snapshot: Vec<Option<Instant>>,
    /// Test-only: see [`abort_after_page`].
    abort_after_page: Option<u64>,
}

/// The variable of [`abort_after_page`].
pub const ABORT_AFTER_PAGE: &str = "PULSE_TEST_ABORT_AFTER_PAGE";

/// Test-only, and only in a debug build: with `PULSE_TEST_ABORT_AFTER_PAGE=k`, the process
/// stops the way SIGKILL would stop it (no destructor runs, the server rolls back what is
/// not committed) once a pull has handled its k-th page (and committed it if a commit was
/// due), so that a test interrupts a pull at a point it chooses. A release build ignores it.
fn abort_after_page() -> Option<u64> {
    #[cfg(debug_assertions)]
    {
        std::env::var(ABORT_AFTER_PAGE).ok()?.parse().ok()
    }
    #[cfg(not(debug_assertions))]
    {
        None
    }
}

impl Engine {
    pub fn new(
        pool: MySqlPool,
        client: GathererClient,
        shard: ShardSettings,
        page_size: u32,
        datasets: Datasets,
    ) -> Self {
        Engine {
            pool,
            client,
            shard,
            page_size,
            datasets,
            models: Vec::new(),
            cursor: 0,
            generation: 0,
            loaded: false,
            last_prune: None,
            last_snapshot: Vec::new(),
            abort_after_page: abort_after_page(),
        }
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn series(&self) -> u64 {
        self.models.iter().map(|m| m.series_count() as u64).sum()
    }

    /// The newest event any dataset has seen, unix seconds.
    pub fn latest_event(&self) -> Option<i64> {
        self.models
            .iter()
            .filter_map(|m| m.clock.latest_event)
            .max()
    }

    /// Reads the export until caught up, judging and committing page by page.
    pub async fn pull(&mut self, now: fn() -> DateTime<Utc>) -> Result<PullOutcome, PullError> {
        let shard_key = self.shard.key();
        let mut lock = self.pool.acquire().await?;
        // Named locks are server-wide: the name carries the database too, so analysers of
        // other databases on the same server never wait for each other. Hashed, because a
        // lock name is at most 64 characters.
        // A bound argument leaves the server unsure the name is never NULL (it is not) or
        // which character set it is in: the override says what it is.
        let lock_name = sqlx::query_scalar!(
            r#"SELECT CONCAT('pulse_pull:', SHA1(CONCAT(COALESCE(DATABASE(), ''), ':', ?))) AS "lock_name!: String""#,
            &shard_key
        )
        .fetch_one(&mut *lock)
        .await?;
        // NULL on an error, 0 on a timeout, 1 when taken.
        let got: Option<i64> =
            sqlx::query_scalar!(r#"SELECT GET_LOCK(?, 10) AS "got?: i64""#, &lock_name)
                .fetch_one(&mut *lock)
                .await?;
        if got != Some(1) {
            return Err(PullError::Busy(shard_key));
        }
        let result = match self.pull_locked(&shard_key, now).await {
            Err(PullError::Database(sqlx::Error::Database(e)))
                if e.code().as_deref() == Some("40001") =>
            {
                // A deadlock, or on a cluster a commit that failed certification: rolled
                // back whole.
                tracing::info!(shard = shard_key, error = %e, "pull transaction rolled back by a conflict");
                Err(PullError::Superseded(shard_key.clone()))
            }
            other => other,
        };
        if result.is_err() {
            // What is in memory may be ahead of what committed: rebuild next time.
            self.loaded = false;
        }
        let _ = sqlx::query_scalar!("SELECT RELEASE_LOCK(?) AS released", &lock_name)
            .fetch_one(&mut *lock)
            .await;
        result
    }

    async fn pull_locked(
        &mut self,
        shard_key: &str,
        now: fn() -> DateTime<Utc>,
    ) -> Result<PullOutcome, PullError> {
        let stored = store::load_generation(&self.pool, shard_key).await?;
        if !self.loaded || stored != Some(self.generation) {
            self.rebuild(shard_key).await?;
        }
        let mut outcome = PullOutcome {
            iterator: self.cursor,
            ..PullOutcome::default()
        };
        let mut pages_read = 0u64;
        let mut unflushed = Unflushed::new(self.models.len());
        loop {
            let page = self.client.page(self.cursor, self.page_size).await?;
            let now = now();
            let now_ms = now.timestamp_millis();
            let mut seen: Vec<Option<(i64, i64)>> = vec![None; self.models.len()];
            for row in &page.rows {
                if !self.shard.owns(&row.label) {
                    continue;
                }
                let date = row.event_date.timestamp();
                let delta = ExactTotals {
                    sum: i128::from(row.event_counter),
                    events: u64::from(row.events),
                    min: row.min_value,
                    max: row.max_value,
                };
                for (i, model) in self.models.iter_mut().enumerate() {
                    if !model.params.selects(&row.label, row.entity_id) {
                        continue;
                    }
                    if model.add_row(&row.label, row.entity_id, date, &delta) {
                        outcome.late_rows += 1;
                    }
                    seen[i] =
                        Some(seen[i].map_or((date, date), |(lo, hi)| (lo.min(date), hi.max(date))));
                }
            }
            for (i, model) in self.models.iter_mut().enumerate() {
                if let Some((earliest, latest)) = seen[i] {
                    let rules = model.params.rules;
                    model.clock.saw_rows(earliest, latest, now_ms, &rules);
                    unflushed.clock_moved[i] = true;
                }
            }
            unflushed.rows += page.rows.len() as u64;
            self.cursor = page.next_iterator;
            outcome.rows += page.rows.len() as u64;
            outcome.iterator = self.cursor;
            pages_read += 1;
            // Judge once everything committed so far is read (or, during a long catch-up,
            // every so many pages or once a few steps of every series wait in memory):
            // rows that committed out of time order (several gatherers, labels backfilled
            // one after another) are then all in their steps. What was read is committed
            // first, so the totals of every judged step are stored before its judgement.
            let pending: usize = self.models.iter().map(DatasetModel::pending_len).sum();
            let steps_held = PENDING_STEPS * self.series() as usize;
            let judge_now = !page.has_more
                || pages_read.is_multiple_of(JUDGE_EVERY_PAGES)
                || pending > steps_held + PENDING_FLOOR;
            let unflushed_len: usize = self.models.iter().map(DatasetModel::unflushed_len).sum();
            if judge_now || unflushed_len > steps_held + FLUSH_FLOOR {
                self.flush(shard_key, &mut unflushed).await?;
            }
            if judge_now {
                self.judge(shard_key, now, !page.has_more, &mut outcome)
                    .await?;
            }
            if self.abort_after_page == Some(pages_read) {
                tracing::warn!(pages_read, "{ABORT_AFTER_PAGE}: aborting the process");
                std::process::abort();
            }
            if !page.has_more {
                break;
            }
        }
        self.prune_old_totals().await?;
        Ok(outcome)
    }

    /// Commits what was read since the last commit: its step totals (one row write per
    /// series and block, whatever number of pages and steps they span), the clocks it
    /// moved and the cursor, together.
    async fn flush(&mut self, shard_key: &str, unflushed: &mut Unflushed) -> Result<(), PullError> {
        if unflushed.rows == 0 {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let conn = tx.acquire().await?;
        if !store::advance_generation(&mut *conn, shard_key, self.generation).await? {
            return Err(PullError::Superseded(shard_key.to_owned()));
        }
        for (i, model) in self.models.iter_mut().enumerate() {
            let totals = model.take_unflushed();
            step_blocks::append(&mut *conn, &model.name, &totals).await?;
            if std::mem::take(&mut unflushed.clock_moved[i]) {
                store::save_clock(&mut *conn, &model.name, shard_key, &model.clock).await?;
            }
        }
        store::save_cursor(&mut *conn, shard_key, self.cursor, unflushed.rows).await?;
        tx.commit().await?;
        self.generation += 1;
        unflushed.rows = 0;
        Ok(())
    }

    /// Judges every step the datasets' clocks have completed, and commits the anomalies
    /// and the clocks together. `caught_up`: the export has nothing more to read.
    async fn judge(
        &mut self,
        shard_key: &str,
        now: DateTime<Utc>,
        caught_up: bool,
        outcome: &mut PullOutcome,
    ) -> Result<(), PullError> {
        let now_ms = now.timestamp_millis();
        let mut tx = self.pool.begin().await?;
        let conn = tx.acquire().await?;
        if !store::advance_generation(&mut *conn, shard_key, self.generation).await? {
            return Err(PullError::Superseded(shard_key.to_owned()));
        }
        for (i, model) in self.models.iter_mut().enumerate() {
            let before = model.clock;
            while let Some(step) = model.clock.next_complete_step(now_ms, &model.params.rules) {
                let changes = model.judge_step(step);
                outcome.judged_steps += 1;
                for opened in record_step(&mut *conn, &model.name, &changes, now).await? {
                    model.assign_id(&opened.label, opened.entity_id, opened.id);
                    outcome.new_anomalies += 1;
                    match opened.severity {
                        Severity::Warning => outcome.new_warnings += 1,
                        Severity::Alarm => outcome.new_alarms += 1,
                    }
                }
            }
            if let (Some(judged_until), true) = (model.clock.judged_until, model.clock != before) {
                let a_minute_ago = self
                    .last_snapshot
                    .get(i)
                    .copied()
                    .flatten()
                    .is_none_or(|t| t.elapsed().as_secs() >= 60);
                if model.params.snapshot_due(
                    judged_until,
                    model.clock.snapshot_until,
                    a_minute_ago,
                    caught_up,
                ) {
                    save_snapshot(&mut *conn, model, shard_key).await?;
                    model.clock.snapshot_until = Some(judged_until);
                    if let Some(slot) = self.last_snapshot.get_mut(i) {
                        *slot = Some(Instant::now());
                    }
                }
            }
            if model.clock != before {
                store::save_clock(&mut *conn, &model.name, shard_key, &model.clock).await?;
            }
        }
        tx.commit().await?;
        self.generation += 1;
        Ok(())
    }
}
