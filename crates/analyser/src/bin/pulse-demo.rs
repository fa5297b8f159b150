//! `pulse-demo`: realistic shop traffic for the gatherer, with an anomaly now and then.
//!
//! It first backfills a few hours of history (events with `ts`, so the detectors have
//! learnt the shop's rhythm), then sends live traffic every second. Every few minutes it
//! injects one anomaly and says so: a bot flooding one shop's `checkout`, a `price`
//! entered a hundred times too low, or one shop's `visit` stopping. Watch them appear in
//! the analyser's `/api/v1/state`.
//!
//! With `--nats URL` the same traffic goes to NATS JetStream (the gatherer's `[nats]`
//! stream) instead of HTTP, with a trickle of invalid messages that end as dead letters.

use std::time::Duration;

use clap::Parser;
use protocol::Event;

#[derive(Debug, Parser)]
#[command(about = "Pulse demo traffic: a shop's metrics with the occasional anomaly")]
struct Args {
    /// The gatherer's base URL.
    #[arg(long, default_value = "http://127.0.0.1:31115")]
    gatherer: String,
    /// Hours of history to backfill first (the gatherer's max_event_age must allow it).
    #[arg(long, default_value_t = 3)]
    backfill_hours: i64,
    /// Shops (entities) per label.
    #[arg(long, default_value_t = 12)]
    shops: i64,
    /// Minutes between injected anomalies.
    #[arg(long, default_value_t = 4)]
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

/// xorshift64*: small, seeded, good enough for traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn poisson(&mut self, mean: f64) -> u64 {
        if mean > 30.0 {
            let z = (-2.0 * self.next().max(1e-12).ln()).sqrt()
                * (std::f64::consts::TAU * self.next()).cos();
            return (mean + z * mean.sqrt()).round().max(0.0) as u64;
        }
        let (limit, mut product, mut k) = ((-mean).exp(), self.next(), 0);
        while product > limit {
            product *= self.next();
            k += 1;
        }
        k
    }
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
    let sink = match &args.nats {
        None => Sink::Http {
            client: reqwest::Client::new(),
            url: format!("{}/gather", args.gatherer.trim_end_matches('/')),
        },
        Some(url) => {
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
            Sink::Nats {
                jetstream: Box::new(jetstream),
                subject,
            }
        }
    };
    let mut rng = Rng(args.seed.max(1));

    let now = chrono::Utc::now().timestamp();
    let mut events = Vec::new();
    for ts in now - args.backfill_hours * 3600..now {
        second(&mut rng, ts, args.shops, None, true, &mut events);
        if events.len() >= 100_000 {
            sink.send(&events).await?;
            events.clear();
        }
    }
    sink.send(&events).await?;
    println!(
        "backfilled {} hours of history; now sending live traffic",
        args.backfill_hours
    );

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut active: Option<(Anomaly, i64)> = None;
    let mut next_anomaly = now + 90;
    let mut which = 0;
    loop {
        tick.tick().await;
        let ts = chrono::Utc::now().timestamp();
        if active.is_some_and(|(_, until)| ts >= until) {
            println!("anomaly over");
            active = None;
            next_anomaly = ts + args.every_minutes * 60;
        }
        if active.is_none() && ts >= next_anomaly {
            let shop = 1 + (rng.next() * args.shops as f64) as i64 % args.shops;
            let (anomaly, minutes) = match which % 3 {
                0 => (Anomaly::Flood { shop }, 3),
                1 => (Anomaly::PriceTypo { shop }, 3),
                _ => (Anomaly::Stop { shop }, 5),
            };
            which += 1;
            println!("injecting for {minutes} minutes: {anomaly:?}");
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
