//! The writer: requests append encoded records to a shared buffer, one thread writes and
//! syncs each group, and the flusher seals epochs at bucket boundaries.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::epoch::{Epoch, InflightGuard, Pending};
use super::files::{DirStore, SegmentFile, SegmentStore};
use super::format::{batch_id, encode_record, segment_header, segment_name, RecordKey, HEADER_LEN};
use super::WalError;
use crate::ingest::ValidEvent;

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
    use std::io;
    use std::sync::atomic::AtomicUsize;

    use super::super::format::tests::{event, read};
    use super::*;

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
