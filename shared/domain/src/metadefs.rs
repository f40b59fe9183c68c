//! Metadata definitions (Glance's "metadefs"): a catalogue of namespaces that describe the
//! properties, objects and tags a resource such as an image may carry, so that tools can
//! offer them with their types, enums and descriptions.
//!
//! A namespace is kept as one record — its header and its contents — and every change is a
//! pure function from one record to the next; the stores compare-and-set whole records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DomainError, DomainResult};
use crate::identity::Caller;

mod catalogue;
mod document;
mod listing;
mod property;

pub use catalogue::{Catalogue, STOCK_OWNER, STOCK_RESOURCE_TYPES, stock_catalogue};
pub use document::{
    NamespaceHeader, association_from, namespace_from, namespace_property_from, object_from,
    tag_from,
};
pub use listing::{
    DEFAULT_LIMIT, MAX_LIMIT, NamespaceQuery, NamespaceSortKey, prefixed,
    property_for_resource_type,
};
pub use property::{Items, Property, PropertyType};

crate::image::name_enum!(
    /// Who may read a namespace.
    NamespaceVisibility, "namespace visibility" {
        /// Everyone.
        Public => "public",
        /// Its owner and administrators.
        Private => "private",
    }
);

/// Longest namespace, object, property, resource type and tag name, display name, prefix
/// and properties target: the lengths of Glance's metadef columns.
pub const MAX_NAME: usize = 80;
/// Longest tag name.
pub const MAX_TAG: usize = 80;
/// Longest namespace description.
pub const MAX_DESCRIPTION: usize = 500;
/// Most bytes a namespace's header and contents take as JSON: a record must fit one
/// DynamoDB item (400 KB) with room to spare; Glance's largest stock namespace takes 20 KB.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// A namespace's header: what lists show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    /// The unique name (`OS::Compute::Hypervisor`).
    pub namespace: String,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What the namespace describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who may read it.
    pub visibility: NamespaceVisibility,
    /// A protected namespace cannot be deleted.
    pub protected: bool,
    /// The owning tenant.
    pub owner: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its header last changed.
    pub updated_at: DateTime<Utc>,
    /// The resource types it applies to.
    #[serde(default)]
    pub resource_type_associations: Vec<Association>,
}

/// A namespace applied to a resource type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    /// The resource type (`OS::Glance::Image`).
    pub name: String,
    /// What property names carry on that resource type (`hw_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Where on the resource the properties go (Cinder's `image` or `volume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_target: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A named group of properties (`CPU Limits`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaObject {
    /// The name, unique in its namespace.
    pub name: String,
    /// What it describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Names of its properties a resource must set.
    #[serde(default)]
    pub required: Vec<String>,
    /// Its properties by name.
    #[serde(default)]
    pub properties: BTreeMap<String, Property>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A property definition with its own times, as a namespace keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceProperty {
    /// The definition.
    pub definition: Property,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A tag a resource may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The tag.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A kind of resource namespaces apply to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceType {
    /// The name (`OS::Glance::Image`).
    pub name: String,
    /// When it was first named.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a namespace holds besides its header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contents {
    /// Objects by name.
    #[serde(default)]
    pub objects: BTreeMap<String, MetaObject>,
    /// Properties by name.
    #[serde(default)]
    pub properties: BTreeMap<String, NamespaceProperty>,
    /// Tags by name.
    #[serde(default)]
    pub tags: BTreeMap<String, Tag>,
}

/// A whole namespace as stored: header, contents and the revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceRecord {
    /// The header.
    pub namespace: Namespace,
    /// Objects, properties and tags.
    pub contents: Contents,
    /// Bumped by each write; writes compare-and-set on it.
    pub revision: u64,
}

impl Namespace {
    /// Whether `caller` may read it: public ones everyone, private ones their owner and
    /// administrators.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        self.visibility == NamespaceVisibility::Public
            || caller.is_admin()
            || self.owner == caller.tenant_id.as_str()
    }

    /// The association with `resource_type`, if any.
    pub fn association(&self, resource_type: &str) -> Option<&Association> {
        self.resource_type_associations
            .iter()
            .find(|a| a.name == resource_type)
    }
}

