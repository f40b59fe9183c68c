//! The webhook events are delivered to: an operator's URL, not a tenant's, so it is not
//! held to the web-download policy (it may well be a neighbour on a private network).

use std::time::Duration;

use async_trait::async_trait;
use cloud_images_domain::events::Event;
use cloud_images_domain::ports::EventSink;
use cloud_images_domain::{DomainError, DomainResult};

/// Longest a delivery may take before it counts as failed (and is tried again).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs each batch of events as a JSON array; any 2xx answer means delivered.
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl WebhookSink {
    /// The name the outbox keeps this sink's place by.
    pub const NAME: &'static str = "webhook";

    /// Delivers to `url` (http or https).
    pub fn new(url: &str) -> DomainResult<Self> {
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                DomainError::Invalid(format!("the events webhook {url:?} is not an http(s) URL"))
            })?;
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .map_err(|e| DomainError::unavailable("the events webhook client", e))?;
        Ok(Self { client, url })
    }
}

#[async_trait]
impl EventSink for WebhookSink {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn deliver(&self, events: &[Event]) -> DomainResult<()> {
        let answer = self
            .client
            .post(self.url.clone())
            .json(events)
            .send()
            .await
            .map_err(|e| DomainError::unavailable("the events webhook", e))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(DomainError::unavailable(
                "the events webhook",
                format!("it answered {}", answer.status()),
            ))
        }
    }
}
