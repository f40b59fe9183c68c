//! Notifications: what changed, who changed it and when, with Glance's event names and
//! payload shapes, so consumers written for Glance's notifications read ours.
//!
//! An event is made with the change it describes and stored in the same atomic write
//! (the repositories take both); delivery happens later, at least once, and consumers
//! drop repeats by [`Event::id`].

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::identity::Caller;
use crate::image::{Image, ImageStatus, Visibility};
use crate::member::Member;
use crate::task::{Task, TaskStatus};

/// Glance's `publisher_id` is `image.<host>`; ours names the service, not a machine.
pub const PUBLISHER_ID: &str = "image.cloud-images";

/// Who made a change: the user and tenant of the request (or of the task it started) and
/// the request's `x-openstack-request-id`. Changes the service makes on its own (start-up
/// recovery) have none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user's id.
    pub user_id: Option<String>,
    /// The user's tenant.
    pub tenant_id: Option<String>,
    /// The request that made the change, or that created the task making it.
    pub request_id: Option<String>,
}

impl Actor {
    /// The caller of a request.
    pub fn of(caller: &Caller) -> Self {
        Self {
            user_id: Some(caller.user_id.to_string()),
            tenant_id: Some(caller.tenant_id.to_string()),
            request_id: caller.request_id.clone(),
        }
    }

    /// Whoever created `task`: its work is theirs.
    pub fn of_task(task: &Task) -> Self {
        Self {
            user_id: task.user_id.clone(),
            tenant_id: Some(task.owner.to_string()),
            request_id: task.request_id.clone(),
        }
    }

    /// The service itself.
    pub fn service() -> Self {
        Self::default()
    }
}

/// One notification, as delivered (JSON): oslo.messaging's envelope (`message_id`,
/// `publisher_id`, `event_type`, `priority`, `payload`, `timestamp`) with who made the
/// change beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event: consumers drop a repeated delivery by it.
    pub message_id: String,
    /// Always [`PUBLISHER_ID`].
    pub publisher_id: String,
    /// Glance's name: `image.create`, `image.member.update`, `task.success`, …
    pub event_type: String,
    /// Always `INFO`: failures are events of their own (`task.failure`).
    pub priority: String,
    /// When the change was made (microseconds, UTC).
    pub timestamp: String,
    /// The user who made the change.
    pub user_id: Option<String>,
    /// The user's tenant.
    pub tenant_id: Option<String>,
    /// The request that made the change.
    pub request_id: Option<String>,
    /// What changed, in Glance's shape for its kind.
    pub payload: Value,
}

