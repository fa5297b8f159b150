//! The thin loop that moves closed buckets from the [`Aggregator`] into MySQL.
//!
//! Every tick it drains the buckets that closed (plus a short grace for requests still in
//! flight), cuts them into batches and writes them with [`store::insert_batch`]. A batch
//! that fails is kept and retried, with backoff, under the same id until it commits, so
//! an outage delays events but never loses or doubles them. While a batch waits, new
//! events keep aggregating in memory; the [`Backlog`] bound on rows not yet committed
//! turns that into 503s at ingest instead of unbounded memory.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backlog::{Backlog, DbStatus};
use crate::bucket::{Aggregator, Delta};
use crate::idempotency::KeyStore;
use crate::nats::{self, NatsIntake};
use crate::store::{Batch, FlushOutcome};
use crate::wal::{Epoch, Wal};

mod ledger;
mod sink;
#[cfg(test)]
mod tests;

pub use ledger::{SegmentKey, SegmentLedger};
pub use sink::Sink;

const TICK: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(1);
/// Accepted idempotency keys ride with the next batch; when no batch comes, they are
/// committed alone this often.
const KEYS_ALONE_EVERY: Duration = Duration::from_secs(2);
/// How often keys past the window are deleted from `idempotency_keys`.
const PRUNE_KEYS_EVERY: Duration = Duration::from_secs(60);

/// What was left when the flusher stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Events that could not be written before the deadline.
    pub unflushed_events: u64,
}

/// Wall time in unix milliseconds: bucket thresholds, epochs and the key window follow it.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The flush loop's state. Build it, then [`Flusher::run`] it on its own task.
pub struct Flusher<S: Sink = sqlx::MySqlPool> {
    sink: S,
    clock: Clock,
    aggregator: Arc<Aggregator>,
    backlog: Arc<Backlog>,
    db: Arc<DbStatus>,
    instance: String,
    next_sequence: u64,
    grace: Duration,
    max_rows_per_batch: usize,
    queue: VecDeque<Queued>,
    /// With the write-ahead log: sealed epochs not yet drained empty, oldest first.
    wal: Option<Arc<Wal>>,
    epochs: VecDeque<EpochSlot>,
    segments: SegmentLedger,
    backoff: Duration,
    retry_at: Option<Instant>,
    last_ping: Option<Instant>,
    /// Idempotency keys: each batch takes the keys accepted since the previous one.
    keys: Option<(Arc<KeyStore>, Duration)>,
    keys_alone_at: Instant,
    prune_keys_at: Instant,
    /// The NATS consumer's intake and stream: each drain of it is one batch.
    nats: Option<(Arc<std::sync::Mutex<NatsIntake>>, Arc<str>)>,
}

impl<S: Sink> std::fmt::Debug for Flusher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("instance", &self.instance)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Flusher<S> {
    /// A flusher writing to `sink` (MySQL in the service), reading the wall clock.
    pub fn new(
        sink: S,
        aggregator: Arc<Aggregator>,
        backlog: Arc<Backlog>,
        db: Arc<DbStatus>,
        grace: Duration,
        max_rows_per_batch: usize,
    ) -> Self {
        Flusher {
            sink,
            clock: Arc::new(|| chrono::Utc::now().timestamp_millis()),
            aggregator,
            backlog,
            db,
            instance: instance_id(),
            next_sequence: 0,
            grace,
            max_rows_per_batch: max_rows_per_batch.max(1),
            queue: VecDeque::new(),
            wal: None,
            epochs: VecDeque::new(),
            segments: SegmentLedger::default(),
            backoff: TICK,
            retry_at: None,
            last_ping: None,
            keys: None,
            keys_alone_at: Instant::now() + KEYS_ALONE_EVERY,
            prune_keys_at: Instant::now(),
            nats: None,
        }
    }

    /// Reads wall time from `clock` (unix milliseconds) instead of the system's: a test
    /// holds tokio's time still and moves both together.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Also drains what the NATS consumer recorded, each drain in one transaction with
    /// the stream sequences it covers.
    pub fn with_nats(
        mut self,
        intake: Arc<std::sync::Mutex<NatsIntake>>,
        stream: Arc<str>,
    ) -> Self {
        self.nats = Some((intake, stream));
        self
    }

