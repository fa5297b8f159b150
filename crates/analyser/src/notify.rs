//! Posts new alarms to a Slack-style incoming webhook (`{"text": …}`).
//!
//! Runs on its own task and reads what to send from the database (alarms with no
//! `notified_at`), so detection never waits for it, a slow webhook only delays messages,
//! and a restart neither loses nor repeats one. Each message is retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use tokio::sync::Notify;

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
            let text = format!(
                "Pulse alarm #{}: {} ({}) entity {} in dataset {}: observed {}, expected {:.1} ({}), {} to {} UTC",
                alarm.id,
                alarm.label,
                alarm.metric,
                alarm.entity_id,
                alarm.dataset,
                alarm.observed,
                alarm.expected,
                alarm.method,
                alarm.period_start.format("%Y-%m-%d %H:%M"),
                alarm.period_end.format("%H:%M"),
            );
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
            store::mark_notified(&self.pool, alarm.id).await?;
        }
        Ok(())
    }
}
