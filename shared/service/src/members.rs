//! Sharing: the owner adds tenants as members of a shared image; each member accepts or
//! rejects it; nobody else sees or changes a membership.

use std::sync::Arc;

use chrono::Utc;
use cloud_images_domain::events::{Actor, MemberChange, member_event};
use cloud_images_domain::identity::{Caller, TenantId};
use cloud_images_domain::image::{Image, Visibility};
use cloud_images_domain::member::{Member, MemberStatus};
use cloud_images_domain::ports::MemberRepository;
use cloud_images_domain::{DomainError, DomainResult};

use crate::access::{ImageAccess, now};

const MAX_MEMBER_ID: usize = 255;

fn member_not_found(member_id: &str) -> DomainError {
    DomainError::NotFound(format!("{member_id} is not a member of this image"))
}

fn require_shared(image: &Image) -> DomainResult<()> {
    if image.visibility == Visibility::Shared {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "Only shared images have members; this image's visibility is {}",
            image.visibility
        )))
    }
}

fn is_owner_or_admin(image: &Image, caller: &Caller) -> bool {
    caller.is_admin() || image.is_owned_by(caller.tenant_id.as_str())
}

/// Sharing use cases (the `members` route group).
#[derive(Clone)]
pub struct MemberService {
    access: ImageAccess,
    members: Arc<dyn MemberRepository>,
}

impl MemberService {
    /// Builds the service over image access and the memberships it changes.
    pub fn new(access: ImageAccess, members: Arc<dyn MemberRepository>) -> Self {
        Self { access, members }
    }

    fn max_members(&self) -> usize {
        self.access.settings().max_members_per_image
    }

    /// Reads a shared image the caller may see, for any member route.
    async fn shared_image(&self, caller: &Caller, image_id: &str) -> DomainResult<Image> {
        let image = self.access.visible(caller, image_id).await?;
        require_shared(&image)?;
        Ok(image)
    }

    /// Adds a tenant as a `pending` member; only the owner (or an admin) may.
    pub async fn add_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
    ) -> DomainResult<Member> {
        let image = self.access.visible(caller, image_id).await?;
        if !is_owner_or_admin(&image, caller) {
            return Err(DomainError::Forbidden(
                "Only the image's owner can add members".into(),
            ));
        }
        caller.require_writer()?;
        require_shared(&image)?;
        if member_id.is_empty()
            || member_id.chars().count() > MAX_MEMBER_ID
            || cloud_images_domain::identity::has_surrounding_space(member_id)
        {
            return Err(DomainError::Invalid(format!(
                "'member' must be a tenant id of 1 to {MAX_MEMBER_ID} characters"
            )));
        }
        let at = now();
        let member = Member {
            image_id: image.id,
            member_id: TenantId::from_trusted(member_id),
            status: MemberStatus::Pending,
            created_at: at,
            updated_at: at,
        };
        let event = member_event(
            &member,
            MemberChange::Created,
            &Actor::of(caller),
            Utc::now(),
        );
        self.members
            .insert(&member, self.max_members(), &[event])
            .await
            .map_err(|e| match e {
                DomainError::Conflict(_) => {
                    DomainError::Conflict(format!("{member_id} is already a member of this image"))
                }
                DomainError::QuotaExceeded(_) => DomainError::QuotaExceeded(format!(
                    "An image may have at most {} members",
                    self.max_members()
                )),
                other => other,
            })?;
        Ok(member)
    }

    /// The owner (or an admin) sees every member; a member sees only its own entry.
    pub async fn list_members(&self, caller: &Caller, image_id: &str) -> DomainResult<Vec<Member>> {
        let image = self.shared_image(caller, image_id).await?;
        let mut members = self.members.list(image.id).await?;
        if !is_owner_or_admin(&image, caller) {
            members.retain(|m| m.member_id == caller.tenant_id);
        }
        Ok(members)
    }

    /// One membership: any, for the owner or an admin; a member only its own.
    pub async fn show_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
    ) -> DomainResult<Member> {
        let image = self.shared_image(caller, image_id).await?;
        if !is_owner_or_admin(&image, caller) && member_id != caller.tenant_id.as_str() {
            return Err(member_not_found(member_id));
        }
        self.members
            .get(image.id, member_id)
            .await?
            .ok_or_else(|| member_not_found(member_id))
    }

    /// A member accepts, rejects or returns to pending; only the member itself may.
    pub async fn update_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
        status: &str,
    ) -> DomainResult<Member> {
        let image = self.shared_image(caller, image_id).await?;
        if member_id != caller.tenant_id.as_str() {
            return Err(DomainError::Forbidden(
                "Only the member itself may change its membership status".into(),
            ));
        }
        caller.require_writer()?;
        let status: MemberStatus = status.parse()?;
        let member = self
            .members
            .get(image.id, member_id)
            .await?
            .ok_or_else(|| member_not_found(member_id))?
            .answered(status, now());
        let event = member_event(
            &member,
            MemberChange::Updated,
            &Actor::of(caller),
            Utc::now(),
        );
        self.members.set_status(&member, &[event]).await?;
        Ok(member)
    }

    /// Removes a member; only the owner (or an admin) may.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        image_id: &str,
        member_id: &str,
    ) -> DomainResult<()> {
        let image = self.shared_image(caller, image_id).await?;
        if !is_owner_or_admin(&image, caller) {
            return Err(DomainError::Forbidden(
                "Only the image's owner can remove members".into(),
            ));
        }
        caller.require_writer()?;
        // The event describes the membership as it was: read it first.
        let member = self
            .members
            .get(image.id, member_id)
            .await?
            .ok_or_else(|| member_not_found(member_id))?;
        let event = member_event(
            &member,
            MemberChange::Deleted,
            &Actor::of(caller),
            Utc::now(),
        );
        self.members
            .delete(image.id, member_id, &[event])
            .await
            .map_err(|e| match e {
                DomainError::NotFound(_) => member_not_found(member_id),
                other => other,
            })
    }
}
