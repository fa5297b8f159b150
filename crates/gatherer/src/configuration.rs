//! Typed settings: defaults that work on a developer's machine, overridden by a TOML file
//! (`--config`), then by `GATHERER__SECTION__KEY` environment variables, `DATABASE_URL`
//! and `--port`. Secrets (the database URL, tokens) never appear in `Debug` output, and
//! none may still be the example files' placeholder `CHANGE-ME`.

use std::path::Path;
use std::time::Duration;

use figment::providers::Env;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use service::config::refuse_placeholder;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub ingest: IngestSettings,
    pub wal: WalSettings,
    pub auth: AuthSettings,
    pub nats: NatsSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `0.0.0.0` in containers.
    pub host: String,
    /// 0 = any free port; the bound address is logged.
    pub port: u16,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// How long a client may take to send a request's headers (slow loris) before 408.
    #[serde(with = "humantime_serde")]
    pub request_header_timeout: Duration,
    /// How long a client may take to send a request's body before 408.
    #[serde(with = "humantime_serde")]
    pub request_body_timeout: Duration,
    /// How long a client may take to close a connection the server is done with.
    #[serde(with = "humantime_serde")]
    pub client_disconnect_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Open connections per worker; more wait in the listen queue.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    /// Connections in the pool (flushes, exports, health checks).
    pub max_connections: u32,
    /// How long start-up waits for the database before giving up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub bucket_seconds: u32,
    /// Oldest accepted event `ts` (backfill may raise it to days).
    #[serde(with = "humantime_serde")]
    pub max_event_age: Duration,
    /// Rows (series × buckets) held in memory and not yet committed to MySQL; at the
    /// bound, `/gather` answers 503. Events summed into a row already held cost nothing.
    pub max_pending_rows: u64,
    /// How long an accepted `Idempotency-Key` is recognised: a retry within it gets the
    /// original reply and records nothing.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// Keys kept at most; the oldest go first.
    pub max_idempotency_keys: usize,
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How long after a bucket closes it is flushed, for requests still in flight.
    #[serde(with = "humantime_serde")]
    pub flush_grace: Duration,
    /// Rows in one flush transaction; a larger backlog is split into several batches.
    pub max_rows_per_batch: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalSettings {
    pub enabled: bool,
    pub dir: String,
}

/// `[nats]`: JetStream ingest, off while `url` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// `nats://host:4222` (credentials in it stay out of logs); empty = off.
    pub url: SecretString,
    /// The stream, created (work-queue retention, seven days at most) if missing.
    pub stream: String,
    /// The subjects the stream takes, when the gatherer creates it.
    pub subjects: Vec<String>,
    /// The durable pull consumer the gatherers share, created if missing.
    pub durable: String,
    /// Messages per fetch.
    pub batch: usize,
    /// Messages the server hands out before it waits for acknowledgements.
    pub max_ack_pending: i64,
    /// How long the server waits for an acknowledgement before redelivering; messages
    /// still held are reported in progress every third of it.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// A `.creds` file (JWT and NKey seed); empty = none.
    pub credentials_file: String,
    /// Where invalid messages and rejected events are republished; empty = `<stream>.dead`.
    pub dead_letter_subject: String,
}

impl NatsSettings {
    pub fn enabled(&self) -> bool {
        !self.url.expose_secret().trim().is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Bearer tokens accepted on `/gather`; empty = open. Several let a new token in
    /// before the old one goes. From one environment variable or Secret, a string of
    /// tokens separated by commas or whitespace also works.
    #[serde(deserialize_with = "token_list")]
    pub ingest_tokens: Vec<SecretString>,
    /// Bearer token required on the export endpoints; empty = open.
    #[serde(deserialize_with = "service::config::secret")]
    pub export_token: SecretString,
}

/// `auth.ingest_tokens`: a list, or one string of tokens separated by commas or whitespace.
/// A value of another type is refused without being echoed (it is a secret).
fn token_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    let tokens = match List::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom(service::config::NOT_TEXT))?
    {
        List::Many(tokens) => tokens,
        List::One(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(str::to_owned)
            .collect(),
    };
    Ok(tokens
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .map(SecretString::from)
        .collect())
}

/// The largest `ingest.max_body_bytes`: a body's write-ahead log record must stay
/// below 1 GiB, and a body costs a few times its size in memory while it is parsed.
pub const MAX_BODY_BYTES: usize = 128 << 20;

/// The defaults, as a TOML document: also what `--print-default-config` shows.
pub const DEFAULTS: &str = r#"
[server]
host = "127.0.0.1"
port = 31115
workers = 0
request_header_timeout = "5s"
request_body_timeout = "30s"
client_disconnect_timeout = "1s"
keep_alive = "5s"
max_connections = 25_000

[database]
url = "mysql://root@127.0.0.1:3306/pulse"
max_connections = 8
connect_timeout = "10s"

