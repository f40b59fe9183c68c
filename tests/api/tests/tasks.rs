//! Import and export tasks, end to end: the API, the queue, the worker, the object store.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{
    DataDir, Server, World, fixed_vhd, id_of, json_body, qemu_img, sample_bytes, tool_digest,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A short lease, so the take-over of a killed worker's task is quick to observe.
const FAST_LEASE: (&str, &str) = ("CLOUD_IMAGES_TASK_LEASE", "2s");

fn qcow2_image() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    qemu_img(&["create", "-f", "qcow2", "disk.qcow2", "64M"], dir.path());
    std::fs::read(dir.path().join("disk.qcow2")).unwrap()
}

fn import(from: &str, format: &str, name: &str) -> Value {
    json!({"type": "import", "input": {
        "import_from": from, "import_from_format": format, "image_properties": {"name": name}
    }})
}

fn export(image: &str, container: &str) -> Value {
    json!({"type": "export", "input": {"image_uuid": image, "receiving_swift_container": container}})
}

async fn download(world: &World, token: &str, id: &str) -> Vec<u8> {
    let reply = world.server.download(token, id, None).await;
    assert_eq!(reply.status(), StatusCode::OK);
    reply.bytes().to_vec()
}

async fn image_count(world: &World, token: &str) -> usize {
    world.server.listed_ids(token, "limit=100").await.len()
}

#[tokio::test]
async fn an_import_makes_an_active_image_with_the_objects_bytes_and_checksums() {
    let world = World::new().await;
    let vhd = fixed_vhd(&sample_bytes(3 << 20, 1));
    world
        .server
        .put_object(&world.acme, "incoming/web.vhd", vhd.clone())
        .await;

    let created = world
        .server
        .new_task(&world.alice, import("incoming/web.vhd", "vhd", "web"))
        .await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["type"], "import");
    assert_eq!(created["owner"], world.acme.as_str());
    assert_eq!(created["result"], Value::Null);
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(created["input"]["import_from"], "incoming/web.vhd");

    let task = world
        .server
        .finished_task(&world.alice, &id_of(&created))
        .await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["message"], "");
    assert!(task["expires_at"].is_string());
    let image_id = task["result"]["image_id"].as_str().unwrap();
    let image = json_body(world.server.show_image(&world.alice, image_id).await).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], "web");
    assert_eq!(image["disk_format"], "vhd");
    assert_eq!(image["owner"], world.acme.as_str());
    assert_eq!(image["visibility"], "private");
    assert_eq!(image["size"], vhd.len() as u64);
    assert_eq!(image["virtual_size"], (3 << 20) as u64);
    assert_eq!(image["checksum"], tool_digest("md5sum", &vhd).as_str());
    assert_eq!(download(&world, &world.alice, image_id).await, vhd);
}

#[tokio::test]
async fn importing_a_missing_object_fails_with_a_message_and_leaves_no_image() {
    let world = World::new().await;
    let created = world
        .server
        .new_task(&world.alice, import("incoming/nothing.vhd", "vhd", "x"))
        .await;
    let task = world
        .server
        .finished_task(&world.alice, &id_of(&created))
        .await;
    assert_eq!(task["status"], "failure");
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("incoming/nothing.vhd") && message.contains("not found"),
        "{message}"
    );
    assert_eq!(task["result"], Value::Null);
    assert_eq!(image_count(&world, &world.alice).await, 0);
}

/// Creates a task that fails fast; returns its id and the request id of the call that made it.
async fn task_and_its_request_id(world: &World) -> (String, String) {
    let created = world
        .server
        .create_task(&world.alice, import("incoming/nothing.vhd", "vhd", "x"))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text());
    let request_id = created.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (id_of(&json_body(created).await), request_id)
}

#[tokio::test]
async fn a_task_records_the_request_id_that_made_it() {
    let world = World::new().await;
    let (id, request_id) = task_and_its_request_id(&world).await;
    let task = world.server.finished_task(&world.alice, &id).await;
    assert_eq!(task["request_id"], request_id.as_str());
}

