//! What a caller may set on an image and how: the rules shared by create and PATCH.

use serde_json::{Map, Value};

use crate::error::{DomainError, DomainResult};
use crate::identity::TenantId;
use crate::image::{Image, ImageId, ImageStatus, Visibility};

/// Limits on what one image may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Most additional properties per image (Glance ships 128).
    pub max_properties: usize,
    /// Most tags per image (Glance ships 128).
    pub max_tags: usize,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_properties: 128,
            max_tags: 128,
        }
    }
}

/// Who is editing, and when.
#[derive(Debug, Clone, Copy)]
pub struct EditContext {
    /// Admins may set `owner` and make images public.
    pub is_admin: bool,
    /// The image is being created (format changes are always allowed then).
    pub creating: bool,
    /// Limits to enforce.
    pub limits: ImageLimits,
}

/// Properties the service owns; callers setting them get 403, as Glance answers.
pub const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "stores",
];
/// Names reserved outright (Glance's, plus Rackspace's `com.rackspace` prefix).
const RESERVED_NAMES: &[&str] = &["location", "deleted", "deleted_at"];
const RESERVED_PREFIXES: &[&str] = &["os_glance", "com.rackspace"];
/// Core properties that always exist and so can be replaced but never removed.
const CORE: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "container_format",
    "disk_format",
    "min_ram",
    "min_disk",
    "tags",
    "owner",
];

/// `os_distro` values the Rackspace documentation lists.
pub const OS_DISTROS: &[&str] = &[
    "arch",
    "centos",
    "debian",
    "fedora",
    "freebsd",
    "gentoo",
    "mandrake",
    "mandriva",
    "mes",
    "msdos",
    "netbsd",
    "netware",
    "openbsd",
    "opensolaris",
    "opensuse",
    "rhel",
    "sled",
    "ubuntu",
    "windows",
];

const MAX_KEY: usize = 255;
const MAX_VALUE: usize = 65_535;
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 255;

/// Refuses keys callers may never write: read-only (403) and reserved (403) ones.
pub fn check_writable(key: &str) -> DomainResult<()> {
    if READ_ONLY.contains(&key) {
        return Err(DomainError::Forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    if RESERVED_NAMES.contains(&key) || RESERVED_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return Err(DomainError::Forbidden(format!(
            "Attribute '{key}' is reserved."
        )));
    }
    Ok(())
}

/// Whether `key` is a core property (as opposed to an additional one).
pub fn is_core(key: &str) -> bool {
    CORE.contains(&key)
}

fn invalid(message: String) -> DomainError {
    DomainError::Invalid(message)
}

fn string_or_null(key: &str, value: &Value, max: usize) -> DomainResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.clone())),
        Value::String(_) => Err(invalid(format!("'{key}' must be at most {max} characters"))),
        _ => Err(invalid(format!("'{key}' must be a string or null"))),
    }
}

fn boolean(key: &str, value: &Value) -> DomainResult<bool> {
    value
        .as_bool()
        .ok_or_else(|| invalid(format!("'{key}' must be true or false")))
}

/// A JSON integer, also when written with a fraction of zero (`512.0`), as JSON Schema's
/// `integer` (and so Glance) takes it.
fn non_negative(key: &str, value: &Value) -> DomainResult<u64> {
    let integral = || {
        value
            .as_f64()
            // (`u64::MAX as f64` is 2^64 itself: it must stay out.)
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    };
    value
        .as_u64()
        .or_else(integral)
        .ok_or_else(|| invalid(format!("'{key}' must be a non-negative integer")))
}

fn parse_enum<T: std::str::FromStr<Err = DomainError>>(
    key: &str,
    value: &Value,
) -> DomainResult<Option<T>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => s.parse().map(Some),
        _ => Err(invalid(format!("'{key}' must be a string or null"))),
    }
}

fn tags(value: &Value) -> DomainResult<Vec<String>> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid("'tags' must be an array of strings".into()))?;
    let mut tags: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let tag = item
            .as_str()
            .ok_or_else(|| invalid("'tags' must be an array of strings".into()))?;
        check_tag(tag)?;
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    Ok(tags)
}

/// Validates one tag: a non-empty string of at most 255 characters.
pub fn check_tag(tag: &str) -> DomainResult<()> {
    if tag.is_empty() || tag.chars().count() > MAX_TAG {
        return Err(invalid(format!(
            "a tag must be 1 to {MAX_TAG} characters long"
        )));
    }
    Ok(())
}

fn format_change_allowed(image: &Image, ctx: &EditContext, key: &str) -> DomainResult<()> {
    if ctx.creating || image.status == ImageStatus::Queued {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "'{key}' can be changed only while the image is queued; this one is {}",
            image.status
        )))
    }
}

fn property_value(key: &str, value: &Value) -> DomainResult<String> {
    if key.is_empty() || key.chars().count() > MAX_KEY {
        return Err(invalid(format!(
            "property names must be 1 to {MAX_KEY} characters long"
        )));
    }
    let text = value.as_str().ok_or_else(|| {
        invalid(format!(
            "the value of additional property '{key}' must be a string"
        ))
    })?;
    if text.chars().count() > MAX_VALUE {
        return Err(invalid(format!(
            "the value of '{key}' must be at most {MAX_VALUE} characters"
        )));
    }
    if key == "os_distro" && !OS_DISTROS.contains(&text) {
        return Err(invalid(format!(
            "'{text}' is not a known os_distro; allowed: {}",
            OS_DISTROS.join(", ")
        )));
    }
    Ok(text.to_owned())
}

