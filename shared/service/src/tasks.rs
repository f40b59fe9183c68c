//! Import and export tasks: recorded and queued on request, then run by [`TaskService::execute`]
//! under whichever host drains the queue (the local binary's loop or the SQS worker).
//!
//! Delivery is at least once, so a run first *claims* the task with a compare-and-set that
//! sets a lease; while it works a heartbeat renews the lease. A second delivery of the same
//! message finds the task final (nothing to do) or leased (busy, try later); a worker that
//! died leaves a lease that runs out, and the next delivery takes the task over. An import's
//! image id is fixed when the task is created, so however often it runs there is one image.

use std::sync::Arc;
use std::time::Duration;

use cloud_images_domain::error::Misdirection;
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::{DiskFormat, Image, ImageId, ImageStatus, Visibility};
use cloud_images_domain::ports::{
    ByteRange, ByteStream, ObjectStore, TaskQueue, TaskRepository, UploadSink,
};
use cloud_images_domain::task::{
    ObjectPath, Task, TaskId, TaskInput, TaskListQuery, TaskStatus, TaskType,
};
use cloud_images_domain::{DomainError, DomainResult, vhd};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::images::{ImageService, now};

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

/// What the host should do with the delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The task is final (now or already): acknowledge the message.
    Finished,
    /// Another worker holds the task, or this one should be retried: leave the message to
    /// come back when its lease ends.
    Retry,
}

/// The message put on the queue for a task.
#[derive(serde::Serialize, serde::Deserialize)]
struct TaskMessage {
    task_id: TaskId,
}

/// Task use cases.
#[derive(Clone)]
pub struct TaskService {
    tasks: Arc<dyn TaskRepository>,
    queue: Arc<dyn TaskQueue>,
    objects: Arc<dyn ObjectStore>,
    pub(crate) images: ImageService,
    settings: Arc<TaskSettings>,
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("No task found with ID {id}"))
}

