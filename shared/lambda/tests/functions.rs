//! Each function's handler fed the API Gateway HTTP API (payload 2.0) and SQS events in
//! `infra/events/`, against the emulator that `scripts/test` starts (`AWS_ENDPOINT_URL`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use cloud_images_lambda::{Wiring, config_from, handle_batch, http_app};
use cloud_images_service::{NewUser, Principal};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn event(name: &str, fill: &[(&str, &str)]) -> String {
    let path = format!("{}/../../infra/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(path).unwrap();
    for (key, value) in fill {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    text
}

async fn stack() -> Wiring {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let (table, bucket, queue) = (
        format!("t{unique}"),
        format!("b{unique}"),
        format!("q{unique}"),
    );
    let config = config_from(&[
        "--backend",
        "aws",
        "--aws-table",
        &table,
        "--aws-bucket",
        &bucket,
        "--aws-queue",
        &queue,
        "--aws-create-resources",
        "--token-signing-key",
        &"ab".repeat(32),
        "--task-lease",
        "30s",
    ])
    .unwrap();
    Wiring::open(&config).await.unwrap()
}

/// Sends an API Gateway event through a function's router, as lambda_http does.
async fn invoke(app: &axum::Router, event: &str) -> (u16, Value) {
    let request = lambda_http::request::from_str(event).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn token(wiring: &Wiring) -> String {
    let identity = wiring.identity().await.unwrap();
    identity.create_tenant("acme").await.unwrap();
    let created = identity
        .create_user(NewUser {
            tenant: Principal::Name("acme".into()),
            name: "alice".into(),
            role: "member".parse().unwrap(),
            password: None,
        })
        .await
        .unwrap();
    let identity = http_app(wiring.identity_routes().await.unwrap(), wiring);
    let login = event(
        "apigw-v2-post-tokens.json",
        &[("user", "alice"), ("api_key", &created.api_key)],
    );
    let (status, body) = invoke(&identity, &login).await;
    assert_eq!(status, 200, "{body}");
    body["access"]["token"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_identity_and_images_functions_answer_api_gateway_events() {
    let wiring = stack().await;
    let token = token(&wiring).await;
    let images = http_app(wiring.images_routes().await.unwrap(), &wiring);
    let (status, image) = invoke(
        &images,
        &event("apigw-v2-post-images.json", &[("token", &token)]),
    )
    .await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(image["name"], "from-lambda");
    assert_eq!(image["status"], "queued");
    // The route group is all a function serves: another group's path is a JSON 404.
    let (status, body) = invoke(
        &images,
        &event(
            "apigw-v2-post-tokens.json",
            &[("user", "x"), ("api_key", "y")],
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.to_string().contains("/v2.0/tokens"), "{body}");
}

#[tokio::test]
async fn the_worker_finishes_tasks_and_reports_only_busy_records_as_batch_failures() {
    let wiring = stack().await;
    let token = token(&wiring).await;
    let groups = wiring
        .images_routes()
        .await
        .unwrap()
        .merge(wiring.image_data_routes().await.unwrap())
        .merge(wiring.tasks_routes().await.unwrap());
    let app = http_app(groups, &wiring);
    let (_, image) = invoke(
        &app,
        &event("apigw-v2-post-images.json", &[("token", &token)]),
    )
    .await;
    let image_id = image["id"].as_str().unwrap().to_owned();
    let upload = axum::http::Request::put(format!("/v2/images/{image_id}/file"))
        .header("x-auth-token", &token)
        .header("content-type", "application/octet-stream")
        .body(axum::body::Body::from(vec![7u8; 96 << 20]))
        .unwrap();
    assert_eq!(app.clone().oneshot(upload).await.unwrap().status(), 204);
    let create = axum::http::Request::post("/v2/tasks")
        .header("x-auth-token", &token)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(format!(
            r#"{{"type": "export", "input": {{"image_uuid": "{image_id}", "receiving_swift_container": "out", "export_format": "raw"}}}}"#
        )))
        .unwrap();
    let created = app
        .clone()
        .oneshot(create)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let task_id = serde_json::from_slice::<Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let batch = event("sqs-task-batch.json", &[("task_id", &task_id)]);
    let first: SqsEvent = serde_json::from_str(&batch).unwrap();
    let runner = wiring.task_runner().await.unwrap();
    let worker = runner.clone();
    let running = tokio::spawn(async move { handle_batch(&worker, first).await });
    let show = event(
        "apigw-v2-get-task.json",
        &[("token", &token), ("task_id", &task_id)],
    );
    for _ in 0..2000 {
        if invoke(&app, &show).await.1["status"] == "processing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A redelivery while the first worker holds the task: only that record comes back;
    // the record that names no task is acknowledged.
    let second: SqsEvent = serde_json::from_str(&batch).unwrap();
    let busy = handle_batch(&runner, second).await;
    let failed: Vec<&str> = busy
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["059f36b4-87a3-44ab-83d2-661975830a7d"]);

    let done = running.await.unwrap();
    assert!(done.batch_item_failures.is_empty(), "{done:?}");
    let (status, task) = invoke(&app, &show).await;
    assert_eq!(status, 200);
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(
        task["result"]["export_location"],
        format!("out/{image_id}.raw")
    );
}
