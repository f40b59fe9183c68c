//! Image data: upload, download, checksums, ranges, quota, and never a half-written image.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{
    Checked, RawUpload, Server, World, eventually, id_of, json_body, sample_bytes, tool_digest,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn raw_image(w: &World, token: &str) -> String {
    id_of(
        &w.server
            .new_image(
                token,
                json!({ "disk_format": "raw", "container_format": "bare" }),
            )
            .await,
    )
}

#[tokio::test]
async fn a_chunked_upload_becomes_active_with_the_digests_md5sum_and_sha512sum_compute() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let data = sample_bytes(3 * 1024 * 1024 + 12_345, 1);
    let reply = w
        .server
        .upload_chunked(&w.alice, &id, data.clone(), 1024 * 1024)
        .await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT, "{}", reply.text());
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["virtual_size"], data.len());
    assert_eq!(image["checksum"], tool_digest("md5sum", &data));
    assert_eq!(image["os_hash_algo"], "sha512");
    assert_eq!(image["os_hash_value"], tool_digest("sha512sum", &data));

    let download = w.server.download(&w.alice, &id, None).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(
        download.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(
        download.headers()["content-md5"],
        image["checksum"].as_str().unwrap()
    );
    assert!(
        download.bytes() == data.as_slice(),
        "downloaded bytes differ"
    );
}

#[tokio::test]
async fn an_upload_with_content_length_works_and_honours_the_size_hint() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let data = sample_bytes(100_000, 2);
    let mismatched = w
        .server
        .request(
            reqwest::Method::PUT,
            &format!("/v2/images/{id}/file"),
            Some(&w.alice),
        )
        .header("Content-Type", "application/octet-stream")
        .header("x-openstack-image-size", "99999")
        .body(data.clone());
    let reply = cloud_images_api_tests::Checked::checked(mismatched).await;
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("x-openstack-image-size"));
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(
        (image["status"].clone(), image["size"].clone()),
        (json!("queued"), Value::Null)
    );
    assert_eq!(
        w.server.upload(&w.alice, &id, data.clone()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(w.server.download(&w.alice, &id, None).await.bytes() == data.as_slice());
}

#[tokio::test]
async fn data_may_be_uploaded_only_once_to_a_queued_image_with_formats_set() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    assert_eq!(
        w.server
            .upload(&w.alice, &id, b"first".to_vec())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let again = w.server.upload(&w.alice, &id, b"second".to_vec()).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().contains("queued"));
    assert_eq!(
        w.server.download(&w.alice, &id, None).await.bytes(),
        b"first"
    );

    let formatless = id_of(
        &w.server
            .new_image(&w.alice, json!({ "name": "no formats" }))
            .await,
    );
    let refused = w.server.upload(&w.alice, &formatless, b"x".to_vec()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().contains("disk_format"));
}

#[tokio::test]
async fn only_octet_streams_are_accepted() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let request = w
        .server
        .request(
            reqwest::Method::PUT,
            &format!("/v2/images/{id}/file"),
            Some(&w.alice),
        )
        .header("Content-Type", "application/json")
        .body("{}");
    assert_eq!(
        cloud_images_api_tests::Checked::checked(request)
            .await
            .status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn an_image_without_data_downloads_as_204() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let reply = w.server.download(&w.alice, &id, None).await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    assert!(reply.bytes().is_empty());
}