fn chrono_span(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// A failure the task's owner should read: the run ends with status `failure`.
fn is_final_failure(error: &DomainError) -> bool {
    !matches!(error, DomainError::Unavailable { .. })
}

impl TaskService {
    /// Builds the service over its ports and the image use cases.
    pub fn new(
        tasks: Arc<dyn TaskRepository>,
        queue: Arc<dyn TaskQueue>,
        objects: Arc<dyn ObjectStore>,
        images: ImageService,
        settings: TaskSettings,
    ) -> Self {
        Self {
            tasks,
            queue,
            objects,
            images,
            settings: Arc::new(settings),
        }
    }

    /// The lease a host should give a delivered message: as long as a task's.
    pub fn lease(&self) -> Duration {
        self.settings.lease
    }

    /// Records a task from a `POST /v2/tasks` body and queues it.
    pub async fn create(&self, caller: &Caller, body: Map<String, Value>) -> DomainResult<Task> {
        caller.require_writer()?;
        if let Some(unknown) = body
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "input"))
        {
            return Err(DomainError::Invalid(format!(
                "'{unknown}' is not accepted in a task; send type and input"
            )));
        }
        let kind: TaskType = match body.get("type") {
            Some(Value::String(raw)) => raw.parse()?,
            Some(_) => return Err(DomainError::Invalid("type must be a string".into())),
            None => {
                return Err(DomainError::Invalid(
                    "type is required: import or export".into(),
                ));
            }
        };
        if kind == TaskType::ApiImageImport {
            return Err(DomainError::Misdirected(
                Misdirection::ImportTasksComeFromStaging,
            ));
        }
        let input = body.get("input").cloned().unwrap_or(Value::Null);
        TaskInput::parse(kind, &input)?;
        let task = Task::new_pending(kind, input, caller.tenant_id.to_string(), now());
        self.submit(task).await
    }

    /// Records a new task and queues it.
    pub(crate) async fn submit(&self, task: Task) -> DomainResult<Task> {
        self.tasks.insert(&task).await?;
        if let Err(e) = self.enqueue(&task).await {
            // Never leave a pending task that no worker will ever see.
            let message = "The task could not be queued; create it again.".to_owned();
            if let Ok(failed) = task.finish(Err(message), self.ttl(), now()) {
                let _ = self.tasks.update(&failed, task.version).await;
            }
            return Err(e);
        }
        Ok(task)
    }

    /// A task the caller's tenant created (any task, for an administrator).
    pub async fn show(&self, caller: &Caller, raw_id: &str) -> DomainResult<Task> {
        let id = TaskId::parse(raw_id).map_err(|_| not_found(raw_id))?;
        match self.tasks.get(id).await? {
            Some(task) if caller.is_admin() || task.owner == caller.tenant_id.as_str() => Ok(task),
            _ => Err(not_found(raw_id)),
        }
    }

    /// One page of the caller's tenant's tasks, and whether more follow.
    pub async fn list(
        &self,
        caller: &Caller,
        pairs: &[(String, String)],
    ) -> DomainResult<(Vec<Task>, bool)> {
        let query =
            TaskListQuery::parse(pairs, self.settings.default_limit, self.settings.max_limit)?;
        let tasks = self.tasks.list_owned(caller.tenant_id.as_str()).await?;
        query.page(tasks)
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
        let message = serde_json::to_string(&TaskMessage { task_id: task.id })
            .map_err(|e| DomainError::unavailable("encoding a task message", e))?;
        self.queue.send(&message).await
    }

    /// Removes expired task records where the store does not expire them itself.
    pub async fn purge_expired(&self) -> DomainResult<usize> {
        self.tasks.purge_expired().await
    }

    /// Runs the task a queue message names: the one use case every worker host calls.
    pub async fn execute(&self, message: &str) -> DomainResult<Outcome> {
        let Ok(TaskMessage { task_id }) = serde_json::from_str(message) else {
            tracing::warn!(message, "dropping a queue message that names no task");
            return Ok(Outcome::Finished);
        };
        let held = match self.claim(task_id).await? {
            Claim::Gone => return Ok(Outcome::Finished),
            Claim::Busy => return Ok(Outcome::Retry),
            Claim::Won(task) => *task,
        };
        tracing::info!(task = %task_id, kind = %held.kind, attempt = held.attempts, "task started");
        let held = Mutex::new(held);
        let snapshot = held.lock().await.clone();
        let outcome = tokio::select! {
            outcome = self.run(&snapshot) => outcome,
            () = self.keep_lease(&held) => {
                tracing::warn!(task = %task_id, "lost the task's lease to another worker; stopping");
                return Ok(Outcome::Retry);
            }
        };
        let held = held.into_inner();
        let result = match outcome {
            Ok(result) => Ok(result),
            Err(e) if is_final_failure(&e) => Err(e.to_string()),
            Err(e) => {
                tracing::warn!(task = %task_id, error = %e, source = ?std::error::Error::source(&e), "task attempt failed; it will be retried");
                self.release(&held).await;
                return Ok(Outcome::Retry);
            }
        };
        let task = held.finish(result, self.ttl(), now())?;
        match self.tasks.update(&task, held.version).await {
            Ok(()) => {
                tracing::info!(task = %task_id, status = %task.status, "task finished");
                if let (TaskStatus::Failure, Some(image_id)) = (task.status, task.image_id) {
                    // Only the worker that ended the task cleans up, so a worker whose lease
                    // was taken over never removes what its successor is writing.
                    self.images.discard_unfinished(image_id, &task.owner).await;
                }
                Ok(Outcome::Finished)
            }
            // Our lease ran out and another worker took over; it will finish the task.
            Err(DomainError::Conflict(_)) => Ok(Outcome::Retry),
            Err(e) => Err(e),
        }
    }

    /// Takes the task for this worker, or says why not.
    async fn claim(&self, id: TaskId) -> DomainResult<Claim> {
        for _ in 0..crate::images::CAS_ATTEMPTS {
            let Some(task) = self.tasks.get(id).await? else {
                return Ok(Claim::Gone);
            };
            if task.status.is_final() {
                return Ok(Claim::Gone);
            }
            let at = now();
            if task.status == TaskStatus::Processing && task.lease_until.is_some_and(|l| l > at) {
                return Ok(Claim::Busy);
            }
            let next = if task.attempts >= self.settings.max_attempts {
                let message = format!(
                    "The task was interrupted {} times before it could finish; create it again.",
                    task.attempts
                );
                task.finish(Err(message), self.ttl(), at)?
            } else {
                task.claim(self.lease_span(), at)?
            };
            match self.tasks.update(&next, task.version).await {
                Ok(()) if next.status.is_final() => return Ok(Claim::Gone),
                Ok(()) => return Ok(Claim::Won(Box::new(next))),
                Err(DomainError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(Claim::Busy)
    }

    /// Renews the lease every third of its length; returns only when it was lost.
    async fn keep_lease(&self, held: &Mutex<Task>) {
        loop {
            tokio::time::sleep(self.settings.lease / 3).await;
            let mut task = held.lock().await;
            let Ok(next) = task.renew(self.lease_span(), now()) else {
                return;
            };
            match self.tasks.update(&next, task.version).await {
                Ok(()) => *task = next,
                Err(DomainError::Conflict(_)) => return,
                // A store hiccup: keep working; the next beat tries again.
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "could not renew a task lease")
                }
            }
        }
    }

    /// Gives the task back after a temporary failure, so the next delivery may retry it at once.
    async fn release(&self, task: &Task) {
        if let Ok(next) = task.release(now()) {
            let _ = self.tasks.update(&next, task.version).await;
        }
    }

    fn lease_span(&self) -> chrono::Duration {
        chrono_span(self.settings.lease)
    }

    /// How long a finished task's record stays readable.
    fn ttl(&self) -> chrono::Duration {
        chrono_span(self.settings.ttl)
    }

    async fn run(&self, task: &Task) -> DomainResult<Value> {
        match task.parsed_input()? {
            TaskInput::Import {
                source,
                disk_format,
                container_format,
                name,
            } => {
                let image_id = task.image_id.ok_or_else(|| {
                    DomainError::Invalid("The import task has no image id reserved".into())
                })?;
                let mut image = Image::new_queued(image_id, Some(task.owner.clone()), now());
                image.name = name;
                image.disk_format = Some(disk_format);
                image.container_format = Some(container_format);
                image.visibility = Visibility::Private;
                self.import(task, &source, image)
                    .await
                    .map_err(|e| import_error(e, &source))
            }
            TaskInput::Export {
                image_id,
                container,
                format,
            } => self.export(task, image_id, &container, format).await,
            TaskInput::Staged { image_id } => self.import_staged(task, image_id).await,
        }
    }

    async fn import(&self, task: &Task, source: &ObjectPath, fresh: Image) -> DomainResult<Value> {
        let image_id = fresh.id;
        let existing = match self.images.repo.get(image_id).await? {
            Some(image) if !image.is_owned_by(&task.owner) => {
                return Err(DomainError::Conflict(format!(
                    "image id {image_id} is taken"
                )));
            }
            // An earlier attempt finished the image but not the task.
            Some(image) if image.status == ImageStatus::Active => {
                return Ok(json!({ "image_id": image_id.to_string() }));
            }
            other => other,
        };
        let received = match self.objects.open(&task.owner, source).await {
            Ok((size, body)) => match self.import_target(task, existing, fresh).await {
                Ok(image) => self.images.receive_data(image, body, Some(size)).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        received.map(|_| json!({ "image_id": image_id.to_string() }))
    }

    /// The queued image an import writes: made now, or left by an earlier attempt.
    async fn import_target(
        &self,
        task: &Task,
        existing: Option<Image>,
        fresh: Image,
    ) -> DomainResult<Image> {
        match existing {
            // Left `saving` by a worker whose lease ran out: nobody else writes it now.
            Some(image) if image.status == ImageStatus::Saving => {
                self.images.requeue_abandoned(&image).await
            }
            Some(image) => Ok(image),
            None => {
                self.images.check_image_quota(&task.owner).await?;
                self.images.repo.insert(&fresh).await?;
                Ok(fresh)
            }
        }
    }

    async fn export(
        &self,
        task: &Task,
        image_id: ImageId,
        container: &str,
        format: DiskFormat,
    ) -> DomainResult<Value> {
        let image = match self.images.repo.get(image_id).await? {
            Some(image) if image.is_owned_by(&task.owner) => image,
            _ => {
                return Err(DomainError::NotFound(format!(
                    "Image {image_id} was not found among your tenant's images; only images you own can be exported."
                )));
            }
        };
        let size = match (image.status, image.size) {
            (ImageStatus::Active, Some(size)) => size,
            (ImageStatus::Deactivated, _) => {
                return Err(DomainError::Forbidden(format!(
                    "Image {image_id} is deactivated and cannot be exported."
                )));
            }
            (status, _) => {
                return Err(DomainError::Conflict(format!(
                    "Image {image_id} is {status}; only active images with data can be exported."
                )));
            }
        };
        let stored = image.disk_format.unwrap_or(DiskFormat::Raw);
        let plan = self.conversion(image_id, stored, format, size).await?;
        let object = ObjectPath::new(
            container,
            &format!("{image_id}.{format}"),
            "input.receiving_swift_container",
        )?;
        let body = self.images.store.read(image_id, plan.read_range).await?;
        let sink = self.objects.create(&task.owner, &object).await?;
        write_converted(sink, body, &plan).await?;
        Ok(json!({ "export_location": object.to_string() }))
    }

    /// How the stored bytes become the requested format, or why they cannot.
    async fn conversion(
        &self,
        image_id: ImageId,
        stored: DiskFormat,
        wanted: DiskFormat,
        size: u64,
    ) -> DomainResult<Conversion> {
        let copy = Conversion {
            read_range: None,
            append: Vec::new(),
        };
        match (stored, wanted) {
            (a, b) if a == b => Ok(copy),
            (DiskFormat::Raw, DiskFormat::Vhd) => {
                let padding = vhd::padding_to_sector(size);
                let footer = vhd::fixed_footer(size + padding, random_id(), now().timestamp());
                let mut append = vec![0u8; usize::try_from(padding).unwrap_or(0)];
                append.extend_from_slice(&footer);
                Ok(Conversion {
                    read_range: None,
                    append,
                })
            }
            (DiskFormat::Vhd, DiskFormat::Raw) => {
                let footer_len = vhd::FOOTER_BYTES as u64;
                let tail = ByteRange {
                    first: size.saturating_sub(footer_len),
                    last: size.saturating_sub(1),
                };
                let footer =
                    collect_small(self.images.store.read(image_id, Some(tail)).await?).await?;
                if size <= footer_len || !vhd::is_fixed_footer(&footer) {
                    return Err(DomainError::Invalid(format!(
                        "Image {image_id} is a dynamic VHD; only fixed VHDs can be exported as raw. Export it as vhd instead."
                    )));
                }
                Ok(Conversion {
                    read_range: Some(ByteRange {
                        first: 0,
                        last: size - footer_len - 1,
                    }),
                    append: Vec::new(),
                })
            }
            (stored, wanted) => Err(DomainError::Invalid(format!(
                "Image {image_id} is stored as {stored} and cannot be converted to {wanted}; conversions exist between raw and vhd only. Set export_format to {stored} to export it as stored."
            ))),
        }
    }
}

/// What a run found out about the task.
enum Claim {
    /// No such task any more, or it is final.
    Gone,
    /// Another worker holds a live lease.
    Busy,
    /// This worker holds it now.
    Won(Box<Task>),
}

/// An export's byte plan: which stored bytes to read, and what to write after them.
struct Conversion {
    read_range: Option<ByteRange>,
    append: Vec<u8>,
}

async fn write_converted(
    mut sink: Box<dyn UploadSink>,
    mut body: ByteStream,
    plan: &Conversion,
) -> DomainResult<()> {
    let copied = async {
        while let Some(chunk) = body.next().await {
            sink.write(chunk?).await?;
        }
        if !plan.append.is_empty() {
            sink.write(bytes::Bytes::copy_from_slice(&plan.append))
                .await?;
        }
        Ok::<(), DomainError>(())
    }
    .await;
    match copied {
        Ok(()) => sink.commit().await,
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

fn random_id() -> [u8; 16] {
    use rand_core::RngCore;
    let mut id = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut id);
    id
}

async fn collect_small(mut body: ByteStream) -> DomainResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Rewords an import failure for the task's owner (Rackspace prefixes them alike).
fn import_error(error: DomainError, source: &ObjectPath) -> DomainError {
    let reword = |message: String| format!("Image cannot be imported: {message}");
    match error {
        DomainError::NotFound(_) => DomainError::NotFound(reword(format!(
            "the object '{source}' was not found in your containers."
        ))),
        DomainError::Invalid(m) => DomainError::Invalid(reword(m)),
        DomainError::QuotaExceeded(m) => DomainError::QuotaExceeded(reword(m)),
        DomainError::Conflict(m) => DomainError::Conflict(reword(m)),
        DomainError::Forbidden(m) => DomainError::Forbidden(reword(m)),
        other => other,
    }
}
