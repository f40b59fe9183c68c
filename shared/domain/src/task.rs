//! Import and export tasks: their inputs, their lifecycle, and where their objects live.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DomainError, DomainResult, Misdirection};
use crate::identity::TenantId;
use crate::image::{ContainerFormat, DiskFormat, ImageId, name_enum};
use crate::import::{ImportMethod, ImportRequest};

/// Identifies a task: a UUID, written in its hyphenated lowercase form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(uuid::Uuid);

impl TaskId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses a caller-supplied id; anything but a UUID is `Invalid`.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        uuid::Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| DomainError::Invalid(format!("'{raw}' is not a valid task id (a UUID)")))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

name_enum!(
    /// What a task does.
    TaskType, "task type" {
        /// Creates an image from an object in the tenant's object storage.
        Import => "import",
        /// Writes an image's data to an object in the tenant's object storage.
        Export => "export",
        /// Checks a staged upload and makes it the image's data (Glance's name for the task
        /// behind its image import); created by the service, never by `POST /v2/tasks`.
        ApiImageImport => "api_image_import",
    }
);

name_enum!(
    /// Where a task is in its lifecycle: `pending → processing → success | failure`.
    TaskStatus, "task status" {
        /// Accepted, waiting for a worker.
        Pending => "pending",
        /// A worker holds it.
        Processing => "processing",
        /// Done; `result` says what was made.
        Success => "success",
        /// Done; `message` says why it failed.
        Failure => "failure",
    }
);

impl TaskStatus {
    /// Whether the task has ended.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failure)
    }
}

/// Longest container name, as Swift allows.
const MAX_CONTAINER: usize = 256;
/// Longest object name, as Swift and S3 allow.
const MAX_OBJECT: usize = 1024;

/// An object in one of the task owner's containers: `<container>/<object>`.
///
/// Names are checked so that they can only ever address a place inside the owner's own
/// containers, whether the store is a directory tree or a bucket prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectPath {
    /// The container (a directory, or a key prefix).
    pub container: String,
    /// The object's name inside the container; may contain `/`.
    pub object: String,
}

impl ObjectPath {
    /// Parses `<container>/<object>`.
    pub fn parse(raw: &str, field: &str) -> DomainResult<Self> {
        let Some((container, object)) = raw.split_once('/') else {
            return Err(DomainError::Invalid(format!(
                "{field} must be '<container>/<object>', not '{raw}'"
            )));
        };
        Ok(Self {
            container: check_container(container, field)?,
            object: check_object(object, field)?,
        })
    }

    /// An object in a container, both checked.
    pub fn new(container: &str, object: &str, field: &str) -> DomainResult<Self> {
        Ok(Self {
            container: check_container(container, field)?,
            object: check_object(object, field)?,
        })
    }
}

/// A stored path is checked again when read back, like one a client sent.
impl TryFrom<String> for ObjectPath {
    type Error = DomainError;
    fn try_from(raw: String) -> DomainResult<Self> {
        Self::parse(&raw, "a stored object path")
    }
}

impl From<ObjectPath> for String {
    fn from(path: ObjectPath) -> Self {
        path.to_string()
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container, self.object)
    }
}

/// A tenant id as the first segment of an object's place: it must name one directory or
/// key segment, never a path that climbs out of or across tenants.
pub fn check_tenant_segment(tenant: &str) -> DomainResult<&str> {
    if tenant.is_empty() || tenant.starts_with('.') || tenant.contains(['/', '\\']) {
        return Err(DomainError::Invalid(format!(
            "'{tenant}' is not a valid tenant id for object storage"
        )));
    }
    Ok(tenant)
}

/// A container name: letters, digits, `.`, `_` and `-`, not starting with a dot.
pub fn check_container(name: &str, field: &str) -> DomainResult<String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_CONTAINER
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(DomainError::Invalid(format!(
            "{field}: '{name}' is not a valid container name (1 to {MAX_CONTAINER} letters, digits, '.', '_' or '-', not starting with '.')"
        )))
    }
}

fn check_object(name: &str, field: &str) -> DomainResult<String> {
    let segments_ok = name
        .split('/')
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    let valid = !name.is_empty()
        && name.len() <= MAX_OBJECT
        && segments_ok
        && !name.starts_with('.')
        && !name.chars().any(|c| c.is_control() || c == '\\');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(DomainError::Invalid(format!(
            "{field}: '{name}' is not a valid object name (1 to {MAX_OBJECT} bytes, no empty, '.' or '..' path segments, no leading '.', no control characters or '\\')"
        )))
    }
}

