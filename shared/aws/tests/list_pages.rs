//! List pages on DynamoDB: in an order an index holds (created_at, name, updated_at, id) a
//! page reads each partition from the marker on, so it reads about `limit` items however many images the caller has;
//! walking the pages gives the same images, in the same order, as filtering and sorting the
//! whole visible set would. Runs against the endpoint `AWS_ENDPOINT_URL` names.

use std::cell::Cell;
use std::sync::Once;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cloud_images_aws::{DynamoImageRepository, DynamoMemberRepository, dynamo};
use cloud_images_aws::{dynamodb_client, load_config};
use cloud_images_domain::identity::TenantId;
use cloud_images_domain::image::{Image, ImageId, ImageStatus, Visibility};
use cloud_images_domain::listing::{self, ListQuery, PageLimits, parse_list_query};
use cloud_images_domain::member::{Member, MemberStatus};
use cloud_images_domain::ports::{ImageRepository, MemberRepository, Viewer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

thread_local! {
    /// Items DynamoDB returned to reads on this thread (a test's runtime is one thread).
    static ITEMS_READ: Cell<u64> = const { Cell::new(0) };
}

/// Counts into [`ITEMS_READ`] the `items` field of the adapters' capacity events. Installed
/// process-wide before any DynamoDB call, so no test thread caches the events as disabled.
struct ItemsRead;

struct ItemsField(u64);

impl Visit for ItemsField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "items" {
            self.0 += value;
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Subscriber for ItemsRead {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == dynamo::CAPACITY_TARGET
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut items = ItemsField(0);
        event.record(&mut items);
        ITEMS_READ.with(|read| read.set(read.get() + items.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn count_items_read() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(ItemsRead).expect("install the item counter");
    });
}

async fn fresh_table() -> (aws_sdk_dynamodb::Client, String) {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "set AWS_ENDPOINT_URL to a DynamoDB endpoint (scripts/test starts an emulator and sets it)"
    );
    let client = dynamodb_client(&load_config().await);
    let table = format!("listing-{}", uuid::Uuid::new_v4().simple());
    dynamo::ensure_table(&client, &table)
        .await
        .expect("create the test table");
    (client, table)
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("a time")
}

fn image(owner: &str, at: DateTime<Utc>, visibility: Visibility) -> Image {
    let mut image = Image::new_queued(ImageId::random(), Some(TenantId::from_trusted(owner)), at);
    image.visibility = visibility;
    image
}

/// Every image stored: 60 owned by tenant "a" (three per second, so ids break ties; some
/// public, so they sit in two partitions; every fourth tagged "keep"; one hidden, one
/// killed), and tenant "b"'s public, community, private and shared ones interleaved.
fn catalogue() -> (Vec<Image>, Vec<Member>) {
    let mut images = Vec::new();
    for i in 0..60_i64 {
        let visibility = match i % 5 {
            1 => Visibility::Private,
            3 => Visibility::Public,
            _ => Visibility::Shared,
        };
        let mut owned = image("a", base() + Duration::seconds(i / 3), visibility);
        if i % 4 == 0 {
            owned.tags.push("keep".into());
        }
        owned.os_hidden = i == 17;
        // Names repeat (ids break the ties) and some are unset; updates reorder the images.
        owned.name = (i % 7 != 0).then(|| format!("n{}", (i * 13) % 9));
        owned.updated_at = owned.created_at + Duration::seconds((i * 7) % 11);
        if i == 22 {
            owned.status = ImageStatus::Killed;
        }
        images.push(owned);
    }
    for i in 0..12_i64 {
        let visibility = match i % 4 {
            0 => Visibility::Public,
            1 => Visibility::Community,
            2 => Visibility::Private,
            _ => Visibility::Shared,
        };
        let mut theirs = image("b", base() + Duration::seconds(i * 2 - 1), visibility);
        theirs.name = Some(format!("n{}", i % 9));
        theirs.updated_at = theirs.created_at + Duration::seconds(i % 3);
        if i % 2 == 0 {
            theirs.tags.push("keep".into());
        }
        images.push(theirs);
    }
    let member = |image: &Image, status| Member {
        image_id: image.id,
        member_id: TenantId::from_trusted("a"),
        status,
        created_at: base(),
        updated_at: base(),
    };
    let shared: Vec<&Image> = images
        .iter()
        .filter(|i| i.owner.as_deref() == Some("b") && i.visibility == Visibility::Shared)
        .collect();
    let members = vec![
        member(shared[0], MemberStatus::Accepted),
        member(shared[1], MemberStatus::Pending),
        member(shared[2], MemberStatus::Accepted),
    ];
    (images, members)
}

async fn stored() -> (DynamoImageRepository, Vec<Image>, Vec<Member>) {
    count_items_read();
    let (client, table) = fresh_table().await;
    let repo = DynamoImageRepository::new(client.clone(), table.clone());
    let member_repo = DynamoMemberRepository::new(client, table);
    let (images, members) = catalogue();
    for image in &images {
        repo.insert(image, &Default::default(), &[])
            .await
            .expect("insert an image");
    }
    for member in &members {
        member_repo
            .insert(member, 10, &[])
            .await
            .expect("add a member");
    }
    (repo, images, members)
}

fn query(raw: &str) -> ListQuery {
    let pairs: Vec<(String, String)> = raw
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    parse_list_query(&pairs, PageLimits::default()).expect("a valid query")
}

/// Whether tenant "a" (not an admin) may list `image` under `query`'s visibility scope.
fn visible_to_a(query: &ListQuery, image: &Image, members: &[Member]) -> bool {
    use cloud_images_domain::listing::{MemberStatusFilter, VisibilityFilter};
    let own = image.owner.as_deref() == Some("a");
    let member = |wanted: &[MemberStatus]| {
        image.visibility == Visibility::Shared
            && members
                .iter()
                .any(|m| m.image_id == image.id && wanted.contains(&m.status))
    };
    let accepted = || member(&[MemberStatus::Accepted]);
    match query.visibility {
        VisibilityFilter::Default => own || image.visibility == Visibility::Public || accepted(),
        VisibilityFilter::All => {
            own || matches!(image.visibility, Visibility::Public | Visibility::Community)
                || accepted()
        }
        VisibilityFilter::Only(v @ (Visibility::Public | Visibility::Community)) => {
            image.visibility == v
        }
        VisibilityFilter::Only(Visibility::Private) => {
            own && image.visibility == Visibility::Private
        }
        VisibilityFilter::Only(Visibility::Shared) => {
            let statuses = match query.member_status {
                MemberStatusFilter::Accepted => vec![MemberStatus::Accepted],
                MemberStatusFilter::Pending => vec![MemberStatus::Pending],
                MemberStatusFilter::Rejected => vec![MemberStatus::Rejected],
                MemberStatusFilter::All => vec![
                    MemberStatus::Accepted,
                    MemberStatus::Pending,
                    MemberStatus::Rejected,
                ],
            };
            (own && image.visibility == Visibility::Shared) || member(&statuses)
        }
    }
}

/// The ids a walk should give: everything visible that passes the filters, in sort order.
fn expected(query: &ListQuery, images: &[Image], visible: impl Fn(&Image) -> bool) -> Vec<ImageId> {
    let mut wanted: Vec<&Image> = images
        .iter()
        .filter(|i| visible(i) && listing::matches(query, i))
        .collect();
    wanted.sort_by(|a, b| listing::compare(&query.sort, a, b));
    wanted.iter().map(|i| i.id).collect()
}

/// Every page of `query` in turn, each continuing after the previous page's last image.
async fn walk(repo: &DynamoImageRepository, viewer: &Viewer, query: &ListQuery) -> Vec<ImageId> {
    let mut ids = Vec::new();
    let mut after: Option<Image> = None;
    loop {
        let mut page = repo
            .list(viewer, query, after.as_ref())
            .await
            .expect("a list page");
        let more = page.len() > query.limit;
        page.truncate(query.limit);
        ids.extend(page.iter().map(|i| i.id));
        if !more {
            return ids;
        }
        assert_eq!(
            page.len(),
            query.limit,
            "a page before the last one is full"
        );
        after = page.pop();
    }
}

#[tokio::test]
async fn pages_of_five_walk_every_visible_image_in_order() {
    let (repo, images, members) = stored().await;
    let tenant = Viewer {
        tenant: TenantId::from_trusted("a"),
        is_admin: false,
    };
    for raw in [
        "limit=5",
        "limit=5&sort_dir=asc",
        "limit=5&tag=keep",
        "limit=5&tag=keep&sort_dir=asc",
        "limit=5&sort=created_at:asc,id:asc",
        "limit=5&visibility=all",
        "limit=5&visibility=private&sort_dir=asc",
        "limit=5&visibility=shared",
        "limit=5&visibility=shared&member_status=all&sort_dir=asc",
        "limit=5&visibility=public",
        "limit=5&os_hidden=true",
        "limit=0",
        "limit=7&sort_key=name&sort_dir=asc",
        "limit=5&sort_key=name",
        "limit=5&sort_key=name&visibility=all&tag=keep",
        "limit=5&sort_key=updated_at",
        "limit=5&sort_key=updated_at&sort_dir=asc&visibility=shared&member_status=all",
        "limit=5&sort_key=id&sort_dir=asc",
        "limit=5&sort_key=size",
        "limit=5&sort=created_at:desc,id:asc",
    ] {
        let q = query(raw);
        let want = expected(&q, &images, |i| visible_to_a(&q, i, &members));
        if q.limit > 0 {
            assert_eq!(walk(&repo, &tenant, &q).await, want, "{raw}");
        }
        assert!(!want.is_empty(), "{raw} lists something");
    }
    let admin = Viewer {
        tenant: TenantId::from_trusted("admin"),
        is_admin: true,
    };
    for raw in [
        "limit=5",
        "limit=5&visibility=private&sort_dir=asc",
        "limit=5&sort_key=name&sort_dir=asc",
        "limit=5&sort_key=updated_at&visibility=shared",
    ] {
        let q = query(raw);
        let want = expected(&q, &images, |i| {
            q.visibility == listing::VisibilityFilter::Default
                || q.visibility == listing::VisibilityFilter::Only(i.visibility)
        });
        assert_eq!(walk(&repo, &admin, &q).await, want, "admin: {raw}");
    }
}

#[tokio::test]
async fn a_page_reads_about_limit_items_not_every_visible_one() {
    let (repo, images, members) = stored().await;
    let tenant = Viewer {
        tenant: TenantId::from_trusted("a"),
        is_admin: false,
    };
    for raw in [
        "limit=5",
        "limit=5&sort_dir=asc",
        "limit=5&sort_key=name&sort_dir=asc",
        "limit=5&sort_key=name",
        "limit=5&sort_key=updated_at",
        "limit=5&sort_key=id&sort_dir=asc",
    ] {
        let q = query(raw);
        let want = expected(&q, &images, |i| visible_to_a(&q, i, &members));
        let marker = images
            .iter()
            .find(|i| i.id == want[20])
            .expect("the marker");
        for (after, from) in [(None, 0), (Some(marker), 21)] {
            ITEMS_READ.with(|read| read.set(0));
            let page = repo.list(&tenant, &q, after).await.expect("a list page");
            let ids: Vec<ImageId> = page.iter().map(|i| i.id).collect();
            assert_eq!(ids, want[from..from + 6], "{raw} from {from}");
            // Each of the owner and public partitions reads limit + 1 and, when the filters
            // (a killed and a hidden image) or the merge empty it before the page is full,
            // one more Query of twice that; plus the three memberships and the two accepted
            // images they name. Reading everything visible is over 80.
            let items = ITEMS_READ.with(Cell::get);
            // The six images shown were read, so the capacity events must count them.
            assert!(
                (6..=2 * (6 + 12) + 3 + 2).contains(&items),
                "{raw} from {from}: {items} items read"
            );
        }
    }
}

/// An order no index holds reads the whole visible set: past the cap it is a 400 saying
/// what to do instead, not a read of everything.
#[tokio::test]
async fn an_unindexed_sort_over_the_cap_is_refused_before_reading_on() {
    let (repo, images, members) = stored().await;
    let repo = repo.with_sort_cap(40);
    let tenant = Viewer {
        tenant: TenantId::from_trusted("a"),
        is_admin: false,
    };
    ITEMS_READ.with(|read| read.set(0));
    let refused = repo
        .list(&tenant, &query("limit=5&sort_key=size"), None)
        .await;
    match refused {
        Err(cloud_images_domain::DomainError::Invalid(message)) => {
            assert!(message.contains("sort by created_at, name"), "{message}")
        }
        other => panic!("a size sort over the cap: {other:?}"),
    }
    assert!(
        ITEMS_READ.with(Cell::get) < 60,
        "it stopped reading at the cap"
    );
    let by_name = query("limit=5&sort_key=name");
    let want = expected(&by_name, &images, |i| visible_to_a(&by_name, i, &members));
    assert_eq!(
        walk(&repo, &tenant, &by_name).await,
        want,
        "indexed orders have no cap"
    );
    let public = query("limit=5&sort_key=size&visibility=public");
    let want = expected(&public, &images, |i| visible_to_a(&public, i, &members));
    assert_eq!(
        walk(&repo, &tenant, &public).await,
        want,
        "a scope under the cap sorts"
    );
}
