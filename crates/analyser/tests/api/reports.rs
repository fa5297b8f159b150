//! Report history: each dataset's report stored every `report_every`, listed and read
//! back, old ones deleted after `report_retention`.

use std::time::Duration;

use analyser::configuration::Method;
use serde_json::Value;

use crate::helpers::{analyser_settings, poll_until, shop, Analyser, Gatherer, TestDb};
use crate::scenarios::flood;

#[tokio::test]
async fn reports_are_stored_on_schedule_listed_read_back_and_pruned_after_retention() {
    let gatherer = Gatherer::start().await;
    gatherer.post(&flood().1).await;
    gatherer.flushed().await;
    let db = TestDb::new("pulse_test_a");
    let mut settings =
        analyser_settings(&db, &gatherer.url, vec![shop(&["checkout"], Method::Auto)]);
    settings.reports.report_every = Duration::from_secs(1);
    let analyser = Analyser::start_with(db, settings).await;
    let pool = analyser.db.pool().await;
    // A report from long ago, past the 90 days of retention.
    let old: u64 = sqlx::query(
        "INSERT INTO reports (dataset, shard, computed_at, alarms, warnings, silenced, body) \
         VALUES ('shop', '0/1', NOW() - INTERVAL 91 DAY, 0, 0, 0, '{}')",
    )
    .execute(&pool)
    .await
    .unwrap()
    .last_insert_id();
    analyser.pull().await;

    // A report computed after the pull names the flood's alarm on entity 3.
    let listed = poll_until(
        Duration::from_secs(30),
        "a stored report with the flood",
        || async {
            let list: Value = analyser
                .get("/api/v1/reports?dataset=shop&limit=5")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let newest = list["data"][0].clone();
            (newest["report"]["Result"]["Alarms"][0]["Attribute"] == "3").then_some(list)
        },
    )
    .await;
    let newest = &listed["data"][0];
    assert_eq!(newest["dataset"], "shop");
    assert_eq!(newest["report"]["siteId"], "shop");
    assert_eq!(newest["report"]["TimeStep"], "1m");
    let id = newest["id"].as_u64().unwrap();
    let one: Value = analyser.get_json(&format!("/api/v1/reports/{id}")).await;
    assert_eq!(&one["data"], newest);

    // Every report_every: more than one, newest first.
    poll_until(Duration::from_secs(30), "a second report", || async {
        let list: Value = analyser
            .get("/api/v1/reports?dataset=shop")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (list["data"].as_array()?.len() >= 2).then_some(())
    })
    .await;
    let future = chrono::Utc::now().timestamp() + 3600;
    let none: Value = analyser
        .get_json(&format!("/api/v1/reports?since={future}"))
        .await;
    assert_eq!(none["data"], serde_json::json!([]));

    poll_until(
        Duration::from_secs(30),
        "the old report deleted",
        || async {
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports WHERE id = ?")
                .bind(old)
                .fetch_one(&pool)
                .await
                .ok()?;
            (left == 0).then_some(())
        },
    )
    .await;
    for (path, status) in [
        (format!("/api/v1/reports/{old}"), 404),
        ("/api/v1/reports/x".to_owned(), 400),
        ("/api/v1/reports?limit=0".to_owned(), 400),
        ("/api/v1/reports?since=yesterday".to_owned(), 400),
        ("/api/v1/reports?dataset=shopp".to_owned(), 404),
    ] {
        let response = analyser.get(&path).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
    }
}
