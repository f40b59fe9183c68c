//! Ports: what the use cases need from storage, implemented by the embedded and AWS adapters.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::containers::{AccountUsage, ContainerRecord, ObjectRecord};
use crate::error::{DomainError, DomainResult};
use crate::events::Event;
use crate::identity::{AccountName, Tenant, TenantId, User, UserId};
use crate::image::{Image, ImageId};
use crate::links::LinkAccess;
use crate::listing::ListQuery;
use crate::member::Member;
use crate::metadefs::{Contents, Namespace, NamespaceRecord, ResourceType};
use crate::quota::{TenantQuota, TenantUsage};
use crate::staging::PartPlan;
use crate::task::{ObjectPath, Task, TaskId};

/// Where tenants and users live. Names are unique; creating a duplicate is a `Conflict`.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Stores a new tenant; `Conflict` if the name is taken.
    async fn insert_tenant(&self, tenant: &Tenant) -> DomainResult<()>;
    /// Finds a tenant by name.
    async fn tenant_by_name(&self, name: &AccountName) -> DomainResult<Option<Tenant>>;
    /// Finds a tenant by id.
    async fn tenant_by_id(&self, id: &TenantId) -> DomainResult<Option<Tenant>>;
    /// Lists every tenant, ordered by name.
    async fn list_tenants(&self) -> DomainResult<Vec<Tenant>>;
    /// Stores a new user; `Conflict` if the name is taken.
    async fn insert_user(&self, user: &User) -> DomainResult<()>;
    /// Finds a user by name.
    async fn user_by_name(&self, name: &AccountName) -> DomainResult<Option<User>>;
    /// Finds a user by id.
    async fn user_by_id(&self, id: &UserId) -> DomainResult<Option<User>>;
    /// Lists every user, ordered by name.
    async fn list_users(&self) -> DomainResult<Vec<User>>;
    /// Replaces `current` with `next` (whose `revision` is one more) if the stored user is
    /// still at `current.revision`; `Conflict` when it moved on or when `next` takes a name
    /// another user has, `NotFound` when it is gone. Failed-login counts are not touched.
    async fn update_user(&self, next: &User, current: &User) -> DomainResult<()>;
    /// Deletes a user and frees its name; `NotFound` when it is already gone.
    async fn delete_user(&self, user: &User) -> DomainResult<()>;
    /// Deletes a tenant and frees its name; `NotFound` when it is already gone. Its users are
    /// deleted first (the store need not check).
    async fn delete_tenant(&self, tenant: &Tenant) -> DomainResult<()>;
    /// Counts one failed password login at `at`; concurrent counts all land.
    async fn record_failed_login(&self, user: &UserId, at: DateTime<Utc>) -> DomainResult<()>;
    /// Forgets a user's failed logins (a good login, or a lock that ran out).
    async fn clear_failed_logins(&self, user: &UserId) -> DomainResult<()>;
}

/// Who is listing, for the visibility scope of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The caller's tenant id.
    pub tenant: TenantId,
    /// Administrators see every image.
    pub is_admin: bool,
}