/// What a task was asked to do, parsed from its `input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskInput {
    /// Make an image from an object.
    Import {
        /// The object to read.
        source: ObjectPath,
        /// The format the object must have.
        disk_format: DiskFormat,
        /// The container format recorded on the image.
        container_format: ContainerFormat,
        /// The new image's name.
        name: Option<String>,
    },
    /// Write an image to a container.
    Export {
        /// The image to write.
        image_id: ImageId,
        /// The receiving container.
        container: String,
        /// The format to write (converted from the stored one when they differ).
        format: DiskFormat,
    },
    /// Make a staged upload the data of a queued image.
    Staged {
        /// The image the data was staged for.
        image_id: ImageId,
    },
    /// An interoperable import (`POST /v2/images/{id}/import`).
    ImageImport {
        /// The image imported to.
        image_id: ImageId,
        /// Where the data comes from.
        method: ImportMethod,
        /// The stores written, in order.
        stores: Vec<String>,
        /// Whether one store's failure fails the import.
        all_stores_must_succeed: bool,
    },
}

/// Rackspace imports and exports VHD unless told otherwise.
pub const DEFAULT_TASK_FORMAT: DiskFormat = DiskFormat::Vhd;

fn input_object(input: &Value, kind: TaskType) -> DomainResult<&Map<String, Value>> {
    input.as_object().ok_or_else(|| {
        DomainError::Invalid(format!("input must be a JSON object for an {kind} task"))
    })
}

fn only_keys(object: &Map<String, Value>, allowed: &[&str], place: &str) -> DomainResult<()> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(DomainError::Invalid(format!(
            "{place}.{unknown} is not accepted; allowed: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    place: &str,
) -> DomainResult<Option<&'a str>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DomainError::Invalid(format!(
            "{place}.{key} must be a string"
        ))),
    }
}

fn required<'a>(object: &'a Map<String, Value>, key: &str, place: &str) -> DomainResult<&'a str> {
    string_field(object, key, place)?
        .ok_or_else(|| DomainError::Invalid(format!("{place}.{key} is required")))
}

fn format_field(
    object: &Map<String, Value>,
    key: &str,
    place: &str,
) -> DomainResult<Option<DiskFormat>> {
    string_field(object, key, place)?
        .map(|raw| {
            raw.parse::<DiskFormat>()
                .map_err(|e| DomainError::Invalid(format!("{place}.{key}: {e}")))
        })
        .transpose()
}

impl TaskInput {
    /// Parses and checks the `input` of a task of type `kind`, naming any field it refuses.
    pub fn parse(kind: TaskType, input: &Value) -> DomainResult<Self> {
        let object = input_object(input, kind)?;
        match kind {
            TaskType::Import => Self::parse_import(object),
            TaskType::Export => Self::parse_export(object),
            TaskType::ApiImageImport => {
                only_keys(object, &["image_id"], "input")?;
                let raw_id = required(object, "image_id", "input")?;
                let image_id = ImageId::parse(raw_id).map_err(|_| {
                    DomainError::Invalid(format!("input.image_id: '{raw_id}' is not a UUID"))
                })?;
                Ok(TaskInput::Staged { image_id })
            }
        }
    }

