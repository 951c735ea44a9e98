//! The HTTP side of outgoing notifications: a POST of the outbox's JSON
//! to a `[[notify]]` webhook, with a timeout. Retries are the outbox's job
//! (`orch_engine::notify`), so a slow endpoint never holds up a pipeline.

use async_trait::async_trait;
use orch_engine::ports::{NotifyPoster, PortError, PortResult};
use std::time::Duration;

pub struct HttpPoster {
    http: reqwest::Client,
}

impl HttpPoster {
    pub fn new(timeout: Duration) -> Result<HttpPoster, PortError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("orch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PortError::invalid(format!("building the HTTP client: {e}")))?;
        Ok(HttpPoster { http })
    }
}

#[async_trait]
impl NotifyPoster for HttpPoster {
    async fn post(&self, url: &str, body: &serde_json::Value) -> PortResult<()> {
        let answer = self.http.post(url).json(body).send().await.map_err(|e| {
            // Never the URL: it carries the webhook's token.
            let why = if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.without_url().to_string()
            };
            PortError::unavailable(format!("posting the notification: {why}"))
        })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = answer.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        let words = format!("the webhook answered {status}: {}", text.trim());
        Err(match status.as_u16() {
            429 => PortError::RateLimited {
                message: words,
                retry_after,
            },
            408 | 500..=599 => PortError::Unavailable(words),
            404 | 410 => PortError::NotFound(words),
            _ => PortError::refused(words),
        })
    }
}
