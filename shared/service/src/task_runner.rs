//! Running tasks: [`TaskRunner::execute`] runs the task a queue message names, under
//! whichever host drains the queue (the local binary's loop or the SQS worker).
//!
//! Delivery is at least once, so a run first *claims* the task with a compare-and-set that
//! sets a lease; while it works a heartbeat renews the lease. A second delivery of the same
//! message finds the task final (nothing to do) or leased (busy, try later); a worker that
//! died leaves a lease that runs out, and the next delivery takes the task over. An import's
//! image id is fixed when the task is created, so however often it runs there is one image.

use std::sync::Arc;
use std::time::Duration;

use cloud_images_domain::events::Actor;
use cloud_images_domain::image::{DiskFormat, Image, ImageId, ImageStatus, Visibility};
use cloud_images_domain::import::ImportMethod;
use cloud_images_domain::ports::{ByteRange, ByteStream, TaskRepository, WebSource};
use cloud_images_domain::task::{ObjectPath, Task, TaskId, TaskInput, TaskStatus};
use cloud_images_domain::{DomainError, DomainResult, vhd};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::access::{Contention, ImageAccess, now};
use crate::containers::ContainerService;
use crate::image_data::ImageDataService;
use crate::tasks::{TaskMessage, TaskSettings, chrono_span, save_task};

mod image_import;
use image_import::ImportRun;

/// What the host should do with the delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The task is final (now or already): acknowledge the message.
    Finished,
    /// Another worker holds the task, or this one should be retried: leave the message to
    /// come back when its lease ends.
    Retry,
}

/// A failure the task's owner should read: the run ends with status `failure`.
fn is_final_failure(error: &DomainError) -> bool {
    !matches!(error, DomainError::Unavailable { .. })
}

/// Runs queued tasks: imports through the upload pipeline, exports to the tenant's
/// containers.
#[derive(Clone)]
pub struct TaskRunner {
    tasks: Arc<dyn TaskRepository>,
    containers: ContainerService,
    web: Arc<dyn WebSource>,
    access: ImageAccess,
    data: ImageDataService,
    settings: Arc<TaskSettings>,
}

/// One run of a task by this worker, for the metrics: how it ended and how long it took.
struct Attempt {
    kind: String,
    started: std::time::Instant,
}

impl Attempt {
    fn start(kind: String) -> Self {
        Self {
            kind,
            started: std::time::Instant::now(),
        }
    }

