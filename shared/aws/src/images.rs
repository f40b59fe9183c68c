//! Image records in DynamoDB: every change is a conditional write on `version`; lists are
//! assembled from Queries on the owner, visibility and membership partitions (never a Scan)
//! and then filtered, sorted and paged with the domain's in-memory rules.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use cloud_images_domain::image::{Image, ImageId, ImageStatus, Visibility};
use cloud_images_domain::listing::{
    ListQuery, MemberStatusFilter, VisibilityFilter, page_in_memory,
};
use cloud_images_domain::ports::{ImageRepository, Viewer};
use cloud_images_domain::{DomainError, DomainResult};

use crate::dynamo::{
    self, CONSUMED, GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, GSI3, GSI3PK, GSI3SK, Item, PK, SK,
    condition_failed, failed, get_item, get_n, get_opt_s, get_s, get_time, n, n_u64,
    query_partition, record, s,
};

/// [`ImageRepository`] over the single table.
pub struct DynamoImageRepository {
    client: Client,
    table: String,
}

impl DynamoImageRepository {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn key_of(id: ImageId) -> (String, String) {
    (format!("IMAGE#{id}"), "IMAGE".to_owned())
}

fn by_creation(image: &Image) -> String {
    dynamo::by_creation(image.created_at, image.id)
}

fn opt_s(item: &mut Item, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        item.insert(name.to_owned(), s(value));
    }
}

fn opt_n(item: &mut Item, name: &str, value: Option<u64>) {
    if let Some(value) = value {
        item.insert(name.to_owned(), n_u64(value));
    }
}

fn image_item(image: &Image) -> Item {
    let (pk, sk) = key_of(image.id);
    let mut item = Item::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        ("id".to_owned(), s(image.id.to_string())),
        ("status".to_owned(), s(image.status.as_str())),
        ("visibility".to_owned(), s(image.visibility.as_str())),
        (
            "protected".to_owned(),
            AttributeValue::Bool(image.protected),
        ),
        (
            "os_hidden".to_owned(),
            AttributeValue::Bool(image.os_hidden),
        ),
        ("min_ram".to_owned(), n_u64(image.min_ram)),
        ("min_disk".to_owned(), n_u64(image.min_disk)),
        ("tags".to_owned(), s(serde_json_text(&image.tags))),
        (
            "properties".to_owned(),
            s(serde_json_text(&image.properties)),
        ),
        ("created_at".to_owned(), n(image.created_at.timestamp())),
        ("updated_at".to_owned(), n(image.updated_at.timestamp())),
        ("version".to_owned(), n_u64(image.version)),
        (
            GSI2PK.to_owned(),
            s(format!("VISIBILITY#{}", image.visibility)),
        ),
        (GSI2SK.to_owned(), s(by_creation(image))),
    ]);
    if let Some(owner) = &image.owner {
        item.insert(GSI1PK.to_owned(), s(format!("OWNER#{owner}")));
        item.insert(GSI1SK.to_owned(), s(by_creation(image)));
    }
    if image.status == ImageStatus::Saving {
        item.insert(GSI3PK.to_owned(), s("SAVING"));
        item.insert(GSI3SK.to_owned(), s(by_creation(image)));
    }
    opt_s(&mut item, "owner", image.owner.as_deref());
    opt_s(&mut item, "name", image.name.as_deref());
    opt_s(&mut item, "checksum", image.checksum.as_deref());
    opt_s(&mut item, "os_hash_algo", image.os_hash_algo.as_deref());
    opt_s(&mut item, "os_hash_value", image.os_hash_value.as_deref());
    opt_s(
        &mut item,
        "container_format",
        image.container_format.map(|f| f.as_str()),
    );
    opt_s(
        &mut item,
        "disk_format",
        image.disk_format.map(|f| f.as_str()),
    );
    opt_n(&mut item, "size", image.size);
    opt_n(&mut item, "virtual_size", image.virtual_size);
    item
}

fn serde_json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn corrupt(what: &str) -> DomainError {
    DomainError::unavailable("reading an image item", format!("{what} is malformed"))
}

fn get_bool(item: &Item, name: &str) -> DomainResult<bool> {
    match item.get(name) {
        Some(AttributeValue::Bool(b)) => Ok(*b),
        _ => Err(corrupt(name)),
    }
}

