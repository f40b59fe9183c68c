//! What every image service shares: who may see and who may change an image, the image
//! settings, and the compare-and-set loop every metadata change goes through.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use cloud_images_domain::events::{Actor, image_events};
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::{HashAlgo, Image, ImageId, Visibility};
use cloud_images_domain::image_rules::ImageLimits;
use cloud_images_domain::import::ImportOffer;
use cloud_images_domain::listing::{ListQuery, PageLimits};
use cloud_images_domain::member::MemberStatus;
use cloud_images_domain::ports::{ImageRepository, MemberRepository, Viewer};
use cloud_images_domain::quota::{TenantQuota, TenantUsage};
use cloud_images_domain::visibility;
use cloud_images_domain::{DomainError, DomainResult};

/// How long a change keeps being re-applied after losing compare-and-set races. A fixed
/// number of attempts (32, 64 ms apart at most) let 7 of 23,832 PATCHes from 32 connections
/// to one image fail with 409: a user's change must not fail because others wrote first, so
/// a writer keeps trying for as long as a client waits (the functions' timeout is 29 s).
pub(crate) const CAS_PATIENCE: Duration = Duration::from_secs(20);

/// The pauses of one compare-and-set loop: exponential back-off with full jitter, in units
/// of the time one attempt took (a millisecond on SQLite, tens on DynamoDB through
/// Lambda), so that however slow the store, racing writers spread out until each round has
/// few of them; for [`CAS_PATIENCE`].
pub(crate) struct Contention {
    started: Instant,
    attempt_began: Instant,
    attempt: u32,
}

impl Contention {
    /// A loop whose first attempt starts now.
    pub(crate) fn begin() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            attempt_began: now,
            attempt: 0,
        }
    }

    /// Waits a random time up to 2^min(attempt, 5) times the last attempt's length before
    /// the next attempt; `false` (at once) when patience ran out and the loop should give up.
    pub(crate) async fn pause(&mut self) -> bool {
        use rand_core::RngCore;
        let now = Instant::now();
        let Some(left) = CAS_PATIENCE
            .checked_sub(now - self.started)
            .filter(|l| !l.is_zero())
        else {
            return false;
        };
        let round = (now - self.attempt_began).max(Duration::from_millis(1));
        let ceiling = round.saturating_mul(1 << self.attempt.min(5)).min(left);
        let fraction = f64::from(rand_core::OsRng.next_u32()) / f64::from(u32::MAX);
        self.attempt += 1;
        tokio::time::sleep(ceiling.mul_f64(fraction)).await;
        self.attempt_began = Instant::now();
        true
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    // Whole seconds, as displayed, so `created_at=eq:<shown value>` filters match.
    Utc::now().trunc_subsecs(0)
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
    pub hash_algo: HashAlgo,
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
    /// The import methods and stores offered.
    pub imports: ImportOffer,
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("No image found with ID {id}"))
}

fn viewer_of(caller: &Caller) -> Viewer {
    Viewer {
        tenant: caller.tenant_id.clone(),
        is_admin: caller.is_admin(),
    }
}

/// Image records as a caller may reach them: the visibility and writability rules, the
/// per-tenant quotas, and compare-and-set writes. Cheap to clone; every image service
/// holds one.
#[derive(Clone)]
pub struct ImageAccess {
    images: Arc<dyn ImageRepository>,
    members: Arc<dyn MemberRepository>,
    settings: Arc<ImageSettings>,
}

impl ImageAccess {
    /// Access over the image records and the memberships that widen who sees them.
    pub fn new(
        images: Arc<dyn ImageRepository>,
        members: Arc<dyn MemberRepository>,
        settings: ImageSettings,
    ) -> Self {
        Self {
            images,
            members,
            settings: Arc::new(settings),
        }
    }

    /// The operator's image settings.
    pub fn settings(&self) -> &ImageSettings {
        &self.settings
    }

