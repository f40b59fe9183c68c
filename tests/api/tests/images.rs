//! Image metadata: create, show, delete, tags, deactivation, roles and quotas.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{Checked, Server, World, id_of, json_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "container_format",
    "disk_format",
    "min_ram",
    "min_disk",
    "tags",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
];

fn is_glance_time(value: &Value) -> bool {
    let text = value.as_str().unwrap_or("");
    text.len() == 20 && text.ends_with('Z') && chrono_like(text)
}

fn chrono_like(text: &str) -> bool {
    text.as_bytes().iter().enumerate().all(|(i, b)| match i {
        4 | 7 => *b == b'-',
        10 => *b == b'T',
        13 | 16 => *b == b':',
        19 => *b == b'Z',
        _ => b.is_ascii_digit(),
    })
}

#[tokio::test]
async fn creating_an_image_answers_201_with_location_and_every_core_property() {
    let w = World::new().await;
    let response = w
        .server
        .create_image(
            &w.alice,
            json!({ "name": "cirros", "disk_format": "qcow2", "container_format": "bare" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        response
            .headers()
            .contains_key("openstack-image-import-methods")
    );
    let image = json_body(response).await;
    let id = id_of(&image);
    assert_eq!(location, w.server.url(&format!("/v2/images/{id}")));
    for key in CORE {
        assert!(image.get(*key).is_some(), "{key} missing from {image}");
    }
    assert_eq!(image["status"], "queued");
    assert_eq!(image["visibility"], "shared");
    assert_eq!(image["owner"], w.acme.as_str());
    assert_eq!(image["protected"], false);
    assert_eq!(image["size"], Value::Null);
    assert_eq!(image["checksum"], Value::Null);
    assert_eq!(image["min_disk"], 0);
    assert_eq!(image["self"], format!("/v2/images/{id}"));
    assert_eq!(image["file"], format!("/v2/images/{id}/file"));
    assert_eq!(image["schema"], "/v2/schemas/image");
    assert!(
        is_glance_time(&image["created_at"]) && is_glance_time(&image["updated_at"]),
        "{image}"
    );
    let shown = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(shown, image);
}

#[tokio::test]
async fn additional_properties_tags_and_flags_are_stored_as_given() {
    let w = World::new().await;
    let image = w
        .server
        .new_image(
            &w.alice,
            json!({
                "name": "deb", "tags": ["a", "b", "a"], "os_distro": "debian", "os_version": "12",
                "min_ram": 512, "protected": true, "os_hidden": false, "visibility": "private",
            }),
        )
        .await;
    assert_eq!(image["tags"], json!(["a", "b"]));
    assert_eq!(image["os_distro"], "debian");
    assert_eq!(image["os_version"], "12");
    assert_eq!(image["min_ram"], 512);
    assert_eq!(image["protected"], true);
    assert_eq!(image["visibility"], "private");
}

#[tokio::test]
async fn a_caller_may_choose_an_unused_uuid_as_the_id() {
    let w = World::new().await;
    // Unused anywhere, also on a deployment that outlives this test.
    let id = uuid::Uuid::new_v4().to_string();
    let id = id.as_str();
    let image = w
        .server
        .new_image(&w.alice, json!({ "id": id, "name": "mine" }))
        .await;
    assert_eq!(image["id"], id);
    let again = w.server.create_image(&w.bob, json!({ "id": id })).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(
        json_body(again).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains(id)
    );
    assert_eq!(
        w.server
            .create_image(&w.alice, json!({ "id": "not-a-uuid" }))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn read_only_and_reserved_properties_on_create_are_forbidden() {
    let w = World::new().await;
    for key in [
        "status",
        "checksum",
        "size",
        "created_at",
        "self",
        "locations",
        "os_glance_import",
        "location",
        "deleted",
        "com.rackspace__1_x",
    ] {
        let response = w.server.create_image(&w.alice, json!({ key: "x" })).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{key}");
        assert!(
            json_body(response).await["error"]["message"]
                .as_str()
                .unwrap()
                .contains(key)
        );
    }
    assert!(
        w.server.listed_ids(&w.alice, "").await.is_empty(),
        "a refused create must store nothing"
    );
}

#[tokio::test]
async fn invalid_values_on_create_are_bad_requests_naming_the_field() {
    let w = World::new().await;
    let long_name = "n".repeat(256);
    let cases = [
        (json!({ "visibility": "bogus" }), "visibility"),
        (json!({ "min_ram": -1 }), "min_ram"),
        (json!({ "min_disk": "1" }), "min_disk"),
        (json!({ "disk_format": "floppy" }), "disk_format"),
        (json!({ "container_format": "crate" }), "container_format"),
        (json!({ "protected": "yes" }), "protected"),
        (json!({ "extra": 5 }), "extra"),
        (json!({ "name": long_name }), "name"),
        (json!({ "os_distro": "Ubuntu" }), "os_distro"),
        (json!({ "tags": "a" }), "tags"),
        (json!([{ "name": "array" }]), "JSON object"),
    ];
    for (body, field) in cases {
        let response = w.server.create_image(&w.alice, body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let message = json_body(response).await["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn public_visibility_needs_an_admin() {
    let w = World::new().await;
    let refused = w
        .server
        .create_image(&w.alice, json!({ "visibility": "public" }))
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let public = w
        .server
        .new_image(&w.admin, json!({ "visibility": "public" }))
        .await;
    assert_eq!(public["visibility"], "public");
    let community = w
        .server
        .new_image(&w.alice, json!({ "visibility": "community" }))
        .await;
    assert_eq!(community["visibility"], "community");
}

#[tokio::test]
async fn images_of_other_tenants_are_404_unless_public_or_community() {
    let w = World::new().await;
    let ids = futures_ids(&w, &["private", "shared"]).await;
    for id in &ids {
        let response = w.server.show_image(&w.bob, id).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(
            json_body(response).await["error"]["message"]
                .as_str()
                .unwrap()
                .contains(id.as_str())
        );
    }
    let community = id_of(
        &w.server
            .new_image(&w.alice, json!({ "visibility": "community" }))
            .await,
    );
    assert_eq!(
        w.server.show_image(&w.bob, &community).await.status(),
        StatusCode::OK
    );
    let public = id_of(
        &w.server
            .new_image(&w.admin, json!({ "visibility": "public" }))
            .await,
    );
    assert_eq!(
        w.server.show_image(&w.bob, &public).await.status(),
        StatusCode::OK
    );
    for id in &ids {
        assert_eq!(
            w.server.show_image(&w.admin, id).await.status(),
            StatusCode::OK,
            "admins see everything"
        );
    }
}

async fn futures_ids(w: &World, visibilities: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for visibility in visibilities {
        ids.push(id_of(
            &w.server
                .new_image(&w.alice, json!({ "visibility": visibility }))
                .await,
        ));
    }
    ids
}

#[tokio::test]
async fn ids_that_are_not_uuids_or_unknown_are_404() {
    let w = World::new().await;
    for id in [
        "nope",
        "6e4f7a5c-0f4e-4a8e-9a59-7d0c3e0e9b11",
        "..%2F..%2Fetc",
    ] {
        assert_eq!(
            w.server.show_image(&w.alice, id).await.status(),
            StatusCode::NOT_FOUND,
            "{id}"
        );
        assert_eq!(
            w.server.delete_image(&w.alice, id).await.status(),
            StatusCode::NOT_FOUND,
            "{id}"
        );
    }
}

#[tokio::test]
async fn deleting_answers_204_then_the_image_is_gone() {
    let w = World::new().await;
    let id = id_of(
        &w.server
            .new_image(&w.alice, json!({ "name": "doomed" }))
            .await,
    );
    assert_eq!(
        w.server.delete_image(&w.alice, &id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.server.show_image(&w.alice, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.server.delete_image(&w.alice, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(w.server.listed_ids(&w.alice, "").await.is_empty());
}

#[tokio::test]
async fn a_protected_image_cannot_be_deleted_until_unprotected() {
    let w = World::new().await;
    let id = id_of(
        &w.server
            .new_image(&w.alice, json!({ "protected": true }))
            .await,
    );
    let refused = w.server.delete_image(&w.alice, &id).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(refused).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("protected")
    );
    let unprotect = json!([{ "op": "replace", "path": "/protected", "value": false }]);
    assert_eq!(
        w.server
            .patch_image(&w.alice, &id, unprotect)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server.delete_image(&w.alice, &id).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn another_tenant_can_neither_change_nor_delete_an_image_it_can_see() {
    let w = World::new().await;
    let community = id_of(
        &w.server
            .new_image(&w.alice, json!({ "visibility": "community", "name": "c" }))
            .await,
    );
    let rename = json!([{ "op": "replace", "path": "/name", "value": "stolen" }]);
    assert_eq!(
        w.server
            .patch_image(&w.bob, &community, rename)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.server.delete_image(&w.bob, &community).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.server
            .tag(Method::PUT, &w.bob, &community, "mine")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let after = json_body(w.server.show_image(&w.alice, &community).await).await;
    assert_eq!(after["name"], "c");
    assert_eq!(after["tags"], json!([]));
}

#[tokio::test]
async fn a_reader_reads_but_changes_nothing() {
    let w = World::new().await;
    let rita = w.server.account("acme", "rita", "reader").await;
    let reader = w.server.token(&rita).await;
    let id = id_of(
        &w.server
            .new_image(&w.alice, json!({ "name": "team image" }))
            .await,
    );
    assert_eq!(
        w.server.show_image(&reader, &id).await.status(),
        StatusCode::OK
    );
    assert_eq!(w.server.listed_ids(&reader, "").await, vec![id.clone()]);
    let attempts = [
        w.server.create_image(&reader, json!({ "name": "x" })).await,
        w.server
            .patch_image(
                &reader,
                &id,
                json!([{ "op": "replace", "path": "/name", "value": "x" }]),
            )
            .await,
        w.server.delete_image(&reader, &id).await,
        w.server.tag(Method::PUT, &reader, &id, "t").await,
        w.server.tag(Method::DELETE, &reader, &id, "t").await,
    ];
    for response in attempts {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        json_body(w.server.show_image(&w.alice, &id).await).await["name"],
        "team image"
    );
}

/// Without a type of its own, API Gateway labels an empty answer `application/json`, and
/// python-glanceclient then fails parsing it; Glance names `text/html` (webob's default).
#[tokio::test]
async fn an_empty_answer_names_its_content_type() {
    let w = World::new().await;
    let id = id_of(&w.server.new_image(&w.alice, json!({})).await);
    let added = w.server.tag(Method::PUT, &w.alice, &id, "gold").await;
    assert_eq!(added.status(), StatusCode::NO_CONTENT);
    assert_eq!(added.headers()["content-type"], "text/html; charset=UTF-8");
    assert!(added.bytes().is_empty());
}

#[tokio::test]
async fn tags_are_added_idempotently_and_removed_once() {
    let w = World::new().await;
    let id = id_of(&w.server.new_image(&w.alice, json!({})).await);
    for _ in 0..2 {
        assert_eq!(
            w.server
                .tag(Method::PUT, &w.alice, &id, "gold")
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        w.server
            .tag(Method::PUT, &w.alice, &id, "with space")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["tags"], json!(["gold", "with space"]));
    assert_eq!(
        w.server
            .tag(Method::DELETE, &w.alice, &id, "gold")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let missing = w.server.tag(Method::DELETE, &w.alice, &id, "gold").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let long = "t".repeat(256);
    assert_eq!(
        w.server
            .tag(Method::PUT, &w.alice, &id, &long)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        json_body(w.server.show_image(&w.alice, &id).await).await["tags"],
        json!(["with space"])
    );
}

#[tokio::test]
async fn the_tag_limit_is_413() {
    let w = World::with_env(&[("CLOUD_IMAGES_MAX_IMAGE_TAGS", "2")]).await;
    let id = id_of(
        &w.server
            .new_image(&w.alice, json!({ "tags": ["a", "b"] }))
            .await,
    );
    assert_eq!(
        w.server.tag(Method::PUT, &w.alice, &id, "c").await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        w.server
            .create_image(&w.alice, json!({ "tags": ["a", "b", "c"] }))
            .await
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn the_additional_property_limit_is_413() {
    let w = World::with_env(&[("CLOUD_IMAGES_MAX_IMAGE_PROPERTIES", "2")]).await;
    let id = id_of(
        &w.server
            .new_image(&w.alice, json!({ "a": "1", "b": "2" }))
            .await,
    );
    let third = json!([{ "op": "add", "path": "/c", "value": "3" }]);
    assert_eq!(
        w.server.patch_image(&w.alice, &id, third).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let replace = json!([{ "op": "replace", "path": "/a", "value": "one" }]);
    assert_eq!(
        w.server.patch_image(&w.alice, &id, replace).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_image_count_quota_is_413_on_create() {
    let w = World::with_env(&[("CLOUD_IMAGES_MAX_IMAGES_PER_TENANT", "2")]).await;
    for _ in 0..2 {
        w.server.new_image(&w.alice, json!({})).await;
    }
    let refused = w.server.create_image(&w.alice, json!({})).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        json_body(refused).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota")
    );
    assert_eq!(
        w.server.create_image(&w.bob, json!({})).await.status(),
        StatusCode::CREATED,
        "quotas are per tenant"
    );
}

/// The count moves in the same atomic write as the image: racing creates can't all pass
/// a check made before any of them is stored.
#[tokio::test]
async fn two_hundred_concurrent_creates_at_a_quota_of_a_hundred_leave_exactly_a_hundred() {
    let w = World::with_env(&[("CLOUD_IMAGES_MAX_IMAGES_PER_TENANT", "100")]).await;
    let replies = futures::future::join_all((0..200).map(|i| {
        w.server
            .create_image(&w.alice, json!({ "name": format!("race-{i}") }))
    }))
    .await;
    let count = |status| replies.iter().filter(|r| r.status() == status).count();
    assert_eq!(
        (
            count(StatusCode::CREATED),
            count(StatusCode::PAYLOAD_TOO_LARGE)
        ),
        (100, 100),
        "{:?}",
        replies.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    let listed = w.server.list_all(&w.alice, "/v2/images?limit=1000").await;
    assert_eq!(listed.len(), 100, "the tenant keeps exactly its quota");
    let deleted = id_of(
        &json_body(
            replies
                .into_iter()
                .find(|r| r.status() == StatusCode::CREATED)
                .unwrap(),
        )
        .await,
    );
    assert_eq!(
        w.server.delete_image(&w.alice, &deleted).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.server.create_image(&w.alice, json!({})).await.status(),
        StatusCode::CREATED,
        "a delete gives its room back"
    );
}

#[tokio::test]
async fn only_admins_deactivate_by_default_and_only_active_images() {
    let w = World::new().await;
    let id = id_of(&w.server.new_image(&w.alice, json!({})).await);
    let by_owner = w.server.image_action(&w.alice, &id, "deactivate").await;
    assert_eq!(by_owner.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(by_owner).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("administrators")
    );
    assert_eq!(
        w.server
            .image_action(&w.bob, &id, "deactivate")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let queued = w.server.image_action(&w.admin, &id, "deactivate").await;
    assert_eq!(queued.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(queued).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queued")
    );
    assert_eq!(
        w.server
            .image_action(&w.admin, &id, "reactivate")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        json_body(w.server.show_image(&w.alice, &id).await).await["status"],
        "queued"
    );
}

#[tokio::test]
async fn owners_may_deactivate_when_the_setting_allows() {
    let w = World::with_env(&[("CLOUD_IMAGES_OWNER_MAY_DEACTIVATE", "true")]).await;
    let id = id_of(&w.server.new_image(&w.alice, json!({})).await);
    let response = w.server.image_action(&w.alice, &id, "deactivate").await;
    // Permission passes; the queued image is then refused for its status, not for the caller.
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(response).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queued")
    );
}

#[tokio::test]
async fn no_input_on_image_routes_produces_a_server_error() {
    let w = World::new().await;
    let id = id_of(&w.server.new_image(&w.alice, json!({})).await);
    let bodies: [&[u8]; 6] = [
        b"",
        b"null",
        b"\"str\"",
        b"{\"name\": {\"deep\": []}}",
        b"[[[[[[[[]]]]]]]]",
        b"\xff\xfe",
    ];
    let paths = [
        "/v2/images".to_owned(),
        format!("/v2/images/{id}"),
        format!("/v2/images/{id}/tags/x"),
        format!("/v2/images/{id}/actions/deactivate"),
    ];
    for path in &paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            for body in bodies {
                let response = w
                    .server
                    .request(method.clone(), path, Some(&w.alice))
                    .header(
                        "Content-Type",
                        "application/openstack-images-v2.1-json-patch",
                    )
                    .body(body.to_vec())
                    .checked()
                    .await;
                assert!(
                    response.status().as_u16() < 500,
                    "{method} {path} {body:?} -> {}",
                    response.status()
                );
            }
        }
    }
    let odd_queries = [
        "limit=abc",
        "marker=%00",
        "sort=name:sideways",
        "created_at=gt:",
        "tag=",
        "size_min=1e9",
        "%zz=1",
    ];
    for query in odd_queries {
        let status = w.server.list_images(&w.alice, query).await.status();
        assert!(status.as_u16() < 500, "{query} -> {status}");
    }
}

#[tokio::test]
async fn a_server_restart_keeps_images() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let image = server
        .new_image(&token, json!({ "name": "durable", "tags": ["x"] }))
        .await;
    let data = server.stop().await;
    let again = Server::start_in(data, &[]).await;
    let shown = json_body(again.show_image(&token, &id_of(&image)).await).await;
    assert_eq!(shown, image);
}