#[tokio::test]
async fn ranges_return_exactly_the_slice_and_unsatisfiable_ones_416() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let data = sample_bytes(10_000, 3);
    w.server.upload(&w.alice, &id, data.clone()).await;
    for (range, first, last) in [
        ("bytes=10-19", 10, 19),
        ("bytes=9990-", 9990, 9999),
        ("bytes=-5", 9995, 9999),
        ("bytes=9000-20000", 9000, 9999),
    ] {
        let reply = w.server.download(&w.alice, &id, Some(range)).await;
        assert_eq!(reply.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            reply.headers()["content-range"],
            format!("bytes {first}-{last}/10000").as_str()
        );
        assert!(reply.bytes() == &data[first..=last], "{range}");
    }
    let unsatisfiable = w.server.download(&w.alice, &id, Some("bytes=10000-")).await;
    assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(unsatisfiable.headers()["content-range"], "bytes */10000");
    assert_eq!(
        w.server
            .download(&w.alice, &id, Some("bytes=0-1,5-6"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn deactivated_images_refuse_downloads_to_all_but_admins_until_reactivated() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    w.server.upload(&w.alice, &id, b"payload".to_vec()).await;
    assert_eq!(
        w.server
            .image_action(&w.admin, &id, "deactivate")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.server
            .image_action(&w.admin, &id, "deactivate")
            .await
            .status(),
        StatusCode::NO_CONTENT,
        "repeating is a no-op"
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["status"], "deactivated");
    assert!(
        w.server.listed_ids(&w.alice, "").await.contains(&id),
        "deactivated images still list"
    );
    let refused = w.server.download(&w.alice, &id, None).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().contains("deactivated"));
    assert_eq!(
        w.server.download(&w.admin, &id, None).await.bytes(),
        b"payload"
    );
    assert_eq!(
        w.server
            .image_action(&w.alice, &id, "reactivate")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.server
            .image_action(&w.admin, &id, "reactivate")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        json_body(w.server.show_image(&w.alice, &id).await).await["status"],
        "active"
    );
    assert_eq!(
        w.server.download(&w.alice, &id, None).await.bytes(),
        b"payload"
    );
}

#[tokio::test]
async fn owners_deactivate_their_active_images_when_the_setting_allows() {
    let w = World::with_env(&[("CLOUD_IMAGES_OWNER_MAY_DEACTIVATE", "true")]).await;
    let id = raw_image(&w, &w.alice).await;
    w.server.upload(&w.alice, &id, b"payload".to_vec()).await;
    assert_eq!(
        w.server
            .image_action(&w.alice, &id, "deactivate")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.server
            .image_action(&w.bob, &id, "reactivate")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.server
            .image_action(&w.alice, &id, "reactivate")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn formats_cannot_change_once_data_exists() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    w.server.upload(&w.alice, &id, b"payload".to_vec()).await;
    let ops = json!([{ "op": "replace", "path": "/disk_format", "value": "qcow2" }]);
    assert_eq!(
        w.server.patch_image(&w.alice, &id, ops).await.status(),
        StatusCode::FORBIDDEN
    );
}

/// Ten uploads of 300 KiB racing a 1 MiB storage quota: each passes the early check (nothing
/// is stored yet), but only three can be recorded; the others answer 413, keep no bytes and
/// go back to queued.
#[tokio::test]
async fn concurrent_uploads_never_store_more_than_the_storage_quota() {
    let w = World::with_env(&[("CLOUD_IMAGES_STORAGE_QUOTA", "1M")]).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(raw_image(&w, &w.alice).await);
    }
    let replies = futures::future::join_all(
        ids.iter()
            .map(|id| w.server.upload(&w.alice, id, vec![3u8; 300 * 1024])),
    )
    .await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status()).collect();
    let stored = statuses
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::PAYLOAD_TOO_LARGE)
        .count();
    assert_eq!((stored, refused), (3, 7), "{statuses:?}");
    for (id, status) in ids.iter().zip(&statuses) {
        let image = json_body(w.server.show_image(&w.alice, id).await).await;
        if *status == StatusCode::NO_CONTENT {
            assert_eq!(
                (image["status"].as_str(), image["size"].as_u64()),
                (Some("active"), Some(300 * 1024))
            );
        } else {
            let image = eventually(&w.server, &w.alice, id, |i| i["status"] == "queued").await;
            assert_eq!(image["size"], Value::Null, "{image}");
        }
    }
}

