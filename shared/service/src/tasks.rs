//! Import and export tasks as records: created and queued on request, shown and listed to
//! their tenant. [`crate::TaskRunner`] runs them from the queue.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cloud_images_domain::events::task_events;
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::ports::{TaskQueue, TaskRepository};
use cloud_images_domain::task::{NewTask, Task, TaskId, TaskListQuery};
use cloud_images_domain::{DomainError, DomainResult};

use crate::access::now;

/// Operator settings for tasks.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// How long a finished task's record stays readable.
    pub ttl: Duration,
    /// How long a worker holds a task without renewing; a killed worker's task is taken
    /// over after this.
    pub lease: Duration,
    /// Starts after which an interrupted task is failed instead of retried.
    pub max_attempts: u32,
    /// Default page size of task lists.
    pub default_limit: usize,
    /// Largest page size of task lists.
    pub max_limit: usize,
}

/// The message put on the queue for a task: its id, and the request id of the call that made
/// it, so the worker logs the task under that id from its first line on.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct TaskMessage {
    pub(crate) task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
    /// When the message was queued: how long it waited is what the worker reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sent_at: Option<chrono::DateTime<Utc>>,
}

/// Task record use cases (the `tasks` route group, and the submission staging uses).
#[derive(Clone)]
pub struct TaskService {
    tasks: Arc<dyn TaskRepository>,
    queue: Arc<dyn TaskQueue>,
    settings: Arc<TaskSettings>,
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("No task found with ID {id}"))
}

pub(crate) fn chrono_span(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl TaskService {
    /// Builds the service over the task records and the queue workers drain.
    pub fn new(
        tasks: Arc<dyn TaskRepository>,
        queue: Arc<dyn TaskQueue>,
        settings: Arc<TaskSettings>,
    ) -> Self {
        Self {
            tasks,
            queue,
            settings,
        }
    }

    /// Records a task the caller asked for and queues it.
    pub async fn create(&self, caller: &Caller, new: NewTask) -> DomainResult<Task> {
        caller.require_writer()?;
        let mut task = Task::new_pending(new, caller.tenant_id.clone(), now());
        task.record_maker(caller);
        self.submit(task).await
    }

    /// Records a new task and queues it.
    pub(crate) async fn submit(&self, task: Task) -> DomainResult<Task> {
        self.tasks
            .insert(&task, &task_events(None, &task, Utc::now()))
            .await?;
        if let Err(e) = self.enqueue(&task).await {
            // Never leave a pending task that no worker will ever see.
            let message = "The task could not be queued; create it again.".to_owned();
            if let Ok(failed) = task.finish(Err(message), chrono_span(self.settings.ttl), now()) {
                let _ = save_task(&*self.tasks, &failed, &task).await;
            }
            return Err(e);
        }
        Ok(task)
    }

    /// A task the caller's tenant created (any task, for an administrator).
    pub async fn show(&self, caller: &Caller, raw_id: &str) -> DomainResult<Task> {
        let id = TaskId::parse(raw_id).map_err(|_| not_found(raw_id))?;
        match self.tasks.get(id).await? {
            Some(task) if caller.is_admin() || task.owner == caller.tenant_id => Ok(task),
            _ => Err(not_found(raw_id)),
        }
    }

    /// Parses a list query with the configured page sizes.
    pub fn list_query(&self, pairs: &[(String, String)]) -> DomainResult<TaskListQuery> {
        TaskListQuery::parse(pairs, self.settings.default_limit, self.settings.max_limit)
    }

    /// One page of the caller's tenant's tasks, and whether more follow.
    pub async fn list(
        &self,
        caller: &Caller,
        query: &TaskListQuery,
    ) -> DomainResult<(Vec<Task>, bool)> {
        let tasks = self.tasks.list_owned(caller.tenant_id.as_str()).await?;
        query.page(tasks)
    }

    /// Every live task that worked on an image.
    pub(crate) async fn for_image(&self, image_id: ImageId) -> DomainResult<Vec<Task>> {
        self.tasks.list_for_image(image_id).await
    }

    /// Queues a task's message again (an operator's redrive); harmless for a finished task,
    /// whose extra delivery is acknowledged without effect.
    pub async fn redrive(&self, raw_id: &str) -> DomainResult<Task> {
        let id = TaskId::parse(raw_id).map_err(|_| not_found(raw_id))?;
        let task = self.tasks.get(id).await?.ok_or_else(|| not_found(raw_id))?;
        self.enqueue(&task).await?;
        Ok(task)
    }

    async fn enqueue(&self, task: &Task) -> DomainResult<()> {
        let message = serde_json::to_string(&TaskMessage {
            task_id: task.id,
            request_id: task.request_id.clone(),
            sent_at: Some(Utc::now()),
        })
        .map_err(|e| DomainError::unavailable("encoding a task message", e))?;
        self.queue.send(&message).await
    }

    /// Removes expired task records where the store does not expire them itself.
    pub async fn purge_expired(&self) -> DomainResult<usize> {
        self.tasks.purge_expired().await
    }
}

/// Stores `next` over `before` (compare-and-set on `before`'s version) with the events
/// of the change, in one atomic write.
pub(crate) async fn save_task(
    tasks: &dyn TaskRepository,
    next: &Task,
    before: &Task,
) -> DomainResult<()> {
    tasks
        .update(
            next,
            before.version,
            &task_events(Some(before), next, Utc::now()),
        )
        .await
}
