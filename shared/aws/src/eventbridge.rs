//! Events onto an EventBridge bus: the stack's event function takes them from the table's
//! stream and puts them here, where rules route them (to audit, billing, automation).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use cloud_images_domain::events::Event;
use cloud_images_domain::ports::EventSink;
use cloud_images_domain::{DomainError, DomainResult};

/// Every event's `source` on the bus, for rules to match.
pub const EVENT_SOURCE: &str = "cloud-images";

/// Entries one `PutEvents` call takes.
const ENTRIES_PER_CALL: usize = 10;

/// [`EventSink`] putting each event on a bus: `source` [`EVENT_SOURCE`], `detail-type`
/// the event type (`image.create`, …), `detail` the whole event.
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    /// Puts events on the bus named `bus`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &Event) -> DomainResult<PutEventsRequestEntry> {
        let detail = serde_json::to_string(event)
            .map_err(|e| DomainError::unavailable("writing an event", Box::new(e)))?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(&event.event_type)
            .detail(detail)
            .build())
    }
}

#[async_trait]
impl EventSink for EventBridgeSink {
    fn name(&self) -> &str {
        "eventbridge"
    }

    async fn deliver(&self, events: &[Event]) -> DomainResult<()> {
        for chunk in events.chunks(ENTRIES_PER_CALL) {
            let entries = chunk
                .iter()
                .map(|e| self.entry(e))
                .collect::<DomainResult<Vec<_>>>()?;
            let put = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| DomainError::unavailable("putting events on the bus", e))?;
            // A partial failure repeats the whole chunk: consumers drop repeats by id.
            if put.failed_entry_count() > 0 {
                let reasons: Vec<String> = put
                    .entries()
                    .iter()
                    .filter_map(|e| e.error_message().map(str::to_owned))
                    .collect();
                return Err(DomainError::unavailable(
                    "putting events on the bus",
                    format!(
                        "{} refused: {}",
                        put.failed_entry_count(),
                        reasons.join("; ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
