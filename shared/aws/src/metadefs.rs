//! Metadata definitions in DynamoDB. Every namespace is one item of the `METADEF_NAMESPACES`
//! partition, sorted by name, holding its header and its contents as JSON and a revision
//! each write is conditioned on; a rename deletes and puts in one transaction. Resource
//! types are the items of `METADEF_RESOURCE_TYPES`. Lists are Queries of one partition and
//! read only the `header` attribute.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use cloud_images_domain::metadefs::{Contents, Namespace, NamespaceRecord, ResourceType};
use cloud_images_domain::ports::MetadefRepository;
use cloud_images_domain::{DomainError, DomainResult};

use crate::dynamo::{
    Item, PK, SK, building, condition_failed, failed, get_item, get_n, get_s, get_time,
    is_cancelled, n, n_u64, s,
};

const NAMESPACES: &str = "METADEF_NAMESPACES";
const RESOURCE_TYPES: &str = "METADEF_RESOURCE_TYPES";
const STATE: &str = "METADEF_STATE";
const STOCK_LOADED: &str = "stock_catalogue_loaded";

/// [`MetadefRepository`] over the single table.
pub struct DynamoMetadefRepository {
    client: Client,
    table: String,
}

fn json<T: serde::Serialize>(value: &T) -> DomainResult<AttributeValue> {
    serde_json::to_string(value)
        .map(s)
        .map_err(|e| DomainError::unavailable("writing a metadef record", e))
}

fn parsed<T: for<'de> serde::Deserialize<'de>>(item: &Item, name: &str) -> DomainResult<T> {
    serde_json::from_str(&get_s(item, name)?)
        .map_err(|e| DomainError::unavailable("reading a metadef record", e))
}

fn stale(name: &str) -> DomainError {
    DomainError::Conflict(format!(
        "the namespace {name} changed while this change was made"
    ))
}

fn namespace_item(namespace: &Namespace, contents: &Contents, revision: u64) -> DomainResult<Item> {
    Ok(Item::from([
        (PK.to_owned(), s(NAMESPACES)),
        (SK.to_owned(), s(namespace.namespace.clone())),
        ("header".to_owned(), json(namespace)?),
        ("contents".to_owned(), json(contents)?),
        ("revision".to_owned(), n_u64(revision)),
    ]))
}

impl DynamoMetadefRepository {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Every item of `partition` in sort-key order, only the attributes `projection` names.
    async fn partition(&self, partition: &str, projection: &str) -> DomainResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(partition))
                .projection_expression(projection)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failed("listing metadefs", e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    fn expected_revision(current: &NamespaceRecord) -> (String, AttributeValue) {
        (current.namespace.namespace.clone(), n_u64(current.revision))
    }
}

#[async_trait]
impl MetadefRepository for DynamoMetadefRepository {
    async fn namespaces(&self) -> DomainResult<Vec<Namespace>> {
        self.partition(NAMESPACES, "header")
            .await?
            .iter()
            .map(|item| parsed(item, "header"))
            .collect()
    }

    async fn namespace(&self, name: &str) -> DomainResult<Option<NamespaceRecord>> {
        let Some(item) = get_item(
            &self.client,
            &self.table,
            NAMESPACES.into(),
            name.into(),
            true,
        )
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(NamespaceRecord {
            namespace: parsed(&item, "header")?,
            contents: parsed(&item, "contents")?,
            revision: u64::try_from(get_n(&item, "revision")?).unwrap_or(0),
        }))
    }

    async fn insert_namespace(
        &self,
        namespace: &Namespace,
        contents: &Contents,
    ) -> DomainResult<()> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(namespace_item(namespace, contents, 1)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(DomainError::Conflict(format!(
                "A metadata definition namespace with name={} already exists.",
                namespace.namespace
            ))),
            Err(e) => Err(failed("creating a metadef namespace", e)),
        }
    }

    async fn replace_namespace(
        &self,
        current: &NamespaceRecord,
        namespace: &Namespace,
        contents: &Contents,
    ) -> DomainResult<()> {
        let (old, expected) = Self::expected_revision(current);
        let item = namespace_item(namespace, contents, current.revision + 1)?;
        if old == namespace.namespace {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("revision = :expected")
                .expression_attribute_values(":expected", expected)
                .send()
                .await;
            return match put {
                Ok(_) => Ok(()),
                Err(e) if condition_failed(&e) => Err(stale(&old)),
                Err(e) => Err(failed("changing a metadef namespace", e)),
            };
        }
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(NAMESPACES))
            .key(SK, s(old.clone()))
            .condition_expression("revision = :expected")
            .expression_attribute_values(":expected", expected)
            .build()
            .map_err(building)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(building)?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_cancelled(&e) => Err(stale(&old)),
            Err(e) => Err(failed("renaming a metadef namespace", e)),
        }
    }

    async fn delete_namespace(&self, current: &NamespaceRecord) -> DomainResult<()> {
        let (name, expected) = Self::expected_revision(current);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(NAMESPACES))
            .key(SK, s(name.clone()))
            .condition_expression("revision = :expected")
            .expression_attribute_values(":expected", expected)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(stale(&name)),
            Err(e) => Err(failed("deleting a metadef namespace", e)),
        }
    }

    async fn resource_types(&self) -> DomainResult<Vec<ResourceType>> {
        self.partition(RESOURCE_TYPES, "sk, created_at, updated_at")
            .await?
            .iter()
            .map(|item| {
                Ok(ResourceType {
                    name: get_s(item, SK)?,
                    created_at: get_time(item, "created_at")?,
                    updated_at: get_time(item, "updated_at")?,
                })
            })
            .collect()
    }

    async fn add_resource_types(&self, types: &[ResourceType]) -> DomainResult<()> {
        for resource_type in types {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PK, s(RESOURCE_TYPES))
                .item(SK, s(resource_type.name.clone()))
                .item("created_at", n(resource_type.created_at.timestamp()))
                .item("updated_at", n(resource_type.updated_at.timestamp()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match put {
                Ok(_) => {}
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(failed("adding a resource type", e)),
            }
        }
        Ok(())
    }

    async fn stock_loaded(&self) -> DomainResult<bool> {
        Ok(get_item(
            &self.client,
            &self.table,
            STATE.into(),
            STOCK_LOADED.into(),
            true,
        )
        .await?
        .is_some())
    }

    async fn mark_stock_loaded(&self) -> DomainResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(STATE))
            .item(SK, s(STOCK_LOADED))
            .send()
            .await
            .map_err(|e| failed("recording the stock metadefs", e))?;
        Ok(())
    }
}
