//! Interoperable image import (Glance's `/stage` + `/import`, `/v2/info/*`, an image's
//! tasks): every route and status, and every failure path leaving the image `queued` with
//! `os_glance_failed_import` set and nothing staged.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::web::{Served, WebServer};
use cloud_images_api_tests::{
    Checked, World, id_of, json_body, qemu_img, sample_bytes, testing_stack, tool_digest,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn raw_image() -> Value {
    json!({"name": "imported", "disk_format": "raw", "container_format": "bare"})
}

fn glance_direct() -> Value {
    json!({"method": {"name": "glance-direct"}})
}

fn web_download(uri: &str) -> Value {
    json!({"method": {"name": "web-download", "uri": uri}})
}

/// A server whose web-download may fetch from `web` (loopback, its port).
async fn world_fetching_from(web: &WebServer, extra: &[(&str, &str)]) -> World {
    let port = web.port.to_string();
    let mut env = vec![
        ("CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL", "true"),
        ("CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS", port.as_str()),
    ];
    env.extend_from_slice(extra);
    World::with_env(&env).await
}

/// The default store's id, from `GET /v2/info/stores`.
fn store_of(world_stores: &Value) -> String {
    let stores = world_stores["stores"].as_array().unwrap();
    let default = stores.iter().find(|s| s["default"] == true).unwrap();
    default["id"].as_str().unwrap().to_owned()
}

async fn stores(w: &World) -> Value {
    json_body(
        w.server
            .request(Method::GET, "/v2/info/stores", Some(&w.alice))
            .checked()
            .await,
    )
    .await
}

/// Asserts the image went back to `queued` with the failed store named and no import left.
async fn assert_failed_back_to_queued(w: &World, id: &str) -> Value {
    let image = w.server.imported(&w.alice, id).await;
    let store = store_of(&stores(w).await);
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(image["os_glance_failed_import"], store.as_str(), "{image}");
    // Glance leaves the list of stores still to write, empty.
    assert_eq!(image["os_glance_importing_to_stores"], "", "{image}");
    for gone in ["os_glance_import_task", "stores"] {
        assert!(image.get(gone).is_none(), "{gone} stayed: {image}");
    }
    assert_eq!(image["size"], Value::Null);
    assert!(
        w.server.staged_of(id).await.is_empty(),
        "staged data stayed"
    );
    image
}

async fn only_task(w: &World, id: &str) -> Value {
    let tasks = json_body(w.server.image_tasks(&w.alice, id).await).await;
    let tasks = tasks["tasks"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    tasks[0].clone()
}

#[tokio::test]
async fn the_info_routes_name_the_methods_and_the_one_default_store() {
    let w = World::new().await;
    let methods = json_body(
        w.server
            .request(Method::GET, "/v2/info/import", Some(&w.alice))
            .checked()
            .await,
    )
    .await;
    let listed = stores(&w).await;
    let listed_stores = listed["stores"].as_array().unwrap();
    // copy-image is offered only where there is another store to copy to (the deployed
    // stack has two; a server started with default settings one).
    let mut offered = vec!["glance-direct", "web-download"];
    if listed_stores.len() > 1 {
        offered.push("copy-image");
    }
    assert_eq!(methods["import-methods"]["value"], json!(offered));
    let store = store_of(&listed);
    assert_eq!(
        listed_stores
            .iter()
            .filter(|s| s["default"] == true)
            .count(),
        1,
        "{listed}"
    );
    assert!(listed_stores.iter().all(|s| s.get("type").is_none()));

    let detail = w
        .server
        .request(Method::GET, "/v2/info/stores/detail", Some(&w.admin))
        .checked()
        .await;
    assert_eq!(detail.status(), StatusCode::OK);
    let detail = json_body(detail).await;
    assert_eq!(detail["stores"][0]["id"], store.as_str());
    assert!(detail["stores"][0]["type"].is_string());
    let refused = w
        .server
        .request(Method::GET, "/v2/info/stores/detail", Some(&w.alice))
        .checked()
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let anonymous = w
        .server
        .request(Method::GET, "/v2/info/import", None)
        .checked()
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let created = w.server.create_image(&w.alice, raw_image()).await;
    let header = |name: &str| {
        created
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("openstack-image-import-methods"),
        Some(offered.join(","))
    );
    let ids: Vec<&str> = listed_stores
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(header("openstack-image-store-ids"), Some(ids.join(",")));
}

#[tokio::test]
async fn glance_direct_stages_then_imports_into_an_active_image_with_its_task() {
    let w = World::new().await;
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let data = sample_bytes(3 * 1024 * 1024 + 17, 41);
    let staged = w.server.stage(&w.alice, &id, data.clone()).await;
    assert_eq!(staged.status(), StatusCode::NO_CONTENT, "{}", staged.text());
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["status"], "uploading");
    assert_eq!(
        image["size"],
        Value::Null,
        "staged data is not the image's data"
    );
    assert_eq!(
        w.server
            .stage(&w.alice, &id, b"again".to_vec())
            .await
            .status(),
        StatusCode::CONFLICT,
        "an uploading image is staged a second time"
    );

    let accepted = w.server.import_image(&w.alice, &id, glance_direct()).await;
    assert_eq!(
        accepted.status(),
        StatusCode::ACCEPTED,
        "{}",
        accepted.text()
    );
    let request_id = accepted.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let image = w.server.imported(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["checksum"], tool_digest("md5sum", &data).as_str());
    assert_eq!(
        image["os_hash_value"],
        tool_digest("sha512sum", &data).as_str()
    );
    assert_eq!(image["stores"], store_of(&stores(&w).await).as_str());
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
    // Glance keeps both lists, empty, once an import went everywhere it should.
    assert_eq!(image["os_glance_importing_to_stores"], "", "{image}");
    assert_eq!(image["os_glance_failed_import"], "", "{image}");
    let downloaded = w.server.download(&w.alice, &id, None).await;
    assert_eq!(downloaded.bytes(), &data[..]);
    assert!(
        w.server.staged_of(&id).await.is_empty(),
        "imported staged data stayed"
    );

    let task = only_task(&w, &id).await;
    assert_eq!(task["type"], "api_image_import");
    assert_eq!(task["status"], "success");
    assert_eq!(task["image_id"], id.as_str());
    assert_eq!(task["request_id"], request_id.as_str());
    assert_eq!(
        task["input"]["import_req"]["method"]["name"],
        "glance-direct"
    );
    assert_eq!(task["result"]["image_id"], id.as_str());
}

#[tokio::test]
async fn import_requests_are_checked_against_the_body_and_the_image_status() {
    let w = World::new().await;
    let queued = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    // Where copy-image is offered (several stores) a member still may not use it.
    let copy_offered = stores(&w).await["stores"].as_array().unwrap().len() > 1;
    let copy_refusal = if copy_offered {
        (StatusCode::FORBIDDEN, "administrator")
    } else {
        (StatusCode::BAD_REQUEST, "Unknown import method name")
    };
    let mut cases = vec![
        (
            json!({}),
            StatusCode::BAD_REQUEST,
            "requires a 'method' field",
        ),
        (
            json!({"method": {}}),
            StatusCode::BAD_REQUEST,
            "requires a 'name' field",
        ),
        (
            json!({"method": {"name": "copy-image"}}),
            copy_refusal.0,
            copy_refusal.1,
        ),
        (
            json!({"method": {"name": "web-download"}}),
            StatusCode::BAD_REQUEST,
            "'uri'",
        ),
        (
            web_download("file:///etc/passwd"),
            StatusCode::BAD_REQUEST,
            "scheme 'file'",
        ),
        (
            web_download("http://example.com:8080/disk.img"),
            StatusCode::BAD_REQUEST,
            "port 8080",
        ),
        (
            json!({"method": {"name": "glance-direct"}, "all_stores": true, "stores": ["x"]}),
            StatusCode::BAD_REQUEST,
            "All_stores",
        ),
        (
            json!({"method": {"name": "web-download", "uri": "http://example.com/d"}, "stores": ["nowhere"]}),
            StatusCode::CONFLICT,
            "nowhere",
        ),
        (glance_direct(), StatusCode::CONFLICT, "needs to be staged"),
    ];
    // The stack on the emulator lets web-download reach loopback (its tests serve images
    // there), so internal addresses are refused only by the default settings.
    if !testing_stack() {
        cases.extend([
            (
                web_download("http://169.254.169.254/latest/meta-data/"),
                StatusCode::BAD_REQUEST,
                "internal address",
            ),
            (
                web_download("http://localhost/disk.img"),
                StatusCode::BAD_REQUEST,
                "this machine",
            ),
            (
                web_download("http://127.0.0.1/disk.img"),
                StatusCode::BAD_REQUEST,
                "internal address",
            ),
            (
                web_download("http://[::ffff:10.0.0.1]/disk.img"),
                StatusCode::BAD_REQUEST,
                "internal address",
            ),
        ]);
    }
    for (body, status, words) in cases {
        let reply = w.server.import_image(&w.alice, &queued, body.clone()).await;
        assert_eq!(reply.status(), status, "{body}: {}", reply.text());
        assert!(reply.text().contains(words), "{body}: {}", reply.text());
    }
    let image = json_body(w.server.show_image(&w.alice, &queued).await).await;
    assert_eq!(
        image["status"], "queued",
        "a refused import changed the image"
    );
    assert!(image.get("os_glance_import_task").is_none());

    // Not without formats, not to an active image, not by others.
    let bare = id_of(
        &w.server
            .new_image(&w.alice, json!({"name": "no formats"}))
            .await,
    );
    let reply = w
        .server
        .import_image(&w.alice, &bare, web_download("http://example.com/d"))
        .await;
    assert_eq!(reply.status(), StatusCode::CONFLICT);
    assert!(
        reply.text().contains("'disk_format' needs to be set"),
        "{}",
        reply.text()
    );
    let active = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    w.server.upload(&w.alice, &active, vec![1; 512]).await;
    let reply = w
        .server
        .import_image(&w.alice, &active, web_download("http://example.com/d"))
        .await;
    assert_eq!(reply.status(), StatusCode::CONFLICT);
    assert!(
        reply.text().contains("status active cannot be target"),
        "{}",
        reply.text()
    );
    let reply = w
        .server
        .import_image(&w.bob, &queued, web_download("http://example.com/d"))
        .await;
    assert_eq!(
        reply.status(),
        StatusCode::NOT_FOUND,
        "another tenant reached the image"
    );
    let reply = w.server.image_tasks(&w.bob, &queued).await;
    assert_eq!(
        reply.status(),
        StatusCode::NOT_FOUND,
        "another tenant read the tasks"
    );
    let reader = w.server.account("acme", "reader-ann", "reader").await;
    let reader = w.server.token(&reader).await;
    let reply = w
        .server
        .import_image(&reader, &queued, web_download("http://example.com/d"))
        .await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN, "a reader imported");
    let reply = w.server.stage(&reader, &queued, vec![0; 16]).await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN, "a reader staged");
    let reply = w.server.stage(&w.bob, &queued, vec![0; 16]).await;
    assert_eq!(
        reply.status(),
        StatusCode::NOT_FOUND,
        "another tenant staged"
    );
}

