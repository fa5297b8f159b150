//! What a pull writes besides the step totals (the model holds those until they are
//! committed) and the cursor: which clocks moved since the last commit, the incidents of a
//! judged step, and the detector snapshots.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use crate::judge::{Change, DatasetModel, Severity};
use crate::pull::PullError;
use crate::silences;
use crate::store::{self, Grown};
use crate::teachings;

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

/// An incident a judged step opened, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opened {
    pub label: Arc<str>,
    pub entity_id: i64,
    pub id: u64,
    pub severity: Severity,
}

/// Records the changes of one judged step in few statements: the teachings and silences
/// that may apply read once, each opened incident one row (its id is needed before the
/// next step), the grown ones together, the resolved ones together. What is recorded is
/// what recording the changes one by one, in their order, would leave: a series has one
/// change a step (or a growth then its resolution, written in that order), and an
/// incident's teachings are of its own series.
pub(crate) async fn record_step(
    conn: &mut MySqlConnection,
    dataset: &str,
    changes: &[Change],
    detected_at: DateTime<Utc>,
) -> Result<Vec<Opened>, sqlx::Error> {
    let starts = |opens_only: bool| {
        changes.iter().filter_map(move |change| match change {
            Change::Open { incident, .. } => Some(incident.start),
            Change::Update { incident, .. } if !opens_only => Some(incident.start),
            _ => None,
        })
    };
    let teachings = match starts(false).min() {
        Some(from) => teachings::in_force_from(&mut *conn, dataset, from).await?,
        None => teachings::InForce::default(),
    };
    let silences = match (starts(true).min(), starts(true).max()) {
        (Some(from), Some(to)) => silences::in_force_between(&mut *conn, dataset, from, to).await?,
        _ => Vec::new(),
    };
    let mut opened = Vec::new();
    let mut grown = Vec::new();
    let mut resolved = Vec::new();
    for change in changes {
        match change {
            Change::Open {
                label,
                entity_id,
                incident,
            } => {
                let recorded = teachings.record(label, *entity_id, incident);
                let silenced_by =
                    silences::first_covering(&silences, label, *entity_id, incident.start);
                let id = store::open_incident(
                    &mut *conn,
                    dataset,
                    label,
                    *entity_id,
                    &recorded.incident,
                    recorded.taught_by,
                    silenced_by,
                    detected_at,
                )
                .await?;
                opened.push(Opened {
                    label: label.clone(),
                    entity_id: *entity_id,
                    id,
                    severity: recorded.severity,
                });
            }
            Change::Update {
                label,
                entity_id,
                incident,
            } => grown.push((
                label.as_ref(),
                *entity_id,
                teachings.record(label, *entity_id, incident),
            )),
            Change::Resolve { id, resolved_at } => resolved.push((*resolved_at, *id)),
        }
    }
    let grown: Vec<Grown> = grown
        .iter()
        .map(|(label, entity_id, recorded)| Grown {
            label,
            entity_id: *entity_id,
            incident: &recorded.incident,
            taught_by: recorded.taught_by,
        })
        .collect();
    store::grow_incidents(&mut *conn, dataset, &grown, detected_at).await?;
    store::resolve_incidents(&mut *conn, &resolved).await?;
    Ok(opened)
}
