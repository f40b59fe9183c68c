//! Image records in DynamoDB: every change is a conditional write on `version`; lists come
//! from Queries on the owner, visibility and membership partitions (never a Scan). Sorted by
//! created_at, name, updated_at or id (then id), an index over the partitions holds the list
//! order, so a page reads each partition from the marker on and merges them; other orders
//! (status, formats, size, or several keys) read every visible image and filter, sort and
//! page with the domain's in-memory rules.

use std::collections::{BTreeMap, HashMap, VecDeque};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem};
use cloud_images_domain::events::Event;
use cloud_images_domain::identity::TenantId;
use cloud_images_domain::image::{Image, ImageId, ImageStatus, Visibility};
use cloud_images_domain::listing::{
    self, ListQuery, MemberStatusFilter, SortDir, SortKey, VisibilityFilter, page_in_memory,
};
use cloud_images_domain::ports::{ImageRepository, Viewer};
use cloud_images_domain::quota::{TenantQuota, TenantUsage, UsageChange};
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::future::try_join_all;

use crate::dynamo::{
    self, GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, GSI3, GSI3PK, GSI3SK, ID_KEY, Item, NAME_KEY,
    OWNER_BY_ID, OWNER_BY_NAME, OWNER_BY_UPDATE, PK, SK, UPDATE_KEY, VISIBILITY_BY_ID,
    VISIBILITY_BY_NAME, VISIBILITY_BY_UPDATE, building, condition_failed, failed, get_item, get_n,
    get_opt_s, get_s, get_time, n, n_u64, query_partition, query_partition_up_to, s,
};

mod usage;

use crate::dynamo::events::{event_items, place};
use usage::CountedWrite;

/// [`ImageRepository`] over the single table.
pub struct DynamoImageRepository {
    client: Client,
    table: String,
    /// The most images a list in an order no index holds may sort.
    sort_cap: usize,
}