#[tokio::test]
async fn staging_refuses_what_an_upload_refuses_and_returns_the_image_to_queued() {
    let w = World::new().await;
    let qcow2 = id_of(
        &w.server
            .new_image(
                &w.alice,
                json!({"name": "q", "disk_format": "qcow2", "container_format": "bare"}),
            )
            .await,
    );
    let reply = w
        .server
        .stage(&w.alice, &qcow2, sample_bytes(70_000, 3))
        .await;
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{}", reply.text());
    let image = json_body(w.server.show_image(&w.alice, &qcow2).await).await;
    assert_eq!(image["status"], "queued");
    assert!(
        w.server.staged_of(&qcow2).await.is_empty(),
        "refused data stayed staged"
    );

    let reply = w
        .server
        .request(
            Method::PUT,
            &format!("/v2/images/{qcow2}/stage"),
            Some(&w.alice),
        )
        .header("Content-Type", "application/json")
        .body("{}")
        .checked()
        .await;
    assert_eq!(reply.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Data may be staged before its image has formats, but (as in Glance) formats change
    // only while queued, so such an image cannot be imported: delete it and start again.
    let later = id_of(&w.server.new_image(&w.alice, json!({"name": "later"})).await);
    let staged = w
        .server
        .stage(&w.alice, &later, sample_bytes(70_000, 4))
        .await;
    assert_eq!(staged.status(), StatusCode::NO_CONTENT, "{}", staged.text());
    let formats = json!([{"op": "add", "path": "/disk_format", "value": "qcow2"}]);
    let patched = w.server.patch_image(&w.alice, &later, formats).await;
    assert_eq!(
        patched.status(),
        StatusCode::FORBIDDEN,
        "{}",
        patched.text()
    );
    let refused = w
        .server
        .import_image(&w.alice, &later, glance_direct())
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT, "{}", refused.text());
    assert!(
        refused.text().contains("'disk_format' needs to be set"),
        "{}",
        refused.text()
    );
    assert_eq!(
        w.server.delete_image(&w.alice, &later).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(
        w.server.staged_of(&later).await.is_empty(),
        "a deleted image's staged data stayed"
    );
}

#[tokio::test]
async fn staging_counts_against_the_storage_quota() {
    let w = World::with_env(&[("CLOUD_IMAGES_STORAGE_QUOTA", "1M")]).await;
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let reply = w
        .server
        .stage(&w.alice, &id, vec![7; 2 * 1024 * 1024])
        .await;
    assert_eq!(
        reply.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["status"], "queued");
    assert!(w.server.staged_of(&id).await.is_empty());
}

#[tokio::test]
async fn web_download_fetches_the_uri_into_an_active_image() {
    let data = sample_bytes(5 * 1024 * 1024 + 3, 9);
    let web = WebServer::start(vec![
        ("/disk.raw", Served::Bytes(data.clone())),
        ("/moved", Served::Redirect("/disk.raw".into())),
    ])
    .await;
    let w = world_fetching_from(&web, &[]).await;
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let accepted = w
        .server
        .import_image(&w.alice, &id, web_download(&web.url("/moved")))
        .await;
    assert_eq!(
        accepted.status(),
        StatusCode::ACCEPTED,
        "{}",
        accepted.text()
    );
    let image = w.server.imported(&w.alice, &id).await;
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["checksum"], tool_digest("md5sum", &data).as_str());
    assert_eq!(
        w.server.download(&w.alice, &id, None).await.bytes(),
        &data[..]
    );
    assert_eq!(web.hits("/disk.raw"), 1);
    let task = only_task(&w, &id).await;
    assert_eq!(
        task["input"]["import_req"]["method"]["uri"],
        web.url("/moved").as_str()
    );
    assert_eq!(task["status"], "success");
}

