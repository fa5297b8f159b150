//! Series snapshots: the detectors' state at the cursor, so a restart resumes without
//! reading the history again.

use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

use super::statements;

/// Writes series snapshots, each replacing the series' previous one.
pub async fn save_snapshots(
    conn: &mut MySqlConnection,
    dataset: &str,
    shard: &str,
    states: &[crate::judge::SeriesState],
) -> Result<(), sqlx::Error> {
    // A state is a few KiB: 64 a statement stay far below max_allowed_packet. Multi-row
    // statements of several sizes: built at run time, so not checked at compile time.
    for chunk in statements(states, 64) {
        let mut insert = QueryBuilder::<MySql>::new(
            "INSERT INTO series_snapshots (dataset, shard, event_label, entity_id, state) ",
        );
        insert.push_values(chunk, |mut row, snapshot| {
            row.push_bind(dataset)
                .push_bind(shard)
                .push_bind(&*snapshot.series.label)
                .push_bind(snapshot.series.entity_id)
                .push_bind(snapshot.state.as_slice());
        });
        insert.push(" ON DUPLICATE KEY UPDATE state = VALUES(state)");
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes the snapshots of series the model no longer holds.
pub async fn delete_snapshots(
    conn: &mut MySqlConnection,
    dataset: &str,
    shard: &str,
    series: &[crate::judge::SeriesKey],
) -> Result<(), sqlx::Error> {
    for key in series {
        sqlx::query!(
            "DELETE FROM series_snapshots WHERE dataset = ? AND shard = ? AND event_label = ? AND entity_id = ?",
            dataset,
            shard,
            &*key.label,
            key.entity_id
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes every snapshot of a dataset shard (a full snapshot follows).
pub async fn clear_snapshots(
    conn: &mut MySqlConnection,
    dataset: &str,
    shard: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "DELETE FROM series_snapshots WHERE dataset = ? AND shard = ?",
        dataset,
        shard
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One series' stored snapshot.
#[derive(Debug)]
pub struct StoredSnapshot {
    /// The binary-collated label comes as bytes; [`StoredSnapshot::label`] reads it.
    event_label: Vec<u8>,
    pub entity_id: i64,
    /// The encoded detector state.
    pub state: Vec<u8>,
}

impl StoredSnapshot {
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.event_label)
    }
}

/// A dataset shard's series snapshots.
pub async fn load_snapshots(
    pool: &MySqlPool,
    dataset: &str,
    shard: &str,
) -> Result<Vec<StoredSnapshot>, sqlx::Error> {
    sqlx::query_as!(
        StoredSnapshot,
        "SELECT event_label, entity_id, state FROM series_snapshots WHERE dataset = ? AND shard = ?",
        dataset,
        shard
    )
    .fetch_all(pool)
    .await
}
