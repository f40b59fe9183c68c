//! Images v2 JSON-Patch: the restricted pointer, both media-type dialects, and all-or-nothing
//! application.

use serde_json::Value;

use crate::error::{DomainError, DomainResult};
use crate::image::Image;
use crate::image_rules::{self, EditContext};

/// Which PATCH media type the document came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `application/openstack-images-v2.1-json-patch`: `{"op": "add", "path": "/x", "value": v}`.
    V2_1,
    /// `application/openstack-images-v2.0-json-patch` (deprecated): `{"add": "/x", "value": v}`.
    V2_0,
}

/// One operation on one top-level property.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    /// Set, creating or replacing.
    Add {
        /// Property name.
        key: String,
        /// New value.
        value: Value,
    },
    /// Set an existing property (409 if absent).
    Replace {
        /// Property name.
        key: String,
        /// New value.
        value: Value,
    },
    /// Delete an additional property (409 if absent).
    Remove {
        /// Property name.
        key: String,
    },
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::Invalid(message.into())
}

/// Decodes a restricted JSON pointer: exactly one reference token, `~0` → `~`, `~1` → `/`.
pub fn parse_pointer(pointer: &str) -> DomainResult<String> {
    let token = pointer
        .strip_prefix('/')
        .ok_or_else(|| invalid(format!("Pointer '{pointer}' does not start with '/'")))?;
    if token.contains('/') {
        return Err(invalid(format!(
            "Pointer '{pointer}' has more than one reference token; only top-level properties may be patched"
        )));
    }
    let mut key = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next() {
                Some('0') => key.push('~'),
                Some('1') => key.push('/'),
                _ => {
                    return Err(invalid(format!(
                        "Pointer '{pointer}' contains '~' not part of an escape sequence"
                    )));
                }
            },
            c => key.push(c),
        }
    }
    if key.is_empty() {
        return Err(invalid("Pointer '/' names no property"));
    }
    Ok(key)
}

fn parse_one(item: &Value, dialect: Dialect) -> DomainResult<PatchOp> {
    let object = item
        .as_object()
        .ok_or_else(|| invalid("Each patch operation must be a JSON object"))?;
    let (op, path) = match dialect {
        Dialect::V2_1 => {
            let op = object
                .get("op")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("Operation has no 'op'"))?;
            let path = object
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("Operation has no 'path'"))?;
            (op, path)
        }
        Dialect::V2_0 => ["add", "replace", "remove"]
            .iter()
            .find_map(|op| {
                object
                    .get(*op)
                    .and_then(Value::as_str)
                    .map(|path| (*op, path))
            })
            .ok_or_else(|| {
                invalid("Operation must have one of 'add', 'replace' or 'remove' naming a path")
            })?,
    };
    let key = parse_pointer(path)?;
    let value = || {
        object
            .get("value")
            .cloned()
            .ok_or_else(|| invalid(format!("Operation '{op}' needs a 'value'")))
    };
    match op {
        "add" => Ok(PatchOp::Add {
            key,
            value: value()?,
        }),
        "replace" => Ok(PatchOp::Replace {
            key,
            value: value()?,
        }),
        "remove" => Ok(PatchOp::Remove { key }),
        other => Err(invalid(format!(
            "Operation '{other}' is not supported; use add, replace or remove"
        ))),
    }
}

/// Parses a PATCH document (a JSON array of operations) in the given dialect.
pub fn parse_document(document: &Value, dialect: Dialect) -> DomainResult<Vec<PatchOp>> {
    document
        .as_array()
        .ok_or_else(|| invalid("A PATCH body must be a JSON array of operations"))?
        .iter()
        .map(|item| parse_one(item, dialect))
        .collect()
}

