//! Posts alarms to a Slack-style incoming webhook (`{"text": …}`): one message when an
//! incident becomes an alarm, naming every check that fired, and one when it resolves.
//!
//! Runs on its own task and reads what to send from the database (alarms with no
//! `notified_at`, resolved ones with no `resolved_notified_at`), so detection never waits
//! for it, a slow webhook only delays messages, and a restart neither loses nor repeats
//! one. Each message is retried with backoff. Labels come from bots: every one is escaped
//! and put in a code span (`present::slack_code`), so none can ping a channel or fake a
//! link. With `[notify] digest`, each dataset's day is also summed up once it is judged:
//! counts by severity and the strongest incidents, in Slack's `blocks` with a `text`
//! fallback, once per dataset and day (recorded in `digests`). The webhook's URL is a secret (whoever has it can post to the channel): it is
//! kept out of `Debug` and of every error that is logged.

use std::sync::Arc;
use std::time::Duration;

use protocol::IncidentState;
use secrecy::{ExposeSecret, SecretString};
use sqlx::MySqlPool;
use tokio::sync::Notify;

use crate::datasets::Datasets;
use crate::present::{change, number, slack_code, slack_escape};
use crate::reports::{self, Digest};
use crate::store;

const ATTEMPTS: u32 = 4;
const RESCAN_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Notifier {
    pool: MySqlPool,
    http: reqwest::Client,
    webhook_url: SecretString,
    wake: Arc<Notify>,
    /// With the daily digest on: the datasets, and this replica's shard.
    digests: Option<(Datasets, String)>,
}

