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

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::bucket::Aggregator;
use crate::idempotency::{self, Accepted};
use crate::ingest::{validate_label, ValidEvent};

const MAGIC: &[u8; 8] = b"PULSEWAL";
/// Written: 2 (records end with the request's idempotency key). Read: 1 and 2.
const VERSION: u8 = 2;
const HEADER_LEN: usize = MAGIC.len() + 1 + 4;
const RECORD_HEADER_LEN: usize = 8;
/// Bytes of one encoded event besides its label: length byte, id, value, time.
const EVENT_FIXED_LEN: usize = 1 + 8 + 8 + 8;
/// A record larger than this is refused when written and read as damage.
pub const MAX_RECORD_LEN: usize = 1 << 30;
const EXTENSION: &str = "wal";
/// Shards of each epoch's aggregator: epochs are short-lived, a few shards suffice.
const EPOCH_SHARDS: usize = 64;

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

/// A segment that cannot be replayed: the start stops with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Corruption(pub String);

/// The idempotency key a record carries: the key, when it was accepted, and the reply.
#[derive(Debug, Clone, Copy)]
pub struct RecordKey<'a> {
    pub key: &'a str,
    pub accepted_ms: i64,
    pub reply: &'a [u8],
}

/// Appends the record of one request's events (and its idempotency key) to `out`.
pub fn encode_record(
    events: &[ValidEvent<'_>],
    key: Option<RecordKey<'_>>,
    out: &mut Vec<u8>,
) -> Result<(), WalError> {
    let key_len = key.map_or(1, |k| idempotency::encoded_len(k.key, k.reply));
    let payload_len = 4
        + events
            .iter()
            .map(|e| EVENT_FIXED_LEN + e.label.len())
            .sum::<usize>()
        + key_len;
    if payload_len > MAX_RECORD_LEN {
        return Err(WalError::TooLarge(payload_len));
    }
    out.reserve(RECORD_HEADER_LEN + payload_len);
    // Both fit u32: payload_len <= MAX_RECORD_LEN < 2^32, so the count does too.
    let len_bytes = (payload_len as u32).to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for event in events {
        let label = event.label.as_bytes();
        // A validated label is at most 50 characters, 200 bytes.
        out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&label[..label.len().min(255)]);
        out.extend_from_slice(&event.id.to_le_bytes());
        out.extend_from_slice(&event.value.to_le_bytes());
        out.extend_from_slice(&event.at_ms.to_le_bytes());
    }
    match key {
        Some(k) => idempotency::encode(k.key, k.accepted_ms, k.reply, out),
        None => out.push(0),
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(&out[start + RECORD_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(())
}

/// The header every segment starts with.
pub fn segment_header(bucket_seconds: u32) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8] = VERSION;
    header[9..].copy_from_slice(&bucket_seconds.to_le_bytes());
    header
}

/// What reading a segment found besides its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The bucket width the segment was written with (None: the header itself was torn).
    pub bucket_seconds: Option<u32>,
    pub records: usize,
    pub events: u64,
    /// Bytes of a torn last record that were dropped.
    pub torn_bytes: usize,
}

/// Reads a segment, calling `visit(label, id, value, at_ms)` for every event of every
/// intact record. Pure: the fuzz target reads segments through it.
pub fn read_segment(
    bytes: &[u8],
    visit: impl FnMut(&str, i64, i64, i64),
) -> Result<SegmentSummary, Corruption> {
    read_segment_with_keys(bytes, visit, |_| {})
}

