//! Which namespaces a list page holds, and how a namespace reads for one resource type.

use std::cmp::Ordering;

use crate::error::{DomainError, DomainResult};
use crate::identity::Caller;

use super::{Contents, Namespace, NamespaceVisibility, Property, missing};

/// Glance's default page size for namespace lists.
pub const DEFAULT_LIMIT: usize = 25;
/// The largest page a list returns, whatever the `limit`.
pub const MAX_LIMIT: usize = 1000;

crate::image::name_enum!(
    /// What a namespace list is sorted by.
    NamespaceSortKey, "namespace sort key" {
        /// The name.
        Namespace => "namespace",
        /// Creation time (Glance's default).
        CreatedAt => "created_at",
        /// Last change.
        UpdatedAt => "updated_at",
    }
);

/// A namespace list request: filters, order and page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceQuery {
    /// At most this many namespaces (capped at [`MAX_LIMIT`]).
    pub limit: usize,
    /// The page starts after the namespace of this name.
    pub marker: Option<String>,
    /// The order.
    pub sort_key: NamespaceSortKey,
    /// Descending (Glance's default) or ascending.
    pub descending: bool,
    /// Only namespaces of this visibility.
    pub visibility: Option<NamespaceVisibility>,
    /// Only namespaces associated with any of these resource types (none: no filter).
    pub resource_types: Vec<String>,
}

impl Default for NamespaceQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            marker: None,
            sort_key: NamespaceSortKey::CreatedAt,
            descending: true,
            visibility: None,
            resource_types: Vec::new(),
        }
    }
}

fn compare(key: NamespaceSortKey, a: &Namespace, b: &Namespace) -> Ordering {
    let primary = match key {
        NamespaceSortKey::Namespace => Ordering::Equal,
        NamespaceSortKey::CreatedAt => a.created_at.cmp(&b.created_at),
        NamespaceSortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
    };
    // Names are unique: they make the order total, so a marker finds one place.
    primary.then_with(|| a.namespace.cmp(&b.namespace))
}

impl NamespaceQuery {
    fn admits(&self, namespace: &Namespace, caller: &Caller) -> bool {
        namespace.visible_to(caller)
            && self.visibility.is_none_or(|v| namespace.visibility == v)
            && (self.resource_types.is_empty()
                || namespace
                    .resource_type_associations
                    .iter()
                    .any(|a| self.resource_types.contains(&a.name)))
    }

    /// The page of `all` this query selects for `caller`, and whether more follow. A
    /// marker the caller cannot see is `NotFound`, as an unknown one is.
    pub fn page(
        &self,
        all: Vec<Namespace>,
        caller: &Caller,
    ) -> DomainResult<(Vec<Namespace>, bool)> {
        let marker = match &self.marker {
            Some(name) => Some(
                all.iter()
                    .find(|n| &n.namespace == name && n.visible_to(caller))
                    .cloned()
                    .ok_or_else(|| {
                        DomainError::NotFound(format!(
                            "Metadata definition namespace={name} was not found."
                        ))
                    })?,
            ),
            None => None,
        };
        let ordered = |a: &Namespace, b: &Namespace| {
            let order = compare(self.sort_key, a, b);
            if self.descending {
                order.reverse()
            } else {
                order
            }
        };
        let mut selected: Vec<Namespace> = all
            .into_iter()
            .filter(|n| self.admits(n, caller))
            .filter(|n| {
                marker
                    .as_ref()
                    .is_none_or(|m| ordered(n, m) == Ordering::Greater)
            })
            .collect();
        selected.sort_by(ordered);
        let limit = self.limit.min(MAX_LIMIT);
        let more = selected.len() > limit;
        selected.truncate(limit);
        Ok((selected, more))
    }
}

/// `contents` as they read for a resource type whose association has `prefix`: every
/// property name, object property name and object `required` entry prefixed.
pub fn prefixed(contents: &Contents, prefix: &str) -> Contents {
    let name = |n: &String| format!("{prefix}{n}");
    let mut out = contents.clone();
    out.properties = contents
        .properties
        .iter()
        .map(|(n, p)| (name(n), p.clone()))
        .collect();
    for object in out.objects.values_mut() {
        object.properties = object
            .properties
            .iter()
            .map(|(n, p)| (name(n), p.clone()))
            .collect();
        object.required = object.required.iter().map(name).collect();
    }
    out
}

