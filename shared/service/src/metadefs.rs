//! The metadata definitions catalogue (Glance's metadefs): everyone reads the public
//! namespaces and their own private ones; only administrators change anything, as in
//! Glance's default policy. A namespace the caller may not read is "not found" on every
//! route, so its existence does not leak.

use std::sync::Arc;

use cloud_images_domain::identity::Caller;
use cloud_images_domain::metadefs::{
    self, Association, Contents, MetaObject, Namespace, NamespaceProperty, NamespaceQuery,
    NamespaceRecord, ResourceType, Tag,
};
use cloud_images_domain::ports::MetadefRepository;
use cloud_images_domain::{DomainError, DomainResult};
use serde_json::Value;

use crate::access::{Contention, now};

fn namespace_not_found(name: &str) -> DomainError {
    DomainError::NotFound(format!(
        "Metadata definition namespace={name} was not found."
    ))
}

fn require_admin(caller: &Caller) -> DomainResult<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(DomainError::Forbidden(
            "Only administrators may change metadata definitions".into(),
        ))
    }
}

fn require_unprotected(namespace: &Namespace) -> DomainResult<()> {
    if namespace.protected {
        Err(DomainError::Forbidden(format!(
            "Metadata definition namespace {} is protected and cannot be deleted.",
            namespace.namespace
        )))
    } else {
        Ok(())
    }
}

/// How a tag list is ordered and paged (Glance: newest first, no default page size).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagQuery {
    /// At most this many tags.
    pub limit: Option<usize>,
    /// Tags after the tag of this name.
    pub marker: Option<String>,
    /// Sort by name instead of creation time.
    pub by_name: bool,
    /// Ascending instead of Glance's default descending order.
    pub ascending: bool,
}

/// The metadefs use cases (the `metadefs` route group).
#[derive(Clone)]
pub struct MetadefService {
    repository: Arc<dyn MetadefRepository>,
}

impl MetadefService {
    /// Builds the service over its store.
    pub fn new(repository: Arc<dyn MetadefRepository>) -> Self {
        Self { repository }
    }