/// Where image records live. Every change is a compare-and-set on `version`.
#[async_trait]
pub trait ImageRepository: Send + Sync {
    /// Stores a new image; `Conflict` if the id is taken, `QuotaExceeded` if its owner
    /// would pass `quota` (checked against the owner's counters in the same atomic write).
    /// Every write here stores its `events` in the same atomic write: an event exists if
    /// and only if its change does.
    async fn insert(
        &self,
        image: &Image,
        quota: &TenantQuota,
        events: &[Event],
    ) -> DomainResult<()>;
    /// Reads an image by id.
    async fn get(&self, id: ImageId) -> DomainResult<Option<Image>>;
    /// Replaces `current` with `next` if `current` is still the stored version; otherwise
    /// `Conflict` (someone else changed it first). `QuotaExceeded` if the change would take
    /// the owner past `quota`, checked in the same atomic write.
    async fn update(
        &self,
        next: &Image,
        current: &Image,
        quota: &TenantQuota,
        events: &[Event],
    ) -> DomainResult<()>;
    /// Deletes `current` if it is still the stored version; otherwise `Conflict`.
    async fn delete(&self, current: &Image, events: &[Event]) -> DomainResult<()>;
    /// One page of the images `viewer` may see that match `query`, in the query's order,
    /// starting after `after` (the marker image) and holding at most `query.limit + 1`
    /// images so the caller can tell whether another page exists.
    async fn list(
        &self,
        viewer: &Viewer,
        query: &ListQuery,
        after: Option<&Image>,
    ) -> DomainResult<Vec<Image>>;
    /// What `owner` keeps, from its counters (O(1)).
    async fn usage(&self, owner: &str) -> DomainResult<TenantUsage>;
    /// Every image in `saving` or `uploading` (data arriving, or staged): at start-up,
    /// before serving, those a killed process left mid-upload or mid-stage are among them.
    async fn receiving(&self) -> DomainResult<Vec<Image>>;
}

/// A stream of image bytes, as uploaded or stored.
pub type ByteStream = std::pin::Pin<
    Box<dyn futures_core::Stream<Item = DomainResult<bytes::Bytes>> + Send + 'static>,
>;

/// An inclusive byte range `first..=last` of stored data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub first: u64,
    /// Last byte (inclusive).
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never true: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// An upload in progress: bytes go to a private temporary object that becomes the image's
/// data only on [`UploadSink::commit`]. Dropping it without committing must leave nothing.
#[async_trait]
pub trait UploadSink: Send {
    /// Appends bytes.
    async fn write(&mut self, chunk: bytes::Bytes) -> DomainResult<()>;
    /// Makes the written bytes durable and the image's data, atomically.
    async fn commit(self: Box<Self>) -> DomainResult<()>;
    /// Discards everything written.
    async fn abort(self: Box<Self>);
    /// Makes every byte written so far durable and says how a later process resumes after
    /// them ([`ImageStore::resume_import`]); `None` when it cannot now (an S3 part would be
    /// too small: try again after more bytes) or never (a sink that cannot resume).
    async fn checkpoint(&mut self) -> DomainResult<Option<SinkCheckpoint>> {
        Ok(None)
    }
}

/// Where an interrupted upload can go on from: the bytes durably written, and what the
/// store that wrote them needs to take it up again (its own encoding).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SinkCheckpoint {
    /// Bytes durably written.
    pub written: u64,
    /// The store's own note of the upload in progress.
    pub token: String,
}

