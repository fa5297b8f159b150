//! Export benchmark, against the real MySQL (`BENCH_MYSQL_URL`, default local root):
//!
//! - rows/s exported through `GET /api/v1/export` with `limit=10000` (target ≥ 200 000);
//! - latency of a page deep in the table against the first page (target: ratio ≈ 1);
//! - the cost of *commit order = id order*: flush transactions that lock `export_seq`
//!   against plain INSERT transactions, both from 4 concurrent writers, in the same run.
//!
//! `cargo bench -p gatherer --bench export` (or `scripts/bench.sh`); `BENCH_EXPORT_ROWS`
//! sets the table size (default 3 000 000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatherer::bucket::{Aggregator, Delta, Totals};
use gatherer::configuration::Settings;
use gatherer::startup::Application;
use gatherer::store::{self, Batch};
use protocol::ExportPage;
use secrecy::SecretString;
use sqlx::{Executor, MySqlPool};

const DB: &str = "pulse_bench_export";

fn delta(i: i64) -> Delta {
    Delta {
        bucket: Aggregator::new(2, 1).bucket_of(1_795_000_000_000 + (i % 1_000) * 2_000),
        label: Arc::from(format!("label{}", i % 90 + 10).as_str()),
        entity_id: i % 1_000,
        totals: Totals {
            sum: i,
            events: 1,
            min: i,
            max: i,
        },
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server =
        std::env::var("BENCH_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let target_rows: u64 = std::env::var("BENCH_EXPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let url = format!("{server}/{DB}");
    let admin = MySqlPool::connect(&server).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {DB}").as_str())
        .await?;

    let mut settings = Settings::load(None, Some(0)).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.database.url = SecretString::from(url.clone());
    let pool = store::connect(&settings.database).await?;

    // Fill: one real flush, then doubling INSERT … SELECT.
    let started = Instant::now();
    store::insert_batch(
        &pool,
        &Batch::new("seed".into(), (0..10_000).map(delta).collect()),
    )
    .await?;
    let mut rows: u64 = 10_000;
    while rows < target_rows {
        let add = (target_rows - rows).min(rows);
        let sql = format!(
            "INSERT INTO events_count (event_date, event_label, entity_id, event_counter, events, min_value, max_value) \
             SELECT event_date, event_label, entity_id, event_counter, events, min_value, max_value \
             FROM events_count ORDER BY ec_id LIMIT {add}"
        );
        pool.execute(sql.as_str()).await?;
        rows += add;
    }
    println!(
        "filled {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}/api/v1/export", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let fetch = |iterator: u64| {
        let request = client.get(format!("{base}?iterator={iterator}&limit=10000"));
        async move {
            request
                .send()
                .await?
                .error_for_status()?
                .json::<ExportPage>()
                .await
        }
    };

    // Throughput: follow the export from the start to the end.
    let started = Instant::now();
    let (mut iterator, mut exported) = (0, 0u64);
    loop {
        let page = fetch(iterator).await?;
        exported += page.rows.len() as u64;
        iterator = page.next_iterator;
        if !page.has_more {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows_per_second = exported as f64 / elapsed;

    // Depth: the first page against a page 20 000 rows before the end.
    let (max_id,): (u64,) = sqlx::query_as("SELECT MAX(ec_id) FROM events_count")
        .fetch_one(&pool)
        .await?;
    let median = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let mut first = Vec::new();
    let mut deep = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        fetch(0).await?;
        first.push(t.elapsed());
        let t = Instant::now();
        fetch(max_id - 20_000).await?;
        deep.push(t.elapsed());
    }
    let (first, deep) = (median(first), median(deep));

    // Cost of commit order = id order: 4 writers, 50 batches of 500 rows each.
    let flush_rate = |ordered: bool| {
        let url = url.clone();
        async move {
            let started = Instant::now();
            let writers: Vec<_> = (0..4)
                .map(|w| {
                    let url = url.clone();
                    tokio::spawn(async move {
                        let pool = MySqlPool::connect(&url).await?;
                        for b in 0..50 {
                            let batch = Batch::new(
                                format!("{ordered}-{w}-{b}"),
                                (0..500).map(delta).collect(),
                            );
                            if ordered {
                                store::insert_batch(&pool, &batch).await?;
                            } else {
                                plain_insert(&pool, &batch).await?;
                            }
                        }
                        Ok::<_, anyhow::Error>(())
                    })
                })
                .collect();
            for writer in writers {
                writer.await??;
            }
            Ok::<_, anyhow::Error>(200.0 / started.elapsed().as_secs_f64())
        }
    };
    let plain = flush_rate(false).await?;
    let ordered = flush_rate(true).await?;

    println!();
    println!("| export benchmark ({rows} rows) | figure | target |");
    println!("| --- | --- | --- |");
    println!("| rows/s exported, limit=10000 | {rows_per_second:.0} | >= 200000 |");
    println!(
        "| first page (median of 15) | {:.1} ms | |",
        first.as_secs_f64() * 1e3
    );
    println!(
        "| page 20000 rows from the end | {:.1} ms | |",
        deep.as_secs_f64() * 1e3
    );
    println!(
        "| deep / first page latency | {:.2} | close to 1 |",
        deep.as_secs_f64() / first.as_secs_f64()
    );
    println!("| flushes/s, 4 writers, plain INSERT transactions (baseline) | {plain:.0} | |");
    println!("| flushes/s, 4 writers, export_seq lock + flush_batches | {ordered:.0} | |");
    println!(
        "| ordered / plain flush rate | {:.2} | the price of never skipping a row |",
        ordered / plain
    );

    let _ = stop.send(());
    running.await??;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {DB}").as_str())
        .await?;
    Ok(())
}

/// The baseline: the same rows in a transaction without the ordering lock or batch id.
async fn plain_insert(pool: &MySqlPool, batch: &Batch) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut insert = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "INSERT INTO events_count (event_date, event_label, entity_id, event_counter, events, min_value, max_value) ",
    );
    insert.push_values(&batch.deltas, |mut row, d| {
        let date = chrono::DateTime::from_timestamp(d.bucket.unix_seconds(), 0)
            .unwrap_or_default()
            .naive_utc();
        row.push_bind(date)
            .push_bind(&*d.label)
            .push_bind(d.entity_id)
            .push_bind(d.totals.sum)
            .push_bind(d.totals.events)
            .push_bind(d.totals.min)
            .push_bind(d.totals.max);
    });
    insert.build().execute(&mut *tx).await?;
    tx.commit().await
}
