//! Namespaces, objects, associations and tags from the JSON bodies Glance's metadefs API
//! takes (the same shape its catalogue files and `md-namespace-import` use).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    Association, Contents, MAX_NAME, MetaObject, Namespace, NamespaceProperty, NamespaceVisibility,
    Property, add_named, check_name, check_text, property_from,
};
use crate::error::{DomainError, DomainResult};

/// Fields the server sets: a body naming one is refused, as Glance refuses it.
const READ_ONLY: [&str; 4] = ["created_at", "updated_at", "schema", "self"];

fn object_body(value: Value, what: &str) -> DomainResult<Map<String, Value>> {
    let Value::Object(map) = value else {
        return Err(DomainError::Invalid(format!(
            "{what} must be a JSON object"
        )));
    };
    if let Some(field) = READ_ONLY.iter().find(|f| map.contains_key(**f)) {
        return Err(DomainError::Forbidden(format!(
            "Attribute '{field}' is read-only."
        )));
    }
    refuse_nulls(&map)?;
    Ok(map)
}

/// A field given as `null` is refused (Glance's schemas type every field): only a
/// property's `default` may be any JSON value.
pub(super) fn refuse_nulls(map: &Map<String, Value>) -> DomainResult<()> {
    match map
        .iter()
        .find(|(key, value)| value.is_null() && key.as_str() != "default")
    {
        Some((key, _)) => Err(DomainError::Invalid(format!("'{key}' may not be null"))),
        None => Ok(()),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(map: Map<String, Value>, what: &str) -> DomainResult<T> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| DomainError::Invalid(format!("Invalid {what}: {e}")))
}

/// The header fields a namespace body may set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceFields {
    namespace: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    visibility: Option<NamespaceVisibility>,
    #[serde(default)]
    protected: Option<bool>,
    #[serde(default)]
    owner: Option<String>,
}

/// A namespace's header as a body gives it; what it leaves out is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceHeader {
    /// The name.
    pub namespace: String,
    /// A name for people.
    pub display_name: Option<String>,
    /// What it describes.
    pub description: Option<String>,
    /// Who may read it (Glance's default: private).
    pub visibility: Option<NamespaceVisibility>,
    /// Whether it may be deleted.
    pub protected: Option<bool>,
    /// The owning tenant, when the body names one.
    pub owner: Option<String>,
}

impl NamespaceHeader {
    /// The header of a namespace created at `at`, owned by the body's owner or `owner`.
    pub fn create(self, owner: &str, at: DateTime<Utc>) -> Namespace {
        Namespace {
            namespace: self.namespace,
            display_name: self.display_name,
            description: self.description,
            visibility: self.visibility.unwrap_or(NamespaceVisibility::Private),
            protected: self.protected.unwrap_or(false),
            owner: self.owner.unwrap_or_else(|| owner.to_owned()),
            created_at: at,
            updated_at: at,
            resource_type_associations: Vec::new(),
        }
    }

    /// `current` replaced by this header at `at`, as Glance's PUT replaces it: fields left
    /// out take their defaults, and the creation time and associations stay.
    pub fn replace(self, current: &Namespace, at: DateTime<Utc>) -> Namespace {
        Namespace {
            created_at: current.created_at,
            updated_at: at,
            resource_type_associations: current.resource_type_associations.clone(),
            owner: self.owner.clone().unwrap_or_else(|| current.owner.clone()),
            ..self.create(&current.owner, at)
        }
    }
}