    /// Reads an image the caller may see; anything else is 404 (never 403, so existence
    /// does not leak).
    pub(crate) async fn visible(&self, caller: &Caller, raw_id: &str) -> DomainResult<Image> {
        let id = ImageId::parse(raw_id).map_err(|_| not_found(raw_id))?;
        let image = self
            .images
            .get(id)
            .await?
            .ok_or_else(|| not_found(raw_id))?;
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

    /// One page (and one image more, when there are more) of the images the caller sees.
    pub(crate) async fn list(
        &self,
        caller: &Caller,
        query: &ListQuery,
        after: Option<&Image>,
    ) -> DomainResult<Vec<Image>> {
        self.images.list(&viewer_of(caller), query, after).await
    }

    /// An image by id whoever owns it, for work already authorised (a task of its owner).
    pub(crate) async fn find(&self, id: ImageId) -> DomainResult<Option<Image>> {
        self.images.get(id).await
    }

    /// What `owner` keeps and the quotas that hold it (its counters: O(1)).
    pub(crate) async fn usage(&self, owner: &str) -> DomainResult<(TenantUsage, TenantQuota)> {
        Ok((self.images.usage(owner).await?, self.quota()))
    }

    /// The quotas every tenant's writes are held to.
    fn quota(&self) -> TenantQuota {
        TenantQuota {
            max_images: self.settings.max_images_per_tenant,
            max_bytes: self.settings.storage_quota_bytes,
        }
    }

    /// Records a new image, within its owner's image quota (exact under concurrency: the
    /// repository checks it in the same atomic write).
    pub(crate) async fn insert(&self, image: &Image, actor: &Actor) -> DomainResult<()> {
        let events = image_events(None, Some(image), actor, Utc::now());
        self.images.insert(image, &self.quota(), &events).await
    }

    /// Bytes the image's owner may still store; `None` when there is no storage quota. An
    /// early answer for streaming: the write that records the size checks it exactly.
    pub(crate) async fn storage_allowance(&self, image: &Image) -> DomainResult<Option<u64>> {
        let (Some(quota), Some(owner)) =
            (self.settings.storage_quota_bytes, image.owner.as_deref())
        else {
            return Ok(None);
        };
        let used = self.images.usage(owner).await?.bytes;
        Ok(Some(quota.saturating_sub(used)))
    }

    /// Stores the next version of an image (made by the domain's lifecycle) if `current`
    /// is still the stored one; `Conflict` otherwise, `QuotaExceeded` if it stores more
    /// than the owner's storage quota leaves.
    pub(crate) async fn replace(
        &self,
        next: &Image,
        current: &Image,
        actor: &Actor,
    ) -> DomainResult<()> {
        let events = image_events(Some(current), Some(next), actor, Utc::now());
        self.images
            .update(next, current, &self.quota(), &events)
            .await
    }

    /// Removes an image record if `current` is still the stored version, and its
    /// memberships with it.
    pub(crate) async fn remove(&self, current: &Image, actor: &Actor) -> DomainResult<()> {
        let events = image_events(Some(current), None, actor, Utc::now());
        self.images.delete(current, &events).await?;
        self.members.delete_all(current.id).await
    }

    /// Images in `saving` or `uploading` (start-up recovery of a single-process host).
    pub(crate) async fn receiving(&self) -> DomainResult<Vec<Image>> {
        self.images.receiving().await
    }

    /// Stores `next_of(current)` for an image found by id whoever owns it (work already
    /// authorised: a task), re-reading and retrying when another writer won. `next_of`
    /// answers `None` when there is nothing to change; a deleted image is `NotFound`.
    pub(crate) async fn update_found(
        &self,
        id: ImageId,
        actor: &Actor,
        next_of: impl Fn(&Image) -> DomainResult<Option<Image>>,
    ) -> DomainResult<Image> {
        let read = || async move {
            self.find(id)
                .await?
                .ok_or_else(|| DomainError::NotFound(format!("Image {id} was deleted")))
        };
        self.retry_until_stored(read, actor, next_of).await
    }

    /// Gives back an image import task `task` held: `queued` again (a copied image stays
    /// active) with `stores` named in `os_glance_failed_import`. Nothing happens when the
    /// task no longer holds it.
    pub(crate) async fn release_import(
        &self,
        id: ImageId,
        task: &str,
        stores: &[String],
        actor: &Actor,
    ) -> DomainResult<()> {
        self.update_found(id, actor, |current| {
            if !current.is_held_by(task) {
                return Ok(None);
            }
            current.fail_import(stores, now()).map(Some)
        })
        .await
        .map(|_| ())
    }

    /// Returns an image left `saving` (or `uploading`) by a process known to be gone to
    /// `queued`.
    pub(crate) async fn requeue_abandoned(
        &self,
        saving: &Image,
        actor: &Actor,
    ) -> DomainResult<Image> {
        let queued = saving.requeue(now())?;
        self.replace(&queued, saving, actor).await?;
        Ok(queued)
    }

    /// Stores `next_of(current)` for an image the caller may write, re-reading and retrying
    /// when another writer won, so concurrent changes never lose an update. `next_of`
    /// answers `None` when there is nothing to change.
    pub(crate) async fn compare_and_set(
        &self,
        caller: &Caller,
        id: &str,
        next_of: impl Fn(&Image) -> DomainResult<Option<Image>>,
    ) -> DomainResult<Image> {
        self.retry_until_stored(|| self.writable(caller, id), &Actor::of(caller), next_of)
            .await
    }

    /// The compare-and-set loop: `read` the current image, store `next_of(current)` over
    /// its version, and start again (after a jittered pause) when another writer won.
    async fn retry_until_stored<Read, Reading>(
        &self,
        read: Read,
        actor: &Actor,
        next_of: impl Fn(&Image) -> DomainResult<Option<Image>>,
    ) -> DomainResult<Image>
    where
        Read: Fn() -> Reading,
        Reading: std::future::Future<Output = DomainResult<Image>>,
    {
        let mut contention = Contention::begin();
        loop {
            let current = read().await?;
            let Some(next) = next_of(&current)? else {
                return Ok(current);
            };
            match self.replace(&next, &current, actor).await {
                Ok(()) => return Ok(next),
                Err(DomainError::Conflict(_)) if contention.pause().await => {}
                Err(DomainError::Conflict(_)) => break,
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict(
            "The image is being changed by others; try again.".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_losing_writer_keeps_trying_for_the_whole_patience_then_gives_up() {
        let mut contention = Contention::begin();
        let mut pauses = 0u32;
        while contention.pause().await {
            pauses += 1;
        }
        let waited = contention.started.elapsed();
        // The old loop gave up after 32 lost races, whatever the time.
        assert!(pauses > 32 * 4, "only {pauses} retries");
        assert!(waited >= CAS_PATIENCE, "gave up after {waited:?}");
        assert!(
            waited <= CAS_PATIENCE + Duration::from_millis(1),
            "kept going for {waited:?}"
        );
        assert!(!contention.pause().await, "tried again after giving up");
    }
}
