//! Tokens as a user of the real binary meets them: a gatherer that listens beyond
//! loopback without tokens says so once at start; a wrong or missing token gets 401 with
//! `WWW-Authenticate: Bearer`; no token, right or wrong, ever reaches the log; and the
//! example files' placeholder `CHANGE-ME` stops the start with one line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::helpers::TestDb;
use crate::process::{fails_with_one_line, gatherer, signal};

/// The binary started on port 0 with `env`, and everything it logs (stdout and stderr).
struct Logged {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Logged {
    async fn start(db: &TestDb, env: &[(&str, &str)]) -> Logged {
        let mut child = gatherer()
            .args(["--port", "0"])
            .env("GATHERER__DATABASE__URL", &db.url)
            .envs(env.iter().copied())
            .spawn()
            .expect("spawn gatherer");
        let log = Arc::new(Mutex::new(String::new()));
        let (listening, mut address) = tokio::sync::mpsc::unbounded_channel::<String>();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let readers = [
            Box::new(stdout) as Box<dyn tokio::io::AsyncBufRead + Send + Unpin>,
            Box::new(stderr),
        ]
        .into_iter()
        .map(|pipe| {
            let (log, listening) = (log.clone(), listening.clone());
            tokio::spawn(async move {
                let mut lines = pipe.lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let port = rest.trim().trim_end_matches('"').rsplit(':').next();
                        let _ = listening.send(port.unwrap_or_default().to_owned());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        })
        .collect();
        drop(listening);
        let port = tokio::time::timeout(Duration::from_secs(30), address.recv())
            .await
            .expect("gatherer to listen")
            .unwrap_or_else(|| panic!("gatherer exited before listening: {}", log.lock().unwrap()));
        Logged {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            readers,
        }
    }

    /// Stops the gatherer with SIGTERM and returns all it logged.
    async fn stop(mut self) -> String {
        // Once it has answered, its signal handler is in place.
        let live = reqwest::get(format!("{}/health/live", self.url))
            .await
            .unwrap();
        assert_eq!(live.status(), StatusCode::OK);
        signal(&self.child, "TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exit within the shutdown timeout")
            .unwrap();
        assert!(status.success(), "exit status {status}");
        for reader in self.readers {
            reader.await.unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        log
    }
}

const OPEN_WARNING: &str = "open to anyone who can reach";

#[tokio::test]
async fn a_gatherer_beyond_loopback_without_tokens_warns_once_at_start() {
    let db = TestDb::new("pulse_test");
    let everywhere = [("GATHERER__SERVER__HOST", "0.0.0.0")];
    let app = Logged::start(&db, &everywhere).await;
    // It answers, open as it says.
    let client = reqwest::Client::new();
    let export = client
        .get(format!("{}/api/v1/export", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    let log = app.stop().await;
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(OPEN_WARNING)).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0]
                .contains("the export and /gather are open to anyone who can reach 0.0.0.0:")
            && warnings[0].contains("set [auth] export_token and ingest_tokens"),
        "{}",
        warnings[0]
    );

    // With one of the two tokens, the warning names the other endpoint only.
    let app = Logged::start(
        &db,
        &[
            ("GATHERER__SERVER__HOST", "0.0.0.0"),
            ("GATHERER__AUTH__EXPORT_TOKEN", "an-export-t0ken"),
        ],
    )
    .await;
    let log = app.stop().await;
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(OPEN_WARNING)).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("/gather is open"), "{}", warnings[0]);

