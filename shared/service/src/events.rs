//! Delivering the events the outbox holds to one sink: in order, at least once.
//!
//! A delivery that fails is tried again with the same events (same ids) after a growing
//! pause; the outbox forgets an event only after the sink took it. A crash between the
//! two repeats the last batch on restart, which consumers drop by event id.

use std::sync::Arc;
use std::time::Duration;

use cloud_images_domain::DomainResult;
use cloud_images_domain::events::Event;
use cloud_images_domain::ports::{EventOutbox, EventSink};

/// Events handed to a sink at once.
const BATCH: usize = 100;
/// The pause between looks at an empty outbox.
const IDLE: Duration = Duration::from_millis(200);
/// The longest pause after failed deliveries.
const MOST_PATIENT: Duration = Duration::from_secs(60);
/// How often the backlog gauge is refreshed while there is nothing to deliver.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// Moves events from the outbox to one sink.
pub struct EventDelivery {
    outbox: Arc<dyn EventOutbox>,
    sink: Arc<dyn EventSink>,
}

impl EventDelivery {
    /// Delivery from `outbox` to `sink`.
    pub fn new(outbox: Arc<dyn EventOutbox>, sink: Arc<dyn EventSink>) -> Self {
        Self { outbox, sink }
    }

    /// Delivers the next batch; how many events it held (0: nothing was waiting).
    pub async fn deliver_next(&self) -> DomainResult<usize> {
        let name = self.sink.name();
        let entries = self.outbox.pending(name, BATCH).await?;
        let Some(last) = entries.last().map(|e| e.position) else {
            return Ok(0);
        };
        let events: Vec<Event> = entries.into_iter().map(|e| e.event).collect();
        self.sink.deliver(&events).await?;
        self.outbox.delivered(name, last).await?;
        metrics::counter!("cloud_images_events_delivered_total", "sink" => name.to_owned())
            .increment(events.len() as u64);
        Ok(events.len())
    }

    /// Delivers for as long as the process runs.
    pub async fn run(self) {
        let name = self.sink.name().to_owned();
        let mut failures = 0u32;
        let mut backlog_due = tokio::time::Instant::now();
        loop {
            match self.deliver_next().await {
                Ok(0) => {
                    failures = 0;
                    if tokio::time::Instant::now() >= backlog_due {
                        self.record_backlog().await;
                        backlog_due = tokio::time::Instant::now() + BACKLOG_EVERY;
                    }
                    tokio::time::sleep(IDLE).await;
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!("cloud_images_event_delivery_failures_total", "sink" => name.clone())
                        .increment(1);
                    self.record_backlog().await;
                    let pause = pause_after(failures);
                    tracing::warn!(sink = %name, error = %e, retry_in = ?pause, "could not deliver events; they stay in the outbox");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    async fn record_backlog(&self) {
        let name = self.sink.name().to_owned();
        if let Ok((count, oldest)) = self.outbox.backlog(&name).await {
            metrics::gauge!("cloud_images_event_backlog", "sink" => name.clone()).set(count as f64);
            metrics::gauge!("cloud_images_event_backlog_age_seconds", "sink" => name)
                .set(oldest.unwrap_or_default().as_secs_f64());
        }
    }
}

/// 1 s after the first failure, doubling up to [`MOST_PATIENT`].
fn pause_after(failures: u32) -> Duration {
    Duration::from_secs(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(MOST_PATIENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_a_second_up_to_a_minute() {
        let pauses: Vec<u64> = (1..=9).map(|n| pause_after(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