/// Checks a name of `what` is 1 to `max` characters with no surrounding space.
pub fn check_name(what: &str, name: &str, max: usize) -> DomainResult<()> {
    if name.is_empty() || name.chars().count() > max || crate::identity::has_surrounding_space(name)
    {
        return Err(DomainError::Invalid(format!(
            "{what} must be 1 to {max} characters without leading or trailing spaces"
        )));
    }
    Ok(())
}

/// Checks an optional text of `what` is at most `max` characters.
pub fn check_text(what: &str, text: Option<&str>, max: usize) -> DomainResult<()> {
    match text {
        Some(t) if t.chars().count() > max => Err(DomainError::Invalid(format!(
            "{what} must be at most {max} characters"
        ))),
        _ => Ok(()),
    }
}

/// The refusal for an element of `kind` named `name` missing from namespace `namespace`.
pub fn missing(kind: &str, name: &str, namespace: &str) -> DomainError {
    DomainError::NotFound(format!(
        "Metadata definition {kind} not found: {name} in namespace {namespace}"
    ))
}

fn duplicate(kind: &str, name: &str, namespace: &str) -> DomainError {
    DomainError::Conflict(format!(
        "A metadata definition {kind} with name={name} already exists in namespace={namespace}."
    ))
}

/// Adds `item` under `name`; `Conflict` when the name is taken.
pub fn add_named<T>(
    items: &mut BTreeMap<String, T>,
    kind: &str,
    namespace: &str,
    name: &str,
    item: T,
) -> DomainResult<()> {
    if items.contains_key(name) {
        return Err(duplicate(kind, name, namespace));
    }
    items.insert(name.to_owned(), item);
    Ok(())
}

/// Replaces the item named `old` by `item` named `new` (a rename when they differ);
/// `NotFound` when `old` is absent, `Conflict` when `new` names another item. The replaced
/// item is handed to `keep` first, so the new one can take its creation time.
pub fn replace_named<T>(
    items: &mut BTreeMap<String, T>,
    kind: &str,
    namespace: &str,
    old: &str,
    new: &str,
    keep: impl FnOnce(&T) -> T,
) -> DomainResult<()> {
    let Some(current) = items.get(old) else {
        return Err(missing(kind, old, namespace));
    };
    if old != new && items.contains_key(new) {
        return Err(duplicate(kind, new, namespace));
    }
    let replacement = keep(current);
    items.remove(old);
    items.insert(new.to_owned(), replacement);
    Ok(())
}

