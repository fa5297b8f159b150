//! The consumer task: connect (creating the stream and the durable pull consumer), fetch
//! while there is room and MySQL answers, record, dead-letter, acknowledge what the
//! flusher committed, and report progress on what it holds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use async_nats::{HeaderMap, Subject};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use super::record::{Job, Outcome, Recorder};
use super::{dead_letter_subject, intake, lock, NatsIntake, NatsStatus, Phase, Shared};
use crate::configuration::NatsSettings;
use crate::store;

/// The consumer task's state; [`super::Nats::start`] spawns its `run`.
pub(super) struct Consumer {
    /// The stream's name, the `stream` label of the metrics.
    pub(super) stream: String,
    pub(super) settings: NatsSettings,
    pub(super) shared: Shared,
    pub(super) intake: Arc<Mutex<NatsIntake>>,
    pub(super) status: Arc<NatsStatus>,
    pub(super) phase: watch::Receiver<Phase>,
    pub(super) fetching: watch::Sender<bool>,
}

impl Consumer {
    /// Counts messages by what became of them.
    fn count(&self, outcome: &'static str, n: u64) {
        metrics::counter!(
            "gatherer_nats_messages_total",
            "stream" => self.stream.clone(),
            "outcome" => outcome
        )
        .increment(n);
    }

