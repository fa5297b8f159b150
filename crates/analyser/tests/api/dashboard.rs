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

use crate::helpers::{shop, Analyser, Gatherer, PASSWORD, USER, VIEWER};
use crate::scenarios::{traffic, ANOMALY_AT, HISTORY};

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
    assert_eq!(links.len(), 5, "{html}");
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

/// Checkout traffic whose entity 3 floods in the last two minutes (an incident on the
/// newest judged step), and prices whose entity 4 is typed a hundred times too low for
/// three minutes; both through the real gatherer, with `price` a level.
async fn flood_and_typo() -> (Gatherer, Analyser) {
    let mut rng = detect::synth::Rng::new(11);
    let (_, mut events) = traffic("checkout", |step, entity| {
        let flood = entity == 3 && step >= HISTORY - 2;
        (if flood { 600 } else { rng.poisson(60.0) }, 1)
    });
    let (_, prices) = traffic("price", |step, entity| {
        let price = 1_990 + entity * 5 + rng.poisson(20.0) as i64;
        let typo = entity == 4 && (ANOMALY_AT..ANOMALY_AT + 3).contains(&step);
        (rng.poisson(50.0), if typo { price / 100 } else { price })
    });
    events.extend(prices);
    let gatherer = Gatherer::start().await;
    gatherer.post(&events).await;
    gatherer.flushed().await;
    let analyser = Analyser::start(
        &gatherer.url,
        vec![shop(&["checkout", "price"], Method::Auto)],
    )
    .await;
    analyser.pull().await;
    (gatherer, analyser)
}

/// Four bytes of RGBA: whether it is the red of an alarm's shading over white.
fn reddish(color: &Value) -> bool {
    let c: Vec<u64> = color
        .as_array()
        .map_or_else(Vec::new, |c| c.iter().filter_map(Value::as_u64).collect());
    c.len() == 4 && c[0] > c[1] + 20 && c[0] > c[2] + 20
}

/// Whether it is the band's grey as the page shows it (the canvas is transparent, over
/// the white page): neither white nor coloured.
fn greyish(color: &Value) -> bool {
    let c: Vec<f64> = color
        .as_array()
        .map_or_else(Vec::new, |c| c.iter().filter_map(Value::as_f64).collect());
    if c.len() != 4 {
        return false;
    }
    let alpha = c[3] / 255.0;
    let shown: Vec<f64> = c[..3]
        .iter()
        .map(|v| v * alpha + 255.0 * (1.0 - alpha))
        .collect();
    shown[0] < 250.0 && (shown[0] - shown[2]).abs() < 12.0 && (shown[1] - shown[2]).abs() < 12.0
}

