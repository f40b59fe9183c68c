//! GET /v2/images: scope, filters, sorting and paging.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use cloud_images_api_tests::{Checked, World, id_of, json_body};
use serde_json::json;

#[tokio::test]
async fn the_default_list_holds_own_and_public_images_but_not_others_or_community_or_hidden() {
    let w = World::new().await;
    let own_private = id_of(
        &w.server
            .new_image(&w.alice, json!({ "visibility": "private" }))
            .await,
    );
    let own_shared = id_of(&w.server.new_image(&w.alice, json!({})).await);
    let own_community = id_of(
        &w.server
            .new_image(&w.alice, json!({ "visibility": "community" }))
            .await,
    );
    let own_hidden = id_of(
        &w.server
            .new_image(&w.alice, json!({ "os_hidden": true }))
            .await,
    );
    let public = id_of(
        &w.server
            .new_image(&w.admin, json!({ "visibility": "public" }))
            .await,
    );
    let bobs_private = id_of(
        &w.server
            .new_image(&w.bob, json!({ "visibility": "private" }))
            .await,
    );
    let bobs_shared = id_of(&w.server.new_image(&w.bob, json!({})).await);
    let bobs_community = id_of(
        &w.server
            .new_image(&w.bob, json!({ "visibility": "community" }))
            .await,
    );

    let listed: HashSet<String> = w
        .server
        .listed_ids(&w.alice, "")
        .await
        .into_iter()
        .collect();
    let expected: HashSet<String> = [&own_private, &own_shared, &own_community, &public]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(listed, expected);

    let community: HashSet<String> = w
        .server
        .listed_ids(&w.alice, "visibility=community")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        community,
        [own_community.clone(), bobs_community.clone()]
            .into_iter()
            .collect()
    );
    let hidden = w.server.listed_ids(&w.alice, "os_hidden=true").await;
    assert_eq!(hidden, vec![own_hidden]);
    assert_eq!(
        w.server.listed_ids(&w.alice, "visibility=private").await,
        vec![own_private.clone()]
    );
    assert_eq!(
        w.server.listed_ids(&w.alice, "visibility=shared").await,
        vec![own_shared.clone()]
    );
    assert_eq!(
        w.server.listed_ids(&w.alice, "visibility=public").await,
        vec![public.clone()]
    );
    let all: HashSet<String> = w
        .server
        .listed_ids(&w.alice, "visibility=all")
        .await
        .into_iter()
        .collect();
    assert!(all.contains(&bobs_community) && all.contains(&own_community) && all.contains(&public));
    assert!(!all.contains(&bobs_private) && !all.contains(&bobs_shared));
    let admin_all: HashSet<String> = w
        .server
        .listed_ids(&w.admin, "")
        .await
        .into_iter()
        .collect();
    assert!(admin_all.contains(&bobs_private) && admin_all.contains(&own_private));
}

#[tokio::test]
async fn the_list_body_has_first_schema_and_next_exactly_when_more_exist() {
    let w = World::new().await;
    for i in 0..3 {
        w.server
            .new_image(&w.alice, json!({ "name": format!("i{i}") }))
            .await;
    }
    let full = json_body(w.server.list_images(&w.alice, "limit=3").await).await;
    assert_eq!(full["images"].as_array().unwrap().len(), 3);
    assert!(
        full.get("next").is_none(),
        "exactly a page's worth has no next: {full}"
    );
    assert_eq!(full["schema"], "/v2/schemas/images");
    assert_eq!(full["first"], "/v2/images?limit=3");
    let partial = json_body(w.server.list_images(&w.alice, "limit=2").await).await;
    let next = partial["next"].as_str().unwrap();
    assert!(
        next.starts_with("/v2/images?") && next.contains("limit=2") && next.contains("marker=")
    );
}

