//! The tenant's containers: the object API's use cases, and the writes export tasks make.
//!
//! An object's bytes are written first and appear only on commit; its record (ETag, size)
//! is written in between, where the quota is checked, so a refused write leaves the older
//! object whole.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use cloud_images_domain::containers::{
    AccountUsage, ContainerRecord, ListQuery, Listed, Listing, ObjectRecord, beyond,
    container_name, linked_elsewhere, no_container, quota_full, short_of,
};
use cloud_images_domain::identity::Caller;
use cloud_images_domain::ports::{
    ByteRange, ByteStream, ContainerRepository, LinkedStorage, ObjectStore, RangeRequest,
    UploadSink, WebSource,
};
use cloud_images_domain::task::ObjectPath;
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::StreamExt;
use md5::{Digest, Md5};

use crate::link_sealing::LinkSealer;

mod large_objects;
mod links;

/// The content type of an object stored without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// How the object API behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContainerSettings {
    /// The most bytes one tenant's containers may hold; `None` is no limit.
    pub max_bytes: Option<u64>,
    /// When set, downloads of objects above `max_direct_bytes` answer with a URL of the
    /// store valid this long.
    pub download_redirect: Option<Duration>,
    /// The most bytes a request or response carries through the service (a Lambda's
    /// payload); bigger objects are sent in segments and fetched from the store.
    pub max_direct_bytes: Option<u64>,
}

/// An object being read: its record, the range served, and its bytes or where to get them.
pub struct ObjectDownload {
    /// The object's record.
    pub record: ObjectRecord,
    /// The range served, when one was asked for.
    pub range: Option<cloud_images_domain::ports::ByteRange>,
    /// The bytes, unless the client is sent elsewhere.
    pub body: Option<ByteStream>,
    /// Where to fetch the bytes instead.
    pub redirect: Option<String>,
}

/// What a new object is: its place, its type, and the ETag the client says it has.
pub struct NewObject {
    /// Where it goes.
    pub path: ObjectPath,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// The MD5 the client computed, checked against the bytes received.
    pub expected_etag: Option<String>,
    /// The size announced in `Content-Length`, checked against the quota up front.
    pub announced_size: Option<u64>,
}

/// The use cases over containers and objects.
#[derive(Clone)]
pub struct ContainerService {
    records: Arc<dyn ContainerRepository>,
    objects: Arc<dyn ObjectStore>,
    links: Links,
    settings: ContainerSettings,
}

/// What linked containers need: the tenants' own storage, the rule for where server-side
/// requests may go (web-download's), and the sealer of their secret keys.
#[derive(Clone)]
pub struct Links {
    /// The tenants' own S3-compatible storage.
    pub storage: Arc<dyn LinkedStorage>,
    /// Checks an endpoint as web-download checks a URI.
    pub endpoints: Arc<dyn WebSource>,
    /// Seals and opens the secret keys.
    pub sealer: Arc<LinkSealer>,
}

/// The account in a request path must be the caller's own: one tenant never reaches
/// another's containers, whatever the URL says.
fn own_account(caller: &Caller, account: &str) -> DomainResult<()> {
    if caller.tenant_id.as_str() == account {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "Account AUTH_{account} is not yours; your account is AUTH_{}",
            caller.tenant_id
        )))
    }
}

