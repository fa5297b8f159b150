//! `pulse-demo`: realistic shop traffic for the gatherer, with an anomaly now and then.
//!
//! It first backfills a few hours of history (events with `ts`, so the detectors have
//! learnt the shop's rhythm), then sends live traffic every second. Every five minutes
//! (start to start; the first 90 s after the backfill) it injects one anomaly for three
//! minutes and says so: a bot flooding one shop's `checkout`, a `price` entered a hundred
//! times too low, or one shop's `visit` stopping. Watch them appear in the analyser's
//! `/api/v1/state`.
//!
//! `scripts/run.sh --demo` runs it on databases of its own and drops them on exit with
//! `pulse-demo drop-databases`; `pulse-demo clean` drops the ones earlier demos left.

use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use detect::synth::Rng;
use protocol::Event;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};

#[derive(Debug, Parser)]
#[command(about = "Pulse demo traffic: a shop's metrics with the occasional anomaly")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    traffic: Traffic,
}

#[derive(Debug, clap::Args)]
struct Traffic {
    /// The gatherer's base URL.
    #[arg(long, default_value = "http://127.0.0.1:31115")]
    gatherer: String,
    /// Hours of history to backfill first (the gatherer's max_event_age must allow it).
    #[arg(long, default_value_t = 3)]
    backfill_hours: i64,
    /// Shops (entities) per label.
    #[arg(long, default_value_t = 12)]
    shops: i64,
    /// Minutes from the start of one injected anomaly to the start of the next (at least 2).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(2..))]
    every_minutes: i64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drop these databases (mysql://USER@HOST:PORT/NAME URLs), killing their sessions.
    DropDatabases { urls: Vec<String> },
    /// Drop the `pulse_demo_…` databases earlier demos left; those in use are kept.
    Clean {
        /// The MySQL server, without a database.
        #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
        server: String,
    },
}

/// How long each injected anomaly lasts: three minutes, or less when they come closer.
fn anomaly_minutes(every_minutes: i64) -> i64 {
    (every_minutes - 1).clamp(1, 3)
}

#[derive(Debug, Clone, Copy)]
enum Anomaly {
    Flood { shop: i64 },
    PriceTypo { shop: i64 },
    Stop { shop: i64 },
}

/// The shop's daily rhythm: quiet at night, busy in the evening.
fn rhythm(ts: i64) -> f64 {
    let hour = ts.rem_euclid(86_400) as f64 / 3600.0;
    0.25 + 0.75 * (0.5 - 0.5 * (std::f64::consts::TAU * (hour - 4.0) / 24.0).cos())
}

/// One second of traffic at `ts`, with `active` injected.
fn second(
    rng: &mut Rng,
    ts: i64,
    shops: i64,
    active: Option<Anomaly>,
    with_ts: bool,
    out: &mut Vec<Event>,
) {
    let level = rhythm(ts);
    for shop in 1..=shops {
        let size = 1.0 + (shop % 4) as f64 * 0.5;
        let mut emit = |label: &str, count: u64, value: i64| {
            for _ in 0..count {
                out.push(Event {
                    label: label.to_owned(),
                    id: shop,
                    value,
                    ts: with_ts.then_some(ts),
                });
            }
        };
        let visits = match active {
            Some(Anomaly::Stop { shop: s }) if s == shop => 0,
            _ => rng.poisson(2.0 * size * level),
        };
        emit("visit", visits, 1);
        let orders = match active {
            Some(Anomaly::Flood { shop: s }) if s == shop => rng.poisson(12.0 * size * level),
            _ => rng.poisson(1.2 * size * level),
        };
        emit("checkout", orders, 1);
        let price = 1_990 + shop * 10;
        let price = match active {
            Some(Anomaly::PriceTypo { shop: s }) if s == shop => price / 100,
            _ => price,
        };
        emit("price", rng.poisson(1.0 * size * level), price);
    }
}

async fn post(client: &reqwest::Client, url: &str, events: &[Event]) -> anyhow::Result<()> {
    for chunk in events.chunks(20_000) {
        let body: String = chunk
            .iter()
            .map(|e| serde_json::to_string(e).map(|line| line + "\n"))
            .collect::<Result<_, _>>()?;
        loop {
            let response = client
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await?;
            if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            response.error_for_status()?;
            break;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Command::DropDatabases { urls }) => drop_databases(&urls).await,
        Some(Command::Clean { server }) => clean(&server).await,
        None => traffic(args.traffic).await,
    }
}

async fn traffic(args: Traffic) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{}/gather", args.gatherer.trim_end_matches('/'));
    let mut rng = Rng::new(args.seed);

