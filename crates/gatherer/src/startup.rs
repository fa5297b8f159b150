//! Wiring: database, aggregator, flusher and HTTP server, built from [`Settings`].
//!
//! [`Application::build`] binds the listener (port 0 picks a free one: tests read it back
//! with [`Application::port`]); [`Application::run_until_stopped`] serves until the given
//! shutdown future resolves, then stops accepting, flushes everything and reports what, if
//! anything, could not be written.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::auth::Tokens;
use crate::configuration::Settings;
use crate::flusher::{self, FlushReport, Flusher};
use crate::idempotency::{Accepted, KeyStore};
use crate::nats::{self, Nats};
use crate::routes;
use crate::state::AppState;
use crate::store::{self, Batch};
use crate::wal::{self, Wal};

pub struct Application {
    address: SocketAddr,
    server: Server,
    state: web::Data<AppState>,
    flusher: Flusher,
    nats: Option<Nats>,
    shutdown_timeout: Duration,
    http_grace: Duration,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects to MySQL (creating the database and running migrations), binds the
    /// listener and prepares the flusher. Fails with a clear error when the database is
    /// unreachable or the address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        service::telemetry::prometheus();
        let pool = store::connect(&settings.database).await?;
        let (wal, replay, logged_keys) = if settings.wal.enabled {
            let (wal, replay, keys) = open_wal(&settings, &pool).await?;
            (Some(wal), replay, keys)
        } else {
            (None, Vec::new(), Vec::new())
        };
        let mut app_state = AppState::new(
            pool.clone(),
            settings.ingest.clone(),
            Tokens::new(&settings.auth.ingest_tokens),
            Tokens::new([&settings.auth.export_token]),
        )
        .with_wal(wal.clone())
        .with_body_timeout(settings.server.request_body_timeout);
        app_state.db.set(true);
        let nats = settings.nats.enabled().then(|| {
            Nats::start(
                settings.nats.clone(),
                nats::Shared {
                    pool: pool.clone(),
                    backlog: app_state.backlog.clone(),
                    db: app_state.db.clone(),
                    ingest: settings.ingest.clone(),
                },
            )
        });
        app_state.nats = nats.as_ref().map(|n| n.status.clone());
        let state = web::Data::new(app_state);
        restore_keys(&state.keys, &settings, &pool, logged_keys).await?;

        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot bind {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let address = listener.local_addr()?;
        let shutdown_timeout = settings.ingest.shutdown_timeout;
        // In-flight requests get a quarter of the shutdown budget (at most 5 s); the
        // final flush gets the rest.
        let http_grace = (shutdown_timeout / 4).min(Duration::from_secs(5));
        let app_state = state.clone();
        let api_routes = web::Data::new(service::routes::Routes::from_openapi(
            &<routes::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ));
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(service::routes::check_query))
                .wrap(from_fn(service::http::request_span))
                .app_data(app_state.clone())
                .app_data(api_routes.clone())
                .app_data(service::http::query_config())
                .service(routes::info::info)
                .service(routes::ingest::gather)
                .service(routes::export::export)
                .service(routes::export::stat)
                .service(routes::health::live)
                .service(routes::health::ready)
                .service(routes::health::metrics)
                .service(routes::openapi::document)
                .service(routes::openapi::docs)
                .service(routes::openapi::redoc)
                .default_service(web::to(service::routes::no_route))
        })
        .disable_signals()
        .shutdown_timeout(http_grace.as_secs().max(1))
        .client_request_timeout(settings.server.request_header_timeout)
        .client_disconnect_timeout(settings.server.client_disconnect_timeout)
        .keep_alive(settings.server.keep_alive)
        .max_connections(settings.server.max_connections);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();

        let mut flusher = Flusher::new(
            pool,
            state.aggregator.clone(),
            state.backlog.clone(),
            state.db.clone(),
            settings.ingest.flush_grace,
            settings.ingest.max_rows_per_batch,
        );
        flusher = flusher.with_keys(state.keys.clone(), settings.ingest.idempotency_window);
        if let Some(wal) = wal {
            flusher = flusher.with_wal(wal, replay);
        }
        if let Some(nats) = &nats {
            flusher = flusher.with_nats(nats.intake.clone(), nats.stream.clone());
        }
        Ok(Application {
            address,
            server,
            state,
            flusher,
            nats,
            shutdown_timeout,
            http_grace,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until `shutdown` resolves (or the server fails), then: refuse new events,
    /// finish in-flight requests, flush everything including open buckets, all within
    /// `shutdown_timeout`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<FlushReport> {
        tracing::info!("listening on {}", self.address);
        if let Some(warning) = open_endpoints_warning(
            self.address,
            self.state.ingest_tokens.is_open(),
            self.state.export_token.is_open(),
        ) {
            tracing::warn!("{warning}");
        }
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let (stop_flusher, flusher_stopped) = tokio::sync::oneshot::channel::<()>();
        let flush_budget = self.shutdown_timeout.saturating_sub(self.http_grace);
        let flusher = tokio::spawn(self.flusher.run(
            async {
                // A dropped sender means the same as a sent stop.
                let _ = flusher_stopped.await;
            },
            flush_budget,
        ));

        let server_result = tokio::select! {
            () = shutdown => None,
            result = &mut server => Some(result),
        };
        tracing::info!("shutting down: refusing new events, flushing what is held");
        self.state.begin_shutdown();
        let mut nats = self.nats;
        if let Some(nats) = &mut nats {
            nats.stop_fetching(self.http_grace).await;
        }
        if server_result.is_none() {
            handle.stop(true).await;
        }
        let _ = stop_flusher.send(());
        let report = flusher.await.context("flusher task failed")?;
        if let Some(nats) = nats {
            // The last flush made its messages due: acknowledge them before leaving (a
            // message left unacked is redelivered and recognised as committed).
            nats.finish(Duration::from_secs(2)).await;
        }
        if let Some(result) = server_result {
            result
                .context("HTTP server task failed")?
                .context("HTTP server failed")?;
        }
        if report.unflushed_events > 0 {
            tracing::error!(
                events = report.unflushed_events,
                "events could not be written before the shutdown timeout"
            );
        } else {
            tracing::info!("everything flushed; bye");
        }
        Ok(report)
    }
}

