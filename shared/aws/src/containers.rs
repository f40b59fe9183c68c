//! Container and object records in DynamoDB. A tenant's containers are one partition, each
//! container's objects another, both sorted by name (DynamoDB compares strings as UTF-8
//! bytes, the order Swift lists in); a usage item per tenant holds the quota's counters.
//! Every record write moves the counters in its own transaction, conditioned on the
//! record it replaces, so concurrent writers never lose a count.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use cloud_images_domain::containers::{
    AccountUsage, ContainerRecord, ObjectRecord, no_container, not_empty, quota_full,
};
use cloud_images_domain::ports::ContainerRepository;
use cloud_images_domain::task::ObjectPath;
use cloud_images_domain::{DomainError, DomainResult};

use crate::dynamo::{
    Item, PK, SK, building, failed, get_item, get_n, get_opt_s, get_s, is_cancelled, n, n_u64, s,
};

/// [`ContainerRepository`] over the single table.
pub struct DynamoContainerRepository {
    client: Client,
    table: String,
}

/// Attempts at a record write that loses races to other writers of the same name.
const ATTEMPTS: usize = 8;

fn containers_partition(tenant: &str) -> String {
    format!("CONTAINERS#{tenant}")
}

fn usage_partition(tenant: &str) -> String {
    format!("CONTAINER_USAGE#{tenant}")
}

const USAGE_KEY: &str = "usage";

