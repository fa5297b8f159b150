//! The OpenAPI document describes every route the service registers.

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with};

/// (method, path) of every `#[get("…")]` / `#[post("…")]` handler in the crate's source.
fn routes_in_source() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut routes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            for method in ["get", "post", "put", "delete", "patch"] {
                if let Some(rest) = line.trim().strip_prefix(&format!("#[{method}(\"")) {
                    let path = rest.split('"').next().unwrap();
                    routes.push((method.to_owned(), path.to_owned()));
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let mut app = spawn_app().await;
    let document: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let routes = routes_in_source();
    assert!(routes.len() >= 8, "{routes:?}");
    for (method, path) in routes {
        assert!(
            document["paths"][&path][&method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let schemas = &document["components"]["schemas"];
    for schema in [
        "Event",
        "GatherReply",
        "ExportPage",
        "ExportRow",
        "ErrorReply",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    // Retrying safely is part of the ingest contract: the header, the replay's marker and
    // the 409 for a key still in flight are documented.
    let gather = &document["paths"]["/gather"]["post"];
    let parameters = gather["parameters"].as_array().unwrap();
    assert!(
        parameters
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{gather}"
    );
    assert!(gather["responses"]["200"]["headers"]["Idempotent-Replayed"].is_object());
    assert!(gather["responses"]["409"].is_object());
    app.shutdown().await;
}

#[tokio::test]
async fn a_known_path_asked_with_another_method_gets_405_with_allow() {
    let mut app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/gather", "POST"),
        (reqwest::Method::PUT, "/gather", "POST"),
        (reqwest::Method::GET, "/stat", "POST"),
        (reqwest::Method::POST, "/api/v1/export", "GET"),
        (reqwest::Method::DELETE, "/health/ready", "GET"),
    ] {
        let response = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["ok"], false);
        let error = reply["error"].as_str().unwrap();
        assert!(
            error.contains(method.as_str()) && error.contains(allow),
            "{error}"
        );
    }
    let missing = app.get("/gatherr").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"],
        "no such endpoint"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn every_endpoint_refuses_a_query_parameter_it_does_not_take_and_names_it() {
    let mut app = spawn_app().await;
    let document: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(
                    method.clone(),
                    format!("{}{path}?severty=alarm", app.address),
                )
                .body(r#"{"label":"checkout","id":1,"value":1}"#)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{method} {path}");
            let reply: Value = response.json().await.unwrap();
            assert_eq!(reply["parameter"], "severty", "{method} {path}: {reply}");
            let error = reply["error"].as_str().unwrap();
            assert!(
                error.starts_with("unknown query parameter severty"),
                "{error}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked}");

    // A documented parameter passes; a misspelt one is named with what the endpoint takes.
    let page = app.get("/api/v1/export?iterator=0&limit=1").await;
    assert_eq!(page.status(), 200);
    let reply: Value = app
        .get("/api/v1/export?iterator=0&limt=1&x=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["error"],
        "unknown query parameters limt, x: GET /api/v1/export takes from, to, iterator, limit"
    );
    // The refused POST /gather recorded nothing.
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["pending"], 0, "{ready}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_documented_401_is_the_reply_a_client_gets() {
    let mut app = spawn_app_with(|s| {
        s.auth.ingest_tokens = vec!["in-token".to_owned().into()];
        s.auth.export_token = "out-token".to_owned().into();
    })
    .await;
    let document: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    for (method, path) in [
        (reqwest::Method::POST, "/gather"),
        (reqwest::Method::GET, "/api/v1/export"),
        (reqwest::Method::POST, "/stat"),
    ] {
        let documented = &document["paths"][path][method.as_str().to_lowercase()]["responses"]
            ["401"]["content"]["application/json"]["example"];
        let response = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(&reply, documented, "{method} {path}");
    }
    // Every error reply's schema shows `ok: false`.
    assert_eq!(
        document["components"]["schemas"]["ErrorReply"]["properties"]["ok"]["example"],
        false
    );
    app.shutdown().await;
}
