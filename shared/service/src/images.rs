//! Image metadata use cases: create, show, list, patch, tags, delete, deactivate.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::{Image, ImageId, ImageStatus, Visibility};
use cloud_images_domain::image_patch::{self, PatchOp};
use cloud_images_domain::image_rules::{self, EditContext, ImageLimits};
use cloud_images_domain::listing::{ListQuery, PageLimits};
use cloud_images_domain::member::MemberStatus;
use cloud_images_domain::ports::{ImageRepository, ImageStore, MemberRepository, Viewer};
use cloud_images_domain::visibility;
use cloud_images_domain::{DomainError, DomainResult};
use serde_json::{Map, Value};

/// How many times a change is re-applied after losing a compare-and-set race; with the
/// jittered back-off below, even dozens of simultaneous writers of one image all land.
pub(crate) const CAS_ATTEMPTS: u32 = 32;

/// Waits a random 0..=2^min(attempt,6) milliseconds so racing writers spread out.
async fn back_off(attempt: u32) {
    use rand_core::RngCore;
    let ceiling = 1u64 << attempt.min(6);
    let millis = u64::from(rand_core::OsRng.next_u32()) % (ceiling + 1);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

/// Operator settings for images (built from configuration; there is no safe default for
/// every limit, so none is derived).
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// Per-image limits on properties and tags.
    pub limits: ImageLimits,
    /// Most images a tenant may own; `None` for no limit.
    pub max_images_per_tenant: Option<u64>,
    /// Whether owners (not only admins) may deactivate and reactivate their images.
    pub owner_may_deactivate: bool,
    /// Default and maximum page sizes of lists.
    pub page_limits: PageLimits,
    /// The multihash algorithm of `os_hash_value`.
    pub hash_algo: cloud_images_domain::image::HashAlgo,
    /// Most bytes of image data a tenant may store; `None` for no limit.
    pub storage_quota_bytes: Option<u64>,
    /// Most members one image may have (Glance ships 128).
    pub max_members_per_image: usize,
    /// When set, downloads answer a redirect to a URL valid this long where the store can
    /// issue one (S3), so the bytes bypass the service (a Lambda cannot return 6 MB+).
    pub download_redirect: Option<std::time::Duration>,
    /// Largest upload `PUT .../file` takes; larger ones are refused with 413 pointing to the
    /// staged upload (a Lambda request holds at most 6 MB). Unlimited when `None`.
    pub direct_upload_limit: Option<u64>,
    /// How long the part URLs of a staged upload stay valid.
    pub staged_upload_expiry: std::time::Duration,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ImagePage {
    /// The images of this page.
    pub images: Vec<Image>,
    /// Whether another page follows.
    pub has_more: bool,
}

/// Image metadata use cases.
#[derive(Clone)]
pub struct ImageService {
    pub(crate) repo: Arc<dyn ImageRepository>,
    pub(crate) store: Arc<dyn ImageStore>,
    pub(crate) members: Arc<dyn MemberRepository>,
    pub(crate) settings: Arc<ImageSettings>,
}

pub(crate) fn now() -> DateTime<Utc> {
    // Whole seconds, as displayed, so `created_at=eq:<shown value>` filters match.
    Utc::now().trunc_subsecs(0)
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("No image found with ID {id}"))
}

/// Whether `caller` may see `image` without consulting memberships.
fn viewer_of(caller: &Caller) -> Viewer {
    Viewer {
        tenant: caller.tenant_id.to_string(),
        is_admin: caller.is_admin(),
    }
}

impl ImageService {
    /// Builds the service over a repository of records and a store of bytes.
    pub fn new(
        repo: Arc<dyn ImageRepository>,
        store: Arc<dyn ImageStore>,
        members: Arc<dyn MemberRepository>,
        settings: ImageSettings,
    ) -> Self {
        Self {
            repo,
            store,
            members,
            settings: Arc::new(settings),
        }
    }

    /// Page sizes for parsing list queries.
    pub fn page_limits(&self) -> PageLimits {
        self.settings.page_limits
    }

    fn context(&self, caller: &Caller, creating: bool) -> EditContext {
        EditContext {
            is_admin: caller.is_admin(),
            creating,
            limits: self.settings.limits,
        }
    }

    /// Reads an image the caller may see; anything else is 404 (never 403, so existence
    /// does not leak).
    pub(crate) async fn visible(&self, caller: &Caller, raw_id: &str) -> DomainResult<Image> {
        let id = ImageId::parse(raw_id).map_err(|_| not_found(raw_id))?;
        let image = self.repo.get(id).await?.ok_or_else(|| not_found(raw_id))?;
        let viewer = viewer_of(caller);
        // The membership is read only when it could decide.
        if visibility::sees(&viewer, &image, None)
            || visibility::sees(&viewer, &image, self.membership(&image, caller).await?)
        {
            Ok(image)
        } else {
            Err(not_found(raw_id))
        }
    }

