//! Typed settings: defaults that work on a developer's machine, overridden by a TOML file
//! (`--config`), then by `ANALYSER__SECTION__KEY` environment variables and `--port`.
//! Secrets (the database URL, tokens, passwords, the webhook) never appear in `Debug`
//! output, and none may still be the example files' placeholder `CHANGE-ME`.

mod datasets;

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use service::config::refuse_placeholder;

pub use datasets::{DatasetSettings, Method};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub gatherer: GathererSettings,
    pub shard: ShardSettings,
    pub auth: AuthSettings,
    #[serde(default)]
    pub datasets: Vec<DatasetSettings>,
    pub notify: NotifySettings,
    pub reports: ReportSettings,
    pub feedback: FeedbackSettings,
}

/// What analysts' verdicts teach.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackSettings {
    /// How long a dismissal as expected teaches its series, from the anomaly's start.
    #[serde(with = "humantime_serde")]
    pub feedback_ttl: Duration,
}

/// Scheduled reports: each dataset's report computed and kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// How often each dataset's report is computed and stored.
    #[serde(with = "humantime_serde")]
    pub report_every: Duration,
    /// How long stored reports are kept.
    #[serde(with = "humantime_serde")]
    pub report_retention: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GathererSettings {
    /// Base URL of the gatherer whose export this analyser follows.
    pub url: String,
    /// Bearer token for the export, when the gatherer requires one.
    #[serde(deserialize_with = "service::config::secret")]
    pub export_token: SecretString,
    /// How often the analyser pulls on its own.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Rows per export page (at most 10 000).
    pub page_size: u32,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// This replica's share of the labels: those whose FNV-1a hash mod `count` is `index`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShardSettings {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Optional file of `name:$argon2id$…` lines (e.g. a mounted Kubernetes Secret).
    pub users_file: String,
    #[serde(default)]
    pub users: Vec<UserSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub name: String,
    /// An argon2 PHC string (`$argon2id$…`), as printed by `analyser hash-password`.
    #[serde(default)]
    pub password_hash: Option<SecretString>,
    /// A plain password, for development only.
    #[serde(default, deserialize_with = "service::config::optional_secret")]
    pub password: Option<SecretString>,
    /// What the user may do; absent = `admin`, as before roles existed.
    #[serde(default)]
    pub role: Option<Role>,
}

/// What a user may do, each role allowing what the one before it does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads anomalies, series, reports, silences and datasets.
    Viewer,
    /// Also gives verdicts, manages silences and triggers pulls.
    Analyst,
    /// Also manages datasets.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "analyst" => Some(Role::Analyst),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Slack-style incoming webhook for new alarms; empty = off. A secret: whoever has
    /// it can post to the channel.
    pub webhook_url: SecretString,
    /// A daily digest per dataset to the webhook: counts by severity and the top incidents
    /// of each UTC day, once the day is judged.
    pub digest: bool,
}

/// The defaults, as a TOML document.
pub const DEFAULTS: &str = r#"
[server]
host = "127.0.0.1"
port = 31116
workers = 0

[database]
url = "mysql://root@127.0.0.1:3306/pulse_analyser"
max_connections = 8
connect_timeout = "10s"

[gatherer]
url = "http://127.0.0.1:31115"
export_token = ""
poll_interval = "2s"
page_size = 5000
request_timeout = "30s"

[shard]
index = 0
count = 1

[auth]
users_file = ""

[notify]
webhook_url = ""
digest = false

[reports]
report_every = "1h"
report_retention = "90d"

[feedback]
feedback_ttl = "14d"
"#;

