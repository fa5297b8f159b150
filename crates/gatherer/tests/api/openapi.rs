//! The OpenAPI document describes every route the service registers.

use serde_json::Value;

use crate::helpers::spawn_app;

/// (method, path) of every `#[get("…")]` / `#[post("…")]` handler in the crate's source.
fn routes_in_source() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
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