    /// Queues a drain of the NATS intake: the buckets closed by `threshold` (all, for
    /// `None`), as one batch whatever its size, with the coverage the flush records.
    fn drain_nats(&mut self, threshold: Option<i64>) {
        let Some((intake, stream)) = &self.nats else {
            return;
        };
        let Some(drain) = nats::lock(intake).drain(threshold) else {
            return;
        };
        let mut batch = Batch::new(format!("n{}-{}", self.instance, drain.id), drain.deltas);
        batch.consumed = Some((stream.clone(), drain.coverage));
        self.push(Queued {
            batch,
            segment: None,
            nats_drain: Some(drain.id),
        });
    }

    /// Commits the idempotency keys `keys` accepts with the batches, and deletes those
    /// older than `window` from MySQL. Call before [`Flusher::with_wal`], so that keys
    /// read back from the log ride with its replay.
    pub fn with_keys(mut self, keys: Arc<KeyStore>, window: Duration) -> Self {
        self.keys = Some((keys, window));
        self
    }

    /// Switches to the write-ahead log: events come from the log's epochs, and `replay`
    /// (batches rebuilt from segments found at start, each with its file) goes first.
    pub fn with_wal(mut self, wal: Arc<Wal>, replay: Vec<(Batch, PathBuf)>) -> Self {
        for (batch, path) in replay {
            let key = self.segments.open(path);
            if batch.deltas.is_empty() {
                self.segment_done(key);
                continue;
            }
            self.backlog.add(batch.deltas.len() as u64);
            self.enqueue_for_segment(batch, key);
            self.segment_done(key);
        }
        self.wal = Some(wal);
        self
    }

