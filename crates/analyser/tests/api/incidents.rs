//! The incidents of a judged step are written in bulk: the grown ones many to a statement,
//! the resolved ones as lists of ids; each row ends as writing it alone would have left it.

use analyser::judge::{Check, Incident, Metric, Severity, Signal};
use analyser::store::{self, Grown};
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use sqlx::MySqlConnection;

use crate::helpers::TestDb;

const LABEL: &str = "checkout";
const HOUR: i64 = 3_600;
const T0: i64 = 1_800_000_000;

fn incident(id: u64, end: i64, severity: Severity, deviation: f64) -> Incident {
    Incident {
        id,
        start: T0,
        end,
        signals: vec![Signal {
            metric: Metric::Count,
            method: Check::Auto,
            severity,
            observed: 90.0 + deviation,
            expected: 50.0,
            deviation,
        }],
    }
}

/// (INSERT, UPDATE) statements this connection has run.
async fn statements(conn: &mut MySqlConnection) -> (u64, u64) {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SHOW SESSION STATUS WHERE Variable_name IN ('Com_insert', 'Com_update')")
            .fetch_all(conn)
            .await
            .unwrap();
    let count = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(0, |(_, v)| v.parse().unwrap())
    };
    (count("Com_insert"), count("Com_update"))
}

type Row = (
    u64,
    i64,
    String,
    Option<u64>,
    String,
    Option<chrono::NaiveDateTime>,
);

async fn rows(conn: &mut MySqlConnection) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, entity_id, severity, taught_by, state, resolved_at FROM anomalies ORDER BY id",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_step_growing_and_resolving_hundreds_of_incidents_writes_every_row_in_a_few_statements() {
    let db = TestDb::new("pulse_test_a");
    let pool = service::db::connect(
        &SecretString::from(db.url.clone()),
        2,
        Duration::from_secs(30),
        sqlx::migrate!("../../migrations/analyser"),
    )
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let now = Utc::now();
    let mut opened = Vec::new();
    for entity in 0..300 {
        let first = incident(0, T0 + 60, Severity::Alarm, 5.0);
        let id = store::open_incident(&mut conn, "shop", LABEL, entity, &first, None, None, now)
            .await
            .unwrap();
        opened.push((entity, id));
    }
    let before = statements(&mut conn).await;

    // Every incident grows one step; the even ones as taught warnings. Id 0 is an incident
    // the store never recorded: nothing to write.
    let grown_incidents: Vec<(i64, Incident, Option<u64>)> = opened
        .iter()
        .map(|&(entity, id)| {
            let taught = (entity % 2 == 0).then_some(7);
            let severity = if taught.is_some() {
                Severity::Warning
            } else {
                Severity::Alarm
            };
            (entity, incident(id, T0 + 120, severity, 6.0), taught)
        })
        .chain([(999, incident(0, T0 + 120, Severity::Alarm, 6.0), None)])
        .collect();
    let grown: Vec<Grown> = grown_incidents
        .iter()
        .map(|(entity, incident, taught_by)| Grown {
            label: LABEL,
            entity_id: *entity,
            incident,
            taught_by: *taught_by,
        })
        .collect();
    store::grow_incidents(&mut conn, "shop", &grown, now)
        .await
        .unwrap();
    // The first 100 end at the start of this hour, the rest an hour later.
    let resolved: Vec<(i64, u64)> = opened
        .iter()
        .map(|&(entity, id)| (if entity < 100 { T0 } else { T0 + HOUR }, id))
        .collect();
    store::resolve_incidents(&mut conn, &resolved)
        .await
        .unwrap();
    let after = statements(&mut conn).await;

    // 300 grown (the one without an id left out): statements of 250, 32, 16 and 2 rows;
    // 300 resolved: 100 at one time (64, 32, 4), 200 at the other (125, 64, 8, 2, 1).
    assert_eq!(after.0 - before.0, 4, "INSERTs for 300 grown incidents");
    assert_eq!(after.1 - before.1, 8, "UPDATEs for 300 resolved incidents");
    let rows = rows(&mut conn).await;
    assert_eq!(rows.len(), 300, "no row for the incident without an id");
    for (id, entity, severity, taught_by, state, resolved_at) in rows {
        let taught = entity % 2 == 0;
        assert_eq!(
            (severity.as_str(), taught_by),
            if taught {
                ("warning", Some(7))
            } else {
                ("alarm", None)
            },
            "incident {id} of entity {entity}"
        );
        assert_eq!(state, "resolved", "incident {id}");
        let at = if entity < 100 { T0 } else { T0 + HOUR };
        assert_eq!(resolved_at, Some(store::date(at)), "incident {id}");
    }
    let end: Vec<chrono::NaiveDateTime> =
        sqlx::query_scalar("SELECT DISTINCT period_end FROM anomalies")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert_eq!(end, vec![store::date(T0 + 120)], "every period grew");
}
