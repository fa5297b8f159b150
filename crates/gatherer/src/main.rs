//! `gatherer`: parse flags, load settings, start logging, run the application.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gatherer::configuration::Settings;
use gatherer::startup::Application;

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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Delete old rows of events_count in small batches, never one a consumer has not read.
    Prune {
        /// Delete rows whose bucket is older than this (e.g. 30d).
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Never delete a row with an id above this: the lowest iterator your consumers
        /// (the analyser's cursor) have reached.
        #[arg(long)]
        keep_after_iterator: u64,
        /// Rows per DELETE statement.
        #[arg(long, default_value_t = 5_000)]
        batch_rows: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // One line per request (target `access`) is off by default here: at tens of thousands
    // of requests a second it would cost more than the ingest (`RUST_LOG=info` turns it on).
    service::telemetry::init(cli.log_format == LogFormat::Json, "info,access=warn");
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
    if let Some(Command::Prune {
        older_than,
        keep_after_iterator,
        batch_rows,
    }) = cli.command
    {
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(older_than)?;
        let pool = gatherer::store::connect(&settings.database).await?;
        let report =
            gatherer::store::prune(&pool, cutoff, keep_after_iterator, batch_rows.max(1)).await?;
        tracing::info!(rows = report.rows, flush_batches = report.batches, nats_ranges = report.nats_ranges, %cutoff, keep_after_iterator, "pruned");
        println!(
            "deleted {} rows of events_count, {} flush_batches ids and {} nats_consumed ranges",
            report.rows, report.batches, report.nats_ranges
        );
        return Ok(ExitCode::SUCCESS);
    }
    let app = Application::build(settings).await?;
    let report = app.run_until_stopped(service::signal::shutdown()).await?;
    Ok(if report.unflushed_events == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