impl Settings {
    /// Loads the settings: defaults, then `file`, then the environment, then `port`.
    pub fn load(file: Option<&Path>, port: Option<u16>) -> Result<Settings, Box<figment::Error>> {
        let figment = service::config::layered(DEFAULTS, file, "ANALYSER", port)?;
        let mut settings: Settings = figment.extract().map_err(Box::new)?;
        if settings.datasets.is_empty() {
            settings.datasets.push(DatasetSettings::all("all"));
        }
        settings
            .validate()
            .map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        if self.shard.count == 0 || self.shard.index >= self.shard.count {
            return Err("shard.index must be below shard.count (and count at least 1)".into());
        }
        if !(1..=10_000).contains(&self.gatherer.page_size) {
            return Err("gatherer.page_size must be between 1 and 10000".into());
        }
        if self.reports.report_every < Duration::from_secs(1) {
            return Err("reports.report_every must be at least 1s".into());
        }
        if self.reports.report_retention < self.reports.report_every {
            return Err("reports.report_retention must be at least reports.report_every".into());
        }
        if self.feedback.feedback_ttl < Duration::from_secs(1) {
            return Err("feedback.feedback_ttl must be at least 1s".into());
        }
        if self.gatherer.poll_interval.is_zero() {
            return Err("gatherer.poll_interval must be positive".into());
        }
        if !self.database.url.expose_secret().starts_with("mysql://") {
            return Err("database.url must start with mysql://".into());
        }
        refuse_placeholder("database.url", self.database.url.expose_secret())?;
        refuse_placeholder(
            "gatherer.export_token",
            self.gatherer.export_token.expose_secret(),
        )?;
        refuse_placeholder(
            "notify.webhook_url",
            self.notify.webhook_url.expose_secret(),
        )?;
        for user in &self.auth.users {
            for (what, secret) in [
                ("password", &user.password),
                ("password_hash", &user.password_hash),
            ] {
                if let Some(secret) = secret {
                    let setting = format!("the {what} of user {:?}", user.name);
                    refuse_placeholder(&setting, secret.expose_secret())?;
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for d in &self.datasets {
            d.check()
                .map_err(|e| format!("dataset {:?}: {e}", d.name))?;
            if !names.insert(d.name.as_str()) {
                return Err(format!("dataset {:?}: names must be unique", d.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract_with_one_dataset_over_everything() {
        let settings = Settings::load(None, None).unwrap();
        assert_eq!(settings.server.port, 31116);
        assert_eq!(settings.gatherer.poll_interval, Duration::from_secs(2));
        assert_eq!(settings.datasets.len(), 1);
        let all = &settings.datasets[0];
        assert_eq!(all.time_step, Duration::from_secs(60));
        assert_eq!(all.window_steps(), 30);
        assert_eq!(all.method, Method::Auto);
        assert_eq!(
            settings.feedback.feedback_ttl,
            Duration::from_secs(14 * 86_400)
        );
    }

    #[test]
    fn feedback_ttl_is_a_duration_of_at_least_a_second() {
        let dir = std::env::temp_dir().join(format!("analyser-feedback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("analyser.toml");
        std::fs::write(&file, "[feedback]\nfeedback_ttl = \"36h\"\n").unwrap();
        let settings = Settings::load(Some(&file), None).unwrap();
        assert_eq!(
            settings.feedback.feedback_ttl,
            Duration::from_secs(36 * 3600)
        );
        for (toml, error) in [
            (
                "feedback_ttl = \"0s\"",
                "feedback.feedback_ttl must be at least 1s",
            ),
            ("feedback_ttl = \"a fortnight\"", "feedback_ttl"),
            ("ttl = \"14d\"", "ttl"),
        ] {
            std::fs::write(&file, format!("[feedback]\n{toml}\n")).unwrap();
            let refused = Settings::load(Some(&file), None).unwrap_err().to_string();
            assert!(refused.contains(error), "{toml}: {refused}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn datasets_and_users_come_from_the_file_and_secrets_do_not_print() {
        let dir = std::env::temp_dir().join(format!("analyser-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("analyser.toml");
        std::fs::write(
            &file,
            r#"
[[auth.users]]
name = "analyst"
password = "hunter2"

[[datasets]]
name = "shop"
labels = ["checkout"]
time_step = "1m"
time_ago = "30m"
method = "three_sigma"
"#,
        )
        .unwrap();
        let settings = Settings::load(Some(&file), Some(0)).unwrap();
        assert_eq!(settings.datasets[0].name, "shop");
        assert_eq!(settings.datasets[0].method, Method::ThreeSigma);
        assert_eq!(settings.auth.users[0].name, "analyst");
        assert!(!format!("{settings:?}").contains("hunter2"));
        std::fs::write(
            &file,
            "[[datasets]]\nname = \"x\"\ntime_step = \"1m\"\ntime_ago = \"90s\"\n",
        )
        .unwrap();
        assert!(Settings::load(Some(&file), None).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_placeholder_secret_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!(
            "analyser-config-placeholder-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("analyser.toml");
        for (toml, setting) in [
            (
                "[gatherer]\nexport_token = \"CHANGE-ME\"",
                "gatherer.export_token",
            ),
            (
                "[database]\nurl = \"mysql://pulse:CHANGE-ME@db/pulse_analyser\"",
                "database.url",
            ),
            (
                "[notify]\nwebhook_url = \"https://hooks.example.org/CHANGE-ME\"",
                "notify.webhook_url",
            ),
            (
                "[[auth.users]]\nname = \"analyst\"\npassword = \"change-me\"",
                "the password of user \"analyst\"",
            ),
            (
                "[[auth.users]]\nname = \"bob\"\npassword_hash = \"CHANGE-ME\"",
                "the password_hash of user \"bob\"",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            let error = Settings::load(Some(&file), None).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{setting} is still the placeholder CHANGE-ME")),
                "{toml}: {error}"
            );
            assert!(
                !error.contains("pulse:") && !error.contains("hooks."),
                "{error}"
            );
        }
        // A secret of digits only, unquoted, reads as a number: refused, not echoed.
        for toml in [
            "[gatherer]\nexport_token = 73317331",
            "[[auth.users]]\nname = \"analyst\"\npassword = 73317331",
        ] {
            std::fs::write(&file, toml).unwrap();
            let error = Settings::load(Some(&file), None).unwrap_err().to_string();
            assert!(
                error.contains("a secret must be text") && !error.contains("73317331"),
                "{error}"
            );
        }
        std::fs::write(
            &file,
            "[notify]\nwebhook_url = \"https://hooks.example.org/T0/B0/s3cret\"\n",
        )
        .unwrap();
        let settings = Settings::load(Some(&file), None).unwrap();
        assert!(!format!("{settings:?}").contains("s3cret"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
