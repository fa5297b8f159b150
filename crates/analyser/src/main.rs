//! `analyser`: serve (the default), `pull` once for cron, or `hash-password`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use analyser::configuration::Settings;
use analyser::startup::{build_state, Application};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Pulse analyser: anomaly detection over the gatherer's export"
)]
struct Cli {
    /// TOML configuration file (environment variables ANALYSER__SECTION__KEY override it).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Port to listen on (0 = any free port), overriding the configuration.
    #[arg(long, global = true)]
    port: Option<u16>,
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// Serve without authentication (development only).
    #[arg(long, global = true)]
    insecure_no_auth: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Pull and judge until caught up, print the outcome as JSON, exit (for cron).
    Pull,
    /// Read a password from standard input and print its argon2 hash for the configuration.
    HashPassword,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    service::telemetry::init(cli.log_format == LogFormat::Json, "info");
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("analyser: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::HashPassword) = cli.command {
        if std::io::stdin().is_terminal() {
            eprintln!("password (input is echoed; pipe it in to avoid that):");
        }
        let mut password = String::new();
        std::io::stdin().lock().read_line(&mut password)?;
        let password = password.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            anyhow::bail!("empty password");
        }
        println!(
            "{}",
            analyser::auth::hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let settings = Settings::load(cli.config.as_deref(), cli.port)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    if let Some(Command::Pull) = cli.command {
        // The pull needs no users: it serves nothing.
        let state = build_state(&settings, true).await?;
        let started = std::time::Instant::now();
        let outcome = state.pull().await?;
        let reply = protocol::PullReply {
            ok: true,
            rows: outcome.rows,
            iterator: outcome.iterator,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        println!("{}", serde_json::to_string(&reply)?);
        return Ok(ExitCode::SUCCESS);
    }
    let app = Application::build(settings, cli.insecure_no_auth).await?;
    app.run_until_stopped(service::signal::shutdown()).await?;
    Ok(ExitCode::SUCCESS)
}
