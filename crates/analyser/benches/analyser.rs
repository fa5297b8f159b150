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
//! 4. the series axis: one dataset (labels `visit` and `checkout`, `time_step` 1m,
//!    `time_ago` 30m, `auto`), one row per series and step, 60 steps, pulled until caught
//!    up, for 1 000, 10 000 and 100 000 series (`BENCH_ANALYSER_SERIES=1000,1000000` picks
//!    others): rows/s, the process's RSS growth per series, MariaDB's CPU per row and what
//!    the analyser asked of it (statements, rows written, bytes), each against the first
//!    (smallest) run (targets: rows/s at the largest ≥ 0.7× the smallest and ≥ 150 000
//!    throughout, ≤ 4 KB per series). The history is written straight into the gatherer's
//!    `events_count` (its ingest would take longer than the pull being measured), then
//!    read back through the gatherer's export like any pull. `BENCH_ANALYSER_INCIDENTS=2`
//!    gives 2 % of the entities four times their traffic for ten steps from the 40th: an
//!    incident storm (each one opened, grown for nine steps, then resolved), to measure
//!    what recording incidents costs.
//!
//!    `BENCH_ANALYSER_STEPS` sets the steps (60), `1000000:6` in the list those of one
//!    size; `BENCH_ANALYSER_BUDGET=600` stops each
//!    pull after 600 s and prints rows/s over what it had committed by then, marked
//!    partial (a million series is 60 million rows).
//!
//! Not in the default run (each takes minutes):
//!
//! 5. `BENCH_ANALYSER_PARTS=live-scale`: 100 000 series live, one row each a minute, the
//!    analyser serving; a flood's alarm latency and `/api/v1/state` latency at 1 000
//!    req/s while pulls run (`analyser/live_scale.rs`);
//! 6. `BENCH_ANALYSER_PARTS=shards`: two label shards pulling the series axis' data at
//!    once, rows/s of each (`analyser/shards.rs`).
//!
//! `cargo bench -p analyser --bench analyser` or `scripts/bench.sh analyser`;
//! `BENCH_ANALYSER_PARTS=series` runs the series axis alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use analyser::configuration::{DatasetSettings, Method, Settings, UserSettings};
use gatherer::bucket::{Aggregator, Delta, Totals};
use gatherer::store::Batch;
use protocol::ExportPage;
use secrecy::SecretString;
use sqlx::{Executor, MySqlPool};

#[path = "analyser/live_scale.rs"]
mod live_scale;
#[path = "analyser/shards.rs"]
mod shards;

/// The bench's databases: `pulse_bench_gatherer` and `pulse_bench_analyser`, with
/// `BENCH_DB_TAG` after `pulse_bench_` when set, so that two benches can share a server.
#[derive(Clone, Copy)]
struct Database(&'static str);

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = std::env::var("BENCH_DB_TAG").map_or(String::new(), |t| format!("{t}_"));
        write!(f, "pulse_bench_{tag}{}", self.0)
    }
}

const GATHERER_DB: Database = Database("gatherer");
const ANALYSER_DB: Database = Database("analyser");

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

/// The process's resident set, bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// The MariaDB (or MySQL) server's process id, when it runs on this machine.
fn mysqld_pid() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        matches!(comm.trim(), "mariadbd" | "mysqld").then_some(pid)
    })
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Server counters that show what the analyser asks of MySQL.
const COUNTERS: [&str; 12] = [
    "Questions",
    "Com_insert",
    "Com_delete",
    "Com_commit",
    "Handler_write",
    "Handler_update",
    "Bytes_received",
    "Innodb_data_written",
    "Com_update",
    "Innodb_rows_inserted",
    "Innodb_rows_updated",
    "Innodb_buffer_pool_reads",
];

async fn counters(pool: &MySqlPool) -> anyhow::Result<Vec<f64>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SHOW GLOBAL STATUS").fetch_all(pool).await?;
    Ok(COUNTERS
        .iter()
        .map(|name| {
            rows.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0.0)
        })
        .collect())
}

