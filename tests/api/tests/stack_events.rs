//! Events on the deployed stack: each change's events ride in its DynamoDB write, the
//! table's stream carries them to the event function, and it puts them on the stack's
//! EventBridge bus. Read back through a rule of this test's own with an SQS target.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cloud_images_api_tests::{Server, id_of, stack_output, testing_stack};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A queue that receives every event on the stack's bus from now on.
async fn listen_to_the_bus() -> (aws_sdk_sqs::Client, String) {
    let config = cloud_images_aws::load_config().await;
    let bridge = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("events-{unique}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn_name = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(arn_name.clone())
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&arn_name]
        .clone();
    let bus = stack_output("EventBusName");
    let rule = format!("test-{unique}");
    bridge
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(format!(
            r#"{{"source": ["{}"]}}"#,
            cloud_images_aws::EVENT_SOURCE
        ))
        .send()
        .await
        .unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("queue")
        .arn(queue_arn)
        .build()
        .unwrap();
    bridge
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(target)
        .send()
        .await
        .unwrap();
    (sqs, queue_url)
}

#[tokio::test]
async fn the_stack_puts_every_change_of_an_image_on_its_event_bus() {
    if !testing_stack() {
        return; // The embedded default's delivery is tested in events.rs.
    }
    let (sqs, queue) = listen_to_the_bus().await;
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let created = server.create_image(&token, json!({"name": "e"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = id_of(&serde_json::from_slice(created.bytes()).unwrap());
    let request_id = created.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let patched = server
        .patch_image(
            &token,
            &id,
            json!([{"op": "replace", "path": "/name", "value": "f"}]),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(
        server.delete_image(&token, &id).await.status(),
        StatusCode::NO_CONTENT
    );

    // The stack is shared: keep this image's events, each once by id.
    let mut mine: Vec<Value> = Vec::new();
    for _ in 0..60 {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in got.messages() {
            let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            let event = body["detail"].clone();
            let ours = event["payload"]["id"] == id.as_str();
            if ours && !mine.iter().any(|e| e["message_id"] == event["message_id"]) {
                assert_eq!(body["detail-type"], event["event_type"]);
                mine.push(event);
            }
        }
        if mine.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let names: Vec<&str> = mine
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["image.create", "image.update", "image.delete"]);
    assert_eq!(mine[0]["request_id"], request_id.as_str());
    assert_eq!(mine[0]["tenant_id"], alice.tenant_id.as_str());
    assert_eq!(mine[2]["payload"]["deleted"], true);
}

#[tokio::test]
async fn published_events_do_not_stay_on_the_item_list_pages_read() {
    if !testing_stack() {
        return;
    }
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let id = id_of(&server.new_image(&token, json!({"name": "kept"})).await);
    let client = cloud_images_aws::dynamodb_client(&cloud_images_aws::load_config().await);
    let table = stack_output("TableName");
    let mut carried = true;
    for _ in 0..100 {
        let item = client
            .get_item()
            .table_name(&table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("IMAGE#{id}")),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("IMAGE".into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        carried = item.contains_key(cloud_images_aws::dynamo::events::EVENTS);
        if !carried {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !carried,
        "the image's item still carries its published events after 10 s"
    );
}