/// One trace: every line the worker logs while it runs a task carries the request id of the
/// call that made the task.
#[tokio::test]
async fn the_worker_logs_a_task_under_the_request_id_that_made_it() {
    let world = World::new().await;
    let (id, request_id) = task_and_its_request_id(&world).await;
    world.server.finished_task(&world.alice, &id).await;
    let log = world.server.log();
    let worker_lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("task started") || line.contains("task finished"))
        .filter(|line| line.contains(&id))
        .collect();
    assert_eq!(worker_lines.len(), 2, "the worker's lines for {id}:\n{log}");
    for line in worker_lines {
        assert!(line.contains(&request_id), "{line}");
    }
}

#[tokio::test]
async fn importing_data_of_another_format_fails_and_leaves_no_image_or_bytes() {
    let world = World::new().await;
    world
        .server
        .put_object(&world.acme, "incoming/disk.vhd", qcow2_image())
        .await;
    let created = world
        .server
        .new_task(&world.alice, import("incoming/disk.vhd", "vhd", "x"))
        .await;
    let task = world
        .server
        .finished_task(&world.alice, &id_of(&created))
        .await;
    assert_eq!(task["status"], "failure");
    let message = task["message"].as_str().unwrap();
    assert!(message.contains("qcow2"), "{message}");
    assert_eq!(image_count(&world, &world.alice).await, 0);
    assert!(world.server.partial_files().await.is_empty());
}

