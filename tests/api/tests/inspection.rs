//! Disk-format inspection of uploads, with real images made by qemu-img.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cloud_images_api_tests::{World, id_of, json_body, sample_bytes};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn qemu_img(args: &[&str], dir: &Path) {
    cloud_images_api_tests::qemu_img(args, dir);
}

fn virtual_size(path: &Path) -> u64 {
    if path.extension().is_some_and(|e| e == "vhd") && path.to_string_lossy().ends_with("f.vhd") {
        // qemu-img counts a fixed VHD's 512-byte footer as disk; the footer's own size field
        // (what a hypervisor uses) is the bytes before it.
        return std::fs::metadata(path).unwrap().len() - 512;
    }
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    info["virtual-size"].as_u64().unwrap()
}

fn make(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    qemu_img(args, dir);
    dir.join(name)
}

async fn upload_as(
    w: &World,
    disk_format: &str,
    data: Vec<u8>,
) -> (String, cloud_images_api_tests::Reply) {
    let id = id_of(
        &w.server
            .new_image(
                &w.alice,
                json!({ "disk_format": disk_format, "container_format": "bare" }),
            )
            .await,
    );
    let reply = w.server.upload(&w.alice, &id, data).await;
    (id, reply)
}

async fn assert_refused(w: &World, disk_format: &str, data: Vec<u8>, says: &str) {
    let (id, reply) = upload_as(w, disk_format, data).await;
    assert_eq!(
        reply.status(),
        StatusCode::BAD_REQUEST,
        "{disk_format}: {}",
        reply.text()
    );
    assert!(
        reply.text().contains(says),
        "{disk_format}: expected '{says}' in {}",
        reply.text()
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["status"], "queued");
    assert_eq!(image["size"], Value::Null);
    assert!(w.server.partial_files_of(&id).await.is_empty());
}

#[tokio::test]
async fn standalone_images_of_each_format_upload_with_their_virtual_size() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "qcow2",
            make(
                dir.path(),
                "a.qcow2",
                &["create", "-q", "-f", "qcow2", "a.qcow2", "64M"],
            ),
        ),
        (
            "vmdk",
            make(
                dir.path(),
                "a.vmdk",
                &[
                    "create",
                    "-q",
                    "-f",
                    "vmdk",
                    "-o",
                    "subformat=monolithicSparse",
                    "a.vmdk",
                    "32M",
                ],
            ),
        ),
        (
            "vmdk",
            make(
                dir.path(),
                "s.vmdk",
                &[
                    "create",
                    "-q",
                    "-f",
                    "vmdk",
                    "-o",
                    "subformat=streamOptimized",
                    "s.vmdk",
                    "32M",
                ],
            ),
        ),
        (
            "vdi",
            make(
                dir.path(),
                "a.vdi",
                &["create", "-q", "-f", "vdi", "a.vdi", "16M"],
            ),
        ),
        (
            "vhd",
            make(
                dir.path(),
                "d.vhd",
                &[
                    "create",
                    "-q",
                    "-f",
                    "vpc",
                    "-o",
                    "subformat=dynamic",
                    "d.vhd",
                    "16M",
                ],
            ),
        ),
        (
            "vhd",
            make(
                dir.path(),
                "f.vhd",
                &[
                    "create",
                    "-q",
                    "-f",
                    "vpc",
                    "-o",
                    "subformat=fixed",
                    "f.vhd",
                    "8M",
                ],
            ),
        ),
    ];
    for (format, path) in cases {
        let (id, reply) = upload_as(&w, format, std::fs::read(&path).unwrap()).await;
        assert_eq!(
            reply.status(),
            StatusCode::NO_CONTENT,
            "{}: {}",
            path.display(),
            reply.text()
        );
        let image = json_body(w.server.show_image(&w.alice, &id).await).await;
        assert_eq!(image["status"], "active");
        assert_eq!(
            image["virtual_size"],
            virtual_size(&path),
            "{}",
            path.display()
        );
    }
    let vhdx = make(
        dir.path(),
        "a.vhdx",
        &["create", "-q", "-f", "vhdx", "a.vhdx", "16M"],
    );
    let (id, reply) = upload_as(&w, "vhdx", std::fs::read(&vhdx).unwrap()).await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        json_body(w.server.show_image(&w.alice, &id).await).await["status"],
        "active"
    );
}

#[tokio::test]
async fn a_qcow2_with_a_backing_file_is_rejected() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    make(
        dir.path(),
        "base.raw",
        &["create", "-q", "-f", "raw", "base.raw", "16M"],
    );
    let child = make(
        dir.path(),
        "child.qcow2",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.raw",
            "-F",
            "raw",
            "child.qcow2",
        ],
    );
    assert_refused(&w, "qcow2", std::fs::read(child).unwrap(), "backing file").await;
}

#[tokio::test]
async fn a_qcow2_with_an_external_data_file_is_rejected() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let image = make(
        dir.path(),
        "ext.qcow2",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=ext.raw",
            "ext.qcow2",
            "16M",
        ],
    );
    assert_refused(
        &w,
        "qcow2",
        std::fs::read(image).unwrap(),
        "external data file",
    )
    .await;
}

#[tokio::test]
async fn a_vmdk_descriptor_that_references_other_files_is_rejected() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let descriptor = make(
        dir.path(),
        "flat.vmdk",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "flat.vmdk",
            "8M",
        ],
    );
    assert_refused(
        &w,
        "vmdk",
        std::fs::read(descriptor).unwrap(),
        "references other files",
    )
    .await;
    let split = make(
        dir.path(),
        "split.vmdk",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=twoGbMaxExtentSparse",
            "split.vmdk",
            "8M",
        ],
    );
    assert_refused(
        &w,
        "vmdk",
        std::fs::read(split).unwrap(),
        "references other files",
    )
    .await;
}

#[tokio::test]
async fn data_that_is_not_the_declared_format_is_rejected_naming_what_it_looks_like() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = std::fs::read(make(
        dir.path(),
        "q.qcow2",
        &["create", "-q", "-f", "qcow2", "q.qcow2", "8M"],
    ))
    .unwrap();
    assert_refused(&w, "raw", qcow2.clone(), "looks like qcow2").await;
    assert_refused(&w, "vmdk", qcow2, "looks like qcow2").await;
    assert_refused(&w, "qcow2", sample_bytes(200_000, 8), "looks like raw").await;
    let vdi = std::fs::read(make(
        dir.path(),
        "v.vdi",
        &["create", "-q", "-f", "vdi", "v.vdi", "8M"],
    ))
    .unwrap();
    assert_refused(&w, "raw", vdi, "looks like vdi").await;
}

#[tokio::test]
async fn a_wrong_header_fails_before_the_rest_of_a_large_upload_is_read() {
    let w = World::new().await;
    let id = id_of(
        &w.server
            .new_image(
                &w.alice,
                json!({ "disk_format": "qcow2", "container_format": "bare" }),
            )
            .await,
    );
    let mut upload = cloud_images_api_tests::RawUpload::start(&w.server, &w.alice, &id).await;
    let block = vec![0u8; 256 * 1024];
    let mut sent = 0usize;
    while sent < 256 * 1024 * 1024 && upload.send(&block).await {
        sent += block.len();
    }
    let status = upload.response().await;
    assert!(status.contains("400"), "{status}");
    assert!(
        sent < 64 * 1024 * 1024,
        "the server read {sent} bytes before refusing"
    );
}
