//! The JSON Schemas served under `/v2/schemas/`, shaped as Glance's: python-glanceclient
//! builds its PATCH documents and its notion of core properties from the image schema.

use serde_json::{Value, json};

/// UUID pattern used by Glance's schemas.
const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

/// Container formats accepted, as Glance's defaults.
pub const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
/// Disk formats accepted, as Glance's defaults.
pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];

/// The schema named in `/v2/schemas/{name}`, if there is one.
pub fn by_name(name: &str) -> Option<Value> {
    match name {
        "image" => Some(image()),
        "images" => Some(collection("images", &image(), true)),
        "member" => Some(member()),
        "members" => Some(collection("members", &member(), false)),
        "task" => Some(task()),
        "tasks" => Some(collection("tasks", &task(), true)),
        _ => None,
    }
}

fn nullable_enum(values: &[&str]) -> Value {
    let mut all = vec![Value::Null];
    all.extend(values.iter().map(|v| json!(v)));
    Value::Array(all)
}

fn read_only(kind: &Value, description: &str) -> Value {
    json!({ "type": kind, "readOnly": true, "description": description })
}

/// Properties Glance ships in `schema-image.json`: documented, but not core (`is_base: false`).
fn common_properties() -> Value {
    let string = |description: &str| json!({ "type": "string", "description": description, "is_base": false });
    json!({
        "architecture": string("Operating system architecture as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"),
        "os_distro": string("Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"),
        "os_version": string("Operating system version as specified by the distributor"),
        "description": string("A human-readable string describing this image."),
        "kernel_id": { "type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                       "description": "ID of image stored in Glance that should be used as the kernel when booting an AMI-style image." },
        "ramdisk_id": { "type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                        "description": "ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image." },
        "instance_uuid": string("Metadata which can be used to record which instance this image is associated with. (Informational only, does not create an instance snapshot.)"),
    })
}

fn image() -> Value {
    let mut properties = json!({
        "id": { "type": "string", "description": "An identifier for the image", "pattern": UUID_PATTERN },
        "name": { "type": ["null", "string"], "description": "Descriptive name for the image", "maxLength": 255 },
        "status": { "type": "string", "readOnly": true, "description": "Status of the image",
                    "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"] },
        "visibility": { "type": "string", "description": "Scope of image accessibility",
                        "enum": ["community", "public", "private", "shared"] },
        "protected": { "type": "boolean", "description": "If true, image will not be deletable." },
        "os_hidden": { "type": "boolean", "description": "If true, image will not appear in default image list response." },
        "checksum": { "type": ["null", "string"], "readOnly": true, "description": "md5 hash of image contents.", "maxLength": 32 },
        "os_hash_algo": { "type": ["null", "string"], "readOnly": true, "description": "Algorithm to calculate the os_hash_value", "maxLength": 64 },
        "os_hash_value": { "type": ["null", "string"], "readOnly": true, "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo", "maxLength": 128 },
        "owner": { "type": ["null", "string"], "description": "Owner of the image", "maxLength": 255 },
        "size": read_only(&json!(["null", "integer"]), "Size of image file in bytes"),
        "virtual_size": read_only(&json!(["null", "integer"]), "Virtual size of image in bytes"),
        "container_format": { "type": ["null", "string"], "description": "Format of the container", "enum": nullable_enum(CONTAINER_FORMATS) },
        "disk_format": { "type": ["null", "string"], "description": "Format of the disk", "enum": nullable_enum(DISK_FORMATS) },
        "created_at": read_only(&json!("string"), "Date and time of image registration"),
        "updated_at": read_only(&json!("string"), "Date and time of the last image modification"),
        "tags": { "type": "array", "description": "List of strings related to the image", "items": { "type": "string", "maxLength": 255 } },
        "direct_url": read_only(&json!("string"), "URL to access the image file kept in external store"),
        "stores": read_only(&json!("string"), "Store in which image data resides.  Only present when the operator has enabled multiple stores.  May be a comma-separated list of store identifiers."),
        "min_ram": { "type": "integer", "description": "Amount of ram (in MB) required to boot image." },
        "min_disk": { "type": "integer", "description": "Amount of disk space (in GB) required to boot image." },
        "self": read_only(&json!("string"), "An image self url"),
        "file": read_only(&json!("string"), "An image file url"),
        "schema": read_only(&json!("string"), "An image schema url"),
        "locations": { "type": "array", "readOnly": true, "description": "A set of URLs to access the image file kept in external store",
                       "items": { "type": "object", "properties": { "url": { "type": "string", "maxLength": 255 }, "metadata": { "type": "object" } },
                                  "required": ["url", "metadata"] } },
    });
    if let (Some(core), Value::Object(extra)) = (properties.as_object_mut(), common_properties()) {
        core.extend(extra);
    }
    json!({
        "name": "image",
        "properties": properties,
        "additionalProperties": { "type": "string" },
        "links": [
            { "rel": "self", "href": "{self}" },
            { "rel": "enclosure", "href": "{file}" },
            { "rel": "describedby", "href": "{schema}" },
        ],
    })
}

fn member() -> Value {
    json!({
        "name": "member",
        "properties": {
            "created_at": { "type": "string", "description": "Date and time of image member creation" },
            "image_id": { "type": "string", "description": "An identifier for the image", "pattern": UUID_PATTERN },
            "member_id": { "type": "string", "description": "An identifier for the image member (tenantId)" },
            "schema": { "type": "string", "readOnly": true },
            "status": { "type": "string", "description": "The status of this image member", "enum": ["pending", "accepted", "rejected"] },
            "updated_at": { "type": "string", "description": "Date and time of last modification of image member" },
        },
    })
}

fn task() -> Value {
    json!({
        "name": "task",
        "properties": {
            "id": { "type": "string", "description": "An identifier for the task", "pattern": UUID_PATTERN },
            "type": { "type": "string", "description": "The type of task represented by this content", "enum": ["import", "export", "api_image_import"] },
            "status": { "type": "string", "description": "The current status of this task", "enum": ["pending", "processing", "success", "failure"] },
            "input": { "type": ["null", "object"], "description": "The parameters required by task, JSON blob" },
            "result": { "type": ["null", "object"], "description": "The result of current task, JSON blob" },
            "owner": { "type": "string", "description": "An identifier for the owner of this task" },
            "message": { "type": "string", "description": "Human-readable informative message only included when appropriate (usually on failure)" },
            "image_id": { "type": ["null", "string"], "description": "Image associated with the task" },
            "request_id": { "type": ["null", "string"], "description": "Request ID of the request that created the task" },
            "user_id": { "type": ["null", "string"], "description": "User associated with the task" },
            "progress": { "type": "object", "description": "Bytes a running import moved (done) of all it will (total, when known), and those safe at its last checkpoint (checkpoint), from which a retry goes on" },
            "expires_at": { "type": ["null", "string"], "description": "Datetime when this resource would be subject to removal" },
            "created_at": { "type": "string", "description": "Datetime when this resource was created" },
            "updated_at": { "type": "string", "description": "Datetime when this resource was updated" },
            "self": { "type": "string" },
            "schema": { "type": "string" },
        },
    })
}

fn collection(name: &str, item: &Value, paged: bool) -> Value {
    let mut properties =
        json!({ name: { "type": "array", "items": item }, "schema": { "type": "string" } });
    let links = if paged {
        properties["first"] = json!({ "type": "string" });
        properties["next"] = json!({ "type": "string" });
        json!([
            { "rel": "first", "href": "{first}" },
            { "rel": "next", "href": "{next}" },
            { "rel": "describedby", "href": "{schema}" },
        ])
    } else {
        json!([{ "rel": "describedby", "href": "{schema}" }])
    };
    json!({ "name": name, "properties": properties, "links": links })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_schema_is_served_and_names_itself() {
        for name in ["image", "images", "member", "members", "task", "tasks"] {
            let schema = by_name(name).expect(name);
            assert_eq!(schema["name"], name);
        }
        assert!(by_name("metadefs").is_none());
    }

    #[test]
    fn the_image_schema_marks_server_owned_properties_read_only() {
        let schema = image();
        for key in [
            "status",
            "size",
            "checksum",
            "os_hash_value",
            "stores",
            "created_at",
            "self",
            "file",
            "schema",
        ] {
            assert_eq!(schema["properties"][key]["readOnly"], true, "{key}");
        }
        assert!(schema["properties"]["name"].get("readOnly").is_none());
        assert_eq!(schema["additionalProperties"]["type"], "string");
    }

    #[test]
    fn the_image_collection_nests_the_image_schema() {
        let images = by_name("images").expect("images");
        assert_eq!(images["properties"]["images"]["items"]["name"], "image");
        assert_eq!(images["properties"]["next"]["type"], "string");
    }
}