#[tokio::test]
async fn an_export_then_an_import_gives_identical_bytes() {
    let world = World::new().await;
    let vhd = fixed_vhd(&sample_bytes(2 << 20, 2));
    let image = world
        .server
        .new_image(
            &world.alice,
            json!({"name": "src", "disk_format": "vhd", "container_format": "bare"}),
        )
        .await;
    let id = id_of(&image);
    assert_eq!(
        world
            .server
            .upload(&world.alice, &id, vhd.clone())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    let exported = world
        .server
        .new_task(&world.alice, export(&id, "exports"))
        .await;
    let exported = world
        .server
        .finished_task(&world.alice, &id_of(&exported))
        .await;
    assert_eq!(exported["status"], "success", "{exported}");
    let location = format!("exports/{id}.vhd");
    assert_eq!(exported["result"]["export_location"], location.as_str());
    assert_eq!(
        world
            .server
            .get_object(&world.acme, &location)
            .await
            .as_deref(),
        Some(&vhd[..])
    );

    let imported = world
        .server
        .new_task(&world.alice, import(&location, "vhd", "copy"))
        .await;
    let imported = world
        .server
        .finished_task(&world.alice, &id_of(&imported))
        .await;
    assert_eq!(imported["status"], "success", "{imported}");
    let copy = imported["result"]["image_id"].as_str().unwrap();
    assert_ne!(copy, id);
    assert_eq!(download(&world, &world.alice, copy).await, vhd);
}

#[tokio::test]
async fn raw_images_export_as_fixed_vhd_that_qemu_reads_and_convert_back() {
    let world = World::new().await;
    let raw = sample_bytes((1 << 20) + 300, 3);
    let image = world
        .server
        .new_image(
            &world.alice,
            json!({"name": "raw", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = id_of(&image);
    assert_eq!(
        world
            .server
            .upload(&world.alice, &id, raw.clone())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    let task = world
        .server
        .new_task(&world.alice, export(&id, "out"))
        .await;
    let task = world
        .server
        .finished_task(&world.alice, &id_of(&task))
        .await;
    assert_eq!(task["status"], "success", "{task}");
    let vhd = world
        .server
        .get_object(&world.acme, &format!("out/{id}.vhd"))
        .await
        .unwrap();
    // Whole sectors of data, then the 512-byte footer.
    let padded = raw.len().div_ceil(512) * 512;
    assert_eq!(vhd.len(), padded + 512);
    assert_eq!(&vhd[..raw.len()], &raw[..]);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.vhd"), &vhd).unwrap();
    let info: Value = serde_json::from_slice(&qemu_img(
        &["info", "--output=json", "-f", "vpc", "x.vhd"],
        dir.path(),
    ))
    .unwrap();
    assert_eq!(info["virtual-size"], padded as u64, "{info}");
    qemu_img(
        &["convert", "-f", "vpc", "-O", "raw", "x.vhd", "back.raw"],
        dir.path(),
    );
    let back = std::fs::read(dir.path().join("back.raw")).unwrap();
    assert_eq!(&back[..raw.len()], &raw[..]);

    // And an imported fixed VHD exports as raw: the footer comes off.
    let imported = world
        .server
        .new_task(&world.alice, import(&format!("out/{id}.vhd"), "vhd", "v"))
        .await;
    let imported = world
        .server
        .finished_task(&world.alice, &id_of(&imported))
        .await;
    let vhd_image = imported["result"]["image_id"].as_str().unwrap().to_owned();
    let as_raw = json!({"type": "export", "input": {"image_uuid": vhd_image, "receiving_swift_container": "out", "export_format": "raw"}});
    let task = world.server.new_task(&world.alice, as_raw).await;
    let task = world
        .server
        .finished_task(&world.alice, &id_of(&task))
        .await;
    assert_eq!(task["status"], "success", "{task}");
    let round = world
        .server
        .get_object(&world.acme, &format!("out/{vhd_image}.raw"))
        .await
        .unwrap();
    assert_eq!(round.len(), padded);
    assert_eq!(&round[..raw.len()], &raw[..]);
}

#[tokio::test]
async fn exports_of_deactivated_queued_or_foreign_images_fail_with_a_reason() {
    let world = World::new().await;
    let image = world
        .server
        .new_image(
            &world.alice,
            json!({"name": "d", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
    let id = id_of(&image);
    let queued = world
        .server
        .new_task(&world.alice, export(&id, "out"))
        .await;
    let queued = world
        .server
        .finished_task(&world.alice, &id_of(&queued))
        .await;
    assert_eq!(queued["status"], "failure");
    assert!(
        queued["message"].as_str().unwrap().contains("queued"),
        "{queued}"
    );

    world
        .server
        .upload(&world.alice, &id, sample_bytes(4096, 4))
        .await;
    assert_eq!(
        world
            .server
            .image_action(&world.admin, &id, "deactivate")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let task = world
        .server
        .new_task(&world.alice, export(&id, "out"))
        .await;
    let task = world
        .server
        .finished_task(&world.alice, &id_of(&task))
        .await;
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("deactivated"),
        "{task}"
    );
    assert_eq!(
        world
            .server
            .get_object(&world.acme, &format!("out/{id}.vhd"))
            .await,
        None
    );

    // Bob cannot export alice's image, nor import from alice's containers.
    world
        .server
        .image_action(&world.admin, &id, "reactivate")
        .await;
    let stolen = world.server.new_task(&world.bob, export(&id, "loot")).await;
    let stolen = world
        .server
        .finished_task(&world.bob, &id_of(&stolen))
        .await;
    assert_eq!(stolen["status"], "failure");
    assert_eq!(
        world
            .server
            .get_object(&world.globex, &format!("loot/{id}.vhd"))
            .await,
        None
    );
    world
        .server
        .put_object(
            &world.acme,
            "private/disk.vhd",
            fixed_vhd(&sample_bytes(4096, 5)),
        )
        .await;
    let peek = world
        .server
        .new_task(&world.bob, import("private/disk.vhd", "vhd", "p"))
        .await;
    let peek = world.server.finished_task(&world.bob, &id_of(&peek)).await;
    assert_eq!(peek["status"], "failure");
    assert!(
        peek["message"].as_str().unwrap().contains("not found"),
        "{peek}"
    );
    assert_eq!(image_count(&world, &world.bob).await, 0);
}

#[tokio::test]
async fn tasks_are_private_to_their_tenant() {
    let world = World::new().await;
    let task = world
        .server
        .new_task(&world.alice, import("c/missing.vhd", "vhd", "x"))
        .await;
    let id = id_of(&task);
    assert_eq!(
        world.server.show_task(&world.bob, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    let bobs = json_body(world.server.list_tasks(&world.bob, "").await).await;
    assert_eq!(bobs["tasks"], json!([]));
    let alices = json_body(world.server.list_tasks(&world.alice, "").await).await;
    assert_eq!(alices["tasks"][0]["id"], id.as_str());
    assert_eq!(
        world.server.show_task(&world.admin, &id).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        world
            .server
            .show_task(&world.alice, "not-a-uuid")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_task_requests_get_a_400_naming_the_field_and_readers_a_403() {
    let world = World::new().await;
    let cases = [
        (json!({"type": "copy", "input": {}}), "copy"),
        (json!({"input": {}}), "type"),
        (json!({"type": "import", "input": {}}), "input.import_from"),
        (
            json!({"type": "import", "input": {"import_from": "../etc/passwd"}}),
            "input.import_from",
        ),
        (
            json!({"type": "import", "input": {"import_from": "c/o", "import_from_format": "zip"}}),
            "input.import_from_format",
        ),
        (
            json!({"type": "export", "input": {"image_uuid": "nope", "receiving_swift_container": "c"}}),
            "input.image_uuid",
        ),
        (
            json!({"type": "export", "input": {"image_uuid": "3f1b6c8e-8d47-4f55-9a3c-1e2d3c4b5a69"}}),
            "input.receiving_swift_container",
        ),
        (
            json!({"type": "import", "input": {"import_from": "c/o"}, "extra": 1}),
            "extra",
        ),
        (json!(["import"]), "JSON object"),
    ];
    for (body, named) in cases {
        let reply = world.server.create_task(&world.alice, body.clone()).await;
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{body}");
        let message = json_body(reply).await["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(named), "{body}: {message}");
    }
    assert_eq!(
        json_body(world.server.list_tasks(&world.alice, "").await).await["tasks"],
        json!([])
    );

    let reader = world.server.account("acme", "rita", "reader").await;
    let reader = world.server.token(&reader).await;
    let reply = world
        .server
        .create_task(&reader, import("c/o.vhd", "vhd", "r"))
        .await;
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);

    let task = world
        .server
        .new_task(&world.alice, import("c/o.vhd", "vhd", "r"))
        .await;
    let delete = world
        .server
        .request(
            Method::DELETE,
            &format!("/v2/tasks/{}", id_of(&task)),
            Some(&world.alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn task_lists_filter_sort_and_page() {
    let world = World::new().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let task = world
            .server
            .new_task(
                &world.alice,
                import(&format!("c/missing-{n}.vhd"), "vhd", "x"),
            )
            .await;
        ids.push(id_of(&task));
    }
    let image = world
        .server
        .new_image(&world.alice, json!({"name": "e"}))
        .await;
    let export_task = world
        .server
        .new_task(&world.alice, export(&id_of(&image), "out"))
        .await;
    for id in &ids {
        world.server.finished_task(&world.alice, id).await;
    }
    world
        .server
        .finished_task(&world.alice, &id_of(&export_task))
        .await;

    let imports = json_body(
        world
            .server
            .list_tasks(&world.alice, "type=import&status=failure")
            .await,
    )
    .await;
    let listed: Vec<&str> = imports["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(
        imports["tasks"][0].get("input").is_none(),
        "list entries are stubs"
    );

    let mut seen = Vec::new();
    let mut path = "limit=2&sort_key=id&sort_dir=asc".to_owned();
    loop {
        let page = json_body(world.server.list_tasks(&world.alice, &path).await).await;
        seen.extend(
            page["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = next.trim_start_matches("/v2/tasks?").to_owned(),
            None => break,
        }
    }
    let mut expected: Vec<String> = ids.iter().cloned().chain([id_of(&export_task)]).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let bad = world
        .server
        .list_tasks(&world.alice, "sort_key=owner")
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn duplicate_deliveries_and_racing_workers_make_one_image_and_one_final_status() {
    let world = World::with_env(&[FAST_LEASE]).await;
    let second = world.server.start_beside(&[FAST_LEASE]).await;
    let vhd = fixed_vhd(&sample_bytes(24 << 20, 6));
    world
        .server
        .put_object(&world.acme, "c/big.vhd", vhd.clone())
        .await;
    let task = world
        .server
        .new_task(&world.alice, import("c/big.vhd", "vhd", "once"))
        .await;
    let id = id_of(&task);
    // Three more deliveries of the same task, for two workers to fight over.
    for _ in 0..3 {
        world.server.cli(&["task", "redrive", &id]).await;
    }
    let done = world.server.finished_task(&world.alice, &id).await;
    assert_eq!(done["status"], "success", "{done}");
    // Let the extra deliveries arrive; they must change nothing.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let later = json_body(world.server.show_task(&world.alice, &id).await).await;
    assert_eq!(later, done);
    let images = world.server.listed_ids(&world.alice, "").await;
    assert_eq!(images, [done["result"]["image_id"].as_str().unwrap()]);
    assert_eq!(download(&world, &world.alice, &images[0]).await, vhd);
    drop(second);
}

#[tokio::test]
async fn a_task_cut_off_by_a_kill_finishes_after_a_restart() {
    let data = DataDir::new();
    let server = Server::start_in(data, &[FAST_LEASE]).await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let vhd = fixed_vhd(&sample_bytes(160 << 20, 7));
    server
        .put_object(&alice.tenant_id, "c/large.vhd", vhd.clone())
        .await;
    let id = id_of(
        &server
            .new_task(&token, import("c/large.vhd", "vhd", "resumed"))
            .await,
    );
    loop {
        let task = json_body(server.show_task(&token, &id).await).await;
        match task["status"].as_str().unwrap() {
            "processing" => break,
            "pending" => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            other => panic!("the task ended before it could be interrupted: {other} {task}"),
        }
    }
    let data = server.stop().await;

    let server = Server::start_in(data, &[FAST_LEASE]).await;
    let token = server.token(&alice).await;
    let after_restart = json_body(server.show_task(&token, &id).await).await;
    assert_eq!(
        after_restart["status"], "processing",
        "the kill came too late to test anything"
    );
    let done = server.finished_task(&token, &id).await;
    assert_eq!(done["status"], "success", "{done}");
    let image = done["result"]["image_id"].as_str().unwrap();
    let shown = json_body(server.show_image(&token, image).await).await;
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["checksum"], tool_digest("md5sum", &vhd).as_str());
    assert_eq!(server.listed_ids(&token, "").await.len(), 1);
}

#[tokio::test]
async fn finished_task_records_expire_but_their_images_stay() {
    let world = World::with_env(&[("CLOUD_IMAGES_TASK_TTL", "2s")]).await;
    world
        .server
        .put_object(
            &world.acme,
            "c/small.vhd",
            fixed_vhd(&sample_bytes(8192, 8)),
        )
        .await;
    let task = world
        .server
        .new_task(&world.alice, import("c/small.vhd", "vhd", "kept"))
        .await;
    let id = id_of(&task);
    let done = world.server.finished_task(&world.alice, &id).await;
    assert_eq!(done["status"], "success");
    assert!(done["expires_at"].as_str().unwrap() > done["updated_at"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        world.server.show_task(&world.alice, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    let listed = json_body(world.server.list_tasks(&world.alice, "").await).await;
    assert_eq!(listed["tasks"], json!([]));
    let image = done["result"]["image_id"].as_str().unwrap();
    assert_eq!(
        world.server.show_image(&world.alice, image).await.status(),
        StatusCode::OK
    );
}