    fn parse_import(object: &Map<String, Value>) -> DomainResult<Self> {
        only_keys(
            object,
            &["import_from", "import_from_format", "image_properties"],
            "input",
        )?;
        let source = ObjectPath::parse(
            required(object, "import_from", "input")?,
            "input.import_from",
        )?;
        let from_format = format_field(object, "import_from_format", "input")?;
        let empty = Map::new();
        let properties = match object.get("image_properties") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => {
                return Err(DomainError::Invalid(
                    "input.image_properties must be an object".into(),
                ));
            }
        };
        let place = "input.image_properties";
        only_keys(
            properties,
            &["name", "disk_format", "container_format"],
            place,
        )?;
        let property_format = format_field(properties, "disk_format", place)?;
        let disk_format = match (from_format, property_format) {
            (Some(a), Some(b)) if a != b => {
                return Err(DomainError::Invalid(format!(
                    "input.import_from_format ({a}) and input.image_properties.disk_format ({b}) disagree"
                )));
            }
            (a, b) => a.or(b).unwrap_or(DEFAULT_TASK_FORMAT),
        };
        let container_format = string_field(properties, "container_format", place)?
            .map(|raw| {
                raw.parse::<ContainerFormat>()
                    .map_err(|e| DomainError::Invalid(format!("{place}.container_format: {e}")))
            })
            .transpose()?
            .unwrap_or(ContainerFormat::Bare);
        let name = string_field(properties, "name", place)?.map(str::to_owned);
        if name.as_ref().is_some_and(|n| n.chars().count() > 255) {
            return Err(DomainError::Invalid(format!(
                "{place}.name is longer than 255 characters"
            )));
        }
        Ok(TaskInput::Import {
            source,
            disk_format,
            container_format,
            name,
        })
    }

    fn parse_export(object: &Map<String, Value>) -> DomainResult<Self> {
        only_keys(
            object,
            &["image_uuid", "receiving_swift_container", "export_format"],
            "input",
        )?;
        let raw_id = required(object, "image_uuid", "input")?;
        let image_id = ImageId::parse(raw_id).map_err(|_| {
            DomainError::Invalid(format!("input.image_uuid: '{raw_id}' is not a UUID"))
        })?;
        let container = check_container(
            required(object, "receiving_swift_container", "input")?,
            "input.receiving_swift_container",
        )?;
        let format = format_field(object, "export_format", "input")?.unwrap_or(DEFAULT_TASK_FORMAT);
        Ok(TaskInput::Export {
            image_id,
            container,
            format,
        })
    }
}

/// A `POST /v2/tasks` request, checked: its type and its input, parsed once at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Import or export (`api_image_import` tasks come from staging only).
    pub kind: TaskType,
    /// The input as the client sent it, shown back as sent.
    pub input: Value,
    /// The same input, typed.
    pub parsed: TaskInput,
}

impl NewTask {
    /// Checks a create body: only `type` and `input`, a known type a client may create, and an
    /// input that type accepts.
    pub fn parse(body: &Map<String, Value>) -> DomainResult<Self> {
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
        let parsed = TaskInput::parse(kind, &input)?;
        Ok(Self {
            kind,
            input,
            parsed,
        })
    }

    /// The `api_image_import` task a completed staged upload makes.
    pub fn staged(image_id: ImageId) -> Self {
        Self {
            kind: TaskType::ApiImageImport,
            input: serde_json::json!({ "image_id": image_id.to_string() }),
            parsed: TaskInput::Staged { image_id },
        }
    }

    /// The `api_image_import` task an import request makes, writing `stores`; its input
    /// reads as Glance's (`image_id`, `import_req`, `backend`).
    pub fn image_import(image_id: ImageId, request: &ImportRequest, stores: Vec<String>) -> Self {
        Self {
            kind: TaskType::ApiImageImport,
            input: serde_json::json!({
                "image_id": image_id.to_string(),
                "import_req": request.body,
                "backend": stores,
            }),
            parsed: TaskInput::ImageImport {
                image_id,
                method: request.method.clone(),
                stores,
                all_stores_must_succeed: request.all_stores_must_succeed,
            },
        }
    }

    /// The image the task works on, when it is known at creation.
    fn image_id(&self) -> Option<ImageId> {
        match &self.parsed {
            TaskInput::Import { .. } => Some(ImageId::random()),
            TaskInput::Staged { image_id } | TaskInput::ImageImport { image_id, .. } => {
                Some(*image_id)
            }
            TaskInput::Export { .. } => None,
        }
    }
}

/// How far a task that moves bytes got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskProgress {
    /// Bytes moved so far.
    pub done: u64,
    /// Bytes in all, when known.
    pub total: Option<u64>,
    /// Bytes safely stored at the last checkpoint: a delivery after an interruption goes
    /// on from there instead of starting over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
}