[ingest]
bucket_seconds = 2
max_event_age = "10m"
max_pending_rows = 2_000_000
idempotency_window = "10m"
max_idempotency_keys = 1_000_000
max_body_bytes = 16_777_216
shutdown_timeout = "30s"
flush_grace = "250ms"
max_rows_per_batch = 50_000

[wal]
enabled = false
dir = "var/gatherer-wal"

[auth]
ingest_tokens = []
export_token = ""

[nats]
url = ""
stream = "pulse"
subjects = ["pulse.events"]
durable = "gatherer"
batch = 500
max_ack_pending = 20_000
ack_wait = "30s"
credentials_file = ""
dead_letter_subject = ""
"#;

impl Settings {
    /// Loads the settings: defaults, then `file`, then the environment, then `port`.
    pub fn load(file: Option<&Path>, port: Option<u16>) -> Result<Settings, Box<figment::Error>> {
        let figment = service::config::layered(DEFAULTS, file, "GATHERER", port)?
            // Plain DATABASE_URL sets the gatherer's database (and only the gatherer's).
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            );
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings
            .validate()
            .map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        let ingest = &self.ingest;
        if !(1..=3600).contains(&ingest.bucket_seconds) {
            return Err("ingest.bucket_seconds must be between 1 and 3600".into());
        }
        if ingest.max_pending_rows == 0 {
            return Err("ingest.max_pending_rows must be at least 1".into());
        }
        if ingest.idempotency_window < Duration::from_secs(1)
            || ingest.idempotency_window > Duration::from_secs(7 * 86_400)
        {
            return Err("ingest.idempotency_window must be between 1s and 7d".into());
        }
        if ingest.max_idempotency_keys == 0 {
            return Err("ingest.max_idempotency_keys must be at least 1".into());
        }
        if ingest.max_rows_per_batch == 0 {
            return Err("ingest.max_rows_per_batch must be at least 1".into());
        }
        if ingest.max_body_bytes < 1024 {
            return Err("ingest.max_body_bytes must be at least 1024".into());
        }
        if ingest.max_body_bytes > MAX_BODY_BYTES {
            return Err(format!(
                "ingest.max_body_bytes must be at most {MAX_BODY_BYTES} (128 MiB)"
            ));
        }
        let server = &self.server;
        let between = |name: &str, value: Duration, min: Duration, max: Duration| {
            if value < min || value > max {
                Err(format!("server.{name} must be between {min:?} and {max:?}"))
            } else {
                Ok(())
            }
        };
        let hour = Duration::from_secs(3600);
        between(
            "request_header_timeout",
            server.request_header_timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        )?;
        between(
            "request_body_timeout",
            server.request_body_timeout,
            Duration::from_millis(100),
            hour,
        )?;
        between(
            "client_disconnect_timeout",
            server.client_disconnect_timeout,
            Duration::ZERO,
            Duration::from_secs(60),
        )?;
        between("keep_alive", server.keep_alive, Duration::ZERO, hour)?;
        if !(1..=1_000_000).contains(&server.max_connections) {
            return Err("server.max_connections must be between 1 and 1000000".into());
        }
        if self.wal.enabled && self.wal.dir.trim().is_empty() {
            return Err("wal.dir must not be empty when wal.enabled is true".into());
        }
        let nats = &self.nats;
        if nats.enabled() {
            let valid_name = |n: &str| {
                !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || ".*>/\\".contains(c))
            };
            if !valid_name(&nats.stream) || !valid_name(&nats.durable) {
                return Err("nats.stream and nats.durable must be names without spaces, '.', '*', '>', '/' or '\\'".into());
            }
            if nats.subjects.is_empty() || nats.subjects.iter().any(|s| s.trim().is_empty()) {
                return Err("nats.subjects must list at least one subject".into());
            }
            if !(1..=10_000).contains(&nats.batch) {
                return Err("nats.batch must be between 1 and 10000".into());
            }
            if nats.max_ack_pending < 1 {
                return Err("nats.max_ack_pending must be at least 1".into());
            }
            if nats.ack_wait < Duration::from_secs(5) {
                return Err("nats.ack_wait must be at least 5s".into());
            }
        }
        let url = self.database.url.expose_secret();
        if !url.starts_with("mysql://") && !url.starts_with("mariadb://") {
            return Err("database.url must start with mysql://".into());
        }
        refuse_placeholder("database.url", url)?;
        refuse_placeholder("nats.url", self.nats.url.expose_secret())?;
        refuse_placeholder("auth.export_token", self.auth.export_token.expose_secret())?;
        for token in &self.auth.ingest_tokens {
            refuse_placeholder("auth.ingest_tokens", token.expose_secret())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let settings = Settings::load(None, None).unwrap();
        assert_eq!(settings.server.port, 31115);
        assert_eq!(settings.ingest.bucket_seconds, 2);
        assert_eq!(settings.ingest.max_event_age, Duration::from_secs(600));
        assert_eq!(settings.ingest.max_pending_rows, 2_000_000);
        assert_eq!(settings.ingest.idempotency_window, Duration::from_secs(600));
        assert_eq!(settings.ingest.max_idempotency_keys, 1_000_000);
        assert_eq!(settings.ingest.shutdown_timeout, Duration::from_secs(30));
        assert!(!settings.wal.enabled);
        assert_eq!(
            settings.server.request_header_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(
            settings.server.request_body_timeout,
            Duration::from_secs(30)
        );
        assert_eq!(settings.server.max_connections, 25_000);
    }

    #[test]
    fn timeouts_and_limits_out_of_range_are_refused() {
        let dir = std::env::temp_dir().join(format!("gatherer-config-srv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gatherer.toml");
        for bad in [
            "[server]\nrequest_header_timeout = \"0s\"\n",
            "[server]\nrequest_body_timeout = \"2h\"\n",
            "[server]\nmax_connections = 0\n",
            "[server]\nkeep_alive = \"5\"\n",
            "[ingest]\nmax_body_bytes = 1_000_000_000\n",
            "[wal]\nenabled = true\ndir = \" \"\n",
            "[ingest]\nidempotency_window = \"0s\"\n",
            "[ingest]\nmax_idempotency_keys = 0\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            assert!(Settings::load(Some(&file), None).is_err(), "{bad}");
        }
        std::fs::write(
            &file,
            "[server]\nkeep_alive = \"0s\"\nmax_connections = 10\n",
        )
        .unwrap();
        assert!(Settings::load(Some(&file), None).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn file_and_port_override_defaults_and_secrets_do_not_print() {
        let dir = std::env::temp_dir().join(format!("gatherer-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gatherer.toml");
        std::fs::write(
            &file,
            "[database]\nurl = \"mysql://u:hunter2@db/pulse\"\n[ingest]\nmax_event_age = \"2d\"\n",
        )
        .unwrap();
        let settings = Settings::load(Some(&file), Some(0)).unwrap();
        assert_eq!(settings.server.port, 0);
        assert_eq!(
            settings.ingest.max_event_age,
            Duration::from_secs(2 * 86_400)
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ingest_tokens_come_as_a_list_or_one_string_and_never_print() {
        let dir =
            std::env::temp_dir().join(format!("gatherer-config-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gatherer.toml");
        let exposed = |settings: &Settings| -> Vec<String> {
            let tokens = &settings.auth.ingest_tokens;
            tokens
                .iter()
                .map(|t| t.expose_secret().to_owned())
                .collect()
        };
        for (toml, expected) in [
            ("ingest_tokens = [\"in-1\", \"in-2\"]", vec!["in-1", "in-2"]),
            ("ingest_tokens = \"in-1, in-2\"", vec!["in-1", "in-2"]),
            ("ingest_tokens = \"in-1\"", vec!["in-1"]),
            ("ingest_tokens = \"\"", vec![]),
        ] {
            std::fs::write(&file, format!("[auth]\n{toml}\nexport_token = \"out-1\"\n")).unwrap();
            let settings = Settings::load(Some(&file), None).unwrap();
            assert_eq!(exposed(&settings), expected, "{toml}");
            let debug = format!("{settings:?}");
            assert!(
                !debug.contains("in-1") && !debug.contains("out-1"),
                "{debug}"
            );
        }
        // A token of digits only, unquoted, reads as a number: refused without being
        // echoed.
        for toml in [
            "ingest_tokens = 73317331",
            "ingest_tokens = [73317331]",
            "export_token = 73317331",
        ] {
            std::fs::write(&file, format!("[auth]\n{toml}\n")).unwrap();
            let error = Settings::load(Some(&file), None).unwrap_err().to_string();
            assert!(
                error.contains("a secret must be text") && !error.contains("73317331"),
                "{error}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_placeholder_secret_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!(
            "gatherer-config-placeholder-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gatherer.toml");
        for (toml, setting) in [
            ("[auth]\nexport_token = \"CHANGE-ME\"", "auth.export_token"),
            (
                "[auth]\ningest_tokens = [\"real-one\", \"CHANGE-ME\"]",
                "auth.ingest_tokens",
            ),
            (
                "[auth]\ningest_tokens = \"change-me\"",
                "auth.ingest_tokens",
            ),
            (
                "[database]\nurl = \"mysql://pulse:CHANGE-ME@db/pulse\"",
                "database.url",
            ),
            (
                "[nats]\nurl = \"nats://pulse:CHANGE-ME@nats:4222\"",
                "nats.url",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            let error = Settings::load(Some(&file), None).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{setting} is still the placeholder CHANGE-ME")),
                "{toml}: {error}"
            );
            assert!(!error.contains("pulse:"), "{error}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = std::env::temp_dir().join(format!("gatherer-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gatherer.toml");
        std::fs::write(&file, "[ingest]\nbucket_secs = 2\n").unwrap();
        assert!(Settings::load(Some(&file), None).is_err());
        std::fs::write(&file, "[ingest]\nbucket_seconds = 0\n").unwrap();
        assert!(Settings::load(Some(&file), None).is_err());
        assert!(Settings::load(Some(&dir.join("missing.toml")), None).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
