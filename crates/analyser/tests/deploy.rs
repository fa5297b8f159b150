//! The deploy files cannot be run here (no container engine), so they are checked against
//! the code: every YAML file parses, every `GATHERER__…` / `ANALYSER__…` variable they set
//! is a configuration key the service accepts with that value, the ports are the
//! services' ports, and the shipped configurations load. And they are secure by default:
//! a gatherer reachable from other machines has ingest and export tokens, taken from a
//! Secret or from the `.env` that `scripts/deploy-secrets.sh` generates, never written in
//! the file; the example Secrets hold only the placeholder the services refuse; a
//! NetworkPolicy guards every service; every Ingress ends TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64ct::Encoding;
use secrecy::ExposeSecret;
use yaml_rust2::{Yaml, YamlLoader};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy() -> PathBuf {
    repository().join("deploy")
}

fn documents(file: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(deploy().join(file)).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

const FILES: [&str; 7] = [
    "docker-compose.yml",
    "k8s/gatherer.yaml",
    "k8s/nats.yaml",
    "k8s/analyser.yaml",
    "k8s/cronjob.yaml",
    "k8s/network-policy.yaml",
    "k8s/secrets.example.yaml",
];

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// Written in the file; in the compose file, `${NAME:?…}` takes it from `.env`.
    Literal(String),
    /// A key of a Kubernetes Secret.
    Secret { name: String, key: String },
}

/// One container's environment, as the file sets it.
#[derive(Debug)]
struct Container {
    file: &'static str,
    vars: Vec<(String, Source)>,
}

impl Container {
    fn get(&self, name: &str) -> Option<&Source> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    fn ours(&self) -> impl Iterator<Item = &(String, Source)> {
        self.vars
            .iter()
            .filter(|(name, _)| name.starts_with("GATHERER__") || name.starts_with("ANALYSER__"))
    }
}

/// The environment of each container in a YAML tree (a compose service's `environment`
/// map, a Kubernetes container's `env` list).
fn containers(file: &'static str, node: &Yaml, out: &mut Vec<Container>) {
    match node {
        Yaml::Hash(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    (Some("environment"), Yaml::Hash(vars)) => {
                        let vars = vars
                            .iter()
                            .map(|(name, value)| {
                                let value = match value {
                                    Yaml::String(s) => s.clone(),
                                    Yaml::Integer(i) => i.to_string(),
                                    other => panic!("{name:?}: unexpected value {other:?}"),
                                };
                                (name.as_str().unwrap().to_owned(), Source::Literal(value))
                            })
                            .collect();
                        out.push(Container { file, vars });
                    }
                    (Some("env"), Yaml::Array(vars)) => {
                        let vars = vars
                            .iter()
                            .map(|var| {
                                let name = var["name"].as_str().unwrap().to_owned();
                                let secret = &var["valueFrom"]["secretKeyRef"];
                                let source = match var["value"].as_str() {
                                    Some(value) => Source::Literal(value.to_owned()),
                                    None => Source::Secret {
                                        name: secret["name"].as_str().unwrap().to_owned(),
                                        key: secret["key"].as_str().unwrap().to_owned(),
                                    },
                                };
                                (name, source)
                            })
                            .collect();
                        out.push(Container { file, vars });
                    }
                    _ => {}
                }
                containers(file, value, out);
            }
        }
        Yaml::Array(items) => items.iter().for_each(|item| containers(file, item, out)),
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