impl DynamoImageRepository {
    /// Uses `table` through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            sort_cap: UNINDEXED_SORT_CAP,
        }
    }

    /// The same, refusing unindexed sorts past `cap` images instead of
    /// [`UNINDEXED_SORT_CAP`].
    pub fn with_sort_cap(self, cap: usize) -> Self {
        Self {
            sort_cap: cap,
            ..self
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
        (NAME_KEY.to_owned(), s(IndexOrder::Name.key_of(image))),
        (UPDATE_KEY.to_owned(), s(IndexOrder::Update.key_of(image))),
        (ID_KEY.to_owned(), s(IndexOrder::Id.key_of(image))),
    ]);
    if let Some(owner) = &image.owner {
        item.insert(GSI1PK.to_owned(), s(format!("OWNER#{owner}")));
        item.insert(GSI1SK.to_owned(), s(by_creation(image)));
    }
    // Sparse partitions of the images a start-up recovery looks at.
    let receiving = match image.status {
        ImageStatus::Saving => Some("SAVING"),
        ImageStatus::Uploading => Some("UPLOADING"),
        _ => None,
    };
    if let Some(partition) = receiving {
        item.insert(GSI3PK.to_owned(), s(partition));
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
        owner: get_opt_s(item, "owner").map(TenantId::from_trusted),
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
    /// The conditional put of `image`: a new one (`current` none) or the next version of
    /// `current`.
    fn image_put(&self, item: Item, current: Option<&Image>) -> DomainResult<Put> {
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match current {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(current) => put
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n_u64(current.version)),
        };
        put.build().map_err(building)
    }

    /// `put` as a single `PutItem`.
    async fn put_alone(&self, put: Put, id: ImageId) -> DomainResult<()> {
        let sent = self
            .client
            .put_item()
            .table_name(put.table_name())
            .set_item(Some(put.item().clone()))
            .set_condition_expression(put.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(stale(id)),
            Err(e) => Err(failed("updating an image", e)),
        }
    }

    /// An image write that moves its owner's counters: with them, in one transaction. An
    /// image without an owner counts against nobody.
    async fn write_image(
        &self,
        write: TransactWriteItem,
        image: &Image,
        current: Option<&Image>,
        change: UsageChange,
        quota: &TenantQuota,
        events: Vec<TransactWriteItem>,
    ) -> DomainResult<()> {
        let owner = image.owner.as_deref().unwrap_or_default();
        self.write_counted(CountedWrite {
            write,
            events,
            id: image.id,
            owner: (!owner.is_empty()).then_some(owner),
            current,
            change,
            quota,
        })
        .await
    }

    async fn partition(&self, index: &str, key: &str, value: String) -> DomainResult<Vec<Image>> {
        query_partition(&self.client, &self.table, index, key, &value)
            .await?
            .iter()
            .map(image_from)
            .collect()
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
                    .send()
                    .await;
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

    /// Everything `sources` names, read whole: the path for orders no index holds, refused
    /// with 400 once it passes the sort cap instead of reading on.
    async fn visible_set(&self, sources: &[Source<'_>]) -> DomainResult<Vec<Image>> {
        let mut images = Vec::new();
        for source in sources {
            let room = self.sort_cap.saturating_sub(images.len());
            match source {
                Source::Partition(partition, only) => {
                    let items = query_partition_up_to(
                        &self.client,
                        &self.table,
                        partition.index,
                        partition.key,
                        &partition.value,
                        room,
                    )
                    .await?
                    .ok_or_else(|| too_many_to_sort(self.sort_cap))?;
                    for item in &items {
                        let image = image_from(item)?;
                        if only.is_none_or(|v| image.visibility == v) {
                            images.push(image);
                        }
                    }
                }
                Source::SharedWith(statuses) => {
                    images.extend(self.shared_with(statuses.tenant, statuses.statuses).await?);
                }
            }
            if images.len() > self.sort_cap {
                return Err(too_many_to_sort(self.sort_cap));
            }
        }
        Ok(images)
    }

    /// A page in index order: each source read lazily from the marker on, merged until
    /// `limit + 1` distinct images pass the filters, so a page reads O(limit) items.
    async fn page_in_index_order(
        &self,
        sources: Vec<Source<'_>>,
        walk: &Walk<'_>,
    ) -> DomainResult<Vec<Image>> {
        let mut cursors = Vec::with_capacity(sources.len());
        for source in sources {
            cursors.push(match source {
                Source::Partition(partition, only) => Cursor::reading(partition, only, walk),
                // Memberships have no index in creation order; a tenant has few of them.
                Source::SharedWith(statuses) => {
                    let shared = self.shared_with(statuses.tenant, statuses.statuses).await?;
                    Cursor::loaded(shared, walk)
                }
            });
        }
        self.merge(cursors, walk).await
    }

    /// The first `limit + 1` distinct images of `cursors`, each already in sort order.
    async fn merge(&self, mut cursors: Vec<Cursor>, walk: &Walk<'_>) -> DomainResult<Vec<Image>> {
        let mut page: Vec<Image> = Vec::new();
        while page.len() <= walk.query.limit {
            // Only cursors without a head read, and those in parallel.
            try_join_all(cursors.iter_mut().map(|c| self.fill(c, walk))).await?;
            // On a tie the earlier source wins (min_by keeps the first), as the stable sort
            // of the in-memory path keeps the earlier copy of an image seen twice.
            let first = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.ready.front().map(|head| (i, head)))
                .min_by(|(_, a), (_, b)| listing::compare(&walk.query.sort, a, b))
                .map(|(i, _)| i);
            let Some(image) = first.and_then(|i| cursors[i].ready.pop_front()) else {
                break;
            };
            // An image in two partitions (an owned public one) comes out twice in a row.
            if page.last().is_none_or(|last| last.id != image.id) {
                page.push(image);
            }
        }
        Ok(page)
    }

    /// Reads `cursor`'s partition on until it holds an image that passes the filters or has
    /// nothing left to read.
    async fn fill(&self, cursor: &mut Cursor, walk: &Walk<'_>) -> DomainResult<()> {
        while cursor.ready.is_empty() {
            let Some(partition) = &cursor.partition else {
                return Ok(());
            };
            let page = self
                .query_page(partition, walk, cursor.start.take(), cursor.page)
                .await?;
            for item in page.items() {
                let image = image_from(item)?;
                if cursor.only.is_none_or(|v| image.visibility == v)
                    && listing::matches(walk.query, &image)
                {
                    cursor.ready.push_back(image);
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => cursor.start = Some(key.clone()),
                _ => cursor.partition = None,
            }
            // Filters that pass few images: fewer round trips for the rest of the walk.
            cursor.page = cursor.page.saturating_mul(2).min(MAX_PAGE);
        }
        Ok(())
    }

    /// One Query page of `partition` in the walk's direction, strictly past the marker.
    async fn query_page(
        &self,
        partition: &Partition,
        walk: &Walk<'_>,
        start: Option<Item>,
        limit: i32,
    ) -> DomainResult<QueryOutput> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(partition.index)
            .expression_attribute_names("#pk", partition.key)
            .expression_attribute_values(":pk", s(&partition.value))
            .scan_index_forward(walk.dir == SortDir::Asc)
            .limit(limit)
            .set_exclusive_start_key(start);
        let condition = match walk.after {
            Some(after) => {
                request = request
                    .expression_attribute_names("#sk", partition.sort_key)
                    .expression_attribute_values(":after", s(partition.order.key_of(after)));
                match walk.dir {
                    SortDir::Asc => "#pk = :pk AND #sk > :after",
                    SortDir::Desc => "#pk = :pk AND #sk < :after",
                }
            }
            None => "#pk = :pk",
        };
        let page = request.key_condition_expression(condition).send().await;
        page.map_err(|e| failed("querying an index for a list page", e))
    }
}

