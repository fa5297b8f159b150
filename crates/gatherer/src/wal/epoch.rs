//! One epoch of arrival time: its aggregator, the requests still writing into it, and the
//! handles an append gives back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::WalError;
use crate::bucket::Aggregator;

/// Shards of each epoch's aggregator: epochs are short-lived, a few shards suffice.
const EPOCH_SHARDS: usize = 64;

/// The events that arrived during one epoch, and the requests still writing them.
#[derive(Debug)]
pub struct Epoch {
    pub id: u64,
    /// Bucket (unix seconds) of the arrival time the epoch opened at.
    pub(super) opened_bucket: i64,
    pub(super) aggregator: Aggregator,
    pub(super) inflight: AtomicUsize,
}

impl Epoch {
    pub(super) fn new(id: u64, bucket_seconds: u32, now_ms: i64) -> Self {
        let aggregator = Aggregator::new(bucket_seconds, EPOCH_SHARDS);
        Epoch {
            id,
            opened_bucket: aggregator.bucket_of(now_ms).unix_seconds(),
            aggregator,
            inflight: AtomicUsize::new(0),
        }
    }

    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// Requests that appended to this epoch and have not yet recorded (or given up).
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }
}

/// Keeps an epoch from being drained while its request records; dropped, it lets go.
#[derive(Debug)]
pub struct InflightGuard(pub(super) Arc<Epoch>);

impl InflightGuard {
    pub fn aggregator(&self) -> &Aggregator {
        &self.0.aggregator
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An append waiting for its group's `fsync`.
#[derive(Debug)]
pub struct Pending {
    pub(super) guard: InflightGuard,
    pub(super) done: oneshot::Receiver<Result<(), WalError>>,
}

impl Pending {
    /// Resolves once the record is on disk; then record the events through the guard.
    pub async fn durable(self) -> Result<InflightGuard, WalError> {
        match self.done.await {
            Ok(Ok(())) => Ok(self.guard),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(WalError::Stopped),
        }
    }

    /// Waits until the record is on disk (or failed), keeping the guard: a caller that
    /// may be dropped while waiting can hand the wait on. Call it once.
    pub async fn wait(&mut self) -> Result<(), WalError> {
        match (&mut self.done).await {
            Ok(result) => result,
            Err(_) => Err(WalError::Stopped),
        }
    }

    /// The guard to record through, once [`Pending::wait`] returned `Ok`.
    pub fn into_guard(self) -> InflightGuard {
        self.guard
    }
}
