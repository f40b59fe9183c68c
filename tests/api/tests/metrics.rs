//! The local binary's Prometheus endpoint (`--metrics-listen`): after a known workload, the
//! counts it shows are exactly the requests, bytes and task runs that happened.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use cloud_images_api_tests::{DataDir, Server, id_of, testing_aws};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// One scrape: each sample by its name and sorted labels.
type Samples = BTreeMap<(String, BTreeSet<String>), f64>;

fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (
                    name,
                    labels
                        .trim_end_matches('}')
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                ),
                None => (series, BTreeSet::new()),
            };
            ((name.to_owned(), labels), value.parse().unwrap())
        })
        .collect()
}

fn sample(samples: &Samples, name: &str, labels: &[&str]) -> f64 {
    let key = (
        name.to_owned(),
        labels.iter().map(|l| (*l).to_owned()).collect(),
    );
    samples.get(&key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_the_requests_bytes_and_task_runs_of_a_workload() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let server =
        Server::start_in(DataDir::new(), &[("CLOUD_IMAGES_METRICS_LISTEN", &address)]).await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;

    let body = json!({ "name": "m", "disk_format": "raw", "container_format": "bare" });
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id_of(&server.new_image(&token, body.clone()).await));
    }
    let uploaded = server.upload(&token, &ids[0], vec![7; 1000]).await;
    assert_eq!(uploaded.status(), StatusCode::NO_CONTENT);
    // Data that is not what it claims: the inspection refuses it (counted by reason).
    let claims_qcow2 = id_of(
        &server
            .new_image(
                &token,
                json!({ "disk_format": "qcow2", "container_format": "bare" }),
            )
            .await,
    );
    let refused = server.upload(&token, &claims_qcow2, vec![7; 1000]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    server.listed_ids(&token, "").await;
    let missing = server
        .request(
            Method::GET,
            "/v2/images/00000000-0000-4000-8000-000000000000",
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let task = server
        .new_task(
            &token,
            json!({"type": "import", "input": {"import_from": "incoming/none.vhd"}}),
        )
        .await;
    let finished = server.finished_task(&token, &id_of(&task)).await;
    assert_eq!(finished["status"], "failure");

    let scraped = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let samples = parse(&scraped.text().await.unwrap());
    let requests = |group: &str, status: &str| {
        sample(
            &samples,
            "cloud_images_http_requests_total",
            &[
                &format!("group=\"{group}\""),
                &format!("status=\"{status}\""),
            ],
        )
    };
    assert_eq!(requests("images", "2xx"), 5.0, "4 creates and a list");
    assert_eq!(requests("images", "4xx"), 1.0, "the missing image");
    assert_eq!(requests("image_data", "2xx"), 1.0, "the upload");
    assert_eq!(requests("image_data", "4xx"), 1.0, "the refused upload");
    assert_eq!(
        sample(
            &samples,
            "cloud_images_http_request_duration_seconds_count",
            &["group=\"images\""]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &samples,
            "cloud_images_image_data_bytes_received_total",
            &[]
        ),
        2000.0
    );
    assert_eq!(
        sample(
            &samples,
            "cloud_images_inspection_refusals_total",
            &["reason=\"format_mismatch\""]
        ),
        1.0
    );
    assert_eq!(
        sample(&samples, "cloud_images_task_queue_age_seconds_count", &[]),
        1.0,
        "the one task was delivered once"
    );
    assert!(samples.contains_key(&("cloud_images_task_queue_depth".to_owned(), BTreeSet::new())));
    // Every event delivered was counted, and none twice: the file holds at least as many.
    // (On the aws backend the stack's event function delivers them, not this process.)
    let delivered = sample(
        &samples,
        "cloud_images_events_delivered_total",
        &["sink=\"file\""],
    );
    let in_file = std::fs::read_to_string(server.data_path().join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    if testing_aws() {
        assert_eq!((delivered, in_file), (0.0, 0));
    } else {
        assert!(
            delivered >= 1.0 && delivered <= in_file as f64,
            "{delivered} of {in_file}"
        );
    }
    assert_eq!(
        sample(
            &samples,
            "cloud_images_task_attempts_total",
            &["type=\"import\"", "outcome=\"failure\""]
        ),
        1.0
    );
    assert!(requests("tasks", "2xx") >= 2.0, "the create and the polls");
    assert!(requests("identity", "2xx") >= 1.0, "the token");
}
