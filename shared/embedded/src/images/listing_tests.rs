//! A list page's cost must not grow with the images it does not return: counted in SQLite
//! virtual-machine steps (deterministic, unlike time) at two sizes of the same data.

use chrono::{Duration, TimeZone, Utc};
use cloud_images_domain::identity::TenantId;
use cloud_images_domain::image::{DiskFormat, Image, ImageId, ImageStatus, Visibility};
use cloud_images_domain::listing::{ListQuery, PageLimits, parse_list_query};
use cloud_images_domain::ports::Viewer;
use rusqlite::{Connection, params_from_iter};

use super::listing::read_page;
use super::{COLUMNS, row_values};

/// `viewer` owns `n` images (every even index); `other` owns `n` too (odd), a tenth of the
/// indices public, a tenth community, and shares those below 400 with `viewer` (accepted). Names, sizes and times vary so every sort key
/// has distinct values and ties.
fn seeded(n: usize) -> Connection {
    let mut conn = Connection::open_in_memory().expect("open");
    crate::db::migrate(&mut conn).expect("migrate");
    let tx = conn.transaction().expect("tx");
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let marks = vec!["?"; COLUMNS.split(", ").count()].join(", ");
    let insert = format!("INSERT INTO images ({COLUMNS}) VALUES ({marks})");
    for i in 0..2 * n {
        let owner = if i % 2 == 0 { "viewer" } else { "other" };
        let at = start + Duration::seconds((i / 3) as i64);
        let mut image =
            Image::new_queued(ImageId::random(), Some(TenantId::from_trusted(owner)), at);
        image.name = (i % 7 != 0).then(|| format!("image-{:05}", (i * 7919) % (2 * n)));
        image.disk_format = Some(if i % 3 == 0 {
            DiskFormat::Raw
        } else {
            DiskFormat::Qcow2
        });
        image.size = (i % 4 != 0).then_some((i % 97) as u64 * 1024);
        image.status = if i % 4 == 0 {
            ImageStatus::Queued
        } else {
            ImageStatus::Active
        };
        image.updated_at = at + Duration::seconds((i % 13) as i64);
        image.visibility = match (owner, i % 10) {
            ("other", 1) => Visibility::Public,
            ("other", 3) => Visibility::Community,
            (_, 4 | 5) => Visibility::Private,
            _ => Visibility::Shared,
        };
        tx.execute(&insert, params_from_iter(row_values(&image)))
            .expect("insert");
        if owner == "other" && image.visibility == Visibility::Shared && i < 400 {
            tx.execute(
                "INSERT INTO members VALUES (?1, 'viewer', 'accepted', 0, 0)",
                [image.id.to_string()],
            )
            .expect("member");
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch("ANALYZE").expect("analyze");
    conn
}

fn query(raw: &str) -> ListQuery {
    let pairs: Vec<(String, String)> = raw
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    parse_list_query(
        &pairs,
        PageLimits {
            default: 25,
            max: 1000,
        },
    )
    .expect("query")
}

/// One page: its images and the VM steps it took.
fn page(
    conn: &Connection,
    viewer: &Viewer,
    query: &ListQuery,
    after: Option<&Image>,
) -> (Vec<Image>, u64) {
    let page = read_page(conn, viewer, query, after).expect("a page");
    (page.images, page.vm_steps)
}

const QUERIES: &[&str] = &[
    "",
    "disk_format=raw",
    "visibility=all",
    "visibility=private",
    "visibility=shared",
    "visibility=public",
    "status=active",
];

const SORTS: &[&str] = &[
    "sort_key=created_at&sort_dir=desc",
    "sort_key=created_at&sort_dir=asc",
    "sort_key=updated_at&sort_dir=desc",
    "sort_key=name&sort_dir=asc",
    "sort_key=name&sort_dir=desc",
    "sort_key=id&sort_dir=asc",
    "sort_key=size&sort_dir=desc",
    "sort_key=status&sort_dir=asc",
    "sort_key=disk_format&sort_dir=asc",
    "sort_key=container_format&sort_dir=desc",
];

fn viewers() -> [Viewer; 2] {
    [false, true].map(|is_admin| Viewer {
        tenant: TenantId::from_trusted("viewer"),
        is_admin,
    })
}

/// The steps of the first page and of the page after its last image.
fn two_pages(conn: &Connection, viewer: &Viewer, query: &ListQuery) -> (u64, u64) {
    let (first, first_steps) = page(conn, viewer, query, None);
    let marker = first.get(query.limit - 1);
    let marker = marker.unwrap_or_else(|| panic!("{query:?}: a page of {}", first.len()));
    let (_, next_steps) = page(conn, viewer, query, Some(marker));
    (first_steps, next_steps)
}

#[test]
fn a_page_costs_the_same_at_a_thousand_and_ten_thousand_images() {
    let (small, large) = (seeded(1_000), seeded(10_000));
    for viewer in viewers() {
        for filter in QUERIES {
            // An administrator's private and shared images have a visibility index in
            // creation order only.
            let sorts = SORTS
                .iter()
                .filter(|s| !viewer.is_admin || s.starts_with("sort_key=created_at"));
            for sort in sorts {
                let raw = format!("limit=25&{sort}&{filter}");
                let query = query(&raw);
                let (small_first, small_next) = two_pages(&small, &viewer, &query);
                let (large_first, large_next) = two_pages(&large, &viewer, &query);
                // Ten times the images, the same few rows read: anything near 10x is a scan.
                for (s, l) in [(small_first, large_first), (small_next, large_next)] {
                    assert!(
                        l < s * 2,
                        "{raw} (admin {}): {s} steps at 1,000 images but {l} at 10,000",
                        viewer.is_admin
                    );
                }
            }
        }
    }
}

#[test]
fn pages_follow_each_other_without_gaps_or_repeats_in_every_order() {
    let conn = seeded(300);
    let viewer = &viewers()[0];
    for sort in SORTS
        .iter()
        .chain(&["sort=name:asc,size:desc", "sort=status:desc,created_at:asc"])
    {
        let all = query(&format!("limit=1000&{sort}"));
        let (everything, _) = page(&conn, viewer, &all, None);
        let paged = query(&format!("limit=7&{sort}"));
        let mut walked: Vec<Image> = Vec::new();
        loop {
            let (mut next, _) = page(&conn, viewer, &paged, walked.last());
            let more = next.len() > paged.limit;
            next.truncate(paged.limit);
            walked.extend(next);
            if !more {
                break;
            }
        }
        let ids = |images: &[Image]| images.iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(&walked), ids(&everything), "{sort}");
        // Own (300) + the other's public ones (i % 10 == 1 of 600: 60) + the shared ones it
        // accepted (i % 10 in 7, 9 below 400: 80).
        assert_eq!(everything.len(), 440, "{sort}");
    }
}
