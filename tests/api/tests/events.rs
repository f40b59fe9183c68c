//! Events on the embedded default: every change is one event (by id) with Glance's name,
//! payload and who made it, delivered to the JSON-lines file and the webhook at least once,
//! through a `kill -9` between a change and its delivery. (On the stack the same events
//! come from the table's stream through EventBridge: `stack_events.rs`.)

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_images_api_tests::{DataDir, Reply, Server, id_of, testing_aws};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The events a file holds, in file order (repeats included).
fn events_in(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Each event once, by id, in the order first delivered.
fn distinct(events: &[Value]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter(|e| seen.insert(e["message_id"].as_str().unwrap().to_owned()))
        .cloned()
        .collect()
}

/// Waits until `read` holds `count` distinct events (at most 30 s), and returns them.
async fn wait_for(count: usize, read: impl Fn() -> Vec<Value>) -> Vec<Value> {
    for _ in 0..300 {
        let events = distinct(&read());
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = distinct(&read());
    panic!(
        "{} events after 30 s, expected {count}: {events:#?}",
        events.len()
    );
}

fn request_id(reply: &Reply) -> String {
    reply.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_change_is_one_event_with_glances_name_payload_and_who_made_it() {
    if testing_aws() {
        return; // The aws backend's events leave through the stack's stream (stack_events.rs).
    }
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let bob = server.account("bobco", "bob", "member").await;
    let (a, b) = (server.token(&alice).await, server.token(&bob).await);
    let file = server.data_path().join("events.jsonl");

    let created = server
        .create_image(
            &a,
            json!({"name": "e", "disk_format": "raw", "container_format": "bare", "visibility": "shared"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = id_of(&serde_json::from_slice(created.bytes()).unwrap());
    let patched = server
        .patch_image(
            &a,
            &id,
            json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
        )
        .await;
    let uploaded = server.upload(&a, &id, vec![1; 4096]).await;
    assert_eq!(uploaded.status(), StatusCode::NO_CONTENT);
    let added = server.add_member(&a, &id, &bob.tenant_id).await;
    let accepted = server
        .set_member_status(&b, &id, &bob.tenant_id, "accepted")
        .await;
    let removed = server.remove_member(&a, &id, &bob.tenant_id).await;
    let deleted = server.delete_image(&a, &id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    // A refused change is no event: bob may not delete alice's image.
    let refused = server.delete_image(&b, &id).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);

    let expected = [
        ("image.create", &created, &alice),
        ("image.update", &patched, &alice),
        ("image.prepare", &uploaded, &alice),
        ("image.update", &uploaded, &alice),
        ("image.upload", &uploaded, &alice),
        ("image.activate", &uploaded, &alice),
        ("image.update", &uploaded, &alice),
        ("image.member.create", &added, &alice),
        ("image.member.update", &accepted, &bob),
        ("image.member.delete", &removed, &alice),
        ("image.delete", &deleted, &alice),
    ];
    let events = wait_for(expected.len(), || events_in(&file)).await;
    // Nothing more arrives: no event was invented.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let events_later = distinct(&events_in(&file));
    assert_eq!(events_later.len(), expected.len(), "{events_later:#?}");
    for (event, (name, reply, who)) in events.iter().zip(expected) {
        assert_eq!(event["event_type"], name, "{event:#}");
        assert_eq!(event["request_id"], request_id(reply), "{name}");
        assert_eq!(event["tenant_id"], who.tenant_id.as_str(), "{name}");
        assert!(event["user_id"].is_string(), "{name}: {event:#}");
        assert_eq!(event["publisher_id"], "image.cloud-images");
        assert_eq!(event["priority"], "INFO");
    }
    // Payloads in Glance's shapes.
    let activate = &events[5]["payload"];
    assert_eq!(activate["id"], id.as_str());
    assert_eq!(activate["status"], "active");
    assert_eq!(activate["size"], 4096);
    assert_eq!(activate["name"], "renamed");
    assert_eq!(activate["owner"], alice.tenant_id.as_str());
    assert_eq!(activate["is_public"], false);
    assert_eq!(activate["deleted"], false);
    let accepted_member = &events[8]["payload"];
    assert_eq!(accepted_member["image_id"], id.as_str());
    assert_eq!(accepted_member["member_id"], bob.tenant_id.as_str());
    assert_eq!(accepted_member["status"], "accepted");
    let gone = &events[10]["payload"];
    assert_eq!(gone["deleted"], true);
    assert!(gone["deleted_at"].is_string());
}

#[tokio::test]
async fn a_task_reports_create_processing_and_its_end_under_the_request_that_made_it() {
    if testing_aws() {
        return;
    }
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let a = server.token(&alice).await;
    let file = server.data_path().join("events.jsonl");
    let created = server
        .create_task(
            &a,
            json!({"type": "import", "input": {"import_from": "incoming/missing.vhd"}}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let events = wait_for(3, || {
        events_in(&file)
            .into_iter()
            .filter(|e| e["event_type"].as_str().unwrap().starts_with("task."))
            .collect()
    })
    .await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["task.create", "task.processing", "task.failure"]);
    for event in &events {
        assert_eq!(event["request_id"], request_id(&created));
        assert_eq!(event["tenant_id"], alice.tenant_id.as_str());
        // Glance never sends a task's input: it may hold credentials.
        assert!(event["payload"].get("input").is_none(), "{event:#}");
    }
    assert_eq!(events[2]["payload"]["status"], "failure");
}

/// Changes whose events are waiting: `images` created, each renamed, every third deleted.
/// Returns how many of each event type they make, by image.
async fn changes(server: &Server, token: &str, images: usize) -> BTreeMap<(String, String), usize> {
    let mut expected = BTreeMap::new();
    for i in 0..images {
        let image = server
            .new_image(token, json!({"name": format!("n{i}")}))
            .await;
        let id = id_of(&image);
        *expected
            .entry(("image.create".into(), id.clone()))
            .or_default() += 1;
        let patched = server
            .patch_image(
                token,
                &id,
                json!([{"op": "replace", "path": "/name", "value": "m"}]),
            )
            .await;
        assert_eq!(patched.status(), StatusCode::OK);
        *expected
            .entry(("image.update".into(), id.clone()))
            .or_default() += 1;
        if i % 3 == 0 {
            assert_eq!(
                server.delete_image(token, &id).await.status(),
                StatusCode::NO_CONTENT
            );
            *expected.entry(("image.delete".into(), id)).or_default() += 1;
        }
    }
    expected
}

fn counted(events: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        let key = (
            event["event_type"].as_str().unwrap().to_owned(),
            event["payload"]["id"].as_str().unwrap().to_owned(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn events_stored_before_a_kill_are_delivered_after_the_restart_once_each_by_id() {
    if testing_aws() {
        return;
    }
    // A webhook nobody answers: every event stays in the outbox.
    let nobody = free_port();
    let down = format!("http://127.0.0.1:{nobody}/events");
    let server = Server::start_in(
        DataDir::new(),
        &[
            ("CLOUD_IMAGES_EVENTS_FILE", "off"),
            ("CLOUD_IMAGES_EVENTS_WEBHOOK", &down),
        ],
    )
    .await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let expected = changes(&server, &token, 60).await;
    let total: usize = expected.values().sum();
    let data = server.stop().await; // SIGKILL

    // Restarted with the file: the backlog goes out; killed again while it may still be
    // going out, and restarted once more.
    let file = data.path().join("events.jsonl");
    let server = Server::start_in(data, &[("CLOUD_IMAGES_EVENTS_WEBHOOK", &down)]).await;
    while !file.exists() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let data = server.stop().await;
    let server = Server::start_in(data, &[("CLOUD_IMAGES_EVENTS_WEBHOOK", &down)]).await;

    let delivered = wait_for(total, || events_in(&file)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all = events_in(&file);
    let each_once = distinct(&all);
    assert_eq!(
        counted(&each_once),
        expected,
        "every change exactly one event id"
    );
    assert_eq!(each_once.len(), delivered.len());
    // Repeats are whole events: the same id is always the same event.
    let by_id: HashMap<&str, &Value> = each_once
        .iter()
        .map(|e| (e["message_id"].as_str().unwrap(), e))
        .collect();
    for event in &all {
        assert_eq!(by_id[event["message_id"].as_str().unwrap()], event);
    }
    drop(server);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The secret the webhook test's deliveries are signed with.
const SECRET: &str = "s3cret";

/// Whether `signature` is `sha256=<hex>` of `body` under [`SECRET`].
fn signed(body: &[u8], signature: Option<&str>) -> bool {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    signature == Some(format!("sha256={hex}").as_str())
}

/// A webhook receiver on `port` that keeps every event POSTed to it with a good signature
/// (and refuses the rest with 401, as a receiver should).
async fn receiver(port: u16) -> Arc<Mutex<Vec<Value>>> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let signature = headers
                        .get("x-cloud-images-signature")
                        .and_then(|v| v.to_str().ok());
                    if !signed(&body, signature) {
                        return StatusCode::UNAUTHORIZED;
                    }
                    let batch: Vec<Value> = serde_json::from_slice(&body).unwrap();
                    kept.lock().unwrap().extend(batch);
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    received
}

#[tokio::test]
async fn a_webhook_that_was_down_gets_every_event_signed_once_it_is_up_and_the_file_never_waited() {
    if testing_aws() {
        return;
    }
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/events");
    let server = Server::start_in(
        DataDir::new(),
        &[
            ("CLOUD_IMAGES_EVENTS_WEBHOOK", &url),
            ("CLOUD_IMAGES_EVENTS_WEBHOOK_SECRET", SECRET),
        ],
    )
    .await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let expected = changes(&server, &token, 6).await;
    let total: usize = expected.values().sum();
    // The file is not held back by the webhook being down.
    let file = server.data_path().join("events.jsonl");
    let in_file = wait_for(total, || events_in(&file)).await;
    assert_eq!(counted(&in_file), expected);

    let received = receiver(port).await;
    let at_webhook = wait_for(total, || received.lock().unwrap().clone()).await;
    assert_eq!(counted(&at_webhook), expected);
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&at_webhook),
        ids(&in_file),
        "the same events, in the same order"
    );
}

#[tokio::test]
async fn with_every_sink_off_events_are_dropped_as_they_come_and_nothing_is_written() {
    if testing_aws() {
        return;
    }
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_in(
        DataDir::new(),
        &[
            ("CLOUD_IMAGES_EVENTS_FILE", "off"),
            ("CLOUD_IMAGES_METRICS_LISTEN", &metrics),
        ],
    )
    .await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let expected: usize = changes(&server, &token, 3).await.values().sum();
    let discarded = || async {
        let text = reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("cloud_images_events_delivered_total{sink=\"discarded\"} ")
            })
            .map_or(0, |n| n.parse::<usize>().unwrap())
    };
    for _ in 0..100 {
        if discarded().await >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(discarded().await, expected, "the outbox was emptied");
    assert!(!server.data_path().join("events.jsonl").exists());
}