/// A task record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Identifier.
    pub id: TaskId,
    /// Import or export.
    #[serde(rename = "type")]
    pub kind: TaskType,
    /// Lifecycle status.
    pub status: TaskStatus,
    /// The input as the caller sent it (already checked), shown back as sent.
    pub input: Value,
    /// The same input, typed when the task was created. `None` only in records written
    /// before typed inputs were stored; those are parsed when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_input: Option<TaskInput>,
    /// What a successful task made: `image_id` or `export_location`.
    pub result: Option<Value>,
    /// The tenant that created it.
    pub owner: TenantId,
    /// Why it failed, in words a user can act on; empty otherwise.
    pub message: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When a finished task's record goes away; `None` until it finishes.
    pub expires_at: Option<DateTime<Utc>>,
    /// Until when the worker processing it holds it; a later worker may take it over.
    pub lease_until: Option<DateTime<Utc>>,
    /// How many times a worker started it.
    pub attempts: u32,
    /// The image an import makes (its id fixed at creation so every attempt makes the same
    /// one) or imports to.
    pub image_id: Option<ImageId>,
    /// The `x-openstack-request-id` of the request that made it.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The user who made it.
    #[serde(default)]
    pub user_id: Option<String>,
    /// How far a running import got, as its worker last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<TaskProgress>,
    /// Compare-and-set version.
    pub version: u64,
}

impl Task {
    /// Records who made the task: the caller's user and request, whose the task's work and
    /// events are.
    pub fn record_maker(&mut self, caller: &crate::identity::Caller) {
        self.request_id = caller.request_id.clone();
        self.user_id = Some(caller.user_id.to_string());
    }

    /// A new pending task of `owner`, as asked for.
    pub fn new_pending(new: NewTask, owner: TenantId, at: DateTime<Utc>) -> Self {
        let kind = new.kind;
        let image_id = new.image_id();
        Self {
            id: TaskId::random(),
            kind,
            status: TaskStatus::Pending,
            input: new.input,
            typed_input: Some(new.parsed),
            result: None,
            owner,
            message: String::new(),
            created_at: at,
            updated_at: at,
            expires_at: None,
            lease_until: None,
            attempts: 0,
            image_id,
            request_id: None,
            user_id: None,
            progress: None,
            version: 1,
        }
    }

    /// What the task was asked to do: the input typed at creation (parsed from the input
    /// as sent only for records older than typed inputs).
    pub fn parsed_input(&self) -> DomainResult<TaskInput> {
        match &self.typed_input {
            Some(typed) => Ok(typed.clone()),
            None => TaskInput::parse(self.kind, &self.input),
        }
    }

    /// Whether the record is past its expiry at `now` (and so no longer exists for anyone).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

name_enum!(
    /// What a task list is ordered by.
    TaskSortKey, "task sort key" {
        /// Creation time (the default).
        CreatedAt => "created_at",
        /// Last change.
        UpdatedAt => "updated_at",
        /// Identifier.
        Id => "id",
        /// Status.
        Status => "status",
        /// Type.
        Type => "type",
    }
);

/// A parsed `GET /v2/tasks` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskListQuery {
    /// Only tasks of this type.
    pub kind: Option<TaskType>,
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Order.
    pub sort_key: TaskSortKey,
    /// Descending (the default) or ascending.
    pub descending: bool,
    /// Page size.
    pub limit: usize,
    /// The last task of the previous page.
    pub marker: Option<TaskId>,
}

