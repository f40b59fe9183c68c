//! Image memberships in DynamoDB: one item per member under the image's partition, and a
//! per-image counter changed in the same transaction, so the member limit holds under
//! concurrent adds.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use cloud_images_domain::events::Event;
use cloud_images_domain::identity::TenantId;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::member::Member;
use cloud_images_domain::ports::MemberRepository;
use cloud_images_domain::{DomainError, DomainResult};

use crate::dynamo::events::{event_items, with_events};
use crate::dynamo::{
    GSI1PK, GSI1SK, Item, PK, SK, building, condition_failed, failed, get_item, get_s, get_time,
    is_cancelled, n, n_u64, s,
};

/// [`MemberRepository`] over the single table.
pub struct DynamoMemberRepository {
    client: Client,
    table: String,
}

impl DynamoMemberRepository {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

const COUNTER: &str = "MEMBER_COUNT";

fn partition(image_id: ImageId) -> String {
    format!("IMAGE#{image_id}")
}

fn sort_key(member_id: &str) -> String {
    format!("MEMBER#{member_id}")
}

fn member_item(member: &Member) -> Item {
    Item::from([
        (PK.to_owned(), s(partition(member.image_id))),
        (SK.to_owned(), s(sort_key(&member.member_id))),
        // "Images shared with me" is a Query on the member's partition of the index.
        (GSI1PK.to_owned(), s(format!("MEMBER#{}", member.member_id))),
        (
            GSI1SK.to_owned(),
            s(format!("{}#{}", member.status, member.image_id)),
        ),
        ("image_id".to_owned(), s(member.image_id.to_string())),
        ("member_id".to_owned(), s(member.member_id.to_string())),
        ("status".to_owned(), s(member.status.as_str())),
        ("created_at".to_owned(), n(member.created_at.timestamp())),
        ("updated_at".to_owned(), n(member.updated_at.timestamp())),
    ])
}

fn member_from(item: &Item) -> DomainResult<Member> {
    Ok(Member {
        image_id: ImageId::parse(&get_s(item, "image_id")?)?,
        member_id: TenantId::from_trusted(get_s(item, "member_id")?),
        status: get_s(item, "status")?.parse()?,
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
    })
}

impl DynamoMemberRepository {
    fn counter_change(
        &self,
        image_id: ImageId,
        delta: i64,
        limit: Option<usize>,
    ) -> DomainResult<TransactWriteItem> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(partition(image_id)))
            .key(SK, s(COUNTER))
            .update_expression("ADD #count :delta")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":delta", n(delta));
        if let Some(limit) = limit {
            update = update
                .condition_expression("attribute_not_exists(#count) OR #count < :limit")
                .expression_attribute_values(":limit", n_u64(limit as u64));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(building)?)
            .build())
    }

    async fn member_items(&self, image_id: ImageId) -> DomainResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :member)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(partition(image_id)))
                .expression_attribute_values(":member", s("MEMBER#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await;
            let page = page.map_err(|e| failed("listing members", e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }
}

#[async_trait]
impl MemberRepository for DynamoMemberRepository {
    async fn insert(
        &self,
        member: &Member,
        max_members: usize,
        events: &[Event],
    ) -> DomainResult<()> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(with_events(member_item(member), events)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(building)?;
        let written = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(self.counter_change(member.image_id, 1, Some(max_members))?)
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            // Which condition failed: the member exists (409) or the image is full (413).
            Err(e) if is_cancelled(&e) => match self.get(member.image_id, &member.member_id).await?
            {
                Some(_) => Err(DomainError::Conflict(format!(
                    "{} is already a member",
                    member.member_id
                ))),
                None => Err(DomainError::QuotaExceeded(format!(
                    "at most {max_members} members"
                ))),
            },
            Err(e) => Err(failed("adding a member", e)),
        }
    }

    async fn get(&self, image_id: ImageId, member_id: &str) -> DomainResult<Option<Member>> {
        let item = get_item(
            &self.client,
            &self.table,
            partition(image_id),
            sort_key(member_id),
            true,
        )
        .await?;
        item.as_ref().map(member_from).transpose()
    }

    async fn list(&self, image_id: ImageId) -> DomainResult<Vec<Member>> {
        let mut members = self
            .member_items(image_id)
            .await?
            .iter()
            .map(member_from)
            .collect::<DomainResult<Vec<_>>>()?;
        members.sort_by(|a, b| (a.created_at, &a.member_id).cmp(&(b.created_at, &b.member_id)));
        Ok(members)
    }

    async fn set_status(&self, member: &Member, events: &[Event]) -> DomainResult<()> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(with_events(member_item(member), events)?))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(DomainError::NotFound(format!(
                "{} is not a member of this image",
                member.member_id
            ))),
            Err(e) => Err(failed("changing a member's status", e)),
        }
    }

    async fn delete(
        &self,
        image_id: ImageId,
        member_id: &str,
        events: &[Event],
    ) -> DomainResult<()> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(partition(image_id)))
            .key(SK, s(sort_key(member_id)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(building)?;
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(self.counter_change(image_id, -1, None)?);
        // The member's own item goes away: its events need one of their own.
        for events in event_items(&self.table, events)? {
            transaction = transaction.transact_items(events);
        }
        let written = transaction.send().await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_cancelled(&e) => Err(DomainError::NotFound(format!(
                "{member_id} is not a member of this image"
            ))),
            Err(e) => Err(failed("removing a member", e)),
        }
    }

    async fn delete_all(&self, image_id: ImageId) -> DomainResult<()> {
        for item in self.member_items(image_id).await? {
            let member_id = get_s(&item, "member_id")?;
            match self.delete(image_id, &member_id, &[]).await {
                Ok(()) | Err(DomainError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(partition(image_id)))
            .key(SK, s(COUNTER))
            .send()
            .await;
        deleted.map_err(|e| failed("removing the member counter", e))?;
        Ok(())
    }
}
