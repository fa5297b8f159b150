//! Live at scale (`BENCH_ANALYSER_PARTS=live-scale`): 100 000 series (`visit` and
//! `checkout` × 50 000 entities, `BENCH_ANALYSER_LIVE_SERIES` picks another count), one
//! row per series and minute, with the analyser serving (`Application`, `poll_interval`
//! 10 s). The series are spread over the minute in twelve slots of 5 s, each row stamped
//! at its slot as it is written straight into `events_count`, like a gatherer's flushes
//! would be. Thirty minutes of history (`BENCH_ANALYSER_LIVE_HISTORY` steps) are written
//! the same way first, then pulled; once
//! caught up, one series is flooded for one step. Prints how long after that step was
//! complete its alarm showed in `/api/v1/state` (target: within `time_step` +
//! `poll_interval`), and `/api/v1/state` p50 / p99 at a paced 1 000 req/s while the
//! series are live and pulls run, against `/health/live` at the same pace (target: p99
//! < 5 ms).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use analyser::configuration::{DatasetSettings, Method};
use gatherer::bucket::Aggregator;
use sqlx::MySqlPool;

use super::{
    analyser_settings, paced, percentile, rss_bytes, series_count, series_delta, start_gatherer,
    write_deltas, ANALYSER_DB, GATHERER_DB,
};

