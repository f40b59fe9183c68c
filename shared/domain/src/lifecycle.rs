//! Every state change of an image or a task, in one place. A transition is a method that
//! checks the state it starts from against its table, moves to the next state, bumps the
//! version the store compares and sets on, stamps `updated_at`, and sets or clears the
//! fields that belong to the new state. The service and the adapters' start-up sweeps call
//! these methods; nothing else writes `status`, `version` or `updated_at`.
//!
//! `killed`, `deleted` and `pending_delete` are never entered (deleted images are removed).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::error::{DomainError, DomainResult};
use crate::image::{HashAlgo, Image, ImageStatus};
use crate::import::{
    FAILED_IMPORT, IMPORT_PROGRESS, IMPORT_TASK, IMPORTING_TO_STORES, STORES, split_list,
};
use crate::task::{Task, TaskProgress, TaskStatus};

/// Whether [`Image::merge_list`] adds or removes.
#[derive(Clone, Copy)]
enum Merge {
    Add,
    Remove,
}

/// What may happen to an image's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageTransition {
    /// Data starts arriving.
    BeginUpload,
    /// Data starts arriving in the staging area (`PUT .../stage`).
    BeginStage,
    /// An import task takes the image (`POST .../import`).
    BeginImport,
    /// The data arrived whole and passed every check.
    Activate,
    /// An upload, a stage or an import failed or was abandoned: back to no data.
    Requeue,
    /// Data downloads stop for non-admins.
    Deactivate,
    /// Undoes a deactivation.
    Reactivate,
}

impl ImageTransition {
    fn verb(self) -> &'static str {
        match self {
            Self::BeginUpload => "receive data",
            Self::BeginStage => "be staged",
            Self::BeginImport => "be imported",
            Self::Activate => "become active",
            Self::Requeue => "return to queued",
            Self::Deactivate => "be deactivated",
            Self::Reactivate => "be reactivated",
        }
    }
}

/// (from, transition, to): the image lifecycle.
pub const IMAGE_TRANSITIONS: &[(ImageStatus, ImageTransition, ImageStatus)] = &[
    (
        ImageStatus::Queued,
        ImageTransition::BeginUpload,
        ImageStatus::Saving,
    ),
    (
        ImageStatus::Saving,
        ImageTransition::Activate,
        ImageStatus::Active,
    ),
    (
        ImageStatus::Saving,
        ImageTransition::Requeue,
        ImageStatus::Queued,
    ),
    (
        ImageStatus::Queued,
        ImageTransition::BeginStage,
        ImageStatus::Uploading,
    ),
    (
        ImageStatus::Uploading,
        ImageTransition::Requeue,
        ImageStatus::Queued,
    ),
    (
        ImageStatus::Queued,
        ImageTransition::BeginImport,
        ImageStatus::Importing,
    ),
    (
        ImageStatus::Uploading,
        ImageTransition::BeginImport,
        ImageStatus::Importing,
    ),
    (
        ImageStatus::Importing,
        ImageTransition::Activate,
        ImageStatus::Active,
    ),
    (
        ImageStatus::Importing,
        ImageTransition::Requeue,
        ImageStatus::Queued,
    ),
    (
        ImageStatus::Active,
        ImageTransition::Deactivate,
        ImageStatus::Deactivated,
    ),
    (
        ImageStatus::Deactivated,
        ImageTransition::Reactivate,
        ImageStatus::Active,
    ),
];

/// What an upload learned about the bytes it stored: the fields an active image carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredData {
    /// Bytes stored.
    pub size: u64,
    /// The virtual size the format declares, if it does.
    pub virtual_size: Option<u64>,
    /// Hex MD5.
    pub checksum: String,
    /// The multihash algorithm.
    pub os_hash_algo: HashAlgo,
    /// Hex multihash.
    pub os_hash_value: String,
    /// The store holding them.
    pub store: String,
}

impl Image {
    fn step(&self, transition: ImageTransition, at: DateTime<Utc>) -> DomainResult<Image> {
        let to = IMAGE_TRANSITIONS
            .iter()
            .find(|(from, t, _)| *from == self.status && *t == transition)
            .map(|(_, _, to)| *to)
            .ok_or_else(|| {
                DomainError::Conflict(format!(
                    "An image in status '{}' cannot {}",
                    self.status,
                    transition.verb()
                ))
            })?;
        let mut next = self.clone();
        next.status = to;
        next.version = self.version + 1;
        next.updated_at = at;
        Ok(next)
    }

