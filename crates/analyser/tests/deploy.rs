//! The deploy files cannot be run here (no container engine), so they are checked against
//! the code: every YAML file parses, every `GATHERER__…` / `ANALYSER__…` variable they set
//! is a configuration key the service accepts with that value, the ports are the
//! services' ports, and the shipped configurations and example credentials load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use base64ct::Encoding;
use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn documents(file: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(deploy().join(file)).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The environment variables of each container in a YAML tree (a compose service's
/// `environment` map, a Kubernetes container's `env` list; values from secrets get a
/// placeholder), one group per container.
fn env_vars(node: &Yaml, out: &mut Vec<Vec<(String, String)>>) {
    match node {
        Yaml::Hash(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("environment"), Yaml::Hash(vars)) => {
                        let group = vars
                            .iter()
                            .map(|(name, value)| {
                                let value = match value {
                                    Yaml::String(s) => s.clone(),
                                    Yaml::Integer(i) => i.to_string(),
                                    other => panic!("{name:?}: unexpected value {other:?}"),
                                };
                                (name.as_str().unwrap().to_owned(), value)
                            })
                            .collect();
                        out.push(group);
                    }
                    (Some("env"), Yaml::Array(vars)) => {
                        let group = vars
                            .iter()
                            .map(|var| {
                                let name = var["name"].as_str().unwrap().to_owned();
                                let value = var["value"].as_str().map_or_else(
                                    || "mysql://secret@db:3306/x".to_owned(),
                                    str::to_owned,
                                );
                                (name, value)
                            })
                            .collect();
                        out.push(group);
                    }
                    _ => {}
                }
                env_vars(value, out);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|item| env_vars(item, out)),
        _ => {}
    }
}

fn ports(node: &Yaml, out: &mut Vec<i64>) {
    match node {
        Yaml::Hash(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("containerPort" | "port"), Yaml::Integer(port)) => out.push(*port),
                    (Some("ports"), Yaml::Array(items)) => {
                        for item in items {
                            if let Some(mapping) = item.as_str() {
                                out.extend(mapping.split(':').map(|p| p.parse::<i64>().unwrap()));
                            }
                        }
                    }
                    _ => {}
                }
                ports(value, out);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|item| ports(item, out)),
        _ => {}
    }
}

/// One test: it sets environment variables, which the other tests of this binary would see.
#[test]
fn deploy_files_match_the_code() {
    let files = [
        "docker-compose.yml",
        "k8s/gatherer.yaml",
        "k8s/nats.yaml",
        "k8s/analyser.yaml",
        "k8s/cronjob.yaml",
        "k8s/secrets.example.yaml",
    ];
    let mut vars = Vec::new();
    let mut seen_ports = Vec::new();
    for file in files {
        for document in documents(file) {
            env_vars(&document, &mut vars);
            ports(&document, &mut seen_ports);
        }
    }
    let gatherer_port = i64::from(
        gatherer::configuration::Settings::load(None, None)
            .unwrap()
            .server
            .port,
    );
    let analyser_port = i64::from(
        analyser::configuration::Settings::load(None, None)
            .unwrap()
            .server
            .port,
    );
    // NATS's client port: the server the gatherers consume from.
    let nats_port = 4222;
    assert!(
        seen_ports
            .iter()
            .all(|p| [gatherer_port, analyser_port, nats_port].contains(p)),
        "{seen_ports:?}"
    );
    assert!(seen_ports.contains(&gatherer_port) && seen_ports.contains(&analyser_port));

    let mut checked = 0;
    for group in &vars {
        let ours: Vec<_> = group
            .iter()
            .filter(|(name, _)| name.starts_with("GATHERER__") || name.starts_with("ANALYSER__"))
            .collect();
        for (name, value) in &ours {
            std::env::set_var(name, value);
        }
        let gatherer = ours.iter().any(|(name, _)| name.starts_with("GATHERER__"));
        let analyser = ours.iter().any(|(name, _)| name.starts_with("ANALYSER__"));
        let loaded = match (gatherer, analyser) {
            (true, false) => gatherer::configuration::Settings::load(None, None).map(|_| ()),
            (false, true) => analyser::configuration::Settings::load(None, None).map(|_| ()),
            (false, false) => Ok(()),
            (true, true) => panic!("one container configures both services: {group:?}"),
        };
        for (name, _) in &ours {
            std::env::remove_var(name);
        }
        assert!(loaded.is_ok(), "{ours:?}: {}", loaded.unwrap_err());
        checked += ours.len();
    }
    assert!(checked >= 15, "only {checked} variables found");

    // The analyser configuration shipped for compose and the one in the ConfigMap load.
    let compose_config = deploy().join("analyser.toml");
    let settings = analyser::configuration::Settings::load(Some(&compose_config), None).unwrap();
    assert_eq!(settings.auth.users_file, "/etc/pulse/users");
    let config_map = &documents("k8s/analyser.yaml")[0]["data"]["analyser.toml"];
    let file = std::env::temp_dir().join(format!("pulse-configmap-{}.toml", std::process::id()));
    std::fs::write(&file, config_map.as_str().unwrap()).unwrap();
    let settings = analyser::configuration::Settings::load(Some(&file), None).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(settings.datasets[0].name, "shop");

    // The example users file holds a real hash of the password its comment names.
    let mut auth = settings.auth.clone();
    auth.users_file = deploy().join("users.example").display().to_string();
    let users = analyser::auth::Users::load(&auth).unwrap();
    let header = format!(
        "Basic {}",
        base64ct::Base64::encode_string(b"analyst:change-me")
    );
    assert_eq!(users.check(Some(&header), None), Ok("analyst".to_owned()));

    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("-p gatherer -p analyser"));
    assert!(dockerfile.contains(&format!("EXPOSE {gatherer_port} {analyser_port}")));
}
