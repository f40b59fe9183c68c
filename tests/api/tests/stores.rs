//! Several stores: imports to chosen stores or all, copy-image between them, uploads naming
//! a store, reads from whichever store holds the data, removal from one store, and what
//! `all_stores_must_succeed` does when a store fails. Servers here keep two stores, `fast`
//! (the default) and `cheap`; the deployed stack has the template's two.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{
    Checked, World, id_of, json_body, put_part, sample_bytes, testing_aws,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn raw_image() -> Value {
    json!({"name": "stored", "disk_format": "raw", "container_format": "bare"})
}

/// The ids of the two stores, the default first.
async fn two_stores(w: &World) -> (String, String) {
    let listed = json_body(
        w.server
            .request(Method::GET, "/v2/info/stores", Some(&w.alice))
            .checked()
            .await,
    )
    .await;
    let stores = listed["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 2, "{listed}");
    let default = stores.iter().find(|s| s["default"] == true).unwrap();
    let other = stores.iter().find(|s| s["default"] != true).unwrap();
    let id = |s: &Value| s["id"].as_str().unwrap().to_owned();
    (id(default), id(other))
}

/// Two stores' ids, sorted and joined, as an image's `stores` lists them.
fn listed(a: &str, b: &str) -> String {
    let mut both = [a, b];
    both.sort_unstable();
    both.join(",")
}

/// A new image with `data` staged, ready for glance-direct.
async fn staged_image(w: &World, data: &[u8]) -> String {
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let staged = w.server.stage(&w.alice, &id, data.to_vec()).await;
    assert_eq!(staged.status(), StatusCode::NO_CONTENT, "{}", staged.text());
    id
}

/// An active image whose data went to the default store by `PUT .../file`.
async fn uploaded_image(w: &World, data: &[u8]) -> String {
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let uploaded = w.server.upload(&w.alice, &id, data.to_vec()).await;
    assert_eq!(
        uploaded.status(),
        StatusCode::NO_CONTENT,
        "{}",
        uploaded.text()
    );
    id
}

/// Asks for an import of `id` that must be accepted (202).
async fn import_accepted(w: &World, token: &str, id: &str, body: Value) {
    let accepted = w.server.import_image(token, id, body).await;
    assert_eq!(
        accepted.status(),
        StatusCode::ACCEPTED,
        "{}",
        accepted.text()
    );
}

async fn the_only_task(w: &World, id: &str) -> Value {
    let tasks = json_body(w.server.image_tasks(&w.alice, id).await).await;
    let tasks = tasks["tasks"].as_array().unwrap();
    let task_id = tasks[0]["id"].as_str().unwrap();
    w.server.finished_task(&w.alice, task_id).await
}

fn property<'a>(image: &'a Value, key: &str) -> &'a str {
    image[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key}: {image}"))
}

async fn delete_from_store(
    w: &World,
    token: &str,
    store: &str,
    id: &str,
) -> cloud_images_api_tests::Reply {
    w.server
        .request(
            Method::DELETE,
            &format!("/v2/stores/{store}/{id}"),
            Some(token),
        )
        .checked()
        .await
}

