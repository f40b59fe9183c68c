//! Glance-shaped JSON documents of domain entities.

use chrono::{DateTime, Utc};
use cloud_images_domain::image::Image;
use serde_json::{Value, json};

/// Timestamps as Glance writes them: whole seconds, UTC, `Z`.
pub fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The image document: every core property present (`null` when unset), additional
/// properties as top-level string values, and the `self`/`file`/`schema` links.
pub fn image(image: &Image) -> Value {
    let id = image.id.to_string();
    let mut document = json!({
        "id": id,
        "name": image.name,
        "status": image.status.as_str(),
        "visibility": image.visibility.as_str(),
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "container_format": image.container_format.map(|f| f.as_str()),
        "disk_format": image.disk_format.map(|f| f.as_str()),
        "min_ram": image.min_ram,
        "min_disk": image.min_disk,
        "tags": image.tags,
        "created_at": time(&image.created_at),
        "updated_at": time(&image.updated_at),
        "self": format!("/v2/images/{id}"),
        "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
    });
    if let Some(map) = document.as_object_mut() {
        for (key, value) in &image.properties {
            map.entry(key.clone())
                .or_insert_with(|| Value::String(value.clone()));
        }
    }
    document
}
