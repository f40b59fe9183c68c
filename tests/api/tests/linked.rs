//! Linked containers: a container name standing for a bucket of the tenant's own
//! S3-compatible storage (a second emulator that checks signatures: scripts/linked-storage.sh).
//! Tasks import from it and export to it directly; links that cannot work are refused with
//! what is wrong and leave nothing; the secret key is never shown; other tenants get nothing.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{
    Checked, Reply, TenantStorage, World, fixed_vhd, json_body, sample_bytes, testing_stack,
    tool_digest,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A world whose server may reach the tenant's storage on loopback (the stack on the
/// emulator is deployed allowing it).
async fn world(storage: &TenantStorage) -> World {
    if testing_stack() {
        return World::new().await;
    }
    World::with_env(&[
        ("CLOUD_IMAGES_LINK_STS_ENDPOINT", &storage.endpoint),
        ("CLOUD_IMAGES_WEB_DOWNLOAD_ALLOW_INTERNAL", "true"),
        (
            "CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS",
            &format!("80,443,{}", storage.port()),
        ),
    ])
    .await
}

async fn link(w: &World, token: &str, tenant: &str, name: &str, body: &Value) -> Reply {
    w.server
        .request(
            Method::PUT,
            &format!("/v1/AUTH_{tenant}/{name}"),
            Some(token),
        )
        .json(body)
        .checked()
        .await
}

async fn put_in_bucket(storage: &TenantStorage, key: &str, data: Vec<u8>) {
    storage
        .client()
        .await
        .put_object()
        .bucket(&storage.bucket)
        .key(key)
        .body(data.into())
        .send()
        .await
        .unwrap();
}