impl Event {
    fn new(event_type: &str, actor: &Actor, at: DateTime<Utc>, payload: Value) -> Self {
        Self {
            message_id: uuid::Uuid::new_v4().to_string(),
            publisher_id: PUBLISHER_ID.to_owned(),
            event_type: event_type.to_owned(),
            priority: "INFO".to_owned(),
            timestamp: at.to_rfc3339_opts(SecondsFormat::Micros, true),
            user_id: actor.user_id.clone(),
            tenant_id: actor.tenant_id.clone(),
            request_id: actor.request_id.clone(),
            payload,
        }
    }
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn deleted_at(deleted: bool, at: DateTime<Utc>) -> Value {
    if deleted { json!(iso(at)) } else { Value::Null }
}

/// Glance's image payload (`format_image_notification`): the image without its locations.
fn image_payload(image: &Image, deleted: bool, at: DateTime<Utc>) -> Value {
    json!({
        "id": image.id.to_string(),
        "name": image.name,
        "status": if deleted { ImageStatus::Deleted } else { image.status },
        "created_at": iso(image.created_at),
        "updated_at": iso(image.updated_at),
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "protected": image.protected,
        "checksum": image.checksum,
        "owner": image.owner.as_deref(),
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "is_public": image.visibility == Visibility::Public,
        "visibility": image.visibility,
        "properties": image.properties,
        "tags": image.tags,
        "os_hidden": image.os_hidden,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "deleted": deleted,
        "deleted_at": deleted_at(deleted, at),
    })
}

/// Statuses in which an image's data is arriving.
fn receiving(status: ImageStatus) -> bool {
    matches!(
        status,
        ImageStatus::Saving | ImageStatus::Uploading | ImageStatus::Importing
    )
}

/// The events of an image change from `before` to `after` (`None`: not stored), in the
/// order Glance sends them: `image.create`; `image.prepare` as data starts arriving;
/// `image.upload` and `image.activate` when it landed; `image.update` for every save; and
/// `image.delete`.
pub fn image_events(
    before: Option<&Image>,
    after: Option<&Image>,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Vec<Event> {
    let event = |name: &str, image: &Image, deleted: bool| {
        Event::new(name, actor, at, image_payload(image, deleted, at))
    };
    match (before, after) {
        (None, Some(created)) => vec![event("image.create", created, false)],
        (Some(gone), None) => vec![event("image.delete", gone, true)],
        (Some(before), Some(after)) => {
            let mut events = Vec::new();
            if receiving(after.status) && !receiving(before.status) {
                events.push(event("image.prepare", after, false));
            }
            if after.status == ImageStatus::Active && receiving(before.status) {
                events.push(event("image.upload", after, false));
                events.push(event("image.activate", after, false));
            }
            events.push(event("image.update", after, false));
            events
        }
        (None, None) => Vec::new(),
    }
}

/// Glance's member payload (`format_image_member_notification`).
fn member_payload(member: &Member, deleted: bool, at: DateTime<Utc>) -> Value {
    json!({
        "image_id": member.image_id.to_string(),
        "member_id": member.member_id.to_string(),
        "status": member.status,
        "created_at": iso(member.created_at),
        "updated_at": iso(member.updated_at),
        "deleted": deleted,
        "deleted_at": deleted_at(deleted, at),
    })
}

/// What happened to a membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// The producer added the member.
    Created,
    /// The consumer answered.
    Updated,
    /// The producer removed the member.
    Deleted,
}

/// The event of a membership change.
pub fn member_event(
    member: &Member,
    change: MemberChange,
    actor: &Actor,
    at: DateTime<Utc>,
) -> Event {
    let (name, deleted) = match change {
        MemberChange::Created => ("image.member.create", false),
        MemberChange::Updated => ("image.member.update", false),
        MemberChange::Deleted => ("image.member.delete", true),
    };
    Event::new(name, actor, at, member_payload(member, deleted, at))
}

/// Glance's task payload (`format_task_notification`): never the input, which may hold
/// credentials.
fn task_payload(task: &Task) -> Value {
    json!({
        "id": task.id.to_string(),
        "type": task.kind,
        "status": task.status,
        "result": task.result,
        "owner": task.owner.to_string(),
        "message": if task.message.is_empty() { Value::Null } else { json!(task.message) },
        "expires_at": task.expires_at.map(iso),
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "deleted": false,
        "deleted_at": Value::Null,
    })
}

/// The event of a task change from `before` (`None`: created): `task.create`, then one
/// per status it enters (`task.processing`, `task.success`, `task.failure`). Saves that
/// keep the status (a lease renewed, progress noted) are not events.
pub fn task_events(before: Option<&Task>, after: &Task, at: DateTime<Utc>) -> Vec<Event> {
    let actor = Actor::of_task(after);
    let name = match before {
        None => "task.create",
        Some(before) if before.status == after.status => return Vec::new(),
        Some(_) => match after.status {
            TaskStatus::Processing => "task.processing",
            TaskStatus::Success => "task.success",
            TaskStatus::Failure => "task.failure",
            TaskStatus::Pending => return Vec::new(),
        },
    };
    vec![Event::new(name, &actor, at, task_payload(after))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::TenantId;
    use crate::image::ImageId;

    fn actor() -> Actor {
        Actor {
            user_id: Some("u1".into()),
            tenant_id: Some("t1".into()),
            request_id: Some("req-1".into()),
        }
    }

    fn image(status: ImageStatus) -> Image {
        let mut image = Image::new_queued(
            ImageId::random(),
            Some(TenantId::from_trusted("t1".to_owned())),
            Utc::now(),
        );
        image.status = status;
        image
    }

    fn names(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.event_type.as_str()).collect()
    }

    #[test]
    fn an_upload_that_lands_is_upload_activate_and_update_in_glances_order() {
        let saving = image(ImageStatus::Saving);
        let mut active = saving.clone();
        active.status = ImageStatus::Active;
        let events = image_events(Some(&saving), Some(&active), &actor(), Utc::now());
        assert_eq!(
            names(&events),
            ["image.upload", "image.activate", "image.update"]
        );
        assert_eq!(events[0].payload["status"], "active");
        assert_eq!(events[0].request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn data_starting_to_arrive_is_prepare_then_update() {
        let queued = image(ImageStatus::Queued);
        let mut saving = queued.clone();
        saving.status = ImageStatus::Saving;
        let events = image_events(Some(&queued), Some(&saving), &actor(), Utc::now());
        assert_eq!(names(&events), ["image.prepare", "image.update"]);
    }

    #[test]
    fn a_reactivation_is_only_an_update() {
        let deactivated = image(ImageStatus::Deactivated);
        let mut active = deactivated.clone();
        active.status = ImageStatus::Active;
        let events = image_events(Some(&deactivated), Some(&active), &actor(), Utc::now());
        assert_eq!(names(&events), ["image.update"]);
    }

    #[test]
    fn a_deleted_image_is_reported_deleted_with_when() {
        let gone = image(ImageStatus::Active);
        let at = Utc::now();
        let events = image_events(Some(&gone), None, &actor(), at);
        assert_eq!(names(&events), ["image.delete"]);
        assert_eq!(events[0].payload["deleted"], true);
        assert_eq!(events[0].payload["status"], "deleted");
        assert_eq!(events[0].payload["deleted_at"], json!(iso(at)));
    }

    #[test]
    fn every_event_has_its_own_id() {
        let created = image(ImageStatus::Queued);
        let first = image_events(None, Some(&created), &actor(), Utc::now());
        let second = image_events(None, Some(&created), &actor(), Utc::now());
        assert_ne!(first[0].message_id, second[0].message_id);
    }
}