#[tokio::test]
async fn every_web_download_failure_leaves_the_image_queued_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    qemu_img(&["create", "-f", "raw", "base.raw", "1M"], dir.path());
    qemu_img(
        &[
            "create",
            "-f",
            "qcow2",
            "-b",
            "/etc/passwd",
            "-F",
            "raw",
            "hostile.qcow2",
            "1M",
        ],
        dir.path(),
    );
    let hostile = std::fs::read(dir.path().join("hostile.qcow2")).unwrap();
    let web = WebServer::start(vec![
        ("/big", Served::Bytes(vec![1; 3 * 1024 * 1024])),
        ("/garbage", Served::Bytes(sample_bytes(70_000, 5))),
        ("/hostile.qcow2", Served::Bytes(hostile)),
        ("/server-error", Served::Status(500)),
        (
            "/to-other-port",
            Served::Redirect("http://127.0.0.1:1/disk.raw".into()),
        ),
    ])
    .await;
    let w = world_fetching_from(&web, &[("CLOUD_IMAGES_STORAGE_QUOTA", "2M")]).await;
    let qcow2 = json!({"name": "q", "disk_format": "qcow2", "container_format": "bare"});
    let cases = [
        ("/missing", raw_image(), "404"),
        ("/server-error", raw_image(), "500"),
        ("/to-other-port", raw_image(), "port 1 is not allowed"),
        ("/big", raw_image(), "quota"),
        ("/garbage", qcow2.clone(), "qcow2"),
        ("/hostile.qcow2", qcow2, "backing"),
    ];
    for (path, image, words) in cases {
        let id = id_of(&w.server.new_image(&w.alice, image).await);
        let accepted = w
            .server
            .import_image(&w.alice, &id, web_download(&web.url(path)))
            .await;
        assert_eq!(
            accepted.status(),
            StatusCode::ACCEPTED,
            "{path}: {}",
            accepted.text()
        );
        assert_failed_back_to_queued(&w, &id).await;
        let task = only_task(&w, &id).await;
        assert_eq!(task["status"], "failure", "{path}: {task}");
        let message = task["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(words), "{path}: {message}");
        // A failed import may be tried again.
        let again = w
            .server
            .import_image(&w.alice, &id, web_download(&web.url(path)))
            .await;
        assert_eq!(
            again.status(),
            StatusCode::ACCEPTED,
            "{path}: {}",
            again.text()
        );
        w.server.imported(&w.alice, &id).await;
    }
    assert!(
        w.server
            .stored_objects()
            .await
            .iter()
            .all(|o| !o.contains("incomplete"))
    );
}