/// One run of the series axis.
struct SeriesRun {
    series: i64,
    steps: i64,
    rows: u64,
    seconds: f64,
    /// False when the pull was stopped at the time budget: `rows` and `seconds` are then
    /// what had committed, and when.
    complete: bool,
    /// Export rows read within the budget (all when complete).
    read: u64,
    /// Writing the history into `events_count`, and its size there.
    write_seconds: f64,
    table_bytes: f64,
    rss_growth: f64,
    mysql_cpu: f64,
    /// CPU of this process over the pull: the analyser, and the gatherer serving its pages.
    own_cpu: f64,
    pages: u64,
    /// Deltas of [`COUNTERS`] over the pull.
    counters: Vec<f64>,
    snapshot_bytes: f64,
    /// Incidents the pull opened.
    incidents: u64,
}

/// The count of series `s` (half `visit`, half `checkout`) at step `step`: 40 to 50,
/// cycling with the entity and the step; four times that for steps 40 to 49 of the
/// `BENCH_ANALYSER_INCIDENTS` percent of the entities in an incident storm.
fn series_count(s: i64, step: i64) -> i64 {
    static STORM_PERCENT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let storm_percent = *STORM_PERCENT.get_or_init(|| {
        std::env::var("BENCH_ANALYSER_INCIDENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    let entity = s / 2;
    let storm = (40..50).contains(&step) && entity % 100 < storm_percent;
    (40 + (entity * 7 + step * 13) % 11) * if storm { 4 } else { 1 }
}

fn series_delta(
    aggregator: &Aggregator,
    labels: &[Arc<str>; 2],
    s: i64,
    at: i64,
    count: i64,
) -> Delta {
    Delta {
        bucket: aggregator.bucket_of(at * 1000),
        label: labels[(s % 2) as usize].clone(),
        entity_id: s / 2,
        totals: Totals {
            sum: count,
            events: count as u32,
            min: 1,
            max: 1,
        },
    }
}

/// Writes `deltas` straight into the gatherer's `events_count`, 50 000 rows a batch.
async fn write_deltas(pool: &MySqlPool, name: &str, deltas: Vec<Delta>) -> anyhow::Result<()> {
    for chunk in deltas.chunks(50_000) {
        let id = format!("{name}-{}", uuid_like());
        gatherer::store::insert_batch(pool, &Batch::new(id, chunk.to_vec())).await?;
    }
    Ok(())
}

/// A batch id unique within the process.
fn uuid_like() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `series` series, one row per series and step for `steps` one-minute steps from
/// `first_step`, stamped 10 s into each step, written straight into `events_count`.
async fn write_series_history(
    pool: &MySqlPool,
    series: i64,
    first_step: i64,
    steps: i64,
) -> anyhow::Result<()> {
    let aggregator = Aggregator::new(2, 1);
    let labels: [Arc<str>; 2] = [Arc::from("visit"), Arc::from("checkout")];
    let total = series * steps;
    let mut written = 0i64;
    while written < total {
        let deltas: Vec<Delta> = (written..(written + 50_000).min(total))
            .map(|i| {
                let (step, s) = (i / series, i % series);
                let at = first_step + step * 60 + 10;
                series_delta(&aggregator, &labels, s, at, series_count(s, step))
            })
            .collect();
        written += deltas.len() as i64;
        write_deltas(pool, "series", deltas).await?;
    }
    Ok(())
}

/// What a pull did within its time budget.
struct Pulled {
    /// Export rows the pull committed (all of them when complete).
    rows: u64,
    seconds: f64,
    /// False when stopped at the budget: `rows` is what had committed, and `read` the rows
    /// the gatherer had served by then.
    complete: bool,
    read: u64,
    /// Incidents the pull opened (0 when stopped at the budget: its outcome is unknown).
    incidents: u64,
}

/// Export rows the gatherers of this process have served so far (their Prometheus counter).
fn rows_served() -> u64 {
    let Some(handle) = service::telemetry::prometheus() else {
        return 0;
    };
    handle
        .render()
        .lines()
        .filter(|l| l.starts_with("gatherer_export_rows_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs one pull until caught up, or until `budget` has passed: then stops it (what it
/// had not committed rolls back) and counts the rows the shard's cursor had committed
/// (read every second) and the rows the gatherer had served.
async fn budgeted_pull(
    state: &analyser::state::AppState,
    admin: &MySqlPool,
    budget: Option<Duration>,
) -> anyhow::Result<Pulled> {
    let started = Instant::now();
    let served = rows_served();
    let pull = state.pull();
    tokio::pin!(pull);
    let shard = state.shard.key();
    let mut rows = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            outcome = &mut pull => {
                let outcome = outcome?;
                let rows = outcome.rows;
                return Ok(Pulled { rows, seconds: started.elapsed().as_secs_f64(), complete: true, read: rows, incidents: outcome.new_anomalies });
            }
            _ = tick.tick() => {
                let Some(budget) = budget else { continue };
                let committed: Option<u64> = sqlx::query_scalar(&format!(
                    "SELECT rows_seen FROM {ANALYSER_DB}.cursors WHERE shard = ?"
                ))
                .bind(&shard)
                .fetch_optional(admin)
                .await?;
                rows = rows.max(committed.unwrap_or(0));
                if started.elapsed() >= budget {
                    let read = rows_served().saturating_sub(served);
                    return Ok(Pulled { rows, seconds: started.elapsed().as_secs_f64(), complete: false, read, incidents: 0 });
                }
            }
        }
    }
}

/// The pull's time budget, `BENCH_ANALYSER_BUDGET` seconds; none by default.
fn budget() -> Option<Duration> {
    std::env::var("BENCH_ANALYSER_BUDGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
}

/// `series` series (half `visit`, half `checkout`), one row per series and step for
/// `steps` one-minute steps ending an hour ago, pulled until caught up (or the budget).
async fn series_run(
    server: &str,
    series: i64,
    steps: i64,
    page_size: u32,
) -> anyhow::Result<SeriesRun> {
    let gatherer = start_gatherer(server, true).await?;
    let gatherer_pool = MySqlPool::connect(&format!("{server}/{GATHERER_DB}")).await?;
    let now = chrono::Utc::now().timestamp();
    let first_step = (now - 3600).div_euclid(60) * 60 - steps * 60;
    let writing = Instant::now();
    write_series_history(&gatherer_pool, series, first_step, steps).await?;
    let write_seconds = writing.elapsed().as_secs_f64();
    let table_bytes: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT CAST(data_length + index_length AS DOUBLE) FROM information_schema.tables \
         WHERE table_schema = '{GATHERER_DB}' AND table_name = 'events_count'"
    ))
    .fetch_optional(&gatherer_pool)
    .await?;
    gatherer_pool.close().await;
    let dataset = DatasetSettings {
        time_step: Duration::from_secs(60),
        time_ago: Some(Duration::from_secs(1800)),
        method: Method::Auto,
        labels: vec!["visit".into(), "checkout".into()],
        ..DatasetSettings::all("series")
    };
    let mut settings = analyser_settings(server, &gatherer.url, dataset).await?;
    settings.gatherer.page_size = page_size;
    let admin = MySqlPool::connect(server).await?;
    let mysqld = mysqld_pid();
    let state = analyser::startup::build_state(&settings, true).await?;
    let rss_before = rss_bytes();
    let cpu_before = mysqld.map_or(0.0, cpu_seconds);
    let own_before = cpu_seconds(std::process::id());
    let counters_before = counters(&admin).await?;
    let pulled = budgeted_pull(&state, &admin, budget()).await?;
    let counters_after = counters(&admin).await?;
    let mysql_cpu = mysqld.map_or(0.0, cpu_seconds) - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_before;
    let rss_growth = rss_bytes().saturating_sub(rss_before) as f64;
    let snapshot_bytes: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT CAST(SUM(LENGTH(state)) AS DOUBLE) FROM {ANALYSER_DB}.series_snapshots"
    ))
    .fetch_one(&admin)
    .await?;
    drop(state);
    let _ = gatherer.stop.send(());
    Ok(SeriesRun {
        series,
        steps,
        rows: pulled.rows,
        seconds: pulled.seconds,
        complete: pulled.complete,
        read: pulled.read,
        write_seconds,
        table_bytes: table_bytes.unwrap_or(0.0),
        rss_growth,
        mysql_cpu,
        own_cpu,
        pages: pulled.read.div_ceil(u64::from(page_size)).max(1),
        counters: counters_after
            .iter()
            .zip(&counters_before)
            .map(|(a, b)| a - b)
            .collect(),
        snapshot_bytes: snapshot_bytes.unwrap_or(0.0),
        incidents: pulled.incidents,
    })
}

fn print_series_axis(runs: &[SeriesRun]) {
    let Some(base) = runs.first() else { return };
    let rate = |r: &SeriesRun| r.read as f64 / r.seconds;
    let per_series = |r: &SeriesRun| r.rss_growth / r.series as f64;
    let cpu_per_row = |r: &SeriesRun| r.mysql_cpu / r.read as f64 * 1e6;
    let own_per_row = |r: &SeriesRun| r.own_cpu / r.read as f64 * 1e6;
    println!();
    println!(
        "| series axis (steps of 1m, one row per series and step) | steps | history written into events_count | rows read | pull + judge | rows/s | ratio to {} series | RSS growth per series | MariaDB CPU per row | analyser + gatherer CPU per row | targets |",
        base.series
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in runs {
        let partial = if r.complete {
            String::new()
        } else {
            format!(
                " (partial: {:.0}% read within the budget, {} committed)",
                r.read as f64 / (r.series * r.steps) as f64 * 100.0,
                r.rows
            )
        };
        println!(
            "| {} | {} | {:.0} s, {:.0} rows/s, {:.0} MB | {}{partial} | {:.1} s | {:.0} | {:.2} | {:.0} B | {:.1} µs ({:.2}× the first) | {:.1} µs | rows/s >= 150000, ratio >= 0.7, <= 4096 B |",
            r.series,
            r.steps,
            r.write_seconds,
            (r.series * r.steps) as f64 / r.write_seconds,
            r.table_bytes / 1e6,
            r.read,
            r.seconds,
            rate(r),
            rate(r) / rate(base),
            per_series(r),
            cpu_per_row(r),
            cpu_per_row(r) / cpu_per_row(base).max(f64::MIN_POSITIVE),
            own_per_row(r),
        );
    }
    println!();
    println!(
        "| series | pages | statements per page | inserts per page | updates per page | commits per page | rows written per export row (Handler_write + Handler_update) | InnoDB rows inserted + updated per export row | bytes sent to MySQL per row | InnoDB bytes written per row | buffer pool misses (disk reads) per page | snapshot bytes per series | incidents opened |"
    );
    println!(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in runs {
        let pages = r.pages as f64;
        let rows = r.read as f64;
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3} | {:.3} | {:.0} | {:.0} | {:.1} | {:.0} | {} |",
            r.series,
            r.pages,
            r.counters[0] / pages,
            r.counters[1] / pages,
            r.counters[8] / pages,
            r.counters[3] / pages,
            (r.counters[4] + r.counters[5]) / rows,
            (r.counters[9] + r.counters[10]) / rows,
            r.counters[6] / rows,
            r.counters[7] / rows,
            r.counters[11] / pages,
            r.snapshot_bytes / r.series as f64,
            r.incidents,
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server =
        std::env::var("BENCH_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let parts = std::env::var("BENCH_ANALYSER_PARTS").unwrap_or_default();
    let steps: i64 = std::env::var("BENCH_ANALYSER_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    // `series` or `series:steps`.
    let axis: Vec<(i64, i64)> = std::env::var("BENCH_ANALYSER_SERIES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| {
            let (series, own_steps) = s.trim().split_once(':').unwrap_or((s.trim(), ""));
            Some((series.parse().ok()?, own_steps.parse().unwrap_or(steps)))
        })
        .collect();
    match parts.as_str() {
        "live-scale" => return live_scale::run(&server).await,
        "shards" => return shards::run(&server, steps).await,
        _ => {}
    }
    if parts == "series" {
        let mut runs = Vec::new();
        for &(series, steps) in &axis {
            runs.push(series_run(&server, series, steps, 10_000).await?);
            print_series_axis(&runs[runs.len() - 1..]);
        }
        print_series_axis(&runs);
        return drop_databases(&server).await;
    }
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

    // 4. The series axis.
    let mut runs = Vec::new();
    for &(series, steps) in &axis {
        runs.push(series_run(&server, series, steps, 10_000).await?);
    }
    print_series_axis(&runs);
    drop_databases(&server).await
}

async fn drop_databases(server: &str) -> anyhow::Result<()> {
    let admin = MySqlPool::connect(server).await?;
    for db in [GATHERER_DB, ANALYSER_DB] {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db}").as_str())
            .await?;
    }
    Ok(())
}