    /// Loads the stock catalogue into a store that never had it; later starts (and a store
    /// an operator has since changed) are left alone.
    pub async fn load_stock_catalogue(&self) -> DomainResult<()> {
        if self.repository.stock_loaded().await? {
            return Ok(());
        }
        let catalogue = metadefs::stock_catalogue(now())?;
        self.repository
            .add_resource_types(&catalogue.resource_types)
            .await?;
        for (namespace, contents) in &catalogue.namespaces {
            match self.repository.insert_namespace(namespace, contents).await {
                Ok(()) | Err(DomainError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.repository.mark_stock_loaded().await
    }

    /// A namespace the caller may read.
    pub async fn namespace(&self, caller: &Caller, name: &str) -> DomainResult<NamespaceRecord> {
        self.repository
            .namespace(name)
            .await?
            .filter(|record| record.namespace.visible_to(caller))
            .ok_or_else(|| namespace_not_found(name))
    }

    /// One page of the namespaces the caller may read, and whether more follow.
    pub async fn list_namespaces(
        &self,
        caller: &Caller,
        query: &NamespaceQuery,
    ) -> DomainResult<(Vec<Namespace>, bool)> {
        query.page(self.repository.namespaces().await?, caller)
    }

    /// Creates a namespace with whatever it brings inline (associations, properties,
    /// objects, tags).
    pub async fn create_namespace(
        &self,
        caller: &Caller,
        body: Value,
    ) -> DomainResult<NamespaceRecord> {
        require_admin(caller)?;
        let at = now();
        let (header, associations, contents) = metadefs::namespace_from(body, true, at)?;
        let mut namespace = header.create(caller.tenant_id.as_str(), at);
        self.add_resource_types(&associations).await?;
        namespace.resource_type_associations = associations;
        metadefs::check_record_size(&namespace, &contents)?;
        self.repository
            .insert_namespace(&namespace, &contents)
            .await?;
        Ok(NamespaceRecord {
            namespace,
            contents,
            revision: 1,
        })
    }

    async fn add_resource_types(&self, associations: &[Association]) -> DomainResult<()> {
        let types: Vec<ResourceType> = associations
            .iter()
            .map(|a| ResourceType {
                name: a.name.clone(),
                created_at: a.created_at,
                updated_at: a.updated_at,
            })
            .collect();
        if types.is_empty() {
            return Ok(());
        }
        self.repository.add_resource_types(&types).await
    }

    /// Applies `change` to the namespace `name` (which the caller must be able to read and,
    /// being an administrator, write) and stores the result, again on a fresh copy whenever
    /// another writer got there first.
    async fn change<T>(
        &self,
        caller: &Caller,
        name: &str,
        change: impl Fn(&mut Namespace, &mut Contents) -> DomainResult<T>,
    ) -> DomainResult<T> {
        let mut contention = Contention::begin();
        loop {
            let current = self.namespace(caller, name).await?;
            require_admin(caller)?;
            let mut namespace = current.namespace.clone();
            let mut contents = current.contents.clone();
            let out = change(&mut namespace, &mut contents)?;
            metadefs::check_record_size(&namespace, &contents)?;
            if namespace.namespace != name
                && self
                    .repository
                    .namespace(&namespace.namespace)
                    .await?
                    .is_some()
            {
                return Err(DomainError::Conflict(format!(
                    "A metadata definition namespace with name={} already exists.",
                    namespace.namespace
                )));
            }
            match self
                .repository
                .replace_namespace(&current, &namespace, &contents)
                .await
            {
                Ok(()) => return Ok(out),
                Err(DomainError::Conflict(reason)) => {
                    if !contention.pause().await {
                        return Err(DomainError::Conflict(reason));
                    }
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Replaces a namespace's header (Glance's PUT: fields left out take their defaults);
    /// its contents and associations stay.
    pub async fn update_namespace(
        &self,
        caller: &Caller,
        name: &str,
        body: Value,
    ) -> DomainResult<Namespace> {
        let at = now();
        let (header, _, _) = metadefs::namespace_from(body, false, at)?;
        self.change(caller, name, |namespace, _| {
            *namespace = header.clone().replace(namespace, at);
            Ok(namespace.clone())
        })
        .await
    }

    /// Deletes an unprotected namespace with everything in it.
    pub async fn delete_namespace(&self, caller: &Caller, name: &str) -> DomainResult<()> {
        let mut contention = Contention::begin();
        loop {
            let current = self.namespace(caller, name).await?;
            require_admin(caller)?;
            require_unprotected(&current.namespace)?;
            match self.repository.delete_namespace(&current).await {
                Ok(()) => return Ok(()),
                Err(DomainError::Conflict(reason)) => {
                    if !contention.pause().await {
                        return Err(DomainError::Conflict(reason));
                    }
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Empties one kind of an unprotected namespace's contents.
    pub async fn clear(&self, caller: &Caller, name: &str, kind: ContentKind) -> DomainResult<()> {
        self.change(caller, name, |namespace, contents| {
            require_unprotected(namespace)?;
            match kind {
                ContentKind::Objects => contents.objects.clear(),
                ContentKind::Properties => contents.properties.clear(),
                ContentKind::Tags => contents.tags.clear(),
            }
            Ok(())
        })
        .await
    }

    // ---- objects ----

    /// A namespace's objects, oldest first.
    pub async fn objects(&self, caller: &Caller, name: &str) -> DomainResult<Vec<MetaObject>> {
        let record = self.namespace(caller, name).await?;
        let mut objects: Vec<MetaObject> = record.contents.objects.into_values().collect();
        objects.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
        Ok(objects)
    }

    /// One object.
    pub async fn object(
        &self,
        caller: &Caller,
        name: &str,
        object: &str,
    ) -> DomainResult<MetaObject> {
        let record = self.namespace(caller, name).await?;
        record
            .contents
            .objects
            .get(object)
            .cloned()
            .ok_or_else(|| metadefs::missing("object", object, name))
    }

    /// Adds an object.
    pub async fn create_object(
        &self,
        caller: &Caller,
        name: &str,
        body: Value,
    ) -> DomainResult<MetaObject> {
        let object = metadefs::object_from(body, now())?;
        self.change(caller, name, |_, contents| {
            let key = object.name.clone();
            metadefs::add_named(&mut contents.objects, "object", name, &key, object.clone())?;
            Ok(object.clone())
        })
        .await
    }

    /// Replaces (and may rename) an object; it keeps its creation time.
    pub async fn update_object(
        &self,
        caller: &Caller,
        name: &str,
        object: &str,
        body: Value,
    ) -> DomainResult<MetaObject> {
        let replacement = metadefs::object_from(body, now())?;
        self.change(caller, name, |_, contents| {
            let mut kept = None;
            metadefs::replace_named(
                &mut contents.objects,
                "object",
                name,
                object,
                &replacement.name,
                |current| {
                    let next = MetaObject {
                        created_at: current.created_at,
                        ..replacement.clone()
                    };
                    kept = Some(next.clone());
                    next
                },
            )?;
            kept.ok_or_else(|| metadefs::missing("object", object, name))
        })
        .await
    }

    /// Deletes an object of an unprotected namespace.
    pub async fn delete_object(
        &self,
        caller: &Caller,
        name: &str,
        object: &str,
    ) -> DomainResult<()> {
        self.change(caller, name, |namespace, contents| {
            require_unprotected(namespace)?;
            metadefs::remove_named(&mut contents.objects, "object", name, object).map(drop)
        })
        .await
    }

    // ---- properties ----

    /// A namespace's properties by name.
    pub async fn properties(
        &self,
        caller: &Caller,
        name: &str,
    ) -> DomainResult<std::collections::BTreeMap<String, NamespaceProperty>> {
        Ok(self.namespace(caller, name).await?.contents.properties)
    }

    /// One property: by its name, or by its prefixed name for `resource_type`. The name
    /// returned is the stored one.
    pub async fn property(
        &self,
        caller: &Caller,
        name: &str,
        property: &str,
        resource_type: Option<&str>,
    ) -> DomainResult<(String, NamespaceProperty)> {
        let record = self.namespace(caller, name).await?;
        let stored = match resource_type {
            Some(resource_type) => {
                metadefs::property_for_resource_type(
                    &record.namespace,
                    &record.contents,
                    resource_type,
                    property,
                )?
                .0
            }
            None => property.to_owned(),
        };
        let found = record
            .contents
            .properties
            .get(&stored)
            .cloned()
            .ok_or_else(|| metadefs::missing("property", &stored, name))?;
        Ok((stored, found))
    }

    /// Adds a property.
    pub async fn create_property(
        &self,
        caller: &Caller,
        name: &str,
        body: Value,
    ) -> DomainResult<(String, NamespaceProperty)> {
        let (key, property) = metadefs::namespace_property_from(body, now())?;
        self.change(caller, name, |_, contents| {
            metadefs::add_named(
                &mut contents.properties,
                "property",
                name,
                &key,
                property.clone(),
            )?;
            Ok((key.clone(), property.clone()))
        })
        .await
    }

    /// Replaces (and may rename) a property; it keeps its creation time.
    pub async fn update_property(
        &self,
        caller: &Caller,
        name: &str,
        property: &str,
        body: Value,
    ) -> DomainResult<(String, NamespaceProperty)> {
        let (key, replacement) = metadefs::namespace_property_from(body, now())?;
        self.change(caller, name, |_, contents| {
            let mut kept = None;
            metadefs::replace_named(
                &mut contents.properties,
                "property",
                name,
                property,
                &key,
                |current| {
                    let next = NamespaceProperty {
                        created_at: current.created_at,
                        ..replacement.clone()
                    };
                    kept = Some(next.clone());
                    next
                },
            )?;
            let kept = kept.ok_or_else(|| metadefs::missing("property", property, name))?;
            Ok((key.clone(), kept))
        })
        .await
    }

    /// Deletes a property of an unprotected namespace.
    pub async fn delete_property(
        &self,
        caller: &Caller,
        name: &str,
        property: &str,
    ) -> DomainResult<()> {
        self.change(caller, name, |namespace, contents| {
            require_unprotected(namespace)?;
            metadefs::remove_named(&mut contents.properties, "property", name, property).map(drop)
        })
        .await
    }

    // ---- tags ----

    /// A page of a namespace's tags.
    pub async fn tags(
        &self,
        caller: &Caller,
        name: &str,
        query: &TagQuery,
    ) -> DomainResult<Vec<Tag>> {
        let record = self.namespace(caller, name).await?;
        let mut tags: Vec<Tag> = record.contents.tags.into_values().collect();
        tags.sort_by(|a, b| {
            let order = if query.by_name {
                a.name.cmp(&b.name)
            } else {
                a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name))
            };
            if query.ascending {
                order
            } else {
                order.reverse()
            }
        });
        if let Some(marker) = &query.marker {
            let at = tags
                .iter()
                .position(|t| &t.name == marker)
                .ok_or_else(|| metadefs::missing("tag", marker, name))?;
            tags.drain(..=at);
        }
        if let Some(limit) = query.limit {
            tags.truncate(limit);
        }
        Ok(tags)
    }

    /// One tag.
    pub async fn tag(&self, caller: &Caller, name: &str, tag: &str) -> DomainResult<Tag> {
        let record = self.namespace(caller, name).await?;
        record
            .contents
            .tags
            .get(tag)
            .cloned()
            .ok_or_else(|| metadefs::missing("tag", tag, name))
    }

    /// Adds one tag.
    pub async fn create_tag(&self, caller: &Caller, name: &str, tag: &str) -> DomainResult<Tag> {
        metadefs::check_name("A tag's name", tag, metadefs::MAX_TAG)?;
        let at = now();
        self.change(caller, name, |_, contents| {
            let created = Tag {
                name: tag.to_owned(),
                created_at: at,
                updated_at: at,
            };
            metadefs::add_named(&mut contents.tags, "tag", name, tag, created.clone())?;
            Ok(created)
        })
        .await
    }

    /// Sets many tags at once: replacing the namespace's tags, or appended to them.
    pub async fn create_tags(
        &self,
        caller: &Caller,
        name: &str,
        names: &[String],
        append: bool,
    ) -> DomainResult<Vec<String>> {
        let at = now();
        self.change(caller, name, |_, contents| {
            // Glance leaves the tags alone when the list is empty, whatever `append` says.
            if !names.is_empty() {
                contents.put_tags(name, names, append, at)?;
            }
            Ok(names.to_vec())
        })
        .await
    }

    /// Renames a tag; it keeps its creation time.
    pub async fn update_tag(
        &self,
        caller: &Caller,
        name: &str,
        tag: &str,
        body: Value,
    ) -> DomainResult<Tag> {
        let new_name = metadefs::tag_from(body)?;
        metadefs::check_name("A tag's name", &new_name, metadefs::MAX_TAG)?;
        let at = now();
        self.change(caller, name, |_, contents| {
            let mut kept = None;
            metadefs::replace_named(&mut contents.tags, "tag", name, tag, &new_name, |current| {
                let next = Tag {
                    name: new_name.clone(),
                    created_at: current.created_at,
                    updated_at: at,
                };
                kept = Some(next.clone());
                next
            })?;
            kept.ok_or_else(|| metadefs::missing("tag", tag, name))
        })
        .await
    }

    /// Deletes a tag of an unprotected namespace.
    pub async fn delete_tag(&self, caller: &Caller, name: &str, tag: &str) -> DomainResult<()> {
        self.change(caller, name, |namespace, contents| {
            require_unprotected(namespace)?;
            metadefs::remove_named(&mut contents.tags, "tag", name, tag).map(drop)
        })
        .await
    }

    // ---- resource types ----

    /// Every resource type.
    pub async fn resource_types(&self) -> DomainResult<Vec<ResourceType>> {
        self.repository.resource_types().await
    }

    /// A namespace's resource type associations.
    pub async fn associations(
        &self,
        caller: &Caller,
        name: &str,
    ) -> DomainResult<Vec<Association>> {
        Ok(self
            .namespace(caller, name)
            .await?
            .namespace
            .resource_type_associations)
    }

    /// Associates a namespace with a resource type, naming the type if it is new.
    pub async fn associate(
        &self,
        caller: &Caller,
        name: &str,
        body: Value,
    ) -> DomainResult<Association> {
        let association = metadefs::association_from(body, now())?;
        // Only an administrator may name a new type, even for a namespace that then fails.
        self.namespace(caller, name).await?;
        require_admin(caller)?;
        self.add_resource_types(std::slice::from_ref(&association))
            .await?;
        self.change(caller, name, |namespace, _| {
            if namespace.association(&association.name).is_some() {
                return Err(DomainError::Conflict(format!(
                    "The namespace {name} is already associated with resource type {}",
                    association.name
                )));
            }
            namespace
                .resource_type_associations
                .push(association.clone());
            Ok(association.clone())
        })
        .await
    }

    /// Removes a namespace's association with a resource type (the type stays).
    pub async fn dissociate(
        &self,
        caller: &Caller,
        name: &str,
        resource_type: &str,
    ) -> DomainResult<()> {
        self.change(caller, name, |namespace, _| {
            require_unprotected(namespace)?;
            let before = namespace.resource_type_associations.len();
            namespace
                .resource_type_associations
                .retain(|a| a.name != resource_type);
            if namespace.resource_type_associations.len() == before {
                return Err(DomainError::NotFound(format!(
                    "Failed to find resource type {resource_type} to delete"
                )));
            }
            Ok(())
        })
        .await
    }
}

/// One kind of a namespace's contents, for emptying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// Its objects.
    Objects,
    /// Its properties.
    Properties,
    /// Its tags.
    Tags,
}
