//! The event function: the table's stream in, the events each write stored out onto the
//! EventBridge bus. A record whose events could not be put is reported as the batch's
//! failure, so Lambda retries the stream from it: delivery is at least once and in order,
//! and consumers drop repeats by event id.

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use cloud_images_aws::dynamo::events::{EVENTS, events_written};
use cloud_images_domain::events::Event;
use cloud_images_domain::ports::EventSink;
use serde_dynamo::AttributeValue;

/// The events `record`'s write stored: those in its new image that its old one lacked.
fn stored_by(record: &EventRecord) -> Vec<Event> {
    let text = |item: &serde_dynamo::Item| match item.get(EVENTS) {
        Some(AttributeValue::S(raw)) => Some(raw.clone()),
        _ => None,
    };
    let (after, before) = (
        text(&record.change.new_image),
        text(&record.change.old_image),
    );
    match events_written(after.as_deref(), before.as_deref()) {
        Ok(events) => events,
        Err(e) => {
            // Retrying cannot make them readable: say so loudly and go on.
            tracing::error!(record = %record.event_id, error = %e, "a stored event could not be read; it is skipped");
            Vec::new()
        }
    }
}

/// Puts the events of every record in order; stops at the first record that failed and
/// names it, so the stream is retried from there.
pub async fn publish_batch(sink: &dyn EventSink, batch: StreamEvent) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in batch.records {
        let events = stored_by(&record);
        if events.is_empty() {
            continue;
        }
        if let Err(e) = sink.deliver(&events).await {
            tracing::warn!(record = %record.event_id, error = %e, "events could not be published; the stream retries from here");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = record.change.sequence_number.clone();
            response.batch_item_failures.push(failure);
            break;
        }
        for event in &events {
            tracing::info!(event = %event.message_id, event_type = %event.event_type, request_id = event.request_id.as_deref().unwrap_or(""), "published");
        }
    }
    response
}
