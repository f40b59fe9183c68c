//! PATCH: media types, operations, restricted pointers, atomicity and concurrency.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{Checked, World, id_of, json_body};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn image_with_property(w: &World) -> String {
    id_of(
        &w.server
            .new_image(&w.alice, json!({ "name": "base", "os_version": "11" }))
            .await,
    )
}

#[tokio::test]
async fn add_replace_and_remove_answer_200_with_the_updated_image() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let ops = json!([
        { "op": "replace", "path": "/name", "value": "renamed" },
        { "op": "add", "path": "/os_distro", "value": "debian" },
        { "op": "add", "path": "/os_version", "value": "12" },
        { "op": "replace", "path": "/min_disk", "value": 10 },
        { "op": "replace", "path": "/tags", "value": ["x", "y", "x"] },
    ]);
    let response = w.server.patch_image(&w.alice, &id, ops).await;
    assert_eq!(response.status(), StatusCode::OK);
    let image = json_body(response).await;
    assert_eq!(image["name"], "renamed");
    assert_eq!(image["os_distro"], "debian");
    assert_eq!(image["os_version"], "12");
    assert_eq!(image["min_disk"], 10);
    assert_eq!(image["tags"], json!(["x", "y"]));
    let removed = w
        .server
        .patch_image(
            &w.alice,
            &id,
            json!([{ "op": "remove", "path": "/os_version" }]),
        )
        .await;
    let image = json_body(removed).await;
    assert!(image.get("os_version").is_none());
    assert_eq!(
        json_body(w.server.show_image(&w.alice, &id).await).await,
        image
    );
}

#[tokio::test]
async fn the_deprecated_v2_0_dialect_is_accepted() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let response = w
        .server
        .request(Method::PATCH, &format!("/v2/images/{id}"), Some(&w.alice))
        .header(
            "Content-Type",
            "application/openstack-images-v2.0-json-patch",
        )
        .body(
            json!([{ "replace": "/name", "value": "old-style" }, { "remove": "/os_version" }])
                .to_string(),
        )
        .checked()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let image = json_body(response).await;
    assert_eq!(image["name"], "old-style");
    assert!(image.get("os_version").is_none());
}

#[tokio::test]
async fn other_media_types_get_415_with_accept_patch() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    for content_type in [
        "application/json",
        "application/json-patch+json",
        "text/plain",
    ] {
        let response = w
            .server
            .request(Method::PATCH, &format!("/v2/images/{id}"), Some(&w.alice))
            .header("Content-Type", content_type)
            .body(json!([{ "op": "replace", "path": "/name", "value": "x" }]).to_string())
            .checked()
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        let accept = response.headers()["accept-patch"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(accept.contains("application/openstack-images-v2.1-json-patch"));
        assert!(
            json_body(response).await["error"]["message"]
                .as_str()
                .unwrap()
                .contains(content_type)
        );
    }
}