/// What to say at start when the gatherer listens beyond this machine with an endpoint
/// that needs no token: anyone who reaches the port can read every metric ever recorded
/// (the export) or write into them (`/gather`). Nothing on loopback, where only this
/// machine's processes reach it.
pub fn open_endpoints_warning(
    address: SocketAddr,
    ingest_open: bool,
    export_open: bool,
) -> Option<String> {
    if address.ip().is_loopback() {
        return None;
    }
    let open = match (export_open, ingest_open) {
        (true, true) => "the export and /gather are",
        (true, false) => "the export is",
        (false, true) => "/gather is",
        (false, false) => return None,
    };
    let settings = match (export_open, ingest_open) {
        (true, true) => "[auth] export_token and ingest_tokens",
        (true, false) => "[auth] export_token",
        _ => "[auth] ingest_tokens",
    };
    Some(format!(
        "{open} open to anyone who can reach {address}: set {settings} (docs/DEPLOY.md)"
    ))
}

/// Reads the segments a previous run left, works out from `flush_batches` what of each
/// is not in MySQL yet, and starts the log. Damage other than a torn last record stops the
/// start; a directory that cannot be written does not (requests get 503 until it can).
async fn open_wal(
    settings: &Settings,
    pool: &sqlx::MySqlPool,
) -> anyhow::Result<(Arc<Wal>, Vec<(Batch, PathBuf)>, Vec<Accepted>)> {
    let dir = PathBuf::from(&settings.wal.dir);
    let recovered = wal::recover(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut committed = std::collections::HashMap::new();
    for segment in &recovered {
        if !committed.contains_key(&segment.instance) {
            let thresholds = store::wal_committed_thresholds(pool, &segment.instance)
                .await
                .context("reading which write-ahead log batches committed")?;
            committed.insert(segment.instance.clone(), thresholds);
        }
    }
    let plan = wal::plan_replay(recovered, &committed);
    let replay: Vec<_> = plan
        .segments
        .into_iter()
        .map(|segment| (Batch::new(segment.id, segment.deltas), segment.path))
        .collect();
    let events: u64 = replay.iter().map(|(batch, _)| batch.events).sum();
    if !replay.is_empty() {
        tracing::info!(
            segments = replay.len(),
            events,
            torn_bytes = plan.torn_bytes,
            "replaying the write-ahead log: events that had not reached MySQL"
        );
    }
    let wal = Wal::start(
        dir,
        flusher::instance_id(),
        settings.ingest.bucket_seconds,
        chrono::Utc::now().timestamp_millis(),
    );
    Ok((Arc::new(wal), replay, plan.keys))
}

/// Fills the key store: the keys committed to MySQL within the window (by any gatherer:
/// a retry may reach another replica after a restart), then those the write-ahead log
/// holds, which the replay's first batch commits.
async fn restore_keys(
    keys: &KeyStore,
    settings: &Settings,
    pool: &sqlx::MySqlPool,
    logged: Vec<Accepted>,
) -> anyhow::Result<()> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let window_ms =
        i64::try_from(settings.ingest.idempotency_window.as_millis()).unwrap_or(i64::MAX);
    let committed = store::load_idempotency_keys(pool, now_ms.saturating_sub(window_ms))
        .await
        .context("reading the idempotency keys accepted within the window")?;
    let (from_mysql, from_log) = (committed.len(), logged.len());
    for key in committed {
        keys.restore(key, true, now_ms);
    }
    for key in logged {
        keys.restore(key, false, now_ms);
    }
    if from_mysql + from_log > 0 {
        tracing::info!(from_mysql, from_log, "idempotency keys restored");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::open_endpoints_warning;

    #[test]
    fn only_an_endpoint_without_a_token_beyond_loopback_is_warned_about() {
        let any = "0.0.0.0:31115".parse().unwrap();
        assert_eq!(
            open_endpoints_warning(any, true, true).unwrap(),
            "the export and /gather are open to anyone who can reach 0.0.0.0:31115: \
             set [auth] export_token and ingest_tokens (docs/DEPLOY.md)"
        );
        let pod = "10.1.2.3:31115".parse().unwrap();
        assert!(open_endpoints_warning(pod, true, false)
            .unwrap()
            .starts_with("/gather is open"));
        assert!(open_endpoints_warning(pod, false, true).unwrap().contains(
            "the export is open to anyone who can reach 10.1.2.3:31115: set [auth] export_token ("
        ));
        assert!(open_endpoints_warning("[::]:1".parse().unwrap(), true, true).is_some());
        assert_eq!(open_endpoints_warning(pod, false, false), None);
        for loopback in ["127.0.0.1:31115", "[::1]:31115"] {
            assert_eq!(
                open_endpoints_warning(loopback.parse().unwrap(), true, true),
                None
            );
        }
    }
}
