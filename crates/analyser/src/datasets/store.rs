//! The `datasets` table and what a change to a dataset does to the state derived from it.
//!
//! Every change commits in one transaction that first moves every shard's generation on:
//! a pull transaction in flight then finds it moved and rolls back, and every analyser
//! rebuilds its model from the database (datasets included) at its next pull, so a change
//! takes effect at the next step without a restart. The step totals, clocks and snapshots
//! the change makes stale are rewritten in the same transaction.

use sqlx::{Acquire, MySqlConnection, MySqlPool};

use crate::configuration::DatasetSettings;

/// What became of a dataset's model when it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChange {
    /// Nothing that judging depends on changed.
    Unchanged,
    /// Same step: the model is rebuilt from the stored history with the new settings.
    Kept,
    /// A coarser step, a multiple of the old one: the stored history was summed into the
    /// new steps (`steps` of them), and the model is rebuilt from it.
    Rebuilt { steps: u64 },
    /// A step the stored history cannot be summed into: it was dropped, and the dataset
    /// learns afresh from the next rows.
    Afresh,
}

impl ModelChange {
    /// What the reply tells the user.
    pub fn describe(self) -> String {
        match self {
            ModelChange::Unchanged => "nothing changed".to_owned(),
            ModelChange::Kept => "the new settings judge from the next step on".to_owned(),
            ModelChange::Rebuilt { steps } => format!(
                "the model is rebuilt from {steps} steps of stored history at the new time_step"
            ),
            ModelChange::Afresh => "the new time_step is not a multiple of the old one: the \
                                    dataset will learn afresh from the next rows"
                .to_owned(),
        }
    }
}

/// A replaced dataset: what it was, and what became of its model.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub before: DatasetSettings,
    pub model: ModelChange,
}

fn decode(name: &str, json: &str) -> Result<DatasetSettings, sqlx::Error> {
    serde_json::from_str(json)
        .map_err(|e| sqlx::Error::Decode(format!("dataset {name:?} as stored: {e}").into()))
}

fn encode(dataset: &DatasetSettings) -> Result<String, sqlx::Error> {
    serde_json::to_string(dataset).map_err(|e| sqlx::Error::Encode(e.into()))
}

/// On the first start only, the config file's datasets fill the table; later starts leave
/// it alone (the database is the truth). True when this call seeded it.
pub async fn seed(pool: &MySqlPool, config: &[DatasetSettings]) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let first =
        sqlx::query!("INSERT IGNORE INTO datasets_seeded (id, seeded_at) VALUES (1, NOW(3))")
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if first {
        for dataset in config {
            insert(&mut tx, dataset, "config file").await?;
        }
    }
    tx.commit().await?;
    Ok(first)
}

/// Every dataset, by name.
pub async fn load(pool: &MySqlPool) -> Result<Vec<DatasetSettings>, sqlx::Error> {
    // The name's binary collation reads back as bytes.
    let rows = sqlx::query!("SELECT name, settings FROM datasets ORDER BY name")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| decode(&String::from_utf8_lossy(&row.name), &row.settings))
        .collect()
}

