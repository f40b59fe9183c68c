//! What each tenant keeps, for its quotas: one counter item per tenant, changed in the same
//! `TransactWriteItems` as the image write that moves it, on a condition that holds it within
//! the quota. Tables from before the counters get theirs on first use: counted from the
//! owner index once, then kept (every counted write requires the item to exist, so none
//! slips past while it is counted).

use std::time::Duration;

use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use cloud_images_domain::image::{Image, ImageId};
use cloud_images_domain::ports::ImageRepository;
use cloud_images_domain::quota::{TenantQuota, TenantUsage, UsageChange};
use cloud_images_domain::{DomainError, DomainResult};

use super::{DynamoImageRepository, stale};
use crate::dynamo::{
    GSI1, GSI1PK, PK, SK, building, condition_failed, failed, get_item, get_n, is_cancelled, n,
    n_u64, query_partition, s,
};

const USAGE: &str = "USAGE";

fn usage_pk(owner: &str) -> String {
    format!("USAGE#{owner}")
}

/// An image write whose change to its owner's counters must land with it.
pub(super) struct CountedWrite<'a> {
    /// The image's own put or delete, with its condition.
    pub write: TransactWriteItem,
    /// The items carrying the change's events, when the image's own item cannot (a
    /// delete, or events too large to ride in it).
    pub events: Vec<TransactWriteItem>,
    pub id: ImageId,
    /// Whose counters move; `None` for an image without an owner (the write goes alone).
    pub owner: Option<&'a str>,
    /// The stored image the write replaces (`None`: a new one).
    pub current: Option<&'a Image>,
    pub change: UsageChange,
    pub quota: &'a TenantQuota,
}

impl DynamoImageRepository {
    /// The counters of `owner`, counted from its images the first time.
    pub(super) async fn tenant_usage(&self, owner: &str) -> DomainResult<TenantUsage> {
        match self.stored_usage(owner).await? {
            Some(usage) => Ok(usage),
            None => self.count_usage(owner).await,
        }
    }

    async fn stored_usage(&self, owner: &str) -> DomainResult<Option<TenantUsage>> {
        let item = get_item(
            &self.client,
            &self.table,
            usage_pk(owner),
            USAGE.into(),
            true,
        )
        .await?;
        Ok(item.map(|item| {
            let count = |name| get_n(&item, name).ok().and_then(|v| u64::try_from(v).ok());
            TenantUsage {
                images: count("images").unwrap_or(0),
                bytes: count("bytes").unwrap_or(0),
            }
        }))
    }

    /// Counts `owner`'s images and stores the counters unless another request did first.
    async fn count_usage(&self, owner: &str) -> DomainResult<TenantUsage> {
        let items = query_partition(
            &self.client,
            &self.table,
            GSI1,
            GSI1PK,
            &format!("OWNER#{owner}"),
        )
        .await?;
        let usage = TenantUsage {
            images: items.len() as u64,
            bytes: items
                .iter()
                .filter_map(|i| get_n(i, "size").ok())
                .filter_map(|v| u64::try_from(v).ok())
                .sum(),
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(usage_pk(owner)))
            .item(SK, s(USAGE))
            .item("images", n_u64(usage.images))
            .item("bytes", n_u64(usage.bytes))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(usage),
            Err(e) if condition_failed(&e) => Ok(self.stored_usage(owner).await?.unwrap_or(usage)),
            Err(e) => Err(failed("counting a tenant's images", e)),
        }
    }

    /// The counter update of a write, conditioned to keep the owner within its quota.
    fn usage_update(
        &self,
        owner: &str,
        write: &CountedWrite<'_>,
    ) -> DomainResult<TransactWriteItem> {
        let mut conditions = vec!["attribute_exists(pk)".to_owned()];
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(usage_pk(owner)))
            .key(SK, s(USAGE))
            .update_expression("ADD images :images, bytes :bytes")
            .expression_attribute_values(":images", n(write.change.images))
            .expression_attribute_values(":bytes", n(write.change.bytes));
        if let Some(max) = write.quota.max_images.filter(|_| write.change.images > 0) {
            conditions.push("images < :max_images".into());
            update = update.expression_attribute_values(":max_images", n_u64(max));
        }
        if let Some(room) = write.quota.bytes_room_before(write.change.bytes) {
            conditions.push("bytes <= :room".into());
            update = update.expression_attribute_values(":room", n(room));
        }
        let update = update
            .condition_expression(conditions.join(" AND "))
            .build()
            .map_err(building)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Writes the image and its owner's counters as one transaction. When it is cancelled,
    /// finds which condition failed: counters not there yet (counted, then tried again), the
    /// image changed (`Conflict`) or the quota (`QuotaExceeded`). If none did, the
    /// transaction lost a race for the counter item to another one (DynamoDB cancels
    /// either): it tries again after a random pause, for up to [`COUNTED_PATIENCE`].
    pub(super) async fn write_counted(&self, write: CountedWrite<'_>) -> DomainResult<()> {
        let started = std::time::Instant::now();
        for attempt in 0u32.. {
            let mut transaction = self
                .client
                .transact_write_items()
                .transact_items(write.write.clone());
            for events in &write.events {
                transaction = transaction.transact_items(events.clone());
            }
            if let Some(owner) = write.owner {
                transaction = transaction.transact_items(self.usage_update(owner, &write)?);
            }
            match transaction.send().await {
                Ok(_) => return Ok(()),
                Err(e) if is_cancelled(&e) => {}
                Err(e) => return Err(failed("writing an image and its owner's usage", e)),
            }
            let usage = match write.owner {
                Some(owner) => match self.stored_usage(owner).await? {
                    Some(usage) => Some(usage),
                    None => {
                        self.count_usage(owner).await?;
                        continue;
                    }
                },
                None => None,
            };
            let stored = self.get(write.id).await?;
            let unchanged = match write.current {
                None => stored.is_none(),
                Some(current) => stored.is_some_and(|s| s.version == current.version),
            };
            // Without an owner, the image's own condition is the only one there is.
            let Some(usage) = usage.filter(|_| unchanged) else {
                return Err(match write.current {
                    None => DomainError::Conflict(format!("Image {} exists", write.id)),
                    Some(_) => stale(write.id),
                });
            };
            write.quota.admit(usage, write.change)?;
            if started.elapsed() > COUNTED_PATIENCE {
                break;
            }
            tokio::time::sleep(pause(attempt)).await;
        }
        Err(stale(write.id))
    }
}

/// How long a counted write keeps trying when it only lost races for the counter item.
const COUNTED_PATIENCE: Duration = Duration::from_secs(20);

/// A random pause of up to 2^attempt × 10 ms (at most 320 ms), so writers that collided
/// spread out.
fn pause(attempt: u32) -> Duration {
    let ceiling = 10u64 << attempt.min(5);
    let random = (uuid::Uuid::new_v4().as_u128() % u128::from(ceiling)) as u64;
    Duration::from_millis(random + 1)
}