#[tokio::test]
async fn an_import_to_all_stores_writes_each_and_removal_from_one_keeps_the_other() {
    let w = World::with_two_stores().await;
    let (fast, cheap) = two_stores(&w).await;
    let data = sample_bytes(2 * 1024 * 1024 + 5, 61);
    let id = staged_image(&w, &data).await;
    import_accepted(
        &w,
        &w.alice,
        &id,
        json!({"method": {"name": "glance-direct"}, "all_stores": true}),
    )
    .await;
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(property(&image, "stores"), listed(&fast, &cheap));
    assert_eq!(property(&image, "os_glance_importing_to_stores"), "");
    assert_eq!(property(&image, "os_glance_failed_import"), "");
    for store in [&fast, &cheap] {
        assert!(w.server.store_holds(store, &id).await, "{store} lacks it");
    }
    assert!(w.server.staged_of(&id).await.is_empty());
    assert_eq!(the_only_task(&w, &id).await["status"], "success");

    // Removal from one store: admins only; the data stays readable from the other.
    let refused = delete_from_store(&w, &w.alice, &fast, &id).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let removed = delete_from_store(&w, &w.admin, &fast, &id).await;
    assert_eq!(
        removed.status(),
        StatusCode::NO_CONTENT,
        "{}",
        removed.text()
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(property(&image, "stores"), cheap);
    assert!(!w.server.store_holds(&fast, &id).await);
    let downloaded = w.server.download(&w.alice, &id, None).await;
    assert_eq!(downloaded.bytes(), &data[..]);
    let again = delete_from_store(&w, &w.admin, &fast, &id).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "{}", again.text());
    let last = delete_from_store(&w, &w.admin, &cheap, &id).await;
    assert_eq!(last.status(), StatusCode::FORBIDDEN, "{}", last.text());

    // Deleting the image empties every store.
    let deleted = w.server.delete_image(&w.alice, &id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(!w.server.store_holds(&cheap, &id).await);
}

#[tokio::test]
async fn an_import_naming_one_store_writes_only_that_one() {
    let w = World::with_two_stores().await;
    let (fast, cheap) = two_stores(&w).await;
    let data = sample_bytes(300_000, 62);
    let id = staged_image(&w, &data).await;
    import_accepted(
        &w,
        &w.alice,
        &id,
        json!({"method": {"name": "glance-direct"}, "stores": [cheap]}),
    )
    .await;
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(property(&image, "stores"), cheap);
    assert!(w.server.store_holds(&cheap, &id).await);
    assert!(!w.server.store_holds(&fast, &id).await);
    let downloaded = w.server.download(&w.alice, &id, None).await;
    assert_eq!(downloaded.bytes(), &data[..]);
}

#[tokio::test]
async fn an_upload_goes_to_the_store_its_header_names() {
    let w = World::with_two_stores().await;
    let (fast, cheap) = two_stores(&w).await;
    let data = sample_bytes(100_000, 63);
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let put = |store: &str| {
        w.server
            .request(
                Method::PUT,
                &format!("/v2/images/{id}/file"),
                Some(&w.alice),
            )
            .header("content-type", "application/octet-stream")
            .header("x-image-meta-store", store)
            .body(data.clone())
            .checked()
    };
    let unknown = put("nowhere").await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.text().contains("nowhere"), "{}", unknown.text());
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(
        image["status"], "queued",
        "a refused upload changes nothing"
    );

    let stored = put(&cheap).await;
    assert_eq!(stored.status(), StatusCode::NO_CONTENT, "{}", stored.text());
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(property(&image, "stores"), cheap);
    assert!(w.server.store_holds(&cheap, &id).await);
    assert!(!w.server.store_holds(&fast, &id).await);
    let downloaded = w.server.download(&w.alice, &id, None).await;
    assert_eq!(downloaded.bytes(), &data[..]);
}

#[tokio::test]
async fn a_staged_upload_completed_naming_a_store_is_imported_there() {
    let w = World::with_two_stores().await;
    let (fast, cheap) = two_stores(&w).await;
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let data = sample_bytes(9 * 1024 * 1024, 67);
    let parts = w
        .server
        .request(
            Method::POST,
            &format!("/v2/images/{id}/file/parts"),
            Some(&w.alice),
        )
        .json(&json!({ "size": data.len() }))
        .checked()
        .await;
    if !testing_aws() {
        // Files take data directly: no staged parts to complete.
        assert_eq!(parts.status(), StatusCode::BAD_REQUEST);
        return;
    }
    let upload = json_body(parts).await;
    for number in 1..=upload["parts"].as_array().unwrap().len() {
        put_part(&upload, number, &data).await;
    }
    let complete = |store: &str| {
        w.server
            .request(
                Method::POST,
                &format!("/v2/images/{id}/file/complete"),
                Some(&w.alice),
            )
            .header("x-image-meta-store", store)
            .json(&json!({ "upload_id": upload["upload_id"] }))
            .checked()
    };
    let unknown = complete("nowhere").await;
    assert_eq!(unknown.status(), StatusCode::CONFLICT, "{}", unknown.text());
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["status"], "queued", "a refused store changes nothing");

    let accepted = complete(&cheap).await;
    assert_eq!(
        accepted.status(),
        StatusCode::ACCEPTED,
        "{}",
        accepted.text()
    );
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(property(&image, "stores"), cheap);
    assert!(w.server.store_holds(&cheap, &id).await);
    assert!(!w.server.store_holds(&fast, &id).await);
}

