//! What ingest and the flusher share about MySQL: the rows not yet committed against
//! their bound, and whether MySQL answered last time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Rows (series × buckets) held in memory and not yet committed to MySQL, against their
/// bound: what actually waits for MySQL and costs memory. Events summed into a row already
/// held add nothing, so the bound is reached only when MySQL falls behind (or is away),
/// never by the event rate alone.
#[derive(Debug)]
pub struct Backlog {
    pending: AtomicU64,
    max: u64,
}

impl Backlog {
    pub fn new(max_rows: u64) -> Self {
        Backlog {
            pending: AtomicU64::new(0),
            max: max_rows,
        }
    }

    /// Counts rows a request (or a replay of the write-ahead log) added.
    pub fn add(&self, rows: u64) {
        if rows > 0 {
            self.pending.fetch_add(rows, Ordering::AcqRel);
        }
    }

    /// Gives back `rows`: their batch committed.
    pub fn release(&self, rows: u64) {
        self.pending.fetch_sub(rows, Ordering::AcqRel);
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// At the bound: `/gather` refuses whole requests (503) until batches commit. A request
    /// admitted just below it may pass it by the rows it adds, so the memory held is at
    /// most the bound plus what the requests in flight add.
    pub fn is_full(&self) -> bool {
        self.pending() >= self.max
    }
}

/// What the flusher last learnt about MySQL, for readiness.
#[derive(Debug, Default)]
pub struct DbStatus {
    up: AtomicBool,
    ever_up: AtomicBool,
}

impl DbStatus {
    pub fn set(&self, up: bool) {
        self.up.store(up, Ordering::Release);
        if up {
            self.ever_up.store(true, Ordering::Release);
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn ever_up(&self) -> bool {
        self.ever_up.load(Ordering::Acquire)
    }
}
