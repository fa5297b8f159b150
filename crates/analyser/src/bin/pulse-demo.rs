//! `pulse-demo`: realistic shop traffic for the gatherer, with an anomaly now and then.
//!
//! The traffic is `detect::synth::shop`'s, the same the analyser's tests judge: shops whose
//! sizes spread six times, a daily rhythm, counts that vary more than Poisson, and prices
//! that jitter around each shop's own. It first backfills a few hours of history (events
//! with `ts`, so the detectors have learnt the shops), then sends live traffic every
//! second. Every five minutes
//! (start to start; the first 90 s after the backfill) it injects one anomaly for three
//! minutes and says so: a bot flooding one shop's `checkout`, a `price` entered a hundred
//! times too low, or one shop's `visit` stopping. Watch them appear in the analyser's
//! `/api/v1/state`.
//!
//! With `--nats URL` the same traffic goes to NATS JetStream (the gatherer's `[nats]`
//! stream) instead of HTTP, with a trickle of invalid messages that end as dead letters.
//!
//! `scripts/run.sh --demo` runs it on databases of its own and drops them on exit with
//! `pulse-demo drop-databases`; `pulse-demo clean` drops the ones earlier demos left.

use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use detect::synth::shop::{Injected, ShopTraffic, CHECKOUT, VISIT};
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
    /// Publish to NATS JetStream at this URL (e.g. nats://127.0.0.1:4222) instead of
    /// posting to the gatherer.
    #[arg(long)]
    nats: Option<String>,
    /// The stream the gatherer consumes; messages go to `<stream>.events`.
    #[arg(long, default_value = "pulse")]
    nats_stream: String,
}

/// Where the traffic goes.
enum Sink {
    Http {
        client: reqwest::Client,
        url: String,
    },
    Nats {
        jetstream: Box<async_nats::jetstream::Context>,
        subject: String,
    },
}

impl Sink {
    /// The gatherer's `/gather`, or the NATS stream it consumes.
    async fn of(args: &Traffic) -> anyhow::Result<Self> {
        let Some(url) = &args.nats else {
            return Ok(Sink::Http {
                client: reqwest::Client::new(),
                url: format!("{}/gather", args.gatherer.trim_end_matches('/')),
            });
        };
        let client = async_nats::connect(url.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("NATS at {url}: {e}"))?;
        let jetstream = async_nats::jetstream::new(client);
        let subject = format!("{}.events", args.nats_stream);
        // The gatherer creates the stream too; whoever comes first does.
        jetstream
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: args.nats_stream.clone(),
                subjects: vec![subject.clone()],
                retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
                max_age: Duration::from_secs(7 * 86_400),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("publishing to NATS JetStream, subject {subject}");
        Ok(Sink::Nats {
            jetstream: Box::new(jetstream),
            subject,
        })
    }

    async fn send(&self, events: &[Event]) -> anyhow::Result<()> {
        match self {
            Sink::Http { client, url } => post(client, url, events).await,
            Sink::Nats { jetstream, subject } => {
                for chunk in events.chunks(5_000) {
                    let body: String = chunk
                        .iter()
                        .map(|e| serde_json::to_string(e).map(|line| line + "\n"))
                        .collect::<Result<_, _>>()?;
                    publish(jetstream, subject, body).await?;
                }
                Ok(())
            }
        }
    }

    /// Now and then an invalid message: not JSON, or an array with a bad event.
    async fn trickle_invalid(&self, n: u64) -> anyhow::Result<()> {
        if let Sink::Nats { jetstream, subject } = self {
            let body = if n.is_multiple_of(2) {
                "this is not JSON".to_owned()
            } else {
                r#"[{"label":"","id":1,"value":1},{"label":"visit","id":1,"value":1}]"#.to_owned()
            };
            publish(jetstream, subject, body).await?;
        }
        Ok(())
    }
}