/// The most images a list in an order no index holds may sort (read whole each page).
pub const UNINDEXED_SORT_CAP: usize = 10_000;

fn too_many_to_sort(cap: usize) -> DomainError {
    DomainError::Invalid(format!(
        "this sort order reads every image you can see, and you can see more than \
         {cap}; sort by created_at, name, updated_at or id (each alone, or \
         followed by id), or filter by visibility"
    ))
}

/// Largest Query page a list cursor asks for (DynamoDB also stops a page at 1 MB).
const MAX_PAGE: i32 = 1024;

/// An order the index sort keys of an image hold, and how an image's key reads in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexOrder {
    /// created_at, then id: `gsi1`/`gsi2`.
    Creation,
    /// name, then id.
    Name,
    /// updated_at, then id.
    Update,
    /// id.
    Id,
}

impl IndexOrder {
    fn key_of(self, image: &Image) -> String {
        match self {
            IndexOrder::Creation => by_creation(image),
            IndexOrder::Name => dynamo::by_name(image.name.as_deref(), image.id),
            IndexOrder::Update => dynamo::by_creation(image.updated_at, image.id),
            IndexOrder::Id => image.id.to_string(),
        }
    }

    /// The (index, sort attribute) over the owner partitions in this order.
    fn owner_index(self) -> (&'static str, &'static str) {
        match self {
            IndexOrder::Creation => (GSI1, GSI1SK),
            IndexOrder::Name => (OWNER_BY_NAME, NAME_KEY),
            IndexOrder::Update => (OWNER_BY_UPDATE, UPDATE_KEY),
            IndexOrder::Id => (OWNER_BY_ID, ID_KEY),
        }
    }

    /// The (index, sort attribute) over the visibility partitions in this order.
    fn visibility_index(self) -> (&'static str, &'static str) {
        match self {
            IndexOrder::Creation => (GSI2, GSI2SK),
            IndexOrder::Name => (VISIBILITY_BY_NAME, NAME_KEY),
            IndexOrder::Update => (VISIBILITY_BY_UPDATE, UPDATE_KEY),
            IndexOrder::Id => (VISIBILITY_BY_ID, ID_KEY),
        }
    }
}

/// A partition of the owner or visibility indexes, read in one [`IndexOrder`].
struct Partition {
    index: &'static str,
    key: &'static str,
    sort_key: &'static str,
    value: String,
    order: IndexOrder,
}