/// [`read_segment`], also calling `visit_key` with the idempotency key of every intact
/// record that has one. Pure: the replay reads segments through it.
pub fn read_segment_with_keys(
    bytes: &[u8],
    mut visit: impl FnMut(&str, i64, i64, i64),
    mut visit_key: impl FnMut(Accepted),
) -> Result<SegmentSummary, Corruption> {
    let mut summary = SegmentSummary {
        bucket_seconds: None,
        records: 0,
        events: 0,
        torn_bytes: 0,
    };
    if bytes.len() < HEADER_LEN {
        // A crash while the header was written: a prefix of a header, or zeros.
        let expected = segment_header(0);
        let prefix = bytes.len().min(9);
        if bytes[..prefix] == expected[..prefix] || bytes.iter().all(|&b| b == 0) {
            summary.torn_bytes = bytes.len();
            return Ok(summary);
        }
        return Err(Corruption("the segment header is damaged".into()));
    }
    let version = bytes[8];
    if &bytes[..8] != MAGIC || !(1..=VERSION).contains(&version) {
        return Err(Corruption(
            "not a Pulse write-ahead log segment (bad magic or version)".into(),
        ));
    }
    let bucket_seconds = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
    if bucket_seconds == 0 {
        return Err(Corruption(
            "the segment header has a zero bucket width".into(),
        ));
    }
    summary.bucket_seconds = Some(bucket_seconds);
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        match split_record(rest) {
            Ok((payload, used)) => {
                summary.events += decode_payload(payload, version, &mut visit, &mut visit_key)
                    .map_err(|e| Corruption(format!("record at byte {pos}: {e}")))?;
                summary.records += 1;
                pos += used;
            }
            Err(RecordError::Incomplete) => {
                summary.torn_bytes = rest.len();
                break;
            }
            Err(RecordError::Bad { claimed_end, what }) => {
                // A torn last write: it ends the file, or only zeros follow (a file
                // extended but never written).
                if claimed_end == Some(rest.len()) || rest.iter().all(|&b| b == 0) {
                    summary.torn_bytes = rest.len();
                    break;
                }
                return Err(Corruption(format!("record at byte {pos}: {what}")));
            }
        }
    }
    Ok(summary)
}

enum RecordError {
    /// The record runs past the end of the file.
    Incomplete,
    /// The record is damaged; `claimed_end` is where it says it ends.
    Bad {
        claimed_end: Option<usize>,
        what: &'static str,
    },
}

fn split_record(rest: &[u8]) -> Result<(&[u8], usize), RecordError> {
    if rest.len() < RECORD_HEADER_LEN {
        return Err(RecordError::Incomplete);
    }
    let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    if !(4..=MAX_RECORD_LEN).contains(&len) {
        return Err(RecordError::Bad {
            claimed_end: None,
            what: "impossible record length",
        });
    }
    let end = RECORD_HEADER_LEN + len;
    if rest.len() < end {
        return Err(RecordError::Incomplete);
    }
    let stored = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let payload = &rest[RECORD_HEADER_LEN..end];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(payload);
    if crc.finalize() != stored {
        return Err(RecordError::Bad {
            claimed_end: Some(end),
            what: "checksum mismatch",
        });
    }
    Ok((payload, end))
}

fn decode_payload(
    payload: &[u8],
    version: u8,
    visit: &mut impl FnMut(&str, i64, i64, i64),
    visit_key: &mut impl FnMut(Accepted),
) -> Result<u64, String> {
    let mut reader = Reader(payload);
    let count = reader.u32()?;
    for _ in 0..count {
        let label_len = usize::from(reader.take(1)?[0]);
        let label = std::str::from_utf8(reader.take(label_len)?)
            .map_err(|_| "label is not UTF-8".to_owned())?;
        validate_label(label)?;
        let id = reader.i64()?;
        let value = reader.i64()?;
        let at_ms = reader.i64()?;
        visit(label, id, value, at_ms);
    }
    if version >= 2 {
        if reader.0.first() == Some(&0) {
            reader.take(1)?;
        } else {
            let (key, used) = idempotency::decode(reader.0)?;
            reader.take(used)?;
            visit_key(key);
        }
    }
    if !reader.0.is_empty() {
        return Err("bytes after the last event".into());
    }
    Ok(u64::from(count))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("record shorter than its events".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, String> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(bytes))
    }
}

