//! Everything the gatherer says to MySQL: connecting (creating the database and running
//! migrations), the flush transaction, export pages, pruning, what a restart or a
//! redelivery reads back, and health pings.
//!
//! The flush keeps two promises of the contract. *Commit order = id order*: each flush
//! locks the one row of `export_seq` first and holds it until COMMIT, so ids become
//! visible in increasing order across every replica. *Exactly once*: the batch id is
//! inserted into `flush_batches` in the same transaction, so a retry of a batch whose
//! first attempt committed finds the id and is dropped.
//!
//! Static SQL goes through `sqlx::query!` and its kin, checked at compile time against
//! the query data in the workspace's `.sqlx/` (`scripts/sqlx-prepare.sh`). Statements
//! whose text depends on the input are built at run time, each saying why.

mod committed;
mod export;
mod flush;
mod prune;

use std::sync::Arc;

use sqlx::MySqlPool;

use crate::bucket::Delta;
use crate::configuration::DatabaseSettings;
use crate::idempotency::Accepted;
use crate::nats::intake::Coverage;

pub use committed::{load_idempotency_keys, nats_committed_through, wal_committed_thresholds};
pub use export::{export_page, export_sql};
pub use flush::insert_batch;
pub use prune::{prune, prune_idempotency_keys, PruneReport};

/// One flush: the deltas that commit together, under one id.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `<instance>-<sequence>`: unique per gatherer process and flush.
    pub id: Arc<str>,
    pub deltas: Vec<Delta>,
    /// Number of events summed in the deltas.
    pub events: u64,
    /// Idempotency keys accepted since the previous batch, committed with this one.
    pub keys: Vec<Accepted>,
    /// The NATS stream and the sequences whose events this batch commits.
    pub consumed: Option<(Arc<str>, Vec<Coverage>)>,
}

impl Batch {
    pub fn new(id: String, deltas: Vec<Delta>) -> Self {
        let events = deltas.iter().map(|d| u64::from(d.totals.events)).sum();
        Batch {
            id: id.into(),
            deltas,
            events,
            keys: Vec::new(),
            consumed: None,
        }
    }
}

/// What a flush attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// The batch committed now; `dead_letters` of its deltas went to `dead_letters`.
    Committed { rows: usize, dead_letters: usize },
    /// An earlier attempt of the same batch had committed; nothing was written.
    AlreadyCommitted,
}

/// Creates the database if it is missing, connects, and runs the gatherer's migrations,
/// waiting up to `connect_timeout` for a database that is still starting.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<MySqlPool> {
    let migrations = sqlx::migrate!("../../migrations/gatherer");
    service::db::connect(
        &settings.url,
        settings.max_connections,
        settings.connect_timeout,
        migrations,
    )
    .await
}

/// Answers whether MySQL responds.
pub async fn ping(pool: &MySqlPool) -> bool {
    sqlx::query_scalar!("SELECT 1 AS answer")
        .fetch_one(pool)
        .await
        .is_ok()
}