fn md5_hex(digest: impl AsRef<[u8]>) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl ContainerService {
    /// The use cases over these adapters.
    pub fn new(
        records: Arc<dyn ContainerRepository>,
        objects: Arc<dyn ObjectStore>,
        links: Links,
        settings: ContainerSettings,
    ) -> Self {
        Self {
            records,
            objects,
            links,
            settings,
        }
    }

    /// A container whose objects this API serves: it exists and is not linked.
    async fn built_in(&self, tenant: &str, container: &str) -> DomainResult<ContainerRecord> {
        match self.records.container(tenant, container).await? {
            None => Err(no_container(container)),
            Some(record) if record.link.is_some() => Err(linked_elsewhere(container)),
            Some(record) => Ok(record),
        }
    }

    /// The answer for an object this API has no record of.
    async fn no_object(&self, tenant: &str, path: &ObjectPath) -> DomainError {
        match self.records.container(tenant, &path.container).await {
            Ok(Some(record)) if record.link.is_some() => linked_elsewhere(&path.container),
            _ => DomainError::NotFound(format!("Object '{path}' not found")),
        }
    }

    /// The account's usage and a page of its containers.
    pub async fn account(
        &self,
        caller: &Caller,
        account: &str,
        query: &ListQuery,
    ) -> DomainResult<(AccountUsage, Vec<ContainerRecord>)> {
        own_account(caller, account)?;
        let tenant = caller.tenant_id.as_str();
        let usage = self.records.usage(tenant).await?;
        let mut page = self
            .records
            .containers(
                tenant,
                &query.start(),
                query.end_marker.as_deref(),
                query.limit,
            )
            .await?;
        page.retain(|c| !short_of(query, &c.name));
        if let Some(at) = page.iter().position(|c| beyond(query, &c.name)) {
            page.truncate(at);
        }
        Ok((usage, page))
    }

    /// Creates a container; `false` when it already existed.
    pub async fn create_container(
        &self,
        caller: &Caller,
        account: &str,
        name: &str,
    ) -> DomainResult<bool> {
        own_account(caller, account)?;
        caller.require_writer()?;
        self.create_for(caller.tenant_id.as_str(), name).await
    }

    async fn create_for(&self, tenant: &str, name: &str) -> DomainResult<bool> {
        let record = ContainerRecord {
            name: container_name(name)?,
            objects: 0,
            bytes: 0,
            created_at: Utc::now(),
            link: None,
        };
        self.records.create_container(tenant, &record).await
    }

    /// One container.
    pub async fn container(
        &self,
        caller: &Caller,
        account: &str,
        name: &str,
    ) -> DomainResult<ContainerRecord> {
        own_account(caller, account)?;
        self.records
            .container(caller.tenant_id.as_str(), name)
            .await?
            .ok_or_else(|| no_container(name))
    }

    /// A container and a page of its listing.
    pub async fn list(
        &self,
        caller: &Caller,
        account: &str,
        name: &str,
        query: &ListQuery,
    ) -> DomainResult<(ContainerRecord, Vec<Listed>)> {
        let container = self.container(caller, account, name).await?;
        let tenant = caller.tenant_id.as_str();
        let mut listing = Listing::new(query);
        while let Some((after, want)) = listing.next_scan() {
            let page = self.records.objects(tenant, name, &after, want).await?;
            listing.feed(page, want);
        }
        let listed = listing.finish();
        Ok((container, listed))
    }

    /// Deletes an empty container.
    pub async fn delete_container(
        &self,
        caller: &Caller,
        account: &str,
        name: &str,
    ) -> DomainResult<()> {
        own_account(caller, account)?;
        caller.require_writer()?;
        self.records
            .delete_container(caller.tenant_id.as_str(), name)
            .await
    }

    /// One object's record.
    pub async fn head(
        &self,
        caller: &Caller,
        account: &str,
        path: &ObjectPath,
    ) -> DomainResult<ObjectRecord> {
        own_account(caller, account)?;
        self.record(caller.tenant_id.as_str(), path).await
    }

    async fn record(&self, tenant: &str, path: &ObjectPath) -> DomainResult<ObjectRecord> {
        match self.records.object(tenant, path).await? {
            Some(record) => Ok(record),
            None => Err(self.no_object(tenant, path).await),
        }
    }

    /// An object's bytes (or a range of them), or where to fetch them.
    pub async fn download(
        &self,
        caller: &Caller,
        account: &str,
        path: &ObjectPath,
        range: Option<RangeRequest>,
    ) -> DomainResult<ObjectDownload> {
        let record = self.head(caller, account, path).await?;
        let tenant = caller.tenant_id.as_str();
        let range = match range {
            Some(request) => Some(
                request
                    .resolve(record.size)
                    .ok_or(DomainError::RangeNotSatisfiable { size: record.size })?,
            ),
            None => None,
        };
        let fits = self
            .settings
            .max_direct_bytes
            .is_none_or(|max| range.map_or(record.size, |r| r.len()) <= max);
        if let Some(valid_for) = self.settings.download_redirect
            && !fits
            && let Some(url) = self.objects.download_url(tenant, path, valid_for).await?
        {
            return Ok(ObjectDownload {
                record,
                range,
                body: None,
                redirect: Some(url),
            });
        }
        let body = if record.size == 0 {
            Box::pin(futures_util::stream::empty()) as ByteStream
        } else {
            // The record knows the size: a store reads exactly that, no more (a read of
            // unknown length would fill whole read blocks for a few bytes).
            let whole = ByteRange {
                first: 0,
                last: record.size - 1,
            };
            self.objects
                .read(tenant, path, Some(range.unwrap_or(whole)))
                .await?
        };
        Ok(ObjectDownload {
            record,
            range,
            body: Some(body),
            redirect: None,
        })
    }

    /// Stores an object from the request body.
    pub async fn upload(
        &self,
        caller: &Caller,
        account: &str,
        object: NewObject,
        body: ByteStream,
    ) -> DomainResult<ObjectRecord> {
        own_account(caller, account)?;
        caller.require_writer()?;
        let tenant = caller.tenant_id.as_str();
        self.built_in(tenant, &object.path.container).await?;
        let max = self.settings.max_direct_bytes;
        if let (Some(max), Some(size)) = (max, object.announced_size)
            && size > max
        {
            return Err(too_big_for_one_request(max));
        }
        self.check_room(tenant, &object.path, object.announced_size)
            .await?;
        // A body that announced no size (or the wrong one) is cut off at the limit too.
        let body: ByteStream = match max {
            Some(max) => Box::pin(at_most(body, max)),
            None => body,
        };
        self.write(tenant, &object, body).await
    }

    /// Refuses up front a write the quota cannot hold, so a client sending a big object
    /// learns before the bytes travel.
    async fn check_room(
        &self,
        tenant: &str,
        path: &ObjectPath,
        size: Option<u64>,
    ) -> DomainResult<()> {
        let (Some(max), Some(size)) = (self.settings.max_bytes, size) else {
            return Ok(());
        };
        let replaced = self
            .records
            .object(tenant, path)
            .await?
            .map_or(0, |r| r.size);
        let used = self.records.usage(tenant).await?.bytes;
        if used.saturating_sub(replaced).saturating_add(size) > max {
            return Err(quota_full(max));
        }
        Ok(())
    }

    async fn write(
        &self,
        tenant: &str,
        object: &NewObject,
        body: ByteStream,
    ) -> DomainResult<ObjectRecord> {
        let mut sink = self.objects.create(tenant, &object.path).await?;
        let received = match receive(sink.as_mut(), body).await {
            Ok(received) => received,
            Err(e) => {
                sink.abort().await;
                return Err(e);
            }
        };
        if let Some(expected) = &object.expected_etag
            && !expected.trim_matches('"').eq_ignore_ascii_case(&received.1)
        {
            sink.abort().await;
            return Err(DomainError::Invalid(format!(
                "The ETag header says {expected} but the data received has MD5 {}; nothing was stored",
                received.1
            )));
        }
        let record = ObjectRecord {
            name: object.path.object.clone(),
            size: received.0,
            etag: received.1,
            content_type: object
                .content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
            last_modified: Utc::now(),
            manifest: None,
        };
        self.publish(tenant, &object.path, record, sink).await
    }

    /// Records the object, then lets its bytes appear; a commit that fails puts the older
    /// record back.
    async fn publish(
        &self,
        tenant: &str,
        path: &ObjectPath,
        record: ObjectRecord,
        sink: Box<dyn UploadSink>,
    ) -> DomainResult<ObjectRecord> {
        let replaced = match self
            .records
            .put_object(tenant, &path.container, &record, self.settings.max_bytes)
            .await
        {
            Ok(replaced) => replaced,
            Err(e) => {
                sink.abort().await;
                return Err(e);
            }
        };
        if let Err(e) = sink.commit().await {
            self.restore(tenant, path, replaced).await;
            return Err(e);
        }
        Ok(record)
    }

    async fn restore(&self, tenant: &str, path: &ObjectPath, replaced: Option<ObjectRecord>) {
        let restored = match replaced {
            Some(old) => self
                .records
                .put_object(tenant, &path.container, &old, None)
                .await
                .map(|_| ()),
            None => self.records.delete_object(tenant, path).await.map(|_| ()),
        };
        if let Err(e) = restored {
            tracing::error!(%path, error = %e, "an object's record could not be put back after its bytes failed to commit");
        }
    }
}