async fn get_from_bucket(storage: &TenantStorage, key: &str) -> Option<Vec<u8>> {
    let object = storage
        .client()
        .await
        .get_object()
        .bucket(&storage.bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(object.body.collect().await.unwrap().into_bytes().to_vec())
}

fn unique(base: &str) -> String {
    format!("{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test]
async fn tasks_import_from_and_export_to_the_tenants_own_bucket() {
    let storage = TenantStorage::from_env();
    let w = world(&storage).await;
    let prefix = unique("cloud");
    let vhd = fixed_vhd(&sample_bytes(9 * 1024 * 1024, 3));
    put_in_bucket(
        &storage,
        &format!("{prefix}/incoming/disk.vhd"),
        vhd.clone(),
    )
    .await;

    let linked = link(&w, &w.alice, &w.acme, "mine", &storage.link(&prefix)).await;
    assert_eq!(linked.status(), StatusCode::CREATED, "{}", linked.text());
    assert!(
        !linked.text().contains(&storage.secret),
        "the secret came back"
    );
    let document = json_body(linked).await;
    assert_eq!(
        document["container"]["link"]["bucket"],
        storage.bucket.as_str()
    );
    assert_eq!(
        document["container"]["link"]["prefix"],
        format!("{prefix}/")
    );
    let listing = w
        .call(
            Method::GET,
            &format!("/v1/AUTH_{}?format=json", w.acme),
            &w.alice,
        )
        .await;
    assert!(
        !listing.text().contains(&storage.secret),
        "the secret was listed"
    );
    assert_eq!(
        json_body(listing).await[0]["link"]["endpoint"],
        storage.endpoint.as_str()
    );

    let done = w
        .server
        .run_task(
            &w.alice,
            json!({"type": "import", "input": {
            "import_from": "mine/incoming/disk.vhd", "import_from_format": "vhd",
            "image_properties": {"name": "from-my-bucket"}}}),
        )
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let image_id = done["result"]["image_id"].as_str().unwrap().to_owned();
    let image = json_body(w.server.show_image(&w.alice, &image_id).await).await;
    assert_eq!(image["checksum"], tool_digest("md5sum", &vhd));

    let done = w
        .server
        .run_task(
            &w.alice,
            json!({"type": "export", "input": {
            "image_uuid": image_id, "receiving_swift_container": "mine"}}),
        )
        .await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(
        done["result"]["export_location"],
        format!("mine/{image_id}.vhd")
    );
    let exported = get_from_bucket(&storage, &format!("{prefix}/{image_id}.vhd")).await;
    assert!(
        exported == Some(vhd),
        "the export in the bucket differs from the image"
    );

    // Its objects are the bucket's, not this API's; unlinking leaves the bucket alone.
    let object = format!("/v1/AUTH_{}/mine/incoming/disk.vhd", w.acme);
    let through_api = w.call(Method::GET, &object, &w.alice).await;
    assert_eq!(
        through_api.status(),
        StatusCode::CONFLICT,
        "{}",
        through_api.text()
    );
    let put = w
        .server
        .request(Method::PUT, &object, Some(&w.alice))
        .body(b"x".to_vec())
        .checked()
        .await;
    assert_eq!(put.status(), StatusCode::CONFLICT);
    let unlinked = w
        .call(
            Method::DELETE,
            &format!("/v1/AUTH_{}/mine", w.acme),
            &w.alice,
        )
        .await;
    assert_eq!(unlinked.status(), StatusCode::NO_CONTENT);
    assert!(
        get_from_bucket(&storage, &format!("{prefix}/incoming/disk.vhd"))
            .await
            .is_some()
    );

    if !testing_stack() {
        let log = w.server.log();
        assert!(!log.contains(&storage.secret), "the secret reached the log");
    }
}

#[tokio::test]
async fn links_that_cannot_work_are_refused_with_what_is_wrong_and_leave_nothing() {
    let storage = TenantStorage::from_env();
    let w = world(&storage).await;
    let good = storage.link("anything");
    let mut wrong_secret = good.clone();
    wrong_secret["link"]["secret_access_key"] = json!("not-the-secret");
    let mut unknown_key = good.clone();
    unknown_key["link"]["access_key_id"] = json!("AKIANOSUCHKEY0000000");
    let mut missing_bucket = good.clone();
    missing_bucket["link"]["bucket"] = json!("no-such-bucket");
    let mut nothing_there = good.clone();
    nothing_there["link"]["endpoint"] = json!("http://127.0.0.1:443");
    let mut not_allowed = good.clone();
    not_allowed["link"]["endpoint"] = json!("http://127.0.0.1:1");
    let mut malformed = good.clone();
    malformed["link"]["bucket"] = json!("Not A Bucket");
    let cases = [
        ("a wrong secret", wrong_secret, "refused access key"),
        ("an unknown key", unknown_key, "refused access key"),
        ("a missing bucket", missing_bucket, "There is no bucket"),
        (
            "an endpoint nothing answers at",
            nothing_there,
            "could not be reached",
        ),
        (
            "a port web-download may not reach",
            not_allowed,
            "not allowed",
        ),
        ("a malformed bucket name", malformed, "not a bucket name"),
    ];
    for (what, body, says) in cases {
        let reply = link(&w, &w.alice, &w.acme, "broken", &body).await;
        assert_eq!(
            reply.status(),
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text()
        );
        assert!(reply.text().contains(says), "{what}: {}", reply.text());
        assert!(
            !reply.text().contains(&storage.secret),
            "{what}: the secret came back"
        );
        let head = w
            .call(
                Method::HEAD,
                &format!("/v1/AUTH_{}/broken", w.acme),
                &w.alice,
            )
            .await;
        assert_eq!(
            head.status(),
            StatusCode::NOT_FOUND,
            "{what} left a container"
        );
    }

    // A name in use is not linked over.
    let plain = w
        .call(Method::PUT, &format!("/v1/AUTH_{}/taken", w.acme), &w.alice)
        .await;
    assert_eq!(plain.status(), StatusCode::CREATED);
    assert_eq!(
        link(&w, &w.alice, &w.acme, "taken", &good).await.status(),
        StatusCode::CONFLICT
    );
    // Only the account's own writers link.
    assert_eq!(
        link(&w, &w.bob, &w.acme, "theirs", &good).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn another_tenant_cannot_reach_a_linked_container() {
    let storage = TenantStorage::from_env();
    let w = world(&storage).await;
    let prefix = unique("private");
    put_in_bucket(
        &storage,
        &format!("{prefix}/disk.vhd"),
        fixed_vhd(&sample_bytes(1 << 20, 4)),
    )
    .await;
    assert_eq!(
        link(&w, &w.alice, &w.acme, "mine", &storage.link(&prefix))
            .await
            .status(),
        StatusCode::CREATED
    );
    // bob's "mine" is bob's: it does not exist, and alice's link is not found through it.
    let done = w
        .server
        .run_task(
            &w.bob,
            json!({"type": "import", "input": {
            "import_from": "mine/disk.vhd", "import_from_format": "vhd",
            "image_properties": {"name": "stolen"}}}),
        )
        .await;
    assert_eq!(done["status"], "failure", "{done}");
    // (Only bob's own: on the shared stack other tests' public images are listed too.)
    let owned = format!("owner={}", w.globex);
    assert!(w.server.listed_ids(&w.bob, &owned).await.is_empty());
    let head = w
        .call(Method::HEAD, &format!("/v1/AUTH_{}/mine", w.acme), &w.bob)
        .await;
    assert_eq!(head.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_default_policy_refuses_a_link_to_this_machine() {
    let storage = TenantStorage::from_env();
    let w = World::with_env(&[(
        "CLOUD_IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS",
        &format!("80,443,{}", storage.port()),
    )])
    .await;
    for endpoint in [
        storage.endpoint.clone(),
        storage.endpoint.replace("127.0.0.1", "localhost"),
        format!("http://[::1]:{}", storage.port()),
        format!("http://169.254.169.254:{}", storage.port()),
    ] {
        let mut body = storage.link("x");
        body["link"]["endpoint"] = json!(endpoint);
        let reply = link(&w, &w.alice, &w.acme, "ssrf", &body).await;
        assert_eq!(
            reply.status(),
            StatusCode::BAD_REQUEST,
            "{endpoint}: {}",
            reply.text()
        );
        assert!(
            reply.text().contains("not allowed"),
            "{endpoint}: {}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn a_role_link_is_assumed_with_the_tenants_own_external_id() {
    let storage = TenantStorage::from_env();
    let w = world(&storage).await;
    let prefix = unique("role");
    let vhd = fixed_vhd(&sample_bytes(1 << 20, 5));
    put_in_bucket(&storage, &format!("{prefix}/disk.vhd"), vhd.clone()).await;

    let linked = link(
        &w,
        &w.alice,
        &w.acme,
        "mine",
        &storage.link_role(&prefix, &storage.role),
    )
    .await;
    assert_eq!(linked.status(), StatusCode::CREATED, "{}", linked.text());
    let shown = json_body(linked).await["container"]["link"].clone();
    assert_eq!(shown["role_arn"], storage.role.as_str());
    assert_eq!(shown["external_id"], format!("cloud-images:{}", w.acme));
    assert!(shown.get("access_key_id").is_none());

    let done = w
        .server
        .run_task(
            &w.alice,
            json!({"type": "import", "input": {
            "import_from": "mine/disk.vhd", "import_from_format": "vhd",
            "image_properties": {"name": "through-a-role"}}}),
        )
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let image_id = done["result"]["image_id"].as_str().unwrap().to_owned();
    let done = w
        .server
        .run_task(
            &w.alice,
            json!({"type": "export", "input": {
            "image_uuid": image_id, "receiving_swift_container": "mine"}}),
        )
        .await;
    assert_eq!(done["status"], "success", "{done}");
    assert!(get_from_bucket(&storage, &format!("{prefix}/{image_id}.vhd")).await == Some(vhd));

    // A role set up for another tenant is not assumed for this one, a role that may not
    // use the bucket is refused by the bucket, and the external id is not the tenant's to
    // choose.
    let foreign = link(
        &w,
        &w.alice,
        &w.acme,
        "theirs",
        &storage.link_role(&prefix, &storage.foreign_role),
    )
    .await;
    assert_eq!(
        foreign.status(),
        StatusCode::BAD_REQUEST,
        "{}",
        foreign.text()
    );
    assert!(
        foreign.text().contains("could not be assumed"),
        "{}",
        foreign.text()
    );
    let powerless = link(
        &w,
        &w.alice,
        &w.acme,
        "weak",
        &storage.link_role(&prefix, &storage.powerless_role),
    )
    .await;
    assert_eq!(
        powerless.status(),
        StatusCode::BAD_REQUEST,
        "{}",
        powerless.text()
    );
    assert!(
        powerless.text().contains("refused the keys of role"),
        "{}",
        powerless.text()
    );
    let mut chosen = storage.link_role(&prefix, &storage.foreign_role);
    chosen["link"]["external_id"] = json!("cloud-images:someone-else");
    let chosen = link(&w, &w.alice, &w.acme, "chosen", &chosen).await;
    assert_eq!(
        chosen.status(),
        StatusCode::BAD_REQUEST,
        "{}",
        chosen.text()
    );
    for name in ["theirs", "weak", "chosen"] {
        let head = w
            .call(
                Method::HEAD,
                &format!("/v1/AUTH_{}/{name}", w.acme),
                &w.alice,
            )
            .await;
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "{name} was kept");
    }
}