fn get_opt_u64(item: &Item, name: &str) -> Option<u64> {
    get_n(item, name).ok().and_then(|v| u64::try_from(v).ok())
}

fn image_from(item: &Item) -> DomainResult<Image> {
    Ok(Image {
        id: ImageId::parse(&get_s(item, "id")?)?,
        name: get_opt_s(item, "name"),
        status: get_s(item, "status")?.parse()?,
        visibility: get_s(item, "visibility")?.parse()?,
        protected: get_bool(item, "protected")?,
        os_hidden: get_bool(item, "os_hidden")?,
        owner: get_opt_s(item, "owner"),
        checksum: get_opt_s(item, "checksum"),
        os_hash_algo: get_opt_s(item, "os_hash_algo"),
        os_hash_value: get_opt_s(item, "os_hash_value"),
        size: get_opt_u64(item, "size"),
        virtual_size: get_opt_u64(item, "virtual_size"),
        container_format: get_opt_s(item, "container_format")
            .map(|f| f.parse())
            .transpose()?,
        disk_format: get_opt_s(item, "disk_format")
            .map(|f| f.parse())
            .transpose()?,
        min_ram: get_opt_u64(item, "min_ram").unwrap_or(0),
        min_disk: get_opt_u64(item, "min_disk").unwrap_or(0),
        tags: serde_json::from_str(&get_s(item, "tags")?).map_err(|_| corrupt("tags"))?,
        properties: serde_json::from_str::<BTreeMap<String, String>>(&get_s(item, "properties")?)
            .map_err(|_| corrupt("properties"))?,
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
        version: get_opt_u64(item, "version").unwrap_or(0),
    })
}

fn stale(id: ImageId) -> DomainError {
    DomainError::Conflict(format!("Image {id} was changed concurrently"))
}

impl DynamoImageRepository {
    async fn partition(&self, index: &str, key: &str, value: String) -> DomainResult<Vec<Image>> {
        query_partition(&self.client, &self.table, index, key, &value)
            .await?
            .iter()
            .map(image_from)
            .collect()
    }

    async fn owned(&self, owner: &str) -> DomainResult<Vec<Image>> {
        self.partition(GSI1, GSI1PK, format!("OWNER#{owner}")).await
    }

    async fn with_visibility(&self, visibility: Visibility) -> DomainResult<Vec<Image>> {
        self.partition(GSI2, GSI2PK, format!("VISIBILITY#{visibility}"))
            .await
    }

    /// Shared images `tenant` is a member of with one of `statuses`: a Query on the member
    /// index, then BatchGetItem of the images (100 keys a request).
    async fn shared_with(&self, tenant: &str, statuses: &[&str]) -> DomainResult<Vec<Image>> {
        let memberships = query_partition(
            &self.client,
            &self.table,
            GSI1,
            GSI1PK,
            &format!("MEMBER#{tenant}"),
        )
        .await?;
        let ids: Vec<String> = memberships
            .iter()
            .filter(|m| get_opt_s(m, "status").is_some_and(|st| statuses.contains(&st.as_str())))
            .filter_map(|m| get_opt_s(m, "image_id"))
            .collect();
        let mut images = Vec::new();
        for chunk in ids.chunks(100) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| {
                    HashMap::from([
                        (PK.to_owned(), s(format!("IMAGE#{id}"))),
                        (SK.to_owned(), s("IMAGE")),
                    ])
                })
                .collect();
            // UnprocessedKeys come back under throttling; ask again until none remain.
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .build()
                    .map_err(|e| DomainError::unavailable("building a batch read", e))?;
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .return_consumed_capacity(CONSUMED)
                    .send()
                    .await;
                record(&self.table, None, false, &got);
                let got = got.map_err(|e| failed("reading shared images", e))?;
                for item in got
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    images.push(image_from(item)?);
                }
                keys = got
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
        }
        images.retain(|i| i.visibility == Visibility::Shared);
        Ok(images)
    }

    async fn visible_set(&self, viewer: &Viewer, query: &ListQuery) -> DomainResult<Vec<Image>> {
        let all = [
            Visibility::Public,
            Visibility::Private,
            Visibility::Shared,
            Visibility::Community,
        ];
        let mut images = Vec::new();
        if viewer.is_admin {
            let wanted: Vec<Visibility> = match query.visibility {
                VisibilityFilter::Only(v) => vec![v],
                _ => all.to_vec(),
            };
            for visibility in wanted {
                images.extend(self.with_visibility(visibility).await?);
            }
            return Ok(images);
        }
        let tenant = viewer.tenant.as_str();
        match query.visibility {
            VisibilityFilter::Default | VisibilityFilter::All => {
                images.extend(self.owned(tenant).await?);
                images.extend(self.with_visibility(Visibility::Public).await?);
                images.extend(self.shared_with(tenant, &["accepted"]).await?);
                if query.visibility == VisibilityFilter::All {
                    images.extend(self.with_visibility(Visibility::Community).await?);
                }
            }
            VisibilityFilter::Only(v @ (Visibility::Public | Visibility::Community)) => {
                images.extend(self.with_visibility(v).await?);
            }
            VisibilityFilter::Only(Visibility::Private) => {
                images.extend(
                    self.owned(tenant)
                        .await?
                        .into_iter()
                        .filter(|i| i.visibility == Visibility::Private),
                );
            }
            VisibilityFilter::Only(Visibility::Shared) => {
                images.extend(
                    self.owned(tenant)
                        .await?
                        .into_iter()
                        .filter(|i| i.visibility == Visibility::Shared),
                );
                let statuses: &[&str] = match query.member_status {
                    MemberStatusFilter::Accepted => &["accepted"],
                    MemberStatusFilter::Pending => &["pending"],
                    MemberStatusFilter::Rejected => &["rejected"],
                    MemberStatusFilter::All => &["pending", "accepted", "rejected"],
                };
                images.extend(self.shared_with(tenant, statuses).await?);
            }
        }
        Ok(images)
    }
}