/// The batch id of one drain of one epoch: deterministic, so that a replay recognises
/// what committed.
pub fn batch_id(instance: &str, epoch: u64, threshold_ms: i64) -> String {
    format!("w{instance}-{epoch}-{threshold_ms}")
}

/// Parses `w<instance>-<epoch>-<threshold>`.
pub fn parse_batch_id(id: &str) -> Option<(&str, u64, i64)> {
    let rest = id.strip_prefix('w')?;
    let (instance, rest) = rest.split_once('-')?;
    let (epoch, threshold) = rest.split_once('-')?;
    Some((instance, epoch.parse().ok()?, threshold.parse().ok()?))
}

/// `<instance>-<epoch>.wal`, with the epoch zero-padded so names sort in order.
fn segment_name(instance: &str, epoch: u64) -> String {
    format!("{instance}-{epoch:020}.{EXTENSION}")
}

fn parse_segment_name(name: &str) -> Option<(String, u64)> {
    let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
    let (instance, epoch) = stem.split_once('-')?;
    if instance.is_empty() || !instance.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((instance.to_owned(), epoch.parse().ok()?))
}

/// A segment found on disk at start, read back.
#[derive(Debug)]
pub struct Recovered {
    pub path: PathBuf,
    pub instance: String,
    pub epoch: u64,
    /// Its events, summed with the bucket width it was written with.
    pub aggregator: Aggregator,
    /// The idempotency keys its records carry.
    pub keys: Vec<Accepted>,
    pub summary: SegmentSummary,
}

/// Reads every segment in `dir`. A missing directory holds nothing; a directory that
/// cannot be listed also holds nothing we can replay (requests will get 503 until it
/// is fixed), and is reported in the log. Damage other than a torn last record is an
/// error naming the file.
pub fn recover(dir: &Path) -> Result<Vec<Recovered>, Corruption> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            tracing::error!(dir = %dir.display(), %error, "cannot list the write-ahead log directory; nothing replayed");
            return Ok(Vec::new());
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((instance, epoch)) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        found.push((entry.path(), instance, epoch));
    }
    found.sort_by(|a, b| (&a.1, a.2).cmp(&(&b.1, b.2)));
    let mut recovered = Vec::with_capacity(found.len());
    for (path, instance, epoch) in found {
        let bytes = std::fs::read(&path).map_err(|e| {
            Corruption(format!(
                "cannot read write-ahead log segment {}: {e}",
                path.display()
            ))
        })?;
        let mut events = Vec::new();
        let mut keys = Vec::new();
        let summary = read_segment_with_keys(
            &bytes,
            |label, id, value, at_ms| events.push((Arc::<str>::from(label), id, value, at_ms)),
            |key| keys.push(key),
        )
        .map_err(|e| {
            Corruption(format!(
                "write-ahead log segment {} is damaged ({}); move it aside to start without it (its events are then lost)",
                path.display(),
                e.0
            ))
        })?;
        let aggregator = Aggregator::new(summary.bucket_seconds.unwrap_or(1), 1);
        for (label, id, value, at_ms) in events {
            aggregator.record(&label, id, value, at_ms);
        }
        recovered.push(Recovered {
            path,
            instance,
            epoch,
            aggregator,
            keys,
            summary,
        });
    }
    Ok(recovered)
}

/// The events that arrived during one epoch, and the requests still writing them.
#[derive(Debug)]
pub struct Epoch {
    pub id: u64,
    /// Bucket (unix seconds) of the arrival time the epoch opened at.
    opened_bucket: i64,
    aggregator: Aggregator,
    inflight: AtomicUsize,
}