#[tokio::test]
async fn each_rule_violation_gets_its_glance_status() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let long_key = format!("/{}", "k".repeat(256));
    let cases = [
        (
            json!([{ "op": "replace", "path": "/absent", "value": "x" }]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{ "op": "remove", "path": "/absent" }]),
            StatusCode::CONFLICT,
        ),
        (
            json!([{ "op": "remove", "path": "/name" }]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{ "op": "replace", "path": "/status", "value": "active" }]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{ "op": "add", "path": "/checksum", "value": "0" }]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{ "op": "add", "path": "/os_glance_x", "value": "1" }]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{ "op": "add", "path": "/owner", "value": "someone" }]),
            StatusCode::FORBIDDEN,
        ),
        (
            json!([{ "op": "replace", "path": "/visibility", "value": "bogus" }]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([{ "op": "add", "path": "/tags/-", "value": "x" }]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([{ "op": "add", "path": "name", "value": "x" }]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([{ "op": "move", "path": "/name", "from": "/os_version" }]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!([{ "op": "add", "path": long_key, "value": "v" }]),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "op": "add", "path": "/name", "value": "x" }),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (ops, expected) in cases {
        let response = w.server.patch_image(&w.alice, &id, ops.clone()).await;
        assert_eq!(response.status(), expected, "{ops}");
        assert!(
            json_body(response).await["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["name"], "base");
    assert_eq!(
        image["owner"],
        w.acme.as_str(),
        "a refused owner change must not be stored"
    );
}

#[tokio::test]
async fn escaped_pointers_name_keys_with_slashes_and_tildes() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let response = w
        .server
        .patch_image(
            &w.alice,
            &id,
            json!([{ "op": "add", "path": "/a~1b~0c", "value": "v" }]),
        )
        .await;
    assert_eq!(json_body(response).await["a/b~c"], "v");
}

#[tokio::test]
async fn a_patch_with_one_bad_operation_changes_nothing() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let ops = json!([
        { "op": "replace", "path": "/name", "value": "half" },
        { "op": "add", "path": "/extra", "value": "x" },
        { "op": "replace", "path": "/visibility", "value": "nonsense" },
    ]);
    assert_eq!(
        w.server.patch_image(&w.alice, &id, ops).await.status(),
        StatusCode::BAD_REQUEST
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["name"], "base");
    assert!(image.get("extra").is_none());
}

#[tokio::test]
async fn admins_may_change_the_owner_and_make_images_public() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let ops = json!([
        { "op": "replace", "path": "/owner", "value": w.globex },
        { "op": "replace", "path": "/visibility", "value": "public" },
    ]);
    let image = json_body(w.server.patch_image(&w.admin, &id, ops).await).await;
    assert_eq!(image["owner"], w.globex.as_str());
    assert_eq!(image["visibility"], "public");
    let rename = json!([{ "op": "replace", "path": "/name", "value": "bob's now" }]);
    assert_eq!(
        w.server
            .patch_image(&w.bob, &id, rename.clone())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server.patch_image(&w.alice, &id, rename).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn twenty_concurrent_patches_lose_no_update() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let patches = (0..20).map(|i| {
        let ops = json!([{ "op": "add", "path": format!("/key{i}"), "value": format!("{i}") }]);
        w.server.patch_image(&w.alice, &id, ops)
    });
    let responses = join_all(patches).await;
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    for i in 0..20 {
        assert_eq!(
            image[format!("key{i}")],
            format!("{i}"),
            "update {i} was lost"
        );
    }
}

#[tokio::test]
async fn concurrent_tag_additions_all_land() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    let tags: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let responses = join_all(
        tags.iter()
            .map(|t| w.server.tag(Method::PUT, &w.alice, &id, t)),
    )
    .await;
    assert!(
        responses
            .iter()
            .all(|r| r.status() == StatusCode::NO_CONTENT)
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["tags"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn thirty_two_writers_hammering_one_image_never_get_a_conflict_or_lose_a_change() {
    let w = World::new().await;
    let id = image_with_property(&w).await;
    // Each writer rewrites its own property 15 times, one PATCH after another, while 31
    // others do the same: every compare-and-set race is lost by someone, again and again.
    let writers = (0..32).map(|writer| {
        let (w, id) = (&w, &id);
        async move {
            let mut failures = Vec::new();
            for round in 0..15 {
                let ops = json!([
                    { "op": "add", "path": format!("/w{writer}"), "value": format!("{round}") }
                ]);
                let response = w.server.patch_image(&w.alice, id, ops).await;
                if response.status() != StatusCode::OK {
                    failures.push(format!("{}: {}", response.status(), response.text()));
                }
            }
            failures
        }
    });
    let failures: Vec<String> = join_all(writers).await.into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "{} of 480 PATCHes failed: {failures:?}",
        failures.len()
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    for writer in 0..32 {
        assert_eq!(
            image[format!("w{writer}")],
            "14",
            "writer {writer}'s last change"
        );
    }
}