#[async_trait]
impl ImageRepository for DynamoImageRepository {
    async fn insert(&self, image: &Image) -> DomainResult<()> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(image_item(image)))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(CONSUMED)
            .send()
            .await;
        record(&self.table, None, false, &put);
        match put {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => {
                Err(DomainError::Conflict(format!("Image {} exists", image.id)))
            }
            Err(e) => Err(failed("storing an image", e)),
        }
    }

    async fn get(&self, id: ImageId) -> DomainResult<Option<Image>> {
        let (pk, sk) = key_of(id);
        get_item(&self.client, &self.table, pk, sk, true)
            .await?
            .as_ref()
            .map(image_from)
            .transpose()
    }

    async fn update(&self, image: &Image, expected_version: u64) -> DomainResult<()> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(image_item(image)))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n_u64(expected_version))
            .return_consumed_capacity(CONSUMED)
            .send()
            .await;
        record(&self.table, None, false, &put);
        match put {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(stale(image.id)),
            Err(e) => Err(failed("updating an image", e)),
        }
    }

    async fn delete(&self, id: ImageId, expected_version: u64) -> DomainResult<()> {
        let (pk, sk) = key_of(id);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n_u64(expected_version))
            .return_consumed_capacity(CONSUMED)
            .send()
            .await;
        record(&self.table, None, false, &deleted);
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(stale(id)),
            Err(e) => Err(failed("deleting an image", e)),
        }
    }

    async fn list(
        &self,
        viewer: &Viewer,
        query: &ListQuery,
        after: Option<&Image>,
    ) -> DomainResult<Vec<Image>> {
        Ok(page_in_memory(
            query,
            self.visible_set(viewer, query).await?,
            after,
        ))
    }

    async fn count_owned(&self, owner: &str) -> DomainResult<u64> {
        Ok(self.owned(owner).await?.len() as u64)
    }

    async fn stored_bytes(&self, owner: &str) -> DomainResult<u64> {
        Ok(self.owned(owner).await?.iter().filter_map(|i| i.size).sum())
    }

    async fn requeue_interrupted_uploads(&self) -> DomainResult<usize> {
        let saving = self.partition(GSI3, GSI3PK, "SAVING".to_owned()).await?;
        let mut reset = 0;
        for image in saving {
            let mut queued = image.clone();
            queued.status = ImageStatus::Queued;
            queued.size = None;
            queued.virtual_size = None;
            queued.checksum = None;
            queued.os_hash_algo = None;
            queued.os_hash_value = None;
            queued.version = image.version + 1;
            match self.update(&queued, image.version).await {
                Ok(()) => reset += 1,
                Err(DomainError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reset)
    }
}
