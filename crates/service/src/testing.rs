//! The API tests' harness: a fresh MySQL database per test (dropped afterwards, whatever
//! state its sessions were left in), and polling for a condition with a deadline instead of
//! sleeping for a fixed time.
//!
//! Test databases are named `<prefix>_<run>_<created>_<random>`: `run` is the test run
//! (`PULSE_TEST_RUN`, which `scripts/test.sh` sets, so that it can check that its run left
//! none behind), `created` the unix second of creation. The first database a test process
//! asks for also sweeps away the `pulse_test…` databases older than an hour that a killed
//! run left; younger ones may belong to a run still going on this server.

// The harness of the tests: a failed setup is a failed test, with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, MySqlPool};

/// Every test database's name starts with this.
pub const PREFIX: &str = "pulse_test";

/// Test databases older than this are a killed run's leftovers.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The server tests create their databases on (`TEST_MYSQL_URL`, default local root).
pub fn server_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}

/// The three nodes of a Galera cluster the cluster tests run on (`PULSE_GALERA_URLS`,
/// space-separated server URLs, as `scripts/galera.sh start` prints them), or `None`:
/// those tests then say on stderr, past the harness's capture, that they did not run.
pub fn galera_urls(test: &str) -> Option<Vec<String>> {
    let urls: Vec<String> = std::env::var("PULSE_GALERA_URLS")
        .unwrap_or_default()
        .split_whitespace()
        .map(|url| url.trim_end_matches('/').to_owned())
        .collect();
    if urls.len() == 3 {
        Some(urls)
    } else {
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN: {test} needs a three-node Galera cluster: set PULSE_GALERA_URLS \
             (scripts/galera.sh start prints it; scripts/test.sh does this when galera-4 is installed)"
        );
        None
    }
}

/// This test run's id: `PULSE_TEST_RUN` when it is 1 to 16 lowercase letters and digits,
/// else one made up for this process.
pub fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| match std::env::var("PULSE_TEST_RUN") {
        Ok(run) if is_run_id(&run) => run,
        _ => format!("{:08x}", random() as u32),
    })
}

fn is_run_id(text: &str) -> bool {
    (1..=16).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    RandomState::new().hash_one((SystemTime::now(), n, std::process::id()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A test database's name: `<prefix>_<run>_<created>_<random>`.
pub fn database_name(prefix: &str, run: &str, created: u64, random: u32) -> String {
    format!("{prefix}_{run}_{created}_{random:08x}")
}

/// The run and creation second of a database named by [`database_name`]; `None` for any
/// other name (an older harness's, or not a test database at all).
pub fn parse_database_name(name: &str) -> Option<(&str, u64)> {
    if !name.starts_with(PREFIX) {
        return None;
    }
    let mut parts = name.rsplitn(4, '_');
    let random = parts.next()?;
    let created = parts.next()?;
    let run = parts.next()?;
    parts.next()?;
    let valid = random.len() == 8
        && random.bytes().all(|b| b.is_ascii_hexdigit())
        && created.len() == 10
        && is_run_id(run);
    if !valid {
        return None;
    }
    Some((run, created.parse().ok()?))
}

/// A database name for one test; dropped when this value is.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// The server it is on.
    pub server: String,
}

impl TestDb {
    pub fn new(prefix: &str) -> Self {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(|| {
            if let Err(error) = on_own_runtime(sweep_stale_databases(unix_now())) {
                eprintln!("could not sweep stale test databases: {error}");
            }
        });
        Self::on(&server_url(), prefix)
    }

    /// A database on another server (a cluster node); stale databases are swept from
    /// the tests' own server only.
    pub fn on(server: &str, prefix: &str) -> Self {
        let name = database_name(prefix, run_id(), unix_now(), random() as u32);
        let url = format!("{server}/{name}");
        TestDb {
            name,
            url,
            server: server.to_owned(),
        }
    }

    pub async fn pool(&self) -> MySqlPool {
        MySqlPool::connect(&self.url)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    /// Drops the database before returning, so that a finished test has left nothing. A
    /// failure is retried, then reported on stderr (a drop cannot fail the test), and the
    /// next run's sweep takes the database once it is an hour old.
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = self.server.clone();
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 * attempt));
            }
            match on_own_runtime(drop_database(server.clone(), name.clone())) {
                Ok(()) => return,
                Err(error) => last = Some(error),
            }
        }
        if let Some(error) = last {
            eprintln!("could not drop test database {name}: {error}");
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `task` to completion on a runtime of its own, on a thread of its own: `Drop` and
/// `TestDb::new` run outside async context or inside a test's runtime, where blocking on
/// that runtime would deadlock.
fn on_own_runtime<T: Send + 'static>(
    task: impl Future<Output = Result<T, BoxError>> + Send + 'static,
) -> Result<T, BoxError> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(task)
    })
    .join()
    .map_err(|_| "the database task panicked")?
}

