//! Large images: a direct upload over the configured limit is refused with 413 naming the
//! staged upload, and the staged upload (part URLs straight to the store, then complete)
//! makes an image active only through the checks of a direct upload.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{
    Checked, Reply, World, id_of, json_body, put_part, qemu_img, sample_bytes, testing_aws,
    tool_digest,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MIB: usize = 1024 * 1024;

async fn raw_image(w: &World) -> String {
    id_of(
        &w.server
            .new_image(
                &w.alice,
                json!({ "disk_format": "raw", "container_format": "bare" }),
            )
            .await,
    )
}

/// Sends a chunked `PUT` of `size` bytes the way simple clients do (python-requests,
/// glanceclient): the whole body first, and only then the response. Returns the status
/// line, or the error that stopped the sending or the reading.
async fn send_all_then_read(w: &World, path: &str, size: usize) -> Result<String, std::io::Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = w.server.root.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nX-Auth-Token: {}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        w.alice
    );
    socket.write_all(head.as_bytes()).await?;
    let chunk = vec![0u8; 64 * 1024];
    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
    framed.extend_from_slice(&chunk);
    framed.extend_from_slice(b"\r\n");
    for _ in 0..size / chunk.len() {
        socket.write_all(&framed).await?;
    }
    socket.write_all(b"0\r\n\r\n").await?;
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// A client that sends its whole body before reading reads the refusal, not a reset
/// connection: the server reads and drops the rest of a refused body (up to 16 MiB) before
/// it answers and closes.
#[tokio::test]
async fn a_client_that_sends_everything_before_reading_reads_the_refusal() {
    let w = World::with_env(&[("CLOUD_IMAGES_DIRECT_UPLOAD_LIMIT", "1M")]).await;
    // Cut off at the limit with 7 MiB still to come, more than a socket buffers.
    let id = raw_image(&w).await;
    let cut = send_all_then_read(&w, &format!("/v2/images/{id}/file"), 8 * MIB).await;
    assert!(cut.as_ref().is_ok_and(|l| l.contains(" 413 ")), "{cut:?}");
    // Refused by the inspection as soon as the head is read: not the qcow2 it claims.
    let claims_qcow2 = id_of(
        &w.server
            .new_image(
                &w.alice,
                json!({ "disk_format": "qcow2", "container_format": "bare" }),
            )
            .await,
    );
    let refused = send_all_then_read(&w, &format!("/v2/images/{claims_qcow2}/file"), MIB / 2).await;
    assert!(
        refused.as_ref().is_ok_and(|l| l.contains(" 400 ")),
        "{refused:?}"
    );
}

async fn post(w: &World, token: &str, path: &str, body: Value) -> Reply {
    w.server
        .request(Method::POST, path, Some(token))
        .header("Accept", "application/json")
        .json(&body)
        .checked()
        .await
}

async fn stage(w: &World, id: &str, size: usize) -> Reply {
    post(
        w,
        &w.alice,
        &format!("/v2/images/{id}/file/parts"),
        json!({ "size": size }),
    )
    .await
}

async fn complete(w: &World, id: &str, upload_id: &str) -> Reply {
    post(
        w,
        &w.alice,
        &format!("/v2/images/{id}/file/complete"),
        json!({ "upload_id": upload_id }),
    )
    .await
}

async fn status_and_size(w: &World, id: &str) -> (Value, Value) {
    let image = json_body(w.server.show_image(&w.alice, id).await).await;
    (image["status"].clone(), image["size"].clone())
}

#[tokio::test]
async fn direct_uploads_over_the_limit_get_413_naming_the_staged_upload_and_change_nothing() {
    let w = World::with_env(&[("CLOUD_IMAGES_DIRECT_UPLOAD_LIMIT", "1M")]).await;
    let id = raw_image(&w).await;
    let too_big = sample_bytes(2 * MIB, 1);

    let announced = w.server.upload(&w.alice, &id, too_big.clone()).await;
    assert_eq!(announced.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        announced
            .text()
            .contains(&format!("POST /v2/images/{id}/file/parts")),
        "{}",
        announced.text()
    );
    assert_eq!(
        status_and_size(&w, &id).await,
        (json!("queued"), Value::Null)
    );

    // Without a length the bytes are counted, and the upload is cut off at the limit.
    let chunked = w
        .server
        .upload_chunked(&w.alice, &id, too_big, 256 * 1024)
        .await;
    assert_eq!(chunked.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(chunked.text().contains("/file/parts"), "{}", chunked.text());
    assert_eq!(
        status_and_size(&w, &id).await,
        (json!("queued"), Value::Null)
    );

    let small = sample_bytes(MIB, 2);
    let stored = w.server.upload(&w.alice, &id, small.clone()).await;
    assert_eq!(stored.status(), StatusCode::NO_CONTENT, "{}", stored.text());
    assert_eq!(
        status_and_size(&w, &id).await,
        (json!("active"), json!(MIB))
    );
}

#[tokio::test]
async fn a_staged_upload_becomes_active_with_the_digests_of_a_direct_upload() {
    let w = World::new().await;
    let id = raw_image(&w).await;
    let data = sample_bytes(20 * MIB + 5, 3);
    let reply = stage(&w, &id, data.len()).await;
    if !testing_aws() {
        // Files take data directly; there is no store URL to hand out.
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
        assert!(reply.text().contains(&format!("PUT /v2/images/{id}/file")));
        return;
    }
    assert_eq!(reply.status(), StatusCode::OK, "{}", reply.text());
    let upload = json_body(reply).await;
    assert_eq!(upload["part_size"], 8 * MIB);
    assert_eq!(upload["parts"].as_array().unwrap().len(), 3);
    assert_eq!(upload["complete"], format!("/v2/images/{id}/file/complete"));
    for number in [3, 1, 2] {
        put_part(&upload, number, &data).await;
    }
    // Nothing changes before the client completes.
    assert_eq!(
        status_and_size(&w, &id).await,
        (json!("queued"), Value::Null)
    );

    let reply = complete(&w, &id, upload["upload_id"].as_str().unwrap()).await;
    assert_eq!(reply.status(), StatusCode::ACCEPTED, "{}", reply.text());
    let location = reply.headers()["location"].to_str().unwrap().to_owned();
    let task = json_body(reply).await;
    assert_eq!(task["type"], "api_image_import");
    assert!(location.ends_with(&format!("/v2/tasks/{}", task["id"].as_str().unwrap())));
    let task = w
        .server
        .finished_task(&w.alice, task["id"].as_str().unwrap())
        .await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["result"]["image_id"], id);

    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["checksum"], tool_digest("md5sum", &data));
    assert_eq!(image["os_hash_value"], tool_digest("sha512sum", &data));
    let download = w.server.download(&w.alice, &id, None).await;
    assert!(
        download.bytes() == data.as_slice(),
        "downloaded bytes differ"
    );
}