const STEP: i64 = 60;
const SLOT: i64 = 5;
const POLL: u64 = 10;
/// Steps of history before going live (`BENCH_ANALYSER_LIVE_HISTORY`, 30: the window).
fn history_steps() -> i64 {
    std::env::var("BENCH_ANALYSER_LIVE_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// The rows of the slot that starts at `t` (unix seconds, a multiple of [`SLOT`]): every
/// series whose slot of the minute it is; `flood` = (series, step start) counts 20× more.
fn slot_deltas(series: i64, t: i64, flood: (i64, i64)) -> Vec<gatherer::bucket::Delta> {
    let aggregator = Aggregator::new(2, 1);
    let labels: [Arc<str>; 2] = [Arc::from("visit"), Arc::from("checkout")];
    let slots = STEP / SLOT;
    let step_start = t.div_euclid(STEP) * STEP;
    let slot = (t - step_start) / SLOT;
    (slot..series)
        .step_by(slots as usize)
        .map(|s| {
            let mut count = series_count(s, step_start / STEP);
            if (s, step_start) == flood {
                count *= 20;
            }
            series_delta(&aggregator, &labels, s, t, count)
        })
        .collect()
}

async fn writes_until(
    pool: &MySqlPool,
    series: i64,
    next: &mut i64,
    until: i64,
    flood: (i64, i64),
) -> anyhow::Result<()> {
    let mut deltas = Vec::new();
    while *next <= until {
        deltas.extend(slot_deltas(series, *next, flood));
        *next += SLOT;
        if deltas.len() >= 50_000 {
            write_deltas(pool, "live", std::mem::take(&mut deltas)).await?;
        }
    }
    write_deltas(pool, "live", deltas).await
}

pub async fn run(server: &str) -> anyhow::Result<()> {
    let series: i64 = std::env::var("BENCH_ANALYSER_LIVE_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let history = history_steps();
    let started = Instant::now();
    let gatherer = start_gatherer(server, true).await?;
    let pool = MySqlPool::connect(&format!("{server}/{GATHERER_DB}")).await?;
    let admin = MySqlPool::connect(server).await?;

    // History: thirty steps and the current one up to now, slot by slot.
    let now = chrono::Utc::now().timestamp();
    let mut next = (now.div_euclid(STEP) - history) * STEP;
    let no_flood = (-1, 0);
    writes_until(&pool, series, &mut next, now, no_flood).await?;
    let history_end: i64 =
        sqlx::query_scalar("SELECT CAST(MAX(ec_id) AS SIGNED) FROM events_count")
            .fetch_one(&pool)
            .await?;
    let written = started.elapsed().as_secs_f64();

    // The writer: each slot's rows as its time comes.
    let flood_step = Arc::new(AtomicI64::new(i64::MAX));
    let flooded = 2 * (series / 4) + 1; // a `checkout` series
    let writer = {
        let (pool, flood_step) = (pool.clone(), flood_step.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let now = chrono::Utc::now().timestamp();
                let flood = (flooded, flood_step.load(Ordering::Relaxed));
                if let Err(e) = writes_until(&pool, series, &mut next, now, flood).await {
                    eprintln!("live writer: {e}");
                }
            }
        })
    };

    let dataset = DatasetSettings {
        time_step: Duration::from_secs(STEP as u64),
        time_ago: Some(Duration::from_secs(30 * STEP as u64)),
        method: Method::Auto,
        labels: vec!["visit".into(), "checkout".into()],
        ..DatasetSettings::all("live-scale")
    };
    let lateness = dataset.allowed_lateness.as_secs_f64();
    let mut settings = analyser_settings(server, &gatherer.url, dataset).await?;
    settings.gatherer.poll_interval = Duration::from_secs(POLL);
    let rss_before = rss_bytes();
    let app = analyser::startup::Application::build(settings, false).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop_app, app_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = app_stopped.await;
    }));

    // Caught up: the shard's cursor past the history.
    let catching_up = Instant::now();
    loop {
        let cursor: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT CAST(iterator AS SIGNED) FROM {ANALYSER_DB}.cursors"
        ))
        .fetch_optional(&admin)
        .await
        .ok()
        .flatten();
        if cursor.is_some_and(|c| c >= history_end) {
            break;
        }
        anyhow::ensure!(
            catching_up.elapsed() < Duration::from_secs(900),
            "the analyser did not catch up with the history within 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up = catching_up.elapsed().as_secs_f64();

    // The flood: the next step.
    let flood = (chrono::Utc::now().timestamp().div_euclid(STEP) + 1) * STEP;
    flood_step.store(flood, Ordering::Relaxed);

    // Latency while live: the writer and the pulls go on.
    let state_url = format!("{base}/api/v1/state");
    paced(&state_url, true, 200, 1).await; // warm up
    let mut live = paced(&format!("{base}/health/live"), false, 1_000, 10).await;
    let mut state = paced(&state_url, true, 1_000, 10).await;
    let achieved = state.len() as f64 / 10.0;

    // The flood's alarm.
    let client = reqwest::Client::new();
    let complete_at = (flood + STEP) as f64 + lateness;
    let entity = flooded / 2;
    // (severity, seconds after the step was complete) of the first anomaly of the flood,
    // and of its first alarm.
    let (mut first, mut alarm) = (None, None);
    while alarm.is_none() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        if now < complete_at {
            continue;
        }
        if now > complete_at + 120.0 {
            break;
        }
        let found: serde_json::Value = client
            .get(format!("{state_url}?label=checkout&entity_id={entity}"))
            .basic_auth("bench", Some("bench"))
            .send()
            .await?
            .json()
            .await?;
        let severities: Vec<String> = found["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["period_start"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t.timestamp() >= flood)
            })
            .filter_map(|a| a["severity"].as_str().map(str::to_owned))
            .collect();
        if let Some(severity) = severities.first() {
            first.get_or_insert((severity.clone(), now - complete_at));
        }
        if severities.iter().any(|s| s == "alarm") {
            alarm = Some(now - complete_at);
        }
    }
    let seen =
        |found: Option<f64>| found.map_or("not within 120 s".to_owned(), |s| format!("{s:.1} s"));
    let rss_growth = rss_bytes().saturating_sub(rss_before) as f64;
    writer.abort();
    let _ = stop_app.send(());
    let _ = gatherer.stop.send(());

    println!();
    println!("| live at scale ({series} series, one row each per 1m step, poll_interval {POLL} s) | figure | baseline in the same run | target |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| history ({history} steps, {} rows) written, then pulled and judged until caught up | {written:.0} s, then {caught_up:.0} s | – | – |",
        history_end
    );
    println!(
        "| live flood: alarm visible after its step was complete (first anomaly: {}) | {} | time_step {STEP} s + poll_interval {POLL} s = {} s | <= {} s |",
        first.map_or("none".to_owned(), |(severity, s)| format!("{severity} after {s:.1} s")),
        seen(alarm),
        STEP + POLL as i64,
        STEP + POLL as i64
    );
    println!(
        "| /api/v1/state at {achieved:.0} req/s (basic auth) while live: p50 / p99 | {:.2} / {:.2} ms | /health/live: {:.2} / {:.2} ms | p99 < 5 ms |",
        percentile(&mut state, 0.5),
        percentile(&mut state, 0.99),
        percentile(&mut live, 0.5),
        percentile(&mut live, 0.99)
    );
    println!(
        "| RSS growth per series (analyser, gatherer and bench) | {:.0} B | – | <= 4096 B |",
        rss_growth / series as f64
    );
    println!(
        "| wall time | {:.0} s | – | ~10 min |",
        started.elapsed().as_secs_f64()
    );
    super::drop_databases(server).await
}