/// Parses a namespace body's header; with `with_contents`, also its inline associations,
/// properties, objects and tags (the body of a create, or a catalogue file).
pub fn namespace_from(
    value: Value,
    with_contents: bool,
    at: DateTime<Utc>,
) -> DomainResult<(NamespaceHeader, Vec<Association>, Contents)> {
    let mut map = object_body(value, "A namespace")?;
    let associations = map.remove("resource_type_associations");
    let properties = map.remove("properties");
    let objects = map.remove("objects");
    let tags = map.remove("tags");
    let fields: NamespaceFields = parse(map, "namespace")?;
    check_name("A namespace's name", &fields.namespace, MAX_NAME)?;
    check_text("display_name", fields.display_name.as_deref(), MAX_NAME)?;
    check_text(
        "description",
        fields.description.as_deref(),
        super::MAX_DESCRIPTION,
    )?;
    if let Some(owner) = &fields.owner {
        check_name("owner", owner, 255)?;
    }
    let header = NamespaceHeader {
        namespace: fields.namespace,
        display_name: fields.display_name,
        description: fields.description,
        visibility: fields.visibility,
        protected: fields.protected,
        owner: fields.owner,
    };
    if !with_contents {
        // A PUT ignores the contents (clients send back what they read), but not their types.
        array_of(associations, "resource_type_associations")?;
        map_of(properties, "properties")?;
        array_of(objects, "objects")?;
        array_of(tags, "tags")?;
        return Ok((header, Vec::new(), Contents::default()));
    }
    let name = header.namespace.clone();
    let mut contents = Contents::default();
    let mut linked = Vec::new();
    for raw in array_of(associations, "resource_type_associations")? {
        let association = association_from(raw, at)?;
        if linked
            .iter()
            .any(|a: &Association| a.name == association.name)
        {
            return Err(DomainError::Conflict(format!(
                "The namespace {name} names resource type {} twice",
                association.name
            )));
        }
        linked.push(association);
    }
    for (property_name, raw) in map_of(properties, "properties")? {
        let (_, definition) = property_from(named(raw, &property_name))?;
        add_named(
            &mut contents.properties,
            "property",
            &name,
            &property_name,
            NamespaceProperty {
                definition,
                created_at: at,
                updated_at: at,
            },
        )?;
    }
    for raw in array_of(objects, "objects")? {
        let object = object_from(raw, at)?;
        let object_name = object.name.clone();
        add_named(&mut contents.objects, "object", &name, &object_name, object)?;
    }
    let tag_names = array_of(tags, "tags")?
        .into_iter()
        .map(tag_from)
        .collect::<DomainResult<Vec<_>>>()?;
    contents.put_tags(&name, &tag_names, false, at)?;
    Ok((header, linked, contents))
}

fn array_of(value: Option<Value>, what: &str) -> DomainResult<Vec<Value>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(DomainError::Invalid(format!("'{what}' must be a list"))),
    }
}

fn map_of(value: Option<Value>, what: &str) -> DomainResult<Map<String, Value>> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(DomainError::Invalid(format!(
            "'{what}' must be an object of definitions by name"
        ))),
    }
}

