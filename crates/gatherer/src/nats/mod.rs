//! Ingest from NATS JetStream (`[nats] url` set): a durable pull consumer that several
//! gatherers share, so each message is handled by one of them.
//!
//! A message body is what `POST /gather` takes (one event, an array, or NDJSON), parsed
//! and validated by the same code; an event without `ts` gets the time the stream stored
//! the message. Valid events are recorded in the [`Intake`]; a message with none (or not
//! JSON at all) is terminated, and every invalid message or rejected event goes to the
//! dead-letter subject with the error in a header.
//!
//! **Acknowledged only once counted.** The flusher drains the intake like the aggregator,
//! one transaction a drain, with the stream sequences it covers (`nats_consumed`); a
//! message is acked once that transaction commits. Until then the stream keeps it, and
//! JetStream redelivers it if this gatherer dies; messages held are reported in progress
//! so that a live gatherer keeps them. A redelivered message is checked against
//! `nats_consumed` and what of it was committed is dropped. The consumer never goes
//! through the write-ahead log: the stream is the log.
//!
//! **Backpressure.** While the pending rows are at their bound or MySQL is down, nothing
//! is fetched: messages wait in the stream, not in memory.

mod consumer;
pub mod intake;
mod record;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::Subject;
use sqlx::MySqlPool;
use tokio::sync::watch;

use crate::backlog::{Backlog, DbStatus};
use crate::configuration::{IngestSettings, NatsSettings};
use consumer::Consumer;
pub use intake::Intake;

/// The intake the consumer records into and the flusher drains; acknowledgements are
/// the messages' reply subjects.
pub type NatsIntake = Intake<Subject>;

/// Locks the intake. Each update is a map insert or removal: a panic cannot leave it torn.
pub fn lock(intake: &Mutex<NatsIntake>) -> MutexGuard<'_, NatsIntake> {
    intake.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether the consumer is connected, for readiness.
#[derive(Debug, Default)]
pub struct NatsStatus {
    connected: AtomicBool,
    stream: String,
}

impl NatsStatus {
    pub fn is_up(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn set(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
        metrics::gauge!("gatherer_nats_connected", "stream" => self.stream.clone()).set(if up {
            1.0
        } else {
            0.0
        });
    }
}

/// What the consumer shares with the rest of the gatherer.
#[derive(Debug, Clone)]
pub struct Shared {
    pub pool: MySqlPool,
    pub backlog: Arc<Backlog>,
    pub db: Arc<DbStatus>,
    pub ingest: IngestSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Shutting down: fetch nothing more, keep acknowledging.
    Draining,
    /// Send the last acknowledgements and stop.
    Done,
}

/// The running consumer.
#[derive(Debug)]
pub struct Nats {
    pub intake: Arc<Mutex<NatsIntake>>,
    pub status: Arc<NatsStatus>,
    pub stream: Arc<str>,
    phase: watch::Sender<Phase>,
    fetching: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Nats {
    /// Starts the consumer task. It connects (and reconnects) in the background: a NATS
    /// server that is away at start delays this ingest path, not the gatherer.
    pub fn start(settings: NatsSettings, shared: Shared) -> Nats {
        let intake = Arc::new(Mutex::new(Intake::new(shared.ingest.bucket_seconds)));
        let status = Arc::new(NatsStatus {
            connected: AtomicBool::new(false),
            stream: settings.stream.clone(),
        });
        status.set(false);
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let (fetching_tx, fetching) = watch::channel(false);
        let stream: Arc<str> = settings.stream.as_str().into();
        let consumer = Consumer {
            stream: settings.stream.clone(),
            settings,
            shared,
            intake: intake.clone(),
            status: status.clone(),
            phase: phase_rx,
            fetching: fetching_tx,
        };
        let task = tokio::spawn(consumer.run());
        Nats {
            intake,
            status,
            stream,
            phase,
            fetching,
            task,
        }
    }

    /// Stops fetching and waits (at most `within`) until the batch in hand is recorded.
    pub async fn stop_fetching(&mut self, within: Duration) {
        let _ = self.phase.send(Phase::Draining);
        let _ = tokio::time::timeout(within, self.fetching.wait_for(|f| !f)).await;
    }

    /// Sends the acknowledgements the last flush made due, then stops.
    pub async fn finish(self, within: Duration) {
        let _ = self.phase.send(Phase::Done);
        let mut task = self.task;
        if tokio::time::timeout(within, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// The dead-letter subject: configured, or `<stream>.dead`.
pub fn dead_letter_subject(settings: &NatsSettings) -> String {
    if settings.dead_letter_subject.is_empty() {
        format!("{}.dead", settings.stream)
    } else {
        settings.dead_letter_subject.clone()
    }
}