async fn connect_to_server() -> Result<MySqlConnection, BoxError> {
    connect_to(&server_url()).await
}

async fn connect_to(server: &str) -> Result<MySqlConnection, BoxError> {
    let options = MySqlConnectOptions::from_str(server)?;
    Ok(tokio::time::timeout(Duration::from_secs(20), options.connect()).await??)
}

/// Drops one database. Sessions still using it (a pool whose runtime ended, a transaction
/// a dropped future left open) are killed first, so that the drop never waits on their
/// metadata locks.
async fn drop_database(server: String, name: String) -> Result<(), BoxError> {
    let mut conn = connect_to(&server).await?;
    let result = drop_on(&mut conn, &name).await;
    let _ = conn.close().await;
    result
}

async fn drop_on(conn: &mut MySqlConnection, name: &str) -> Result<(), BoxError> {
    // CAST: the column is BIGINT on MariaDB and BIGINT UNSIGNED on MySQL; a type that
    // fits only one of them made every drop with a live session fail.
    let sessions: Vec<i64> = sqlx::query_scalar!(
        r#"SELECT CAST(id AS SIGNED) AS "id!" FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()"#,
        name,
    )
    .fetch_all(&mut *conn)
    .await?;
    for id in sessions {
        let _ = sqlx::query(&format!("KILL {id}")).execute(&mut *conn).await;
    }
    sqlx::query!("SET SESSION lock_wait_timeout = 10")
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Drops one test database, killing its sessions first.
pub async fn drop_test_database(name: &str) -> Result<(), BoxError> {
    drop_database(server_url(), name.to_owned()).await
}

/// Whether a database of that name is on the server.
pub async fn database_exists(name: &str) -> Result<bool, BoxError> {
    let mut conn = connect_to_server().await?;
    let found: Option<String> = sqlx::query_scalar!(
        r#"SELECT CAST(schema_name AS CHAR) AS "name!" FROM information_schema.schemata WHERE schema_name = ?"#,
        name,
    )
    .fetch_optional(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(found.is_some())
}

/// The test databases on the server (every run's, this one's included).
pub async fn test_databases(conn: &mut MySqlConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT CAST(schema_name AS CHAR) AS "name!" FROM information_schema.schemata WHERE schema_name LIKE 'pulse\_test%'"#,
    )
    .fetch_all(conn)
    .await
}

/// The databases of test run `run` still on the server.
pub async fn databases_of_run(run: &str) -> Result<Vec<String>, BoxError> {
    let mut conn = connect_to_server().await?;
    let names = test_databases(&mut conn).await?;
    let _ = conn.close().await;
    Ok(names
        .into_iter()
        .filter(|name| parse_database_name(name).is_some_and(|(r, _)| r == run))
        .collect())
}

/// Drops the test databases older than [`STALE_AFTER`] at `now` (unix seconds): by the
/// second in their name, or, for an older harness's names, by their oldest table (one
/// without tables has no age to go by and stays). Returns the names dropped.
pub async fn sweep_stale_databases(now: u64) -> Result<Vec<String>, BoxError> {
    let mut conn = connect_to_server().await?;
    let names = test_databases(&mut conn).await?;
    let unnamed_ages = sqlx::query!(
        r#"SELECT CAST(table_schema AS CHAR) AS "schema!", TIMESTAMPDIFF(SECOND, MIN(create_time), NOW()) AS "age_seconds!: i64"
         FROM information_schema.tables WHERE table_schema LIKE 'pulse\_test%'
         GROUP BY table_schema"#,
    )
    .fetch_all(&mut conn)
    .await?;
    let stale_after = STALE_AFTER.as_secs();
    let mut dropped = Vec::new();
    for name in names {
        let stale = match parse_database_name(&name) {
            Some((_, created)) => now.saturating_sub(created) > stale_after,
            None => unnamed_ages
                .iter()
                .any(|row| row.schema == name && row.age_seconds > stale_after as i64),
        };
        if stale {
            drop_on(&mut conn, &name).await?;
            dropped.push(name);
        }
    }
    let _ = conn.close().await;
    Ok(dropped)
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_says_its_run_and_when_it_was_made() {
        let name = database_name("pulse_test_g", "1a2b3c", 1_795_000_000, 0xbeef);
        assert_eq!(name, "pulse_test_g_1a2b3c_1795000000_0000beef");
        assert_eq!(parse_database_name(&name), Some(("1a2b3c", 1_795_000_000)));
        assert!(name.len() <= 64, "MySQL's limit on database names");
        // An older harness's names, and anything else, have neither.
        for other in [
            "pulse_test_g_2836c8dd097e3b53",
            "pulse_test_0003be2646534d2b",
            "pulse_demo_1795000000",
            "pulse_test_RUN_1795000000_0000beef",
            "pulse_test_run_17950000_0000beef",
            "shop_run_1795000000_0000beef",
        ] {
            assert_eq!(parse_database_name(other), None, "{other}");
        }
    }

    /// A database with a pool still open in a runtime that lives on, and a transaction
    /// left open on a table: gone by the time `drop` returns, with no help from a sweep.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_test_database_is_gone_when_its_value_is_dropped() {
        let db = TestDb::new("pulse_test_harness");
        let name = db.name.clone();
        let mut server = connect_to_server().await.unwrap();
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut server)
            .await
            .unwrap();
        let pool = db.pool().await;
        sqlx::query("CREATE TABLE t (id INT PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let mut open = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *open)
            .await
            .unwrap();
        assert!(databases_of_run(run_id()).await.unwrap().contains(&name));
        drop(db);
        assert!(
            !databases_of_run(run_id()).await.unwrap().contains(&name),
            "{name} outlived its TestDb"
        );
        drop(open);
    }

    /// Only databases older than an hour go: a run going on next to this one keeps its own.
    #[tokio::test]
    async fn the_sweep_drops_only_test_databases_older_than_an_hour() {
        let now = unix_now();
        let old = database_name(
            "pulse_test_sweep",
            run_id(),
            now - 2 * 3600,
            random() as u32,
        );
        let young = database_name("pulse_test_sweep", run_id(), now - 600, random() as u32);
        let mut server = connect_to_server().await.unwrap();
        for name in [&old, &young] {
            sqlx::query(&format!("CREATE DATABASE `{name}`"))
                .execute(&mut server)
                .await
                .unwrap();
        }
        let dropped = sweep_stale_databases(now).await.unwrap();
        let left = databases_of_run(run_id()).await.unwrap();
        // Clean up before asserting, so that a failure leaves nothing either.
        for name in [&old, &young] {
            sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                .execute(&mut server)
                .await
                .unwrap();
        }
        // Another test's sweep, running at the same moment, may be the one that drops `old`:
        // what must hold is that it is gone and `young` is not.
        assert!(!dropped.contains(&young), "{dropped:?}");
        assert!(!left.contains(&old) && left.contains(&young), "{left:?}");
    }
}
