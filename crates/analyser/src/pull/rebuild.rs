//! The model rebuilt from what is committed, and old step totals forgotten.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use detect::level::StepTotals;

use crate::clock::DatasetClock;
use crate::judge::{Change, DatasetModel};
use crate::step_blocks;
use crate::store::{self};

use super::{Engine, PullError, KEEP_WINDOWS, REPLAY_WINDOWS};

impl Engine {
    /// Rebuilds the in-memory model from what is committed: cursor, clocks, the last
    /// windows of step totals (replayed into the detectors) and the anomalies that may
    /// still grow.
    pub(super) async fn rebuild(&mut self, shard_key: &str) -> Result<(), PullError> {
        (self.cursor, self.generation) = store::claim_cursor(&self.pool, shard_key).await?;
        let datasets = crate::datasets::load(&self.pool).await?;
        self.datasets.replace(datasets.clone());
        let mut models = Vec::with_capacity(datasets.len());
        for settings in &datasets {
            let clock = store::load_clock(&self.pool, &settings.name, shard_key).await?;
            let mut model = DatasetModel::new(settings, clock);
            if let Some(judged_until) = clock.judged_until {
                let step = model.params.rules.step;
                // From a snapshot, replaying the steps since gives exactly the state that
                // was; without one, the last windows of totals warm the detectors up.
                let mut replay_from = None;
                // A snapshot that cannot be read (another format) is as good as none: the
                // dataset warms up from its totals, and its next snapshot replaces it whole.
                if let Some(snapshot_until) = clock.snapshot_until {
                    let snapshots =
                        store::load_snapshots(&self.pool, &settings.name, shard_key).await?;
                    let restored = snapshots.iter().try_for_each(|(label, entity_id, state)| {
                        model
                            .restore_series(label, *entity_id, state)
                            .map_err(|error| (format!("{label}/{entity_id}"), error))
                    });
                    match restored {
                        Ok(()) => replay_from = Some(snapshot_until),
                        Err((series, error)) => {
                            tracing::warn!(
                                dataset = %settings.name,
                                %series,
                                %error,
                                "a series snapshot cannot be read (an older format): the \
                                 dataset is rebuilt from its stored totals"
                            );
                            let unsnapped = DatasetClock {
                                snapshot_until: None,
                                ..clock
                            };
                            model = DatasetModel::new(settings, unsnapped);
                        }
                    }
                }
                let from = replay_from.unwrap_or(
                    judged_until - REPLAY_WINDOWS * model.params.window_steps as i64 * step,
                );
                let stored = step_blocks::load_since(&self.pool, &settings.name, from).await?;
                let mut by_step: BTreeMap<i64, Vec<(String, i64, StepTotals)>> = BTreeMap::new();
                for row in stored {
                    if !self.shard.owns(&row.label) {
                        continue;
                    }
                    let totals = StepTotals {
                        sum: row.totals.sum as f64,
                        events: row.totals.events,
                        min: row.totals.min as f64,
                        max: row.totals.max as f64,
                    };
                    if row.step_start >= judged_until {
                        model.add_row(&row.label, row.entity_id, row.step_start, &totals);
                    } else {
                        by_step.entry(row.step_start).or_default().push((
                            row.label,
                            row.entity_id,
                            totals,
                        ));
                    }
                }
                if let Some(first) = replay_from.or_else(|| by_step.keys().next().copied()) {
                    let mut s = first;
                    while s < judged_until {
                        model.replay_step(s, by_step.get(&s).map_or(&[][..], Vec::as_slice));
                        s += step;
                    }
                }
                // Incidents a replay opened again are the store's: take their ids. One
                // the store does not know (no snapshot to replay from) is forgotten, and a
                // firing one the model no longer follows is resolved where judging stands.
                for (label, entity_id, start) in model.incidents_without_id() {
                    match store::firing_incident_id(
                        &self.pool,
                        &settings.name,
                        &label,
                        entity_id,
                        start,
                    )
                    .await?
                    {
                        Some(id) => model.assign_id(&label, entity_id, id),
                        None => model.forget_incident(&label, entity_id),
                    }
                }
                let following = model.firing_ids();
                let mut tx = self.pool.begin().await?;
                for (id, label) in store::firing_incidents(&self.pool, &settings.name).await? {
                    if self.shard.owns(&label) && !following.contains(&id) {
                        store::apply_change(
                            &mut tx,
                            &settings.name,
                            &Change::Resolve {
                                id,
                                resolved_at: judged_until,
                            },
                            Utc::now(),
                        )
                        .await?;
                    }
                }
                tx.commit().await?;
            }
            models.push(model);
        }
        self.last_snapshot = vec![None; models.len()];
        self.models = models;
        self.loaded = true;
        tracing::info!(
            cursor = self.cursor,
            series = self.series(),
            "detection state rebuilt from the database"
        );
        Ok(())
    }

    /// Forgets step totals older than a few windows, at most once a minute.
    pub(super) async fn prune_old_totals(&mut self) -> Result<(), sqlx::Error> {
        if self.last_prune.is_some_and(|t| t.elapsed().as_secs() < 60) {
            return Ok(());
        }
        self.last_prune = Some(Instant::now());
        for model in &self.models {
            if let Some(judged_until) = model.clock.judged_until {
                let keep =
                    KEEP_WINDOWS * model.params.window_steps as i64 * model.params.rules.step;
                // Never the totals a restart replays from the snapshot.
                let before = model
                    .clock
                    .snapshot_until
                    .map_or(judged_until - keep, |snapshot| {
                        snapshot.min(judged_until - keep)
                    });
                step_blocks::prune(&self.pool, &model.name, before).await?;
            }
        }
        Ok(())
    }
}