/// Where image bytes live.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Starts writing the data of `id` (not visible until committed).
    async fn begin_upload(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>>;
    /// Starts writing an import of the data of `id`, as [`ImageStore::begin_upload`] but
    /// able to [`UploadSink::checkpoint`] where the store can: what a killed worker wrote
    /// survives it, for the next delivery to resume.
    async fn begin_import(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        self.begin_upload(id).await
    }
    /// Takes up the import of `id` that `checkpoint` describes, its first
    /// `checkpoint.written` bytes already written; `None` when that upload is gone (it
    /// finished, was aborted or swept) and the import must start over.
    async fn resume_import(
        &self,
        _id: ImageId,
        _checkpoint: &SinkCheckpoint,
    ) -> DomainResult<Option<Box<dyn UploadSink>>> {
        Ok(None)
    }
    /// Streams the stored data of `id`, or the given range of it.
    async fn read(&self, id: ImageId, range: Option<ByteRange>) -> DomainResult<ByteStream>;
    /// Removes the data of `id`; removing absent data succeeds.
    async fn delete(&self, id: ImageId) -> DomainResult<()>;
    /// A URL valid for `valid_for` from which a client may `GET` the data (ranges too)
    /// directly, where the store can issue one; `None` when the bytes must flow through
    /// the service.
    async fn download_url(
        &self,
        _id: ImageId,
        _valid_for: std::time::Duration,
    ) -> DomainResult<Option<String>> {
        Ok(None)
    }
    /// Removes temporary objects a killed process left behind; run before serving.
    async fn sweep_incomplete(&self) -> DomainResult<usize>;
    /// Starts a staged upload of the data of `id`, split as `plan`: an upload id and one
    /// URL per part, to which a client without credentials `PUT`s the part within
    /// `valid_for`. `None` where the store cannot issue such URLs.
    async fn begin_staged(
        &self,
        _id: ImageId,
        _plan: &PartPlan,
        _valid_for: std::time::Duration,
    ) -> DomainResult<Option<StagedUpload>> {
        Ok(None)
    }
    /// Joins the parts uploaded to staged upload `upload_id` of `id` into the staged data of
    /// `id` once they pass [`crate::staging::check_uploaded_parts`]; returns its size.
    /// `NotFound` when there is no such upload.
    async fn finish_staged(&self, _id: ImageId, upload_id: &str) -> DomainResult<u64> {
        Err(no_staged_upload(upload_id))
    }
    /// Starts writing the staged data of `id` (`PUT .../stage`); it replaces any older staged
    /// data, and [`ImageStore::open_staged`] reads it, only once committed.
    async fn begin_stage(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>>;
    /// Opens the staged data of `id` from byte `from` on: its whole size and the bytes from
    /// there; `NotFound` when there is none.
    async fn open_staged(&self, id: ImageId, _from: u64) -> DomainResult<(u64, ByteStream)> {
        Err(DomainError::NotFound(format!(
            "No staged data for image {id}"
        )))
    }
    /// Removes the staged data of `id` and its resume point; removing absent data succeeds.
    async fn delete_staged(&self, _id: ImageId) -> DomainResult<()> {
        Ok(())
    }
    /// Keeps `point` (an interrupted import's state, opaque here) beside the staged data of
    /// `id`, replacing any older one whole.
    async fn save_resume_point(&self, _id: ImageId, _point: bytes::Bytes) -> DomainResult<()> {
        Ok(())
    }
    /// The resume point last saved for `id`, if any.
    async fn load_resume_point(&self, _id: ImageId) -> DomainResult<Option<bytes::Bytes>> {
        Ok(None)
    }
    /// Removes the resume point of `id`; removing an absent one succeeds.
    async fn delete_resume_point(&self, _id: ImageId) -> DomainResult<()> {
        Ok(())
    }
    /// Where this store keeps the data of `id`, for a store of the same kind to copy it
    /// without the bytes passing through the service (`copy-image`); `None` where it can't.
    fn locate(&self, _id: ImageId) -> Option<StoredObject> {
        None
    }
    /// Makes `source` (another store's data, as [`ImageStore::locate`] named it) the data of
    /// `id` here without streaming it through the service, atomically as a commit does,
    /// adding to `copied` as bytes land (for progress reports); the bytes copied, or `None`
    /// when this store cannot copy from there (the caller then streams the bytes).
    async fn copy_in(
        &self,
        _id: ImageId,
        _source: &StoredObject,
        _copied: &std::sync::atomic::AtomicU64,
    ) -> DomainResult<Option<u64>> {
        Ok(None)
    }
}

/// Where a store keeps an image's data, as a sibling store needs it for a server-side copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The kind of storage: `file` or `s3`; a store copies only from its own kind.
    pub kind: &'static str,
    /// The directory or bucket.
    pub container: String,
    /// The file name or object key within it.
    pub key: String,
}

/// A staged upload the store accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedUpload {
    /// Names the upload when completing it.
    pub upload_id: String,
    /// Where part n is `PUT`: `part_urls[n - 1]`.
    pub part_urls: Vec<String>,
}