impl TaskListQuery {
    /// Parses query pairs; unknown parameters and bad values are `Invalid`, naming them.
    pub fn parse(
        pairs: &[(String, String)],
        default_limit: usize,
        max_limit: usize,
    ) -> DomainResult<Self> {
        let mut query = Self {
            kind: None,
            status: None,
            sort_key: TaskSortKey::CreatedAt,
            descending: true,
            limit: default_limit,
            marker: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                "type" => query.kind = Some(value.parse()?),
                "status" => query.status = Some(value.parse()?),
                "sort_key" => query.sort_key = value.parse()?,
                "sort_dir" => {
                    query.descending = match value.as_str() {
                        "asc" => false,
                        "desc" => true,
                        other => {
                            return Err(DomainError::Invalid(format!(
                                "'{other}' is not a valid sort_dir; allowed: asc, desc"
                            )));
                        }
                    }
                }
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        DomainError::Invalid(format!(
                            "limit must be a non-negative integer, not '{value}'"
                        ))
                    })?;
                    query.limit = limit.min(max_limit);
                }
                "marker" => query.marker = Some(TaskId::parse(value)?),
                other => {
                    return Err(DomainError::Invalid(format!(
                        "'{other}' is not a task list parameter; use type, status, sort_key, sort_dir, limit or marker"
                    )));
                }
            }
        }
        Ok(query)
    }

    fn keeps(&self, task: &Task) -> bool {
        self.kind.is_none_or(|k| k == task.kind) && self.status.is_none_or(|s| s == task.status)
    }

    fn compare(&self, a: &Task, b: &Task) -> std::cmp::Ordering {
        let by_key = match self.sort_key {
            TaskSortKey::CreatedAt => a.created_at.cmp(&b.created_at),
            TaskSortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            TaskSortKey::Id => std::cmp::Ordering::Equal,
            TaskSortKey::Status => a.status.cmp(&b.status),
            TaskSortKey::Type => a.kind.cmp(&b.kind),
        };
        // The id breaks ties so the order is total and pages never repeat or skip.
        let order = by_key.then_with(|| a.id.cmp(&b.id));
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }

    /// One page of `tasks`: those matching, in order, after the marker; and whether more follow.
    /// `Invalid` when the marker is not among the caller's tasks.
    pub fn page(&self, mut tasks: Vec<Task>) -> DomainResult<(Vec<Task>, bool)> {
        tasks.sort_by(|a, b| self.compare(a, b));
        let start = match self.marker {
            None => 0,
            Some(marker) => {
                let at = tasks.iter().position(|t| t.id == marker).ok_or_else(|| {
                    DomainError::Invalid(format!("marker '{marker}' is not a task you can see"))
                })?;
                at + 1
            }
        };
        let mut page: Vec<Task> = tasks
            .into_iter()
            .skip(start)
            .filter(|t| self.keeps(t))
            .take(self.limit + 1)
            .collect();
        let has_more = page.len() > self.limit;
        page.truncate(self.limit);
        Ok((page, has_more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_import_input_parses_with_rackspace_defaults() {
        let input = json!({"import_from": "images/disk.vhd", "image_properties": {"name": "web"}});
        assert_eq!(
            TaskInput::parse(TaskType::Import, &input).expect("valid"),
            TaskInput::Import {
                source: ObjectPath {
                    container: "images".into(),
                    object: "disk.vhd".into()
                },
                disk_format: DiskFormat::Vhd,
                container_format: ContainerFormat::Bare,
                name: Some("web".into()),
            }
        );
    }

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_create_body_parses_into_its_type_and_typed_input_once() {
        let input = json!({"import_from": "images/disk.vhd"});
        let new = NewTask::parse(&body(json!({"type": "import", "input": input}))).expect("valid");
        assert_eq!(new.kind, TaskType::Import);
        assert_eq!(new.input, input);
        assert!(matches!(new.parsed, TaskInput::Import { .. }));
    }

    #[test]
    fn the_typed_input_is_stored_with_the_task_and_checked_again_when_read() {
        let input = json!({"import_from": "images/disk.vhd"});
        let new = NewTask::parse(&body(json!({"type": "import", "input": input}))).expect("valid");
        let at = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let task = Task::new_pending(new.clone(), TenantId::from_trusted("t"), at);
        let stored = serde_json::to_value(&task).expect("encode");
        assert_eq!(
            stored["typed_input"],
            json!({"kind": "import", "source": "images/disk.vhd", "disk_format": "vhd", "container_format": "bare", "name": null})
        );
        let read: Task = serde_json::from_value(stored.clone()).expect("decode");
        assert_eq!(read.parsed_input().expect("typed"), new.parsed);
        // A record from before typed inputs were stored is parsed from its input as sent.
        let mut old = stored.clone();
        old.as_object_mut().expect("object").remove("typed_input");
        let old: Task = serde_json::from_value(old).expect("decode an older record");
        assert_eq!(old.typed_input, None);
        assert_eq!(old.parsed_input().expect("parsed"), new.parsed);
        // A stored path is no more trusted than a sent one.
        let mut climbing = stored;
        climbing["typed_input"]["source"] = json!("../other-tenant/disk.vhd");
        assert!(serde_json::from_value::<Task>(climbing).is_err());
    }

    #[test]
    fn create_bodies_clients_may_not_send_are_refused() {
        let invalid = [
            json!({"type": "import", "input": {"import_from": "a/b"}, "extra": 1}),
            json!({"input": {"import_from": "a/b"}}),
            json!({"type": 7, "input": {}}),
            json!({"type": "import", "input": {}}),
        ];
        for case in invalid {
            assert!(
                matches!(
                    NewTask::parse(&body(case.clone())),
                    Err(DomainError::Invalid(_))
                ),
                "{case}"
            );
        }
        let staged = json!({"type": "api_image_import", "input": {"image_id": "x"}});
        assert!(matches!(
            NewTask::parse(&body(staged)),
            Err(DomainError::Misdirected(
                Misdirection::ImportTasksComeFromStaging
            ))
        ));
    }

    #[test]
    fn refused_inputs_name_the_field() {
        let cases = [
            (TaskType::Import, json!({}), "input.import_from is required"),
            (
                TaskType::Import,
                json!({"import_from": "nocontainer"}),
                "input.import_from",
            ),
            (
                TaskType::Import,
                json!({"import_from": "c/../x"}),
                "input.import_from",
            ),
            (
                TaskType::Import,
                json!({"import_from": "c/o", "import_from_format": "floppy"}),
                "input.import_from_format",
            ),
            (
                TaskType::Import,
                json!({"import_from": "c/o", "image_properties": {"visibility": "public"}}),
                "input.image_properties.visibility",
            ),
            (
                TaskType::Import,
                json!({"import_from": "c/o", "extra": 1}),
                "input.extra",
            ),
            (
                TaskType::Export,
                json!({"receiving_swift_container": "c"}),
                "input.image_uuid is required",
            ),
            (
                TaskType::Export,
                json!({"image_uuid": "nope", "receiving_swift_container": "c"}),
                "input.image_uuid",
            ),
            (
                TaskType::Export,
                json!({"image_uuid": "3f1b6c8e-8d47-4f55-9a3c-1e2d3c4b5a69", "receiving_swift_container": "../up"}),
                "input.receiving_swift_container",
            ),
            (TaskType::Export, json!([1]), "input must be a JSON object"),
        ];
        for (kind, input, expected) in cases {
            let message = TaskInput::parse(kind, &input)
                .expect_err("refused")
                .to_string();
            assert!(message.contains(expected), "{input}: {message}");
        }
    }

    #[test]
    fn conflicting_import_formats_are_refused() {
        let input = json!({"import_from": "c/o", "import_from_format": "vhd", "image_properties": {"disk_format": "qcow2"}});
        assert!(TaskInput::parse(TaskType::Import, &input).is_err());
    }

    #[test]
    fn object_names_cannot_escape_their_container() {
        for bad in [
            "c/",
            "c//x",
            "c/./x",
            "c/a/../../x",
            "../c/x",
            ".hidden/x",
            "c/.x",
            "c/a\\b",
            "c/a\nb",
        ] {
            assert!(ObjectPath::parse(bad, "f").is_err(), "{bad:?} accepted");
        }
        let ok = ObjectPath::parse("my-images/2026/web.vhd", "f").expect("valid");
        assert_eq!(ok.to_string(), "my-images/2026/web.vhd");
    }

    fn task_at(seconds: i64) -> Task {
        let at = DateTime::from_timestamp(seconds, 0).expect("time");
        let image = ImageId::parse("8e5c1c6e-0e2a-4d8b-9b64-0d6d2b4b2f10").expect("id");
        Task::new_pending(NewTask::staged(image), TenantId::from_trusted("t"), at)
    }

    #[test]
    fn pages_follow_the_marker_without_repeats() {
        let tasks: Vec<Task> = (0..5).map(task_at).collect();
        let pairs = [("limit".to_owned(), "2".to_owned())];
        let mut query = TaskListQuery::parse(&pairs, 25, 100).expect("query");
        let mut seen = Vec::new();
        loop {
            let (page, more) = query.page(tasks.clone()).expect("page");
            seen.extend(page.iter().map(|t| t.created_at.timestamp()));
            if !more {
                break;
            }
            query.marker = page.last().map(|t| t.id);
        }
        assert_eq!(seen, [4, 3, 2, 1, 0]);
    }

    #[test]
    fn expiry_is_inclusive_of_its_instant() {
        let mut task = task_at(0);
        let now = DateTime::from_timestamp(100, 0).expect("time");
        assert!(!task.is_expired(now));
        task.expires_at = Some(now);
        assert!(task.is_expired(now));
    }
}