impl Partition {
    fn owner(tenant: &str, order: IndexOrder) -> Self {
        let (index, sort_key) = order.owner_index();
        Self {
            index,
            key: GSI1PK,
            sort_key,
            value: format!("OWNER#{tenant}"),
            order,
        }
    }

    fn visibility(visibility: Visibility, order: IndexOrder) -> Self {
        let (index, sort_key) = order.visibility_index();
        Self {
            index,
            key: GSI2PK,
            sort_key,
            value: format!("VISIBILITY#{visibility}"),
            order,
        }
    }
}

/// Shared images a tenant is a member of with one of these membership statuses.
struct Memberships<'a> {
    tenant: &'a str,
    statuses: &'static [&'static str],
}

/// Where the images a viewer may list come from, in the order the in-memory path gathers them.
enum Source<'a> {
    /// A partition; with a visibility, only its images of that visibility count.
    Partition(Partition, Option<Visibility>),
    /// Shared images the viewer is a member of.
    SharedWith(Memberships<'a>),
}

/// The sources of the images `viewer` may list under `query`'s visibility scope.
fn sources<'a>(viewer: &'a Viewer, query: &ListQuery, order: IndexOrder) -> Vec<Source<'a>> {
    use Visibility::{Community, Private, Public, Shared};
    let visibility = |v| Source::Partition(Partition::visibility(v, order), None);
    if viewer.is_admin {
        return match query.visibility {
            VisibilityFilter::Only(v) => vec![visibility(v)],
            _ => [Public, Private, Shared, Community].map(visibility).into(),
        };
    }
    let tenant = viewer.tenant.as_str();
    let owned = |only| Source::Partition(Partition::owner(tenant, order), only);
    // `member_status` picks the memberships in every scope that lists shared images.
    let shared = || {
        let statuses: &[&str] = match query.member_status {
            MemberStatusFilter::Accepted => &["accepted"],
            MemberStatusFilter::Pending => &["pending"],
            MemberStatusFilter::Rejected => &["rejected"],
            MemberStatusFilter::All => &["pending", "accepted", "rejected"],
        };
        Source::SharedWith(Memberships { tenant, statuses })
    };
    match query.visibility {
        VisibilityFilter::Default => vec![owned(None), visibility(Public), shared()],
        VisibilityFilter::All => vec![
            owned(None),
            visibility(Public),
            shared(),
            visibility(Community),
        ],
        VisibilityFilter::Only(v @ (Public | Community)) => vec![visibility(v)],
        VisibilityFilter::Only(Private) => vec![owned(Some(Private))],
        VisibilityFilter::Only(Shared) => vec![owned(Some(Shared)), shared()],
    }
}

/// The index order and direction of `sort` when an index holds it: created_at, name or
/// updated_at then id, one direction, or id alone (keys after the unique id never decide).
/// The keys' text sorts so: times are zero-padded whole seconds, as `compare` counts them
/// (the service stamps them, so never before 1970), names end with a NUL below every
/// character, and ids compare as their hyphenated lowercase text in both.
fn index_order(sort: &[(SortKey, SortDir)]) -> Option<(IndexOrder, SortDir)> {
    let order = |key| match key {
        SortKey::CreatedAt => Some(IndexOrder::Creation),
        SortKey::Name => Some(IndexOrder::Name),
        SortKey::UpdatedAt => Some(IndexOrder::Update),
        _ => None,
    };
    match sort {
        [(SortKey::Id, dir), ..] => Some((IndexOrder::Id, *dir)),
        [(key, first), (SortKey::Id, then), ..] if first == then => {
            order(*key).map(|order| (order, *first))
        }
        _ => None,
    }
}

/// What a list page in index order reads with.
struct Walk<'a> {
    query: &'a ListQuery,
    /// The previous page's last image: the walk starts strictly after it.
    after: Option<&'a Image>,
    dir: SortDir,
}

/// One source of a list page in sort order: the images read that pass the filters, not yet
/// merged, and, while there is more to read, the partition and where its next page starts.
struct Cursor {
    partition: Option<Partition>,
    only: Option<Visibility>,
    ready: VecDeque<Image>,
    start: Option<Item>,
    /// Items the next Query asks for: the page's `limit + 1` at first.
    page: i32,
}