    /// `outcome`: success, failure (final), retry (to be delivered again) or lease_lost.
    fn ended(self, outcome: &'static str) {
        metrics::counter!("cloud_images_task_attempts_total", "type" => self.kind.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("cloud_images_task_attempt_duration_seconds", "type" => self.kind)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl TaskRunner {
    /// Builds the runner over the task records, the tenants' containers, the web (for
    /// web-download) and the image data pipeline.
    pub fn new(
        tasks: Arc<dyn TaskRepository>,
        containers: ContainerService,
        web: Arc<dyn WebSource>,
        access: ImageAccess,
        data: ImageDataService,
        settings: Arc<TaskSettings>,
    ) -> Self {
        Self {
            tasks,
            containers,
            web,
            access,
            data,
            settings,
        }
    }

    /// The lease a host should give a delivered message: as long as a task's.
    pub fn lease(&self) -> Duration {
        self.settings.lease
    }

    /// Runs the task a queue message names: the one use case every worker host calls. Every
    /// line logged while it runs carries the task id and the request id of the call that
    /// made the task (from the message, else from the task record).
    pub async fn execute(&self, message: &str) -> DomainResult<Outcome> {
        let Ok(TaskMessage {
            task_id,
            request_id,
            sent_at,
        }) = serde_json::from_str(message)
        else {
            tracing::warn!(message, "dropping a queue message that names no task");
            return Ok(Outcome::Finished);
        };
        if let Some(waited) = sent_at.and_then(|at| (chrono::Utc::now() - at).to_std().ok()) {
            // A redelivery's age counts from the first send: a backlog shows as it grows.
            metrics::histogram!("cloud_images_task_queue_age_seconds").record(waited.as_secs_f64());
        }
        let span = tracing::info_span!(
            "task",
            task_id = %task_id,
            request_id = tracing::field::Empty
        );
        if let Some(request_id) = &request_id {
            span.record("request_id", request_id.as_str());
        }
        self.execute_task(task_id, request_id.is_some())
            .instrument(span)
            .await
    }

    async fn execute_task(&self, task_id: TaskId, request_id_known: bool) -> DomainResult<Outcome> {
        let held = match self.claim(task_id).await? {
            Claim::Gone => return Ok(Outcome::Finished),
            Claim::Busy => return Ok(Outcome::Retry),
            Claim::Won(task) => *task,
        };
        if !request_id_known && let Some(request_id) = &held.request_id {
            tracing::Span::current().record("request_id", request_id.as_str());
        }
        tracing::info!(task = %task_id, kind = %held.kind, attempt = held.attempts, "task started");
        let attempt = Attempt::start(held.kind.to_string());
        let held = Mutex::new(held);
        let snapshot = held.lock().await.clone();
        let outcome = tokio::select! {
            outcome = self.run(&snapshot, &held) => outcome,
            () = self.keep_lease(&held) => {
                tracing::warn!(task = %task_id, "lost the task's lease to another worker; stopping");
                attempt.ended("lease_lost");
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
                attempt.ended("retry");
                return Ok(Outcome::Retry);
            }
        };
        let task = held.finish(result, self.ttl(), now())?;
        // Clean up before the failure shows, so a client that sees the task fail finds the
        // image already released; only while this worker still holds the task, so a worker
        // whose lease was taken over never undoes what its successor is writing.
        if task.status == TaskStatus::Failure && self.still_holds(&held).await {
            self.after_failure(&task).await;
        }
        match save_task(&*self.tasks, &task, &held).await {
            Ok(()) => {
                tracing::info!(task = %task_id, status = %task.status, "task finished");
                attempt.ended(if task.status == TaskStatus::Success {
                    "success"
                } else {
                    "failure"
                });
                Ok(Outcome::Finished)
            }
            // Our lease ran out and another worker took over; it will finish the task.
            Err(DomainError::Conflict(_)) => {
                attempt.ended("lease_lost");
                Ok(Outcome::Retry)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the task for this worker, or says why not.
    async fn claim(&self, id: TaskId) -> DomainResult<Claim> {
        let mut contention = Contention::begin();
        loop {
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
                // Nobody holds it (no live lease): release what it held before the failure
                // shows, as a worker that fails a task does.
                self.after_failure(&task).await;
                task.finish(Err(message), self.ttl(), at)?
            } else {
                task.claim(self.lease_span(), at)?
            };
            match save_task(&*self.tasks, &next, &task).await {
                Ok(()) if next.status.is_final() => return Ok(Claim::Gone),
                Ok(()) => return Ok(Claim::Won(Box::new(next))),
                Err(DomainError::Conflict(_)) if contention.pause().await => {}
                Err(DomainError::Conflict(_)) => return Ok(Claim::Busy),
                Err(e) => return Err(e),
            }
        }
    }

    /// Renews the lease every third of its length; returns only when it was lost.
    async fn keep_lease(&self, held: &Mutex<Task>) {
        loop {
            tokio::time::sleep(self.settings.lease / 3).await;
            let mut task = held.lock().await;
            let Ok(next) = task.renew(self.lease_span(), now()) else {
                return;
            };
            match save_task(&*self.tasks, &next, &task).await {
                Ok(()) => *task = next,
                Err(DomainError::Conflict(_)) => return,
                // A store hiccup: keep working; the next beat tries again.
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "could not renew a task lease")
                }
            }
        }
    }

    /// Whether the stored task is still the version this worker holds.
    async fn still_holds(&self, held: &Task) -> bool {
        matches!(self.tasks.get(held.id).await, Ok(Some(stored)) if stored.version == held.version)
    }

    /// Gives the task back after a temporary failure, so the next delivery may retry it at once.
    async fn release(&self, task: &Task) {
        if let Ok(next) = task.release(now()) {
            let _ = save_task(&*self.tasks, &next, task).await;
        }
    }

    fn lease_span(&self) -> chrono::Duration {
        chrono_span(self.settings.lease)
    }

    /// How long a finished task's record stays readable.
    fn ttl(&self) -> chrono::Duration {
        chrono_span(self.settings.ttl)
    }

    /// Runs the task; `held` is the record this worker holds, for progress reports.
    async fn run(&self, task: &Task, held: &Mutex<Task>) -> DomainResult<Value> {
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
            TaskInput::ImageImport {
                image_id,
                method,
                stores,
                all_stores_must_succeed,
            } => {
                let run = ImportRun {
                    task: task.id.to_string(),
                    held,
                    image_id,
                    all_must_succeed: all_stores_must_succeed,
                    actor: Actor::of_task(task),
                };
                self.image_import(&run, &method, &stores).await
            }
        }
    }

    /// Undoes what a failed task left: an import's half-made image, an interoperable
    /// import's hold on its image (back to `queued`, the stores named in
    /// `os_glance_failed_import`) and its staged data. Problems are logged: the failure
    /// being reported matters more.
    async fn after_failure(&self, task: &Task) {
        match task.parsed_input() {
            Ok(TaskInput::Import { .. }) => {
                if let Some(image_id) = task.image_id {
                    self.data
                        .discard_unfinished(image_id, &task.owner, &Actor::of_task(task))
                        .await;
                }
            }
            Ok(TaskInput::ImageImport {
                image_id,
                method,
                stores,
                ..
            }) => {
                let ours = task.id.to_string();
                let released = self
                    .access
                    .release_import(image_id, &ours, &stores, &Actor::of_task(task))
                    .await;
                if let Err(e) = released {
                    tracing::warn!(image = %image_id, error = %e, "could not release a failed import's image");
                }
                if method == ImportMethod::GlanceDirect {
                    self.remove_staged(image_id).await;
                }
            }
            _ => {}
        }
    }

    /// The store Rackspace import tasks write (they name none).
    fn default_store(&self) -> &str {
        &self.data.stores().catalog().default
    }

    async fn remove_staged(&self, image_id: ImageId) {
        if let Err(e) = self.data.delete_staged(image_id).await {
            tracing::warn!(image = %image_id, error = %e, "could not remove staged data; the bucket lifecycle rule will");
        }
    }

    async fn import(&self, task: &Task, source: &ObjectPath, fresh: Image) -> DomainResult<Value> {
        let image_id = fresh.id;
        let actor = Actor::of_task(task);
        let existing = match self.access.find(image_id).await? {
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
        let received = match self.containers.open_for_import(&task.owner, source).await {
            Ok((size, body)) => match self.import_target(existing, fresh, &actor).await {
                Ok(image) => {
                    self.data
                        .receive_data(image, body, Some(size), self.default_store(), &actor)
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        received.map(|_| json!({ "image_id": image_id.to_string() }))
    }

    /// The queued image an import writes: made now, or left by an earlier attempt.
    async fn import_target(
        &self,
        existing: Option<Image>,
        fresh: Image,
        actor: &Actor,
    ) -> DomainResult<Image> {
        match existing {
            // Left `saving` by a worker whose lease ran out: nobody else writes it now.
            Some(image) if image.status == ImageStatus::Saving => {
                self.access.requeue_abandoned(&image, actor).await
            }
            Some(image) => Ok(image),
            None => {
                self.access.insert(&fresh, actor).await?;
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
        let image = match self.access.find(image_id).await? {
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
        let plan = self.conversion(&image, stored, format, size).await?;
        let object = ObjectPath::new(
            container,
            &format!("{image_id}.{format}"),
            "input.receiving_swift_container",
        )?;
        let body = self.data.read(&image, plan.read_range).await?;
        self.containers
            .store_export(&task.owner, &object, converted(body, &plan))
            .await?;
        Ok(json!({ "export_location": object.to_string() }))
    }

    /// How the stored bytes become the requested format, or why they cannot.
    async fn conversion(
        &self,
        image: &Image,
        stored: DiskFormat,
        wanted: DiskFormat,
        size: u64,
    ) -> DomainResult<Conversion> {
        let image_id = image.id;
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
                let footer = collect_small(self.data.read(image, Some(tail)).await?).await?;
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

    /// Runs an `api_image_import` task: the staged data through the upload pipeline.
    pub(crate) async fn import_staged(
        &self,
        task: &Task,
        image_id: ImageId,
    ) -> DomainResult<Value> {
        let done = json!({ "image_id": image_id.to_string() });
        let image = match self.access.find(image_id).await? {
            Some(image) if image.is_owned_by(&task.owner) => image,
            _ => {
                return Err(DomainError::NotFound(format!(
                    "Image {image_id} was deleted before its staged data was imported"
                )));
            }
        };
        let image = match image.status {
            // An earlier attempt finished the image but not the task.
            ImageStatus::Active if task.attempts > 1 => return Ok(done),
            // Left `saving` by an earlier attempt of this task whose worker died; on a first
            // attempt it is someone's direct upload in progress, which must not be touched.
            ImageStatus::Saving if task.attempts > 1 => {
                self.access
                    .requeue_abandoned(&image, &Actor::of_task(task))
                    .await?
            }
            _ => image,
        };
        let (size, body) = self.data.open_staged(image_id).await?;
        self.data
            .receive_data(
                image,
                body,
                Some(size),
                self.default_store(),
                &Actor::of_task(task),
            )
            .await?;
        if let Err(e) = self.data.delete_staged(image_id).await {
            tracing::warn!(image = %image_id, error = %e, "could not remove imported staged data; the bucket lifecycle rule will");
        }
        Ok(done)
    }
}

/// How often a running import writes its progress on the image.
const PROGRESS_EVERY: Duration = Duration::from_secs(4);

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

/// The stored bytes as the export writes them: the read range, then what the plan appends.
fn converted(body: ByteStream, plan: &Conversion) -> ByteStream {
    let append = bytes::Bytes::copy_from_slice(&plan.append);
    let tail = futures_util::stream::iter((!append.is_empty()).then_some(Ok(append)));
    Box::pin(body.chain(tail))
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
