//! The write-ahead log (`[wal] enabled`): a `200` from `/gather` means the request's events
//! are on disk, so they survive `kill -9` and power loss, and reach MySQL exactly once.
//!
//! **Epochs.** Arrival time is cut into epochs, one per bucket width: every request
//! appends its events, as one record, to the segment file of the current epoch and records
//! them in that epoch's own [`Aggregator`]. At each bucket boundary the flusher *seals* the
//! epoch (new requests go to the next one), waits for the requests still in flight in it,
//! and from then on drains its closed buckets as usual. A sealed epoch's content never
//! changes, so each drain is a deterministic function of the segment file and of the
//! drain's *threshold* (the instant up to which buckets count as closed). The drain's batch
//! id is `w<instance>-<epoch>-<threshold>`, committed to `flush_batches` with its rows.
//!
//! **Replay.** On start, each segment left on disk is read back into an aggregator; the
//! highest threshold committed for it (read from `flush_batches`) says which buckets are
//! already in MySQL, and the rest is written under the id `w<instance>-<epoch>-<i64::MAX>`.
//! A crash during replay replays again and finds that id: exactly once, wherever the crash.
//!
//! **Group commit.** Requests append their encoded record to a shared buffer and wait; one
//! writer thread writes everything buffered, calls `fsync` once, and wakes every request of
//! that group. Under load, one `fsync` acknowledges many requests.
//!
//! **Format.** A segment starts with `PULSEWAL`, a version byte and the bucket width
//! (u32 LE). Each record is `len: u32 LE`, `crc32(len ‖ payload): u32 LE`, then the payload:
//! `count: u32`, then per event `label_len: u8`, label, `id: i64`, `value: i64`,
//! `at_ms: i64` (all LE); from version 2 on, then the request's idempotency key: a zero
//! byte when it had none, else the key and its reply as [`idempotency::encode`] writes
//! them. Version 1 segments (no key) are still read. A torn last record (a crash
//! mid-write: it was never acknowledged) is dropped on replay; any other damage stops the
//! start.
//!
//! The parts: [`format`] encodes records and reads segments back (pure); [`writer`] runs
//! the writer thread, group commit and the epochs' sealing; [`epoch`] holds what one
//! epoch gathered; [`files`] is where segments live; [`replay`] reads them back at start.

mod epoch;
mod files;
mod format;
mod replay;
mod writer;

use std::io;
use std::sync::Arc;

pub use epoch::{Epoch, InflightGuard, Pending};
pub use files::{DirStore, SegmentFile, SegmentStore};
pub use format::{
    batch_id, encode_record, parse_batch_id, read_segment, read_segment_with_keys, segment_header,
    Corruption, RecordKey, SegmentSummary, MAX_RECORD_LEN,
};
pub use replay::{
    committed_thresholds, plan_replay, recover, Recovered, ReplayPlan, SegmentReplay,
};
pub use writer::Wal;

/// Why an append did not become durable; the request answers 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log: {0}")]
    Io(Arc<str>),
    #[error("write-ahead log record too large ({0} bytes)")]
    TooLarge(usize),
    #[error("write-ahead log stopped")]
    Stopped,
}

impl WalError {
    fn io(context: &str, error: &io::Error) -> Self {
        WalError::Io(format!("{context}: {error}").into())
    }
}