    /// `queued` → `saving`: an upload takes the image.
    pub fn begin_upload(&self, at: DateTime<Utc>) -> DomainResult<Image> {
        self.step(ImageTransition::BeginUpload, at)
    }

    /// `queued` → `uploading`: `PUT .../stage` takes the image.
    pub fn begin_stage(&self, at: DateTime<Utc>) -> DomainResult<Image> {
        self.step(ImageTransition::BeginStage, at)
    }

    /// `queued` or `uploading` → `importing` under import task `task`, which will write
    /// `stores`; a second import while one holds the image is refused (Glance's lock).
    pub fn begin_import(
        &self,
        task: &str,
        stores: &[String],
        at: DateTime<Utc>,
    ) -> DomainResult<Image> {
        self.check_no_import_running()?;
        let mut importing = self.step(ImageTransition::BeginImport, at)?;
        importing.mark_importing(task, stores);
        Ok(importing)
    }

    /// An active image taken by copy-image task `task` to more `stores`: the status stays.
    pub fn begin_copy(
        &self,
        task: &str,
        stores: &[String],
        at: DateTime<Utc>,
    ) -> DomainResult<Image> {
        self.check_no_import_running()?;
        if self.status != ImageStatus::Active {
            return Err(DomainError::Conflict(
                "Only images with status active can be targeted for copying".into(),
            ));
        }
        let mut copying = self.revise(self.clone(), at);
        copying.mark_importing(task, stores);
        Ok(copying)
    }

    /// Whether import task `task` holds the image.
    pub fn is_held_by(&self, task: &str) -> bool {
        self.properties.get(IMPORT_TASK).map(String::as_str) == Some(task)
    }

    fn check_no_import_running(&self) -> DomainResult<()> {
        match self.properties.get(IMPORT_TASK) {
            Some(task) => Err(DomainError::Conflict(format!(
                "Image has active task {task}"
            ))),
            None => Ok(()),
        }
    }

    /// Glance's bookkeeping at an import's start: the lock, the stores still to write (added
    /// to any listed), and the stores asked for again no longer listed as failed.
    fn mark_importing(&mut self, task: &str, stores: &[String]) {
        self.properties.insert(IMPORT_TASK.into(), task.into());
        self.merge_list(IMPORTING_TO_STORES, stores, Merge::Add);
        self.merge_list(FAILED_IMPORT, stores, Merge::Remove);
        self.properties.remove(IMPORT_PROGRESS);
    }

    /// Adds `stores` to, or removes them from, a comma-separated list property, which stays
    /// sorted and present (an empty string once empty), as Glance keeps its store lists.
    fn merge_list(&mut self, key: &str, stores: &[String], merge: Merge) {
        let mut listed: BTreeSet<String> = self
            .properties
            .get(key)
            .map(|value| split_list(value).into_iter().collect())
            .unwrap_or_default();
        for store in stores {
            match merge {
                Merge::Add => listed.insert(store.clone()),
                Merge::Remove => listed.remove(store),
            };
        }
        let joined = listed.into_iter().collect::<Vec<_>>().join(",");
        self.properties.insert(key.into(), joined);
    }

    /// The import's lock and progress gone: what every end of an import does. The store lists
    /// stay, as Glance leaves them, so a client sees where the import went.
    fn clear_import(&mut self) {
        for key in [IMPORT_TASK, IMPORT_PROGRESS] {
            self.properties.remove(key);
        }
    }

    /// A running import's progress, shown in [`IMPORT_PROGRESS`] (same status and version
    /// rules as any change).
    pub fn import_progress(&self, done: u64, total: Option<u64>, at: DateTime<Utc>) -> Image {
        let mut next = self.revise(self.clone(), at);
        let total = total.map(|t| t.to_string()).unwrap_or_default();
        next.properties
            .insert(IMPORT_PROGRESS.into(), format!("{done}/{total}"));
        next
    }

    /// `saving` → `active`, with what the upload stored.
    pub fn activate(&self, data: StoredData, at: DateTime<Utc>) -> DomainResult<Image> {
        let mut active = self.with_data(ImageTransition::Activate, data, at)?;
        for key in [
            IMPORT_TASK,
            IMPORTING_TO_STORES,
            IMPORT_PROGRESS,
            FAILED_IMPORT,
        ] {
            active.properties.remove(key);
        }
        Ok(active)
    }