impl Epoch {
    fn new(id: u64, bucket_seconds: u32, now_ms: i64) -> Self {
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
pub struct InflightGuard(Arc<Epoch>);

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
    guard: InflightGuard,
    done: oneshot::Receiver<Result<(), WalError>>,
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

type Waiter = oneshot::Sender<Result<(), WalError>>;

/// Bytes of one epoch waiting for the writer, and who waits for them.
struct Group {
    epoch: u64,
    bytes: Vec<u8>,
    waiters: Vec<Waiter>,
}

struct State {
    current: Arc<Epoch>,
    next_epoch: u64,
    /// The current epoch's bytes not yet handed to the writer.
    buffer: Vec<u8>,
    waiters: Vec<Waiter>,
    /// Groups of sealed epochs not yet written.
    sealed: Vec<Group>,
    /// An epoch whose file is in an unknown state after a failed write: appends to it
    /// are refused until it is sealed.
    broken: Option<u64>,
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

/// Where segments live and how to open them; a test replaces it to inject faults.
pub trait SegmentStore: Send + 'static {
    /// Opens (creating if needed) a segment for appending, returns it with its length.
    fn open(&mut self, name: &str) -> io::Result<(Box<dyn SegmentFile>, u64)>;
    /// Makes a newly created file's directory entry durable.
    fn sync_dir(&mut self) -> io::Result<()>;
}

/// An open segment: append, make durable, cut back.
pub trait SegmentFile: Send {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// Segments as files in a directory.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    pub fn new(dir: PathBuf) -> Self {
        DirStore { dir }
    }
}

impl SegmentStore for DirStore {
    fn open(&mut self, name: &str) -> io::Result<(Box<dyn SegmentFile>, u64)> {
        std::fs::create_dir_all(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))?;
        let len = file.metadata()?.len();
        Ok((Box::new(file), len))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl SegmentFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_data()
    }
}

/// The live log: appends from requests, one writer thread, epochs sealed by the flusher.
pub struct Wal {
    dir: PathBuf,
    instance: String,
    bucket_seconds: u32,
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Starts the log in `dir` (created on first write). `instance` names this process's
    /// segments and batch ids and must never repeat.
    pub fn start(dir: PathBuf, instance: String, bucket_seconds: u32, now_ms: i64) -> Self {
        let store = DirStore::new(dir.clone());
        Self::start_with(store, dir, instance, bucket_seconds, now_ms)
    }

