//! The command line: `hash-password` for real credentials, and a clear refusal to serve
//! without any user.

use std::process::Stdio;

use analyser::configuration::Method;
use tokio::io::AsyncWriteExt;

use crate::helpers::{analyser_settings, shop, Analyser, Gatherer, TestDb};

#[tokio::test]
async fn hash_password_prints_a_hash_the_service_accepts_from_a_users_file() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_analyser"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    let gatherer = Gatherer::start().await;
    let db = TestDb::new("pulse_test_a");
    let file = std::env::temp_dir().join(format!("{}.users", db.name));
    std::fs::write(&file, format!("# analysts\nbob:{hash}\n")).unwrap();
    let mut settings =
        analyser_settings(&db, &gatherer.url, vec![shop(&["checkout"], Method::Auto)]);
    settings.auth.users.clear();
    settings.auth.users_file = file.display().to_string();
    let analyser = Analyser::start_with(db, settings).await;
    let url = format!("{}/api/v1/state", analyser.url);
    let ok = analyser
        .client
        .get(&url)
        .basic_auth("bob", Some("s3cret pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = analyser
        .client
        .get(&url)
        .basic_auth("bob", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    std::fs::remove_file(file).unwrap();
}

#[tokio::test]
async fn the_service_refuses_to_start_without_a_user_in_one_clear_line() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_analyser"))
        .args(["--port", "0"])
        .env("ANALYSER__DATABASE__URL", "mysql://root@127.0.0.1:1/unused")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no users configured") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
}
