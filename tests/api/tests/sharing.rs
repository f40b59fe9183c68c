//! Sharing: members, member status, and what each tenant then sees.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{World, id_of, json_body};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

async fn shared_image(w: &World) -> String {
    let id = id_of(
        &w.server
            .new_image(
                &w.alice,
                json!({ "name": "to share", "disk_format": "raw", "container_format": "bare" }),
            )
            .await,
    );
    w.server
        .upload(&w.alice, &id, b"shared bytes".to_vec())
        .await;
    id
}

#[tokio::test]
async fn the_owner_adds_a_member_who_sees_the_image_but_lists_it_only_once_accepted() {
    let w = World::new().await;
    let id = shared_image(&w).await;
    let added = w.server.add_member(&w.alice, &id, &w.globex).await;
    assert_eq!(added.status(), StatusCode::OK);
    let member = json_body(added).await;
    assert_eq!(member["image_id"], id.as_str());
    assert_eq!(member["member_id"], w.globex.as_str());
    assert_eq!(member["status"], "pending");
    assert_eq!(member["schema"], "/v2/schemas/member");

    // Pending: usable by id, not in the default list.
    assert_eq!(
        w.server.show_image(&w.bob, &id).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server.download(&w.bob, &id, None).await.bytes(),
        b"shared bytes"
    );
    assert!(!w.server.listed_ids(&w.bob, "").await.contains(&id));
    assert_eq!(
        w.server
            .listed_ids(&w.bob, "visibility=shared&member_status=pending")
            .await,
        vec![id.clone()]
    );

    let accepted = w
        .server
        .set_member_status(&w.bob, &id, &w.globex, "accepted")
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(json_body(accepted).await["status"], "accepted");
    assert_eq!(w.server.listed_ids(&w.bob, "").await, vec![id.clone()]);
    assert_eq!(
        w.server.listed_ids(&w.bob, "visibility=shared").await,
        vec![id.clone()]
    );
    assert!(
        w.server
            .listed_ids(&w.bob, "visibility=shared&member_status=pending")
            .await
            .is_empty()
    );

    let rejected = w
        .server
        .set_member_status(&w.bob, &id, &w.globex, "rejected")
        .await;
    assert_eq!(json_body(rejected).await["status"], "rejected");
    assert!(!w.server.listed_ids(&w.bob, "").await.contains(&id));
    assert_eq!(
        w.server
            .listed_ids(&w.bob, "visibility=shared&member_status=rejected")
            .await,
        vec![id.clone()]
    );
    assert_eq!(
        w.server
            .listed_ids(&w.bob, "visibility=shared&member_status=all")
            .await,
        vec![id.clone()]
    );
    assert_eq!(
        w.server.show_image(&w.bob, &id).await.status(),
        StatusCode::OK,
        "a rejected member still uses it by id"
    );
}

/// As Glance unions them: `member_status` also picks which shared images join the default
/// list (own + public + shared-with-that-status), not only the `visibility=shared` one.
#[tokio::test]
async fn member_status_picks_the_shared_images_that_join_the_default_list() {
    let w = World::new().await;
    let offered = shared_image(&w).await;
    w.server.add_member(&w.alice, &offered, &w.globex).await;
    let own = id_of(
        &w.server
            .new_image(
                &w.bob,
                json!({ "name": "own", "disk_format": "raw", "container_format": "bare" }),
            )
            .await,
    );
    // Which of the two a list holds (the deployed stack's lists also hold other tests'
    // public images).
    let listed = |query: &'static str| {
        let (server, bob) = (&w.server, &w.bob);
        let (own, offered) = (own.clone(), offered.clone());
        async move {
            let ids = server
                .list_all(bob, &format!("/v2/images?limit=1000&{query}"))
                .await;
            (ids.contains(&own), ids.contains(&offered))
        }
    };
    assert_eq!(listed("").await, (true, false), "pending: not by default");
    assert_eq!(listed("member_status=pending").await, (true, true));
    assert_eq!(listed("member_status=all").await, (true, true));
    assert_eq!(listed("member_status=accepted").await, (true, false));
    assert_eq!(
        listed("visibility=all&member_status=pending").await,
        (true, true)
    );

    w.server
        .set_member_status(&w.bob, &offered, &w.globex, "rejected")
        .await;
    assert_eq!(listed("member_status=pending").await, (true, false));
    assert_eq!(listed("member_status=rejected").await, (true, true));
}