/// Removes the item named `name`; `NotFound` when absent.
pub fn remove_named<T>(
    items: &mut BTreeMap<String, T>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> DomainResult<T> {
    items
        .remove(name)
        .ok_or_else(|| missing(kind, name, namespace))
}

/// Refuses a namespace whose header and contents would take more than
/// [`MAX_RECORD_BYTES`] as stored.
pub fn check_record_size(namespace: &Namespace, contents: &Contents) -> DomainResult<()> {
    fn json_len(value: &impl Serialize) -> usize {
        serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
    }
    if json_len(namespace).saturating_add(json_len(contents)) > MAX_RECORD_BYTES {
        return Err(DomainError::QuotaExceeded(format!(
            "The namespace {} would take more than {} KiB of definitions; split it",
            namespace.namespace,
            MAX_RECORD_BYTES / 1024
        )));
    }
    Ok(())
}

impl Contents {
    /// Sets the namespace's tags from `names` created at `at`: added to the existing ones
    /// when `append`, replacing them otherwise. A name given twice, or (when appending) one
    /// already there, is a `Conflict` and changes nothing.
    pub fn put_tags(
        &mut self,
        namespace: &str,
        names: &[String],
        append: bool,
        at: DateTime<Utc>,
    ) -> DomainResult<()> {
        let mut tags = if append {
            self.tags.clone()
        } else {
            BTreeMap::new()
        };
        for name in names {
            check_name("A tag's name", name, MAX_TAG)?;
            add_named(
                &mut tags,
                "tag",
                namespace,
                name,
                Tag {
                    name: name.clone(),
                    created_at: at,
                    updated_at: at,
                },
            )?;
        }
        self.tags = tags;
        Ok(())
    }
}

/// A property definition from a request body: checked, and named by `name`.
pub fn property_from(value: Value) -> DomainResult<(String, Property)> {
    let mut map = match value {
        Value::Object(map) => map,
        _ => {
            return Err(DomainError::Invalid(
                "A property must be a JSON object".into(),
            ));
        }
    };
    let name = match map.remove("name") {
        Some(Value::String(name)) => name,
        Some(_) => {
            return Err(DomainError::Invalid(
                "A property's name must be a string".into(),
            ));
        }
        None => return Err(DomainError::Invalid("A property needs a name".into())),
    };
    check_name("A property's name", &name, MAX_NAME)?;
    let property = Property::from_json(Value::Object(map))?;
    Ok((name, property))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn replacing_tags_drops_the_old_ones_and_appending_keeps_them() {
        let mut contents = Contents::default();
        contents
            .put_tags("ns", &["a".into(), "b".into()], false, at())
            .unwrap();
        contents.put_tags("ns", &["c".into()], true, at()).unwrap();
        assert_eq!(contents.tags.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        contents.put_tags("ns", &["d".into()], false, at()).unwrap();
        assert_eq!(contents.tags.keys().collect::<Vec<_>>(), ["d"]);
    }

    #[test]
    fn a_tag_given_twice_or_appended_again_conflicts_and_changes_nothing() {
        let mut contents = Contents::default();
        contents.put_tags("ns", &["a".into()], false, at()).unwrap();
        let twice = contents.put_tags("ns", &["b".into(), "b".into()], false, at());
        assert!(matches!(twice, Err(DomainError::Conflict(_))));
        let again = contents.put_tags("ns", &["a".into()], true, at());
        assert!(matches!(again, Err(DomainError::Conflict(_))));
        assert_eq!(contents.tags.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn renaming_onto_another_item_conflicts_and_onto_itself_replaces() {
        let mut items: BTreeMap<String, u32> = [("a".into(), 1), ("b".into(), 2)].into();
        let onto_b = replace_named(&mut items, "object", "ns", "a", "b", |_| 9);
        assert!(matches!(onto_b, Err(DomainError::Conflict(_))));
        replace_named(&mut items, "object", "ns", "a", "a", |v| v + 10).unwrap();
        replace_named(&mut items, "object", "ns", "a", "c", |v| v + 10).unwrap();
        assert_eq!(items, [("b".into(), 2), ("c".into(), 21)].into());
        let gone = replace_named(&mut items, "object", "ns", "a", "d", |v| *v);
        assert!(matches!(gone, Err(DomainError::NotFound(_))));
    }

    #[test]
    fn names_are_bounded_and_untrimmed_names_are_refused() {
        assert!(check_name("name", "OS::Glance::Image", MAX_NAME).is_ok());
        assert!(check_name("name", "", MAX_NAME).is_err());
        assert!(check_name("name", " a", MAX_NAME).is_err());
        assert!(check_name("name", "a\u{85}", MAX_NAME).is_err());
        assert!(check_name("name", "\u{feff}a", MAX_NAME).is_err());
        assert!(check_name("name", &"x".repeat(81), MAX_NAME).is_err());
        assert!(check_name("name", &"é".repeat(80), MAX_NAME).is_ok());
    }

    #[test]
    fn a_property_body_needs_a_name() {
        let nameless = property_from(serde_json::json!({"title": "T", "type": "string"}));
        assert!(matches!(nameless, Err(DomainError::Invalid(_))));
        let (name, _) =
            property_from(serde_json::json!({"name": "p", "title": "T", "type": "string"}))
                .unwrap();
        assert_eq!(name, "p");
    }
}
