//! Posts alarms to a Slack-style incoming webhook (`{"text": …}`): one message when an
//! incident becomes an alarm, naming every check that fired, and one when it resolves.
//!
//! Runs on its own task and reads what to send from the database (alarms with no
//! `notified_at`, resolved ones with no `resolved_notified_at`), so detection never waits
//! for it, a slow webhook only delays messages, and a restart neither loses nor repeats
//! one. Each message is retried with backoff. Labels come from bots: every one is escaped
//! and put in a code span (`present::slack_code`), so none can ping a channel or fake a
//! link.

use std::sync::Arc;
use std::time::Duration;

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
    webhook_url: String,
    wake: Arc<Notify>,
}

impl Notifier {
    pub fn new(pool: MySqlPool, webhook_url: String, wake: Arc<Notify>) -> anyhow::Result<Self> {
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
                let sent = self
                    .http
                    .post(&self.webhook_url)
                    .json(&serde_json::json!({ "text": text }))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status);
                match sent {
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