    /// [`Wal::start`] with a given segment store (fault injection in tests).
    pub fn start_with(
        store: impl SegmentStore,
        dir: PathBuf,
        instance: String,
        bucket_seconds: u32,
        now_ms: i64,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                current: Arc::new(Epoch::new(0, bucket_seconds, now_ms)),
                next_epoch: 1,
                buffer: Vec::new(),
                waiters: Vec::new(),
                sealed: Vec::new(),
                broken: None,
                closing: false,
            }),
            work: Condvar::new(),
        });
        let writer = {
            let shared = shared.clone();
            let instance = instance.clone();
            std::thread::Builder::new()
                .name("wal-writer".into())
                .spawn(move || writer_loop(&shared, store, &instance, bucket_seconds))
                .ok()
        };
        if writer.is_none() {
            tracing::error!(
                "cannot start the write-ahead log writer thread; /gather will answer 503"
            );
        }
        Wal {
            dir,
            instance,
            bucket_seconds,
            shared,
            writer: Mutex::new(writer),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn segment_path(&self, epoch: u64) -> PathBuf {
        self.dir.join(segment_name(&self.instance, epoch))
    }

    pub fn batch_id(&self, epoch: u64, threshold_ms: i64) -> String {
        batch_id(&self.instance, epoch, threshold_ms)
    }

    /// Appends one request's events (and its idempotency key) to the current epoch. The
    /// events must be recorded through the guard that [`Pending::durable`] returns, and
    /// only then acknowledged.
    pub fn append(
        &self,
        events: &[ValidEvent<'_>],
        key: Option<RecordKey<'_>>,
    ) -> Result<Pending, WalError> {
        let mut record = Vec::new();
        encode_record(events, key, &mut record)?;
        let (tx, rx) = oneshot::channel();
        let mut state = lock(&self.shared.state);
        if state.closing {
            return Err(WalError::Stopped);
        }
        if state.broken == Some(state.current.id) {
            return Err(WalError::Io(
                "the current segment could not be repaired after a write error".into(),
            ));
        }
        // Counted under the lock: once an epoch is sealed, nobody can join it.
        state.current.inflight.fetch_add(1, Ordering::AcqRel);
        let guard = InflightGuard(state.current.clone());
        if state.buffer.is_empty() {
            state.buffer = record;
        } else {
            state.buffer.extend_from_slice(&record);
        }
        state.waiters.push(tx);
        drop(state);
        self.shared.work.notify_one();
        Ok(Pending { guard, done: rx })
    }

    /// Seals the current epoch if arrival time has moved into a later bucket, and returns
    /// it; new appends go to a fresh epoch.
    pub fn seal_if_due(&self, now_ms: i64) -> Option<Arc<Epoch>> {
        let mut state = lock(&self.shared.state);
        let bucket = state.current.aggregator.bucket_of(now_ms).unix_seconds();
        if bucket <= state.current.opened_bucket {
            return None;
        }
        Some(self.seal_locked(&mut state, now_ms))
    }

    /// Seals the current epoch whatever the time (shutdown).
    pub fn seal(&self, now_ms: i64) -> Arc<Epoch> {
        let mut state = lock(&self.shared.state);
        self.seal_locked(&mut state, now_ms)
    }

    fn seal_locked(&self, state: &mut State, now_ms: i64) -> Arc<Epoch> {
        let next = Arc::new(Epoch::new(state.next_epoch, self.bucket_seconds, now_ms));
        state.next_epoch += 1;
        let sealed = std::mem::replace(&mut state.current, next);
        if !state.buffer.is_empty() {
            let group = Group {
                epoch: sealed.id,
                bytes: std::mem::take(&mut state.buffer),
                waiters: std::mem::take(&mut state.waiters),
            };
            state.sealed.push(group);
        }
        if state.broken == Some(sealed.id) {
            state.broken = None;
        }
        sealed
    }

    /// Stops the writer after it has written what it holds.
    pub fn stop(&self) {
        lock(&self.shared.state).closing = true;
        self.shared.work.notify_all();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The open segment of the writer.
struct OpenSegment {
    epoch: u64,
    file: Box<dyn SegmentFile>,
    /// Bytes known to be on disk.
    durable: u64,
}

fn writer_loop(shared: &Shared, mut store: impl SegmentStore, instance: &str, bucket_seconds: u32) {
    let mut open: Option<OpenSegment> = None;
    loop {
        let groups = {
            let mut state = lock(&shared.state);
            while state.sealed.is_empty() && state.buffer.is_empty() {
                if state.closing {
                    return;
                }
                state = shared
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let mut groups = std::mem::take(&mut state.sealed);
            if !state.buffer.is_empty() {
                groups.push(Group {
                    epoch: state.current.id,
                    bytes: std::mem::take(&mut state.buffer),
                    waiters: std::mem::take(&mut state.waiters),
                });
            }
            groups
        };
        for group in groups {
            let result = write_group(&mut store, &mut open, &group, instance, bucket_seconds);
            let result = result.map_err(|(error, unrepaired)| {
                tracing::error!(epoch = group.epoch, %error, requests = group.waiters.len(), "write-ahead log write failed; answering 503");
                // The segment could not be cut back: its tail is unknown, write no more.
                if unrepaired {
                    let mut state = lock(&shared.state);
                    if state.current.id == group.epoch {
                        state.broken = Some(group.epoch);
                    }
                }
                error
            });
            for waiter in group.waiters {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

/// Writes and syncs one group. On failure the file is cut back to what was durable; if
/// even that fails, the segment is closed and the error says so (`true`).
fn write_group(
    store: &mut impl SegmentStore,
    open: &mut Option<OpenSegment>,
    group: &Group,
    instance: &str,
    bucket_seconds: u32,
) -> Result<(), (WalError, bool)> {
    if open.as_ref().is_none_or(|s| s.epoch != group.epoch) {
        *open = None;
        let name = segment_name(instance, group.epoch);
        let (mut file, len) = store
            .open(&name)
            .map_err(|e| (WalError::io("cannot open a segment", &e), false))?;
        if len < HEADER_LEN as u64 {
            let written = file
                .truncate(0)
                .and_then(|()| file.append(&segment_header(bucket_seconds)))
                .and_then(|()| file.sync())
                .and_then(|()| store.sync_dir());
            if let Err(e) = written {
                // A header-less file is recognised as torn on replay; try to leave none.
                let unrepaired = file.truncate(0).is_err();
                return Err((WalError::io("cannot start a segment", &e), unrepaired));
            }
        }
        let durable = len.max(HEADER_LEN as u64);
        *open = Some(OpenSegment {
            epoch: group.epoch,
            file,
            durable,
        });
    }
    let Some(segment) = open.as_mut() else {
        return Err((WalError::Stopped, false));
    };
    match segment
        .file
        .append(&group.bytes)
        .and_then(|()| segment.file.sync())
    {
        Ok(()) => {
            segment.durable += group.bytes.len() as u64;
            Ok(())
        }
        Err(e) => {
            let error = WalError::io("cannot write a segment", &e);
            if segment.file.truncate(segment.durable).is_err() {
                *open = None;
                return Err((error, true));
            }
            Err((error, false))
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent across a panic: each update is a push or a swap.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn event(label: &str, id: i64, value: i64, at_ms: i64) -> ValidEvent<'_> {
        ValidEvent {
            label: Cow::Borrowed(label),
            id,
            value,
            at_ms,
        }
    }

    fn segment(records: &[&[ValidEvent<'_>]]) -> Vec<u8> {
        let mut bytes = segment_header(2).to_vec();
        for events in records {
            encode_record(events, None, &mut bytes).unwrap();
        }
        bytes
    }

    type Events = Vec<(String, i64, i64, i64)>;

    fn read(bytes: &[u8]) -> Result<(SegmentSummary, Events), Corruption> {
        let mut events = Vec::new();
        let summary = read_segment(bytes, |l, i, v, t| events.push((l.to_owned(), i, v, t)))?;
        Ok((summary, events))
    }

    #[test]
    fn records_round_trip() {
        let bytes = segment(&[
            &[event("a", 1, -5, 10), event("ü", i64::MIN, i64::MAX, -1)],
            &[event("b", 2, 3, 4)],
        ]);
        let (summary, events) = read(&bytes).unwrap();
        assert_eq!(summary.records, 2);
        assert_eq!(summary.bucket_seconds, Some(2));
        assert_eq!(summary.torn_bytes, 0);
        assert_eq!(
            events,
            vec![
                ("a".into(), 1, -5, 10),
                ("ü".into(), i64::MIN, i64::MAX, -1),
                ("b".into(), 2, 3, 4)
            ]
        );
    }

    #[test]
    fn idempotency_keys_round_trip_and_version_1_segments_still_read() {
        let mut bytes = segment_header(2).to_vec();
        let key = RecordKey {
            key: "retry-7",
            accepted_ms: 1_795_000_000_123,
            reply: br#"{"ok":true,"accepted":1}"#,
        };
        encode_record(&[event("a", 1, 5, 10)], Some(key), &mut bytes).unwrap();
        encode_record(&[event("b", 2, 6, 10)], None, &mut bytes).unwrap();
        let mut keys = Vec::new();
        let summary = read_segment_with_keys(&bytes, |_, _, _, _| {}, |k| keys.push(k)).unwrap();
        assert_eq!((summary.records, summary.events), (2, 2));
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (&*keys[0].key, keys[0].accepted_ms, &*keys[0].reply),
            (key.key, key.accepted_ms, key.reply)
        );

        // Version 1: the same records without the key byte.
        let mut v1 = segment_header(2).to_vec();
        v1[8] = 1;
        let mut payload = 1u32.to_le_bytes().to_vec();
        payload.push(1);
        payload.extend_from_slice(b"a");
        for n in [1i64, 5, 10] {
            payload.extend_from_slice(&n.to_le_bytes());
        }
        let len = (payload.len() as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len);
        crc.update(&payload);
        v1.extend_from_slice(&len);
        v1.extend_from_slice(&crc.finalize().to_le_bytes());
        v1.extend_from_slice(&payload);
        assert_eq!(read(&v1).unwrap().1, vec![("a".into(), 1, 5, 10)]);
    }

    #[test]
    fn a_torn_last_record_is_dropped_at_every_cut() {
        let whole = segment(&[&[event("a", 1, 1, 0)], &[event("b", 2, 2, 0)]]);
        let first_end = segment(&[&[event("a", 1, 1, 0)]]).len();
        for cut in first_end..whole.len() {
            let (summary, events) = read(&whole[..cut]).unwrap();
            assert_eq!(events.len(), 1, "cut at {cut}");
            assert_eq!(summary.torn_bytes, cut - first_end);
        }
        for cut in 0..HEADER_LEN {
            assert_eq!(read(&whole[..cut]).unwrap().0.records, 0);
        }
        // Zeros after the last record: a file extended but never written.
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(read(&zeros).unwrap().1.len(), 2);
        // The last record garbled in place (its length intact): torn, dropped.
        let mut garbled = whole.clone();
        let last = garbled.len() - 3;
        garbled[last] ^= 0xff;
        assert_eq!(read(&garbled).unwrap().1.len(), 1);
    }

    #[test]
    fn damage_before_the_last_record_is_corruption() {
        let mut bytes = segment(&[&[event("a", 1, 1, 0)], &[event("b", 2, 2, 0)]]);
        bytes[HEADER_LEN + RECORD_HEADER_LEN + 6] ^= 0x01;
        let error = read(&bytes).unwrap_err();
        assert!(error.0.contains("checksum"), "{error}");
        let mut bad_magic = segment(&[&[event("a", 1, 1, 0)]]);
        bad_magic[0] = b'X';
        assert!(read(&bad_magic).is_err());
    }

    #[test]
    fn batch_ids_parse_back_and_fit_the_column() {
        let id = batch_id("0123456789abcdef", u64::MAX, i64::MAX);
        assert!(id.len() <= 64, "{id}");
        assert_eq!(
            parse_batch_id(&id),
            Some(("0123456789abcdef", u64::MAX, i64::MAX))
        );
        assert_eq!(parse_batch_id("0123-4"), None);
        assert_eq!(
            parse_segment_name(&segment_name("00ff", 7)),
            Some(("00ff".to_owned(), 7))
        );
    }

    /// Files whose sync can be held back or fail, to see what an append waits for.
    #[derive(Clone, Default)]
    struct Faulty {
        hold_syncs: Arc<std::sync::atomic::AtomicBool>,
        fail: Arc<std::sync::atomic::AtomicBool>,
        bytes: Arc<Mutex<Vec<u8>>>,
        entered_sync: Arc<AtomicUsize>,
        syncs: Arc<AtomicUsize>,
    }

    /// Holds every sync until dropped, even by a failing assertion, so that the writer
    /// thread (which the log joins when dropped) is never left waiting.
    struct Hold(Arc<std::sync::atomic::AtomicBool>);

    impl Faulty {
        fn hold_syncs(&self) -> Hold {
            self.hold_syncs.store(true, Ordering::SeqCst);
            Hold(self.hold_syncs.clone())
        }
    }

    impl Drop for Hold {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }

    impl SegmentStore for Faulty {
        fn open(&mut self, _name: &str) -> io::Result<(Box<dyn SegmentFile>, u64)> {
            let len = self.bytes.lock().unwrap().len() as u64;
            Ok((Box::new(self.clone()), len))
        }
        fn sync_dir(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl SegmentFile for Faulty {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            if self.fail.load(Ordering::SeqCst) {
                // Disk full half-way through.
                self.bytes
                    .lock()
                    .unwrap()
                    .extend_from_slice(&bytes[..bytes.len() / 2]);
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            self.entered_sync.fetch_add(1, Ordering::SeqCst);
            while self.hold_syncs.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.syncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.bytes.lock().unwrap().truncate(len as usize);
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_append_is_durable_only_after_its_sync() {
        let store = Faulty::default();
        let wal = Wal::start_with(store.clone(), PathBuf::from("x"), "00".into(), 2, 0);
        // A first append opens the segment, so the next one's only sync is its record's.
        wal.append(&[event("a", 1, 1, 0)], None)
            .unwrap()
            .durable()
            .await
            .unwrap();
        let synced_before = store.entered_sync.load(Ordering::SeqCst);
        let hold = store.hold_syncs();
        let pending = wal.append(&[event("b", 2, 2, 0)], None).unwrap();
        let mut durable = tokio::spawn(pending.durable());
        // Wait until the writer is held in the record's sync (or, without one, has
        // acknowledged), give the waiter every chance to run, and look.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while store.entered_sync.load(Ordering::SeqCst) == synced_before && !durable.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer neither synced nor acknowledged"
            );
            tokio::task::yield_now().await;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(
            !durable.is_finished(),
            "acknowledged before the record's sync returned"
        );
        drop(hold);
        let guard = (&mut durable).await.unwrap().unwrap();
        assert!(store.syncs.load(Ordering::SeqCst) > synced_before);
        drop(guard);
        let bytes = store.bytes.lock().unwrap().clone();
        assert_eq!(read(&bytes).unwrap().1.len(), 2);
    }

    #[tokio::test]
    async fn a_failed_write_is_an_error_and_leaves_a_readable_segment() {
        let store = Faulty::default();
        let wal = Wal::start_with(store.clone(), PathBuf::from("x"), "00".into(), 2, 0);
        wal.append(&[event("a", 1, 1, 0)], None)
            .unwrap()
            .durable()
            .await
            .unwrap();
        store.fail.store(true, Ordering::SeqCst);
        let failed = wal
            .append(&[event("b", 2, 2, 0)], None)
            .unwrap()
            .durable()
            .await;
        assert!(matches!(failed, Err(WalError::Io(_))), "{failed:?}");
        store.fail.store(false, Ordering::SeqCst);
        wal.append(&[event("c", 3, 3, 0)], None)
            .unwrap()
            .durable()
            .await
            .unwrap();
        let bytes = store.bytes.lock().unwrap().clone();
        let (_, events) = read(&bytes).unwrap();
        let labels: Vec<_> = events.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(labels, ["a", "c"]);
    }

    #[tokio::test]
    async fn concurrent_appends_share_syncs() {
        let store = Faulty::default();
        let wal = Arc::new(Wal::start_with(
            store.clone(),
            PathBuf::from("x"),
            "00".into(),
            2,
            0,
        ));
        let hold = store.hold_syncs();
        // The first append's sync is held; the others pile up behind it.
        let mut tasks = Vec::new();
        for i in 0..50 {
            let pending = wal.append(&[event("a", i, 1, 0)], None).unwrap();
            tasks.push(tokio::spawn(
                async move { pending.durable().await.map(drop) },
            ));
        }
        drop(hold);
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let syncs = store.syncs.load(Ordering::SeqCst);
        assert!(syncs < 50, "{syncs} syncs for 50 appends");
    }
}
