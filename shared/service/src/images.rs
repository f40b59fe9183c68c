//! Image metadata use cases: create, show, list, patch, tags, delete, deactivate.

use std::sync::Arc;

use cloud_images_domain::events::Actor;
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::{Image, ImageId, ImageStatus};
use cloud_images_domain::image_patch::{self, PatchOp};
use cloud_images_domain::image_rules::{self, EditContext, NewImage};
use cloud_images_domain::import::ImportOffer;
use cloud_images_domain::listing::{ListQuery, PageLimits};

use cloud_images_domain::{DomainError, DomainResult};

use crate::access::{Contention, ImageAccess, now};
use crate::stores::ImageStores;

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ImagePage {
    /// The images of this page.
    pub images: Vec<Image>,
    /// Whether another page follows.
    pub has_more: bool,
}

/// Image metadata use cases (the `images` route group).
#[derive(Clone)]
pub struct ImageService {
    access: ImageAccess,
    /// Only to remove a deleted image's bytes.
    stores: Arc<ImageStores>,
}

impl ImageService {
    /// Builds the service over image access and the stores a deleted image's bytes leave.
    pub fn new(access: ImageAccess, stores: Arc<ImageStores>) -> Self {
        Self { access, stores }
    }

    /// The import methods and stores offered, which image creation announces.
    pub fn import_offer(&self) -> &ImportOffer {
        &self.access.settings().imports
    }

    /// What the caller's tenant keeps and its quotas (`GET /v2/info/usage`).
    pub async fn usage(
        &self,
        caller: &Caller,
    ) -> DomainResult<(
        cloud_images_domain::quota::TenantUsage,
        cloud_images_domain::quota::TenantQuota,
    )> {
        self.access.usage(caller.tenant_id.as_str()).await
    }

    /// Page sizes for parsing list queries.
    pub fn page_limits(&self) -> PageLimits {
        self.access.settings().page_limits
    }

    fn context(&self, caller: &Caller, creating: bool) -> EditContext {
        EditContext {
            is_admin: caller.is_admin(),
            creating,
            limits: self.access.settings().limits,
        }
    }

    /// Creates a queued image from the properties of a create request.
    pub async fn create(&self, caller: &Caller, new: NewImage) -> DomainResult<Image> {
        caller.require_writer()?;
        let id = new.id.unwrap_or_else(ImageId::random);
        let mut image = Image::new_queued(id, Some(caller.tenant_id.clone()), now());
        let ctx = self.context(caller, true);
        for (key, value) in &new.properties {
            image_rules::set(&mut image, key, value, &ctx)?;
        }
        image_rules::check_limits(&image, &ctx.limits)?;
        self.access
            .insert(&image, &Actor::of(caller))
            .await
            .map_err(|e| match e {
                DomainError::Conflict(_) => {
                    DomainError::Conflict(format!("An image with ID {id} already exists"))
                }
                other => other,
            })?;
        Ok(image)
    }

    /// Shows an image the caller may see.
    pub async fn show(&self, caller: &Caller, id: &str) -> DomainResult<Image> {
        self.access.visible(caller, id).await
    }

    /// Lists one page of the images the caller may see.
    pub async fn list(&self, caller: &Caller, query: &ListQuery) -> DomainResult<ImagePage> {
        let after = match query.marker {
            Some(marker) => Some(
                self.access
                    .visible(caller, &marker.to_string())
                    .await
                    .map_err(|_| {
                        DomainError::Invalid(format!(
                            "marker '{marker}' is not an image you can see"
                        ))
                    })?,
            ),
            None => None,
        };
        let mut images = self.access.list(caller, query, after.as_ref()).await?;
        let has_more = images.len() > query.limit;
        images.truncate(query.limit);
        Ok(ImagePage { images, has_more })
    }