/// Compose's interpolation of `${NAME}`, `${NAME:?message}` and `${NAME:-default}`.
fn interpolate(text: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        let expression = &rest[start + 2..end];
        let name = expression
            .split([':', '-', '?'])
            .next()
            .unwrap_or(expression);
        let value = match (env.get(name), expression.split_once(":-")) {
            (Some(value), _) => value.clone(),
            (None, Some((_, default))) => default.to_owned(),
            (None, None) => panic!("compose would refuse to start: {name} is not in .env"),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The files `scripts/deploy-secrets.sh` writes for compose, in a fresh directory: `.env`
/// read into a map, and the path of the users file.
fn generated_secrets() -> (HashMap<String, String>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("pulse-deploy-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let output = std::process::Command::new(repository().join("scripts/deploy-secrets.sh"))
        .arg("--out")
        .arg(&dir)
        .env("PULSE_ANALYSER", env!("CARGO_BIN_EXE_analyser"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(dir.join(".env")).unwrap();
    let env: HashMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect();
    // A second run keeps what the first one made.
    let again = std::process::Command::new(repository().join("scripts/deploy-secrets.sh"))
        .arg("--out")
        .arg(&dir)
        .env("PULSE_ANALYSER", env!("CARGO_BIN_EXE_analyser"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(dir.join(".env")).unwrap(), text);
    (env, dir.join("users"))
}

/// The values of the example Secrets, by (Secret, key).
fn example_secrets() -> HashMap<(String, String), String> {
    let mut secrets = HashMap::new();
    for document in documents("k8s/secrets.example.yaml") {
        assert_eq!(document["kind"].as_str(), Some("Secret"));
        let name = document["metadata"]["name"].as_str().unwrap();
        for (key, value) in document["stringData"].as_hash().unwrap() {
            secrets.insert(
                (name.to_owned(), key.as_str().unwrap().to_owned()),
                value.as_str().unwrap().to_owned(),
            );
        }
    }
    secrets
}

/// A container's variables with their values: the compose file's interpolated from the
/// generated `.env`, Secrets' from `secrets`.
fn resolve(
    container: &Container,
    env: &HashMap<String, String>,
    secrets: &HashMap<(String, String), String>,
) -> Vec<(String, String)> {
    container
        .ours()
        .map(|(name, source)| {
            let value = match source {
                Source::Literal(text) => interpolate(text, env),
                Source::Secret { name: secret, key } => secrets
                    .get(&(secret.clone(), key.clone()))
                    .unwrap_or_else(|| panic!("{name}: no Secret {secret} with key {key}"))
                    .clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

/// What the service makes of these variables (set for the call only).
fn load(vars: &[(String, String)]) -> Result<Loaded, String> {
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
    let gatherer = vars.iter().any(|(name, _)| name.starts_with("GATHERER__"));
    let analyser = vars.iter().any(|(name, _)| name.starts_with("ANALYSER__"));
    let loaded = match (gatherer, analyser) {
        (true, false) => gatherer::configuration::Settings::load(None, None)
            .map(|s| Loaded::Gatherer(Box::new(s)))
            .map_err(|e| e.to_string()),
        (false, true) => analyser::configuration::Settings::load(None, None)
            .map(|s| Loaded::Analyser(Box::new(s)))
            .map_err(|e| e.to_string()),
        (false, false) => Ok(Loaded::Neither),
        (true, true) => panic!("one container configures both services: {vars:?}"),
    };
    for (name, _) in vars {
        std::env::remove_var(name);
    }
    loaded
}

enum Loaded {
    Gatherer(Box<gatherer::configuration::Settings>),
    Analyser(Box<analyser::configuration::Settings>),
    Neither,
}

/// Whether a value is a secret kept out of the file: a Secret's key, or compose's
/// interpolation of a variable of `.env` that stops the start when it is missing.
fn from_a_secret(source: Option<&Source>) -> bool {
    match source {
        Some(Source::Secret { .. }) => true,
        Some(Source::Literal(text)) => {
            text.starts_with("${") && text.ends_with('}') && text.contains(":?")
        }
        None => false,
    }
}

/// The labels a workload gives its pods, by the workload's name.
fn pod_labels() -> HashMap<String, Yaml> {
    let mut labels = HashMap::new();
    for file in FILES {
        for document in documents(file) {
            let name = document["metadata"]["name"].as_str().unwrap_or_default();
            let template = match document["kind"].as_str() {
                Some("Deployment" | "StatefulSet") => &document["spec"]["template"],
                Some("CronJob") => &document["spec"]["jobTemplate"]["spec"]["template"],
                _ => continue,
            };
            labels.insert(name.to_owned(), template["metadata"]["labels"].clone());
        }
    }
    labels
}

/// Whether a label selector (`matchLabels`) picks pods with these labels.
fn selects(selector: &Yaml, labels: &Yaml) -> bool {
    selector["matchLabels"].as_hash().is_some_and(|wanted| {
        wanted
            .iter()
            .all(|(k, v)| &labels[k.as_str().unwrap()] == v)
    })
}

/// One test: it sets environment variables, which the other tests of this binary would see.
#[test]
fn deploy_files_match_the_code_and_are_secure_by_default() {
    let mut found = Vec::new();
    let mut seen_ports = Vec::new();
    for file in FILES {
        for document in documents(file) {
            containers(file, &document, &mut found);
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

    // Every example Secret holds the placeholder, nothing anyone could use.
    let examples = example_secrets();
    for ((secret, key), value) in &examples {
        // (A user name is no secret.)
        if key != "user" {
            assert!(
                value.contains("CHANGE-ME"),
                "{secret}/{key} is usable as it is"
            );
        }
    }
    // The same Secrets with values of one's own, as an operator creates them.
    let own: HashMap<_, _> = examples
        .iter()
        .map(|(at, value)| {
            (
                at.clone(),
                value.replace("CHANGE-ME", &format!("own-{}", at.1)),
            )
        })
        .collect();
    let (env, users_file) = generated_secrets();
    for name in [
        "PULSE_INGEST_TOKENS",
        "PULSE_EXPORT_TOKEN",
        "PULSE_DB_PASSWORD",
        "PULSE_ANALYST_PASSWORD",
    ] {
        let value = &env[name];
        assert!(
            value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
    }

    let mut checked = 0;
    let mut gatherers = 0;
    let (mut export_tokens, mut analysers) = (Vec::new(), 0);
    for container in &found {
        let at = format!("{}: {:?}", container.file, container.vars);
        let vars = resolve(container, &env, &own);
        let loaded = load(&vars).unwrap_or_else(|e| panic!("{at}: {e}"));
        checked += vars.len();
        let uses_secrets = container
            .ours()
            .any(|(_, source)| matches!(source, Source::Secret { .. }));
        if uses_secrets {
            // As the example Secrets stand, the service refuses to start, naming why.
            let error = load(&resolve(container, &env, &examples))
                .err()
                .unwrap_or_else(|| panic!("{at}: starts with the example Secrets"));
            assert!(
                error.contains("is still the placeholder CHANGE-ME"),
                "{at}: {error}"
            );
        }
        match loaded {
            Loaded::Gatherer(settings) => {
                gatherers += 1;
                let beyond_loopback = !settings.server.host.starts_with("127.");
                if beyond_loopback {
                    // Published without tokens, anyone who reaches it reads every metric
                    // and writes into them.
                    for name in [
                        "GATHERER__AUTH__INGEST_TOKENS",
                        "GATHERER__AUTH__EXPORT_TOKEN",
                    ] {
                        assert!(
                            from_a_secret(container.get(name)),
                            "{at}: the gatherer listens on {} without {name} from a secret",
                            settings.server.host
                        );
                    }
                    assert!(!settings.auth.ingest_tokens.is_empty(), "{at}");
                    let export = settings.auth.export_token.expose_secret().to_owned();
                    assert!(!export.is_empty(), "{at}");
                    export_tokens.push(export);
                }
            }
            Loaded::Analyser(settings) => {
                analysers += 1;
                assert!(
                    from_a_secret(container.get("ANALYSER__GATHERER__EXPORT_TOKEN")),
                    "{at}: the analyser reads the export without its token"
                );
                export_tokens.push(settings.gatherer.export_token.expose_secret().to_owned());
            }
            Loaded::Neither => {}
        }
    }
    assert!(checked >= 20, "only {checked} variables found");
    assert_eq!(gatherers, 2, "compose's gatherer and Kubernetes'");
    assert_eq!(analysers, 3, "compose's analyser and two Kubernetes shards");
    // The analysers send the token the gatherer of their file requires.
    export_tokens.sort();
    export_tokens.dedup();
    assert_eq!(export_tokens.len(), 2, "{export_tokens:?}");

    // Compose refuses to start, naming the script, while .env is missing.
    let compose = std::fs::read_to_string(deploy().join("docker-compose.yml")).unwrap();
    for reference in compose.split("${").skip(1) {
        let expression = reference.split('}').next().unwrap();
        assert!(
            expression.ends_with(":?run scripts/deploy-secrets.sh first"),
            "${{{expression}}}"
        );
    }

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

    // The generated users file holds a real hash of the generated password; the example
    // users Secret is refused.
    let mut auth = settings.auth.clone();
    auth.users_file = users_file.display().to_string();
    let users = analyser::auth::Users::load(&auth).unwrap();
    let credentials = format!("analyst:{}", env["PULSE_ANALYST_PASSWORD"]);
    let header = format!(
        "Basic {}",
        base64ct::Base64::encode_string(credentials.as_bytes())
    );
    assert_eq!(
        users.check(Some(&header), None).map(|u| u.name),
        Ok("analyst".to_owned())
    );
    std::fs::remove_dir_all(users_file.parent().unwrap()).unwrap();
    let example_users = std::env::temp_dir().join(format!("pulse-users-{}", std::process::id()));
    std::fs::write(
        &example_users,
        &examples[&("pulse-analyser-users".to_owned(), "users".to_owned())],
    )
    .unwrap();
    auth.users_file = example_users.display().to_string();
    let error = analyser::auth::Users::load(&auth).unwrap_err().to_string();
    std::fs::remove_file(&example_users).unwrap();
    assert!(
        error.contains("is still the placeholder CHANGE-ME"),
        "{error}"
    );

    // A NetworkPolicy admits callers to each service: the analysers to the gatherer, the
    // pull CronJob to the analysers, the gatherers to NATS.
    let labels = pod_labels();
    let policies: Vec<Yaml> = documents("k8s/network-policy.yaml");
    let admits = |target: &str, caller: &str| {
        policies.iter().any(|policy| {
            selects(&policy["spec"]["podSelector"], &labels[target])
                && policy["spec"]["policyTypes"]
                    .as_vec()
                    .is_some_and(|t| t.contains(&Yaml::String("Ingress".into())))
                && policy["spec"]["ingress"]
                    .as_vec()
                    .unwrap()
                    .iter()
                    .any(|rule| {
                        rule["from"]
                            .as_vec()
                            .unwrap()
                            .iter()
                            .any(|from| selects(&from["podSelector"], &labels[caller]))
                    })
        })
    };
    for (target, caller) in [
        ("pulse-gatherer", "pulse-analyser-0"),
        ("pulse-gatherer", "pulse-analyser-1"),
        ("pulse-analyser-0", "pulse-analyser-pull"),
        ("pulse-analyser-1", "pulse-analyser-pull"),
        ("pulse-nats", "pulse-gatherer"),
    ] {
        assert!(admits(target, caller), "{caller} cannot reach {target}");
    }
    // ... and no one else inside the cluster without the client label.
    assert!(!admits("pulse-gatherer", "pulse-analyser-pull"));
    assert!(!admits("pulse-nats", "pulse-analyser-0"));

    // Both services are published through an Ingress, and every Ingress ends TLS for
    // every host it serves.
    let mut published = Vec::new();
    for file in FILES {
        for ingress in documents(file)
            .into_iter()
            .filter(|d| d["kind"].as_str() == Some("Ingress"))
        {
            let tls_hosts: Vec<&Yaml> = ingress["spec"]["tls"]
                .as_vec()
                .unwrap_or_else(|| panic!("{file}: an Ingress without TLS"))
                .iter()
                .flat_map(|tls| tls["hosts"].as_vec().unwrap())
                .collect();
            for rule in ingress["spec"]["rules"].as_vec().unwrap() {
                assert!(
                    tls_hosts.contains(&&rule["host"]),
                    "{file}: {:?} without TLS",
                    rule["host"]
                );
                for path in rule["http"]["paths"].as_vec().unwrap() {
                    published.push(
                        path["backend"]["service"]["name"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    );
                }
            }
        }
    }
    assert!(
        published.contains(&"pulse-gatherer".to_owned()),
        "{published:?}"
    );
    assert!(
        published.contains(&"pulse-analyser".to_owned()),
        "{published:?}"
    );

    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("-p gatherer -p analyser"));
    assert!(dockerfile.contains(&format!("EXPOSE {gatherer_port} {analyser_port}")));
}
