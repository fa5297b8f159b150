//! A pull stopped in the middle, the way SIGKILL stops it, resumes from its cursor: the
//! anomalies at the end are exactly those of a run that was never interrupted. Where it
//! stops is chosen, not raced: a debug build aborts after the page that
//! `PULSE_TEST_ABORT_AFTER_PAGE` names.

use std::os::unix::process::ExitStatusExt;

use analyser::configuration::Method;
use analyser::pull::ABORT_AFTER_PAGE;
use sqlx::MySqlPool;

use crate::helpers::{analyser_settings, shop, Analyser, Gatherer, TestDb};
use crate::scenarios::{flood, ANOMALY_AT};

/// A stored detector state that cannot be decoded (an older analyser's format, or damage)
/// is as good as no snapshot: the new process rebuilds its model from the stored totals,
/// goes on judging (the flood that comes next is an alarm) and its next snapshot replaces
/// the unreadable one whole.
#[tokio::test]
async fn a_snapshot_that_cannot_be_read_back_is_rebuilt_from_the_stored_totals() {
    let (start, events) = flood();
    let ts = |e: &serde_json::Value| e["ts"].as_i64().unwrap();
    let split = start + (ANOMALY_AT - 10) * 60;
    let (before, after): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| ts(e) < split);
    let gatherer = Gatherer::start().await;
    gatherer.post(&before).await;
    gatherer.flushed().await;
    let db = TestDb::new("pulse_test_a");
    let settings = analyser_settings(&db, &gatherer.url, vec![shop(&["checkout"], Method::Auto)]);
    let mut analyser = Analyser::start_with(db, settings.clone()).await;
    assert_eq!(analyser.pull().await["ok"], true);
    let pool = analyser.db.pool().await;
    let unreadable = || async {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM series_snapshots WHERE state = x'ff'")
                .fetch_one(&pool)
                .await
                .unwrap();
        n
    };
    let damaged = sqlx::query("UPDATE series_snapshots SET state = x'ff'")
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert!(damaged > 0, "the pull must have written a snapshot");

    // A new process rebuilds its model from the store at its first pull.
    analyser.restart(settings).await;
    gatherer.post(&after).await;
    gatherer.flushed().await;
    assert_eq!(analyser.pull().await["ok"], true);
    let alarms: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT entity_id, CAST(UNIX_TIMESTAMP(period_start) AS SIGNED) FROM anomalies \
         WHERE severity = 'alarm'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        alarms.contains(&(3, start + ANOMALY_AT * 60)),
        "the flood after the rebuild: {alarms:?}"
    );
    assert_eq!(
        unreadable().await,
        0,
        "the next snapshot replaces the old one"
    );
}

/// An anomaly with its figures (observed, expected, deviation), compared to the bit: a
/// resumed detector must be exactly the one that was.
type Found = (
    Vec<u8>,
    i64,
    String,
    String,
    chrono::NaiveDateTime,
    chrono::NaiveDateTime,
    f64,
    f64,
    f64,
);

async fn anomalies(pool: &MySqlPool) -> Vec<Found> {
    sqlx::query_as(
        "SELECT event_label, entity_id, metric, severity, period_start, period_end, observed, expected, \
         deviation FROM anomalies ORDER BY period_start, event_label, entity_id, metric",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// SIGABRT, what `std::process::abort` raises.
const SIGABRT: i32 = 6;

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
    killed_and_resumed_equals_uninterrupted(Method::LastPoint, "last_point").await;
}

/// `auto` keeps its state in its detectors: the resumed run must restore them from the
/// snapshot and replay the steps since, to the last bit.
#[tokio::test]
async fn a_pull_killed_mid_way_resumes_auto_detectors_exactly() {
    killed_and_resumed_equals_uninterrupted(Method::Auto, "auto").await;
}

/// The page after which the pull of the last part stops. That part is 80 steps of 6
/// series, a row each: 24 pages of 20 rows, committed every 6 pages (once more than 3 steps
/// of every series and 100 are held) and judged at the end. After page 9, pages 1 to 6 are
/// committed, 7 to 9 read and lost, and nothing of the part is judged.
const STOP_AFTER_PAGE: u64 = 9;

async fn killed_and_resumed_equals_uninterrupted(method: Method, method_name: &str) {
    // The traffic in three parts by time: the resumed run pulls the first fully (a
    // snapshot is taken), then the second (judged, but less than a window: no snapshot),
    // then the third, stopped mid-way. The resume must restore the snapshot and replay.
    let (start, events) = flood();
    let ts = |e: &serde_json::Value| e["ts"].as_i64().unwrap();
    let first_end = start + (ANOMALY_AT - 60) * 60;
    let second_end = first_end + 5 * 60;
    let parts: Vec<Vec<serde_json::Value>> = vec![
        events
            .iter()
            .filter(|e| ts(e) < first_end)
            .cloned()
            .collect(),
        events
            .iter()
            .filter(|e| (first_end..second_end).contains(&ts(e)))
            .cloned()
            .collect(),
        events
            .iter()
            .filter(|e| ts(e) >= second_end)
            .cloned()
            .collect(),
    ];
    let gatherer = Gatherer::start().await;

    let db = TestDb::new("pulse_test_a");
    let dir = std::env::temp_dir().join(&db.name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("analyser.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[gatherer]\nurl = \"{}\"\npage_size = 20\n\
             [[datasets]]\nname = \"shop\"\nlabels = [\"checkout\"]\ntime_step = \"1m\"\ntime_ago = \"30m\"\nmethod = \"{method_name}\"\n",
            db.url, gatherer.url
        ),
    )
    .unwrap();
    for part in &parts[..2] {
        gatherer.post(part).await;
        gatherer.flushed().await;
        assert!(pull_command(&config).status().await.unwrap().success());
    }
    let pool = db.pool().await;
    let (judged, snapshot): (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>) =
        sqlx::query_as("SELECT judged_until, snapshot_until FROM dataset_clocks")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        snapshot.is_some() && snapshot < judged,
        "the resume must replay steps since a snapshot: {snapshot:?} {judged:?}"
    );

    gatherer.post(&parts[2]).await;
    gatherer.flushed().await;
    let before: u64 = sqlx::query_scalar("SELECT iterator FROM cursors")
        .fetch_one(&pool)
        .await
        .unwrap();
    let stopped = pull_command(&config)
        .env(ABORT_AFTER_PAGE, STOP_AFTER_PAGE.to_string())
        .status()
        .await
        .unwrap();
    assert_eq!(stopped.signal(), Some(SIGABRT), "{stopped:?}");

    // The reference: one uninterrupted pull of everything; both runs must agree to the
    // last figure.
    let reference = Analyser::start(&gatherer.url, vec![shop(&["checkout"], method)]).await;
    reference.pull().await;
    let expected = anomalies(&reference.db.pool().await).await;
    assert!(expected.iter().any(|a| a.3 == "alarm"), "{expected:?}");
    let cursor: u64 = sqlx::query_scalar("SELECT iterator FROM cursors")
        .fetch_one(&pool)
        .await
        .unwrap();
    let total = reference.state("").await["meta"]["iterator"]
        .as_u64()
        .unwrap();
    assert!(
        before < cursor && cursor < total,
        "the stopped pull must have committed part of the last part: {before} < {cursor} < {total}"
    );

    assert!(pull_command(&config).status().await.unwrap().success());
    assert_eq!(anomalies(&pool).await, expected);
    std::fs::remove_dir_all(dir).unwrap();
}