    /// `importing` → `active` with what the import stored in its first store; the import
    /// still holds the image (more stores may follow) until [`Image::end_import`].
    pub fn activate_import(&self, data: StoredData, at: DateTime<Utc>) -> DomainResult<Image> {
        let store = data.store.clone();
        let mut active = self.with_data(ImageTransition::Activate, data, at)?;
        active.merge_list(IMPORTING_TO_STORES, &[store], Merge::Remove);
        active.properties.remove(IMPORT_PROGRESS);
        Ok(active)
    }

    fn with_data(
        &self,
        transition: ImageTransition,
        data: StoredData,
        at: DateTime<Utc>,
    ) -> DomainResult<Image> {
        let mut next = self.step(transition, at)?;
        next.size = Some(data.size);
        next.virtual_size = data.virtual_size;
        next.checksum = Some(data.checksum);
        next.os_hash_algo = Some(data.os_hash_algo.as_str().to_owned());
        next.os_hash_value = Some(data.os_hash_value);
        next.properties.insert(STORES.into(), data.store);
        Ok(next)
    }

    /// An import (or copy) wrote the image's data to one more store.
    pub fn import_stored_in(&self, store: &str, at: DateTime<Utc>) -> Image {
        let mut next = self.revise(self.clone(), at);
        let store = [store.to_owned()];
        next.merge_list(STORES, &store, Merge::Add);
        next.merge_list(IMPORTING_TO_STORES, &store, Merge::Remove);
        next
    }

    /// An import (or copy) could not write one store, and goes on without it.
    pub fn import_failed_in(&self, store: &str, at: DateTime<Utc>) -> Image {
        let mut next = self.revise(self.clone(), at);
        let store = [store.to_owned()];
        next.merge_list(FAILED_IMPORT, &store, Merge::Add);
        next.merge_list(IMPORTING_TO_STORES, &store, Merge::Remove);
        next
    }

    /// The image's data no longer in `store` (removed from it, or a failed copy undone).
    pub fn without_store(&self, store: &str, at: DateTime<Utc>) -> Image {
        let mut next = self.revise(self.clone(), at);
        next.merge_list(STORES, &[store.to_owned()], Merge::Remove);
        next
    }

    /// A successful import lets go of the (active) image.
    pub fn end_import(&self, at: DateTime<Utc>) -> Image {
        let mut next = self.revise(self.clone(), at);
        next.clear_import();
        next
    }

    /// `saving`, `uploading` or `importing` → `queued`: a queued image has no size,
    /// checksum or multihash, is in no store, and has no import running.
    pub fn requeue(&self, at: DateTime<Utc>) -> DomainResult<Image> {
        let mut queued = self.step(ImageTransition::Requeue, at)?;
        queued.size = None;
        queued.virtual_size = None;
        queued.checksum = None;
        queued.os_hash_algo = None;
        queued.os_hash_value = None;
        queued.clear_import();
        queued.properties.remove(STORES);
        Ok(queued)
    }

    /// An import that failed to write `failed`: back to `queued` (an active image being
    /// copied stays active), with those stores moved from [`IMPORTING_TO_STORES`] to
    /// [`FAILED_IMPORT`].
    pub fn fail_import(&self, failed: &[String], at: DateTime<Utc>) -> DomainResult<Image> {
        let mut next = if self.status == ImageStatus::Active {
            let mut copying = self.revise(self.clone(), at);
            copying.clear_import();
            copying
        } else {
            self.requeue(at)?
        };
        next.merge_list(IMPORTING_TO_STORES, failed, Merge::Remove);
        next.merge_list(FAILED_IMPORT, failed, Merge::Add);
        Ok(next)
    }

    /// `active` → `deactivated`.
    pub fn deactivate(&self, at: DateTime<Utc>) -> DomainResult<Image> {
        self.step(ImageTransition::Deactivate, at)
    }

    /// `deactivated` → `active`.
    pub fn reactivate(&self, at: DateTime<Utc>) -> DomainResult<Image> {
        self.step(ImageTransition::Reactivate, at)
    }

    /// A change of metadata (`edited`, made from this image) as the next version; the status
    /// stays what it is.
    pub fn revise(&self, mut edited: Image, at: DateTime<Utc>) -> Image {
        edited.status = self.status;
        edited.version = self.version + 1;
        edited.updated_at = at;
        edited
    }
}

/// What may happen to a task's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskTransition {
    /// A worker takes it, holding a lease (also a takeover once another's lease ran out).
    Claim,
    /// The worker holding it extends its lease.
    Renew,
    /// The worker holding it says how far it got.
    Progress,
    /// The worker gives it back for a retry (its lease ends now).
    Release,
    /// It ends, in success or failure.
    Finish,
}