    /// A metadata edit, re-read and re-applied until its compare-and-set wins, so concurrent
    /// changes never lose an update. `edit` answers `None` when there is nothing to change.
    async fn change(
        &self,
        caller: &Caller,
        id: &str,
        edit: impl Fn(&Image) -> DomainResult<Option<Image>>,
    ) -> DomainResult<Image> {
        self.access
            .compare_and_set(caller, id, |current| {
                Ok(edit(current)?.map(|edited| current.revise(edited, now())))
            })
            .await
    }

    /// Applies a JSON-Patch, all operations or none.
    pub async fn patch(&self, caller: &Caller, id: &str, ops: &[PatchOp]) -> DomainResult<Image> {
        let ctx = self.context(caller, false);
        self.change(caller, id, |image| {
            image_patch::apply(image, ops, &ctx).map(Some)
        })
        .await
    }

    /// Adds a tag (idempotent).
    pub async fn add_tag(&self, caller: &Caller, id: &str, tag: &str) -> DomainResult<()> {
        image_rules::check_tag(tag)?;
        let limits = self.access.settings().limits;
        self.change(caller, id, |image| {
            if image.tags.iter().any(|t| t == tag) {
                return Ok(None);
            }
            let mut next = image.clone();
            next.tags.push(tag.to_owned());
            image_rules::check_limits(&next, &limits)?;
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    /// Removes a tag; 404 when the image does not have it.
    pub async fn remove_tag(&self, caller: &Caller, id: &str, tag: &str) -> DomainResult<()> {
        self.change(caller, id, |image| {
            let mut next = image.clone();
            let before = next.tags.len();
            next.tags.retain(|t| t != tag);
            if next.tags.len() == before {
                return Err(DomainError::NotFound(format!("Tag {tag} not found")));
            }
            Ok(Some(next))
        })
        .await
        .map(|_| ())
    }

    /// Deletes an image the caller owns (or any, for an admin) unless it is protected.
    pub async fn delete(&self, caller: &Caller, id: &str) -> DomainResult<()> {
        let mut contention = Contention::begin();
        loop {
            let image = self.access.writable(caller, id).await?;
            if image.protected {
                return Err(DomainError::Forbidden(format!(
                    "Image {id} is protected and cannot be deleted."
                )));
            }
            match self.access.remove(&image, &Actor::of(caller)).await {
                // Record first, bytes second: an upload still running then fails its final
                // compare-and-set and removes what it wrote, so nothing is orphaned. Staged
                // data (`PUT .../stage`) goes with the image.
                Ok(()) => return self.stores.delete_everywhere(&image).await,
                Err(DomainError::Conflict(_)) if contention.pause().await => {}
                Err(DomainError::Conflict(_)) => break,
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict(
            "The image is being changed by others; try again.".into(),
        ))
    }

    /// Deactivates (`true`) or reactivates (`false`) an image, as an admin or, when the
    /// setting allows, its owner. Repeating the current state is a no-op, as Glance does.
    pub async fn set_deactivated(
        &self,
        caller: &Caller,
        id: &str,
        deactivate: bool,
    ) -> DomainResult<()> {
        let image = self.access.visible(caller, id).await?;
        let owner_allowed = self.access.settings().owner_may_deactivate
            && image.is_owned_by(caller.tenant_id.as_str());
        if !caller.is_admin() && !owner_allowed {
            return Err(DomainError::Forbidden(
                "Only administrators may deactivate or reactivate images.".into(),
            ));
        }
        let (target, verb) = if deactivate {
            (ImageStatus::Deactivated, "deactivate")
        } else {
            (ImageStatus::Active, "reactivate")
        };
        self.access
            .compare_and_set(caller, id, |image| {
                if image.status == target {
                    return Ok(None);
                }
                let next = if deactivate {
                    image.deactivate(now())
                } else {
                    image.reactivate(now())
                };
                next.map(Some).map_err(|_| {
                    DomainError::Forbidden(format!(
                        "Not allowed to {verb} an image in status '{}'",
                        image.status
                    ))
                })
            })
            .await
            .map(|_| ())
    }
}
