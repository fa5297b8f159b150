//! The analyser's view of the gatherer: its export pages, typed with `protocol`, so the
//! two services cannot drift apart.

use std::time::Duration;

use protocol::ExportPage;
use secrecy::{ExposeSecret, SecretString};

use crate::configuration::GathererSettings;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("gatherer unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    #[error("gatherer answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("gatherer sent an unreadable page: {0}")]
    Decode(#[source] reqwest::Error),
}

#[derive(Debug, Clone)]
pub struct GathererClient {
    http: reqwest::Client,
    export_url: String,
    token: SecretString,
}

impl GathererClient {
    pub fn new(settings: &GathererSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(GathererClient {
            http,
            export_url: format!("{}/api/v1/export", settings.url.trim_end_matches('/')),
            token: settings.export_token.clone(),
        })
    }

    /// One export page after `iterator`.
    pub async fn page(&self, iterator: u64, limit: u32) -> Result<ExportPage, ClientError> {
        let mut request = self.http.get(&self.export_url).query(&[
            ("iterator", iterator.to_string()),
            ("limit", limit.to_string()),
        ]);
        let token = self.token.expose_secret();
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(ClientError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        response.json().await.map_err(ClientError::Decode)
    }
}
