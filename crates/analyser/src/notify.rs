//! Posts alarms to a Slack-style incoming webhook (`{"text": …}`): one message when an
//! incident becomes an alarm, naming every check that fired, and one when it resolves.
//!
//! Runs on its own task and reads what to send from the database (alarms with no
//! `notified_at`, resolved ones with no `resolved_notified_at`), so detection never waits
//! for it, a slow webhook only delays messages, and a restart neither loses nor repeats
//! one. Each message is retried with backoff. Labels come from bots: every one is escaped
//! and put in a code span (`present::slack_code`), so none can ping a channel or fake a
//! link. The webhook's URL is a secret (whoever has it can post to the channel): it is
//! kept out of `Debug` and of every error that is logged.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::MySqlPool;
use tokio::sync::Notify;

use crate::present::{change, number, slack_code, slack_escape};
use crate::store;

const ATTEMPTS: u32 = 4;
const RESCAN_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Notifier {
    pool: MySqlPool,
    http: reqwest::Client,
    webhook_url: SecretString,
    wake: Arc<Notify>,
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
        })
    }

    /// Sends pending alarms whenever woken (after a pull found anomalies) and every 30 s.
    pub async fn run(self) {
        loop {
            if let Err(error) = self.send_pending().await {
                tracing::warn!(%error, "webhook notification round failed; will retry");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(RESCAN_EVERY) => {}
            }
        }
    }

    async fn send_pending(&self) -> anyhow::Result<()> {
        for alarm in store::alarms_to_notify(&self.pool, 100).await? {
            let resolved = alarm.state == "resolved";
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
        self.http
            .post(self.webhook_url.expose_secret())
            .json(&serde_json::json!({ "text": text }))
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
    match (alarm.state.as_str(), alarm.resolved_at) {
        ("resolved", Some(at)) => format!(
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
