//! Staged uploads: the way image data larger than a request may carry (a Lambda's 6 MB)
//! reaches the store. The client asks for part URLs, `PUT`s the parts straight to the store,
//! then completes; completing joins the parts into the image's staging area — the one
//! `PUT .../stage` fills — and imports them with `glance-direct`, so they pass the same
//! checks as any upload (size, quota, MD5 and multihash, format inspection) before the image
//! becomes `active`.

use chrono::{DateTime, Utc};
use cloud_images_domain::error::Misdirection;
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::{Image, ImageId};
use cloud_images_domain::import::ImportRequest;
use cloud_images_domain::staging::{CompleteRequest, PartPlan, StageRequest};
use cloud_images_domain::task::Task;
use cloud_images_domain::{DomainError, DomainResult};

use std::sync::Arc;

use crate::stores::ImageStores;

use crate::access::{ImageAccess, now};
use crate::image_data::{check_uploadable, quota_exceeded};
use crate::imports::ImportService;

/// A staged upload handed to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedUploadOffer {
    /// The image the data is for.
    pub image_id: ImageId,
    /// Names the upload when completing it.
    pub upload_id: String,
    /// How the data is split.
    pub plan: PartPlan,
    /// Where part n goes: `part_urls[n - 1]`.
    pub part_urls: Vec<String>,
    /// When the URLs stop working.
    pub expires_at: DateTime<Utc>,
}

/// Staged upload use cases (the `staging` route group): part URLs, then an import task.
#[derive(Clone)]
pub struct StagingService {
    access: ImageAccess,
    stores: Arc<ImageStores>,
    imports: ImportService,
}

impl StagingService {
    /// Builds the service over image access, the store the parts go to, and the import that
    /// makes them the image's data.
    pub fn new(access: ImageAccess, stores: Arc<ImageStores>, imports: ImportService) -> Self {
        Self {
            access,
            stores,
            imports,
        }
    }

    /// `POST /v2/images/{id}/file/parts`: starts a staged upload of `size` bytes into a
    /// queued image the caller may write.
    pub async fn stage(
        &self,
        caller: &Caller,
        raw_id: &str,
        request: StageRequest,
    ) -> DomainResult<StagedUploadOffer> {
        let image = self.access.writable(caller, raw_id).await?;
        check_uploadable(&image)?;
        let size = request.size;
        let plan = PartPlan::for_size(size)?;
        self.check_fits_quota(&image, size).await?;
        let valid_for = self.access.settings().staged_upload_expiry;
        let expires_at = now() + chrono::Duration::from_std(valid_for).unwrap_or_default();
        let staged = self
            .stores
            .staging()
            .begin_staged(image.id, &plan, valid_for)
            .await?
            .ok_or_else(|| {
                DomainError::Misdirected(Misdirection::UploadDirectly {
                    image: image.id.to_string(),
                })
            })?;
        Ok(StagedUploadOffer {
            image_id: image.id,
            upload_id: staged.upload_id,
            plan,
            part_urls: staged.part_urls,
            expires_at,
        })
    }

    /// `POST /v2/images/{id}/file/complete`: joins the uploaded parts into the image's
    /// staged data (`uploading`, as `PUT .../stage` leaves it) and imports it with
    /// `glance-direct`: the `api_image_import` task that checks it and makes it the data, in
    /// `store` (`X-Image-Meta-Store`) or the default store.
    pub async fn complete_staged(
        &self,
        caller: &Caller,
        raw_id: &str,
        request: CompleteRequest,
        store: Option<&str>,
    ) -> DomainResult<Task> {
        let image = self.access.writable(caller, raw_id).await?;
        check_uploadable(&image)?;
        // The store is checked before the parts are joined, so a wrong one changes nothing.
        let import = ImportRequest::glance_direct_to(store);
        self.imports.offer().stores.resolve(&import.stores)?;
        let size = self
            .stores
            .staging()
            .finish_staged(image.id, &request.upload_id)
            .await?;
        if let Err(e) = self.check_fits_quota(&image, size).await {
            self.stores.staging().delete_staged(image.id).await?;
            return Err(e);
        }
        self.access
            .compare_and_set(caller, raw_id, |current| {
                check_uploadable(current)?;
                current.begin_stage(now()).map(Some)
            })
            .await?;
        self.imports.import(caller, raw_id, import).await
    }

    /// 413 when `size` more bytes would take the image's owner past the storage quota.
    async fn check_fits_quota(&self, image: &Image, size: u64) -> DomainResult<()> {
        match self.access.storage_allowance(image).await? {
            Some(allowance) if size > allowance => Err(quota_exceeded(allowance)),
            _ => Ok(()),
        }
    }
}
