//! `test-databases`: what the test runs leave on the MySQL server (`TEST_MYSQL_URL`).
//!
//! ```text
//! test-databases left RUN     list run RUN's databases still there; exit 1 if there are any
//! test-databases sweep        drop test databases older than an hour (a killed run's)
//! test-databases name PREFIX  print a new database name of this run (PULSE_TEST_RUN)
//! test-databases drop NAME…   drop these test databases
//! test-databases exists NAME  exit 0 if database NAME is on the server, 1 if not
//! ```
//!
//! `scripts/test.sh` gives each run an id (`PULSE_TEST_RUN`, part of every database name)
//! and checks with `left` at the end that the run dropped every database it created.

use std::process::ExitCode;

use service::testing;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["left", run] => match testing::databases_of_run(run).await {
            Ok(left) if left.is_empty() => {
                println!("test run {run} left no database behind");
                ExitCode::SUCCESS
            }
            Ok(left) => {
                println!(
                    "test run {run} left {} database(s) behind: {}",
                    left.len(),
                    left.join(" ")
                );
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("test-databases: {error}");
                ExitCode::from(2)
            }
        },
        ["sweep"] => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match testing::sweep_stale_databases(now).await {
                Ok(dropped) => {
                    println!(
                        "dropped {} test database(s) older than an hour",
                        dropped.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("test-databases: {error}");
                    ExitCode::from(2)
                }
            }
        }
        ["name", prefix] if prefix.starts_with(testing::PREFIX) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let random = std::process::id() ^ (now as u32).rotate_left(16);
            println!(
                "{}",
                testing::database_name(prefix, testing::run_id(), now, random)
            );
            ExitCode::SUCCESS
        }
        ["drop", names @ ..] if names.iter().all(|n| n.starts_with(testing::PREFIX)) => {
            for name in names {
                if let Err(error) = testing::drop_test_database(name).await {
                    eprintln!("test-databases: could not drop {name}: {error}");
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        ["exists", name] => match testing::database_exists(name).await {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => {
                eprintln!("test-databases: {error}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!(
                "usage: test-databases left RUN | sweep | name PREFIX | drop NAME… | exists NAME \
                 (names to drop start with {})",
                testing::PREFIX
            );
            ExitCode::from(2)
        }
    }
}
