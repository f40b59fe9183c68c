//! The webhook events are delivered to: an operator's URL, not a tenant's, so it is not
//! held to the web-download policy (it may well be a neighbour on a private network).

use std::time::Duration;

use async_trait::async_trait;
use cloud_images_domain::events::Event;
use cloud_images_domain::ports::EventSink;
use cloud_images_domain::{DomainError, DomainResult};

/// Longest a delivery may take before it counts as failed (and is tried again).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The header carrying the body's HMAC-SHA256 under the shared secret, as `sha256=<hex>`:
/// a receiver recomputes it to know the events came from this service, unchanged.
pub const SIGNATURE_HEADER: &str = "x-cloud-images-signature";

/// POSTs each batch of events as a JSON array, signed when a secret is set; any 2xx answer
/// means delivered.
pub struct WebhookSink {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Option<Vec<u8>>,
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

impl WebhookSink {
    /// The name the outbox keeps this sink's place by.
    pub const NAME: &'static str = "webhook";

    /// Delivers to `url` (http or https), signing each body with `secret` when given.
    pub fn new(url: &str, secret: Option<&str>) -> DomainResult<Self> {
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
        Ok(Self {
            client,
            url,
            secret: secret.map(|s| s.as_bytes().to_vec()),
        })
    }
}

#[async_trait]
impl EventSink for WebhookSink {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn deliver(&self, events: &[Event]) -> DomainResult<()> {
        let body = serde_json::to_vec(events)
            .map_err(|e| DomainError::unavailable("writing events", Box::new(e)))?;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let answer = request
            .body(body)
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