#[tokio::test]
async fn once_removed_a_former_member_can_no_longer_see_show_or_download() {
    let w = World::new().await;
    let id = shared_image(&w).await;
    w.server.add_member(&w.alice, &id, &w.globex).await;
    w.server
        .set_member_status(&w.bob, &id, &w.globex, "accepted")
        .await;
    assert_eq!(
        w.server
            .remove_member(&w.alice, &id, &w.globex)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        w.server.show_image(&w.bob, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.server.download(&w.bob, &id, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        w.server
            .listed_ids(&w.bob, "visibility=shared&member_status=all")
            .await
            .is_empty()
    );
    assert_eq!(
        w.server
            .remove_member(&w.alice, &id, &w.globex)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_owner_sees_every_member_and_a_member_only_itself() {
    let w = World::new().await;
    let carol = w.server.account("initech", "carol", "member").await;
    let carol_token = w.server.token(&carol).await;
    let id = shared_image(&w).await;
    w.server.add_member(&w.alice, &id, &w.globex).await;
    w.server.add_member(&w.alice, &id, &carol.tenant_id).await;
    let all = json_body(w.server.list_members(&w.alice, &id).await).await;
    assert_eq!(all["members"].as_array().unwrap().len(), 2);
    assert_eq!(all["schema"], "/v2/schemas/members");
    let own = json_body(w.server.list_members(&w.bob, &id).await).await;
    let ids: Vec<&str> = own["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![w.globex.as_str()]);
    assert_eq!(
        w.server.show_member(&w.bob, &id, &w.globex).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server
            .show_member(&w.bob, &id, &carol.tenant_id)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.server
            .show_member(&carol_token, &id, &carol.tenant_id)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server
            .show_member(&w.alice, &id, &carol.tenant_id)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn only_the_member_changes_its_status_and_only_to_a_known_one() {
    let w = World::new().await;
    let id = shared_image(&w).await;
    w.server.add_member(&w.alice, &id, &w.globex).await;
    let by_owner = w
        .server
        .set_member_status(&w.alice, &id, &w.globex, "accepted")
        .await;
    assert_eq!(by_owner.status(), StatusCode::FORBIDDEN);
    let by_admin = w
        .server
        .set_member_status(&w.admin, &id, &w.globex, "accepted")
        .await;
    assert_eq!(by_admin.status(), StatusCode::FORBIDDEN);
    let bogus = w
        .server
        .set_member_status(&w.bob, &id, &w.globex, "maybe")
        .await;
    assert_eq!(bogus.status(), StatusCode::BAD_REQUEST);
    let message = json_body(bogus).await["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("pending") && message.contains("accepted") && message.contains("rejected"),
        "{message}"
    );
    let member = json_body(w.server.show_member(&w.bob, &id, &w.globex).await).await;
    assert_eq!(member["status"], "pending");
}

#[tokio::test]
async fn only_the_owner_adds_members_and_only_to_shared_images() {
    let w = World::new().await;
    let id = shared_image(&w).await;
    w.server.add_member(&w.alice, &id, &w.globex).await;
    let by_member = w
        .server
        .add_member(&w.bob, &id, "0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(by_member.status(), StatusCode::FORBIDDEN);
    let private = id_of(
        &w.server
            .new_image(&w.alice, json!({ "visibility": "private" }))
            .await,
    );
    let refused = w.server.add_member(&w.alice, &private, &w.globex).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        json_body(refused).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shared")
    );
    let duplicate = w.server.add_member(&w.alice, &id, &w.globex).await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(
        w.server.add_member(&w.alice, &id, "").await.status(),
        StatusCode::BAD_REQUEST
    );
    let malformed = w
        .server
        .request(
            reqwest::Method::POST,
            &format!("/v2/images/{id}/members"),
            Some(&w.alice),
        )
        .json(&json!({ "tenant": "x" }));
    assert_eq!(
        cloud_images_api_tests::Checked::checked(malformed)
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_consumer_cannot_patch_tag_delete_or_unshare_the_image() {
    let w = World::new().await;
    let id = shared_image(&w).await;
    w.server.add_member(&w.alice, &id, &w.globex).await;
    w.server
        .set_member_status(&w.bob, &id, &w.globex, "accepted")
        .await;
    let rename = json!([{ "op": "replace", "path": "/name", "value": "mine now" }]);
    assert_eq!(
        w.server.patch_image(&w.bob, &id, rename).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.server
            .tag(reqwest::Method::PUT, &w.bob, &id, "x")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.server.delete_image(&w.bob, &id).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.server
            .remove_member(&w.bob, &id, &w.globex)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let image = json_body(w.server.show_image(&w.alice, &id).await).await;
    assert_eq!(image["name"], "to share");
}

#[tokio::test]
async fn the_member_limit_is_413() {
    let w = World::with_env(&[("CLOUD_IMAGES_MAX_IMAGE_MEMBERS", "2")]).await;
    let id = shared_image(&w).await;
    assert_eq!(
        w.server
            .add_member(&w.alice, &id, "tenant-one")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server
            .add_member(&w.alice, &id, "tenant-two")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server
            .add_member(&w.alice, &id, "tenant-three")
            .await
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn ten_concurrent_adds_of_one_member_give_exactly_one_success() {
    let w = World::new().await;
    let id = shared_image(&w).await;
    let replies = join_all((0..10).map(|_| w.server.add_member(&w.alice, &id, &w.globex))).await;
    let created = replies
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let conflicts = replies
        .iter()
        .filter(|r| r.status() == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 9));
    assert_eq!(
        json_body(w.server.list_members(&w.alice, &id).await).await["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn making_a_shared_image_private_hides_it_from_members_and_deleting_it_forgets_them() {
    let w = World::new().await;
    let id = shared_image(&w).await;
    w.server.add_member(&w.alice, &id, &w.globex).await;
    w.server
        .set_member_status(&w.bob, &id, &w.globex, "accepted")
        .await;
    let private = json!([{ "op": "replace", "path": "/visibility", "value": "private" }]);
    assert_eq!(
        w.server.patch_image(&w.alice, &id, private).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        w.server.show_image(&w.bob, &id).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!w.server.listed_ids(&w.bob, "").await.contains(&id));
    let shared = json!([{ "op": "replace", "path": "/visibility", "value": "shared" }]);
    w.server.patch_image(&w.alice, &id, shared).await;
    assert_eq!(
        w.server.show_image(&w.bob, &id).await.status(),
        StatusCode::OK,
        "memberships survive the round trip"
    );
    assert_eq!(
        w.server.delete_image(&w.alice, &id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(
        w.server
            .listed_ids(&w.bob, "visibility=shared&member_status=all")
            .await
            .is_empty()
    );
}