#[tokio::test]
async fn staged_data_that_fails_inspection_never_activates_the_image() {
    if !testing_aws() {
        return; // staged uploads need the S3 store; the refusal is tested above
    }
    let w = World::new().await;
    let id = raw_image(&w).await;
    let dir = tempfile::tempdir().unwrap();
    qemu_img(
        &["create", "-q", "-f", "qcow2", "q.qcow2", "64M"],
        dir.path(),
    );
    let qcow2 = std::fs::read(dir.path().join("q.qcow2")).unwrap();
    let upload = json_body(stage(&w, &id, qcow2.len()).await).await;
    put_part(&upload, 1, &qcow2).await;
    let reply = complete(&w, &id, upload["upload_id"].as_str().unwrap()).await;
    assert_eq!(reply.status(), StatusCode::ACCEPTED, "{}", reply.text());
    let task_id = json_body(reply).await["id"].as_str().unwrap().to_owned();
    let task = w.server.finished_task(&w.alice, &task_id).await;
    assert_eq!(task["status"], "failure");
    assert!(
        task["message"].as_str().unwrap().contains("qcow2"),
        "{task}"
    );
    assert_eq!(
        status_and_size(&w, &id).await,
        (json!("queued"), Value::Null)
    );
}

#[tokio::test]
async fn completing_with_a_part_missing_is_refused_naming_it() {
    if !testing_aws() {
        return;
    }
    let w = World::new().await;
    let id = raw_image(&w).await;
    let data = sample_bytes(20 * MIB, 4);
    let upload = json_body(stage(&w, &id, data.len()).await).await;
    put_part(&upload, 1, &data).await;
    put_part(&upload, 3, &data).await;
    let upload_id = upload["upload_id"].as_str().unwrap();
    let unknown = complete(&w, &id, "no-such-upload").await;
    assert_eq!(
        unknown.status(),
        StatusCode::NOT_FOUND,
        "{}",
        unknown.text()
    );
    let reply = complete(&w, &id, upload_id).await;
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    assert!(reply.text().contains("Part 2"), "{}", reply.text());
    assert_eq!(
        status_and_size(&w, &id).await,
        (json!("queued"), Value::Null)
    );

    // The upload is still open: sending the part and completing again succeeds.
    put_part(&upload, 2, &data).await;
    let reply = complete(&w, &id, upload_id).await;
    assert_eq!(reply.status(), StatusCode::ACCEPTED, "{}", reply.text());
    let task_id = json_body(reply).await["id"].as_str().unwrap().to_owned();
    assert_eq!(
        w.server.finished_task(&w.alice, &task_id).await["status"],
        "success"
    );
    // Done: the image is no longer queued.
    let again = complete(&w, &id, upload_id).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "{}", again.text());
}

#[tokio::test]
async fn staged_uploads_refuse_bad_input_strangers_and_the_quota() {
    let w = World::with_env(&[("CLOUD_IMAGES_STORAGE_QUOTA", "1M")]).await;
    let id = raw_image(&w).await;
    let parts = format!("/v2/images/{id}/file/parts");
    for bad in [
        json!({}),
        json!({ "size": 0 }),
        json!({ "size": "12" }),
        json!({ "size": -1 }),
        json!({ "size": 10, "name": "x" }),
    ] {
        let reply = post(&w, &w.alice, &parts, bad.clone()).await;
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let over_quota = stage(&w, &id, 2 * MIB).await;
    assert_eq!(over_quota.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(over_quota.text().contains("quota"), "{}", over_quota.text());

    let stranger = post(&w, &w.bob, &parts, json!({ "size": 10 })).await;
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);
    let stranger = post(
        &w,
        &w.bob,
        &format!("/v2/images/{id}/file/complete"),
        json!({ "upload_id": "x" }),
    )
    .await;
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);
    let no_id = post(
        &w,
        &w.alice,
        &format!("/v2/images/{id}/file/complete"),
        json!({}),
    )
    .await;
    assert_eq!(no_id.status(), StatusCode::BAD_REQUEST);

    // Only the service makes api_image_import tasks.
    let forged = w
        .server
        .create_task(
            &w.alice,
            json!({ "type": "api_image_import", "input": { "image_id": id } }),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
}
