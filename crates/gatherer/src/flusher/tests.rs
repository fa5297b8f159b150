//! The loop under a held clock: `tokio::time::pause()` moves time only when every task
//! waits, the flusher's wall clock follows it, and the sink fails on cue.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;
use crate::store::{Batch, FlushOutcome};

/// Wall time at the start of each test: a bucket boundary.
const START_MS: i64 = 1_800_000_000_000;
const GRACE: Duration = Duration::from_millis(200);

/// Batch ids and their deltas' buckets (unix seconds).
type Committed = Vec<(Arc<str>, Vec<i64>)>;
/// When each attempt was made (milliseconds since the start) and for which batch.
type Attempts = Vec<(u64, Arc<str>)>;

/// A sink that keeps what committed and every attempt, and fails while `down`.
#[derive(Clone, Default)]
struct Recorder {
    /// In commit order.
    committed: Arc<Mutex<Committed>>,
    attempts: Arc<Mutex<Attempts>>,
    down: Arc<AtomicBool>,
    start: Arc<Mutex<Option<Instant>>>,
}

impl Recorder {
    fn since_start(&self) -> u64 {
        let start = self.start.lock().unwrap().expect("the clock started");
        start.elapsed().as_millis() as u64
    }

    fn committed(&self) -> Committed {
        self.committed.lock().unwrap().clone()
    }
}

impl Sink for Recorder {
    fn insert_batch(
        &self,
        batch: &Batch,
    ) -> impl Future<Output = Result<FlushOutcome, sqlx::Error>> + Send {
        let at = self.since_start();
        self.attempts.lock().unwrap().push((at, batch.id.clone()));
        let result = if self.down.load(Ordering::SeqCst) {
            Err(sqlx::Error::PoolTimedOut)
        } else {
            let buckets = batch.deltas.iter().map(|d| d.bucket.unix_seconds());
            let entry = (batch.id.clone(), buckets.collect());
            self.committed.lock().unwrap().push(entry);
            Ok(FlushOutcome::Committed {
                rows: batch.deltas.len(),
                dead_letters: 0,
            })
        };
        std::future::ready(result)
    }

    fn ping(&self) -> impl Future<Output = bool> + Send {
        std::future::ready(!self.down.load(Ordering::SeqCst))
    }

    fn prune_idempotency_keys(
        &self,
        _before_ms: i64,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send {
        std::future::ready(Ok(0))
    }
}

/// A running flusher over a 2-second aggregator, its wall clock at `START_MS` now.
struct Running {
    sink: Recorder,
    aggregator: Arc<Aggregator>,
    backlog: Arc<Backlog>,
    db: Arc<DbStatus>,
    stop: oneshot::Sender<()>,
    report: tokio::task::JoinHandle<FlushReport>,
}

fn start(sink: Recorder, deadline_after_shutdown: Duration) -> Running {
    tokio::time::pause();
    let origin = Instant::now();
    *sink.start.lock().unwrap() = Some(origin);
    let aggregator = Arc::new(Aggregator::new(2, 4));
    let backlog = Arc::new(Backlog::new(1_000));
    let db = Arc::new(DbStatus::default());
    let clock = move || START_MS + origin.elapsed().as_millis() as i64;
    let flusher = Flusher::new(
        sink.clone(),
        aggregator.clone(),
        backlog.clone(),
        db.clone(),
        GRACE,
        100,
    )
    .with_clock(clock);
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let report = tokio::spawn(flusher.run(shutdown, deadline_after_shutdown));
    Running {
        sink,
        aggregator,
        backlog,
        db,
        stop,
        report,
    }
}

impl Running {
    /// Records one event `at_ms` after the start, as a request would.
    fn record(&self, at_ms: i64) {
        let rows = self.aggregator.record("a", 1, 1, START_MS + at_ms);
        self.backlog.add(rows as u64);
    }
}

/// Lets time run until `ms` milliseconds after the start.
async fn until(ms: u64, sink: &Recorder) {
    let at = *sink.start.lock().unwrap();
    tokio::time::sleep_until(at.unwrap() + Duration::from_millis(ms)).await;
}

#[tokio::test]
async fn a_bucket_is_written_once_the_clock_passes_its_end_and_the_grace() {
    let running = start(Recorder::default(), Duration::from_secs(1));
    running.record(500);
    running.record(2_500);
    // The first bucket ends at 2 000 ms; with 200 ms of grace the tick at 2 200 ms takes it.
    until(2_150, &running.sink).await;
    assert!(
        running.sink.committed().is_empty(),
        "written before its end"
    );
    until(2_250, &running.sink).await;
    let committed = running.sink.committed();
    let first_bucket = START_MS / 1000;
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].1, [first_bucket]);
    assert_eq!(running.backlog.pending(), 1, "the open bucket's row waits");
    assert!(running.db.is_up());
    until(4_250, &running.sink).await;
    assert_eq!(running.sink.committed()[1].1, [first_bucket + 2]);
    assert_eq!(running.backlog.pending(), 0);
    running.stop.send(()).unwrap();
    let report = running.report.await.unwrap();
    assert_eq!(report.unflushed_events, 0);
}

#[tokio::test]
async fn a_failed_batch_is_retried_under_its_id_with_doubling_backoff_until_it_commits() {
    let sink = Recorder::default();
    sink.down.store(true, Ordering::SeqCst);
    let running = start(sink, Duration::from_secs(1));
    running.record(500);
    until(4_000, &running.sink).await;
    assert!(!running.db.is_up());
    running.sink.down.store(false, Ordering::SeqCst);
    until(6_000, &running.sink).await;
    let attempts = running.sink.attempts.lock().unwrap().clone();
    let times: Vec<u64> = attempts.iter().map(|a| a.0).collect();
    // First at the tick after the bucket closed (timers round to the next millisecond),
    // then 100, 200, 400, 800 and 1 600 ms on.
    assert!((2_200..2_202).contains(&times[0]), "{times:?}");
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [100, 200, 400, 800, 1_600]);
    assert!(
        attempts.iter().all(|a| a.1 == attempts[0].1),
        "{attempts:?}"
    );
    let committed = running.sink.committed();
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].0, attempts[0].1);
    assert!(running.db.is_up());
    assert_eq!(running.backlog.pending(), 0);
    running.stop.send(()).unwrap();
    running.report.await.unwrap();
}

#[tokio::test]
async fn shutdown_writes_open_buckets_too() {
    let running = start(Recorder::default(), Duration::from_secs(1));
    running.record(500);
    until(300, &running.sink).await;
    assert!(running.sink.committed().is_empty());
    running.stop.send(()).unwrap();
    let report = running.report.await.unwrap();
    assert_eq!(report.unflushed_events, 0);
    assert_eq!(running.sink.committed().len(), 1);
}

#[tokio::test]
async fn shutdown_gives_up_at_its_deadline_and_counts_what_was_not_written() {
    let sink = Recorder::default();
    sink.down.store(true, Ordering::SeqCst);
    let running = start(sink, Duration::from_secs(3));
    running.record(500);
    running.record(700);
    until(300, &running.sink).await;
    running.stop.send(()).unwrap();
    let report = running.report.await.unwrap();
    assert_eq!(report.unflushed_events, 2);
    let stopped_after = running.sink.since_start();
    assert!(
        (3_300..3_400).contains(&stopped_after),
        "stopped {stopped_after} ms after the start"
    );
    assert!(running.sink.committed().is_empty());
}
