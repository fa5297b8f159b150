//! The export as a consumer sees it: pages in id order, time filters, `/stat`, errors,
//! and the promise that following `next_iterator` never skips a row, even with several
//! writers committing at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gatherer::bucket::{Aggregator, Delta, Totals};
use gatherer::export::{ExportQuery, RawParams};
use gatherer::store::{self, Batch};
use protocol::{ExportPage, StatRow};
use serde_json::{json, Value};
use sqlx::MySqlPool;

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

const T0: i64 = 1_795_000_000; // 2026-11-18T11:06:40Z, a multiple of 2

fn delta(at_secs: i64, label: &str, entity_id: i64, sum: i64) -> Delta {
    Delta {
        bucket: Aggregator::new(2, 1).bucket_of(at_secs * 1000),
        label: Arc::from(label),
        entity_id,
        totals: Totals {
            sum,
            events: 1,
            min: sum,
            max: sum,
        },
    }
}

async fn page(app: &TestApp, query: &str) -> ExportPage {
    let response = app.get(&format!("/api/v1/export?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

/// Follows the export from `iterator` 0 with `extra` parameters; returns the ids seen.
async fn follow(app: &TestApp, extra: &str) -> Vec<u64> {
    let mut iterator = 0;
    let mut ids = Vec::new();
    loop {
        let page = page(app, &format!("iterator={iterator}&{extra}")).await;
        ids.extend(page.rows.iter().map(|r| r.ec_id));
        assert!(page.next_iterator >= iterator);
        iterator = page.next_iterator;
        if !page.has_more {
            return ids;
        }
    }
}

async fn seed(pool: &MySqlPool) {
    let deltas = (0..10)
        .map(|i| delta(T0 + 2 * i, "checkout", i, i + 1))
        .collect();
    store::insert_batch(pool, &Batch::new("seed-1".into(), deltas))
        .await
        .unwrap();
}

#[tokio::test]
async fn pages_follow_the_iterator_in_id_order() {
    let mut app = spawn_app().await;
    let pool = app.db.pool().await;
    seed(&pool).await;

    let first = page(&app, "limit=4").await;
    assert_eq!(first.rows.len(), 4);
    assert!(first.has_more);
    assert_eq!(first.next_iterator, first.rows[3].ec_id);
    let row = &first.rows[0];
    assert_eq!(
        (
            row.label.as_str(),
            row.entity_id,
            row.event_counter,
            row.events
        ),
        ("checkout", 0, 1, 1)
    );
    assert_eq!(row.event_date.timestamp(), T0);

    let all = follow(&app, "limit=3").await;
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0] < w[1]));

    // Caught up: an empty page keeps the iterator.
    let last = *all.last().unwrap();
    let empty = page(&app, &format!("iterator={last}")).await;
    assert_eq!(
        (empty.rows.len(), empty.next_iterator, empty.has_more),
        (0, last, false)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn time_filters_select_buckets_and_the_iterator_moves_past_skipped_rows() {
    let mut app = spawn_app().await;
    let pool = app.db.pool().await;
    seed(&pool).await;
    // Buckets T0 + 4 .. T0 + 10 (exclusive): entities 2, 3, 4. Both time forms work.
    let from = chrono::DateTime::from_timestamp(T0 + 4, 0)
        .unwrap()
        .to_rfc3339();
    let filtered = page(
        &app,
        &format!("from={}&to={}", from.replace('+', "%2B"), T0 + 10),
    )
    .await;
    let entities: Vec<i64> = filtered.rows.iter().map(|r| r.entity_id).collect();
    assert_eq!(entities, vec![2, 3, 4]);
    assert!(!filtered.has_more);
    // The iterator moved past the rows the filter skipped, to the last committed id.
    let everything = page(&app, "limit=100").await;
    assert_eq!(filtered.next_iterator, everything.next_iterator);

    let nothing = page(&app, &format!("from={}", T0 + 100)).await;
    assert!(nothing.rows.is_empty());
    assert_eq!(nothing.next_iterator, everything.next_iterator);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_parameters_get_400_naming_the_parameter() {
    let mut app = spawn_app().await;
    for (query, parameter) in [
        ("from=yesterday", "from"),
        ("to=2026-02-30T00:00:00Z", "to"),
        ("from=20&to=10", "from"),
        ("iterator=-1", "iterator"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
    ] {
        let response = app.get(&format!("/api/v1/export?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ok"], false);
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }
    let response = app
        .client
        .post(format!("{}/stat", app.address))
        .body(r#"{"from": "#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    app.shutdown().await;
}

#[tokio::test]
async fn stat_answers_in_the_seed_shape() {
    let mut app = spawn_app().await;
    let stat = |body: Value| {
        let request = app.client.post(format!("{}/stat", app.address)).json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(stat(json!({})).await, json!([]));
    let pool = app.db.pool().await;
    seed(&pool).await;
    let rows = stat(json!({"from": "2026-11-18 11:06:44", "to": "", "iterator": 0})).await;
    let rows: Vec<StatRow> = serde_json::from_value(rows.clone()).unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(
        (
            rows[0].event_label.as_str(),
            rows[0].entity_id,
            rows[0].event_counter
        ),
        ("checkout", 2, 3)
    );
    let raw = stat(json!({"iterator": rows[6].ec_id.to_string()})).await;
    assert_eq!(raw.as_array().unwrap().len(), 1);
    let keys: BTreeSet<&str> = raw[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "ec_id",
            "event_date",
            "entity_id",
            "event_label",
            "event_counter"
        ])
    );

    // At most 500 rows a reply.
    let many = (0..600).map(|i| delta(T0, "bulk", i, 1)).collect();
    store::insert_batch(&pool, &Batch::new("seed-2".into(), many))
        .await
        .unwrap();
    assert_eq!(
        stat(json!({"iterator": 0})).await.as_array().unwrap().len(),
        500
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_export_token_when_configured_is_required() {
    let mut app = spawn_app_with(|s| s.auth.export_token = "t0ken".to_owned().into()).await;
    assert_eq!(app.get("/api/v1/export").await.status(), 401);
    let response = app
        .client
        .get(format!("{}/api/v1/export", app.address))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .post(format!("{}/stat", app.address))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn export_pages_use_the_primary_key_whatever_the_depth() {
    let mut app = spawn_app().await;
    let pool = app.db.pool().await;
    seed(&pool).await;
    for raw in [
        RawParams::default(),
        RawParams {
            iterator: Some("5"),
            from: Some("0"),
            to: Some("2000000000"),
            limit: None,
        },
    ] {
        let query = ExportQuery::parse(raw, 500, 10_000).unwrap();
        let sql = format!("EXPLAIN {}", store::export_sql(&query));
        let mut explain = sqlx::query(&sql)
            .bind(query.iterator)
            .bind(1_000_000_000u64);
        if query.from.is_some() {
            explain = explain.bind("1970-01-01 00:00:00");
        }
        if query.to.is_some() {
            explain = explain.bind("2100-01-01 00:00:00");
        }
        let plan = explain.bind(query.limit).fetch_one(&pool).await.unwrap();
        use sqlx::Row;
        let key: Option<String> = plan.try_get("key").unwrap();
        let access: String = plan.try_get("type").unwrap();
        assert_eq!(key.as_deref(), Some("PRIMARY"));
        assert_eq!(access, "range");
    }
    app.shutdown().await;
}

/// Several writers commit batches as fast as they can while a consumer follows the
/// export. Without commit order = id order, a small batch can commit after a larger id
/// was already served, and the consumer would never see it.
#[tokio::test]
async fn export_never_skips_rows_committed_out_of_order() {
    let mut app = spawn_app().await;
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let url = app.db.url.clone();
            tokio::spawn(async move {
                let pool = MySqlPool::connect(&url).await.unwrap();
                for round in 0..40i64 {
                    // Alternate big and small batches so commits race.
                    let size = if (round + writer) % 2 == 0 { 400 } else { 3 };
                    let deltas = (0..size)
                        .map(|i| delta(T0, &format!("w{writer}"), round * 1000 + i, 1))
                        .collect();
                    store::insert_batch(&pool, &Batch::new(format!("w{writer}-{round}"), deltas))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();

    let mut seen = Vec::new();
    let mut iterator = 0;
    let all_written = loop {
        let done = writers.iter().all(|w| w.is_finished());
        let page = page(&app, &format!("iterator={iterator}&limit=10000")).await;
        seen.extend(page.rows.iter().map(|r| r.ec_id));
        iterator = page.next_iterator;
        if done && !page.has_more {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(all_written);
    for writer in writers {
        writer.await.unwrap();
    }
    let pool = app.db.pool().await;
    let in_table: Vec<u64> = sqlx::query_scalar("SELECT ec_id FROM events_count ORDER BY ec_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a row was served twice");
    let missing: Vec<u64> = in_table
        .iter()
        .filter(|id| !unique.contains(id))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{} rows skipped, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(in_table.len(), 4 * 20 * 403);
    app.shutdown().await;
}

#[tokio::test]
async fn prune_keeps_every_row_a_consumer_has_not_read() {
    let mut app = spawn_app().await;
    let pool = app.db.pool().await;
    seed(&pool).await; // ten rows, five days old
    let ids: Vec<u64> = sqlx::query_scalar("SELECT ec_id FROM events_count ORDER BY ec_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let recent = chrono::Utc::now().timestamp();
    store::insert_batch(
        &pool,
        &Batch::new("recent".into(), vec![delta(recent, "fresh", 1, 7)]),
    )
    .await
    .unwrap();
    let keep_after = ids[5];

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatherer"))
        .args([
            "prune",
            "--older-than",
            "1d",
            "--keep-after-iterator",
            &keep_after.to_string(),
            "--batch-rows",
            "2",
        ])
        .env_remove("DATABASE_URL")
        .env("GATHERER__DATABASE__URL", &app.db.url)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("deleted 6 rows"));

    // The old rows a consumer has read are gone; unread old rows and recent rows remain.
    let left = follow(&app, "limit=100").await;
    assert_eq!(left[..4], ids[6..]);
    assert_eq!(left.len(), 5);
    app.shutdown().await;
}
