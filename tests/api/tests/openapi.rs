//! The OpenAPI description covers exactly the routes the router mounts.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use cloud_images_api_tests::{Checked, World, id_of, json_body};
use reqwest::{Method, StatusCode};
use serde_json::json;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn every_mounted_route_is_described_and_nothing_else_is() {
    let w = World::new().await;
    let spec = json_body(
        w.server
            .request(Method::GET, "/openapi.json", None)
            .checked()
            .await,
    )
    .await;
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["servers"][0]["url"], w.server.root.as_str());
    let described: BTreeSet<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mounted: BTreeSet<&str> = cloud_images_http::routes::mounted_paths()
        .into_iter()
        .collect();
    assert_eq!(
        described, mounted,
        "openapi.json and the route tables disagree"
    );
}

#[tokio::test]
async fn every_described_method_answers_and_every_other_method_is_405() {
    let w = World::new().await;
    let spec = json_body(
        w.server
            .request(Method::GET, "/openapi.json", None)
            .checked()
            .await,
    )
    .await;
    let image = id_of(
        &w.server
            .new_image(&w.alice, json!({ "name": "probe" }))
            .await,
    );
    let admin_tenant = &w.server.first_admin.as_ref().unwrap().tenant_id;
    for (template, item) in spec["paths"].as_object().unwrap() {
        let path = template
            .replace("{image_id}", &image)
            .replace("{tag}", "probe-tag")
            .replace("{name}", "image")
            .replace("{project_id}", &w.acme)
            .replace("{account}", &format!("AUTH_{}", admin_tenant))
            .replace("{container}", "probe-container")
            .replace("{*object}", "probe/object");
        for method in METHODS {
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Each call is checked against the description by the harness as well.
            let reply = w
                .server
                .request(verb, &path, Some(&w.admin))
                .body("{}")
                .checked()
                .await;
            if item.get(method).is_some() {
                assert_ne!(
                    reply.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is described but not served"
                );
                assert!(
                    !reply.text().contains("No resource at"),
                    "{method} {template} fell through to the fallback"
                );
            } else {
                assert_eq!(
                    reply.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is served but not described"
                );
                assert!(reply.headers().contains_key("allow"));
            }
        }
    }
}