/// The property a resource type's prefixed name names in `namespace`: the name without the
/// association's prefix, and its definition. `NotFound` when the namespace is not
/// associated with the type, the name lacks the prefix, or no such property exists.
pub fn property_for_resource_type<'a>(
    namespace: &Namespace,
    contents: &'a Contents,
    resource_type: &str,
    name: &str,
) -> DomainResult<(String, &'a Property)> {
    let association = namespace.association(resource_type).ok_or_else(|| {
        DomainError::NotFound(format!(
            "The namespace {} is not associated with resource type {resource_type}",
            namespace.namespace
        ))
    })?;
    let prefix = association.prefix.as_deref().unwrap_or("");
    let bare = name
        .strip_prefix(prefix)
        .filter(|_| !prefix.is_empty())
        .ok_or_else(|| {
            DomainError::NotFound(format!(
                "Property {name} does not start with the expected resource type association prefix of '{prefix}'."
            ))
        })?;
    let property = contents
        .properties
        .get(bare)
        .ok_or_else(|| missing("property", bare, &namespace.namespace))?;
    Ok((bare.to_owned(), &property.definition))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got
    use super::*;
    use crate::identity::{Role, TenantId, UserId};
    use chrono::{DateTime, Utc};

    fn caller(tenant: &str, role: Role) -> Caller {
        Caller {
            tenant_id: TenantId::from_trusted(tenant),
            tenant_name: tenant.into(),
            user_id: UserId::from_trusted("u"),
            user_name: "u".into(),
            roles: vec![role],
            request_id: None,
        }
    }

    fn namespace(
        name: &str,
        owner: &str,
        visibility: NamespaceVisibility,
        second: i64,
    ) -> Namespace {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000 + second, 0).unwrap();
        Namespace {
            namespace: name.into(),
            display_name: None,
            description: None,
            visibility,
            protected: false,
            owner: owner.into(),
            created_at: at,
            updated_at: at,
            resource_type_associations: Vec::new(),
        }
    }

    fn names(page: &[Namespace]) -> Vec<&str> {
        page.iter().map(|n| n.namespace.as_str()).collect()
    }

    #[test]
    fn the_default_list_is_newest_first_and_hides_other_tenants_private_namespaces() {
        use NamespaceVisibility::{Private, Public};
        let all = vec![
            namespace("a", "t1", Public, 1),
            namespace("b", "t2", Private, 2),
            namespace("c", "t1", Private, 3),
        ];
        let query = NamespaceQuery::default();
        let (page, more) = query
            .page(all.clone(), &caller("t1", Role::Member))
            .unwrap();
        assert_eq!(names(&page), ["c", "a"]);
        assert!(!more);
        let (page, _) = query.page(all, &caller("t3", Role::Admin)).unwrap();
        assert_eq!(names(&page), ["c", "b", "a"]);
    }

    #[test]
    fn pages_follow_the_marker_and_a_hidden_marker_is_not_found() {
        use NamespaceVisibility::{Private, Public};
        let all: Vec<Namespace> = (0..5)
            .map(|i| namespace(&format!("n{i}"), "t1", Public, 10))
            .chain([namespace("hidden", "t2", Private, 10)])
            .collect();
        let mut query = NamespaceQuery {
            limit: 2,
            sort_key: NamespaceSortKey::Namespace,
            descending: false,
            ..NamespaceQuery::default()
        };
        let reader = caller("t1", Role::Reader);
        let mut seen = Vec::new();
        loop {
            let (page, more) = query.page(all.clone(), &reader).unwrap();
            seen.extend(names(&page).into_iter().map(str::to_owned));
            if !more {
                break;
            }
            query.marker = page.last().map(|n| n.namespace.clone());
        }
        assert_eq!(seen, ["n0", "n1", "n2", "n3", "n4"]);
        query.marker = Some("hidden".into());
        assert!(matches!(
            query.page(all, &reader),
            Err(DomainError::NotFound(_))
        ));
    }

    #[test]
    fn resource_type_filters_match_any_named_type() {
        use super::super::Association;
        let mut image = namespace("img", "t1", NamespaceVisibility::Public, 1);
        let at = image.created_at;
        image.resource_type_associations.push(Association {
            name: "OS::Glance::Image".into(),
            prefix: None,
            properties_target: None,
            created_at: at,
            updated_at: at,
        });
        let other = namespace("other", "t1", NamespaceVisibility::Public, 1);
        let query = NamespaceQuery {
            resource_types: vec!["OS::Nova::Flavor".into(), "OS::Glance::Image".into()],
            ..NamespaceQuery::default()
        };
        let (page, _) = query
            .page(vec![image, other], &caller("t1", Role::Member))
            .unwrap();
        assert_eq!(names(&page), ["img"]);
    }
}
