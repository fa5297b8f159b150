//! The model rebuilt from what is committed, and old step totals forgotten.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::clock::DatasetClock;
use crate::judge::{DatasetModel, ReplayTotals, Unnumbered};
use crate::step_blocks;
use crate::store;

use super::{Engine, PullError};

impl Engine {
    /// Rebuilds the in-memory model from what is committed: cursor, clocks, the last
    /// windows of step totals (replayed into the detectors) and the anomalies that may
    /// still grow.
    pub(super) async fn rebuild(&mut self, shard_key: &str) -> Result<(), PullError> {
        let claimed = store::claim_cursor(&self.pool, shard_key).await?;
        (self.cursor, self.generation) = (claimed.iterator, claimed.generation);
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
                    let restored = snapshots.iter().try_for_each(|snapshot| {
                        let label = snapshot.label();
                        model
                            .restore_series(&label, snapshot.entity_id, &snapshot.state)
                            .map_err(|error| (format!("{label}/{}", snapshot.entity_id), error))
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
                let from = replay_from.unwrap_or(model.params.replay_from(judged_until));
                let stored = step_blocks::load_since(&self.pool, &settings.name, from).await?;
                let mut by_step: BTreeMap<i64, Vec<ReplayTotals>> = BTreeMap::new();
                for row in stored {
                    if !self.shard.owns(&row.label) {
                        continue;
                    }
                    if row.step_start >= judged_until {
                        model.add_stored(&row.label, row.entity_id, row.step_start, &row.totals);
                    } else {
                        by_step
                            .entry(row.step_start)
                            .or_default()
                            .push(ReplayTotals {
                                label: row.label,
                                entity_id: row.entity_id,
                                totals: row.totals,
                            });
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
                for Unnumbered {
                    series,
                    period_start,
                } in model.incidents_without_id()
                {
                    let (label, entity_id) = (&*series.label, series.entity_id);
                    match store::firing_incident_id(
                        &self.pool,
                        &settings.name,
                        label,
                        entity_id,
                        period_start,
                    )
                    .await?
                    {
                        Some(id) => model.assign_id(label, entity_id, id),
                        None => model.forget_incident(label, entity_id),
                    }
                }
                let following = model.firing_ids();
                let stray: Vec<(i64, u64)> = store::firing_incidents(&self.pool, &settings.name)
                    .await?
                    .into_iter()
                    .filter(|f| self.shard.owns(&f.label) && !following.contains(&f.id))
                    .map(|f| (judged_until, f.id))
                    .collect();
                let mut tx = self.pool.begin().await?;
                store::resolve_incidents(&mut tx, &stray).await?;
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
                let before = model
                    .params
                    .keep_from(judged_until, model.clock.snapshot_until);
                step_blocks::prune(&self.pool, &model.name, before).await?;
            }
        }
        Ok(())
    }
}