/// The error for a staged upload id the store does not know.
pub fn no_staged_upload(upload_id: &str) -> DomainError {
    DomainError::Misdirected(crate::error::Misdirection::NoStagedUpload {
        upload_id: upload_id.to_owned(),
    })
}

/// A client's `Range` request, before it is resolved against the data's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=a-b`.
    Between(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Last(u64),
}

impl RangeRequest {
    /// The bytes this request selects from data of `size` bytes, or `None` when it selects
    /// none (416).
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        let last_byte = size.checked_sub(1)?;
        match self {
            RangeRequest::Between(first, last) if first <= last && first <= last_byte => {
                Some(ByteRange {
                    first,
                    last: last.min(last_byte),
                })
            }
            RangeRequest::From(first) if first <= last_byte => Some(ByteRange {
                first,
                last: last_byte,
            }),
            RangeRequest::Last(n) if n > 0 => Some(ByteRange {
                first: size.saturating_sub(n),
                last: last_byte,
            }),
            _ => None,
        }
    }
}

/// Where image memberships live.
#[async_trait]
pub trait MemberRepository: Send + Sync {
    /// Adds a member unless the image already has `max_members` members (`QuotaExceeded`)
    /// or this member (`Conflict`); the count and the insert are one atomic step. Each
    /// change stores its `events` in the same atomic write.
    async fn insert(
        &self,
        member: &Member,
        max_members: usize,
        events: &[Event],
    ) -> DomainResult<()>;
    /// One membership.
    async fn get(&self, image_id: ImageId, member_id: &str) -> DomainResult<Option<Member>>;
    /// Every membership of an image, oldest first.
    async fn list(&self, image_id: ImageId) -> DomainResult<Vec<Member>>;
    /// Sets a membership's status; `NotFound` when there is no such membership.
    async fn set_status(&self, member: &Member, events: &[Event]) -> DomainResult<()>;
    /// Removes a membership; `NotFound` when there is no such membership.
    async fn delete(
        &self,
        image_id: ImageId,
        member_id: &str,
        events: &[Event],
    ) -> DomainResult<()>;
    /// Removes every membership of a deleted image (no events: Glance sends none, the
    /// image's deletion says it all).
    async fn delete_all(&self, image_id: ImageId) -> DomainResult<()>;
}

/// An event waiting in the outbox, numbered in the order its change was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Position in the outbox: later changes have higher numbers.
    pub position: u64,
    /// The event.
    pub event: Event,
}

/// The events stored with changes on a host that delivers them itself (the embedded
/// default; on the stack a DynamoDB stream plays this part). Each sink keeps its own place,
/// so a webhook that is down holds back only itself.
#[async_trait]
pub trait EventOutbox: Send + Sync {
    /// Up to `max` events `sink` has not yet taken, oldest first.
    async fn pending(&self, sink: &str, max: usize) -> DomainResult<Vec<OutboxEntry>>;
    /// Records that `sink` took every event up to `position`; events every sink took are
    /// removed.
    async fn delivered(&self, sink: &str, position: u64) -> DomainResult<()>;
    /// How many events wait for `sink`, and how long the oldest has waited.
    async fn backlog(&self, sink: &str) -> DomainResult<(u64, Option<std::time::Duration>)>;
}

/// Where events go: a JSON-lines file, a webhook. A delivery is all or nothing; a failed
/// one is tried again later with the same events (and so the same ids).
#[async_trait]
pub trait EventSink: Send + Sync {
    /// A name that is stable across restarts: the outbox keeps this sink's place by it.
    fn name(&self) -> &str;
    /// Delivers `events`, in order.
    async fn deliver(&self, events: &[Event]) -> DomainResult<()>;
}

/// A message handed to a worker; hidden from other workers until its lease runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message as sent.
    pub body: String,
    /// Identifies this delivery for [`TaskQueue::ack`].
    pub receipt: String,
    /// How many times the message has been delivered, this time included.
    pub receive_count: u32,
}