#[tokio::test]
async fn the_storage_quota_cuts_an_upload_off_as_soon_as_it_is_passed() {
    let w = World::with_env(&[("CLOUD_IMAGES_STORAGE_QUOTA", "1M")]).await;
    let id = raw_image(&w, &w.alice).await;
    let mut upload = RawUpload::start(&w.server, &w.alice, &id).await;
    let block = vec![7u8; 256 * 1024];
    let mut sent = 0usize;
    // Offer up to 256 MiB; the server must refuse long before reading it all.
    while sent < 256 * 1024 * 1024 && upload.send(&block).await {
        sent += block.len();
    }
    let status = upload.response().await;
    assert!(status.contains("413"), "{status}");
    assert!(
        sent < 64 * 1024 * 1024,
        "the server read {sent} bytes before refusing"
    );
    let image = eventually(&w.server, &w.alice, &id, |i| i["status"] == "queued").await;
    assert_eq!(image["size"], Value::Null);
    assert_eq!(image["checksum"], Value::Null);
    assert!(
        w.server.partial_files().await.is_empty(),
        "partial bytes left: {:?}",
        w.server.partial_files().await
    );

    assert_eq!(
        w.server
            .upload(&w.alice, &id, vec![1u8; 600 * 1024])
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let second = raw_image(&w, &w.alice).await;
    let over = w
        .server
        .upload(&w.alice, &second, vec![1u8; 600 * 1024])
        .await;
    assert_eq!(
        over.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "the quota counts stored images"
    );
    let other_tenant = raw_image(&w, &w.bob).await;
    assert_eq!(
        w.server
            .upload(&w.bob, &other_tenant, vec![1u8; 600 * 1024])
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_client_that_disconnects_halfway_leaves_the_image_queued_and_uploadable() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let mut upload = RawUpload::start(&w.server, &w.alice, &id).await;
    for _ in 0..12 {
        assert!(upload.send(&vec![3u8; 256 * 1024]).await);
    }
    eventually(&w.server, &w.alice, &id, |i| i["status"] == "saving").await;
    drop(upload);
    let image = eventually(&w.server, &w.alice, &id, |i| i["status"] == "queued").await;
    assert_eq!(
        (image["size"].clone(), image["checksum"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(
        w.server.download(&w.alice, &id, None).await.status(),
        StatusCode::NO_CONTENT
    );
    for _ in 0..100 {
        if w.server.partial_files().await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        w.server.partial_files().await.is_empty(),
        "partial bytes left: {:?}",
        w.server.partial_files().await
    );
    let data = sample_bytes(50_000, 4);
    assert_eq!(
        w.server.upload(&w.alice, &id, data.clone()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(w.server.download(&w.alice, &id, None).await.bytes() == data.as_slice());
}

#[tokio::test]
async fn of_two_concurrent_uploads_exactly_one_wins_and_its_bytes_are_stored() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let mut first = RawUpload::start(&w.server, &w.alice, &id).await;
    let first_data = sample_bytes(2 * 1024 * 1024, 5);
    assert!(first.send(&first_data[..1024 * 1024]).await);
    eventually(&w.server, &w.alice, &id, |i| i["status"] == "saving").await;
    let second = w
        .server
        .upload(&w.alice, &id, sample_bytes(1024 * 1024, 6))
        .await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert!(first.send(&first_data[1024 * 1024..]).await);
    let status = first.finish().await;
    assert!(status.contains("204"), "{status}");
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["checksum"], tool_digest("md5sum", &first_data));
    assert!(w.server.download(&w.alice, &id, None).await.bytes() == first_data.as_slice());
}

#[tokio::test]
async fn deleting_an_image_during_its_upload_leaves_no_bytes_behind() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    let mut upload = RawUpload::start(&w.server, &w.alice, &id).await;
    assert!(upload.send(&vec![9u8; 2 * 1024 * 1024]).await);
    eventually(&w.server, &w.alice, &id, |i| i["status"] == "saving").await;
    assert_eq!(
        w.server.delete_image(&w.alice, &id).await.status(),
        StatusCode::NO_CONTENT
    );
    let _ = upload.send(&vec![9u8; 1024 * 1024]).await;
    let status = upload.finish().await;
    assert!(status.contains("409") || status.contains("404"), "{status}");
    let leftovers = w.server.stored_objects().await;
    assert!(leftovers.is_empty(), "bytes left behind: {leftovers:?}");
}

#[tokio::test]
async fn a_killed_server_recovers_interrupted_uploads_at_restart() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let id = id_of(
        &server
            .new_image(
                &token,
                json!({ "disk_format": "raw", "container_format": "bare" }),
            )
            .await,
    );
    let mut upload = RawUpload::start(&server, &token, &id).await;
    assert!(upload.send(&vec![5u8; 3 * 1024 * 1024]).await);
    eventually(&server, &token, &id, |i| i["status"] == "saving").await;
    let data = server.stop().await;
    drop(upload);
    let again = Server::start_in(data, &[]).await;
    let image = json_body(again.show_image(&token, &id).await).await;
    assert_eq!(image["status"], "queued");
    assert_eq!(image["size"], Value::Null);
    assert!(
        again.partial_files().await.is_empty(),
        "partial bytes survived the restart"
    );
    assert_eq!(
        again
            .upload(&token, &id, b"complete".to_vec())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_killed_server_requeues_an_image_it_was_staging_and_keeps_one_staged_whole() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let raw = json!({ "disk_format": "raw", "container_format": "bare" });
    let cut_off = id_of(&server.new_image(&token, raw.clone()).await);
    let staged = id_of(&server.new_image(&token, raw).await);
    let whole = server.stage(&token, &staged, vec![7u8; 100_000]).await;
    assert_eq!(whole.status(), StatusCode::NO_CONTENT);
    let mut stage = RawUpload::start_to(&server, &token, &cut_off, "stage").await;
    assert!(stage.send(&vec![5u8; 3 * 1024 * 1024]).await);
    eventually(&server, &token, &cut_off, |i| i["status"] == "uploading").await;
    let data = server.stop().await;
    drop(stage);
    let again = Server::start_in(data, &[]).await;
    let image = json_body(again.show_image(&token, &cut_off).await).await;
    assert_eq!(image["status"], "queued", "{image}");
    assert!(again.staged_of(&cut_off).await.is_empty());
    let waiting = json_body(again.show_image(&token, &staged).await).await;
    assert_eq!(waiting["status"], "uploading", "{waiting}");
    let imported = again
        .import_image(
            &token,
            &staged,
            json!({"method": {"name": "glance-direct"}}),
        )
        .await;
    assert_eq!(
        imported.status(),
        StatusCode::ACCEPTED,
        "{}",
        imported.text()
    );
    assert_eq!(again.imported(&token, &staged).await["status"], "active");
}

#[tokio::test]
async fn other_tenants_and_readers_cannot_upload() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    assert_eq!(
        w.server.upload(&w.bob, &id, b"x".to_vec()).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.server.download(&w.bob, &id, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let rita = w.server.account("acme", "rita", "reader").await;
    let reader = w.server.token(&rita).await;
    assert_eq!(
        w.server.upload(&reader, &id, b"x".to_vec()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        json_body(w.server.show_image(&w.alice, &id).await).await["status"],
        "queued"
    );
}

#[tokio::test]
async fn the_suite_runs_on_the_backend_it_names() {
    let w = World::new().await;
    let id = raw_image(&w, &w.alice).await;
    w.server
        .upload(&w.alice, &id, b"where do I live".to_vec())
        .await;
    let objects = w.server.stored_objects().await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].ends_with(&id), "{objects:?}");
    let sqlite = w.server.data_dir().join("metadata.sqlite3").exists();
    assert_eq!(
        sqlite,
        !cloud_images_api_tests::testing_aws(),
        "the aws backend must not touch SQLite"
    );
}

#[tokio::test]
async fn downloads_redirect_to_the_store_when_it_issues_urls_and_stream_otherwise() {
    let w = World::with_env(&[("CLOUD_IMAGES_DOWNLOAD_REDIRECT", "300s")]).await;
    let id = raw_image(&w, &w.alice).await;
    let data = sample_bytes(3 << 20, 21);
    assert_eq!(
        w.server.upload(&w.alice, &id, data.clone()).await.status(),
        StatusCode::NO_CONTENT
    );
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = w.server.url(&format!("/v2/images/{id}/file"));
    let answer = no_follow
        .get(&url)
        .header("X-Auth-Token", &w.alice)
        .send()
        .await
        .unwrap();
    if cloud_images_api_tests::testing_aws() {
        // S3 issues presigned URLs: the bytes come from the store, not through the service.
        assert_eq!(answer.status(), StatusCode::FOUND);
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains("X-Amz-Signature"), "{location}");
        let fetched = no_follow.get(&location).send().await.unwrap();
        assert_eq!(fetched.status(), StatusCode::OK);
        assert_eq!(fetched.bytes().await.unwrap().to_vec(), data);
        let ranged = no_follow
            .get(&location)
            .header("Range", "bytes=10-19")
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(ranged.bytes().await.unwrap().to_vec(), data[10..20]);
    } else {
        // Files have no URL of their own: the service streams them as always.
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.bytes().await.unwrap().to_vec(), data);
    }
    // The checks still come first: a stranger gets 404, not a URL.
    let stranger = no_follow
        .get(&url)
        .header("X-Auth-Token", &w.bob)
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);
}

async fn usage_of(w: &World, token: &str) -> Value {
    json_body(
        w.server
            .request(reqwest::Method::GET, "/v2/info/usage", Some(token))
            .checked()
            .await,
    )
    .await["usage"]
        .clone()
}

/// Glance's quota usage API (2.13): what the tenant keeps, in MiB and images, moving as
/// images are made and filled; -1 where there is no limit.
#[tokio::test]
async fn the_usage_api_shows_what_a_tenant_keeps() {
    let w = World::new().await;
    let before = usage_of(&w, &w.alice).await;
    assert_eq!(
        before["image_count_total"],
        json!({ "usage": 0, "limit": -1 })
    );
    assert_eq!(
        before["image_size_total"],
        json!({ "usage": 0, "limit": -1 })
    );
    let id = id_of(
        &w.server
            .new_image(
                &w.alice,
                json!({ "disk_format": "raw", "container_format": "bare" }),
            )
            .await,
    );
    w.server
        .upload(&w.alice, &id, vec![7; 3 * 1024 * 1024])
        .await;
    let after = usage_of(&w, &w.alice).await;
    assert_eq!(after["image_count_total"]["usage"], 1);
    assert_eq!(after["image_size_total"]["usage"], 3);
    // Another tenant's usage is its own.
    assert_eq!(usage_of(&w, &w.bob).await["image_count_total"]["usage"], 0);
}

#[tokio::test]
async fn the_usage_api_names_the_configured_limits() {
    let w = World::with_env(&[
        ("CLOUD_IMAGES_STORAGE_QUOTA", "8M"),
        ("CLOUD_IMAGES_MAX_IMAGES_PER_TENANT", "5"),
    ])
    .await;
    let usage = usage_of(&w, &w.alice).await;
    assert_eq!(
        usage["image_count_total"],
        json!({ "usage": 0, "limit": 5 })
    );
    assert_eq!(usage["image_size_total"], json!({ "usage": 0, "limit": 8 }));
}