    // With both, or on loopback, nothing to say.
    for env in [
        &[
            ("GATHERER__SERVER__HOST", "0.0.0.0"),
            ("GATHERER__AUTH__EXPORT_TOKEN", "an-export-t0ken"),
            ("GATHERER__AUTH__INGEST_TOKENS", "an-ingest-t0ken"),
        ][..],
        &[("GATHERER__SERVER__HOST", "127.0.0.1")][..],
    ] {
        let app = Logged::start(&db, env).await;
        let log = app.stop().await;
        assert!(log.contains("listening on"), "{log}");
        assert!(!log.contains(OPEN_WARNING), "{env:?}: {log}");
    }
}

#[tokio::test]
async fn a_wrong_token_gets_401_with_bearer_and_no_token_reaches_the_log() {
    let db = TestDb::new("pulse_test");
    let (ingest_old, ingest_new, export) =
        ("1ngest-0ld-t0ken", "1ngest-n3w-t0ken", "exp0rt-t0ken-9f3a");
    let wrong = "wr0ng-t0ken-c4fe";
    let tokens = format!("{ingest_old},{ingest_new}");
    let app = Logged::start(
        &db,
        &[
            ("GATHERER__SERVER__HOST", "0.0.0.0"),
            ("GATHERER__AUTH__INGEST_TOKENS", tokens.as_str()),
            ("GATHERER__AUTH__EXPORT_TOKEN", export),
            ("RUST_LOG", "trace"),
            ("GATHERER__SERVER__WORKERS", "1"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let event = r#"{"label":"checkout","id":42,"value":1}"#;
    let requests = [
        (Method::POST, "/gather", ingest_old, StatusCode::OK),
        (Method::POST, "/gather", ingest_new, StatusCode::OK),
        (Method::POST, "/gather", export, StatusCode::UNAUTHORIZED),
        (Method::POST, "/gather", wrong, StatusCode::UNAUTHORIZED),
        (Method::GET, "/api/v1/export", export, StatusCode::OK),
        (
            Method::GET,
            "/api/v1/export",
            ingest_old,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/api/v1/export",
            wrong,
            StatusCode::UNAUTHORIZED,
        ),
        (Method::POST, "/stat", export, StatusCode::OK),
        (Method::POST, "/stat", wrong, StatusCode::UNAUTHORIZED),
    ];
    for (method, path, token, expected) in requests {
        for token in [Some(token), None] {
            let mut request = client
                .request(method.clone(), format!("{}{path}", app.url))
                .body(if path == "/gather" { event } else { "{}" });
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let expected = if token.is_some() {
                expected
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(
                response.status(),
                expected,
                "{method} {path} with {token:?}"
            );
            if expected == StatusCode::UNAUTHORIZED {
                assert_eq!(
                    response.headers()["www-authenticate"],
                    "Bearer",
                    "{method} {path} with {token:?}"
                );
                let body = response.text().await.unwrap();
                assert!(!body.contains("t0ken"), "{body}");
            }
        }
    }
    let log = app.stop().await;
    assert!(
        log.contains("/api/v1/export") && log.contains("/gather"),
        "the requests were not logged: {log}"
    );
    for secret in [ingest_old, ingest_new, export, wrong] {
        assert!(
            !log.contains(secret),
            "{secret:?} appears in the log:\n{log}"
        );
    }
    assert!(
        !log.to_ascii_lowercase().contains("authorization"),
        "the Authorization header appears in the log:\n{log}"
    );
}

#[tokio::test]
async fn the_placeholder_of_the_example_secrets_stops_the_start_with_one_line() {
    for (name, value, setting) in [
        (
            "GATHERER__AUTH__EXPORT_TOKEN",
            "CHANGE-ME",
            "auth.export_token",
        ),
        (
            "GATHERER__AUTH__INGEST_TOKENS",
            "CHANGE-ME",
            "auth.ingest_tokens",
        ),
        (
            "GATHERER__DATABASE__URL",
            "mysql://pulse:CHANGE-ME@127.0.0.1:3306/pulse",
            "database.url",
        ),
    ] {
        // A database that does not answer: were the placeholder let through, the start
        // would fail on it instead, with another line.
        let mut command = gatherer();
        command
            .env("GATHERER__DATABASE__URL", "mysql://root@127.0.0.1:1/unused")
            .env("GATHERER__DATABASE__CONNECT_TIMEOUT", "1s")
            .env(name, value);
        let stderr = fails_with_one_line(&mut command).await;
        assert!(
            stderr.contains(&format!(
                "invalid configuration: {setting} is still the placeholder CHANGE-ME"
            )),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("pulse:"), "{stderr}");
    }
}