async fn publish(
    jetstream: &async_nats::jetstream::Context,
    subject: &str,
    body: String,
) -> anyhow::Result<()> {
    jetstream
        .publish(subject.to_owned(), body.into())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
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

impl Anomaly {
    /// The anomaly as the traffic generator injects it, over `seconds` from second `from`.
    fn injected(self, from: u64, seconds: u64) -> Injected {
        match self {
            Anomaly::Flood { shop } => Injected::Scale {
                label: CHECKOUT,
                shop,
                factor: 10.0,
                from,
                steps: seconds,
            },
            Anomaly::PriceTypo { shop } => Injected::Price {
                shop,
                factor: 0.01,
                from,
                steps: seconds,
            },
            Anomaly::Stop { shop } => Injected::Scale {
                label: VISIT,
                shop,
                factor: 0.0,
                from,
                steps: seconds,
            },
        }
    }
}

/// The events of second `step` of the traffic, stamped with their time or not (live
/// traffic is stamped by the gatherer on arrival).
fn second(traffic: &mut ShopTraffic, step: u64, with_ts: bool, out: &mut Vec<Event>) {
    for e in traffic.events(step) {
        out.push(Event {
            label: e.label.to_owned(),
            id: e.entity,
            value: e.value,
            ts: with_ts.then_some(e.ts),
        });
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
    let sink = Sink::of(&args).await?;
    let mut rng = Rng::new(args.seed);

    // Shops whose sizes spread six times, with a daily rhythm, jittering prices and counts
    // that vary more than Poisson, one step a second; three times the generator's
    // standard volume, so that at one-minute steps the bigger shops sell the 30 items a
    // minute the level checks need to judge a price.
    let now = chrono::Utc::now().timestamp();
    let start = now - args.backfill_hours * 3600;
    let mut shop_traffic = ShopTraffic::new(args.seed, args.shops.max(2) as usize, 1, start);
    shop_traffic.volume = 3.0;
    let second_of = |ts: i64| (ts - start).max(0) as u64;
    let mut events = Vec::new();
    for step in 0..second_of(now) {
        second(&mut shop_traffic, step, true, &mut events);
        if events.len() >= 100_000 {
            sink.send(&events).await?;
            events.clear();
        }
    }
    sink.send(&events).await?;
    let mut next_second = second_of(now);
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
    let mut active_until: Option<i64> = None;
    let mut which = 0;
    let shops = shop_traffic.shops.len() as i64;
    loop {
        tick.tick().await;
        let ts = chrono::Utc::now().timestamp();
        if active_until.is_some_and(|until| ts >= until) {
            println!("{} anomaly over", clock(ts));
            active_until = None;
        }
        if active_until.is_none() && ts >= next_anomaly {
            // Prices and visits of the bigger half of the shops, so each is judged; a
            // flood anywhere, the smallest shop included.
            let any = 1 + (rng.uniform() * shops as f64) as i64 % shops;
            let bigger = shops / 2
                + 1
                + (rng.uniform() * (shops - shops / 2) as f64) as i64 % (shops - shops / 2);
            let anomaly = match which % 3 {
                0 => Anomaly::Flood { shop: any },
                1 => Anomaly::PriceTypo { shop: bigger },
                _ => Anomaly::Stop { shop: bigger },
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
            shop_traffic
                .injected
                .push(anomaly.injected(second_of(ts), minutes as u64 * 60));
            active_until = Some(ts + minutes * 60);
        }
        let mut events = Vec::new();
        // Every second once, in order, even when a tick came late.
        while next_second <= second_of(ts) {
            second(&mut shop_traffic, next_second, false, &mut events);
            next_second += 1;
        }
        if let Err(error) = sink.send(&events).await {
            eprintln!("gatherer unreachable ({error}); retrying next second");
        }
        if ts % 15 == 0 {
            if let Err(error) = sink.trickle_invalid(ts as u64 / 15).await {
                eprintln!("could not publish an invalid message ({error})");
            }
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
    // KILL and DROP DATABASE name what they act on: built at run time, not checked.
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
    Ok(sqlx::query_scalar!(
        r#"SELECT CAST(id AS SIGNED) AS "id!: i64" FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()"#,
        name
    )
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
    let names: Vec<String> = sqlx::query_scalar!(
        r#"SELECT CAST(schema_name AS CHAR) AS "name!: String" FROM information_schema.schemata WHERE schema_name LIKE 'pulse\_demo\_%' ORDER BY 1"#
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
