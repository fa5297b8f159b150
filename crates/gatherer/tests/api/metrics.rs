//! `/metrics` speaks Prometheus, and its counters move when traffic flows.

use std::time::Duration;

use crate::helpers::{poll_until, spawn_app, table_totals};

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
async fn counters_move_when_events_flow_and_are_flushed_and_exported() {
    let mut app = spawn_app().await;
    let metrics = || async { app.get("/metrics").await.text().await.unwrap() };
    let before = metrics().await;
    let batch = r#"[{"label":"m","id":1,"value":5},{"label":"m","id":2,"value":1},{"label":"","id":1,"value":1}]"#;
    assert_eq!(app.post_gather(batch, None).await.status(), 200);
    assert_eq!(app.post_gather("{", None).await.status(), 400);
    // Counters are process-wide and other tests run alongside: wait for this test's own
    // rows, then compare.
    let pool = app.db.pool().await;
    poll_until(
        Duration::from_secs(10),
        "this test's rows in the table",
        || async { (table_totals(&pool).await == (6, 2)).then_some(()) },
    )
    .await;
    let after = metrics().await;
    assert!(
        after.contains("# TYPE gatherer_events_accepted_total counter"),
        "{after}"
    );
    let grew = |series: &str, by: f64| sample(&after, series) >= sample(&before, series) + by;
    assert!(grew("gatherer_events_accepted_total", 2.0));
    assert!(grew(
        "gatherer_events_rejected_total{reason=\"invalid\"}",
        1.0
    ));
    assert!(grew(
        "gatherer_events_rejected_total{reason=\"malformed\"}",
        1.0
    ));
    assert!(grew("gatherer_flush_seconds_count", 1.0));
    assert!(after.contains("gatherer_pending_rows"));

    assert!(app.get("/api/v1/export").await.status().is_success());
    let text = metrics().await;
    assert!(
        sample(&text, "gatherer_export_rows_total")
            >= sample(&after, "gatherer_export_rows_total") + 2.0,
        "{text}"
    );
    app.shutdown().await;
}
