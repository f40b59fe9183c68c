//! `api_image_import` tasks: the bytes a method names enter the first store through the
//! upload pipeline (hashes, inspection, quota); every further store gets a copy of the first
//! (server-side where the stores can). `copy-image` only copies. As Glance does, each store
//! written leaves `os_glance_importing_to_stores` for `stores`, each store that failed goes
//! to `os_glance_failed_import`, and `all_stores_must_succeed` decides whether one store's
//! failure undoes the others.
//!
//! A retry of the task (its worker died or timed out) goes on from the stores the image
//! already records, and the bytes entering the first store go on from their last
//! checkpoint (see `image_data::resume`); the task's progress names that checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cloud_images_domain::events::Actor;
use cloud_images_domain::image::{Image, ImageId, ImageStatus};
use cloud_images_domain::import::ImportMethod;
use cloud_images_domain::lifecycle::StoredData;
use cloud_images_domain::task::{Task, TaskProgress};
use cloud_images_domain::{DomainError, DomainResult};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{PROGRESS_EVERY, TaskRunner};
use crate::access::now;
use crate::image_data::{ImportSource, ImportWatch};
use crate::tasks::save_task;

/// One run of an import, as its steps need it.
pub(super) struct ImportRun<'a> {
    /// The task, as the image's lock names it.
    pub task: String,
    /// The record this worker holds, for progress reports.
    pub held: &'a Mutex<Task>,
    /// The image.
    pub image_id: ImageId,
    /// Whether one store's failure fails the import.
    pub all_must_succeed: bool,
    /// Whoever created the task: the image's changes are theirs.
    pub actor: Actor,
}

/// How far an import's copies to further stores got: bytes landed of all they write.
struct CopyProgress {
    done: AtomicU64,
    total: u64,
}

/// What a running import reports on its task and image.
#[derive(Clone, Copy)]
enum Reading<'a> {
    /// The bytes entering the first store.
    Entry(&'a ImportWatch),
    /// The copies to further stores.
    Copies(&'a CopyProgress),
}

impl Reading<'_> {
    fn now(self) -> TaskProgress {
        match self {
            Self::Entry(watch) => {
                let checkpoint = watch.checkpoint.load(Ordering::Relaxed);
                TaskProgress {
                    done: watch.arrived.load(Ordering::Relaxed),
                    total: watch.total.get().copied().flatten(),
                    checkpoint: (checkpoint > 0).then_some(checkpoint),
                }
            }
            Self::Copies(copies) => TaskProgress {
                done: copies.done.load(Ordering::Relaxed),
                total: Some(copies.total),
                checkpoint: None,
            },
        }
    }

    /// Returns at the next checkpoint (never, for copies).
    async fn checkpointed(self) {
        match self {
            Self::Entry(watch) => watch.saved.notified().await,
            Self::Copies(_) => std::future::pending().await,
        }
    }
}

impl CopyProgress {
    fn of(size: u64, targets: &[String]) -> Self {
        Self {
            done: AtomicU64::new(0),
            total: size * targets.len() as u64,
        }
    }
}

impl TaskRunner {
    /// Runs an interoperable import of `image_id` into `stores`.
    pub(super) async fn image_import(
        &self,
        run: &ImportRun<'_>,
        method: &ImportMethod,
        stores: &[String],
    ) -> DomainResult<Value> {
        let done = json!({ "image_id": run.image_id.to_string() });
        let image = self.held_image(run).await?;
        let Some(image) = image else {
            // An earlier attempt finished the import but could not end the task.
            return Ok(done);
        };
        let holding = self.data.stores().catalog().holding(&image);
        let mut targets: Vec<String> = stores
            .iter()
            .filter(|store| !holding.contains(store))
            .cloned()
            .collect();
        if image.status != ImageStatus::Active {
            let (stored, rest) = self.enter(run, &image, method, &targets).await?;
            targets = rest;
            let first = stored.store.clone();
            let together = if run.all_must_succeed {
                std::mem::take(&mut targets)
            } else {
                Vec::new()
            };
            self.copy_all_or_none(run, &first, &together, stored.size)
                .await?;
            // With nothing left to copy the import ends as the image goes active, so no
            // client sees an active image still locked.
            self.activate(run, stored, &together, targets.is_empty())
                .await?;
        }
        self.copy_each(run, &targets).await?;
        self.access
            .update_found(run.image_id, &run.actor, |current| {
                Ok(current
                    .is_held_by(&run.task)
                    .then(|| current.end_import(now())))
            })
            .await?;
        if *method == ImportMethod::GlanceDirect {
            self.remove_staged(run.image_id).await;
        }
        Ok(done)
    }

