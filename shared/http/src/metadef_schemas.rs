//! The JSON Schemas served under `/v2/schemas/metadefs/`, as Glance serves them:
//! python-glanceclient validates every request it builds and every answer it reads
//! against them, so their `required` lists, types and `additionalProperties` are the
//! contract its `md-*` commands hold us to.

use serde_json::{Map, Value, json};

fn property_types() -> Value {
    let mut types: Vec<Value> = ["array", "boolean", "integer", "number", "object", "string"]
        .iter()
        .map(|t| json!(t))
        .collect();
    types.push(Value::Null);
    json!({ "type": "string", "enum": types })
}

fn time(what: &str, event: &str) -> Value {
    json!({
        "type": "string", "readOnly": true, "format": "date-time",
        "description": format!("Date and time of {event}{what}"),
    })
}

/// The fields of one property definition (Glance's `property` schema without `name`'s
/// requirement).
fn property_fields() -> Value {
    json!({
        "name": { "type": "string", "maxLength": 80 },
        "title": { "type": "string" },
        "description": { "type": "string" },
        "operators": { "type": "array", "items": { "type": "string" } },
        "type": property_types(),
        "required": { "$ref": "#/definitions/stringArray" },
        "minimum": { "type": "number" },
        "maximum": { "type": "number" },
        "maxLength": { "$ref": "#/definitions/positiveInteger" },
        "minLength": { "$ref": "#/definitions/positiveIntegerDefault0" },
        "pattern": { "type": "string", "format": "regex" },
        "enum": { "type": "array" },
        "readonly": { "type": "boolean" },
        "default": {},
        "items": {
            "type": "object",
            "properties": { "type": property_types(), "enum": { "type": "array" } },
        },
        "maxItems": { "$ref": "#/definitions/positiveInteger" },
        "minItems": { "$ref": "#/definitions/positiveIntegerDefault0" },
        "uniqueItems": { "type": "boolean", "default": false },
        "additionalItems": { "type": "boolean" },
    })
}

/// The definitions the schemas refer to; a standalone property's string arrays must not be
/// empty.
fn definitions(with_property_map: bool, non_empty_arrays: bool) -> Value {
    let mut string_array =
        json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true });
    if non_empty_arrays {
        string_array["minItems"] = json!(1);
    }
    let mut definitions = json!({
        "positiveInteger": { "type": "integer", "minimum": 0 },
        "positiveIntegerDefault0": {
            "allOf": [{ "$ref": "#/definitions/positiveInteger" }, { "default": 0 }],
        },
        "stringArray": string_array,
    });
    if with_property_map {
        definitions["property"] = json!({
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["title", "type"],
                "properties": property_fields(),
            },
        });
    }
    definitions
}

fn entity(name: &str, properties: Value, required: &[&str], definitions: Option<Value>) -> Value {
    let mut schema = json!({
        "name": name,
        "properties": properties,
        "additionalProperties": false,
        "required": required,
    });
    if let Some(definitions) = definitions {
        schema["definitions"] = definitions;
    }
    schema
}

fn namespace() -> Value {
    let named_list = |fields: Value| json!({ "type": "array", "items": { "type": "object", "properties": fields } });
    entity(
        "namespace",
        json!({
            "namespace": { "type": "string", "maxLength": 80, "description": "The unique namespace text." },
            "display_name": {
                "type": "string", "maxLength": 80,
                "description": "The user friendly name for the namespace. Used by UI if available.",
            },
            "description": {
                "type": "string", "maxLength": 500,
                "description": "Provides a user friendly description of the namespace.",
            },
            "visibility": {
                "type": "string", "enum": ["public", "private"],
                "description": "Scope of namespace accessibility.",
            },
            "protected": { "type": "boolean", "description": "If true, namespace will not be deletable." },
            "owner": { "type": "string", "maxLength": 255, "description": "Owner of the namespace." },
            "created_at": time("namespace creation", ""),
            "updated_at": time("namespace modification", "the last "),
            "schema": { "type": "string", "readOnly": true },
            "self": { "type": "string", "readOnly": true },
            "resource_type_associations": named_list(json!({
                "name": { "type": "string" }, "prefix": { "type": "string" },
                "properties_target": { "type": "string" },
            })),
            "properties": { "$ref": "#/definitions/property" },
            "objects": named_list(json!({
                "name": { "type": "string" }, "description": { "type": "string" },
                "required": { "$ref": "#/definitions/stringArray" },
                "properties": { "$ref": "#/definitions/property" },
            })),
            "tags": named_list(json!({ "name": { "type": "string" } })),
        }),
        &["namespace"],
        Some(definitions(true, false)),
    )
}