impl Cursor {
    fn reading(partition: Partition, only: Option<Visibility>, walk: &Walk<'_>) -> Self {
        let wanted = walk.query.limit.saturating_add(1);
        Self {
            partition: Some(partition),
            only,
            ready: VecDeque::new(),
            start: None,
            page: i32::try_from(wanted).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        }
    }

    /// Images read whole: filtered, past the marker, sorted.
    fn loaded(mut images: Vec<Image>, walk: &Walk<'_>) -> Self {
        let sort = &walk.query.sort;
        images.retain(|i| {
            listing::matches(walk.query, i)
                && walk
                    .after
                    .is_none_or(|m| listing::compare(sort, i, m).is_gt())
        });
        images.sort_by(|a, b| listing::compare(sort, a, b));
        Self {
            partition: None,
            only: None,
            ready: images.into(),
            start: None,
            page: 0,
        }
    }
}

#[async_trait]
impl ImageRepository for DynamoImageRepository {
    async fn insert(
        &self,
        image: &Image,
        quota: &TenantQuota,
        events: &[Event],
    ) -> DomainResult<()> {
        let (item, event_items) = place(&self.table, image_item(image), events)?;
        let put = self.image_put(item, None)?;
        let write = TransactWriteItem::builder().put(put).build();
        let change = UsageChange::between(None, Some(image));
        self.write_image(write, image, None, change, quota, event_items)
            .await
    }

    async fn get(&self, id: ImageId) -> DomainResult<Option<Image>> {
        let (pk, sk) = key_of(id);
        get_item(&self.client, &self.table, pk, sk, true)
            .await?
            .as_ref()
            .map(image_from)
            .transpose()
    }

    async fn update(
        &self,
        next: &Image,
        current: &Image,
        quota: &TenantQuota,
        events: &[Event],
    ) -> DomainResult<()> {
        let (item, event_items) = place(&self.table, image_item(next), events)?;
        let put = self.image_put(item, Some(current))?;
        let change = UsageChange::between(Some(current), Some(next));
        if change.is_none() && event_items.is_empty() {
            // Most changes move no counter: one conditional put, at half a transaction's cost.
            return self.put_alone(put, next.id).await;
        }
        let write = TransactWriteItem::builder().put(put).build();
        self.write_image(write, next, Some(current), change, quota, event_items)
            .await
    }

    async fn delete(&self, current: &Image, events: &[Event]) -> DomainResult<()> {
        let (pk, sk) = key_of(current.id);
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n_u64(current.version))
            .build()
            .map_err(building)?;
        let write = TransactWriteItem::builder().delete(delete).build();
        let change = UsageChange::between(Some(current), None);
        self.write_image(
            write,
            current,
            Some(current),
            change,
            &TenantQuota::default(),
            event_items(&self.table, events)?,
        )
        .await
    }

    async fn list(
        &self,
        viewer: &Viewer,
        query: &ListQuery,
        after: Option<&Image>,
    ) -> DomainResult<Vec<Image>> {
        match index_order(&query.sort) {
            Some((order, dir)) => {
                let walk = Walk { query, after, dir };
                self.page_in_index_order(sources(viewer, query, order), &walk)
                    .await
            }
            // No index holds other orders: read everything visible, then sort in memory.
            None => {
                let sources = sources(viewer, query, IndexOrder::Creation);
                Ok(page_in_memory(
                    query,
                    self.visible_set(&sources).await?,
                    after,
                ))
            }
        }
    }

    async fn usage(&self, owner: &str) -> DomainResult<TenantUsage> {
        self.tenant_usage(owner).await
    }

    async fn receiving(&self) -> DomainResult<Vec<Image>> {
        let mut images = self.partition(GSI3, GSI3PK, "SAVING".to_owned()).await?;
        images.extend(self.partition(GSI3, GSI3PK, "UPLOADING".to_owned()).await?);
        Ok(images)
    }
}
