//! The event function: the table's stream in, the events each write stored out onto the
//! EventBridge bus, then off the item. A record whose events could not be put is reported
//! as the batch's failure, so Lambda retries the stream from it: delivery is at least once
//! and in order, and consumers drop repeats by event id.

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use cloud_images_aws::dynamo::events::{EVENTS, events_written, strip_published};
use cloud_images_domain::events::Event;
use cloud_images_domain::ports::EventSink;
use serde_dynamo::AttributeValue;

/// Where published events are stripped from: the table and its client.
pub struct Table {
    /// A DynamoDB client.
    pub client: aws_sdk_dynamodb::Client,
    /// The table the stream belongs to.
    pub name: String,
}

fn text(item: &serde_dynamo::Item, attribute: &str) -> Option<String> {
    match item.get(attribute) {
        Some(AttributeValue::S(raw)) => Some(raw.clone()),
        _ => None,
    }
}

/// The events `record`'s write stored: those in its new image that its old one lacked.
fn stored_by(record: &EventRecord) -> Vec<Event> {
    let after = text(&record.change.new_image, EVENTS);
    let before = text(&record.change.old_image, EVENTS);
    match events_written(after.as_deref(), before.as_deref()) {
        Ok(events) => events,
        Err(e) => {
            // Retrying cannot make them readable: say so loudly and go on.
            tracing::error!(record = %record.event_id, error = %e, "a stored event could not be read; it is skipped");
            Vec::new()
        }
    }
}

/// Removes the events `record` showed from its item, now that they are on the bus. A
/// failure costs only bytes (a later write replaces them), so it is logged, not retried.
async fn strip(table: &Table, record: &EventRecord) {
    let keys = &record.change.keys;
    let (Some(pk), Some(sk), Some(published)) = (
        text(keys, "pk"),
        text(keys, "sk"),
        text(&record.change.new_image, EVENTS),
    ) else {
        return;
    };
    if let Err(e) = strip_published(&table.client, &table.name, (&pk, &sk), &published).await {
        tracing::warn!(record = %record.event_id, error = %e, "published events stay on their item");
    }
}

/// Puts the events of every record in order, stripping each item of them once they are on
/// the bus (when `table` is given); stops at the first record that failed and names it, so
/// the stream is retried from there.
pub async fn publish_batch(
    sink: &dyn EventSink,
    table: Option<&Table>,
    batch: StreamEvent,
) -> DynamoDbEventResponse {
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
        if let Some(table) = table {
            strip(table, &record).await;
        }
        for event in &events {
            tracing::info!(event = %event.message_id, event_type = %event.event_type, request_id = event.request_id.as_deref().unwrap_or(""), "published");
        }
    }
    response
}