/// Sets one property on `image` after checking the caller may and the value is valid.
pub fn set(image: &mut Image, key: &str, value: &Value, ctx: &EditContext) -> DomainResult<()> {
    check_writable(key)?;
    match key {
        "name" => image.name = string_or_null(key, value, MAX_NAME)?,
        "visibility" => {
            let visibility: Visibility = value
                .as_str()
                .ok_or_else(|| {
                    invalid(format!(
                        "'visibility' must be one of: {}",
                        Visibility::allowed()
                    ))
                })?
                .parse()?;
            if visibility == Visibility::Public
                && !ctx.is_admin
                && image.visibility != Visibility::Public
            {
                return Err(DomainError::Forbidden(
                    "only administrators may make an image public".into(),
                ));
            }
            image.visibility = visibility;
        }
        "protected" => image.protected = boolean(key, value)?,
        "os_hidden" => image.os_hidden = boolean(key, value)?,
        "container_format" => {
            format_change_allowed(image, ctx, key)?;
            image.container_format = parse_enum(key, value)?;
        }
        "disk_format" => {
            format_change_allowed(image, ctx, key)?;
            image.disk_format = parse_enum(key, value)?;
        }
        "min_ram" => image.min_ram = non_negative(key, value)?,
        "min_disk" => image.min_disk = non_negative(key, value)?,
        "tags" => image.tags = tags(value)?,
        "owner" => {
            if !ctx.is_admin {
                return Err(DomainError::Forbidden(
                    "only administrators may change an image's owner".into(),
                ));
            }
            image.owner = string_or_null(key, value, MAX_NAME)?.map(TenantId::from_trusted);
        }
        other => {
            let text = property_value(other, value)?;
            image.properties.insert(other.to_owned(), text);
        }
    }
    Ok(())
}

/// Removes an additional property; core properties cannot be removed (403), absent ones 409.
pub fn remove(image: &mut Image, key: &str) -> DomainResult<()> {
    check_writable(key)?;
    if is_core(key) {
        return Err(DomainError::Forbidden(format!(
            "Property '{key}' may not be removed."
        )));
    }
    image
        .properties
        .remove(key)
        .map(|_| ())
        .ok_or_else(|| DomainError::Conflict(format!("Property '{key}' does not exist.")))
}

/// Whether `key` currently exists on the image (core properties always do).
pub fn exists(image: &Image, key: &str) -> bool {
    is_core(key) || image.properties.contains_key(key)
}

/// Checks the counts an edit may have pushed past the limits (413).
pub fn check_limits(image: &Image, limits: &ImageLimits) -> DomainResult<()> {
    if image.properties.len() > limits.max_properties {
        return Err(DomainError::QuotaExceeded(format!(
            "an image may have at most {} additional properties",
            limits.max_properties
        )));
    }
    if image.tags.len() > limits.max_tags {
        return Err(DomainError::QuotaExceeded(format!(
            "an image may have at most {} tags",
            limits.max_tags
        )));
    }
    Ok(())
}

/// A `POST /v2/images` request: the id the client chose, if any, and the properties to set.
/// The properties are checked against the caller's rights when the image is made.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    /// The client's choice of id; a random one when `None`.
    pub id: Option<ImageId>,
    /// Every other property of the body.
    pub properties: Map<String, Value>,
}

impl NewImage {
    /// Takes `id` (a UUID string, or null) out of a create body.
    pub fn parse(mut body: Map<String, Value>) -> DomainResult<Self> {
        let id = match body.remove("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(ImageId::parse(&raw)?),
            Some(_) => return Err(DomainError::Invalid("'id' must be a UUID string".into())),
        };
        Ok(Self {
            id,
            properties: body,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn sizes_are_json_integers_also_with_a_zero_fraction() {
        assert_eq!(non_negative("min_ram", &json!(512)).ok(), Some(512));
        assert_eq!(non_negative("min_ram", &json!(512.0)).ok(), Some(512));
        for bad in [
            json!(1.5),
            json!(-1),
            json!(-1.0),
            json!("1"),
            json!(null),
            json!(1e30),
            json!(18_446_744_073_709_551_616.0_f64),
        ] {
            assert!(non_negative("min_ram", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_create_body_gives_up_its_id_and_keeps_the_rest() {
        let id = "8e5c1c6e-0e2a-4d8b-9b64-0d6d2b4b2f10";
        let new = NewImage::parse(body(json!({"id": id, "name": "web"}))).expect("valid");
        assert_eq!(new.id.map(|i| i.to_string()).as_deref(), Some(id));
        assert_eq!(new.properties, body(json!({"name": "web"})));
        let new = NewImage::parse(body(json!({"id": null}))).expect("valid");
        assert_eq!((new.id, new.properties.len()), (None, 0));
        for bad in [json!({"id": 7}), json!({"id": "not-a-uuid"})] {
            assert!(
                matches!(
                    NewImage::parse(body(bad.clone())),
                    Err(DomainError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }
}
