//! Image bytes: streaming upload with hashing, quota and format inspection, and download.
//!
//! An upload moves the image `queued → saving → active` with compare-and-set writes; the
//! bytes go to a temporary object committed only when complete. Any failure, including the
//! client vanishing (the request future is dropped), returns the image to `queued` and
//! leaves no bytes behind.

use std::sync::Arc;

use cloud_images_domain::error::Misdirection;
use cloud_images_domain::events::Actor;
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::{DiskFormat, Image, ImageId, ImageStatus};
use cloud_images_domain::lifecycle::StoredData;
use cloud_images_domain::ports::{ByteRange, ByteStream, RangeRequest, UploadSink};
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::StreamExt;

use crate::access::{ImageAccess, now};
use crate::stores::ImageStores;

mod pipeline;
mod resume;

use pipeline::{Intake, Received};
pub(crate) use resume::{ImportSource, ImportWatch};

/// Restores `queued` if an upload ends any way other than success, including by being
/// dropped mid-stream when the client disconnects.
struct RequeueOnDrop {
    access: ImageAccess,
    saving: Option<Image>,
    actor: Actor,
}

impl RequeueOnDrop {
    fn disarm(&mut self) {
        self.saving = None;
    }
}

impl Drop for RequeueOnDrop {
    fn drop(&mut self) {
        if let Some(saving) = self.saving.take() {
            let access = self.access.clone();
            let actor = std::mem::take(&mut self.actor);
            tokio::spawn(async move {
                if let Err(e) = requeue(&access, &saving, &actor).await {
                    tracing::warn!(image = %saving.id, error = %e, "could not return an interrupted upload to queued");
                }
            });
        }
    }
}