#[tokio::test]
async fn an_analyst_decides_silences_and_tunes_a_dataset_in_the_browser_and_a_viewer_only_reads() {
    assert_browser_tools_installed();
    let (_gatherer, analyser) = flood_and_typo().await;
    let firing = analyser
        .state("label=checkout&entity_id=3&state=firing")
        .await;
    let flood = firing["data"][0].clone();
    assert_eq!(flood["severity"], "alarm", "{firing:#}");
    let flood_id = flood["id"].as_u64().unwrap();
    let typos = analyser
        .state("label=price&entity_id=4&severity=alarm")
        .await;
    let typo_id = typos["data"][0]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no price alarm: {typos:#}"));

    let artefacts = artefact_dir();
    std::fs::create_dir_all(&artefacts).unwrap();
    let shots = [
        "dashboard-flood.png",
        "dashboard-level.png",
        "dashboard-phone.png",
        "dashboard-manage.png",
        "dashboard-viewer.png",
    ];
    for shot in shots {
        let _ = std::fs::remove_file(artefacts.join(shot));
    }
    let mut node = tokio::process::Command::new("node");
    node.current_dir(e2e_dir())
        .arg("dashboard.mjs")
        .arg(&analyser.url)
        .arg(USER)
        .arg(PASSWORD)
        .arg(flood_id.to_string())
        .arg(typo_id.to_string())
        .arg(&artefacts)
        .arg(VIEWER)
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

    // The flood: the row reads as words; its chart plots the count with a normal band,
    // and the incident on the newest step is shaded red, wide enough to see, inside the
    // plot.
    let row = run["flood"]["rowText"].as_str().unwrap();
    assert!(
        row.contains("shop / checkout / 3") && row.contains("count 600"),
        "{run:#}"
    );
    assert!(
        row.contains("× expected") && !row.contains("1000000"),
        "{run:#}"
    );
    let chart = &run["flood"]["chart"];
    assert_eq!(chart["metric"], "count", "{run:#}");
    assert!(chart["banded"].as_u64().unwrap() > 50, "{run:#}");
    assert!(
        greyish(&chart["band"]["color"]),
        "the band is not drawn: {run:#}"
    );
    let mark = &chart["mark"];
    let width = mark["x1"].as_f64().unwrap() - mark["x0"].as_f64().unwrap();
    assert!(width >= 5.9, "{run:#}");
    assert!(
        mark["x1"].as_f64().unwrap() <= chart["plotRight"].as_f64().unwrap() + 0.5,
        "{run:#}"
    );
    assert!(
        reddish(&chart["shade"]),
        "the incident is not shaded: {run:#}"
    );
    assert_eq!(
        chart["newestValue"], 600.0,
        "the newest step is the flood's: {run:#}"
    );
    // The typo: its chart plots the price level, not the count of prices.
    let typo = &run["typo"]["chart"];
    assert_eq!(typo["metric"], "avg", "{run:#}");
    assert!(typo["yMax"].as_f64().unwrap() > 1_000.0, "{run:#}");
    // Its axis reads prices, not "0,000".
    let ticks = typo["yTicks"].as_str().unwrap();
    assert!(ticks.split(' ').any(|t| t == "2000"), "{run:#}");
    // The row says approved, in place, and offers no more buttons.
    assert_eq!(run["status"], format!("approved by {USER}"), "{run:#}");
    assert_eq!(run["buttonsLeft"], 0, "{run:#}");
    // On a phone: nothing to scroll sideways for, and Approve on screen.
    let phone = &run["phone"];
    assert!(
        phone["scrollWidth"].as_f64().unwrap() <= phone["clientWidth"].as_f64().unwrap(),
        "{run:#}"
    );
    let approve = &phone["approve"];
    assert!(
        approve["x"].as_f64().unwrap() >= 0.0
            && approve["x"].as_f64().unwrap() + approve["width"].as_f64().unwrap() <= 390.0,
        "{run:#}"
    );
    assert!(phone["lastPull"].as_f64().unwrap() <= 390.0, "{run:#}");

    // The verdict is in the analyser, by the browser's user.
    let approved = analyser.state("status=approved").await;
    let decided = approved["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == flood_id)
        .unwrap_or_else(|| panic!("incident {flood_id} not approved: {approved:#}"));
    assert_eq!(decided["decided_by"], USER);

    // "Silence this series for 1 day" from the typo's row: the silence is in the analyser.
    assert!(
        run["silenced"]
            .as_str()
            .unwrap()
            .starts_with("silenced for 1d"),
        "{run:#}"
    );
    assert!(
        run["silenceListed"].as_str().unwrap().contains("active"),
        "{run:#}"
    );
    let silences = analyser.get_json("/api/v1/silences").await;
    let silence = &silences["data"][0];
    assert_eq!(
        (
            &silence["dataset"],
            &silence["label"],
            &silence["entity_id"]
        ),
        (&"shop".into(), &"price".into(), &4.into()),
        "{silences:#}"
    );
    assert_eq!(silence["created_by"], USER, "{silences:#}");
    let span = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(silence[field].as_str().unwrap()).unwrap()
    };
    assert_eq!(
        span("ends_at") - span("starts_at"),
        chrono::Duration::days(1)
    );

    // "Expected" on the phone: the typo is dismissed as expected, by the browser's user, so
    // the series is taught.
    assert!(
        run["expected"].as_str().unwrap().starts_with("dismissed"),
        "{run:#}"
    );
    let dismissed = analyser.state("status=dismissed").await;
    let typo = dismissed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == typo_id)
        .unwrap_or_else(|| panic!("incident {typo_id} not dismissed: {dismissed:#}"));
    assert_eq!(typo["decided_by"], USER);
    assert_eq!(typo["reason"], "expected", "{typo:#}");

    // The datasets form saved the threshold, and the analyser holds it.
    assert!(
        run["datasetSaved"].as_str().unwrap().contains("next step"),
        "{run:#}"
    );
    let shop = analyser.get_json("/api/v1/datasets/shop").await;
    assert_eq!(shop["data"]["alarm_multiplier"], 4.0, "{shop:#}");
    assert_eq!(shop["data"]["method"], "auto", "the rest is kept: {shop:#}");

    // The viewer reads the incidents and silences, and is offered no button to change them.
    let viewer = &run["viewerSees"];
    assert_eq!(viewer["role"], "viewer", "{run:#}");
    assert!(viewer["rows"].as_u64().unwrap() > 0, "{run:#}");
    assert!(viewer["silences"].as_u64().unwrap() > 0, "{run:#}");
    assert_eq!(viewer["buttons"], serde_json::json!([]), "{run:#}");
    for shot in shots {
        let path = artefacts.join(shot);
        assert!(
            std::fs::metadata(&path).map_or(0, |m| m.len()) > 10_000,
            "no screenshot at {}",
            path.display()
        );
    }
}