fn too_big_for_one_request(max: u64) -> DomainError {
    DomainError::QuotaExceeded(format!(
        "An object above {max} bytes is sent in segments and joined by a manifest: \
         swift upload --segment-size {max} <container> <file>"
    ))
}

/// `body`, failing once it passes `max` bytes.
fn at_most(body: ByteStream, max: u64) -> impl futures_util::Stream<Item = DomainResult<Bytes>> {
    body.scan(0u64, move |seen, chunk| {
        let chunk = chunk.and_then(|chunk| {
            *seen += chunk.len() as u64;
            if *seen > max {
                Err(too_big_for_one_request(max))
            } else {
                Ok(chunk)
            }
        });
        std::future::ready(Some(chunk))
    })
}

/// An object's time as Swift's listings write it: UTC with microseconds, no zone.
pub fn listing_time(record: &ObjectRecord) -> String {
    record
        .last_modified
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// Writes `body` into `sink`: the bytes written and their MD5 in hex.
async fn receive(sink: &mut dyn UploadSink, mut body: ByteStream) -> DomainResult<(u64, String)> {
    let (mut size, mut hash) = (0u64, Md5::new());
    while let Some(chunk) = body.next().await {
        let chunk: Bytes = chunk?;
        hash.update(&chunk);
        size += chunk.len() as u64;
        sink.write(chunk).await?;
    }
    Ok((size, md5_hex(hash.finalize())))
}