    /// Flushes closed buckets until `shutdown` resolves, then flushes everything left,
    /// open buckets included, retrying until `deadline_after_shutdown` has passed.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        deadline_after_shutdown: Duration,
    ) -> FlushReport {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => break,
            }
            metrics::gauge!("gatherer_pending_rows").set(self.backlog.pending() as f64);
            if let Some((keys, _)) = &self.keys {
                metrics::gauge!("gatherer_idempotency_keys").set(keys.len() as f64);
            }
            let now_ms = (self.clock)();
            let grace_ms = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
            if let Some(sealed) = self.wal.as_ref().and_then(|wal| wal.seal_if_due(now_ms)) {
                self.adopt(sealed);
            }
            if self.queue.is_empty() {
                if self.wal.is_some() {
                    self.drain_epochs(Some(now_ms.saturating_sub(grace_ms)));
                } else {
                    let closed = self
                        .aggregator
                        .drain_closed(now_ms.saturating_sub(grace_ms));
                    self.enqueue(closed);
                }
                self.drain_nats(Some(now_ms.saturating_sub(grace_ms)));
            }
            if self.queue.is_empty() && Instant::now() >= self.keys_alone_at {
                self.push_keys_alone();
            }
            if self.queue.is_empty() {
                self.ping_when_idle().await;
                if self.db.is_up() {
                    self.prune_keys().await;
                }
            } else if self.retry_at.is_none_or(|at| Instant::now() >= at) {
                self.flush_queue().await;
            }
        }
        let deadline = Instant::now() + deadline_after_shutdown;
        if let Some(wal) = self.wal.clone() {
            self.adopt(wal.seal((self.clock)()));
            // Requests cut off by the server's stop let go of their epoch at once.
            while self.epochs.iter().any(|e| e.epoch.inflight() > 0) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.drain_epochs(None);
        } else {
            let everything = self.aggregator.drain_all();
            self.enqueue(everything);
        }
        self.drain_nats(None);
        self.push_keys_alone();
        while !self.queue.is_empty() && Instant::now() < deadline {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                tokio::time::sleep_until(self.retry_at.unwrap_or(deadline).min(deadline)).await;
                continue;
            }
            let attempt = self.flush_queue();
            if tokio::time::timeout_at(deadline, attempt).await.is_err() {
                break;
            }
        }
        if let Some(wal) = &self.wal {
            wal.stop();
        }
        let unflushed_events = self.queue.iter().map(|q| q.batch.events).sum();
        FlushReport { unflushed_events }
    }

    fn adopt(&mut self, epoch: Arc<Epoch>) {
        let Some(wal) = &self.wal else { return };
        let path = wal.segment_path(epoch.id);
        let segment = self.segments.open(path);
        self.epochs.push_back(EpochSlot {
            epoch,
            threshold: i64::MIN,
            segment,
        });
    }

    /// Drains the sealed epochs nobody is still recording into: the buckets closed by
    /// `threshold`, or everything (`None`, at shutdown). Each drain is one batch whose id
    /// names the epoch and the threshold, so a replay knows what it covered.
    fn drain_epochs(&mut self, threshold: Option<i64>) {
        let Some(wal) = self.wal.clone() else { return };
        let mut i = 0;
        while i < self.epochs.len() {
            let slot = &mut self.epochs[i];
            if slot.epoch.inflight() > 0 {
                i += 1;
                continue;
            }
            let (covered, mut deltas) = match threshold {
                Some(t) => {
                    let t = t.max(slot.threshold);
                    (t, slot.epoch.aggregator().drain_closed(t))
                }
                None => (i64::MAX, slot.epoch.aggregator().drain_all()),
            };
            let segment = slot.segment;
            let epoch_id = slot.epoch.id;
            let finished = slot.epoch.aggregator().is_empty();
            if !deltas.is_empty() {
                slot.threshold = covered;
                deltas.sort_unstable_by_key(|d| d.bucket);
                let batch = Batch::new(wal.batch_id(epoch_id, covered), deltas);
                self.enqueue_for_segment(batch, segment);
            }
            if finished {
                self.epochs.remove(i);
                self.segment_done(segment);
            } else {
                i += 1;
            }
        }
    }

    /// One batch, one transaction, whatever its size: its id must cover all of it.
    fn enqueue_for_segment(&mut self, batch: Batch, segment: SegmentKey) {
        self.segments.batch_queued(segment);
        self.push(Queued {
            batch,
            segment: Some(segment),
            nats_drain: None,
        });
    }

    /// Queues a batch, with the idempotency keys accepted since the previous one: a key
    /// is accepted only after its events are recorded (and, with the log, before its
    /// epoch can be drained), so the batch that takes it commits no later than the last
    /// batch holding its events.
    fn push(&mut self, mut queued: Queued) {
        if let Some((keys, _)) = &self.keys {
            queued.batch.keys.extend(keys.take_outbox());
            self.keys_alone_at = Instant::now() + KEYS_ALONE_EVERY;
        }
        self.queue.push_back(queued);
    }

    /// Queues the accepted keys no batch took, in a batch of their own.
    fn push_keys_alone(&mut self) {
        let Some((keys, _)) = &self.keys else { return };
        let taken = keys.take_outbox();
        self.keys_alone_at = Instant::now() + KEYS_ALONE_EVERY;
        if taken.is_empty() {
            return;
        }
        let id = format!("{}-{}", self.instance, self.next_sequence);
        self.next_sequence += 1;
        let mut batch = Batch::new(id, Vec::new());
        batch.keys = taken;
        self.queue.push_back(Queued {
            batch,
            segment: None,
            nats_drain: None,
        });
    }

    /// Deletes keys past the window from MySQL, now and then, while nothing waits.
    async fn prune_keys(&mut self) {
        let Some((_, window)) = &self.keys else {
            return;
        };
        if Instant::now() < self.prune_keys_at {
            return;
        }
        self.prune_keys_at = Instant::now() + PRUNE_KEYS_EVERY;
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let before = (self.clock)().saturating_sub(window_ms);
        if let Err(error) = self.sink.prune_idempotency_keys(before).await {
            tracing::warn!(%error, "could not delete expired idempotency keys; will retry");
        }
    }

    /// Nothing more will be drained from this segment's events.
    fn segment_done(&mut self, segment: SegmentKey) {
        remove_segment(self.segments.done(segment));
    }

    /// Cuts deltas into batches, oldest bucket first: ids then follow time within a flush,
    /// so a consumer reading a backfill page by page sees its buckets in order.
    fn enqueue(&mut self, mut deltas: Vec<Delta>) {
        deltas.sort_unstable_by_key(|d| d.bucket);
        while !deltas.is_empty() {
            let rest = deltas.split_off(deltas.len().min(self.max_rows_per_batch));
            let id = format!("{}-{}", self.instance, self.next_sequence);
            self.next_sequence += 1;
            self.push(Queued {
                batch: Batch::new(id, deltas),
                segment: None,
                nats_drain: None,
            });
            deltas = rest;
        }
    }

    /// Writes queued batches in order; stops at the first failure and schedules a retry.
    async fn flush_queue(&mut self) {
        while let Some(Queued {
            batch,
            segment,
            nats_drain,
        }) = self.queue.front()
        {
            let (segment, nats_drain) = (*segment, *nats_drain);
            let started = Instant::now();
            let result = self.sink.insert_batch(batch).await;
            metrics::histogram!("gatherer_flush_seconds").record(started.elapsed().as_secs_f64());
            match result {
                Ok(outcome) => {
                    if let FlushOutcome::Committed { rows, dead_letters } = outcome {
                        metrics::counter!("gatherer_flushed_rows_total").increment(rows as u64);
                        metrics::counter!("gatherer_dead_letters_total")
                            .increment(dead_letters as u64);
                    }
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    match outcome {
                        FlushOutcome::Committed { rows, dead_letters } if elapsed_ms >= 1000 => {
                            tracing::warn!(
                                batch = %batch.id, rows, dead_letters, events = batch.events,
                                elapsed_ms, "slow flush: a batch took over a second"
                            );
                        }
                        FlushOutcome::Committed { rows, dead_letters } => tracing::debug!(
                            batch = %batch.id, rows, dead_letters, events = batch.events,
                            elapsed_ms, "flushed"
                        ),
                        FlushOutcome::AlreadyCommitted => tracing::info!(
                            batch = %batch.id, "batch had committed before its retry; dropped the retry"
                        ),
                    }
                    self.backlog.release(batch.deltas.len() as u64);
                    if !batch.keys.is_empty() {
                        metrics::counter!("gatherer_idempotency_keys_committed_total")
                            .increment(batch.keys.len() as u64);
                    }
                    self.queue.pop_front();
                    if let Some(segment) = segment {
                        remove_segment(self.segments.batch_committed(segment));
                    }
                    if let (Some(id), Some((intake, _))) = (nats_drain, &self.nats) {
                        nats::lock(intake).committed(id);
                    }
                    self.db.set(true);
                    self.backoff = TICK;
                    self.retry_at = None;
                }
                Err(error) => {
                    tracing::warn!(batch = %batch.id, %error, retry_in = ?self.backoff, "flush failed; will retry");
                    self.db.set(false);
                    metrics::counter!("gatherer_flush_retries_total").increment(1);
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return;
                }
            }
        }
    }

    async fn ping_when_idle(&mut self) {
        if self.last_ping.is_some_and(|at| at.elapsed() < PING_EVERY) {
            return;
        }
        self.last_ping = Some(Instant::now());
        let answered = tokio::time::timeout(PING_EVERY, self.sink.ping()).await;
        self.db.set(answered.unwrap_or(false));
    }
}

/// A batch waiting for MySQL, and where its events came from: a write-ahead log
/// segment, or a drain of the NATS intake (whose messages are acked once it commits).
#[derive(Debug)]
struct Queued {
    batch: Batch,
    segment: Option<SegmentKey>,
    nats_drain: Option<u64>,
}

/// A sealed epoch of the write-ahead log and how far its drains have gone.
#[derive(Debug)]
struct EpochSlot {
    epoch: Arc<Epoch>,
    /// The threshold of its last drain.
    threshold: i64,
    segment: SegmentKey,
}

/// Deletes a segment file the ledger let go: all its events are drained and committed.
fn remove_segment(path: Option<PathBuf>) {
    let Some(path) = path else { return };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(
            path = %path.display(), %error,
            "cannot remove a flushed write-ahead log segment; a restart will find its batches committed"
        ),
    }
}

/// A per-process id for batch names: random, so that replicas and restarts never reuse
/// a batch id.
pub fn instance_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    // RandomState is seeded from the OS's randomness once per process.
    let seed = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{seed:016x}")
}