/// Applies every operation to a copy of `image`; any failure leaves the image untouched.
pub fn apply(image: &Image, ops: &[PatchOp], ctx: &EditContext) -> DomainResult<Image> {
    let mut next = image.clone();
    for op in ops {
        match op {
            PatchOp::Add { key, value } => image_rules::set(&mut next, key, value, ctx)?,
            PatchOp::Replace { key, value } => {
                image_rules::check_writable(key)?;
                if !image_rules::exists(&next, key) {
                    return Err(DomainError::Conflict(format!(
                        "Property '{key}' does not exist."
                    )));
                }
                image_rules::set(&mut next, key, value, ctx)?;
            }
            PatchOp::Remove { key } => image_rules::remove(&mut next, key)?,
        }
    }
    image_rules::check_limits(&next, &ctx.limits)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{ImageId, ImageStatus, Visibility};
    use crate::image_rules::ImageLimits;
    use chrono::Utc;
    use serde_json::json;

    fn image() -> Image {
        let mut image = Image::new_queued(
            ImageId::random(),
            Some(crate::identity::TenantId::from_trusted("t1")),
            Utc::now(),
        );
        image.name = Some("base".into());
        image.properties.insert("os_version".into(), "12".into());
        image
    }

    fn member() -> EditContext {
        EditContext {
            is_admin: false,
            creating: false,
            limits: ImageLimits::default(),
        }
    }

    fn ops(doc: Value) -> Vec<PatchOp> {
        parse_document(&doc, Dialect::V2_1).expect("valid document")
    }

    fn status_of(result: DomainResult<Image>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(DomainError::Invalid(_)) => "400",
            Err(DomainError::Forbidden(_)) => "403",
            Err(DomainError::Conflict(_)) => "409",
            Err(DomainError::QuotaExceeded(_)) => "413",
            Err(_) => "other",
        }
    }

    #[test]
    fn pointers_decode_escapes_and_refuse_nesting() {
        assert_eq!(parse_pointer("/name").ok(), Some("name".into()));
        assert_eq!(parse_pointer("/a~1b~0c").ok(), Some("a/b~c".into()));
        for bad in ["name", "/tags/-", "/a~2", "/a~", "/", ""] {
            assert!(parse_pointer(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_deprecated_dialect_names_the_op_as_the_key() {
        let doc = json!([{ "replace": "/name", "value": "x" }, { "remove": "/os_version" }]);
        let parsed = parse_document(&doc, Dialect::V2_0).expect("valid");
        assert_eq!(
            parsed[0],
            PatchOp::Replace {
                key: "name".into(),
                value: json!("x")
            }
        );
        assert_eq!(
            parsed[1],
            PatchOp::Remove {
                key: "os_version".into()
            }
        );
    }

    #[test]
    fn unsupported_ops_and_non_arrays_are_invalid() {
        assert!(parse_document(&json!({ "op": "add" }), Dialect::V2_1).is_err());
        assert!(
            parse_document(
                &json!([{ "op": "move", "path": "/a", "from": "/b" }]),
                Dialect::V2_1
            )
            .is_err()
        );
        assert!(parse_document(&json!([{ "op": "add", "path": "/a" }]), Dialect::V2_1).is_err());
    }

    #[test]
    fn add_on_an_existing_property_replaces_it() {
        let next = apply(
            &image(),
            &ops(json!([{ "op": "add", "path": "/os_version", "value": "13" }])),
            &member(),
        );
        assert_eq!(next.expect("applied").properties["os_version"], "13");
    }

    #[test]
    fn replace_or_remove_of_an_absent_property_conflicts() {
        let replace = ops(json!([{ "op": "replace", "path": "/nope", "value": "x" }]));
        assert_eq!(status_of(apply(&image(), &replace, &member())), "409");
        let remove = ops(json!([{ "op": "remove", "path": "/nope" }]));
        assert_eq!(status_of(apply(&image(), &remove, &member())), "409");
    }

    #[test]
    fn read_only_reserved_and_core_removals_are_forbidden() {
        for doc in [
            json!([{ "op": "replace", "path": "/status", "value": "active" }]),
            json!([{ "op": "add", "path": "/os_glance_x", "value": "1" }]),
            json!([{ "op": "add", "path": "/com.rackspace__1", "value": "1" }]),
            json!([{ "op": "add", "path": "/deleted", "value": "1" }]),
            json!([{ "op": "remove", "path": "/name" }]),
            json!([{ "op": "add", "path": "/owner", "value": "t2" }]),
            json!([{ "op": "replace", "path": "/visibility", "value": "public" }]),
        ] {
            assert_eq!(
                status_of(apply(&image(), &ops(doc.clone()), &member())),
                "403",
                "{doc}"
            );
        }
    }

    #[test]
    fn invalid_values_are_bad_requests() {
        for doc in [
            json!([{ "op": "replace", "path": "/visibility", "value": "bogus" }]),
            json!([{ "op": "replace", "path": "/protected", "value": "yes" }]),
            json!([{ "op": "replace", "path": "/min_ram", "value": -1 }]),
            json!([{ "op": "replace", "path": "/disk_format", "value": "floppy" }]),
            json!([{ "op": "add", "path": "/extra", "value": 5 }]),
            json!([{ "op": "add", "path": "/os_distro", "value": "Ubuntu" }]),
            json!([{ "op": "replace", "path": "/name", "value": "n".repeat(256) }]),
            json!([{ "op": "replace", "path": "/tags", "value": ["ok", 3] }]),
            json!([{ "op": "add", "path": &format!("/{}", "k".repeat(256)), "value": "v" }]),
        ] {
            assert_eq!(
                status_of(apply(&image(), &ops(doc.clone()), &member())),
                "400",
                "{doc}"
            );
        }
    }

    #[test]
    fn a_failing_operation_leaves_the_whole_patch_unapplied() {
        let original = image();
        let doc = ops(json!([
            { "op": "replace", "path": "/name", "value": "changed" },
            { "op": "replace", "path": "/status", "value": "active" },
        ]));
        assert!(apply(&original, &doc, &member()).is_err());
        assert_eq!(original.name.as_deref(), Some("base"));
    }

    #[test]
    fn tags_are_replaced_as_a_set_and_limited() {
        let next = apply(
            &image(),
            &ops(json!([{ "op": "replace", "path": "/tags", "value": ["a", "b", "a"] }])),
            &member(),
        );
        assert_eq!(
            next.expect("applied").tags,
            vec!["a".to_owned(), "b".to_owned()]
        );
        let tight = EditContext {
            limits: ImageLimits {
                max_tags: 1,
                max_properties: 128,
            },
            ..member()
        };
        let two = ops(json!([{ "op": "replace", "path": "/tags", "value": ["a", "b"] }]));
        assert_eq!(status_of(apply(&image(), &two, &tight)), "413");
    }

    #[test]
    fn formats_change_only_while_queued() {
        let mut active = image();
        active.status = ImageStatus::Active;
        let doc = ops(json!([{ "op": "replace", "path": "/disk_format", "value": "raw" }]));
        assert_eq!(status_of(apply(&active, &doc, &member())), "403");
        assert_eq!(status_of(apply(&image(), &doc, &member())), "ok");
    }

    #[test]
    fn admins_may_publish_and_reassign() {
        let admin = EditContext {
            is_admin: true,
            ..member()
        };
        let doc = ops(json!([
            { "op": "replace", "path": "/visibility", "value": "public" },
            { "op": "replace", "path": "/owner", "value": "t2" },
        ]));
        let next = apply(&image(), &doc, &admin).expect("applied");
        assert_eq!(next.visibility, Visibility::Public);
        assert_eq!(next.owner.as_deref(), Some("t2"));
    }
}
