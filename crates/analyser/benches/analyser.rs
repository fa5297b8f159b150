//! Analyser benchmark, against the real MySQL (`BENCH_MYSQL_URL`, default local root).
//! Each figure is printed next to a baseline measured in the same run:
//!
//! 1. pull throughput (export rows/s judged and committed) against merely reading the
//!    same export pages (target: ≥ 100 000 rows/s);
//! 2. `/api/v1/state` latency at a paced 1 000 requests/s (basic auth included) against
//!    `/health/live` at the same pace (target: p99 < 5 ms);
//! 3. live detection latency: from the moment a flooded step is complete (its end plus
//!    `allowed_lateness`) to the alarm in `/api/v1/state` (target: within one
//!    `time_step` plus one `poll_interval`).
//!
//! `cargo bench -p analyser --bench analyser` or `scripts/bench.sh analyser`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use analyser::configuration::{DatasetSettings, Method, Settings, UserSettings};
use gatherer::bucket::{Aggregator, Delta, Totals};
use gatherer::store::Batch;
use protocol::ExportPage;
use secrecy::SecretString;
use sqlx::{Executor, MySqlPool};

const GATHERER_DB: &str = "pulse_bench_gatherer";
const ANALYSER_DB: &str = "pulse_bench_analyser";

struct Gatherer {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_gatherer(server: &str, fresh: bool) -> anyhow::Result<Gatherer> {
    if fresh {
        let admin = MySqlPool::connect(server).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {GATHERER_DB}").as_str())
            .await?;
    }
    let mut settings = gatherer::configuration::Settings::load(None, Some(0))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.database.url = SecretString::from(format!("{server}/{GATHERER_DB}"));
    settings.ingest.max_event_age = Duration::from_secs(86_400);
    let app = gatherer::startup::Application::build(settings).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Ok(Gatherer { url, stop })
}

async fn analyser_settings(
    server: &str,
    gatherer: &str,
    dataset: DatasetSettings,
) -> anyhow::Result<Settings> {
    let admin = MySqlPool::connect(server).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {ANALYSER_DB}").as_str())
        .await?;
    let mut settings = Settings::load(None, Some(0)).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.database.url = SecretString::from(format!("{server}/{ANALYSER_DB}"));
    settings.gatherer.url = gatherer.to_owned();
    settings.gatherer.page_size = 10_000;
    settings.auth.users = vec![UserSettings {
        name: "bench".into(),
        password: Some("bench".to_owned().into()),
        password_hash: None,
        role: None,
    }];
    settings.datasets = vec![dataset];
    Ok(settings)
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1e3
}

/// `rate` requests/s for `seconds` against `url`, from 8 paced tasks; latencies.
async fn paced(url: &str, auth: bool, rate: u32, seconds: u64) -> Vec<Duration> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut tick =
                    tokio::time::interval(Duration::from_secs_f64(8.0 / f64::from(rate)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    tick.tick().await;
                    let mut request = client.get(&url);
                    if auth {
                        request = request.basic_auth("bench", Some("bench"));
                    }
                    let started = Instant::now();
                    let ok = request.send().await.is_ok_and(|r| r.status().is_success());
                    if ok {
                        latencies.push(started.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server =
        std::env::var("BENCH_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let rows: i64 = std::env::var("BENCH_ANALYSER_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600_000);

    // 1. Throughput: `rows` rows over 1 000 series and 2-second buckets.
    let gatherer = start_gatherer(&server, true).await?;
    let gatherer_pool = MySqlPool::connect(&format!("{server}/{GATHERER_DB}")).await?;
    let series = 1_000;
    let start_ms = (chrono::Utc::now().timestamp() - 20 * 3600) * 1000;
    let aggregator = Aggregator::new(2, 1);
    let labels: Vec<Arc<str>> = (0..10)
        .map(|l| Arc::from(format!("label{l}").as_str()))
        .collect();
    let mut written = 0;
    while written < rows {
        let deltas: Vec<Delta> = (written..(written + 50_000).min(rows))
            .map(|i| Delta {
                bucket: aggregator.bucket_of(start_ms + (i / series) * 2_000),
                label: labels[(i % 10) as usize].clone(),
                entity_id: (i % series) / 10,
                totals: Totals {
                    sum: 40 + i % 7,
                    events: 40,
                    min: 1,
                    max: 1,
                },
            })
            .collect();
        written += deltas.len() as i64;
        gatherer::store::insert_batch(
            &gatherer_pool,
            &Batch::new(format!("bench-{written}"), deltas),
        )
        .await?;
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (mut iterator, mut read) = (0u64, 0u64);
    loop {
        let page: ExportPage = client
            .get(format!(
                "{}/api/v1/export?iterator={iterator}&limit=10000",
                gatherer.url
            ))
            .send()
            .await?
            .json()
            .await?;
        read += page.rows.len() as u64;
        iterator = page.next_iterator;
        if !page.has_more {
            break;
        }
    }
    let read_rate = read as f64 / started.elapsed().as_secs_f64();
    let dataset = DatasetSettings {
        time_step: Duration::from_secs(60),
        method: Method::Auto,
        ..DatasetSettings::all("bench")
    };
    let settings = analyser_settings(&server, &gatherer.url, dataset).await?;
    let state = analyser::startup::build_state(&settings, true).await?;
    let started = Instant::now();
    let outcome = state.pull().await?;
    let pull_rate = outcome.rows as f64 / started.elapsed().as_secs_f64();

    // 2. State latency, with the anomalies and series of part 1 in place.
    let app = analyser::startup::Application::build(settings.clone(), false).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_app, app_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = app_stopped.await;
    }));
    paced(&format!("{base}/api/v1/state"), true, 200, 1).await; // warm up
    let mut live = paced(&format!("{base}/health/live"), false, 1_000, 5).await;
    let mut state_latencies = paced(&format!("{base}/api/v1/state"), true, 1_000, 5).await;
    let achieved = state_latencies.len() as f64 / 5.0;
    let _ = stop_app.send(());
    let _ = gatherer.stop.send(());

    // 3. Live detection latency: 4-second steps, last_point over 2 minutes, a flood.
    let gatherer = start_gatherer(&server, true).await?;
    let step = 4i64;
    let dataset = DatasetSettings {
        time_step: Duration::from_secs(step as u64),
        time_ago: Some(Duration::from_secs(120)),
        method: Method::LastPoint,
        min_count_per_step: 5.0,
        allowed_lateness: Duration::from_secs(2),
        ..DatasetSettings::all("live")
    };
    let mut settings = analyser_settings(&server, &gatherer.url, dataset.clone()).await?;
    settings.gatherer.poll_interval = Duration::from_secs(2);
    let event = |entity: i64, ts: Option<i64>| match ts {
        Some(ts) => serde_json::json!({"label": "live", "id": entity, "value": 1, "ts": ts}),
        None => serde_json::json!({"label": "live", "id": entity, "value": 1}),
    };
    let post = |events: Vec<serde_json::Value>| {
        let request = client
            .post(format!("{}/gather", gatherer.url))
            .json(&events);
        async move { request.send().await.map(|_| ()) }
    };
    // Noisy traffic: 0 to 2 events per entity every 250 ms (4 a second on average).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noisy = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 3) as usize
    };
    // Three minutes of history at the same rate, for each of 5 entities.
    let now = chrono::Utc::now().timestamp();
    let mut history = Vec::new();
    for ts in now - 180..now {
        for e in 1..=5 {
            for _ in 0..(0..4).map(|_| noisy()).sum::<usize>() {
                history.push(event(e, Some(ts)));
            }
        }
    }
    post(history).await?;
    let app = analyser::startup::Application::build(settings, false).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_app, app_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = app_stopped.await;
    }));
    // Live traffic; the flood starts at the next step boundary after 10 s.
    let flood_step = (chrono::Utc::now().timestamp() + 10).div_euclid(step) * step + step;
    let complete_at = (flood_step + step) as f64 + dataset.allowed_lateness.as_secs_f64();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let detected_at = loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        let flooding = now.timestamp() >= flood_step;
        let mut events = Vec::new();
        for e in 1..=5 {
            let count = if flooding && e == 3 { 10 } else { noisy() };
            events.extend(std::iter::repeat_n(event(e, None), count));
        }
        post(events).await?;
        if now.timestamp() >= flood_step {
            let state: serde_json::Value = client
                .get(format!("{base}/api/v1/state?severity=alarm&entity_id=3"))
                .basic_auth("bench", Some("bench"))
                .send()
                .await?
                .json()
                .await?;
            let flood_alarm = state["data"].as_array().is_some_and(|alarms| {
                alarms.iter().any(|a| {
                    a["period_start"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t.timestamp() >= flood_step)
                })
            });
            if flood_alarm {
                break chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            }
        }
        if now.timestamp() > flood_step + 60 {
            anyhow::bail!("the flood was not detected within a minute");
        }
    };
    let _ = stop_app.send(());
    let _ = gatherer.stop.send(());

    println!();
    println!("| analyser benchmark | figure | baseline in the same run | target |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| pull: export rows/s judged and committed ({} rows, {series} series) | {pull_rate:.0} | {read_rate:.0} rows/s merely read: ratio {:.2} | >= 100000 |",
        outcome.rows,
        pull_rate / read_rate
    );
    println!(
        "| /api/v1/state at {achieved:.0} req/s (basic auth): p50 / p99 | {:.2} / {:.2} ms | /health/live: {:.2} / {:.2} ms | p99 < 5 ms |",
        percentile(&mut state_latencies, 0.5),
        percentile(&mut state_latencies, 0.99),
        percentile(&mut live, 0.5),
        percentile(&mut live, 0.99)
    );
    println!(
        "| live flood: alarm visible after its step was complete | {:.1} s | time_step {step} s + poll_interval 2 s = 6 s | <= 6 s |",
        detected_at - complete_at
    );
    let admin = MySqlPool::connect(&server).await?;
    for db in [GATHERER_DB, ANALYSER_DB] {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
            .await?;
    }
    Ok(())
}