async fn requeue(access: &ImageAccess, saving: &Image, actor: &Actor) -> DomainResult<()> {
    match access.requeue_abandoned(saving, actor).await {
        // Deleted or changed meanwhile: nothing of ours to restore.
        Ok(_) | Err(DomainError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A download: the image, and its bytes unless it has none.
pub struct Download {
    /// The image.
    pub image: Image,
    /// The bytes (`None`: the image has no data, answer 204).
    pub body: Option<ByteStream>,
    /// The range served, when a range was asked for.
    pub range: Option<ByteRange>,
    /// Where to fetch the bytes instead, when downloads redirect to the store.
    pub redirect: Option<String>,
}

/// Image data use cases (the `image data` route group), and the upload pipeline tasks
/// stream imported data through.
#[derive(Clone)]
pub struct ImageDataService {
    access: ImageAccess,
    stores: Arc<ImageStores>,
}

impl ImageDataService {
    /// Builds the service over image access and the stores of image bytes.
    pub fn new(access: ImageAccess, stores: Arc<ImageStores>) -> Self {
        Self { access, stores }
    }

    /// The configured stores.
    pub(crate) fn stores(&self) -> &ImageStores {
        &self.stores
    }

    /// Uploads the data of a queued image from a stream of unknown length into `store` (the
    /// `X-Image-Meta-Store` header; the default store when `None`). `announced` is the
    /// request's `Content-Length`; it and `size_hint` (`x-openstack-image-size`) are checked
    /// against the direct-upload limit before any byte is read, and the bytes are counted
    /// against it as they arrive.
    pub async fn upload(
        &self,
        caller: &Caller,
        id: &str,
        body: ByteStream,
        size_hint: Option<u64>,
        announced: Option<u64>,
        store: Option<&str>,
    ) -> DomainResult<Image> {
        let image = self.access.writable(caller, id).await?;
        let store = self.stores.upload_target(store)?;
        let body = self.within_direct_limit(image.id, body, size_hint, announced)?;
        self.receive_data(image, body, size_hint, &store, &Actor::of(caller))
            .await
    }

    /// The body, cut off with 413 past the direct-upload limit (checked first against the
    /// sizes announced, before any byte is read).
    fn within_direct_limit(
        &self,
        id: ImageId,
        body: ByteStream,
        size_hint: Option<u64>,
        announced: Option<u64>,
    ) -> DomainResult<ByteStream> {
        match self.access.settings().direct_upload_limit {
            Some(limit)
                if [announced, size_hint]
                    .into_iter()
                    .flatten()
                    .any(|n| n > limit) =>
            {
                Err(too_large_for_direct_upload(id, limit))
            }
            Some(limit) => Ok(limited(body, limit, id)),
            None => Ok(body),
        }
    }

    /// `PUT /v2/images/{id}/stage`: the data of a queued image into its staging area, counted
    /// against the storage quota and (when the image has a disk_format) inspected as an
    /// upload is; the image is `uploading` while it arrives and stays so once staged, ready
    /// for a `glance-direct` import. Any failure returns it to `queued` with nothing staged.
    pub async fn stage(
        &self,
        caller: &Caller,
        id: &str,
        body: ByteStream,
        size_hint: Option<u64>,
        announced: Option<u64>,
    ) -> DomainResult<()> {
        let image = self.access.writable(caller, id).await?;
        let body = self.within_direct_limit(image.id, body, size_hint, announced)?;
        if image.status != ImageStatus::Queued {
            return Err(DomainError::Conflict(format!(
                "Image status transition from {} to uploading is not allowed; only a queued image can be staged",
                image.status
            )));
        }
        let allowance = self.checked_allowance(&image, size_hint).await?;
        let actor = Actor::of(caller);
        let uploading = self.take(&image, image.begin_stage(now())?, &actor).await?;
        let mut guard = RequeueOnDrop {
            access: self.access.clone(),
            saving: Some(uploading.clone()),
            actor: actor.clone(),
        };
        let staged = match self.stores.staging().begin_stage(image.id).await {
            Ok(sink) => {
                self.receive(sink, body, image.disk_format, allowance, size_hint)
                    .await
            }
            Err(e) => Err(e),
        };
        guard.disarm();
        if let Err(e) = staged {
            if let Err(requeue_error) = requeue(&self.access, &uploading, &actor).await {
                tracing::warn!(image = %image.id, error = %requeue_error, "could not return a failed stage to queued");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Bytes the image's owner may still store, refusing at once a size already announced
    /// over it.
    async fn checked_allowance(
        &self,
        image: &Image,
        size_hint: Option<u64>,
    ) -> DomainResult<Option<u64>> {
        let allowance = self.access.storage_allowance(image).await?;
        if let (Some(hint), Some(allowance)) = (size_hint, allowance)
            && hint > allowance
        {
            return Err(quota_exceeded(allowance));
        }
        Ok(allowance)
    }

    /// Streams data into a queued image the caller was already allowed to write: checks,
    /// `saving`, hashing and inspection, commit, `active`; `queued` again on any failure.
    pub(crate) async fn receive_data(
        &self,
        image: Image,
        body: ByteStream,
        size_hint: Option<u64>,
        store_id: &str,
        actor: &Actor,
    ) -> DomainResult<Image> {
        let store = self.stores.get(store_id)?;
        let declared = check_uploadable(&image)?;
        let allowance = self.checked_allowance(&image, size_hint).await?;
        let saving = self.mark_saving(&image, actor).await?;
        let mut guard = RequeueOnDrop {
            access: self.access.clone(),
            saving: Some(saving.clone()),
            actor: actor.clone(),
        };
        let received = match store.begin_upload(image.id).await {
            Ok(sink) => {
                self.receive(sink, body, Some(declared), allowance, size_hint)
                    .await
            }
            Err(e) => Err(e),
        };
        let received = match received {
            Ok(received) => received,
            Err(e) => {
                // Requeue before answering, so a client that reads the image right after the
                // error sees it queued again; the guard covers only a dropped request.
                guard.disarm();
                if let Err(requeue_error) = requeue(&self.access, &saving, actor).await {
                    tracing::warn!(image = %saving.id, error = %requeue_error, "could not return a failed upload to queued");
                }
                return Err(e);
            }
        };
        let active = self
            .mark_active(&saving, self.stored_data(received, store_id), actor)
            .await;
        guard.disarm();
        match active {
            Ok(image) => Ok(image),
            Err(e) => {
                // Deleted or changed while uploading, or another upload of the owner's took
                // the quota first: remove the bytes we committed.
                store.delete(image.id).await?;
                if matches!(e, DomainError::QuotaExceeded(_)) {
                    requeue(&self.access, &saving, actor).await?;
                }
                Err(e)
            }
        }
    }

    async fn mark_saving(&self, queued: &Image, actor: &Actor) -> DomainResult<Image> {
        self.take(queued, queued.begin_upload(now())?, actor).await
    }

    /// Stores `taken` (the image as data starts arriving) over `current`, unless another
    /// upload or change came first.
    async fn take(&self, current: &Image, taken: Image, actor: &Actor) -> DomainResult<Image> {
        self.access
            .replace(&taken, current, actor)
            .await
            .map_err(|e| match e {
                DomainError::Conflict(_) => DomainError::Conflict(
                    "Another upload to this image is in progress or the image changed".into(),
                ),
                other => other,
            })?;
        Ok(taken)
    }

    fn stored_data(&self, received: Received, store: &str) -> StoredData {
        StoredData {
            size: received.size,
            virtual_size: received.virtual_size,
            checksum: received.checksum,
            os_hash_algo: self.access.settings().hash_algo,
            os_hash_value: received.os_hash_value,
            store: store.to_owned(),
        }
    }

    async fn mark_active(
        &self,
        saving: &Image,
        stored: StoredData,
        actor: &Actor,
    ) -> DomainResult<Image> {
        let active = saving.activate(stored, now())?;
        self.access
            .replace(&active, saving, actor)
            .await
            .map_err(|e| match e {
                DomainError::Conflict(_) => DomainError::Conflict(
                    "The image was deleted or changed during the upload".into(),
                ),
                other => other,
            })?;
        Ok(active)
    }

    /// Streams the body into the sink through the pipeline, without checkpoints.
    async fn receive(
        &self,
        sink: Box<dyn UploadSink>,
        body: ByteStream,
        declared: Option<DiskFormat>,
        allowance: Option<u64>,
        size_hint: Option<u64>,
    ) -> DomainResult<Received> {
        let intake = Intake {
            declared,
            allowance,
            size_hint,
            hash_algo: self.access.settings().hash_algo,
            start: None,
            checkpoints: None,
        };
        pipeline::receive(sink, body, intake).await
    }

    /// Opens the data of an image the caller may see, whole or a range of it.
    pub async fn download(
        &self,
        caller: &Caller,
        id: &str,
        range: Option<RangeRequest>,
    ) -> DomainResult<Download> {
        let image = self.access.visible(caller, id).await?;
        if image.status == ImageStatus::Deactivated && !caller.is_admin() {
            return Err(DomainError::Forbidden(
                "The image is deactivated; its data cannot be downloaded".into(),
            ));
        }
        let size = match (image.status, image.size) {
            (ImageStatus::Active | ImageStatus::Deactivated, Some(size)) => size,
            _ => {
                return Ok(Download {
                    image,
                    body: None,
                    range: None,
                    redirect: None,
                });
            }
        };
        let range = match range {
            Some(request) => Some(
                request
                    .resolve(size)
                    .ok_or(DomainError::RangeNotSatisfiable { size })?,
            ),
            None => None,
        };
        if let Some(valid_for) = self.access.settings().download_redirect
            && let Some(url) = self
                .stores
                .reader_for(&image)?
                .download_url(image.id, valid_for)
                .await?
        {
            return Ok(Download {
                image,
                body: None,
                range,
                redirect: Some(url),
            });
        }
        let body = self
            .stores
            .reader_for(&image)?
            .read(image.id, range)
            .await?;
        Ok(Download {
            image,
            body: Some(body),
            range,
            redirect: None,
        })
    }

    /// Reads stored bytes whoever owns them, for work already authorised (an export).
    pub(crate) async fn read(
        &self,
        image: &Image,
        range: Option<ByteRange>,
    ) -> DomainResult<ByteStream> {
        self.stores.reader_for(image)?.read(image.id, range).await
    }

    /// Opens the staged data of an image: its size and bytes.
    pub(crate) async fn open_staged(&self, id: ImageId) -> DomainResult<(u64, ByteStream)> {
        self.stores.staging().open_staged(id, 0).await
    }

    /// Removes the staged data of an image.
    pub(crate) async fn delete_staged(&self, id: ImageId) -> DomainResult<()> {
        self.stores.staging().delete_staged(id).await
    }

    /// Removes what a failed import left of an image of `owner` that never became active;
    /// problems are logged, as the failure being reported matters more.
    pub(crate) async fn discard_unfinished(&self, id: ImageId, owner: &str, actor: &Actor) {
        let removed = async {
            match self.access.find(id).await? {
                Some(image) if image.is_owned_by(owner) && image.status == ImageStatus::Queued => {
                    self.access.remove(&image, actor).await?;
                    self.stores.delete_everywhere(&image).await
                }
                _ => Ok(()),
            }
        }
        .await;
        if let Err(e) = removed {
            tracing::warn!(image = %id, error = %e, "could not remove the image of a failed import");
        }
    }

    /// Start-up recovery of the embedded host: images a killed process left `saving`, or
    /// `uploading` without staged data (killed mid-stage), go back to `queued` and partial
    /// bytes are removed. An `uploading` image whose data was staged whole keeps waiting for
    /// its import. Returns (images reset, partials removed).
    pub async fn recover_interrupted_uploads(&self) -> DomainResult<(usize, usize)> {
        let mut images = 0;
        for receiving in self.access.receiving().await? {
            if receiving.status == ImageStatus::Uploading && self.is_staged(receiving.id).await? {
                continue;
            }
            match self
                .access
                .requeue_abandoned(&receiving, &Actor::service())
                .await
            {
                Ok(_) => images += 1,
                // Changed meanwhile by a server that is alive after all: its image.
                Err(DomainError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let partials = self.stores.sweep_incomplete().await?;
        Ok((images, partials))
    }

    /// Whether whole staged data of `id` exists.
    async fn is_staged(&self, id: ImageId) -> DomainResult<bool> {
        match self.stores.staging().open_staged(id, 0).await {
            Ok(_) => Ok(true),
            Err(DomainError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The format data for `image` must have, if data may be uploaded to it now.
pub(crate) fn check_uploadable(image: &Image) -> DomainResult<DiskFormat> {
    let (Some(declared), Some(_)) = (image.disk_format, image.container_format) else {
        return Err(DomainError::Invalid(
            "Set disk_format and container_format before uploading image data".into(),
        ));
    };
    if image.status != ImageStatus::Queued {
        return Err(DomainError::Conflict(format!(
            "Image status transition from {} to saving is not allowed; data may be uploaded only to a queued image",
            image.status
        )));
    }
    Ok(declared)
}

/// Counts the bytes of a direct upload and ends it with 413 past `limit`.
fn limited(body: ByteStream, limit: u64, id: ImageId) -> ByteStream {
    let mut seen: u64 = 0;
    Box::pin(body.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > limit {
            Err(too_large_for_direct_upload(id, limit))
        } else {
            Ok(chunk)
        }
    }))
}

fn too_large_for_direct_upload(id: ImageId, limit: u64) -> DomainError {
    DomainError::Misdirected(Misdirection::StageInstead {
        image: id.to_string(),
        limit,
    })
}

pub(crate) use cloud_images_domain::quota::storage_full as quota_exceeded;
