//! Every state change of an image or a task, in one place. A transition is a method that
//! checks the state it starts from against its table, moves to the next state, bumps the
//! version the store compares and sets on, stamps `updated_at`, and sets or clears the
//! fields that belong to the new state. The service and the adapters' start-up sweeps call
//! these methods; nothing else writes `status`, `version` or `updated_at`.
//!
//! Image statuses `uploading` and `importing` (interoperable import) get their rows here when
//! that flow exists; `killed`, `deleted` and `pending_delete` are never entered (deleted images
//! are removed).

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::error::{DomainError, DomainResult};
use crate::image::{HashAlgo, Image, ImageStatus};
use crate::task::{Task, TaskStatus};

/// What may happen to an image's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageTransition {
    /// Data starts arriving.
    BeginUpload,
    /// The data arrived whole and passed every check.
    Activate,
    /// An upload failed or was abandoned: back to no data.
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

    /// `saving` → `active`, with what the upload stored.
    pub fn activate(&self, data: StoredData, at: DateTime<Utc>) -> DomainResult<Image> {
        let mut active = self.step(ImageTransition::Activate, at)?;
        active.size = Some(data.size);
        active.virtual_size = data.virtual_size;
        active.checksum = Some(data.checksum);
        active.os_hash_algo = Some(data.os_hash_algo.as_str().to_owned());
        active.os_hash_value = Some(data.os_hash_value);
        Ok(active)
    }

    /// `saving` → `queued`: a queued image has no size, checksum or multihash.
    pub fn requeue(&self, at: DateTime<Utc>) -> DomainResult<Image> {
        let mut queued = self.step(ImageTransition::Requeue, at)?;
        queued.size = None;
        queued.virtual_size = None;
        queued.checksum = None;
        queued.os_hash_algo = None;
        queued.os_hash_value = None;
        Ok(queued)
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
