//! What the HTTP handlers share: the aggregator, the backlog bound, the database status,
//! the idempotency keys and the settings they read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::MySqlPool;

use crate::auth::Tokens;
use crate::backlog::{Backlog, DbStatus};
use crate::bucket::Aggregator;
use crate::configuration::IngestSettings;
use crate::idempotency::KeyStore;
use crate::nats::NatsStatus;
use crate::wal::Wal;

#[derive(Debug)]
pub struct AppState {
    pub aggregator: Arc<Aggregator>,
    pub backlog: Arc<Backlog>,
    pub db: Arc<DbStatus>,
    /// Idempotency keys accepted within the window, and those being handled.
    pub keys: Arc<KeyStore>,
    /// The NATS consumer's connection, when `[nats] url` is set.
    pub nats: Option<Arc<NatsStatus>>,
    pub pool: MySqlPool,
    pub ingest: IngestSettings,
    /// `[auth] ingest_tokens`, accepted on `/gather`.
    pub ingest_tokens: Tokens,
    /// `[auth] export_token`, required on the export endpoints.
    pub export_token: Tokens,
    pub started: Instant,
    /// The write-ahead log, when `[wal] enabled`: events go through it.
    pub wal: Option<Arc<Wal>>,
    /// How long a client may take to send a body (`server.request_body_timeout`).
    pub body_timeout: Duration,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(
        pool: MySqlPool,
        ingest: IngestSettings,
        ingest_tokens: Tokens,
        export_token: Tokens,
    ) -> Self {
        // Enough shards that 2 to 64 workers rarely contend on one.
        let shards = std::thread::available_parallelism().map_or(8, |n| n.get() * 16);
        AppState {
            aggregator: Arc::new(Aggregator::new(ingest.bucket_seconds, shards)),
            backlog: Arc::new(Backlog::new(ingest.max_pending_rows)),
            db: Arc::new(DbStatus::default()),
            keys: KeyStore::new(ingest.idempotency_window, ingest.max_idempotency_keys),
            nats: None,
            pool,
            ingest,
            ingest_tokens,
            export_token,
            started: Instant::now(),
            wal: None,
            body_timeout: Duration::from_secs(30),
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn with_wal(mut self, wal: Option<Arc<Wal>>) -> Self {
        self.wal = wal;
        self
    }

    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}