    /// The bytes into the first of `targets` that takes them, through the upload pipeline;
    /// the stores left to copy to. A store that fails to take them is passed over, as
    /// Glance does, when the import may go on without it (and another store is left);
    /// anything else about the bytes (format, quota, the source) fails the import.
    async fn enter(
        &self,
        run: &ImportRun<'_>,
        image: &Image,
        method: &ImportMethod,
        targets: &[String],
    ) -> DomainResult<(StoredData, Vec<String>)> {
        for (n, store) in targets.iter().enumerate() {
            let is_last = n + 1 == targets.len();
            match self.receive_import(run, image, method, store).await {
                Ok(stored) => return Ok((stored, targets[n + 1..].to_vec())),
                Err(e @ DomainError::Unavailable { .. }) if !run.all_must_succeed && !is_last => {
                    tracing::warn!(image = %run.image_id, store = %store, error = %e, source = ?std::error::Error::source(&e), "a store could not take an import's bytes; trying the next");
                    self.record(run, |current| current.import_failed_in(store, now()))
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict("The import names no store".into()))
    }

    /// The image, if this import still holds it; `None` when an earlier attempt already
    /// finished the import (the task's end was what failed).
    async fn held_image(&self, run: &ImportRun<'_>) -> DomainResult<Option<Image>> {
        let owner = run.held.lock().await.owner.clone();
        let image = match self.access.find(run.image_id).await? {
            Some(image) if image.is_owned_by(&owner) => image,
            _ => {
                return Err(DomainError::NotFound(format!(
                    "Image {} was deleted before it was imported",
                    run.image_id
                )));
            }
        };
        if image.is_held_by(&run.task) {
            return Ok(Some(image));
        }
        let attempts = run.held.lock().await.attempts;
        if image.status == ImageStatus::Active && attempts > 1 {
            return Ok(None);
        }
        Err(DomainError::Conflict(format!(
            "Image {} is no longer held by this import",
            run.image_id
        )))
    }

    /// The method's bytes into `store` through the upload pipeline, with progress on the task
    /// and the image as they arrive.
    async fn receive_import(
        &self,
        run: &ImportRun<'_>,
        image: &Image,
        method: &ImportMethod,
        store: &str,
    ) -> DomainResult<StoredData> {
        let source = match method {
            ImportMethod::GlanceDirect => ImportSource::Staged,
            ImportMethod::WebDownload { uri } => ImportSource::Web {
                uri,
                web: self.web.as_ref(),
            },
            ImportMethod::CopyImage => {
                return Err(DomainError::Conflict(
                    "copy-image needs an active image to copy".into(),
                ));
            }
        };
        let watch = Arc::new(ImportWatch::default());
        tokio::select! {
            stored = self.data.import_data(image, source, store, watch.clone()) => stored,
            () = self.report_progress(run, Reading::Entry(&watch)) => unreachable!("reports until cancelled"),
        }
    }

    /// `importing` → `active`, in the first store and those copied with it; the import
    /// ends there when `last`.
    async fn activate(
        &self,
        run: &ImportRun<'_>,
        stored: StoredData,
        copied: &[String],
        last: bool,
    ) -> DomainResult<()> {
        let first = stored.store.clone();
        let activated = self
            .access
            .update_found(run.image_id, &run.actor, |current| {
                if current.status != ImageStatus::Importing || !current.is_held_by(&run.task) {
                    return Err(DomainError::Conflict(
                        "The image was deleted or changed during the import".into(),
                    ));
                }
                let mut active = current.activate_import(stored.clone(), now())?;
                for store in copied {
                    active = active.import_stored_in(store, now());
                }
                if last {
                    active = active.end_import(now());
                }
                Ok(Some(active))
            })
            .await;
        if activated.is_err() {
            self.delete_copies(run.image_id, &[first]).await;
            self.delete_copies(run.image_id, copied).await;
        }
        activated.map(|_| ())
    }

    /// Copies the data from `source` to every one of `targets` before the image goes
    /// active; the first that fails undoes them all and fails the import.
    async fn copy_all_or_none(
        &self,
        run: &ImportRun<'_>,
        source: &str,
        targets: &[String],
        size: u64,
    ) -> DomainResult<()> {
        let progress = CopyProgress::of(size, targets);
        for (n, target) in targets.iter().enumerate() {
            let copied = self.copy_checked(run, size, source, target, &progress);
            if let Err(e) = copied.await {
                self.delete_copies(run.image_id, &[source.to_owned()]).await;
                self.delete_copies(run.image_id, &targets[..n]).await;
                return Err(self.store_failed(run, target, e).await);
            }
        }
        Ok(())
    }

    /// Copies the active image's data to each of `targets` in turn, recording each store
    /// written or failed as it happens. With `all_must_succeed`, a failure undoes the copies
    /// this run made and fails the import (the image stays active in its other stores).
    async fn copy_each(&self, run: &ImportRun<'_>, targets: &[String]) -> DomainResult<()> {
        if targets.is_empty() {
            // (An import with nothing left to copy ended as its image went active.)
            return Ok(());
        }
        let mut copied = Vec::new();
        let size = self.held_now(run).await?.size.unwrap_or(0);
        let progress = CopyProgress::of(size, targets);
        for target in targets {
            let image = self.held_now(run).await?;
            let Some(source) = self
                .data
                .stores()
                .catalog()
                .holding(&image)
                .first()
                .cloned()
            else {
                return Err(DomainError::Conflict(format!(
                    "Image {} has no data to copy",
                    image.id
                )));
            };
            let result = self
                .copy_checked(run, size, &source, target, &progress)
                .await;
            match result {
                Ok(()) => {
                    self.record(run, |current| current.import_stored_in(target, now()))
                        .await?;
                    copied.push(target.clone());
                }
                Err(e) if run.all_must_succeed => {
                    self.undo_copies(run, &copied).await;
                    return Err(self.store_failed(run, target, e).await);
                }
                Err(e) => {
                    tracing::warn!(image = %run.image_id, store = %target, error = %e, source = ?std::error::Error::source(&e), "an import could not write a store and goes on without it");
                    self.record(run, |current| current.import_failed_in(target, now()))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A copy of the image's data (`size` bytes) from `source` to `target` that holds
    /// exactly those bytes, with progress on the task and the image while it runs.
    async fn copy_checked(
        &self,
        run: &ImportRun<'_>,
        size: u64,
        source: &str,
        target: &str,
        progress: &CopyProgress,
    ) -> DomainResult<()> {
        let stores = self.data.stores();
        let copied = tokio::select! {
            copied = stores.copy(run.image_id, source, target, &progress.done) => copied?,
            () = self.report_progress(run, Reading::Copies(progress)) => unreachable!("reports until cancelled"),
        };
        if copied != size {
            self.delete_copies(run.image_id, &[target.to_owned()]).await;
            return Err(DomainError::Conflict(format!(
                "the copy holds {copied} bytes, the image {size}"
            )));
        }
        Ok(())
    }

    /// The image as it is now, if this import still holds it.
    async fn held_now(&self, run: &ImportRun<'_>) -> DomainResult<Image> {
        match self.access.find(run.image_id).await? {
            Some(image) if image.is_held_by(&run.task) => Ok(image),
            _ => Err(DomainError::Conflict(format!(
                "Image {} was deleted or changed during the import",
                run.image_id
            ))),
        }
    }

    /// Stores `change` of the image while this import holds it.
    async fn record(
        &self,
        run: &ImportRun<'_>,
        change: impl Fn(&Image) -> Image,
    ) -> DomainResult<()> {
        self.access
            .update_found(run.image_id, &run.actor, |current| {
                if !current.is_held_by(&run.task) {
                    return Err(DomainError::Conflict(format!(
                        "Image {} was deleted or changed during the import",
                        run.image_id
                    )));
                }
                Ok(Some(change(current)))
            })
            .await
            .map(|_| ())
    }

    /// Takes the copies this run made off the image, then removes their bytes.
    async fn undo_copies(&self, run: &ImportRun<'_>, copied: &[String]) {
        for store in copied {
            let undone = self
                .record(run, |current| current.without_store(store, now()))
                .await;
            if let Err(e) = undone {
                tracing::warn!(image = %run.image_id, store = %store, error = %e, "could not take an undone copy off the image");
            }
        }
        self.delete_copies(run.image_id, copied).await;
    }

    /// Removes the image's bytes from `stores`; problems are logged, as the failure being
    /// reported matters more.
    async fn delete_copies(&self, id: ImageId, stores: &[String]) {
        for store in stores {
            let deleted = match self.data.stores().get(store) {
                Ok(target) => target.delete(id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = deleted {
                tracing::warn!(image = %id, store = %store, error = %e, "could not remove the data of an undone import");
            }
        }
    }

    /// Releases the image naming only `store` as failed (the task's failure path would name
    /// every store), and the final error the task reports.
    async fn store_failed(
        &self,
        run: &ImportRun<'_>,
        store: &str,
        error: DomainError,
    ) -> DomainError {
        tracing::warn!(image = %run.image_id, store = %store, error = %error, source = ?std::error::Error::source(&error), "an import could not write a store");
        let released = self
            .access
            .release_import(run.image_id, &run.task, &[store.to_owned()], &run.actor)
            .await;
        if let Err(e) = released {
            tracing::warn!(image = %run.image_id, error = %e, "could not release a failed import's image");
        }
        DomainError::Conflict(format!(
            "Writing the image's data to store '{store}' failed, and every store must succeed"
        ))
    }

    /// Writes the bytes imported so far on the task and in the image's progress property
    /// every [`PROGRESS_EVERY`] and at each checkpoint; never returns.
    async fn report_progress(&self, run: &ImportRun<'_>, reading: Reading<'_>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(PROGRESS_EVERY) => {}
                () = reading.checkpointed() => {}
            }
            let progress = reading.now();
            self.record_task_progress(run.held, progress).await;
            let reported =
                self.access
                    .update_found(run.image_id, &run.actor, |current| {
                        let holds = current.is_held_by(&run.task);
                        Ok(holds
                            .then(|| current.import_progress(progress.done, progress.total, now())))
                    })
                    .await;
            if let Err(e) = reported {
                tracing::warn!(image = %run.image_id, error = %e, "could not record import progress");
            }
        }
    }

    /// Stores the progress on the task this worker holds (as the lease heartbeat stores the
    /// lease: over the version it holds).
    async fn record_task_progress(&self, held: &Mutex<Task>, progress: TaskProgress) {
        let mut task = held.lock().await;
        let Ok(next) = task.progressed(progress, now()) else {
            return;
        };
        match save_task(&*self.tasks, &next, &task).await {
            Ok(()) => *task = next,
            Err(e) => tracing::warn!(task = %task.id, error = %e, "could not record task progress"),
        }
    }
}
