//! Documentation that cannot drift: every configuration key of both services is in the
//! README's reference tables, and every metric the Grafana dashboard plots is one the
//! services export.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `section.key` for every key of a defaults document.
fn keys(defaults: &str) -> BTreeSet<String> {
    let dict: Dict = Figment::from(Toml::string(defaults)).extract().unwrap();
    let mut out = BTreeSet::new();
    for (section, value) in dict {
        match value {
            Value::Dict(_, fields) => {
                out.extend(fields.keys().map(|key| format!("{section}.{key}")))
            }
            _ => {
                out.insert(section);
            }
        }
    }
    out
}

#[test]
fn every_configuration_key_of_both_services_is_in_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut missing = Vec::new();
    let mut all = keys(gatherer::configuration::DEFAULTS);
    all.extend(keys(analyser::configuration::DEFAULTS));
    let dataset = serde_json::to_value(analyser::configuration::DatasetSettings::all("x")).unwrap();
    all.extend(dataset.as_object().unwrap().keys().cloned());
    all.extend(["name", "password_hash", "password"].map(str::to_owned));
    for key in &all {
        if !readme.contains(&format!("`{key}`")) {
            missing.push(key.clone());
        }
    }
    assert!(all.len() > 40, "{all:?}");
    assert!(
        missing.is_empty(),
        "configuration keys missing from the README's tables: {missing:?}"
    );
}

#[test]
fn every_metric_on_the_grafana_dashboard_is_exported() {
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut sources = String::new();
    for dir in ["crates/gatherer/src", "crates/analyser/src"] {
        for entry in walk(&root().join(dir)) {
            sources.push_str(&std::fs::read_to_string(entry).unwrap());
        }
    }
    let mut plotted = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("gatherer_") || word.starts_with("analyser_") {
                    // Histograms are exported as _bucket / _sum / _count series.
                    let name = word
                        .trim_end_matches("_bucket")
                        .trim_end_matches("_count")
                        .trim_end_matches("_sum");
                    plotted.insert(name.to_owned());
                }
            }
        }
    }
    assert!(plotted.len() >= 12, "{plotted:?}");
    let unknown: Vec<_> = plotted
        .iter()
        .filter(|name| !sources.contains(&format!("\"{name}\"")))
        .collect();
    assert!(
        unknown.is_empty(),
        "plotted but never recorded: {unknown:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
