//! Guarantee 1, exactly once: the table's sum equals the sum of accepted values, a retried
//! flush never counts twice, and one bad row never blocks or loses the others.

use std::sync::Arc;
use std::time::Duration;

use gatherer::bucket::{Aggregator, Delta, Totals};
use gatherer::store::{self, Batch, FlushOutcome};
use proptest::prelude::*;
use serde_json::json;
use sqlx::MySqlPool;

use crate::helpers::{poll_until, spawn_app, table_totals, test_settings, TestDb};

async fn migrated_pool(db: &TestDb) -> MySqlPool {
    store::connect(&test_settings(&db.url).database)
        .await
        .expect("connect and migrate")
}

fn delta(label: &str, entity_id: i64, sum: i64) -> Delta {
    Delta {
        bucket: Aggregator::new(2, 1).bucket_of(1_795_000_000_000),
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

#[tokio::test]
async fn a_retry_of_a_batch_that_had_committed_is_dropped() {
    let db = TestDb::new("pulse_test");
    let pool = migrated_pool(&db).await;
    let batch = Batch::new(
        "test-1".to_owned(),
        vec![delta("a", 1, 10), delta("b", 2, 5)],
    );
    let first = store::insert_batch(&pool, &batch).await.unwrap();
    assert_eq!(
        first,
        FlushOutcome::Committed {
            rows: 2,
            dead_letters: 0
        }
    );
    // The reply to the first COMMIT was "lost": the flusher retries the same batch.
    let retry = store::insert_batch(&pool, &batch).await.unwrap();
    assert_eq!(retry, FlushOutcome::AlreadyCommitted);
    assert_eq!(table_totals(&pool).await, (15, 2));
}

#[tokio::test]
async fn a_row_mysql_refuses_goes_to_dead_letters_and_the_rest_lands() {
    let db = TestDb::new("pulse_test");
    let pool = migrated_pool(&db).await;
    // Validation at ingest never lets such a label through; the store must cope anyway.
    let poisoned = "p".repeat(51);
    let batch = Batch::new(
        "test-poison".to_owned(),
        vec![delta("a", 1, 10), delta(&poisoned, 2, 99), delta("b", 3, 5)],
    );
    let outcome = store::insert_batch(&pool, &batch).await.unwrap();
    assert_eq!(
        outcome,
        FlushOutcome::Committed {
            rows: 2,
            dead_letters: 1
        }
    );
    assert_eq!(table_totals(&pool).await, (15, 2));
    let (label, error): (Vec<u8>, String) =
        sqlx::query_as("SELECT event_label, error FROM dead_letters")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(label, poisoned.as_bytes());
    assert!(error.contains("Data too long"), "{error}");
}

#[derive(Debug, Clone)]
enum Op {
    Record {
        label: u8,
        id: i64,
        value: i64,
        at_ms: i64,
    },
    Flush {
        now_ms: i64,
        retry: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0i64..4, any::<i64>(), 0i64..12_000)
            .prop_map(|(label, id, value, at_ms)| Op::Record { label, id, value, at_ms }),
        1 => (0i64..14_000, any::<bool>()).prop_map(|(now_ms, retry)| Op::Flush { now_ms, retry }),
    ]
}

/// For any interleaving of events, flushes and retried flushes, the table holds exactly
/// the values that were recorded (summed exactly, overflowing deltas included).
#[test]
fn table_sum_equals_recorded_sum_for_any_interleaving_of_events_and_flushes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = TestDb::new("pulse_test");
    let pool = runtime.block_on(migrated_pool(&db));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    let case = std::cell::Cell::new(0u32);
    runner
        .run(&proptest::collection::vec(op(), 1..60), |ops| {
            case.set(case.get() + 1);
            let case = case.get();
            runtime.block_on(async {
                sqlx::query("DELETE FROM events_count")
                    .execute(&pool)
                    .await
                    .unwrap();
                let aggregator = Aggregator::new(2, 4);
                let mut recorded = (0i128, 0u64);
                let mut flushes = 0;
                let mut flush = |deltas: Vec<Delta>, retry: bool| {
                    flushes += 1;
                    let batch = Batch::new(format!("case{case}-{flushes}"), deltas);
                    let pool = pool.clone();
                    async move {
                        store::insert_batch(&pool, &batch).await.unwrap();
                        if retry {
                            let again = store::insert_batch(&pool, &batch).await.unwrap();
                            assert_eq!(again, FlushOutcome::AlreadyCommitted);
                        }
                    }
                };
                for op in ops {
                    match op {
                        Op::Record {
                            label,
                            id,
                            value,
                            at_ms,
                        } => {
                            aggregator.record(&format!("label{label}"), id, value, at_ms);
                            recorded.0 += i128::from(value);
                            recorded.1 += 1;
                        }
                        Op::Flush { now_ms, retry } => {
                            flush(aggregator.drain_closed(now_ms), retry).await
                        }
                    }
                }
                flush(aggregator.drain_all(), false).await;
                assert_eq!(table_totals(&pool).await, recorded);
            });
            Ok(())
        })
        .unwrap();
}

/// Many clients at once, through HTTP: every acknowledged value is in the table once.
#[tokio::test]
async fn concurrent_clients_see_every_acknowledged_value_counted_once() {
    let mut app = spawn_app().await;
    let mut tasks = Vec::new();
    for client in 0..8i64 {
        let http = app.client.clone();
        let url = format!("{}/gather", app.address);
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = (0i128, 0u64);
            for round in 0..25i64 {
                let events: Vec<_> = (0..20i64)
                    .map(|i| json!({"label": format!("l{}", i % 3), "id": (client + i) % 5, "value": client * 1000 + round * 20 + i}))
                    .collect();
                let response = http.post(&url).json(&events).send().await.unwrap();
                assert_eq!(response.status(), 200);
                acknowledged.0 += events.iter().map(|e| i128::from(e["value"].as_i64().unwrap())).sum::<i128>();
                acknowledged.1 += 20;
            }
            acknowledged
        }));
    }
    let mut expected = (0i128, 0u64);
    for task in tasks {
        let (sum, count) = task.await.unwrap();
        expected.0 += sum;
        expected.1 += count;
    }
    let pool = app.db.pool().await;
    poll_until(
        Duration::from_secs(10),
        "every acknowledged event in the table",
        || async { (table_totals(&pool).await == expected).then_some(()) },
    )
    .await;
    app.shutdown().await;
    assert_eq!(table_totals(&pool).await, expected);
}
