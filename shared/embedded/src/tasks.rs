//! Task records in SQLite: the whole task as JSON, beside the columns queries need (owner,
//! expiry, version). Every change is a compare-and-set on `version`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloud_images_domain::events::Event;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::ports::TaskRepository;
use cloud_images_domain::task::{Task, TaskId};
use cloud_images_domain::{DomainError, DomainResult};
use rusqlite::{OptionalExtension, params};

use crate::db::Sqlite;
use crate::error::EmbeddedError;
use crate::events;

/// [`TaskRepository`] over the embedded database.
pub struct SqliteTaskRepository {
    db: Arc<Sqlite>,
}

impl SqliteTaskRepository {
    /// Wraps the shared database.
    pub fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }

    /// The live tasks whose indexed `column` (`owner` or `image_id`) is `value`.
    async fn bodies_where(&self, column: &'static str, value: String) -> DomainResult<Vec<Task>> {
        let sql = format!("SELECT body FROM tasks WHERE {column} = ?1");
        let bodies = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt.query_map([value], |r| r.get::<_, String>(0))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        Ok(live(bodies, Utc::now())?)
    }
}

/// The first whole second at which the record is gone: rounding up means a purge comparing
/// whole seconds never removes a task before its instant.
fn expiry_second(task: &Task) -> Option<i64> {
    task.expires_at
        .map(|at| at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0))
}

/// The stored columns of a task.
struct Columns {
    id: String,
    owner: String,
    image_id: Option<String>,
    expires_at: Option<i64>,
    version: i64,
    body: String,
}

impl Columns {
    fn of(task: &Task) -> DomainResult<Self> {
        Ok(Self {
            id: task.id.to_string(),
            owner: task.owner.to_string(),
            image_id: task.image_id.map(|id| id.to_string()),
            expires_at: expiry_second(task),
            version: i64::try_from(task.version).unwrap_or(i64::MAX),
            body: serde_json::to_string(task)
                .map_err(|e| DomainError::unavailable("encoding a task", e))?,
        })
    }
}

/// Decodes stored bodies, leaving out records already past their expiry.
fn live(bodies: Vec<String>, now: DateTime<Utc>) -> Result<Vec<Task>, EmbeddedError> {
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let task: Task = serde_json::from_str(&body)
            .map_err(|e| EmbeddedError::Corrupt(format!("task: {e}")))?;
        if !task.is_expired(now) {
            tasks.push(task);
        }
    }
    Ok(tasks)
}

#[async_trait]
impl TaskRepository for SqliteTaskRepository {
    async fn insert(&self, task: &Task, events: &[Event]) -> DomainResult<()> {
        let id = task.id;
        let c = Columns::of(task)?;
        let events = events.to_vec();
        self.db
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO tasks (id, owner, image_id, expires_at, version, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![c.id, c.owner, c.image_id, c.expires_at, c.version, c.body],
                )?;
                events::append(tx, &events)?;
                Ok(())
            })
            .await
            .map_err(|e| {
                if e.is_unique_violation() {
                    DomainError::Conflict(format!("Task {id} exists"))
                } else {
                    e.into()
                }
            })
    }

    async fn get(&self, id: TaskId) -> DomainResult<Option<Task>> {
        let body = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached("SELECT body FROM tasks WHERE id = ?1")?;
                Ok(stmt
                    .query_row([id.to_string()], |r| r.get::<_, String>(0))
                    .optional()?)
            })
            .await?;
        Ok(live(body.into_iter().collect(), Utc::now())?.pop())
    }

    async fn update(
        &self,
        task: &Task,
        expected_version: u64,
        events: &[Event],
    ) -> DomainResult<()> {
        let id = task.id;
        let c = Columns::of(task)?;
        let expected = i64::try_from(expected_version).unwrap_or(i64::MAX);
        let events = events.to_vec();
        let changed =
            self.db
                .write(move |tx| {
                    let changed = tx.execute(
                    "UPDATE tasks SET owner = ?2, image_id = ?3, expires_at = ?4, version = ?5, \
                     body = ?6 WHERE id = ?1 AND version = ?7",
                    params![c.id, c.owner, c.image_id, c.expires_at, c.version, c.body, expected],
                )?;
                    if changed == 1 {
                        events::append(tx, &events)?;
                    }
                    Ok(changed)
                })
                .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(DomainError::Conflict(format!(
                "Task {id} was changed concurrently"
            )))
        }
    }

    async fn list_owned(&self, owner: &str) -> DomainResult<Vec<Task>> {
        self.bodies_where("owner", owner.to_owned()).await
    }

    async fn list_for_image(&self, image_id: ImageId) -> DomainResult<Vec<Task>> {
        self.bodies_where("image_id", image_id.to_string()).await
    }

    async fn purge_expired(&self) -> DomainResult<usize> {
        let now = Utc::now().timestamp();
        let removed = self
            .db
            .write(move |tx| {
                Ok(tx.execute(
                    "DELETE FROM tasks WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                    [now],
                )?)
            })
            .await?;
        Ok(removed)
    }
}
