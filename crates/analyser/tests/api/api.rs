//! The analysts' API: authentication, filters, verdicts, and clear errors.

use analyser::configuration::Method;
use serde_json::{json, Value};

use crate::helpers::{events, minutes_ago, shop, Analyser, Gatherer, PASSWORD, USER};
use crate::scenarios::{flood, traffic, ANOMALY_AT};

pub async fn analyser_with_flood() -> (Gatherer, Analyser) {
    let gatherer = Gatherer::start().await;
    gatherer.post(&flood().1).await;
    gatherer.flushed().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    analyser.pull().await;
    (gatherer, analyser)
}

#[tokio::test]
async fn everything_but_health_asks_for_basic_auth_without_saying_which_half_was_wrong() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let url = |path: &str| format!("{}{path}", analyser.url);
    let anonymous = analyser
        .client
        .get(url("/api/v1/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"analyser\""
    );
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["ok"], false);
    let wrong_password = analyser
        .client
        .get(url("/api/v1/state"))
        .basic_auth(USER, Some("nope"))
        .send()
        .await
        .unwrap();
    let unknown_user = analyser
        .client
        .get(url("/api/v1/state"))
        .basic_auth("mallory", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_password.status(), 401);
    assert_eq!(unknown_user.status(), 401);
    assert_eq!(
        wrong_password.text().await.unwrap(),
        unknown_user.text().await.unwrap()
    );
    for path in [
        "/api/v1/series?label=a&entity_id=1",
        "/api/v1/report?dataset=shop",
    ] {
        assert_eq!(
            analyser
                .client
                .get(url(path))
                .send()
                .await
                .unwrap()
                .status(),
            401,
            "{path}"
        );
    }
    assert_eq!(
        analyser
            .client
            .post(url("/api/v1/pull"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        analyser
            .client
            .get(url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        analyser
            .client
            .get(url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // After a pull, whatever the timer's first pull has done by now.
    analyser.pull().await;
    let state = analyser.state("").await;
    assert_eq!(state["ok"], true);
    assert_eq!(state["meta"]["gatherer"], "up");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_client() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let attempt = || {
        analyser
            .client
            .get(format!("{}/api/v1/state", analyser.url))
            .basic_auth(USER, Some("guess"))
            .send()
    };
    for _ in 0..analyser::auth::MAX_FAILURES {
        assert_eq!(attempt().await.unwrap().status(), 401);
    }
    let limited = attempt().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn bad_parameters_get_400_naming_them_and_unknown_things_404() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    for (path, parameter) in [
        ("/api/v1/state?severity=bad", "severity"),
        ("/api/v1/state?status=closed", "status"),
        ("/api/v1/state?limit=0", "limit"),
        ("/api/v1/state?limit=1001", "limit"),
        ("/api/v1/state?entity_id=x", "entity_id"),
        ("/api/v1/state?since=yesterday", "since"),
        ("/api/v1/series?entity_id=1", "label"),
        ("/api/v1/series?label=a", "entity_id"),
        ("/api/v1/series?label=a&entity_id=1&from=20&to=10", "from"),
    ] {
        let response = analyser.get(path).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
    }
    for path in ["/api/v1/report?dataset=nope", "/api/v1/nothing"] {
        assert_eq!(
            analyser.get(path).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
    let response = analyser
        .post("/api/v1/anomalies/999999/approve")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = analyser
        .post("/api/v1/anomalies/abc/approve")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn approve_and_dismiss_keep_who_when_and_why_and_state_filters_by_them() {
    // Two floods: entity 3, then entity 5 a quarter of an hour later.
    let gatherer = Gatherer::start().await;
    let mut rng = detect::synth::Rng::new(7);
    let (_, events) = traffic("checkout", |step, entity| {
        let flood = (entity == 3 && (ANOMALY_AT..ANOMALY_AT + 3).contains(&step))
            || (entity == 5 && (ANOMALY_AT + 15..ANOMALY_AT + 18).contains(&step));
        (if flood { 600 } else { rng.poisson(60.0) }, 1)
    });
    gatherer.post(&events).await;
    gatherer.flushed().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    analyser.pull().await;
    let alarms = analyser.state("severity=alarm&label=checkout").await;
    let ids: Vec<u64> = alarms["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    // One incident each, both over by now; newest first.
    assert_eq!(ids.len(), 2, "{alarms:#}");
    assert_eq!(alarms["data"][0]["entity_id"], 5);
    assert_eq!(alarms["data"][1]["entity_id"], 3);
    assert_eq!(
        analyser.state("state=resolved").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(analyser.state("state=firing").await["data"], json!([]));
    let bad = analyser
        .get("/api/v1/state?state=over")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Asked before the verdict, the same query must not answer from a stale cache after.
    assert_eq!(analyser.state("status=approved").await["data"], json!([]));
    let approved: Value = analyser
        .post(&format!("/api/v1/anomalies/{}/approve", ids[0]))
        .json(&json!({"comment": "bot confirmed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["data"]["status"], "approved");
    assert_eq!(approved["data"]["decided_by"], USER);
    assert_eq!(approved["data"]["comment"], "bot confirmed");
    assert!(approved["data"]["decided_at"].is_string());
    let dismissed = analyser
        .post(&format!("/api/v1/anomalies/{}/dismiss", ids[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(dismissed.status(), 200);

    let open = analyser.state("status=open&severity=alarm").await;
    assert!(open["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["id"] != ids[0] && a["id"] != ids[1]));
    let approved = analyser.state("status=approved").await;
    assert_eq!(approved["data"][0]["id"], ids[0]);

    // A page elsewhere cannot make an analyst's browser decide.
    let forged = analyser
        .post(&format!("/api/v1/anomalies/{}/dismiss", ids[0]))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        analyser.state("status=approved").await["data"][0]["id"],
        ids[0]
    );
}

#[tokio::test]
async fn state_meta_says_where_the_analyser_stands() {
    let (_gatherer, analyser) = analyser_with_flood().await;
    let state = analyser.state("limit=1").await;
    assert_eq!(state["data"].as_array().unwrap().len(), 1);
    let meta = &state["meta"];
    assert!(meta["iterator"].as_u64().unwrap() > 0);
    assert_eq!(meta["series"], 6);
    assert_eq!(meta["gatherer"], "up");
    assert!(meta["last_pull_at"].is_string());
    // The newest event is about two and a half minutes old.
    let lag = meta["lag_seconds"].as_f64().unwrap();
    assert!((100.0..400.0).contains(&lag), "{lag}");
}

#[tokio::test]
async fn a_gatherer_that_is_down_is_reported_not_fatal() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let analyser = Analyser::start(&url, vec![shop(&["checkout"], Method::Auto)]).await;
    let response = analyser.post("/api/v1/pull").send().await.unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("gatherer unreachable"),
        "{body}"
    );
    let state = analyser.state("").await;
    assert_eq!(state["meta"]["gatherer"], "down");
    assert_eq!(state["meta"]["iterator"], 0);
    // Ready means the analyser's own database answers: it still serves analysts.
    let ready = analyser
        .client
        .get(format!("{}/health/ready", analyser.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn metrics_are_public_and_move_when_the_analyser_pulls() {
    let (_gatherer, analyser) = analyser_with_flood().await;
    let text = analyser
        .client
        .get(format!("{}/metrics", analyser.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    assert!(sample("analyser_pull_rows_total") >= 1800.0, "{text}");
    assert!(
        sample("analyser_anomalies_total{severity=\"alarm\"}") >= 1.0,
        "{text}"
    );
    assert!(sample("analyser_pull_seconds_count") >= 1.0, "{text}");
    assert!(text.contains("analyser_pull_lag_seconds"), "{text}");
}

#[tokio::test]
async fn the_openapi_document_is_public_and_describes_every_route() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let response = analyser
        .client
        .get(format!("{}/api/v1/openapi.json", analyser.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut routes = 0;
    let mut files = vec![dir];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            for method in ["get", "post", "put", "delete"] {
                if let Some(rest) = line.trim().strip_prefix(&format!("#[{method}(\"")) {
                    let path = rest.split('"').next().unwrap();
                    assert!(
                        document["paths"][path][method].is_object(),
                        "{method} {path} is not documented"
                    );
                    routes += 1;
                }
            }
        }
    }
    assert!(routes >= 10, "{routes}");
    assert_eq!(
        document["components"]["securitySchemes"]["basic"]["scheme"],
        "basic"
    );
    assert!(document["components"]["schemas"]["Anomaly"].is_object());
    // A verdict's reason is documented, with its two values and where it goes.
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["VerdictReason"]["enum"],
        serde_json::json!(["expected", "real"]),
        "{:#}",
        schemas["VerdictReason"]
    );
    assert!(schemas["Verdict"]["properties"]["reason"].is_object());
    assert!(schemas["Anomaly"]["properties"]["taught_by"].is_object());
    let dismiss = &document["paths"]["/api/v1/anomalies/{id}/dismiss"]["post"];
    assert_eq!(
        dismiss["requestBody"]["content"]["application/json"]["example"]["reason"], "expected",
        "{dismiss:#}"
    );
    assert!(
        dismiss["description"]
            .as_str()
            .is_some_and(|d| d.contains("`\"reason\": \"expected\"`") && d.contains("1.5")),
        "{dismiss:#}"
    );
    // Each authenticated operation names its role, and what is refused below it.
    let approve = &document["paths"]["/api/v1/anomalies/{id}/approve"]["post"];
    assert_eq!(approve["x-required-role"], "analyst");
    assert_eq!(
        approve["responses"]["403"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/RoleReply"
    );
    assert_eq!(
        document["paths"]["/api/v1/state"]["get"]["x-required-role"],
        "viewer"
    );
    assert!(document["paths"]["/health/live"]["get"]["x-required-role"].is_null());
    let datasets = &document["paths"]["/api/v1/datasets/{name}"];
    assert_eq!(datasets["get"]["x-required-role"], "viewer");
    for method in ["put", "delete"] {
        assert_eq!(datasets[method]["x-required-role"], "admin", "{method}");
    }
    assert_eq!(
        document["paths"]["/api/v1/datasets"]["post"]["x-required-role"],
        "admin"
    );
    assert!(document["components"]["schemas"]["DatasetSettings"].is_object());
}

#[tokio::test]
async fn an_unknown_dataset_or_a_series_never_seen_is_a_404_not_an_empty_answer() {
    let (_gatherer, analyser) = analyser_with_flood().await;
    let start = crate::scenarios::flood().0;
    let analyser = &analyser;
    let get = |path: String| async move {
        let response = analyser.get(&path).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, body) = get("/api/v1/state?dataset=shopp".into()).await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("no dataset named \"shopp\""))
    );
    let (status, body) = get("/api/v1/state?dataset=shop".into()).await;
    assert_eq!(status, 200);
    assert!(!body["data"].as_array().unwrap().is_empty(), "{body}");

    for path in [
        "/api/v1/series?label=checkout&entity_id=999",
        "/api/v1/series?label=chekout&entity_id=3",
        "/api/v1/series?dataset=shop&label=visit&entity_id=3",
    ] {
        let (status, body) = get(path.into()).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("no such series"),
            "{path}: {body}"
        );
    }
    let (status, body) = get("/api/v1/series?label=checkout&entity_id=3".into()).await;
    assert_eq!(status, 200, "{body}");
    // A series the analyser knows, over a window before its first event: zeros, as judged.
    let (status, body) = get(format!(
        "/api/v1/series?label=checkout&entity_id=3&from={}&to={}",
        start - 3600,
        start - 600
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let points = body["points"].as_array().unwrap();
    assert!(
        !points.is_empty() && points.iter().all(|p| p["count"] == 0.0),
        "{body}"
    );
}

#[tokio::test]
async fn every_endpoint_refuses_a_query_parameter_it_does_not_take_and_names_it() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let document: Value = analyser.get_json("/api/v1/openapi.json").await;
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1").replace("{name}", "dashboard.js");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = analyser
                .client
                .request(
                    method.clone(),
                    format!("{}{concrete}?severty=alarm", analyser.url),
                )
                .basic_auth(USER, Some(PASSWORD))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{method} {path}");
            let reply: Value = response.json().await.unwrap();
            assert_eq!(reply["parameter"], "severty", "{method} {path}: {reply}");
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked}");
    let reply: Value = analyser
        .get_json("/api/v1/state?severty=alarm&limit=5")
        .await;
    assert_eq!(
        reply["error"],
        "unknown query parameter severty: GET /api/v1/state takes dataset, label, entity_id, \
         severity, status, state, since, limit"
    );
    // Credentials come first: a stranger learns nothing about the parameters.
    let anonymous = analyser
        .client
        .get(format!("{}/api/v1/state?severty=alarm", analyser.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_known_path_asked_with_another_method_gets_405_with_allow() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/api/v1/pull", "POST"),
        (reqwest::Method::GET, "/api/v1/anomalies/7/approve", "POST"),
        (reqwest::Method::DELETE, "/api/v1/state", "GET"),
        (reqwest::Method::POST, "/", "GET"),
    ] {
        let response = analyser
            .client
            .request(method.clone(), format!("{}{path}", analyser.url))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_eq!(response.json::<Value>().await.unwrap()["ok"], false);
    }
    let missing = analyser.get("/api/v1/pulls").send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_documented_401_is_the_reply_a_client_gets() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let document: Value = analyser.get_json("/api/v1/openapi.json").await;
    let documented = &document["paths"]["/api/v1/state"]["get"]["responses"]["401"]["content"]
        ["application/json"]["example"];
    let reply: Value = analyser
        .client
        .get(format!("{}/api/v1/state", analyser.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(&reply, documented);
}

/// A step's rows read in two pulls (the second late, after the step was judged) chart as
/// one total, in two different hours of stored totals.
#[tokio::test]
async fn rows_of_one_step_read_in_two_pulls_chart_as_one_total() {
    let gatherer = Gatherer::start().await;
    let analyser = Analyser::start(&gatherer.url, vec![shop(&["checkout"], Method::Auto)]).await;
    let (early, late) = (minutes_ago(90), minutes_ago(30));
    let mut first = Vec::new();
    events("checkout", 7, early + 5, 3, 2, &mut first);
    events("checkout", 7, late + 5, 1, 4, &mut first);
    gatherer.post(&first).await;
    gatherer.flushed().await;
    analyser.pull().await;
    let mut second = Vec::new();
    events("checkout", 7, early + 20, 2, 5, &mut second);
    events("checkout", 7, late + 50, 1, -3, &mut second);
    gatherer.post(&second).await;
    gatherer.flushed().await;
    analyser.pull().await;

    let chart = analyser
        .get_json(&format!(
            "/api/v1/series?label=checkout&entity_id=7&from={early}&to={}",
            late + 60
        ))
        .await;
    let point = |step: i64| {
        let at = chrono::DateTime::from_timestamp(step, 0).unwrap();
        chart["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["step_start"] == json!(at))
            .map(|p| {
                (
                    p["count"].clone(),
                    p["events"].clone(),
                    p["min"].clone(),
                    p["max"].clone(),
                )
            })
    };
    assert_eq!(
        point(early),
        Some((json!(16.0), json!(5), json!(2), json!(5))),
        "{chart}"
    );
    assert_eq!(
        point(late),
        Some((json!(1.0), json!(2), json!(-3), json!(4))),
        "{chart}"
    );
    assert_eq!(
        point(early + 60),
        Some((json!(0.0), json!(0), json!(null), json!(null))),
        "{chart}"
    );
}
