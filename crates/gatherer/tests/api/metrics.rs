//! `/metrics` speaks Prometheus, and its counters move by exactly what traffic did. The
//! recorder is process-wide, so the test runs the real binary: its counters are this
//! test's alone, and every delta is compared exactly.

use std::time::Duration;

use crate::helpers::{poll_until, table_totals, TestDb};
use crate::process::start_with;

/// The value of one sample (`name` or `name{labels}`), 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_by_what_was_accepted_rejected_flushed_and_exported() {
    let db = TestDb::new("pulse_test");
    let (_child, base) = start_with(&db, &[]).await;
    let client = reqwest::Client::new();
    let metrics = || async {
        let response = client.get(format!("{base}/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    };
    let gather = |body: &'static str| {
        let request = client.post(format!("{base}/gather")).body(body);
        async move { request.send().await.unwrap().status() }
    };
    let before = metrics().await;
    let batch = r#"[{"label":"m","id":1,"value":5},{"label":"m","id":2,"value":1},{"label":"","id":1,"value":1}]"#;
    assert_eq!(gather(batch).await, 200);
    assert_eq!(gather("{").await, 400);
    let pool = db.pool().await;
    poll_until(
        Duration::from_secs(10),
        "the events in the table",
        || async { (table_totals(&pool).await == (6, 2)).then_some(()) },
    )
    .await;
    // The flush's counters move after its COMMIT: wait for them too.
    let after = poll_until(Duration::from_secs(10), "the flush counted", || async {
        let text = metrics().await;
        (sample(&text, "gatherer_flushed_rows_total") >= 2.0).then_some(text)
    })
    .await;
    assert!(
        after.contains("# TYPE gatherer_events_accepted_total counter"),
        "{after}"
    );
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(delta("gatherer_events_accepted_total"), 2.0, "{after}");
    let invalid = "gatherer_events_rejected_total{reason=\"invalid\"}";
    assert_eq!(delta(invalid), 1.0, "{after}");
    let malformed = "gatherer_events_rejected_total{reason=\"malformed\"}";
    assert_eq!(delta(malformed), 1.0, "{after}");
    assert_eq!(delta("gatherer_flushed_rows_total"), 2.0, "{after}");
    assert!(delta("gatherer_flush_seconds_count") >= 1.0, "{after}");
    assert!(after.contains("gatherer_pending_rows"));

    let export = client.get(format!("{base}/api/v1/export")).send().await;
    assert!(export.unwrap().status().is_success());
    let text = metrics().await;
    let exported =
        sample(&text, "gatherer_export_rows_total") - sample(&before, "gatherer_export_rows_total");
    assert_eq!(exported, 2.0, "{text}");
}
