//! The services' MySQL pool: create the database if it is missing, connect, run the
//! service's migrations, waiting for a database that is still starting.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, MySql, MySqlPool};

/// Creates the database at `url` if it is missing, connects a pool of `max_connections`
/// (at least 2) and runs `migrations`. Retries until `connect_timeout` has passed, so that
/// a database starting alongside the service is waited for; then the last error, naming
/// the host and port.
pub async fn connect(
    url: &SecretString,
    max_connections: u32,
    connect_timeout: Duration,
    migrations: Migrator,
) -> anyhow::Result<MySqlPool> {
    let url = url.expose_secret();
    let options =
        MySqlConnectOptions::from_str(url).context("database.url is not a valid MySQL URL")?;
    let deadline = tokio::time::Instant::now() + connect_timeout;
    let mut last_error;
    loop {
        match try_connect(url, options.clone(), max_connections, &migrations).await {
            Ok(pool) => return Ok(pool),
            Err(e) => last_error = e,
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last_error.context(format!(
        "database unreachable at {}:{} after {connect_timeout:?}",
        options.get_host(),
        options.get_port(),
    )))
}

async fn try_connect(
    url: &str,
    options: MySqlConnectOptions,
    max_connections: u32,
    migrations: &Migrator,
) -> anyhow::Result<MySqlPool> {
    if !MySql::database_exists(url).await? {
        MySql::create_database(url).await.or_else(|e| {
            // Another replica may have created it in the meantime.
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("HY000") {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    }
    // sqlx would log every statement over a second whole, and a multi-row INSERT has
    // thousands of placeholders; the services report slow work themselves, in short lines.
    let pool = MySqlPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.disable_statement_logging())
        .await?;
    migrations
        .run(&pool)
        .await
        .context("running the migrations")?;
    Ok(pool)
}