async fn insert(
    conn: &mut MySqlConnection,
    dataset: &DatasetSettings,
    user: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO datasets (name, settings, updated_at, updated_by) VALUES (?, ?, NOW(3), ?)",
        &dataset.name,
        encode(dataset)?,
        user
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// First in every change: a pull in flight rolls back, and every analyser rebuilds.
async fn move_generations(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE cursors SET generation = generation + 1")
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops the state a dataset's model was built from: totals, clocks, snapshots.
async fn forget_state(conn: &mut MySqlConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM step_blocks WHERE dataset = ?", name)
        .execute(&mut *conn)
        .await?;
    sqlx::query!("DELETE FROM dataset_clocks WHERE dataset = ?", name)
        .execute(&mut *conn)
        .await?;
    sqlx::query!("DELETE FROM series_snapshots WHERE dataset = ?", name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates a dataset; false when one of that name exists. It is judged from the next
/// rows on.
pub async fn create(
    pool: &MySqlPool,
    dataset: &DatasetSettings,
    user: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let conn = tx.acquire().await?;
    move_generations(conn).await?;
    let exists = sqlx::query_scalar!(
        "SELECT 1 AS found FROM datasets WHERE name = ? FOR UPDATE",
        &dataset.name
    )
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_some() {
        return Ok(false);
    }
    forget_state(conn, &dataset.name).await?;
    insert(conn, dataset, user).await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes a dataset: it is judged no more, and its incidents still firing are resolved
/// now. Its anomalies, silences and reports stay.
/// False when there is none of that name.
pub async fn delete(pool: &MySqlPool, name: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let conn = tx.acquire().await?;
    move_generations(conn).await?;
    let deleted = sqlx::query!("DELETE FROM datasets WHERE name = ?", name)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if deleted {
        // Nothing follows its incidents any more: those still firing end now.
        sqlx::query!(
            "UPDATE anomalies SET state = 'resolved', resolved_at = UTC_TIMESTAMP() \
             WHERE dataset = ? AND state = 'firing'",
            name
        )
        .execute(&mut *conn)
        .await?;
        forget_state(conn, name).await?;
        tx.commit().await?;
    }
    Ok(deleted)
}

/// Replaces a dataset (`None` when there is none of that name). Its model is rebuilt with
/// the new settings from the stored history: snapshots are dropped (they hold detectors of
/// the old settings), as are the totals of series the dataset no longer selects. A coarser
/// `time_step`, a multiple of the old one, sums the stored totals into the new steps and
/// floors the clocks to them; any other new step drops the history.
pub async fn replace(
    pool: &MySqlPool,
    dataset: &DatasetSettings,
    user: &str,
) -> Result<Option<Replaced>, sqlx::Error> {
    let name = dataset.name.as_str();
    let mut tx = pool.begin().await?;
    let conn = tx.acquire().await?;
    move_generations(conn).await?;
    let stored = sqlx::query_scalar!(
        "SELECT settings FROM datasets WHERE name = ? FOR UPDATE",
        name
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let before = decode(name, &stored)?;
    let new_json = encode(dataset)?;
    if encode(&before)? == new_json {
        return Ok(Some(Replaced {
            before,
            model: ModelChange::Unchanged,
        }));
    }
    sqlx::query!(
        "UPDATE datasets SET settings = ?, updated_at = NOW(3), updated_by = ? WHERE name = ?",
        &new_json,
        user,
        name
    )
    .execute(&mut *conn)
    .await?;
    forget_unselected(conn, dataset).await?;
    let (old_step, new_step) = (before.time_step.as_secs(), dataset.time_step.as_secs());
    let model = if old_step == new_step {
        ModelChange::Kept
    } else if new_step.is_multiple_of(old_step) {
        ModelChange::Rebuilt {
            steps: regroup(conn, name, new_step).await?,
        }
    } else {
        forget_state(conn, name).await?;
        ModelChange::Afresh
    };
    sqlx::query!("DELETE FROM series_snapshots WHERE dataset = ?", name)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "UPDATE dataset_clocks SET snapshot_until = NULL WHERE dataset = ?",
        name
    )
    .execute(&mut *conn)
    .await?;
    tx.commit().await?;
    Ok(Some(Replaced { before, model }))
}

/// Sums a dataset's step totals into steps of `step` seconds (a multiple of the old step,
/// so each old step falls wholly in one new one), and floors its clocks to them: the
/// step a clock stood in is judged again, whole. Returns how many steps hold history.
async fn regroup(conn: &mut MySqlConnection, name: &str, step: u64) -> Result<u64, sqlx::Error> {
    let steps = crate::step_blocks::regroup(conn, name, step as i64).await?;
    // Seconds since 1970, whatever the session's time zone, floored to a multiple of `step`.
    sqlx::query!(
        "UPDATE dataset_clocks SET judged_until = TIMESTAMPADD(SECOND, \
         TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', judged_until) DIV ? * ?, \
         '1970-01-01 00:00:00') WHERE dataset = ?",
        step,
        step,
        name
    )
    .execute(&mut *conn)
    .await?;
    Ok(steps)
}

/// Drops the stored totals of series outside the dataset's labels and entities.
async fn forget_unselected(
    conn: &mut MySqlConnection,
    dataset: &DatasetSettings,
) -> Result<(), sqlx::Error> {
    // The IN lists are as long as the dataset's selection: built at run time, so not
    // checked at compile time.
    if !dataset.labels.is_empty() {
        let mut query =
            sqlx::QueryBuilder::<sqlx::MySql>::new("DELETE FROM step_blocks WHERE dataset = ");
        query
            .push_bind(&dataset.name)
            .push(" AND event_label NOT IN (");
        let mut labels = query.separated(", ");
        for label in &dataset.labels {
            labels.push_bind(label);
        }
        query.push(")");
        query.build().execute(&mut *conn).await?;
    }
    if !dataset.entities.is_empty() {
        let mut query =
            sqlx::QueryBuilder::<sqlx::MySql>::new("DELETE FROM step_blocks WHERE dataset = ");
        query
            .push_bind(&dataset.name)
            .push(" AND entity_id NOT IN (");
        let mut entities = query.separated(", ");
        for entity in &dataset.entities {
            entities.push_bind(entity);
        }
        query.push(")");
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}
