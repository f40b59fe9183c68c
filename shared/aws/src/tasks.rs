//! Task records in DynamoDB: the whole task as a JSON `doc` beside the keys and the
//! attributes conditions and TTL need. Every change is a conditional write on `version`;
//! DynamoDB's TTL removes finished tasks, lazily, so reads leave out expired ones themselves.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use cloud_images_domain::events::Event;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::ports::TaskRepository;
use cloud_images_domain::task::{Task, TaskId};
use cloud_images_domain::{DomainError, DomainResult};

use crate::dynamo::events::with_events;
use crate::dynamo::{
    GSI1PK, GSI1SK, GSI3, GSI3PK, GSI3SK, Item, PK, SK, TTL_ATTRIBUTE, by_creation,
    condition_failed, failed, get_item, get_s, n, n_u64, query_index, query_partition, s,
};

/// [`TaskRepository`] over the single table.
pub struct DynamoTaskRepository {
    client: Client,
    table: String,
}

impl DynamoTaskRepository {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

const DOC: &str = "doc";

fn key_of(id: TaskId) -> (String, String) {
    (format!("TASK#{id}"), "TASK".to_owned())
}

fn owner_partition(owner: &str) -> String {
    format!("TASKS#{owner}")
}

fn image_partition(image_id: ImageId) -> String {
    format!("IMAGE_TASKS#{image_id}")
}

/// Rounded up: TTL compares whole seconds, and must not remove a task before its instant.
fn expiry_second(at: DateTime<Utc>) -> i64 {
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}

fn task_item(task: &Task) -> DomainResult<Item> {
    let (pk, sk) = key_of(task.id);
    let doc =
        serde_json::to_string(task).map_err(|e| DomainError::unavailable("encoding a task", e))?;
    let mut item = Item::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        (GSI1PK.to_owned(), s(owner_partition(&task.owner))),
        (GSI1SK.to_owned(), s(by_creation(task.created_at, task.id))),
        (DOC.to_owned(), s(doc)),
        ("version".to_owned(), n_u64(task.version)),
    ]);
    if let Some(at) = task.expires_at {
        item.insert(TTL_ATTRIBUTE.to_owned(), n(expiry_second(at)));
    }
    if let Some(image_id) = task.image_id {
        item.insert(GSI3PK.to_owned(), s(image_partition(image_id)));
        item.insert(GSI3SK.to_owned(), s(by_creation(task.created_at, task.id)));
    }
    Ok(item)
}

/// The task an item holds, unless it is past its expiry (TTL may not have removed it yet).
fn live(item: &Item, now: DateTime<Utc>) -> DomainResult<Option<Task>> {
    let task: Task = serde_json::from_str(&get_s(item, DOC)?)
        .map_err(|e| DomainError::unavailable("reading a task item", e))?;
    Ok((!task.is_expired(now)).then_some(task))
}

fn live_tasks(items: &[Item]) -> DomainResult<Vec<Task>> {
    let now = Utc::now();
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        tasks.extend(live(item, now)?);
    }
    Ok(tasks)
}

impl DynamoTaskRepository {
    /// Writes the whole item: a new one when `expected_version` is `None`, else only over
    /// that version. Returns whether the condition held.
    async fn put(
        &self,
        task: &Task,
        expected_version: Option<u64>,
        events: &[Event],
    ) -> DomainResult<bool> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(with_events(task_item(task)?, events)?));
        let request = match expected_version {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(version) => request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n_u64(version)),
        };
        let put = request.send().await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(failed("storing a task", e)),
        }
    }
}

#[async_trait]
impl TaskRepository for DynamoTaskRepository {
    async fn insert(&self, task: &Task, events: &[Event]) -> DomainResult<()> {
        if self.put(task, None, events).await? {
            Ok(())
        } else {
            Err(DomainError::Conflict(format!("Task {} exists", task.id)))
        }
    }

    async fn get(&self, id: TaskId) -> DomainResult<Option<Task>> {
        let (pk, sk) = key_of(id);
        match get_item(&self.client, &self.table, pk, sk, true).await? {
            Some(item) => live(&item, Utc::now()),
            None => Ok(None),
        }
    }

    async fn update(
        &self,
        task: &Task,
        expected_version: u64,
        events: &[Event],
    ) -> DomainResult<()> {
        if self.put(task, Some(expected_version), events).await? {
            Ok(())
        } else {
            Err(DomainError::Conflict(format!(
                "Task {} was changed concurrently",
                task.id
            )))
        }
    }

    async fn list_owned(&self, owner: &str) -> DomainResult<Vec<Task>> {
        let items = query_index(&self.client, &self.table, &owner_partition(owner)).await?;
        live_tasks(&items)
    }

    async fn list_for_image(&self, image_id: ImageId) -> DomainResult<Vec<Task>> {
        let partition = image_partition(image_id);
        let items = query_partition(&self.client, &self.table, GSI3, GSI3PK, &partition).await?;
        live_tasks(&items)
    }

    /// DynamoDB's TTL on [`TTL_ATTRIBUTE`] removes expired records by itself.
    async fn purge_expired(&self) -> DomainResult<usize> {
        Ok(0)
    }
}