impl Notifier {
    pub fn new(
        pool: MySqlPool,
        webhook_url: SecretString,
        wake: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Notifier {
            pool,
            http,
            webhook_url,
            wake,
            digests: None,
        })
    }

    /// Also posts each dataset's daily digest.
    pub fn with_digests(mut self, datasets: Datasets, shard_key: String) -> Self {
        self.digests = Some((datasets, shard_key));
        self
    }

    /// Sends pending alarms whenever woken (after a pull found anomalies) and every 30 s.
    pub async fn run(self) {
        loop {
            if let Err(error) = self.send_pending().await {
                tracing::warn!(%error, "webhook notification round failed; will retry");
            }
            if let Err(error) = self.send_digests().await {
                tracing::warn!(%error, "daily digest round failed; will retry");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(RESCAN_EVERY) => {}
            }
        }
    }

    async fn send_digests(&self) -> anyhow::Result<()> {
        let Some((datasets, shard_key)) = &self.digests else {
            return Ok(());
        };
        for dataset in datasets.list().iter() {
            if let Some(digest) = reports::digest_due(&self.pool, &dataset.name, shard_key).await? {
                self.post_json(&digest_message(&digest)).await?;
                reports::digest_sent(&self.pool, &digest).await?;
            }
        }
        Ok(())
    }

    async fn send_pending(&self) -> anyhow::Result<()> {
        for alarm in store::alarms_to_notify(&self.pool, 100).await? {
            let resolved = alarm.state == IncidentState::Resolved;
            let text = message(&alarm);
            let mut delay = Duration::from_millis(500);
            let mut attempt = 1;
            loop {
                match self.post(&text).await {
                    Ok(_) => break,
                    Err(error) if attempt < ATTEMPTS => {
                        tracing::warn!(%error, id = alarm.id, attempt, "webhook refused the alarm; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            store::mark_notified(&self.pool, alarm.id, resolved).await?;
        }
        Ok(())
    }
}

impl Notifier {
    /// Posts one message; an error never names the webhook's URL.
    async fn post(&self, text: &str) -> Result<(), reqwest::Error> {
        self.post_json(&serde_json::json!({ "text": text })).await
    }

    async fn post_json(&self, message: &serde_json::Value) -> Result<(), reqwest::Error> {
        self.http
            .post(self.webhook_url.expose_secret())
            .json(message)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(drop)
            // reqwest's errors name the URL: the secret stays out of the log.
            .map_err(reqwest::Error::without_url)
    }
}

/// The message for an alarm: what fired when it first fires, that it is over once resolved
/// (both at once for an alarm that had already ended when first sent).
pub fn message(alarm: &protocol::Anomaly) -> String {
    let series = format!(
        "{} entity {} in dataset {}",
        slack_code(&alarm.label),
        alarm.entity_id,
        slack_code(&alarm.dataset),
    );
    let start = alarm.period_start.format("%Y-%m-%d %H:%M");
    let end = alarm.period_end.format("%H:%M");
    let signals: Vec<String> = alarm
        .signals
        .iter()
        .map(|s| {
            format!(
                "{} {} ({}, expected {})",
                s.metric,
                number(s.observed),
                change(s.observed, s.expected),
                number(s.expected)
            )
        })
        .collect();
    let signals = slack_escape(&signals.join("; "));
    match (alarm.state, alarm.resolved_at) {
        (IncidentState::Resolved, Some(at)) => format!(
            "Pulse alarm #{} resolved: {series} is back to normal since {} UTC (it fired from {start} UTC: {signals})",
            alarm.id,
            at.format("%H:%M")
        ),
        _ => format!(
            "Pulse alarm #{}: {series}: {signals}; since {start} UTC (still firing at {end})",
            alarm.id
        ),
    }
}

/// A dataset's daily digest in Slack's `blocks`, with the same in `text` for clients that
/// show no blocks.
pub fn digest_message(digest: &Digest) -> serde_json::Value {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let title = format!(
        "Pulse daily digest: dataset {} on {} (UTC)",
        slack_code(&digest.dataset),
        digest.day
    );
    let counts = format!(
        "{}, {}, {} silenced",
        plural(digest.alarms, "alarm"),
        plural(digest.warnings, "warning"),
        digest.silenced
    );
    let top: Vec<String> = digest
        .top
        .iter()
        .map(|a| {
            // Only the label is bot-chosen text: it goes in escaped, in a code span.
            format!(
                "#{} {} {} entity {}: {} {} ({}), {}–{}",
                a.id,
                a.severity,
                slack_code(&a.label),
                a.entity_id,
                a.metric,
                number(a.observed),
                change(a.observed, a.expected),
                a.period_start.format("%H:%M"),
                a.period_end.format("%H:%M"),
            )
        })
        .map(|line| format!("• {line}"))
        .collect();
    let top = if top.is_empty() {
        "Nothing stood out.".to_owned()
    } else {
        format!("Top incidents:\n{}", top.join("\n"))
    };
    serde_json::json!({
        "text": format!("{title}: {counts}. {top}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{title}*")}},
            {"type": "section", "text": {"type": "mrkdwn", "text": counts}},
            {"type": "section", "text": {"type": "mrkdwn", "text": top}},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_post_does_not_name_the_webhook() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("http://127.0.0.1:{port}/services/T000/B000/s3cretH00k");
        let pool = MySqlPool::connect_lazy("mysql://root@127.0.0.1:1/unused").unwrap();
        let notifier = Notifier::new(pool, url.into(), Arc::default()).unwrap();
        assert!(!format!("{notifier:?}").contains("s3cretH00k"));
        let error = notifier.post("hello").await.unwrap_err();
        let shown = format!("{error} {error:?}");
        let shown = format!("{shown} {:#}", anyhow::Error::from(error));
        assert!(!shown.contains("s3cretH00k"), "{shown}");
    }

    /// Slack's webhooks are HTTPS only: the client speaks TLS (the post gets as far as
    /// connecting, where a client without TLS refuses the scheme outright).
    #[tokio::test]
    async fn a_webhook_over_https_is_posted_to() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("https://127.0.0.1:{port}/services/T000/B000/XXXX");
        let pool = MySqlPool::connect_lazy("mysql://root@127.0.0.1:1/unused").unwrap();
        let notifier = Notifier::new(pool, url.into(), Arc::default()).unwrap();
        let error = notifier.post("hello").await.unwrap_err();
        // The port refused the connection: the client got as far as opening it.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        let refused = std::iter::from_fn(|| {
            let current = cause?;
            cause = current.source();
            Some(current)
        })
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        assert!(refused, "{error:?}");
    }
}
