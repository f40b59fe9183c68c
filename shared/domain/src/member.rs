//! Image members: the tenants an image is shared with, and whether they accepted it.

use chrono::{DateTime, Utc};

use crate::identity::TenantId;
use crate::image::ImageId;

crate::image::name_enum!(
    /// A consumer's answer to an image shared with it.
    MemberStatus, "member status" {
        /// Not answered yet (the initial status).
        Pending => "pending",
        /// Accepted: the image appears in the consumer's default list.
        Accepted => "accepted",
        /// Rejected: the image stays out of the consumer's default list.
        Rejected => "rejected",
    }
);

/// A consumer's membership of a shared image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The shared image.
    pub image_id: ImageId,
    /// The consumer tenant.
    pub member_id: TenantId,
    /// Whether the consumer accepted the image.
    pub status: MemberStatus,
    /// When the producer added the member.
    pub created_at: DateTime<Utc>,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Member {
    /// The consumer's answer: this membership with `status`, changed at `at`.
    pub fn answered(&self, status: MemberStatus, at: DateTime<Utc>) -> Self {
        Self {
            status,
            updated_at: at,
            ..self.clone()
        }
    }
}