/// (from, transition, to): the task lifecycle. `Finish` leads to success or failure by its
/// outcome; both are final.
pub const TASK_TRANSITIONS: &[(TaskStatus, TaskTransition, &[TaskStatus])] = &[
    (
        TaskStatus::Pending,
        TaskTransition::Claim,
        &[TaskStatus::Processing],
    ),
    (
        TaskStatus::Processing,
        TaskTransition::Claim,
        &[TaskStatus::Processing],
    ),
    (
        TaskStatus::Processing,
        TaskTransition::Renew,
        &[TaskStatus::Processing],
    ),
    (
        TaskStatus::Processing,
        TaskTransition::Release,
        &[TaskStatus::Processing],
    ),
    (
        TaskStatus::Processing,
        TaskTransition::Progress,
        &[TaskStatus::Processing],
    ),
    (
        TaskStatus::Pending,
        TaskTransition::Finish,
        &[TaskStatus::Success, TaskStatus::Failure],
    ),
    (
        TaskStatus::Processing,
        TaskTransition::Finish,
        &[TaskStatus::Success, TaskStatus::Failure],
    ),
];

impl Task {
    fn step(
        &self,
        transition: TaskTransition,
        to: TaskStatus,
        at: DateTime<Utc>,
    ) -> DomainResult<Task> {
        let allowed = TASK_TRANSITIONS.iter().any(|(from, t, targets)| {
            *from == self.status && *t == transition && targets.contains(&to)
        });
        if !allowed {
            return Err(DomainError::Conflict(format!(
                "A task in status '{}' cannot {transition:?} to '{to}'",
                self.status
            )));
        }
        let mut next = self.clone();
        next.status = to;
        next.version = self.version + 1;
        next.updated_at = at;
        Ok(next)
    }

    /// Taken by a worker until `at + lease`: refused while another worker's lease holds.
    pub fn claim(&self, lease: Duration, at: DateTime<Utc>) -> DomainResult<Task> {
        if self.lease_until.is_some_and(|until| until > at) {
            return Err(DomainError::Conflict(
                "Another worker holds the task".into(),
            ));
        }
        let mut next = self.step(TaskTransition::Claim, TaskStatus::Processing, at)?;
        next.attempts += 1;
        next.lease_until = Some(at + lease);
        Ok(next)
    }

    /// The lease extended to `at + lease`.
    pub fn renew(&self, lease: Duration, at: DateTime<Utc>) -> DomainResult<Task> {
        let mut next = self.step(TaskTransition::Renew, TaskStatus::Processing, at)?;
        next.lease_until = Some(at + lease);
        Ok(next)
    }

    /// How far it got. A checkpoint beyond every earlier one proves the task moves on, so
    /// its interruptions count again from this attempt: an import that needs several
    /// 15-minute Lambda runs is not failed for being big.
    pub fn progressed(&self, progress: TaskProgress, at: DateTime<Utc>) -> DomainResult<Task> {
        let mut next = self.step(TaskTransition::Progress, TaskStatus::Processing, at)?;
        let saved_before = self.progress.and_then(|p| p.checkpoint);
        if progress.checkpoint > saved_before {
            next.attempts = next.attempts.min(1);
        }
        next.progress = Some(progress);
        Ok(next)
    }

    /// Given back: the lease ends now, so the next delivery may take it at once.
    pub fn release(&self, at: DateTime<Utc>) -> DomainResult<Task> {
        let mut next = self.step(TaskTransition::Release, TaskStatus::Processing, at)?;
        next.lease_until = Some(at);
        Ok(next)
    }

    /// Final: `result` on success, a message on failure; the record expires `ttl` later.
    pub fn finish(
        &self,
        outcome: Result<Value, String>,
        ttl: Duration,
        at: DateTime<Utc>,
    ) -> DomainResult<Task> {
        let to = if outcome.is_ok() {
            TaskStatus::Success
        } else {
            TaskStatus::Failure
        };
        let mut next = self.step(TaskTransition::Finish, to, at)?;
        match outcome {
            Ok(result) => {
                next.result = Some(result);
                next.message = String::new();
            }
            Err(message) => next.message = message,
        }
        next.expires_at = Some(at + ttl);
        next.lease_until = None;
        Ok(next)
    }
}

#[cfg(test)]
mod tests;