/// The queue of task messages: at-least-once delivery with leases, and a dead-letter
/// destination for messages delivered too often without being acknowledged.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Enqueues a message.
    async fn send(&self, body: &str) -> DomainResult<()>;
    /// Takes up to `max` visible messages, hiding each for `lease`.
    async fn receive(&self, max: usize, lease: std::time::Duration) -> DomainResult<Vec<Delivery>>;
    /// Removes a delivered message for good (once its task reached a final state).
    async fn ack(&self, receipt: &str) -> DomainResult<()>;
    /// How many messages were set aside as poison.
    async fn dead_letter_count(&self) -> DomainResult<usize>;
    /// How many messages wait or are being worked on (approximate on SQS).
    async fn depth(&self) -> DomainResult<usize>;
}

/// Where task records live. A record whose `expires_at` has passed no longer exists for
/// any read, whether or not the store has removed it yet.
#[async_trait]
pub trait TaskRepository: Send + Sync {
    /// Stores a new task, and its `events` in the same atomic write (as every change here).
    async fn insert(&self, task: &Task, events: &[Event]) -> DomainResult<()>;
    /// Reads a task by id.
    async fn get(&self, id: TaskId) -> DomainResult<Option<Task>>;
    /// Replaces the stored task if its version is still `expected_version`; otherwise
    /// `Conflict` (another worker changed it first).
    async fn update(
        &self,
        task: &Task,
        expected_version: u64,
        events: &[Event],
    ) -> DomainResult<()>;
    /// Every task `owner` created, in no particular order.
    async fn list_owned(&self, owner: &str) -> DomainResult<Vec<Task>>;
    /// Every task that works on image `image_id` (its `image_id`), in no particular order.
    async fn list_for_image(&self, image_id: ImageId) -> DomainResult<Vec<Task>>;
    /// Removes expired records now, where the store does not do it by itself; returns how
    /// many went.
    async fn purge_expired(&self) -> DomainResult<usize>;
}

/// Where web-download imports get their bytes: a server-side HTTP client that reaches only
/// what the operator's fetch policy allows.
#[async_trait]
pub trait WebSource: Send + Sync {
    /// Checks a URI before any task is made: everything knowable without resolving it
    /// (scheme, port, host lists, literal addresses); `Invalid` naming the refusal.
    fn check(&self, uri: &str) -> DomainResult<()>;
    /// Fetches the URI, following redirects the policy allows.
    async fn open(&self, uri: &str) -> DomainResult<WebBody>;
    /// Fetches the URI from byte `from` on, if the server still serves the version
    /// `validator` named and answers with that range; `None` when it does not (the whole
    /// data must be fetched again).
    async fn open_from(
        &self,
        uri: &str,
        from: u64,
        validator: &str,
    ) -> DomainResult<Option<WebBody>>;
}

/// A web-download response being read.
pub struct WebBody {
    /// The whole data's length, when the server said it.
    pub size: Option<u64>,
    /// What names this version of the data for a later ranged request (a strong `ETag`, else
    /// `Last-Modified`), when the server gave one.
    pub validator: Option<String>,
    /// The bytes (from the requested offset, for a resumed fetch).
    pub body: ByteStream,
}