#[tokio::test]
async fn a_running_import_reports_its_progress_on_the_task_and_the_image() {
    // 32 pieces of 64 KiB, 250 ms apart: 8 s, so at least one 4 s report falls inside.
    let data = sample_bytes(32 * 64 * 1024, 21);
    let gap = std::time::Duration::from_millis(250);
    let web = WebServer::start(vec![("/slow.raw", Served::Slowly(data.clone(), gap))]).await;
    let w = world_fetching_from(&web, &[]).await;
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let accepted = w
        .server
        .import_image(&w.alice, &id, web_download(&web.url("/slow.raw")))
        .await;
    assert_eq!(
        accepted.status(),
        StatusCode::ACCEPTED,
        "{}",
        accepted.text()
    );
    let total = data.len() as u64;
    let (mut on_image, mut on_task) = (None, None);
    for _ in 0..200 {
        let image = json_body(w.server.show_image(&w.alice, &id).await).await;
        if image["status"] == "active" {
            break;
        }
        if let Some(progress) = image["os_glance_import_progress"].as_str() {
            let (done, all) = progress.split_once('/').unwrap();
            assert_eq!(all, total.to_string(), "{progress}");
            on_image = on_image.or(Some(done.parse::<u64>().unwrap()));
        }
        let tasks = json_body(w.server.image_tasks(&w.alice, &id).await).await;
        if let Some(progress) = tasks["tasks"][0].get("progress") {
            assert_eq!(progress["total"], total, "{progress}");
            on_task = on_task.or(progress["done"].as_u64());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let image = w.server.imported(&w.alice, &id).await;
    assert_eq!(image["status"], "active");
    assert!(image.get("os_glance_import_progress").is_none(), "{image}");
    // The first report seen came while bytes were still arriving.
    for (place, done) in [("image", on_image), ("task", on_task)] {
        let done = done.unwrap_or_else(|| panic!("no progress was reported on the {place}"));
        assert!(done > 0 && done < total, "{place}: {done} of {total}");
    }
}

#[tokio::test]
async fn an_import_holds_the_image_until_it_ends() {
    let data = sample_bytes(1024 * 1024, 12);
    let web = WebServer::start(vec![("/disk.raw", Served::Bytes(data))]).await;
    let w = world_fetching_from(&web, &[]).await;
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let uri = web.url("/disk.raw");
    let (first, second) = tokio::join!(
        w.server.import_image(&w.alice, &id, web_download(&uri)),
        w.server.import_image(&w.alice, &id, web_download(&uri)),
    );
    let mut statuses = [first.status(), second.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::CONFLICT]);
    let image = w.server.imported(&w.alice, &id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(only_task(&w, &id).await["status"], "success");
}

#[tokio::test]
async fn deleting_from_the_only_store_is_refused_and_only_admins_may_try() {
    let w = World::new().await;
    let store = store_of(&stores(&w).await);
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let path = format!("/v2/stores/{store}/{id}");
    let delete = |token: String, path: String| {
        let server = &w.server;
        async move {
            server
                .request(Method::DELETE, &path, Some(&token))
                .checked()
                .await
        }
    };
    assert_eq!(
        delete(w.admin.clone(), path.clone()).await.status(),
        StatusCode::CONFLICT,
        "a queued image"
    );
    w.server.upload(&w.alice, &id, vec![3; 1024]).await;
    assert_eq!(
        delete(w.alice.clone(), path.clone()).await.status(),
        StatusCode::FORBIDDEN
    );
    let only = delete(w.admin.clone(), path.clone()).await;
    assert_eq!(only.status(), StatusCode::FORBIDDEN);
    assert!(only.text().contains("only store"), "{}", only.text());
    let unknown = delete(w.admin.clone(), format!("/v2/stores/nowhere/{id}")).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        w.server.download(&w.alice, &id, None).await.bytes(),
        &[3; 1024][..]
    );
}

/// The task's progress as it runs: (bytes done, bytes safe at the last checkpoint).
async fn task_progress(
    server: &cloud_images_api_tests::Server,
    token: &str,
    id: &str,
) -> (u64, u64) {
    let tasks = json_body(server.image_tasks(token, id).await).await;
    let progress = &tasks["tasks"][0]["progress"];
    (
        progress["done"].as_u64().unwrap_or(0),
        progress["checkpoint"].as_u64().unwrap_or(0),
    )
}

/// Starts a web-download of `data` that stalls at 80 MiB, waits for the task to report its
/// 64 MiB checkpoint, kills the server and starts it again on the same data: the import
/// finishes. Returns the finished image, the checkpoint the task reported and the server.
async fn import_cut_off_after_a_checkpoint(data: &[u8], changed: bool) -> (Value, u64, WebServer) {
    let served = Served::StallsOnce {
        data: data.to_vec(),
        stall_at: 80 << 20,
        changed,
    };
    let web = WebServer::start(vec![("/big.raw", served)]).await;
    let port = web.port.to_string();
    let env = [
        ("CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL", "true"),
        ("CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS", port.as_str()),
        ("CLOUD_IMAGES_TASK_LEASE", "2s"),
        // The restarted server's sweep must take the import's multipart upload for live.
        ("CLOUD_IMAGES_AWS_STALE_UPLOAD_AFTER", "1h"),
    ];
    let w = World::with_env(&env).await;
    let id = id_of(&w.server.new_image(&w.alice, raw_image()).await);
    let accepted = w
        .server
        .import_image(&w.alice, &id, web_download(&web.url("/big.raw")))
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let mut reported = (0, 0);
    for _ in 0..600 {
        reported = task_progress(&w.server, &w.alice, &id).await;
        if reported.1 > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (done, checkpoint) = reported;
    assert!(
        (64 << 20..=80 << 20).contains(&checkpoint) && done >= checkpoint,
        "the task never said how far it safely got: {reported:?}; log:\n{}",
        w.server.log()
    );
    let World { server, alice, .. } = w;
    let data_dir = server.stop().await;
    let server = cloud_images_api_tests::Server::start_in(data_dir, &env).await;
    let image = server.imported(&alice, &id).await;
    assert_eq!(image["status"], "active", "{image}\n{}", server.log());
    let download = server
        .request(Method::GET, &format!("/v2/images/{id}/file"), Some(&alice))
        .checked()
        .await;
    assert!(download.bytes() == data, "the image's data differs");
    (image, checkpoint, web)
}

#[tokio::test]
async fn an_import_cut_off_mid_download_resumes_from_its_last_checkpoint() {
    let data = sample_bytes(96 << 20, 31);
    let (image, checkpoint, web) = import_cut_off_after_a_checkpoint(&data, false).await;
    assert_eq!(image["checksum"], tool_digest("md5sum", &data).as_str());
    assert_eq!(
        image["os_hash_value"],
        tool_digest("sha512sum", &data).as_str()
    );
    assert_eq!(image["size"], data.len() as u64);
    // The restarted worker asked only for what the checkpoint had not saved.
    let ranges = web.ranges("/big.raw");
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    let from: u64 = ranges[1]
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the second request was not ranged: {ranges:?}"));
    assert!(
        (checkpoint..=80 << 20).contains(&from),
        "resumed from {from}, the task reported {checkpoint}"
    );
}

#[tokio::test]
async fn an_import_whose_source_changed_since_its_checkpoint_starts_over() {
    let data = sample_bytes(96 << 20, 32);
    let (image, _, web) = import_cut_off_after_a_checkpoint(&data, true).await;
    // The server answered the ranged request with the whole (new) data, so the import
    // fetched it again from byte 0.
    assert_eq!(image["checksum"], tool_digest("md5sum", &data).as_str());
    let ranges = web.ranges("/big.raw");
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert!(ranges[1].is_some() && ranges[2].is_none(), "{ranges:?}");
}