fn object() -> Value {
    entity(
        "object",
        json!({
            "name": { "type": "string", "maxLength": 80 },
            "description": { "type": "string" },
            "required": { "$ref": "#/definitions/stringArray" },
            "properties": { "$ref": "#/definitions/property" },
            "schema": { "type": "string", "readOnly": true },
            "self": { "type": "string", "readOnly": true },
            "created_at": time("object creation", ""),
            "updated_at": time("object modification", "the last "),
        }),
        &["name"],
        Some(definitions(true, false)),
    )
}

fn property(required: &[&str]) -> Value {
    entity(
        "property",
        property_fields(),
        required,
        Some(definitions(false, true)),
    )
}

fn resource_type_association() -> Value {
    entity(
        "resource_type_association",
        json!({
            "name": {
                "type": "string", "maxLength": 80,
                "description": "Resource type names should be aligned with Heat resource types whenever possible: https://docs.openstack.org/heat/latest/template_guide/openstack.html",
            },
            "prefix": {
                "type": "string", "maxLength": 80,
                "description": "Specifies the prefix to use for the given resource type. Any properties in the namespace should be prefixed with this prefix when being applied to the specified resource type. Must include prefix separator (e.g. a colon :).",
            },
            "properties_target": {
                "type": "string", "maxLength": 80,
                "description": "Some resource types allow more than one key / value pair per instance.  For example, Cinder allows user and image metadata on volumes. Only the image properties metadata is evaluated by Nova (scheduling or drivers). This property allows a namespace target to remove the ambiguity.",
            },
            "created_at": time("resource type association", ""),
            "updated_at": time("resource type association modification", "the last "),
        }),
        &["name"],
        None,
    )
}

fn tag() -> Value {
    entity(
        "tag",
        json!({
            "name": { "type": "string", "maxLength": 80 },
            "created_at": time("tag creation", ""),
            "updated_at": time("tag modification", "the last "),
        }),
        &["name"],
        None,
    )
}

/// A list of `item`s named `name` (a map by name when `by_name`), with the item's
/// definitions hoisted to the top as Glance's collection schemas have them.
fn collection(name: &str, mut item: Value, by_name: bool) -> Value {
    let definitions = item
        .as_object_mut()
        .and_then(|fields| fields.remove("definitions"));
    let items = if by_name {
        json!({ "type": "object", "additionalProperties": item })
    } else {
        json!({ "type": "array", "items": item })
    };
    let mut properties = Map::new();
    properties.insert(name.to_owned(), items);
    for link in ["first", "next", "schema"] {
        properties.insert(link.to_owned(), json!({ "type": "string" }));
    }
    let mut schema = json!({
        "name": name,
        "properties": properties,
        "links": [
            { "rel": "first", "href": "{first}" },
            { "rel": "next", "href": "{next}" },
            { "rel": "describedby", "href": "{schema}" },
        ],
    });
    if let Some(definitions) = definitions {
        schema["definitions"] = definitions;
    }
    schema
}

/// The schema named in `/v2/schemas/metadefs/{name}`, if there is one.
pub fn by_name(name: &str) -> Option<Value> {
    Some(match name {
        "namespace" => namespace(),
        "namespaces" => collection("namespaces", namespace(), false),
        "object" => object(),
        "objects" => collection("objects", object(), false),
        "property" => property(&["type", "title", "name"]),
        "properties" => collection("properties", property(&["type", "title"]), true),
        "resource_type" => resource_type_association(),
        "resource_types" => collection(
            "resource_type_associations",
            resource_type_association(),
            false,
        ),
        "tag" => tag(),
        "tags" => collection("tags", tag(), false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_schema_names_itself_as_glance_does() {
        for (path, name) in [
            ("namespace", "namespace"),
            ("namespaces", "namespaces"),
            ("object", "object"),
            ("objects", "objects"),
            ("property", "property"),
            ("properties", "properties"),
            ("resource_type", "resource_type_association"),
            ("resource_types", "resource_type_associations"),
            ("tag", "tag"),
            ("tags", "tags"),
        ] {
            assert_eq!(by_name(path).expect(path)["name"], name);
        }
        assert!(by_name("image").is_none());
    }

    #[test]
    fn every_reference_resolves_inside_its_schema() {
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        for name in [
            "namespace",
            "namespaces",
            "object",
            "objects",
            "property",
            "properties",
        ] {
            let schema = by_name(name).expect(name);
            let mut found = Vec::new();
            refs(&schema, &mut found);
            for reference in found {
                let key = reference.trim_start_matches("#/definitions/");
                assert!(
                    schema["definitions"].get(key).is_some(),
                    "{name}: {reference}"
                );
            }
        }
    }
}
