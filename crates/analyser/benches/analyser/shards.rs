//! Two shards (`BENCH_ANALYSER_PARTS=shards`): the series axis' data at
//! `BENCH_ANALYSER_SHARD_SERIES` series (100 000 by default), pulled at once by two
//! analysers of one database, `[shard] index` 0 and 1 of `count` 2, in two tasks of this
//! process. Label sharding puts `visit` on one shard and `checkout` on the other, so each
//! judges half the series and both read every export row. Prints each shard's series,
//! rows read per second and time, and MariaDB's CPU over both.

use std::sync::Arc;
use std::time::Instant;

use analyser::configuration::{DatasetSettings, Method};
use sqlx::MySqlPool;

use super::{
    analyser_settings, budget, budgeted_pull, cpu_seconds, mysqld_pid, start_gatherer,
    write_series_history, GATHERER_DB,
};

pub async fn run(server: &str, steps: i64) -> anyhow::Result<()> {
    let series: i64 = std::env::var("BENCH_ANALYSER_SHARD_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let gatherer = start_gatherer(server, true).await?;
    let pool = MySqlPool::connect(&format!("{server}/{GATHERER_DB}")).await?;
    let now = chrono::Utc::now().timestamp();
    let first_step = (now - 3600).div_euclid(60) * 60 - steps * 60;
    write_series_history(&pool, series, first_step, steps).await?;
    pool.close().await;
    let dataset = DatasetSettings {
        time_step: std::time::Duration::from_secs(60),
        time_ago: Some(std::time::Duration::from_secs(1800)),
        method: Method::Auto,
        labels: vec!["visit".into(), "checkout".into()],
        ..DatasetSettings::all("series")
    };
    let mut settings = analyser_settings(server, &gatherer.url, dataset).await?;
    settings.shard.count = 2;
    let admin = MySqlPool::connect(server).await?;
    let mut states = Vec::new();
    for index in 0..2 {
        settings.shard.index = index;
        states.push(Arc::new(
            analyser::startup::build_state(&settings, true).await?,
        ));
    }
    let mysqld = mysqld_pid();
    let cpu_before = mysqld.map_or(0.0, cpu_seconds);
    let started = Instant::now();
    let pulls: Vec<_> = states
        .iter()
        .map(|state| {
            let (state, admin) = (state.clone(), admin.clone());
            // Pulls until one completes: a pull rolled back by a conflict with the other
            // shard's transaction (a deadlock) is retried, as the pull timer would.
            tokio::spawn(async move {
                let started = Instant::now();
                let mut conflicts = 0u32;
                loop {
                    match budgeted_pull(&state, &admin, budget()).await {
                        Ok(mut p) => {
                            p.seconds = started.elapsed().as_secs_f64();
                            return anyhow::Ok((p, conflicts));
                        }
                        Err(e) if conflicts < 100 => {
                            conflicts += 1;
                            eprintln!("shard {}: {e}; pulling again", state.shard.key());
                        }
                        Err(e) => return Err(e),
                    }
                }
            })
        })
        .collect();
    let mut pulled = Vec::new();
    for pull in pulls {
        pulled.push(pull.await??);
    }
    let wall = started.elapsed().as_secs_f64();
    let mysql_cpu = mysqld.map_or(0.0, cpu_seconds) - cpu_before;
    let _ = gatherer.stop.send(());

    println!();
    println!(
        "| two shards, at once ({series} series, {steps} steps of 1m, {} export rows) | labels | series judged | export rows read | time | rows read/s |",
        series * steps
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (state, (p, conflicts)) in states.iter().zip(&pulled) {
        let labels: Vec<&str> = ["visit", "checkout"]
            .into_iter()
            .filter(|l| state.shard.owns(l))
            .collect();
        let judged = state.engine.lock().await.series();
        println!(
            "| shard {} | {} | {judged} | {}{} | {:.1} s ({conflicts} pulls rolled back by a conflict, retried) | {:.0} |",
            state.shard.key(),
            labels.join(", "),
            p.read,
            if p.complete {
                String::new()
            } else {
                format!(" (partial: the budget; {} committed)", p.rows)
            },
            p.seconds,
            p.read as f64 / p.seconds
        );
    }
    println!(
        "| both | | | | {wall:.1} s wall | MariaDB CPU {:.1} s, {:.1} µs per row read |",
        mysql_cpu,
        mysql_cpu / pulled.iter().map(|(p, _)| p.read as f64).sum::<f64>() * 1e6
    );
    super::drop_databases(server).await
}
