//! What a pull writes besides the cursor: the step totals read since the last commit,
//! held until they are written together, and the detector snapshots.

use std::collections::HashMap;
use std::sync::Arc;

use crate::judge::DatasetModel;
use crate::pull::PullError;
use crate::store::{self, ExactTotals};

/// Series encoded and written per statement of a snapshot: the states in flight stay a
/// few hundred KiB however many series there are.
const SNAPSHOT_CHUNK: usize = 64;

/// One step of one series: what totals are held by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SeriesStep {
    pub label: Arc<str>,
    pub entity_id: i64,
    pub step_start: i64,
}

/// What a pull read and has not committed yet: per dataset, the exact totals by (series,
/// step) and whether its clock moved; the export rows it covers.
pub(crate) struct Unflushed {
    pub totals: Vec<HashMap<SeriesStep, ExactTotals>>,
    pub clock_moved: Vec<bool>,
    pub rows: u64,
}

impl Unflushed {
    pub fn new(datasets: usize) -> Self {
        Unflushed {
            totals: vec![HashMap::new(); datasets],
            clock_moved: vec![false; datasets],
            rows: 0,
        }
    }

    pub fn add(
        &mut self,
        dataset: usize,
        label: Arc<str>,
        entity_id: i64,
        step: i64,
        t: &ExactTotals,
    ) {
        self.totals[dataset]
            .entry(SeriesStep {
                label,
                entity_id,
                step_start: step,
            })
            .and_modify(|sum| sum.merge(t))
            .or_insert(*t);
    }

    /// (series, step) entries held.
    pub fn len(&self) -> usize {
        self.totals.iter().map(HashMap::len).sum()
    }
}

/// Writes a dataset's snapshot at its current `judged_until`: the series that changed
/// since the last one (each replaces its previous state) and the removal of the series
/// forgotten since. A model rebuilt without a snapshot writes every series (after
/// clearing what an older snapshot left).
pub(crate) async fn save_snapshot(
    conn: &mut sqlx::MySqlConnection,
    model: &mut DatasetModel,
    shard_key: &str,
) -> Result<(), PullError> {
    if model.clock.snapshot_until.is_none() {
        store::clear_snapshots(&mut *conn, &model.name, shard_key).await?;
    }
    let forgotten = model.take_forgotten();
    store::delete_snapshots(&mut *conn, &model.name, shard_key, &forgotten).await?;
    let keys = model.series_keys();
    let mut states = Vec::with_capacity(SNAPSHOT_CHUNK);
    for chunk in keys.chunks(SNAPSHOT_CHUNK) {
        states.clear();
        for key in chunk {
            let state = model
                .encode_changed(key)
                .map_err(|source| PullError::Snapshot {
                    dataset: model.name.clone(),
                    series: format!("{}/{}", key.label, key.entity_id),
                    source,
                })?;
            states.extend(state);
        }
        store::save_snapshots(&mut *conn, &model.name, shard_key, &states).await?;
    }
    Ok(())
}
