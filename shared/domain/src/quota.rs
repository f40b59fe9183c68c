//! A tenant's quotas and what counts against them. Adapters keep the counts as counters in
//! the same atomic write as the change that moves them, and refuse the write here when it
//! would pass a limit, so concurrent creates or uploads never end above it.

use crate::error::{DomainError, DomainResult};
use crate::image::Image;

/// Limits on what one tenant keeps; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantQuota {
    /// Images, whatever their status.
    pub max_images: Option<u64>,
    /// Sum of the images' `size`.
    pub max_bytes: Option<u64>,
}

/// What a tenant keeps, as its quotas count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// Images, whatever their status.
    pub images: u64,
    /// Sum of the images' `size`.
    pub bytes: u64,
}

/// How a change moves its owner's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageChange {
    /// +1 for a new image, -1 for a deleted one.
    pub images: i64,
    /// The change in stored bytes.
    pub bytes: i64,
}

fn size_of(image: Option<&Image>) -> i64 {
    image
        .and_then(|i| i.size)
        .map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX))
}

impl UsageChange {
    /// The change from `before` (none: a new image) to `after` (none: deleted).
    pub fn between(before: Option<&Image>, after: Option<&Image>) -> Self {
        Self {
            images: i64::from(after.is_some()) - i64::from(before.is_some()),
            bytes: size_of(after) - size_of(before),
        }
    }

    /// Whether the change moves no counter.
    pub fn is_none(&self) -> bool {
        self.images == 0 && self.bytes == 0
    }
}

impl TenantUsage {
    /// The usage after `change`, never below zero.
    pub fn after(self, change: UsageChange) -> Self {
        let apply = |n: u64, by: i64| n.saturating_add_signed(by);
        Self {
            images: apply(self.images, change.images),
            bytes: apply(self.bytes, change.bytes),
        }
    }
}

impl TenantQuota {
    /// Refuses `change` from `usage` when it grows a count past its limit. A change that
    /// grows nothing always passes, so a tenant over a lowered quota can still tidy up.
    pub fn admit(&self, usage: TenantUsage, change: UsageChange) -> DomainResult<()> {
        let after = usage.after(change);
        if let Some(max) = self.max_images
            && change.images > 0
            && after.images > max
        {
            return Err(images_full(max));
        }
        if let Some(max) = self.max_bytes
            && change.bytes > 0
            && after.bytes > max
        {
            return Err(storage_full(max.saturating_sub(usage.bytes)));
        }
        Ok(())
    }

    /// The most bytes the owner may hold before growing by `by`, for a conditional counter
    /// update (negative: no counter passes); `None` when unlimited or not growing.
    pub fn bytes_room_before(&self, by: i64) -> Option<i64> {
        if by <= 0 {
            return None;
        }
        let max = i64::try_from(self.max_bytes?).unwrap_or(i64::MAX);
        Some(max.saturating_sub(by))
    }
}

/// The tenant already has its quota of images.
pub fn images_full(max: u64) -> DomainError {
    DomainError::QuotaExceeded(format!("the tenant already has its quota of {max} images"))
}

/// The data would take the tenant past its storage quota.
pub fn storage_full(remaining: u64) -> DomainError {
    DomainError::QuotaExceeded(format!(
        "The upload exceeds the tenant's storage quota; {remaining} bytes remain"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: TenantQuota = TenantQuota {
        max_images: Some(2),
        max_bytes: Some(100),
    };

    fn usage(images: u64, bytes: u64) -> TenantUsage {
        TenantUsage { images, bytes }
    }

    fn change(images: i64, bytes: i64) -> UsageChange {
        UsageChange { images, bytes }
    }

    #[test]
    fn the_last_image_and_byte_under_the_quota_pass_and_one_more_does_not() {
        assert!(FULL.admit(usage(1, 0), change(1, 0)).is_ok());
        assert!(matches!(
            FULL.admit(usage(2, 0), change(1, 0)),
            Err(DomainError::QuotaExceeded(m)) if m.contains("quota of 2 images")
        ));
        assert!(FULL.admit(usage(1, 60), change(0, 40)).is_ok());
        assert!(matches!(
            FULL.admit(usage(1, 60), change(0, 41)),
            Err(DomainError::QuotaExceeded(m)) if m.contains("40 bytes remain")
        ));
    }

    #[test]
    fn changes_that_grow_nothing_pass_even_over_a_lowered_quota() {
        assert!(FULL.admit(usage(5, 500), change(-1, -10)).is_ok());
        assert!(FULL.admit(usage(5, 500), change(0, 0)).is_ok());
        assert!(
            TenantQuota::default()
                .admit(usage(u64::MAX, u64::MAX), change(1, 1))
                .is_ok()
        );
    }

    #[test]
    fn counters_never_go_below_zero() {
        assert_eq!(usage(0, 5).after(change(-1, -10)), usage(0, 0));
    }

    #[test]
    fn room_is_what_the_counter_may_hold_before_the_change() {
        assert_eq!(FULL.bytes_room_before(30), Some(70));
        assert_eq!(FULL.bytes_room_before(0), None);
        assert_eq!(FULL.bytes_room_before(-5), None);
        assert_eq!(FULL.bytes_room_before(500), Some(-400));
        assert_eq!(TenantQuota::default().bytes_room_before(30), None);
    }
}