#[tokio::test]
async fn copy_image_copies_an_active_image_to_another_store_for_admins() {
    let w = World::with_two_stores().await;
    let (fast, cheap) = two_stores(&w).await;
    let data = sample_bytes(1024 * 1024 + 3, 64);
    let id = uploaded_image(&w, &data).await;
    let copy = json!({"method": {"name": "copy-image"}, "stores": [cheap]});
    let refused = w.server.import_image(&w.alice, &id, copy.clone()).await;
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "{}",
        refused.text()
    );
    let unknown = w
        .server
        .import_image(
            &w.admin,
            &id,
            json!({"method": {"name": "copy-image"}, "stores": ["nowhere"]}),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::CONFLICT, "{}", unknown.text());
    let already = w
        .server
        .import_image(
            &w.admin,
            &id,
            json!({"method": {"name": "copy-image"}, "stores": [fast]}),
        )
        .await;
    assert_eq!(already.status(), StatusCode::CONFLICT, "{}", already.text());

    import_accepted(&w, &w.admin, &id, copy).await;
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(property(&image, "stores"), listed(&fast, &cheap));
    assert_eq!(property(&image, "os_glance_importing_to_stores"), "");
    assert_eq!(property(&image, "os_glance_failed_import"), "");
    assert!(w.server.store_holds(&cheap, &id).await);

    // The copy is whole: remove the original and read the copy.
    let removed = delete_from_store(&w, &w.admin, &fast, &id).await;
    assert_eq!(
        removed.status(),
        StatusCode::NO_CONTENT,
        "{}",
        removed.text()
    );
    let downloaded = w.server.download(&w.alice, &id, None).await;
    assert_eq!(downloaded.bytes(), &data[..]);
    assert_eq!(
        image["checksum"],
        json_body(w.server.show_image(&w.alice, &id).await).await["checksum"]
    );
}

#[tokio::test]
async fn when_a_store_fails_an_import_that_may_go_on_activates_in_the_others() {
    let w = World::with_two_stores().await;
    let (fast, cheap) = two_stores(&w).await;
    w.server.break_store(&cheap).await;
    let data = sample_bytes(200_000, 65);
    let id = staged_image(&w, &data).await;
    import_accepted(&w, &w.alice, &id, json!({"method": {"name": "glance-direct"}, "all_stores": true, "all_stores_must_succeed": false})).await;
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(property(&image, "stores"), fast);
    assert_eq!(property(&image, "os_glance_failed_import"), cheap);
    assert_eq!(property(&image, "os_glance_importing_to_stores"), "");
    assert_eq!(the_only_task(&w, &id).await["status"], "success");
    let downloaded = w.server.download(&w.alice, &id, None).await;
    assert_eq!(downloaded.bytes(), &data[..]);

    // The failing store named first: the bytes enter the next one instead, as in Glance.
    let id = staged_image(&w, &data).await;
    import_accepted(&w, &w.alice, &id, json!({"method": {"name": "glance-direct"}, "stores": [cheap, fast], "all_stores_must_succeed": false})).await;
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(property(&image, "stores"), fast);
    assert_eq!(property(&image, "os_glance_failed_import"), cheap);
    assert!(w.server.staged_of(&id).await.is_empty());
}

#[tokio::test]
async fn when_a_store_fails_an_import_where_all_must_succeed_undoes_every_store() {
    let w = World::with_two_stores().await;
    let (fast, cheap) = two_stores(&w).await;
    w.server.break_store(&cheap).await;
    let data = sample_bytes(200_000, 66);
    let id = staged_image(&w, &data).await;
    import_accepted(
        &w,
        &w.alice,
        &id,
        json!({"method": {"name": "glance-direct"}, "all_stores": true}),
    )
    .await;
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(property(&image, "os_glance_failed_import"), cheap);
    assert!(image.get("stores").is_none(), "{image}");
    assert_eq!(image["size"], Value::Null);
    assert!(
        !w.server.store_holds(&fast, &id).await,
        "the first store kept a copy"
    );
    assert!(w.server.staged_of(&id).await.is_empty());
    let task = the_only_task(&w, &id).await;
    assert_eq!(task["status"], "failure");
    assert!(task["message"].as_str().unwrap().contains(&cheap), "{task}");

    // The same for a copy: the image stays active where it was.
    let id = uploaded_image(&w, &data).await;
    import_accepted(
        &w,
        &w.admin,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": [cheap]}),
    )
    .await;
    let image = w.server.import_ended(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(property(&image, "stores"), fast);
    assert_eq!(property(&image, "os_glance_failed_import"), cheap);
}
