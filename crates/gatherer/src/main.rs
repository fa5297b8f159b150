//! `gatherer`: parse flags, load settings, start logging, run the application.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use gatherer::configuration::Settings;
use gatherer::startup::Application;
use gatherer::telemetry;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Pulse gatherer: metric events in, 2-second bucket totals in MySQL out"
)]
struct Cli {
    /// TOML configuration file (environment variables GATHERER__SECTION__KEY override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Port to listen on (0 = any free port), overriding the configuration.
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format == LogFormat::Json);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("gatherer: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref(), cli.port)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let app = Application::build(settings).await?;
    let report = app.run_until_stopped(shutdown_signal()).await?;
    Ok(if report.unflushed_events == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
