//! Where the flusher writes: MySQL in the service, and whatever a unit test of the loop
//! puts in its place to hold time still and fail on cue.

use std::future::Future;

use sqlx::MySqlPool;

use crate::store::{self, Batch, FlushOutcome};

/// The writes the flush loop makes.
pub trait Sink: Send + Sync + 'static {
    /// Writes one batch in one transaction, exactly once ([`store::insert_batch`]).
    fn insert_batch(
        &self,
        batch: &Batch,
    ) -> impl Future<Output = Result<FlushOutcome, sqlx::Error>> + Send;
    /// Answers whether the database responds.
    fn ping(&self) -> impl Future<Output = bool> + Send;
    /// Deletes idempotency keys accepted before `before_ms`.
    fn prune_idempotency_keys(
        &self,
        before_ms: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
}

impl Sink for MySqlPool {
    fn insert_batch(
        &self,
        batch: &Batch,
    ) -> impl Future<Output = Result<FlushOutcome, sqlx::Error>> + Send {
        store::insert_batch(self, batch)
    }

    fn ping(&self) -> impl Future<Output = bool> + Send {
        store::ping(self)
    }

    fn prune_idempotency_keys(
        &self,
        before_ms: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send {
        store::prune_idempotency_keys(self, before_ms)
    }
}