/// A property kept under `name` in a map, as the body of a property with that name (a
/// `name` of its own, which Glance's schema allows, must at least be a string).
fn named(raw: Value, name: &str) -> Value {
    match raw {
        Value::Object(mut map) if map.get("name").is_none_or(Value::is_string) => {
            map.insert("name".into(), Value::String(name.to_owned()));
            Value::Object(map)
        }
        other => other,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssociationFields {
    name: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    properties_target: Option<String>,
}

/// A resource type association from its body, made at `at`.
pub fn association_from(value: Value, at: DateTime<Utc>) -> DomainResult<Association> {
    let fields: AssociationFields = parse(
        object_body(value, "A resource type association")?,
        "resource type association",
    )?;
    check_name("A resource type's name", &fields.name, MAX_NAME)?;
    check_text("prefix", fields.prefix.as_deref(), MAX_NAME)?;
    check_text(
        "properties_target",
        fields.properties_target.as_deref(),
        MAX_NAME,
    )?;
    Ok(Association {
        name: fields.name,
        prefix: fields.prefix,
        properties_target: fields.properties_target,
        created_at: at,
        updated_at: at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectFields {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    required: Option<Vec<String>>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
}

/// An object from its body, made at `at`.
pub fn object_from(value: Value, at: DateTime<Utc>) -> DomainResult<MetaObject> {
    let fields: ObjectFields = parse(object_body(value, "An object")?, "object")?;
    check_name("An object's name", &fields.name, MAX_NAME)?;
    let mut properties = BTreeMap::new();
    for (name, raw) in fields.properties.unwrap_or_default() {
        let (_, definition) = property_from(named(raw, &name))?;
        properties.insert(name, definition);
    }
    Ok(MetaObject {
        name: fields.name,
        description: fields.description,
        required: fields.required.unwrap_or_default(),
        properties,
        created_at: at,
        updated_at: at,
    })
}

/// A property from its body (with `name`), made at `at`.
pub fn namespace_property_from(
    value: Value,
    at: DateTime<Utc>,
) -> DomainResult<(String, NamespaceProperty)> {
    let map = object_body(value, "A property")?;
    let (name, definition): (String, Property) = property_from(Value::Object(map))?;
    Ok((
        name,
        NamespaceProperty {
            definition,
            created_at: at,
            updated_at: at,
        },
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagFields {
    name: String,
}

/// A tag's name from its body (`{"name": …}`).
pub fn tag_from(value: Value) -> DomainResult<String> {
    let fields: TagFields = parse(object_body(value, "A tag")?, "tag")?;
    Ok(fields.name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got
    use super::*;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn a_namespace_body_brings_its_contents_and_defaults_to_private() {
        let (header, associations, contents) = namespace_from(
            json!({
                "namespace": "OS::Test",
                "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
                "properties": {"cores": {"title": "Cores", "type": "integer"}},
                "objects": [{"name": "Limits", "properties": {"q": {"title": "Q", "type": "number"}}}],
                "tags": [{"name": "fast"}]
            }),
            true,
            at(),
        )
        .unwrap();
        let namespace = header.create("admin-tenant", at());
        assert_eq!(namespace.visibility, NamespaceVisibility::Private);
        assert_eq!(namespace.owner, "admin-tenant");
        assert_eq!(associations[0].prefix.as_deref(), Some("hw_"));
        assert!(contents.properties.contains_key("cores"));
        assert!(contents.objects["Limits"].properties.contains_key("q"));
        assert!(contents.tags.contains_key("fast"));
    }

    #[test]
    fn read_only_fields_are_forbidden_and_unknown_ones_invalid() {
        let read_only = namespace_from(json!({"namespace": "n", "created_at": "x"}), true, at());
        assert!(matches!(read_only, Err(DomainError::Forbidden(_))));
        let null = namespace_from(json!({"namespace": "n", "visibility": null}), true, at());
        assert!(matches!(null, Err(DomainError::Invalid(_))));
        let unknown = namespace_from(json!({"namespace": "n", "colour": "red"}), true, at());
        assert!(matches!(unknown, Err(DomainError::Invalid(_))));
        let nameless = namespace_from(json!({"display_name": "n"}), true, at());
        assert!(matches!(nameless, Err(DomainError::Invalid(_))));
    }

    #[test]
    fn a_replaced_header_keeps_creation_time_owner_and_associations() {
        let (header, _, _) = namespace_from(json!({"namespace": "a"}), false, at()).unwrap();
        let mut current = header.create("t1", at());
        current
            .resource_type_associations
            .push(association_from(json!({"name": "OS::Glance::Image"}), at()).unwrap());
        let later = at() + chrono::Duration::seconds(5);
        let (header, _, _) = namespace_from(
            json!({"namespace": "b", "visibility": "public"}),
            false,
            later,
        )
        .unwrap();
        let replaced = header.replace(&current, later);
        assert_eq!(replaced.namespace, "b");
        assert_eq!(replaced.owner, "t1");
        assert_eq!(replaced.created_at, at());
        assert_eq!(replaced.updated_at, later);
        assert_eq!(replaced.resource_type_associations.len(), 1);
    }
}
