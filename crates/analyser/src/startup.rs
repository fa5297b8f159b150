//! Wiring: database, engine, pull timer, notifier and HTTP server, built from
//! [`Settings`]. [`Application::build`] binds (port 0 in tests, read back with
//! [`Application::port`]); [`Application::run_until_stopped`] serves until the shutdown
//! future resolves.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::auth::Users;
use crate::configuration::{ReportSettings, Settings};
use crate::datasets::Datasets;
use crate::gatherer_client::GathererClient;
use crate::notify::Notifier;
use crate::pull::{Engine, PullError};
use crate::routes;
use crate::state::{AppState, PullStatus};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Application {
    address: SocketAddr,
    server: Server,
    state: web::Data<AppState>,
    poll_interval: Duration,
    notifier: Option<Notifier>,
    reports: ReportSettings,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Connects, and builds the engine the service and the `pull` command share.
pub async fn build_state(settings: &Settings, insecure_no_auth: bool) -> anyhow::Result<AppState> {
    let users = if insecure_no_auth {
        tracing::warn!("--insecure-no-auth: the API is open to anyone who can reach it");
        None
    } else {
        let users = Users::load(&settings.auth)?;
        if users.is_empty() {
            anyhow::bail!(
                "no users configured: add [[auth.users]] or auth.users_file (hash a password with \
                 `analyser hash-password`), or start with --insecure-no-auth"
            );
        }
        Some(users)
    };
    service::telemetry::prometheus();
    let pool = service::db::connect(
        &settings.database.url,
        settings.database.max_connections,
        settings.database.connect_timeout,
        sqlx::migrate!("../../migrations/analyser"),
    )
    .await?;
    if crate::datasets::seed(&pool, &settings.datasets).await? {
        tracing::info!("datasets seeded from the config file; from now on the database holds them");
    }
    let datasets = Datasets::new(crate::datasets::load(&pool).await?);
    let client = GathererClient::new(&settings.gatherer)?;
    let engine = Engine::new(
        pool.clone(),
        client,
        settings.shard,
        settings.gatherer.page_size,
        datasets.clone(),
    );
    Ok(AppState {
        pool,
        engine: tokio::sync::Mutex::new(engine),
        status: Mutex::new(PullStatus::default()),
        users,
        datasets,
        shard: settings.shard,
        notify: Arc::default(),
        state_cache: Default::default(),
        feedback_ttl: settings.feedback.feedback_ttl,
    })
}

impl Application {
    pub async fn build(settings: Settings, insecure_no_auth: bool) -> anyhow::Result<Application> {
        let state = web::Data::new(build_state(&settings, insecure_no_auth).await?);
        let notifier = if settings.notify.webhook_url.expose_secret().is_empty() {
            None
        } else {
            let notifier = Notifier::new(
                state.pool.clone(),
                settings.notify.webhook_url.clone(),
                state.notify.clone(),
            )?;
            Some(if settings.notify.digest {
                notifier.with_digests(state.datasets.clone(), state.shard.key())
            } else {
                notifier
            })
        };
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot bind {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let address = listener.local_addr()?;
        let app_state = state.clone();
        let api_routes = web::Data::new(service::routes::Routes::from_openapi(
            &<routes::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ));
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(service::routes::check_query))
                .wrap(from_fn(routes::require_auth))
                .wrap(from_fn(service::http::request_span))
                .app_data(app_state.clone())
                .app_data(api_routes.clone())
                .app_data(service::http::query_config())
                .service(routes::health::live)
                .service(routes::health::ready)
                .service(routes::health::metrics)
                .service(routes::openapi::document)
                .service(routes::openapi::docs)
                .service(routes::openapi::redoc)
                .service(routes::state::state)
                .service(routes::series::series)
                .service(routes::report::report)
                .service(routes::reports::list)
                .service(routes::reports::one)
                .service(routes::anomalies::approve)
                .service(routes::anomalies::dismiss)
                .service(routes::pull::pull)
                .service(routes::silences::list)
                .service(routes::silences::create)
                .service(routes::silences::end)
                .service(routes::datasets::me)
                .service(routes::datasets::list)
                .service(routes::datasets::create)
                .service(routes::datasets::one)
                .service(routes::datasets::replace)
                .service(routes::datasets::delete)
                .service(routes::dashboard::dashboard)
                .service(routes::assets::asset)
                .default_service(web::to(service::routes::no_route))
        })
        .disable_signals()
        .shutdown_timeout(5);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Application {
            address,
            server,
            state,
            poll_interval: settings.gatherer.poll_interval,
            notifier,
            reports: settings.reports.clone(),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves and pulls on the timer until `shutdown` resolves.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!("listening on {}", self.address);
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let timer = tokio::spawn(pull_on_timer(self.state.clone(), self.poll_interval));
        let notifier = self.notifier.map(|n| tokio::spawn(n.run()));
        let reports = tokio::spawn(crate::reports::run(
            self.state.pool.clone(),
            self.state.datasets.clone(),
            self.state.shard.key(),
            self.reports,
        ));
        let server_result = tokio::select! {
            () = shutdown => None,
            result = &mut server => Some(result),
        };
        tracing::info!("shutting down");
        timer.abort();
        reports.abort();
        if let Some(notifier) = notifier {
            notifier.abort();
        }
        // A pull in progress commits page by page: waiting for the engine lets the
        // current page finish rather than cutting it (it would roll back cleanly anyway).
        let _ = tokio::time::timeout(Duration::from_secs(10), self.state.engine.lock()).await;
        match server_result {
            None => {
                handle.stop(true).await;
                Ok(())
            }
            Some(result) => result
                .context("HTTP server task failed")?
                .context("HTTP server failed"),
        }
    }
}

/// Pulls every `interval` until caught up; on failure, backs off up to 30 s.
async fn pull_on_timer(state: web::Data<AppState>, interval: Duration) {
    let mut wait = Duration::ZERO;
    loop {
        tokio::time::sleep(wait).await;
        match state.pull().await {
            Ok(outcome) => {
                if outcome.rows > 0 || outcome.judged_steps > 0 {
                    tracing::debug!(?outcome, "pulled");
                }
                wait = interval;
            }
            Err(PullError::Busy(shard)) => {
                tracing::debug!(shard, "another process is pulling this shard");
                wait = interval;
            }
            Err(PullError::Superseded(shard)) => {
                tracing::info!(shard, "another analyser of this shard committed first");
                wait = interval;
            }
            Err(error) => {
                wait = (wait * 2).clamp(interval, MAX_BACKOFF);
                tracing::warn!(%error, retry_in = ?wait, "pull failed");
            }
        }
    }
}
