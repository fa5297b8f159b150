//! The store against a real MySQL database: each test migrates a fresh one (dropped when
//! the test ends) and checks what the functions return and what a later read sees.

use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use service::testing::TestDb;
use sqlx::MySqlPool;

use super::*;
use crate::clock::DatasetClock;
use crate::judge::{Check, Incident, Metric, SeriesKey, SeriesState, Severity, Signal};
use protocol::{IncidentState, Status};

async fn migrated() -> (TestDb, MySqlPool) {
    let db = TestDb::new("pulse_test_a");
    let pool = service::db::connect(
        &SecretString::from(db.url.clone()),
        2,
        Duration::from_secs(10),
        sqlx::migrate!("../../migrations/analyser"),
    )
    .await
    .expect("a migrated test database");
    (db, pool)
}

fn signal(metric: Metric, severity: Severity, deviation: f64) -> Signal {
    Signal {
        metric,
        method: Check::ThreeSigma,
        severity,
        observed: 100.0 + deviation,
        expected: 100.0,
        deviation,
    }
}

fn incident(id: u64, start: i64, end: i64, signals: Vec<Signal>) -> Incident {
    Incident {
        id,
        start,
        end,
        signals,
    }
}

const T0: i64 = 1_700_000_400;

async fn open(pool: &MySqlPool, dataset: &str, label: &str, severity: Severity) -> u64 {
    let opened = incident(0, T0, T0 + 60, vec![signal(Metric::Count, severity, 5.0)]);
    let mut conn = pool.acquire().await.unwrap();
    open_incident(
        &mut conn,
        dataset,
        label,
        7,
        &opened,
        None,
        None,
        Utc::now(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_claimed_cursor_starts_at_zero_and_resumes_where_it_was_saved() {
    let (_db, pool) = migrated().await;
    assert_eq!(claim_cursor(&pool, "0/1").await.unwrap(), cursor(0, 0));
    assert_eq!(load_generation(&pool, "1/2").await.unwrap(), None);

    let mut conn = pool.acquire().await.unwrap();
    save_cursor(&mut conn, "0/1", 42, 10).await.unwrap();
    save_cursor(&mut conn, "0/1", 57, 5).await.unwrap();
    drop(conn);

    assert_eq!(claim_cursor(&pool, "0/1").await.unwrap(), cursor(57, 0));
    let rows_seen = sqlx::query_scalar!("SELECT rows_seen FROM cursors WHERE shard = '0/1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows_seen, 15, "rows seen add up over saves");
}

#[tokio::test]
async fn advancing_from_a_stale_generation_returns_false_and_moves_nothing() {
    let (_db, pool) = migrated().await;
    claim_cursor(&pool, "0/1").await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert!(advance_generation(&mut conn, "0/1", 0).await.unwrap());
    assert_eq!(load_generation(&pool, "0/1").await.unwrap(), Some(1));

    assert!(
        !advance_generation(&mut conn, "0/1", 0).await.unwrap(),
        "generation 0 is stale once another commit moved it to 1"
    );
    assert_eq!(load_generation(&pool, "0/1").await.unwrap(), Some(1));
    assert!(advance_generation(&mut conn, "0/1", 1).await.unwrap());
    assert_eq!(claim_cursor(&pool, "0/1").await.unwrap(), cursor(0, 2));
}

#[tokio::test]
async fn a_saved_clock_reads_back_and_a_missing_one_is_empty() {
    let (_db, pool) = migrated().await;
    assert_eq!(
        load_clock(&pool, "shop", "0/1").await.unwrap(),
        DatasetClock::default()
    );
    let clock = DatasetClock {
        latest_event: Some(T0 + 59),
        last_row_at_ms: Some(1_700_000_123_456),
        judged_until: Some(T0),
        snapshot_until: Some(T0 - 3_600),
    };
    let mut conn = pool.acquire().await.unwrap();
    save_clock(&mut conn, "shop", "0/1", &clock).await.unwrap();
    assert_eq!(load_clock(&pool, "shop", "0/1").await.unwrap(), clock);
    assert_eq!(
        load_clock(&pool, "shop", "1/2").await.unwrap(),
        DatasetClock::default(),
        "a clock is per shard"
    );

    let later = DatasetClock {
        judged_until: Some(T0 + 60),
        snapshot_until: None,
        ..clock
    };
    save_clock(&mut conn, "shop", "0/1", &later).await.unwrap();
    assert_eq!(load_clock(&pool, "shop", "0/1").await.unwrap(), later);
}

fn cursor(iterator: u64, generation: u64) -> CursorRow {
    CursorRow {
        iterator,
        generation,
    }
}

fn state(label: &str, entity_id: i64, state: Vec<u8>) -> SeriesState {
    SeriesState {
        series: SeriesKey {
            label: label.into(),
            entity_id,
        },
        state,
    }
}

fn sorted(rows: Vec<StoredSnapshot>) -> Vec<(String, i64, Vec<u8>)> {
    let mut rows: Vec<_> = rows
        .into_iter()
        .map(|r| (r.label().into_owned(), r.entity_id, r.state))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn snapshots_round_trip_are_replaced_and_deleted_per_series() {
    let (_db, pool) = migrated().await;
    let mut conn = pool.acquire().await.unwrap();
    let states = vec![
        state("visit", 1, vec![1, 2, 3]),
        state("visit", 2, vec![4]),
        state("café", 1, vec![0; 5_000]),
    ];
    save_snapshots(&mut conn, "shop", "0/1", &states)
        .await
        .unwrap();
    save_snapshots(&mut conn, "shop", "1/2", &states[..1])
        .await
        .unwrap();
    assert_eq!(
        sorted(load_snapshots(&pool, "shop", "0/1").await.unwrap()),
        vec![
            ("café".to_owned(), 1, vec![0; 5_000]),
            ("visit".to_owned(), 1, vec![1, 2, 3]),
            ("visit".to_owned(), 2, vec![4]),
        ]
    );

    save_snapshots(&mut conn, "shop", "0/1", &[state("visit", 2, vec![9, 9])])
        .await
        .unwrap();
    delete_snapshots(
        &mut conn,
        "shop",
        "0/1",
        &[state("café", 1, Vec::new()).series],
    )
    .await
    .unwrap();
    assert_eq!(
        sorted(load_snapshots(&pool, "shop", "0/1").await.unwrap()),
        vec![
            ("visit".to_owned(), 1, vec![1, 2, 3]),
            ("visit".to_owned(), 2, vec![9, 9]),
        ]
    );

    clear_snapshots(&mut conn, "shop", "0/1").await.unwrap();
    assert!(load_snapshots(&pool, "shop", "0/1")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        load_snapshots(&pool, "shop", "1/2").await.unwrap().len(),
        1,
        "another shard's snapshots stay"
    );
}

#[tokio::test]
async fn an_opened_incident_grows_and_resolves_as_one_anomaly() {
    let (_db, pool) = migrated().await;
    let id = open(&pool, "shop", "visit", Severity::Warning).await;

    let opened = anomaly_by_id(&pool, id).await.unwrap().unwrap();
    assert_eq!(
        (
            opened.dataset.as_str(),
            opened.label.as_str(),
            opened.entity_id
        ),
        ("shop", "visit", 7)
    );
    assert_eq!(
        (
            opened.severity.as_str(),
            opened.state.as_str(),
            opened.status.as_str()
        ),
        ("warning", "firing", "open")
    );
    assert_eq!(opened.period_start.timestamp(), T0);
    assert_eq!(opened.period_end.timestamp(), T0 + 60);
    assert_eq!(opened.signals.len(), 1);
    assert_eq!(
        firing_incident_id(&pool, "shop", "visit", 7, T0)
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        firing_incidents(&pool, "shop").await.unwrap(),
        vec![FiringIncident {
            id,
            label: "visit".to_owned()
        }]
    );

    let grown = incident(
        id,
        T0,
        T0 + 180,
        vec![
            signal(Metric::Count, Severity::Alarm, 9.0),
            signal(Metric::Avg, Severity::Warning, 3.0),
        ],
    );
    let mut conn = pool.acquire().await.unwrap();
    let update = Grown {
        label: "visit",
        entity_id: 7,
        incident: &grown,
        taught_by: None,
    };
    grow_incidents(&mut conn, "shop", &[update], Utc::now())
        .await
        .unwrap();
    let updated = anomaly_by_id(&pool, id).await.unwrap().unwrap();
    assert_eq!(updated.period_end.timestamp(), T0 + 180);
    assert_eq!(
        (updated.metric.as_str(), updated.severity.as_str()),
        ("count", "alarm")
    );
    assert_eq!(updated.deviation, 9.0);
    assert_eq!(updated.signals.len(), 2, "{:?}", updated.signals);
    assert_eq!(updated.signals[0].metric, Metric::Count, "strongest first");

    resolve_incidents(&mut conn, &[(T0 + 240, id)])
        .await
        .unwrap();
    let resolved = anomaly_by_id(&pool, id).await.unwrap().unwrap();
    assert_eq!(resolved.state, IncidentState::Resolved);
    assert_eq!(resolved.resolved_at.map(|t| t.timestamp()), Some(T0 + 240));
    assert!(firing_incidents(&pool, "shop").await.unwrap().is_empty());
    assert_eq!(
        firing_incident_id(&pool, "shop", "visit", 7, T0)
            .await
            .unwrap(),
        None
    );

    resolve_incidents(&mut conn, &[(T0 + 600, id)])
        .await
        .unwrap();
    let still = anomaly_by_id(&pool, id).await.unwrap().unwrap();
    assert_eq!(
        still.resolved_at.map(|t| t.timestamp()),
        Some(T0 + 240),
        "a resolved incident keeps its first resolution"
    );
}

#[tokio::test]
async fn a_stored_word_outside_its_vocabulary_is_an_error_never_a_row_left_out() {
    let (_db, pool) = migrated().await;
    let id = open(&pool, "shop", "visit", Severity::Alarm).await;
    sqlx::query("UPDATE anomalies SET severity = 'loud' WHERE id = ?")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let error = anomaly_by_id(&pool, id).await.unwrap_err();
    assert!(error.to_string().contains("severity"), "{error}");
    let all = AnomalyFilter {
        limit: 10,
        ..AnomalyFilter::default()
    };
    assert!(
        anomalies(&pool, &all).await.is_err(),
        "the list fails rather than leave the row out"
    );
}

#[tokio::test]
async fn a_verdict_is_recorded_and_a_missing_anomaly_is_reported() {
    let (_db, pool) = migrated().await;
    let id = open(&pool, "shop", "visit", Severity::Alarm).await;
    let mut conn = pool.acquire().await.unwrap();
    let decided = decide(
        &mut conn,
        id,
        Status::Dismissed,
        Some(protocol::VerdictReason::Expected),
        "ana",
        Some("nightly batch"),
    )
    .await
    .unwrap();
    assert!(decided);
    let anomaly = anomaly_by_id(&pool, id).await.unwrap().unwrap();
    assert_eq!(anomaly.status, Status::Dismissed);
    assert_eq!(anomaly.decided_by.as_deref(), Some("ana"));
    assert_eq!(anomaly.comment.as_deref(), Some("nightly batch"));
    assert_eq!(anomaly.reason, Some(protocol::VerdictReason::Expected));
    assert!(anomaly.decided_at.is_some());

    assert!(
        !decide(&mut conn, id + 1, Status::Approved, None, "ana", None)
            .await
            .unwrap()
    );
    assert!(anomaly_by_id(&pool, id + 1).await.unwrap().is_none());
}

#[tokio::test]
async fn an_alarm_is_notified_once_and_once_more_when_it_resolves() {
    let (_db, pool) = migrated().await;
    let alarm = open(&pool, "shop", "visit", Severity::Alarm).await;
    open(&pool, "shop", "cart", Severity::Warning).await;
    let ids = |anomalies: Vec<protocol::Anomaly>| -> Vec<u64> {
        anomalies.into_iter().map(|a| a.id).collect()
    };
    assert_eq!(ids(alarms_to_notify(&pool, 10).await.unwrap()), vec![alarm]);

    mark_notified(&pool, alarm, false).await.unwrap();
    assert!(alarms_to_notify(&pool, 10).await.unwrap().is_empty());

    let mut conn = pool.acquire().await.unwrap();
    resolve_incidents(&mut conn, &[(T0 + 120, alarm)])
        .await
        .unwrap();
    assert_eq!(ids(alarms_to_notify(&pool, 10).await.unwrap()), vec![alarm]);

    mark_notified(&pool, alarm, true).await.unwrap();
    assert!(alarms_to_notify(&pool, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn anomalies_match_every_filter_given_newest_first() {
    let (_db, pool) = migrated().await;
    let visit = open(&pool, "shop", "visit", Severity::Alarm).await;
    let cart = open(&pool, "shop", "cart", Severity::Warning).await;
    let other = open(&pool, "blog", "visit", Severity::Alarm).await;
    let ids = |anomalies: Vec<protocol::Anomaly>| -> Vec<u64> {
        anomalies.into_iter().map(|a| a.id).collect()
    };
    let all = AnomalyFilter {
        limit: 10,
        ..AnomalyFilter::default()
    };
    assert_eq!(
        ids(anomalies(&pool, &all).await.unwrap()),
        vec![other, cart, visit]
    );
    let shop = AnomalyFilter {
        dataset: Some("shop".to_owned()),
        ..all.clone()
    };
    assert_eq!(
        ids(anomalies(&pool, &shop).await.unwrap()),
        vec![cart, visit]
    );
    let alarms = AnomalyFilter {
        severity: Some(Severity::Alarm),
        label: Some("visit".to_owned()),
        ..shop.clone()
    };
    assert_eq!(ids(anomalies(&pool, &alarms).await.unwrap()), vec![visit]);
    let one = AnomalyFilter { limit: 1, ..all };
    assert_eq!(ids(anomalies(&pool, &one).await.unwrap()), vec![other]);
}