    /// The caller's tenant's membership status of a shared image, if it is a member.
    async fn membership(
        &self,
        image: &Image,
        caller: &Caller,
    ) -> DomainResult<Option<MemberStatus>> {
        if image.visibility != Visibility::Shared {
            return Ok(None);
        }
        Ok(self
            .members
            .get(image.id, caller.tenant_id.as_str())
            .await?
            .map(|member| member.status))
    }

    /// Reads an image the caller may change: visible, owned (or admin), and a writer role.
    pub(crate) async fn writable(&self, caller: &Caller, raw_id: &str) -> DomainResult<Image> {
        let image = self.visible(caller, raw_id).await?;
        if !caller.is_admin() && !image.is_owned_by(caller.tenant_id.as_str()) {
            return Err(DomainError::Forbidden(
                "You are not the owner of this image.".into(),
            ));
        }
        caller.require_writer()?;
        Ok(image)
    }

    /// Creates a queued image from the properties of a create request.
    pub async fn create(&self, caller: &Caller, body: Map<String, Value>) -> DomainResult<Image> {
        caller.require_writer()?;
        let mut body = body;
        let id = match body.remove("id") {
            None | Some(Value::Null) => ImageId::random(),
            Some(Value::String(raw)) => ImageId::parse(&raw)?,
            Some(_) => return Err(DomainError::Invalid("'id' must be a UUID string".into())),
        };
        let mut image = Image::new_queued(id, Some(caller.tenant_id.to_string()), now());
        let ctx = self.context(caller, true);
        for (key, value) in &body {
            image_rules::set(&mut image, key, value, &ctx)?;
        }
        image_rules::check_limits(&image, &ctx.limits)?;
        if let Some(owner) = image.owner.as_deref() {
            self.check_image_quota(owner).await?;
        }
        self.repo.insert(&image).await.map_err(|e| match e {
            DomainError::Conflict(_) => {
                DomainError::Conflict(format!("An image with ID {id} already exists"))
            }
            other => other,
        })?;
        Ok(image)
    }

    pub(crate) async fn check_image_quota(&self, owner: &str) -> DomainResult<()> {
        let Some(max) = self.settings.max_images_per_tenant else {
            return Ok(());
        };
        if self.repo.count_owned(owner).await? >= max {
            return Err(DomainError::QuotaExceeded(format!(
                "the tenant already has its quota of {max} images"
            )));
        }
        Ok(())
    }

    /// Shows an image the caller may see.
    pub async fn show(&self, caller: &Caller, id: &str) -> DomainResult<Image> {
        self.visible(caller, id).await
    }

    /// Lists one page of the images the caller may see.
    pub async fn list(&self, caller: &Caller, query: &ListQuery) -> DomainResult<ImagePage> {
        let after = match query.marker {
            Some(marker) => Some(self.visible(caller, &marker.to_string()).await.map_err(
                |_| DomainError::Invalid(format!("marker '{marker}' is not an image you can see")),
            )?),
            None => None,
        };
        let mut images = self
            .repo
            .list(&viewer_of(caller), query, after.as_ref())
            .await?;
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
        self.compare_and_set(caller, id, |current| {
            Ok(edit(current)?.map(|edited| current.revise(edited, now())))
        })
        .await
    }

    /// Stores `next_of(current)` (a next version made by the domain's lifecycle) by
    /// compare-and-set, re-reading and retrying when another writer won.
    async fn compare_and_set(
        &self,
        caller: &Caller,
        id: &str,
        next_of: impl Fn(&Image) -> DomainResult<Option<Image>>,
    ) -> DomainResult<Image> {
        for attempt in 0..CAS_ATTEMPTS {
            let current = self.writable(caller, id).await?;
            let Some(next) = next_of(&current)? else {
                return Ok(current);
            };
            match self.repo.update(&next, current.version).await {
                Ok(()) => return Ok(next),
                Err(DomainError::Conflict(_)) => back_off(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict(
            "The image is being changed by others; try again.".into(),
        ))
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
        let limits = self.settings.limits;
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
        for attempt in 0..CAS_ATTEMPTS {
            let image = self.writable(caller, id).await?;
            if image.protected {
                return Err(DomainError::Forbidden(format!(
                    "Image {id} is protected and cannot be deleted."
                )));
            }
            match self.repo.delete(image.id, image.version).await {
                // Record first, bytes second: an upload still running then fails its final
                // compare-and-set and removes what it wrote, so nothing is orphaned.
                Ok(()) => {
                    self.members.delete_all(image.id).await?;
                    return self.store.delete(image.id).await;
                }
                Err(DomainError::Conflict(_)) => back_off(attempt).await,
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
        let image = self.visible(caller, id).await?;
        let owner_allowed =
            self.settings.owner_may_deactivate && image.is_owned_by(caller.tenant_id.as_str());
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
        self.compare_and_set(caller, id, |image| {
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