/// The bytes of the tenants' objects, which tasks import from and export to and the object
/// API serves. Every call names the tenant, and an adapter maps `(tenant, container)` to a
/// place only that tenant reaches (a directory or key prefix per tenant). Records of the
/// objects live in a [`ContainerRepository`].
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Opens an object: its size and its bytes; `NotFound` when there is no such object.
    async fn open(&self, tenant: &str, path: &ObjectPath) -> DomainResult<(u64, ByteStream)>;
    /// Streams an object, or the given range of it (resolved against its record's size).
    async fn read(
        &self,
        tenant: &str,
        path: &ObjectPath,
        range: Option<ByteRange>,
    ) -> DomainResult<ByteStream>;
    /// Starts writing an object; it appears, replacing any older one, only on commit.
    async fn create(&self, tenant: &str, path: &ObjectPath) -> DomainResult<Box<dyn UploadSink>>;
    /// Writes the bytes of `parts` (each with its size), in order, as one object at
    /// `target`, atomically as a commit does; where the store can, without the bytes
    /// passing through the service.
    async fn join(
        &self,
        tenant: &str,
        target: &ObjectPath,
        parts: &[(ObjectPath, u64)],
    ) -> DomainResult<()>;
    /// Removes an object's bytes; removing absent ones succeeds.
    async fn delete(&self, tenant: &str, path: &ObjectPath) -> DomainResult<()>;
    /// A URL valid for `valid_for` from which a client may `GET` the object (ranges too)
    /// directly, where the store can issue one.
    async fn download_url(
        &self,
        _tenant: &str,
        _path: &ObjectPath,
        _valid_for: std::time::Duration,
    ) -> DomainResult<Option<String>> {
        Ok(None)
    }
}

/// Writes `body` into `sink`, chunk by chunk, as it arrives.
pub async fn pour(mut body: ByteStream, sink: &mut dyn UploadSink) -> DomainResult<()> {
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        sink.write(chunk?).await?;
    }
    Ok(())
}

