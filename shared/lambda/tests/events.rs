//! The event function fed the DynamoDB stream batch in `infra/events/`: the events each
//! write stored reach an EventBridge bus (on the emulator `scripts/test` starts, read back
//! through a rule's SQS target), once each and in order; a failed put names the record the
//! stream must be retried from.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use chrono::Utc;
use cloud_images_aws::{EVENT_SOURCE, EventBridgeSink, load_config};
use cloud_images_domain::events::{Actor, Event, image_events};
use cloud_images_domain::image::{Image, ImageId};
use cloud_images_domain::ports::EventSink;
use cloud_images_domain::{DomainError, DomainResult};
use cloud_images_lambda::events::publish_batch;
use serde_json::Value;

/// The recorded batch, filled with the events of one image's create, rename and delete.
fn batch() -> (StreamEvent, Vec<Event>) {
    let actor = Actor {
        user_id: Some("u1".into()),
        tenant_id: Some("t1".into()),
        request_id: Some("req-1".into()),
    };
    let image = Image::new_queued(ImageId::random(), None, Utc::now());
    let mut renamed = image.clone();
    renamed.name = Some("renamed".into());
    let created = image_events(None, Some(&image), &actor, Utc::now());
    let updated = image_events(Some(&image), Some(&renamed), &actor, Utc::now());
    let deleted = image_events(Some(&renamed), None, &actor, Utc::now());
    // A JSON string inside the JSON document: escaped, without its quotes.
    let inner = |events: &[Event]| {
        let text = serde_json::to_string(&serde_json::to_string(events).unwrap()).unwrap();
        text[1..text.len() - 1].to_owned()
    };
    let path = format!(
        "{}/../../infra/events/dynamodb-stream-batch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("{{IMAGE}}", &image.id.to_string())
        .replace("{{CREATED}}", &inner(&created))
        .replace("{{UPDATED}}", &inner(&updated))
        .replace("{{DELETED}}", &inner(&deleted))
        .replace("{{DELETED_ID}}", &deleted[0].message_id);
    let expected = [created, updated, deleted].concat();
    (serde_json::from_str(&text).unwrap(), expected)
}

#[tokio::test]
async fn the_events_each_write_stored_reach_the_bus_once_each_in_order() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "set AWS_ENDPOINT_URL to an emulator (scripts/test starts one)"
    );
    let config = load_config().await;
    let bridge = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let bus = format!("bus-{unique}");
    bridge.create_event_bus().name(&bus).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("events-{unique}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    bridge
        .put_rule()
        .name("all")
        .event_bus_name(&bus)
        .event_pattern(format!(r#"{{"source": ["{EVENT_SOURCE}"]}}"#))
        .send()
        .await
        .unwrap();
    bridge
        .put_targets()
        .rule("all")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let (stream, expected) = batch();
    let sink = EventBridgeSink::new(bridge, &bus);
    let response = publish_batch(&sink, None, stream).await;
    assert!(response.batch_item_failures.is_empty());

    let mut received = Vec::new();
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in got.messages() {
            received.push(serde_json::from_str::<Value>(message.body().unwrap()).unwrap());
        }
        if received.len() >= expected.len() {
            break;
        }
    }
    let details: Vec<Event> = received
        .iter()
        .map(|m| serde_json::from_value(m["detail"].clone()).unwrap())
        .collect();
    assert_eq!(details, expected, "the removal itself published nothing");
    for (message, event) in received.iter().zip(&expected) {
        assert_eq!(message["source"], EVENT_SOURCE);
        assert_eq!(message["detail-type"], event.event_type.as_str());
    }
}

/// A bus that takes `good` deliveries and then refuses every one.
struct Flaky {
    good: Mutex<usize>,
    taken: Mutex<Vec<Event>>,
}

#[async_trait]
impl EventSink for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    async fn deliver(&self, events: &[Event]) -> DomainResult<()> {
        let mut good = self.good.lock().unwrap();
        if *good == 0 {
            return Err(DomainError::unavailable("the bus", "refused"));
        }
        *good -= 1;
        self.taken.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

#[tokio::test]
async fn a_refused_put_names_its_record_and_nothing_after_it_is_published() {
    let (stream, expected) = batch();
    let sink = Flaky {
        good: Mutex::new(1),
        taken: Mutex::new(Vec::new()),
    };
    let response = publish_batch(&sink, None, stream).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failed, ["100000000000000000002"], "the rename's record");
    assert_eq!(*sink.taken.lock().unwrap(), expected[..1]);
}