/// Container names hold no `#`, so tenant and container cannot be read two ways.
fn objects_partition(tenant: &str, container: &str) -> String {
    format!("OBJECTS#{tenant}#{container}")
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(item: &Item, name: &str) -> u64 {
    get_n(item, name).map_or(0, |v| u64::try_from(v).unwrap_or(0))
}

fn time(item: &Item, name: &str) -> DomainResult<DateTime<Utc>> {
    let raw = get_n(item, name)?;
    DateTime::from_timestamp_micros(raw)
        .ok_or_else(|| DomainError::unavailable("reading a record", format!("time {raw}")))
}

fn container_from(item: &Item) -> DomainResult<ContainerRecord> {
    Ok(ContainerRecord {
        name: get_s(item, SK)?,
        objects: count(item, "objects"),
        bytes: count(item, "bytes"),
        created_at: time(item, "created_at")?,
        link: get_opt_s(item, "link")
            .map(|raw| {
                serde_json::from_str(&raw)
                    .map_err(|e| DomainError::unavailable("reading a container link", e))
            })
            .transpose()?,
    })
}

fn object_item(tenant: &str, container: &str, record: &ObjectRecord, revision: &str) -> Item {
    let mut item = Item::from([
        (PK.to_owned(), s(objects_partition(tenant, container))),
        (SK.to_owned(), s(record.name.clone())),
        ("size".to_owned(), n_u64(record.size)),
        ("etag".to_owned(), s(record.etag.clone())),
        ("content_type".to_owned(), s(record.content_type.clone())),
        (
            "last_modified".to_owned(),
            n(record.last_modified.timestamp_micros()),
        ),
        ("revision".to_owned(), s(revision)),
    ]);
    if let Some(manifest) = &record.manifest {
        item.insert("manifest".to_owned(), s(manifest.clone()));
    }
    item
}

fn object_from(item: &Item) -> DomainResult<ObjectRecord> {
    Ok(ObjectRecord {
        name: get_s(item, SK)?,
        size: count(item, "size"),
        etag: get_s(item, "etag")?,
        content_type: get_s(item, "content_type")?,
        last_modified: time(item, "last_modified")?,
        manifest: get_opt_s(item, "manifest"),
    })
}

/// A record as read for a conditional replacement: itself and the revision it carries.
struct Current {
    record: ObjectRecord,
    revision: String,
}

impl DynamoContainerRepository {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn current(&self, tenant: &str, path: &ObjectPath) -> DomainResult<Option<Current>> {
        let item = get_item(
            &self.client,
            &self.table,
            objects_partition(tenant, &path.container),
            path.object.clone(),
            true,
        )
        .await?;
        item.map(|item| {
            Ok(Current {
                record: object_from(&item)?,
                revision: get_s(&item, "revision")?,
            })
        })
        .transpose()
    }

    /// Moves a container's counters; the container must exist.
    fn container_change(
        &self,
        tenant: &str,
        container: &str,
        objects: i64,
        bytes: i64,
    ) -> DomainResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(containers_partition(tenant)))
            .key(SK, s(container))
            .update_expression("ADD objects :objects, #bytes :bytes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#bytes", "bytes")
            .expression_attribute_values(":objects", n(objects))
            .expression_attribute_values(":bytes", n(bytes))
            .build()
            .map_err(building)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Moves the tenant's counters; with `at_most`, only while its bytes are at most that
    /// before the change (the quota minus the growth), so the quota holds under races.
    fn usage_change(
        &self,
        tenant: &str,
        (containers, objects, bytes): (i64, i64, i64),
        at_most: Option<u64>,
    ) -> DomainResult<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(usage_partition(tenant)))
            .key(SK, s(USAGE_KEY))
            .update_expression("ADD containers :containers, objects :objects, #bytes :bytes")
            .expression_attribute_names("#bytes", "bytes")
            .expression_attribute_values(":containers", n(containers))
            .expression_attribute_values(":objects", n(objects))
            .expression_attribute_values(":bytes", n(bytes));
        if let Some(at_most) = at_most {
            update = update
                .condition_expression("attribute_not_exists(#bytes) OR #bytes <= :at_most")
                .expression_attribute_values(":at_most", n_u64(at_most));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(building)?)
            .build())
    }

    /// The object's write, conditioned on the record it replaces still being there.
    fn object_put(
        &self,
        tenant: &str,
        container: &str,
        record: &ObjectRecord,
        replaced: Option<&Current>,
    ) -> DomainResult<TransactWriteItem> {
        let revision = uuid::Uuid::new_v4().simple().to_string();
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(object_item(tenant, container, record, &revision)));
        let put = match replaced {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(current) => put
                .condition_expression("revision = :revision")
                .expression_attribute_values(":revision", s(current.revision.clone())),
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(building)?)
            .build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>, what: &str) -> DomainResult<bool> {
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_cancelled(&e) => Ok(false),
            Err(e) => Err(failed(what, e)),
        }
    }

    async fn query(
        &self,
        partition: String,
        after: &str,
        limit: usize,
        what: &str,
    ) -> DomainResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        while items.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk > :after")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(partition.clone()))
                .expression_attribute_values(":after", s(after))
                .limit(i32::try_from(limit - items.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failed(what, e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }
}

/// DynamoDB refuses an empty string as a key value, and every name is after it anyway.
fn after_key(after: &str) -> &str {
    if after.is_empty() { "\u{1}" } else { after }
}

#[async_trait]
impl ContainerRepository for DynamoContainerRepository {
    async fn create_container(
        &self,
        tenant: &str,
        container: &ContainerRecord,
    ) -> DomainResult<bool> {
        let mut item = Item::from([
            (PK.to_owned(), s(containers_partition(tenant))),
            (SK.to_owned(), s(container.name.clone())),
            ("objects".to_owned(), n(0)),
            ("bytes".to_owned(), n(0)),
            (
                "created_at".to_owned(),
                n(container.created_at.timestamp_micros()),
            ),
        ]);
        if let Some(link) = &container.link {
            let link = serde_json::to_string(link)
                .map_err(|e| DomainError::unavailable("storing a container link", e))?;
            item.insert("link".to_owned(), s(link));
        }
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(building)?;
        self.transact(
            vec![
                TransactWriteItem::builder().put(put).build(),
                self.usage_change(tenant, (1, 0, 0), None)?,
            ],
            "creating a container",
        )
        .await
    }

    async fn container(&self, tenant: &str, name: &str) -> DomainResult<Option<ContainerRecord>> {
        get_item(
            &self.client,
            &self.table,
            containers_partition(tenant),
            name.to_owned(),
            true,
        )
        .await?
        .as_ref()
        .map(container_from)
        .transpose()
    }

    async fn containers(
        &self,
        tenant: &str,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> DomainResult<Vec<ContainerRecord>> {
        let items = self
            .query(
                containers_partition(tenant),
                after_key(after),
                limit,
                "listing containers",
            )
            .await?;
        items
            .iter()
            .map(container_from)
            .filter(|c| match (c, before) {
                (Ok(c), Some(before)) => c.name.as_str() < before,
                _ => true,
            })
            .collect()
    }

    async fn delete_container(&self, tenant: &str, name: &str) -> DomainResult<()> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(containers_partition(tenant)))
            .key(SK, s(name))
            .condition_expression("attribute_exists(pk) AND objects = :none")
            .expression_attribute_values(":none", n(0))
            .build()
            .map_err(building)?;
        let deleted = self
            .transact(
                vec![
                    TransactWriteItem::builder().delete(delete).build(),
                    self.usage_change(tenant, (-1, 0, 0), None)?,
                ],
                "deleting a container",
            )
            .await?;
        match (deleted, self.container(tenant, name).await?) {
            (true, _) => Ok(()),
            (false, None) => Err(no_container(name)),
            (false, Some(_)) => Err(not_empty(name)),
        }
    }

    async fn usage(&self, tenant: &str) -> DomainResult<AccountUsage> {
        let item = get_item(
            &self.client,
            &self.table,
            usage_partition(tenant),
            USAGE_KEY.into(),
            true,
        )
        .await?
        .unwrap_or_default();
        Ok(AccountUsage {
            containers: count(&item, "containers"),
            objects: count(&item, "objects"),
            bytes: count(&item, "bytes"),
        })
    }

    async fn object(&self, tenant: &str, path: &ObjectPath) -> DomainResult<Option<ObjectRecord>> {
        Ok(self.current(tenant, path).await?.map(|c| c.record))
    }

    async fn objects(
        &self,
        tenant: &str,
        container: &str,
        after: &str,
        limit: usize,
    ) -> DomainResult<Vec<ObjectRecord>> {
        self.query(
            objects_partition(tenant, container),
            after_key(after),
            limit,
            "listing objects",
        )
        .await?
        .iter()
        .map(object_from)
        .collect()
    }

    async fn put_object(
        &self,
        tenant: &str,
        container: &str,
        record: &ObjectRecord,
        max_bytes: Option<u64>,
    ) -> DomainResult<Option<ObjectRecord>> {
        let path = ObjectPath::new(container, &record.name, "object")?;
        for _ in 0..ATTEMPTS {
            let replaced = self.current(tenant, &path).await?;
            let old_size = replaced.as_ref().map_or(0, |c| c.record.size);
            let growth = record.size.saturating_sub(old_size);
            let at_most = match max_bytes {
                Some(max) if growth > 0 => match max.checked_sub(growth) {
                    Some(at_most) => Some(at_most),
                    None => return Err(quota_full(max)),
                },
                _ => None,
            };
            let (objects, bytes) = (
                i64::from(replaced.is_none()),
                signed(record.size) - signed(old_size),
            );
            let items = vec![
                self.object_put(tenant, container, record, replaced.as_ref())?,
                self.container_change(tenant, container, objects, bytes)?,
                self.usage_change(tenant, (0, objects, bytes), at_most)?,
            ];
            if self.transact(items, "recording an object").await? {
                return Ok(replaced.map(|c| c.record));
            }
            // Which condition failed: the container is gone, the quota is full, or another
            // writer replaced the record first (then try again over the new one).
            if self.container(tenant, container).await?.is_none() {
                return Err(no_container(container));
            }
            let now = self.current(tenant, &path).await?;
            if now.map(|c| c.revision) == replaced.map(|c| c.revision)
                && let Some(max) = max_bytes
            {
                return Err(quota_full(max));
            }
        }
        Err(DomainError::Conflict(format!(
            "Object '{path}' is being written by others; try again"
        )))
    }

    async fn delete_object(
        &self,
        tenant: &str,
        path: &ObjectPath,
    ) -> DomainResult<Option<ObjectRecord>> {
        for _ in 0..ATTEMPTS {
            let Some(current) = self.current(tenant, path).await? else {
                return Ok(None);
            };
            let delete = Delete::builder()
                .table_name(&self.table)
                .key(PK, s(objects_partition(tenant, &path.container)))
                .key(SK, s(path.object.clone()))
                .condition_expression("revision = :revision")
                .expression_attribute_values(":revision", s(current.revision.clone()))
                .build()
                .map_err(building)?;
            let bytes = -signed(current.record.size);
            let items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.container_change(tenant, &path.container, -1, bytes)?,
                self.usage_change(tenant, (0, -1, bytes), None)?,
            ];
            if self.transact(items, "deleting an object").await? {
                return Ok(Some(current.record));
            }
        }
        Err(DomainError::Conflict(format!(
            "Object '{path}' is being written by others; try again"
        )))
    }
}