    pub(super) async fn run(mut self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if *self.phase.borrow() == Phase::Done {
                return;
            }
            match self.connect().await {
                Ok((client, consumer)) => {
                    backoff = Duration::from_millis(200);
                    if self.serve(&client, consumer).await {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "NATS JetStream not reachable; will retry");
                }
            }
            self.status.set(false);
            let _ = self.fetching.send(false);
            if *self.phase.borrow() != Phase::Running {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = self.phase.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Connects, and creates the stream and the durable consumer if they are missing.
    async fn connect(
        &self,
    ) -> Result<(async_nats::Client, jetstream::consumer::PullConsumer), async_nats::Error> {
        let s = &self.settings;
        let options = if s.credentials_file.is_empty() {
            async_nats::ConnectOptions::new()
        } else {
            async_nats::ConnectOptions::with_credentials_file(&s.credentials_file).await?
        };
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            options
                .name("pulse-gatherer")
                .connection_timeout(Duration::from_secs(5))
                .connect(s.url.expose_secret()),
        )
        .await
        .map_err(|_| "timed out connecting")??;
        let context = jetstream::new(client.clone());
        let stream = context
            .get_or_create_stream(jetstream::stream::Config {
                name: s.stream.clone(),
                subjects: s.subjects.clone(),
                // Each message is handled by one gatherer, then removed once acked.
                retention: jetstream::stream::RetentionPolicy::WorkQueue,
                max_age: Duration::from_secs(7 * 86_400),
                ..Default::default()
            })
            .await?;
        let consumer = stream
            .get_or_create_consumer(
                &s.durable,
                pull::Config {
                    durable_name: Some(s.durable.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: s.ack_wait,
                    max_ack_pending: s.max_ack_pending,
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(stream = %s.stream, durable = %s.durable, "consuming from NATS JetStream");
        Ok((client, consumer))
    }

    /// Fetches, records and acknowledges until the connection fails (false) or the
    /// gatherer stops (true).
    async fn serve(
        &mut self,
        client: &async_nats::Client,
        mut consumer: jetstream::consumer::PullConsumer,
    ) -> bool {
        let progress_every = self.settings.ack_wait / 3;
        let mut last_progress = tokio::time::Instant::now();
        let mut last_lag = tokio::time::Instant::now() - Duration::from_secs(60);
        let mut prefetched: Option<
            tokio::task::JoinHandle<Result<Vec<jetstream::Message>, String>>,
        > = None;
        loop {
            let connected = client.connection_state() == async_nats::connection::State::Connected;
            self.status.set(connected);
            let phase = *self.phase.borrow();
            self.send_acks(client).await;
            if phase == Phase::Done {
                let _ = client.flush().await;
                return true;
            }
            if last_progress.elapsed() >= progress_every {
                last_progress = tokio::time::Instant::now();
                self.send_progress(client).await;
            }
            if last_lag.elapsed() >= Duration::from_secs(2) {
                last_lag = tokio::time::Instant::now();
                if let Ok(info) = consumer.info().await {
                    metrics::gauge!("gatherer_nats_consumer_lag", "stream" => self.stream.clone())
                        .set(info.num_pending as f64);
                }
            }
            let paused = self.shared.backlog.is_full() || !self.shared.db.is_up();
            if (phase == Phase::Draining || paused || !connected) && prefetched.is_some() {
                // Stop with nothing outstanding: what the last pull brings is recorded.
                if let Some(Ok(Ok(messages))) = match prefetched.take() {
                    Some(pull) => Some(pull.await),
                    None => None,
                } {
                    self.handle_batch(client, messages).await;
                }
                continue;
            }
            metrics::gauge!("gatherer_nats_paused", "stream" => self.stream.clone())
                .set(if paused { 1.0 } else { 0.0 });
            if phase == Phase::Draining || paused || !connected {
                let _ = self.fetching.send(false);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = self.phase.changed() => {}
                }
                continue;
            }
            let _ = self.fetching.send(true);
            // The batch in hand is processed while the next one is on its way.
            let current = match prefetched.take() {
                Some(pull) => pull.await.unwrap_or_else(|e| Err(e.to_string())),
                None => fetch(consumer.clone(), self.settings.batch).await,
            };
            let messages = match current {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "NATS fetch failed");
                    let _ = self.fetching.send(false);
                    if client.connection_state() != async_nats::connection::State::Connected {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            prefetched = Some(tokio::spawn(fetch(consumer.clone(), self.settings.batch)));
            self.handle_batch(client, messages).await;
        }
    }

    async fn send_acks(&self, client: &async_nats::Client) {
        let acks = lock(&self.intake).take_acks();
        if acks.is_empty() {
            return;
        }
        self.count("acked", acks.len() as u64);
        for reply in acks {
            reply_with(client, reply, AckKind::Ack).await;
        }
    }

    /// Tells the server the messages held for a while are still being worked on, so that
    /// it does not hand them to another gatherer.
    async fn send_progress(&self, client: &async_nats::Client) {
        let now = chrono::Utc::now().timestamp_millis();
        let threshold = now - i64::try_from((self.settings.ack_wait / 3).as_millis()).unwrap_or(0);
        let due = {
            let mut intake = lock(&self.intake);
            metrics::gauge!("gatherer_nats_in_flight", "stream" => self.stream.clone())
                .set(intake.in_flight() as f64);
            intake.due_for_progress(threshold, now)
        };
        for reply in due {
            reply_with(client, reply, AckKind::Progress).await;
        }
    }

    /// Handles a fetched batch: redeliveries are checked one by one, then the messages are
    /// parsed and recorded on as many threads as there are cores (parsing JSON is most of
    /// the work), then dead letters and immediate acks go out.
    async fn handle_batch(&self, client: &async_nats::Client, messages: Vec<jetstream::Message>) {
        self.count("fetched", messages.len() as u64);
        let mut jobs = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(job) = self.prepare(client, message).await {
                jobs.push(job);
            }
        }
        if jobs.is_empty() {
            return;
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_thread = jobs.len().div_ceil(threads);
        let mut running = Vec::with_capacity(threads);
        while !jobs.is_empty() {
            let chunk: Vec<Job> = jobs.drain(..per_thread.min(jobs.len())).collect();
            let recorder = Recorder {
                intake: self.intake.clone(),
                backlog: self.shared.backlog.clone(),
                max_body_bytes: self.shared.ingest.max_body_bytes,
                max_age_ms: i64::try_from(self.shared.ingest.max_event_age.as_millis())
                    .unwrap_or(i64::MAX),
            };
            running.push(tokio::task::spawn_blocking(move || {
                chunk
                    .into_iter()
                    .map(|job| recorder.record(job))
                    .collect::<Vec<_>>()
            }));
        }
        for outcomes in running {
            let Ok(outcomes) = outcomes.await else {
                tracing::error!("recording a NATS batch failed; its messages will be redelivered");
                continue;
            };
            for outcome in outcomes {
                self.apply(client, outcome).await;
            }
        }
    }

    /// Reads a message's metadata; a redelivery is checked against what this gatherer
    /// holds and what MySQL committed. `None`: nothing (more) to do with it.
    async fn prepare(
        &self,
        client: &async_nats::Client,
        message: jetstream::Message,
    ) -> Option<Job> {
        let Ok(info) = message.info() else {
            tracing::warn!("a NATS message without JetStream metadata; skipped");
            return None;
        };
        let (seq, delivered) = (info.stream_sequence, info.delivered);
        let published_ms =
            i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        let reply = message.reply.clone()?;
        let mut committed_through = i64::MIN;
        if delivered > 1 {
            self.count("redelivered", 1);
            {
                let mut intake = lock(&self.intake);
                if intake.holds(seq) {
                    intake.replace_ack(seq, reply);
                    drop(intake);
                    self.count("deduplicated", 1);
                    return None;
                }
            }
            match store::nats_committed_through(&self.shared.pool, &self.settings.stream, seq).await
            {
                Ok(Some(intake::WHOLE)) => {
                    self.count("deduplicated", 1);
                    reply_with(client, reply, AckKind::Ack).await;
                    return None;
                }
                Ok(Some(through)) => committed_through = through,
                Ok(None) => {}
                Err(error) => {
                    // Cannot tell what of it is committed: let it come back later.
                    tracing::warn!(%error, seq, "cannot check a redelivered NATS message; it will come again");
                    reply_with(client, reply, AckKind::Nak(Some(Duration::from_secs(1)))).await;
                    return None;
                }
            }
        }
        Some(Job {
            seq,
            reply,
            payload: message.message.payload,
            published_ms,
            committed_through,
        })
    }

    async fn apply(&self, client: &async_nats::Client, outcome: Outcome) {
        match outcome {
            Outcome::Recorded { rejected: None, .. } => {}
            Outcome::Recorded {
                seq,
                payload,
                rejected: Some((count, rejected)),
            } => {
                let error = format!("{count} of the message's events were rejected");
                self.dead_letter(
                    client,
                    seq,
                    &payload,
                    &error,
                    Some(&rejected),
                    "rejected_events",
                )
                .await;
            }
            Outcome::AlreadyCommitted { reply } => {
                self.count("deduplicated", 1);
                reply_with(client, reply, AckKind::Ack).await;
            }
            Outcome::Invalid {
                seq,
                reply,
                payload,
                error,
                rejected,
            } => {
                // A message with nothing to count: never redelivered, kept as a dead letter.
                self.dead_letter(
                    client,
                    seq,
                    &payload,
                    &error,
                    rejected.as_deref(),
                    "invalid_message",
                )
                .await;
                self.count("terminated", 1);
                reply_with(client, reply, AckKind::Term).await;
            }
        }
    }

    async fn dead_letter(
        &self,
        client: &async_nats::Client,
        seq: u64,
        payload: &[u8],
        error: &str,
        rejected: Option<&str>,
        reason: &'static str,
    ) {
        let mut headers = HeaderMap::new();
        headers.insert("Pulse-Error", header_text(error).as_str());
        headers.insert("Pulse-Stream", self.settings.stream.as_str());
        headers.insert("Pulse-Stream-Sequence", seq.to_string().as_str());
        if let Some(rejected) = rejected {
            headers.insert("Pulse-Rejected", header_text(rejected).as_str());
        }
        let subject = dead_letter_subject(&self.settings);
        let body = actix_web::web::Bytes::copy_from_slice(payload);
        match client.publish_with_headers(subject, headers, body).await {
            Ok(()) => {
                metrics::counter!(
                    "gatherer_nats_dead_letters_total",
                    "stream" => self.stream.clone(),
                    "reason" => reason
                )
                .increment(1);
            }
            Err(error) => tracing::warn!(%error, seq, "could not publish a dead letter"),
        }
    }
}

/// One pull of up to `batch` messages, waiting at most half a second for them.
async fn fetch(
    consumer: jetstream::consumer::PullConsumer,
    batch: usize,
) -> Result<Vec<jetstream::Message>, String> {
    let mut pulled = consumer
        .fetch()
        .max_messages(batch)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = Vec::with_capacity(batch);
    while let Some(message) = pulled.next().await {
        match message {
            Ok(message) => messages.push(message),
            Err(error) => {
                tracing::debug!(%error, "NATS pull ended early");
                break;
            }
        }
    }
    Ok(messages)
}

async fn reply_with(client: &async_nats::Client, reply: Subject, kind: AckKind) {
    if let Err(error) = client.publish(reply, kind.into()).await {
        tracing::debug!(%error, "could not acknowledge a NATS message; it will be redelivered and deduplicated");
    }
}

/// A header value: one line, at most 4 KiB.
fn header_text(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 4096 {
        let mut cut = 4096;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_value_is_one_line_of_at_most_4_kib_cut_on_a_character() {
        assert_eq!(header_text("bad\nvalue\r\tend"), "bad value  end");
        let long = header_text(&format!("a{}", "é".repeat(3_000)));
        assert!(long.ends_with('…'), "{long}");
        let kept = long.trim_end_matches('…');
        assert!(kept.len() <= 4096 && kept.len() >= 4094, "{}", kept.len());
        assert_eq!(header_text("short"), "short");
    }
}