/// [`ObjectStore::join`] for a store that can only stream: each part read and written in
/// turn into one upload, which is aborted at the first failure.
pub async fn join_by_streaming(
    store: &dyn ObjectStore,
    tenant: &str,
    target: &ObjectPath,
    parts: &[(ObjectPath, u64)],
) -> DomainResult<()> {
    let mut sink = store.create(tenant, target).await?;
    for (part, _) in parts {
        let poured = match store.read(tenant, part, None).await {
            Ok(body) => pour(body, sink.as_mut()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = poured {
            sink.abort().await;
            return Err(e);
        }
    }
    sink.commit().await
}

/// The tenants' own S3-compatible storage, as linked containers reach it. Every request
/// goes only where the fetch policy lets server-side requests go (the adapter checks each
/// resolved address; the caller checks the endpoint first).
#[async_trait]
pub trait LinkedStorage: Send + Sync {
    /// Checks the bucket can be reached and listed under `prefix`; `Invalid` saying what
    /// failed (the endpoint, the credentials, the bucket) when not.
    async fn check(&self, link: &LinkAccess, prefix: &str) -> DomainResult<()>;
    /// Opens an object: its size and its bytes; `NotFound` when there is none.
    async fn open(&self, link: &LinkAccess, key: &str) -> DomainResult<(u64, ByteStream)>;
    /// Starts writing an object (multipart, bounded memory); it appears only on commit.
    async fn create(&self, link: &LinkAccess, key: &str) -> DomainResult<Box<dyn UploadSink>>;
}

/// The records of the tenants' containers and objects, and the usage counters a byte quota
/// reads. Counters move in the same atomic write as the record that moves them.
#[async_trait]
pub trait ContainerRepository: Send + Sync {
    /// Creates a container; `false` when it already existed (nothing changes then).
    async fn create_container(
        &self,
        tenant: &str,
        container: &ContainerRecord,
    ) -> DomainResult<bool>;
    /// One container.
    async fn container(&self, tenant: &str, name: &str) -> DomainResult<Option<ContainerRecord>>;
    /// Containers named after `after`, below `before` when given, in name order, at most
    /// `limit` of them.
    async fn containers(
        &self,
        tenant: &str,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> DomainResult<Vec<ContainerRecord>>;
    /// Deletes an empty container: `NotFound` when absent, `Conflict` when it holds objects.
    async fn delete_container(&self, tenant: &str, name: &str) -> DomainResult<()>;
    /// What the tenant keeps in all its containers.
    async fn usage(&self, tenant: &str) -> DomainResult<AccountUsage>;
    /// One object's record.
    async fn object(&self, tenant: &str, path: &ObjectPath) -> DomainResult<Option<ObjectRecord>>;
    /// Records of a container's objects named after `after`, in name order, at most `limit`.
    async fn objects(
        &self,
        tenant: &str,
        container: &str,
        after: &str,
        limit: usize,
    ) -> DomainResult<Vec<ObjectRecord>>;
    /// Records an object, replacing the record of the same name; the replaced record, if
    /// any. `NotFound` when the container does not exist, `QuotaExceeded` when the tenant's
    /// bytes would pass `max_bytes`. Only a record that grows the bytes is refused.
    async fn put_object(
        &self,
        tenant: &str,
        container: &str,
        record: &ObjectRecord,
        max_bytes: Option<u64>,
    ) -> DomainResult<Option<ObjectRecord>>;
    /// Removes an object's record; the removed record, or `None` when there was none.
    async fn delete_object(
        &self,
        tenant: &str,
        path: &ObjectPath,
    ) -> DomainResult<Option<ObjectRecord>>;
}

/// Where the metadata definitions catalogue lives: whole namespace records, each write a
/// compare-and-set on the record's revision, and the resource types.
#[async_trait]
pub trait MetadefRepository: Send + Sync {
    /// Every namespace's header, in name order. The catalogue is curated by administrators
    /// (only they create namespaces), so it is read whole and filtered by the service.
    async fn namespaces(&self) -> DomainResult<Vec<Namespace>>;
    /// One namespace with its contents and revision.
    async fn namespace(&self, name: &str) -> DomainResult<Option<NamespaceRecord>>;
    /// Stores a new namespace at revision 1; `Conflict` when the name is taken.
    async fn insert_namespace(
        &self,
        namespace: &Namespace,
        contents: &Contents,
    ) -> DomainResult<()>;
    /// Replaces `current` (renaming it when `namespace` has another name) if it is still
    /// at its revision; otherwise, or when the new name is taken, `Conflict`.
    async fn replace_namespace(
        &self,
        current: &NamespaceRecord,
        namespace: &Namespace,
        contents: &Contents,
    ) -> DomainResult<()>;
    /// Deletes `current` if it is still at its revision; otherwise `Conflict`.
    async fn delete_namespace(&self, current: &NamespaceRecord) -> DomainResult<()>;
    /// Every resource type, in name order.
    async fn resource_types(&self) -> DomainResult<Vec<ResourceType>>;
    /// Adds the resource types not known yet; known ones stay as they are.
    async fn add_resource_types(&self, types: &[ResourceType]) -> DomainResult<()>;
    /// Whether the stock catalogue was loaded into this store.
    async fn stock_loaded(&self) -> DomainResult<bool>;
    /// Records that the stock catalogue was loaded, so it is loaded once, not again after
    /// an operator deleted parts of it.
    async fn mark_stock_loaded(&self) -> DomainResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_size_and_clamp_the_end() {
        assert_eq!(
            RangeRequest::Between(0, 9).resolve(100),
            Some(ByteRange { first: 0, last: 9 })
        );
        assert_eq!(
            RangeRequest::Between(90, 200).resolve(100),
            Some(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            RangeRequest::From(95).resolve(100),
            Some(ByteRange {
                first: 95,
                last: 99
            })
        );
        assert_eq!(
            RangeRequest::Last(10).resolve(100),
            Some(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            RangeRequest::Last(500).resolve(100),
            Some(ByteRange { first: 0, last: 99 })
        );
    }

    #[test]
    fn unsatisfiable_ranges_select_nothing() {
        assert_eq!(RangeRequest::Between(100, 200).resolve(100), None);
        assert_eq!(RangeRequest::Between(5, 4).resolve(100), None);
        assert_eq!(RangeRequest::From(100).resolve(100), None);
        assert_eq!(RangeRequest::Last(0).resolve(100), None);
        assert_eq!(RangeRequest::From(0).resolve(0), None);
    }
}
