//! The command line: `hash-password` for real credentials, and a clear refusal to serve
//! without any user.

use std::process::Stdio;

use analyser::configuration::Method;
use tokio::io::AsyncWriteExt;

use base64ct::Encoding;

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

#[tokio::test]
async fn credentials_and_the_authorization_header_never_reach_the_logs() {
    let gatherer = Gatherer::start().await;
    let db = TestDb::new("pulse_test_a");
    let dir = std::env::temp_dir().join(format!("{}-logs", db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("analyser.toml");
    let password = "s3cret-Sw0rdfish";
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[gatherer]\nurl = \"{}\"\n[[auth.users]]\nname = \"analyst\"\npassword = \"{password}\"\n",
            db.url, gatherer.url
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_analyser"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--port",
            "0",
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut log = String::new();
    let address = loop {
        let mut line = String::new();
        assert!(
            tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line)
                .await
                .unwrap()
                > 0,
            "{log}"
        );
        log.push_str(&line);
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split('"').next().unwrap().trim().to_owned();
        }
    };
    let client = reqwest::Client::new();
    let url = format!("http://{address}/api/v1/state");
    for (user, pass) in [
        ("analyst", password),
        ("analyst", "wrong-Passw0rd"),
        ("mallory", password),
    ] {
        client
            .get(&url)
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
    }
    client
        .post(format!("http://{address}/api/v1/pull"))
        .basic_auth("analyst", Some(password))
        .send()
        .await
        .unwrap();
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut log)
        .await
        .unwrap();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    assert!(
        log.contains("/api/v1/state"),
        "the requests were not logged at all: {log}"
    );
    let encoded = base64ct::Base64::encode_string(format!("analyst:{password}").as_bytes());
    for secret in [password, "wrong-Passw0rd", encoded.as_str()] {
        assert!(!log.contains(secret), "{secret:?} appears in the logs");
    }
    assert!(
        !log.to_ascii_lowercase().contains("authorization"),
        "the Authorization header appears in the logs"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_placeholder_of_the_example_secrets_stops_the_start_with_one_line() {
    let dir = std::env::temp_dir().join(format!("pulse-placeholder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The users Secret of deploy/k8s/secrets.example.yaml, as mounted.
    let users = dir.join("users");
    std::fs::write(&users, "# analysts\nanalyst:CHANGE-ME\n").unwrap();
    let users = users.display().to_string();
    let database = "mysql://root@127.0.0.1:1/unused";
    for (env, said) in [
        (
            vec![("ANALYSER__GATHERER__EXPORT_TOKEN", "CHANGE-ME")],
            "invalid configuration: gatherer.export_token is still the placeholder CHANGE-ME",
        ),
        (
            vec![(
                "ANALYSER__DATABASE__URL",
                "mysql://pulse:CHANGE-ME@127.0.0.1:1/pulse_analyser",
            )],
            "invalid configuration: database.url is still the placeholder CHANGE-ME",
        ),
        (
            vec![("ANALYSER__AUTH__USERS_FILE", users.as_str())],
            "auth.users_file line 2 (user \"analyst\") is still the placeholder CHANGE-ME",
        ),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_analyser"))
            .args(["--port", "0"])
            .env("ANALYSER__DATABASE__URL", database)
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(said), "{env:?}: {stderr}");
        assert!(!stderr.contains("pulse:"), "{stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
