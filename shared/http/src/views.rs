//! Glance-shaped JSON documents of domain entities, serialized straight from the entities.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use cloud_images_domain::image::Image;
use cloud_images_domain::import::StoreCatalog;
use cloud_images_domain::task::{Task, TaskProgress};
use cloud_images_service::staging::StagedUploadOffer;
use serde::{Serialize, Serializer};

/// Timestamps as Glance writes them: whole seconds, UTC, `Z`.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn glance_time<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time(t))
}

/// The image document: every core property present (`null` when unset), additional
/// properties as top-level string values, and the `self`/`file`/`schema` links.
#[derive(Serialize)]
pub struct ImageView<'a> {
    id: String,
    name: &'a Option<String>,
    status: &'static str,
    visibility: &'static str,
    protected: bool,
    os_hidden: bool,
    checksum: &'a Option<String>,
    os_hash_algo: &'a Option<String>,
    os_hash_value: &'a Option<String>,
    owner: Option<&'a str>,
    size: Option<u64>,
    virtual_size: Option<u64>,
    container_format: Option<&'static str>,
    disk_format: Option<&'static str>,
    min_ram: u64,
    min_disk: u64,
    tags: &'a [String],
    #[serde(serialize_with = "glance_time")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "glance_time")]
    updated_at: DateTime<Utc>,
    #[serde(rename = "self")]
    self_link: String,
    file: String,
    schema: &'static str,
    #[serde(flatten)]
    properties: &'a BTreeMap<String, String>,
}

/// The view of one image.
pub fn image(image: &Image) -> ImageView<'_> {
    let id = image.id.to_string();
    ImageView {
        self_link: format!("/v2/images/{id}"),
        file: format!("/v2/images/{id}/file"),
        id,
        name: &image.name,
        status: image.status.as_str(),
        visibility: image.visibility.as_str(),
        protected: image.protected,
        os_hidden: image.os_hidden,
        checksum: &image.checksum,
        os_hash_algo: &image.os_hash_algo,
        os_hash_value: &image.os_hash_value,
        owner: image.owner.as_deref(),
        size: image.size,
        virtual_size: image.virtual_size,
        container_format: image.container_format.map(|f| f.as_str()),
        disk_format: image.disk_format.map(|f| f.as_str()),
        min_ram: image.min_ram,
        min_disk: image.min_disk,
        tags: &image.tags,
        created_at: image.created_at,
        updated_at: image.updated_at,
        schema: "/v2/schemas/image",
        properties: &image.properties,
    }
}

/// A page of images with its links.
#[derive(Serialize)]
pub struct ImageListView<'a> {
    /// The images.
    pub images: Vec<ImageView<'a>>,
    /// Link to the first page.
    pub first: String,
    /// Link to the next page, when one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The collection schema.
    pub schema: &'static str,
}

/// The task document (Glance's task entity); `input`, `result` and `message` only in the
/// full view, as Glance's list shows stubs.
#[derive(Serialize)]
pub struct TaskView<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    owner: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Option<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<TaskProgress>,
    expires_at: Option<String>,
    #[serde(serialize_with = "glance_time")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "glance_time")]
    updated_at: DateTime<Utc>,
    #[serde(rename = "self")]
    self_link: String,
    schema: &'static str,
}

/// The full view of one task.
pub fn task(task: &Task) -> TaskView<'_> {
    TaskView {
        input: Some(&task.input),
        result: Some(&task.result),
        message: Some(&task.message),
        ..task_stub(task)
    }
}

/// A task as lists show it.
pub fn task_stub(task: &Task) -> TaskView<'_> {
    let id = task.id.to_string();
    TaskView {
        self_link: format!("/v2/tasks/{id}"),
        id,
        kind: task.kind.as_str(),
        status: task.status.as_str(),
        owner: &task.owner,
        input: None,
        result: None,
        message: None,
        image_id: task.image_id.map(|id| id.to_string()),
        request_id: task.request_id.as_deref(),
        user_id: task.user_id.as_deref(),
        progress: task.progress,
        expires_at: task.expires_at.as_ref().map(time),
        created_at: task.created_at,
        updated_at: task.updated_at,
        schema: "/v2/schemas/task",
    }
}

/// A page of tasks with its links.
#[derive(Serialize)]
pub struct TaskListView<'a> {
    /// The tasks.
    pub tasks: Vec<TaskView<'a>>,
    /// Link to the first page.
    pub first: String,
    /// Link to the next page, when one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The collection schema.
    pub schema: &'static str,
}

/// One part of a staged upload: where its bytes go.
#[derive(Serialize)]
pub struct StagedPartView<'a> {
    part_number: u64,
    size: u64,
    url: &'a str,
}

/// A staged upload as handed to the client.
#[derive(Serialize)]
pub struct StagedUploadView<'a> {
    image_id: String,
    upload_id: &'a str,
    size: u64,
    part_size: u64,
    parts: Vec<StagedPartView<'a>>,
    expires_at: String,
    complete: String,
}

/// The document of a new staged upload.
pub fn staged_upload(offer: &StagedUploadOffer) -> StagedUploadView<'_> {
    let image_id = offer.image_id.to_string();
    StagedUploadView {
        complete: format!("/v2/images/{image_id}/file/complete"),
        image_id,
        upload_id: &offer.upload_id,
        size: offer.plan.size,
        part_size: offer.plan.part_size,
        parts: (1..)
            .zip(&offer.part_urls)
            .map(|(number, url)| StagedPartView {
                part_number: number,
                size: offer.plan.part_len(number),
                url,
            })
            .collect(),
        expires_at: time(&offer.expires_at),
    }
}

/// The stores as `GET /v2/info/stores` lists them; `detail` adds each store's type, as
/// `/v2/info/stores/detail` does for administrators.
pub fn stores(catalog: &StoreCatalog, detail: bool) -> Vec<serde_json::Value> {
    catalog
        .stores
        .iter()
        .map(|store| {
            let mut view = serde_json::json!({ "id": store.id, "description": store.description });
            if store.id == catalog.default {
                view["default"] = serde_json::Value::Bool(true);
            }
            if detail {
                view["type"] = serde_json::Value::from(store.kind.as_str());
                view["weight"] = serde_json::Value::from(0);
                view["properties"] = serde_json::json!({});
            }
            view
        })
        .collect()
}