#[tokio::test]
async fn following_next_returns_every_image_exactly_once_in_order() {
    let w = World::new().await;
    let mut created = Vec::new();
    for i in 0..11 {
        created.push(id_of(
            &w.server
                .new_image(&w.alice, json!({ "name": format!("img-{i:02}") }))
                .await,
        ));
    }
    let by_name = w
        .server
        .list_all(&w.alice, "/v2/images?limit=3&sort_key=name&sort_dir=asc")
        .await;
    assert_eq!(by_name, created);
    let newest_first = w.server.list_all(&w.alice, "/v2/images?limit=4").await;
    let unique: HashSet<&String> = newest_first.iter().collect();
    assert_eq!(newest_first.len(), 11);
    assert_eq!(unique.len(), 11);
}

#[tokio::test]
async fn paging_while_images_are_created_never_repeats_or_skips_an_existing_image() {
    let w = World::new().await;
    let mut before = HashSet::new();
    for _ in 0..9 {
        before.insert(id_of(&w.server.new_image(&w.alice, json!({})).await));
    }
    let mut seen = Vec::new();
    let mut path = Some("/v2/images?limit=2".to_owned());
    while let Some(current) = path {
        let page = json_body(
            w.server
                .request(reqwest::Method::GET, &current, Some(&w.alice))
                .checked()
                .await,
        )
        .await;
        seen.extend(cloud_images_api_tests::ids_of(&page));
        w.server
            .new_image(&w.alice, json!({ "name": "created while paging" }))
            .await;
        path = page.get("next").and_then(|n| n.as_str()).map(str::to_owned);
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an image was listed twice");
    assert!(
        before.iter().all(|id| unique.contains(id)),
        "an existing image was skipped"
    );
}

#[tokio::test]
async fn an_unknown_or_invisible_marker_is_400() {
    let w = World::new().await;
    let bobs = id_of(
        &w.server
            .new_image(&w.bob, json!({ "visibility": "private" }))
            .await,
    );
    for marker in [
        "6e4f7a5c-0f4e-4a8e-9a59-7d0c3e0e9b11",
        bobs.as_str(),
        "not-an-id",
    ] {
        let response = w
            .server
            .list_images(&w.alice, &format!("marker={marker}"))
            .await;
        assert_eq!(
            response.status(),
            reqwest::StatusCode::BAD_REQUEST,
            "{marker}"
        );
        assert!(
            json_body(response).await["error"]["message"]
                .as_str()
                .unwrap()
                .contains("marker")
        );
    }
}

#[tokio::test]
async fn both_sort_forms_order_the_list_and_bad_sorts_are_400() {
    let w = World::new().await;
    let b = id_of(
        &w.server
            .new_image(&w.alice, json!({ "name": "b", "min_ram": 1 }))
            .await,
    );
    let a = id_of(&w.server.new_image(&w.alice, json!({ "name": "a" })).await);
    let c = id_of(&w.server.new_image(&w.alice, json!({ "name": "c" })).await);
    assert_eq!(
        w.server
            .listed_ids(&w.alice, "sort_key=name&sort_dir=asc")
            .await,
        [a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        w.server.listed_ids(&w.alice, "sort_key=name").await,
        [c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(
        w.server
            .listed_ids(&w.alice, "sort=name:asc,created_at:desc")
            .await,
        [a.clone(), b.clone(), c.clone()]
    );
    assert_eq!(
        w.server.listed_ids(&w.alice, "sort=name:desc").await,
        [c, b, a]
    );
    for bad in [
        "sort=name&sort_key=name",
        "sort_key=owner",
        "sort_dir=sideways",
        "sort=name:up",
    ] {
        assert_eq!(
            w.server.list_images(&w.alice, bad).await.status(),
            reqwest::StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn filters_narrow_the_list() {
    let w = World::new().await;
    let ubuntu = id_of(&w.server.new_image(&w.alice, json!({
        "name": "ubuntu", "disk_format": "qcow2", "container_format": "bare", "tags": ["lts", "gold"],
        "os_distro": "ubuntu", "protected": true,
    })).await);
    let debian = id_of(&w.server.new_image(&w.alice, json!({
        "name": "debian", "disk_format": "raw", "container_format": "bare", "tags": ["gold"], "os_distro": "debian",
    })).await);
    let bare = id_of(&w.server.new_image(&w.alice, json!({ "name": "a,b" })).await);
    let cases: Vec<(String, Vec<&String>)> = vec![
        ("name=ubuntu".to_owned(), vec![&ubuntu]),
        ("name=in:ubuntu,debian".to_owned(), vec![&ubuntu, &debian]),
        (r#"name=in:"a,b""#.to_owned(), vec![&bare]),
        ("disk_format=qcow2".to_owned(), vec![&ubuntu]),
        (
            "disk_format=in:raw,qcow2".to_owned(),
            vec![&ubuntu, &debian],
        ),
        ("container_format=bare".to_owned(), vec![&ubuntu, &debian]),
        ("tag=gold".to_owned(), vec![&ubuntu, &debian]),
        ("tag=gold&tag=lts".to_owned(), vec![&ubuntu]),
        ("tag=nothing".to_owned(), vec![]),
        ("os_distro=debian".to_owned(), vec![&debian]),
        ("protected=true".to_owned(), vec![&ubuntu]),
        ("protected=false".to_owned(), vec![&debian, &bare]),
        ("status=queued".to_owned(), vec![&ubuntu, &debian, &bare]),
        ("status=active".to_owned(), vec![]),
        (
            "status=in:active,queued".to_owned(),
            vec![&ubuntu, &debian, &bare],
        ),
        (
            "created_at=gt:2000-01-01T00:00:00Z".to_owned(),
            vec![&ubuntu, &debian, &bare],
        ),
        ("created_at=lt:2000-01-01T00:00:00Z".to_owned(), vec![]),
        (
            "updated_at=lte:2999-01-01T00:00:00Z".to_owned(),
            vec![&ubuntu, &debian, &bare],
        ),
        (format!("owner={}", w.acme), vec![&ubuntu, &debian, &bare]),
        (format!("owner={}", w.globex), vec![]),
        (format!("id=in:{ubuntu},{bare}"), vec![&ubuntu, &bare]),
        ("size_min=1".to_owned(), vec![]),
    ];
    for (query, expected) in cases {
        let listed: HashSet<String> = w
            .server
            .listed_ids(&w.alice, &query)
            .await
            .into_iter()
            .collect();
        let expected: HashSet<String> = expected.into_iter().cloned().collect();
        assert_eq!(listed, expected, "?{query}");
    }
}

#[tokio::test]
async fn a_time_filter_matches_the_displayed_timestamp_exactly() {
    let w = World::new().await;
    let image = w.server.new_image(&w.alice, json!({})).await;
    let created = image["created_at"].as_str().unwrap();
    assert_eq!(
        w.server
            .listed_ids(&w.alice, &format!("created_at=eq:{created}"))
            .await,
        vec![id_of(&image)]
    );
    assert!(
        w.server
            .listed_ids(&w.alice, &format!("created_at=neq:{created}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn links_keep_repeated_parameters() {
    let w = World::new().await;
    for _ in 0..3 {
        w.server
            .new_image(&w.alice, json!({ "tags": ["a", "b"] }))
            .await;
    }
    let page = json_body(w.server.list_images(&w.alice, "tag=a&tag=b&limit=1").await).await;
    let next = page["next"].as_str().unwrap();
    assert!(next.contains("tag=a") && next.contains("tag=b"), "{next}");
    assert_eq!(
        w.server
            .list_all(&w.alice, "/v2/images?tag=a&tag=b&limit=1")
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn a_huge_limit_is_capped_not_refused() {
    let w = World::with_env(&[("CLOUD_IMAGES_MAX_PAGE_SIZE", "2")]).await;
    for _ in 0..3 {
        w.server.new_image(&w.alice, json!({})).await;
    }
    let page = json_body(w.server.list_images(&w.alice, "limit=5000").await).await;
    assert_eq!(page["images"].as_array().unwrap().len(), 2);
    assert!(page.get("next").is_some());
}
