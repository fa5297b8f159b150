//! What a pull writes besides the step totals (the model holds those until they are
//! committed) and the cursor: which clocks moved since the last commit, and the detector
//! snapshots.

use crate::judge::DatasetModel;
use crate::pull::PullError;
use crate::store;

/// Series encoded and written per statement of a snapshot: the states in flight stay a
/// few hundred KiB however many series there are.
const SNAPSHOT_CHUNK: usize = 64;

/// What a pull read and has not committed yet besides the totals the models hold: per
/// dataset, whether its clock moved; the export rows read.
pub(crate) struct Unflushed {
    pub clock_moved: Vec<bool>,
    pub rows: u64,
}

impl Unflushed {
    pub fn new(datasets: usize) -> Self {
        Unflushed {
            clock_moved: vec![false; datasets],
            rows: 0,
        }
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
