//! A pull killed with SIGKILL in the middle resumes from its cursor: the anomalies at the
//! end are exactly those of a run that was never interrupted.

use std::time::Duration;

use analyser::configuration::Method;
use sqlx::MySqlPool;

use crate::helpers::{poll_until, shop, Analyser, Gatherer, TestDb};
use crate::scenarios::flood;

type Found = (
    Vec<u8>,
    i64,
    String,
    String,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    f64,
);

async fn anomalies(pool: &MySqlPool) -> Vec<Found> {
    sqlx::query_as(
        "SELECT event_label, entity_id, metric, severity, period_start, period_end, observed FROM anomalies \
         ORDER BY period_start, event_label, entity_id, metric",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn pull_command(config: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_analyser"));
    command
        .arg("--config")
        .arg(config)
        .arg("pull")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn a_pull_killed_mid_way_resumes_without_losing_or_repeating_an_anomaly() {
    let gatherer = Gatherer::start().await;
    gatherer.post(&flood().1).await;
    gatherer.flushed().await;

    // The reference: one uninterrupted pull. `last_point` keeps its whole state in the
    // window, so both runs must agree to the last figure.
    let reference =
        Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::LastPoint)]).await;
    reference.pull().await;
    let expected = anomalies(&reference.db.pool().await).await;
    assert!(!expected.is_empty());

    let db = TestDb::new("pulse_test_a");
    let dir = std::env::temp_dir().join(&db.name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("analyser.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[gatherer]\nurl = \"{}\"\npage_size = 20\n\
             [[datasets]]\nname = \"shop\"\nlabels = [\"checkout\"]\ntime_step = \"1m\"\ntime_ago = \"30m\"\nmethod = \"last_point\"\n",
            db.url, gatherer.url
        ),
    )
    .unwrap();

    let mut first = pull_command(&config).spawn().unwrap();
    // Kill it once some pages have committed, long before the last one.
    poll_until(
        Duration::from_secs(60),
        "the first pages to commit",
        || async {
            let pool = MySqlPool::connect(&db.url).await.ok()?;
            let cursor: Option<u64> = sqlx::query_scalar("SELECT iterator FROM cursors")
                .fetch_optional(&pool)
                .await
                .ok()?;
            cursor.filter(|c| *c > 0).map(|_| ())
        },
    )
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let pool = db.pool().await;
    let (cursor, total): (u64, u64) = (
        sqlx::query_scalar("SELECT iterator FROM cursors")
            .fetch_one(&pool)
            .await
            .unwrap(),
        reference.state("").await["meta"]["iterator"]
            .as_u64()
            .unwrap(),
    );
    assert!(
        cursor < total,
        "the pull finished before it was killed ({cursor} of {total})"
    );

    let status = pull_command(&config).status().await.unwrap();
    assert!(status.success());
    assert_eq!(anomalies(&pool).await, expected);
    std::fs::remove_dir_all(dir).unwrap();
}
