//! The analysts' dashboard at `GET /`: served behind basic auth with its assets, and
//! driven end to end in headless Chromium (Playwright, `tests/e2e/dashboard.mjs`).
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`), `node`, and `npm ci` run in `tests/e2e/`;
//! `scripts/test.sh` installs all three when missing. Without them the test fails and says
//! what is missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use analyser::configuration::Method;
use serde_json::Value;

use crate::api::analyser_with_flood;
use crate::helpers::{shop, Analyser, Gatherer, PASSWORD, USER};

/// Where the e2e script and its `node_modules` live.
fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// `target/e2e` (under `CARGO_TARGET_DIR` when set), for the screenshot.
fn artefact_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| workspace.join("target"), |t| workspace.join(t));
    target.join("e2e")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Fails with what to install rather than skipping.
fn assert_browser_tools_installed() {
    assert!(
        chromium().is_file(),
        "{} is missing: install it (apt-get install -y chromium) or set CHROMIUM; scripts/test.sh does",
        chromium().display()
    );
    assert!(
        e2e_dir()
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "Playwright is missing: run `npm ci` in {}; scripts/test.sh does",
        e2e_dir().display()
    );
}

#[tokio::test]
async fn the_dashboard_and_its_assets_are_behind_basic_auth_and_the_assets_cached() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let anonymous = analyser
        .client
        .get(format!("{}/", analyser.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let page = analyser.get("/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("No series yet"), "{html}");
    // Every linked asset is served from the binary, cacheable for a year.
    let links: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert_eq!(links.len(), 4, "{html}");
    for link in links {
        assert_eq!(
            analyser
                .client
                .get(format!("{}{link}", analyser.url))
                .send()
                .await
                .unwrap()
                .status(),
            401,
            "{link}"
        );
        let asset = analyser.get(link).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{link}");
        assert_eq!(
            asset.headers()["cache-control"],
            "private, max-age=31536000, immutable"
        );
        assert!(asset.bytes().await.unwrap().len() > 1000, "{link}");
    }
    assert_eq!(
        analyser
            .get("/assets/nope.js")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn an_analyst_sees_the_flood_on_the_chart_and_approves_it_in_the_browser() {
    assert_browser_tools_installed();
    let (_gatherer, analyser) = analyser_with_flood().await;
    let alarms = analyser
        .state("label=checkout&entity_id=3&severity=alarm&status=open")
        .await;
    let flood = alarms["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["observed"] == 600.0)
        .unwrap_or_else(|| panic!("no flood alarm: {alarms:#}"))
        .clone();
    let id = flood["id"].as_u64().unwrap();

    let artefacts = artefact_dir();
    std::fs::create_dir_all(&artefacts).unwrap();
    let screenshot = artefacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut node = tokio::process::Command::new("node");
    node.current_dir(e2e_dir())
        .arg("dashboard.mjs")
        .arg(&analyser.url)
        .arg(USER)
        .arg(PASSWORD)
        .arg(id.to_string())
        .arg(&screenshot)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), node.output())
        .await
        .expect("the browser run to finish within 120 s")
        .expect("node to start (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser run failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let run: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: not the script's JSON:\n{stdout}\n{stderr}"));

    assert_eq!(run["problems"], serde_json::json!([]), "{run:#}");
    let row = run["rowText"].as_str().unwrap();
    assert!(
        row.contains("shop / checkout / 3") && row.contains("600"),
        "{run:#}"
    );
    // The chart: a canvas with something drawn, on the flood's series, its alarm shaded.
    let chart = &run["chart"];
    assert!(chart["drawn"].as_u64().unwrap() > 2_000, "{run:#}");
    assert!(
        chart["query"].as_str().unwrap().contains("entity_id=3"),
        "{run:#}"
    );
    let marks: Vec<&str> = chart["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        marks
            .iter()
            .any(|m| m.starts_with("alarm") && m.contains("observed 600")),
        "{run:#}"
    );
    // The row says approved, in place, and offers no more buttons.
    assert_eq!(run["status"], format!("approved by {USER}"), "{run:#}");
    assert_eq!(run["buttonsLeft"], 0, "{run:#}");

    // The verdict is in the analyser, by the browser's user.
    let approved = analyser.state("status=approved").await;
    let decided = approved["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("anomaly {id} not approved: {approved:#}"));
    assert_eq!(decided["decided_by"], USER);
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "no screenshot at {}",
        screenshot.display()
    );
}