    let now = chrono::Utc::now().timestamp();
    let mut events = Vec::new();
    for ts in now - args.backfill_hours * 3600..now {
        second(&mut rng, ts, args.shops, None, true, &mut events);
        if events.len() >= 100_000 {
            post(&client, &url, &events).await?;
            events.clear();
        }
    }
    post(&client, &url, &events).await?;
    let live_from = chrono::Utc::now().timestamp();
    let minutes = anomaly_minutes(args.every_minutes);
    let mut next_anomaly = live_from + 90;
    println!(
        "backfilled {} hours of history; now sending live traffic, with an anomaly every {} \
         minutes lasting {minutes}, the first at {}",
        args.backfill_hours,
        args.every_minutes,
        clock(next_anomaly)
    );

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut active: Option<(Anomaly, i64)> = None;
    let mut which = 0;
    loop {
        tick.tick().await;
        let ts = chrono::Utc::now().timestamp();
        if active.is_some_and(|(_, until)| ts >= until) {
            println!("{} anomaly over", clock(ts));
            active = None;
        }
        if active.is_none() && ts >= next_anomaly {
            let shop = 1 + (rng.uniform() * args.shops as f64) as i64 % args.shops;
            let anomaly = match which % 3 {
                0 => Anomaly::Flood { shop },
                1 => Anomaly::PriceTypo { shop },
                _ => Anomaly::Stop { shop },
            };
            which += 1;
            // Start to start, whatever the tick's jitter: the README's cadence.
            next_anomaly += args.every_minutes * 60;
            println!(
                "{} injecting for {minutes} minutes: {}; next at {}",
                clock(ts),
                describe(anomaly),
                clock(next_anomaly)
            );
            active = Some((anomaly, ts + minutes * 60));
        }
        let mut events = Vec::new();
        second(
            &mut rng,
            ts,
            args.shops,
            active.map(|(a, _)| a),
            false,
            &mut events,
        );
        if let Err(error) = post(&client, &url, &events).await {
            eprintln!("gatherer unreachable ({error}); retrying next second");
        }
    }
}

/// `HH:MM:SS` UTC, as the dashboard shows times.
fn clock(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// What an analyst will see, in the words of the dashboard's series selector.
fn describe(anomaly: Anomaly) -> String {
    match anomaly {
        Anomaly::Flood { shop } => {
            format!("a bot floods shop {shop}'s orders (series shop / checkout / {shop})")
        }
        Anomaly::PriceTypo { shop } => {
            format!("shop {shop}'s price is a hundred times too low (series shop / price / {shop})")
        }
        Anomaly::Stop { shop } => {
            format!("shop {shop}'s visits stop (series shop / visit / {shop})")
        }
    }
}

/// `mysql://USER@HOST:PORT/NAME?OPTIONS` without its `/NAME`.
fn server_of(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let authority_from = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_from..].find('/') {
        Some(slash) => &base[..authority_from + slash],
        None => base,
    };
    if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{query}")
    }
}

/// A connection to the server of `url`, on no database.
async fn server_connection(url: &str) -> anyhow::Result<MySqlConnection> {
    Ok(MySqlConnectOptions::from_str(&server_of(url))?
        .connect()
        .await?)
}

/// Kills the sessions on `name`, then drops it.
async fn drop_database(conn: &mut MySqlConnection, name: &str) -> anyhow::Result<()> {
    for id in sessions_on(conn, name).await? {
        let _ = sqlx::query(&format!("KILL {id}")).execute(&mut *conn).await;
    }
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS `{}`",
        name.replace('`', "``")
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn sessions_on(conn: &mut MySqlConnection, name: &str) -> anyhow::Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await?)
}

async fn drop_databases(urls: &[String]) -> anyhow::Result<()> {
    for url in urls {
        let name = url
            .rsplit_once('/')
            .map(|(_, name)| name.split('?').next().unwrap_or(name))
            .filter(|name| !name.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{url:?} names no database"))?;
        let mut conn = server_connection(url).await?;
        drop_database(&mut conn, name).await?;
        conn.close().await?;
        println!("dropped {name}");
    }
    Ok(())
}

async fn clean(server: &str) -> anyhow::Result<()> {
    let mut conn = server_connection(server).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE 'pulse\\_demo\\_%' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await?;
    let (mut dropped, mut kept) = (0, 0);
    for name in names {
        if sessions_on(&mut conn, &name).await?.is_empty() {
            drop_database(&mut conn, &name).await?;
            println!("dropped {name}");
            dropped += 1;
        } else {
            println!("kept {name}: a running demo uses it");
            kept += 1;
        }
    }
    conn.close().await?;
    println!("{dropped} demo database(s) dropped, {kept} in use kept");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_without_its_database_is_its_server() {
        for (url, server) in [
            (
                "mysql://root@127.0.0.1:3306/pulse_demo_1",
                "mysql://root@127.0.0.1:3306",
            ),
            (
                "mysql://u:p@db:3306/x?ssl-mode=disabled",
                "mysql://u:p@db:3306?ssl-mode=disabled",
            ),
            ("mysql://root@127.0.0.1:3306", "mysql://root@127.0.0.1:3306"),
        ] {
            assert_eq!(server_of(url), server);
        }
    }

    #[test]
    fn anomalies_end_before_the_next_one_starts() {
        assert_eq!(anomaly_minutes(5), 3);
        for every in 2..30 {
            assert!((1..every).contains(&anomaly_minutes(every)), "{every}");
        }
    }
}
