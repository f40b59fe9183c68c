//! The object API (the Swift subset python-swiftclient needs): containers, objects, listings,
//! ranges, ETags, Static Large Objects, the quota, and tenant isolation; and the Rackspace
//! workflow over it: put an object, import it, export an image, take the export out.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{Checked, Reply, World, json_body, sample_bytes, tool_digest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn account(tenant: &str) -> String {
    format!("/v1/AUTH_{tenant}")
}

async fn call(w: &World, method: Method, path: &str, token: &str) -> Reply {
    w.call(method, path, token).await
}

async fn put(w: &World, token: &str, path: &str, data: Vec<u8>) -> Reply {
    w.server
        .request(Method::PUT, path, Some(token))
        .body(data)
        .checked()
        .await
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header: {reply:?}"))
}

fn md5(data: &[u8]) -> String {
    tool_digest("md5sum", data)
}

/// A container of alice's, created for the test.
async fn container(w: &World, name: &str) -> String {
    let path = format!("{}/{name}", account(&w.acme));
    assert_eq!(
        call(w, Method::PUT, &path, &w.alice).await.status(),
        StatusCode::CREATED
    );
    path
}

async fn names(w: &World, path_and_query: &str) -> Vec<String> {
    let reply = call(w, Method::GET, path_and_query, &w.alice).await;
    assert_eq!(reply.status(), StatusCode::OK, "{}", reply.text());
    json_body(reply)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.get("name")
                .or_else(|| e.get("subdir"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn tokens_name_the_callers_object_store() {
    let w = World::new().await;
    let (user, project) = (w.server.name("alice"), w.server.name("acme"));
    let password = format!("pw-{user}");
    let reply = w
        .server
        .v3_auth(cloud_images_api_tests::v3_password_by_name(
            &user, &password, &project,
        ))
        .await;
    let catalog = json_body(reply).await["token"]["catalog"].clone();
    let store = catalog
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "object-store")
        .expect("an object-store service in the catalog");
    let url = store["endpoints"][0]["url"].as_str().unwrap();
    assert_eq!(url, w.server.url(&account(&w.acme)));
}

#[tokio::test]
async fn containers_are_created_once_counted_listed_and_deleted_only_empty() {
    let w = World::new().await;
    let path = container(&w, "backups").await;
    assert_eq!(
        call(&w, Method::PUT, &path, &w.alice).await.status(),
        StatusCode::ACCEPTED
    );
    container(&w, "archive").await;
    assert_eq!(
        names(&w, &format!("{}?format=json", account(&w.acme))).await,
        ["archive", "backups"]
    );
    let plain = call(&w, Method::GET, &account(&w.acme), &w.alice).await;
    assert_eq!(plain.text(), "archive\nbackups\n");
    assert_eq!(
        names(
            &w,
            &format!("{}?format=json&marker=archive", account(&w.acme))
        )
        .await,
        ["backups"]
    );

    let data = sample_bytes(1000, 1);
    assert_eq!(
        put(&w, &w.alice, &format!("{path}/disk.vhd"), data)
            .await
            .status(),
        StatusCode::CREATED
    );
    let head = call(&w, Method::HEAD, &path, &w.alice).await;
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&head, "x-container-object-count"), "1");
    assert_eq!(header(&head, "x-container-bytes-used"), "1000");
    let head = call(&w, Method::HEAD, &account(&w.acme), &w.alice).await;
    assert_eq!(header(&head, "x-account-container-count"), "2");
    assert_eq!(header(&head, "x-account-bytes-used"), "1000");

    let busy = call(&w, Method::DELETE, &path, &w.alice).await;
    assert_eq!(busy.status(), StatusCode::CONFLICT, "{}", busy.text());
    assert_eq!(
        call(&w, Method::DELETE, &format!("{path}/disk.vhd"), &w.alice)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&w, Method::DELETE, &path, &w.alice).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&w, Method::HEAD, &path, &w.alice).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&w, Method::DELETE, &path, &w.alice).await.status(),
        StatusCode::NOT_FOUND
    );
    let bad = call(
        &w,
        Method::PUT,
        &format!("{}/.hidden", account(&w.acme)),
        &w.alice,
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{}", bad.text());
}

#[tokio::test]
async fn objects_round_trip_with_their_etag_type_and_ranges() {
    let w = World::new().await;
    let path = container(&w, "c").await;
    let data = sample_bytes(100_000, 2);
    let object = format!("{path}/dir/disk.raw");
    let stored = w
        .server
        .request(Method::PUT, &object, Some(&w.alice))
        .header("content-type", "application/x-raw-disk")
        .header("etag", md5(&data))
        .body(data.clone())
        .checked()
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED, "{}", stored.text());
    assert_eq!(header(&stored, "etag"), md5(&data));

    let got = call(&w, Method::GET, &object, &w.alice).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.bytes() == data, "the object read back differently");
    assert_eq!(header(&got, "etag"), md5(&data));
    assert_eq!(header(&got, "content-type"), "application/x-raw-disk");
    assert_eq!(header(&got, "content-length"), "100000");
    assert!(header(&got, "last-modified").ends_with(" GMT"));
    let head = call(&w, Method::HEAD, &object, &w.alice).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "content-length"), "100000");
    assert!(head.bytes().is_empty());

    let ranged = w
        .server
        .request(Method::GET, &object, Some(&w.alice))
        .header("range", "bytes=10-19")
        .checked()
        .await;
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes(), &data[10..20]);
    assert_eq!(header(&ranged, "content-range"), "bytes 10-19/100000");
    let beyond = w
        .server
        .request(Method::GET, &object, Some(&w.alice))
        .header("range", "bytes=200000-")
        .checked()
        .await;
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // An ETag the bytes do not have stores nothing: the older object stays.
    let wrong = w
        .server
        .request(Method::PUT, &object, Some(&w.alice))
        .header("etag", md5(b"something else"))
        .body(sample_bytes(10, 3))
        .checked()
        .await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST, "{}", wrong.text());
    assert!(call(&w, Method::GET, &object, &w.alice).await.bytes() == data);

    let empty = format!("{path}/empty");
    assert_eq!(
        put(&w, &w.alice, &empty, Vec::new()).await.status(),
        StatusCode::CREATED
    );
    let got = call(&w, Method::GET, &empty, &w.alice).await;
    assert_eq!((got.status(), got.bytes().len()), (StatusCode::OK, 0));
    assert_eq!(header(&got, "etag"), md5(b""));

    let nowhere = put(
        &w,
        &w.alice,
        &format!("{}/absent/x", account(&w.acme)),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    // (A client sends `..` segments resolved, so they never reach the server as such.)
    for bad in ["a//b", "x%01y", "/leading"] {
        let reply = put(&w, &w.alice, &format!("{path}/{bad}"), b"x".to_vec()).await;
        assert!(
            matches!(
                reply.status(),
                StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
            ),
            "{bad}: {reply:?}"
        );
    }
    assert_eq!(
        call(&w, Method::DELETE, &object, &w.alice).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&w, Method::GET, &object, &w.alice).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&w, Method::DELETE, &object, &w.alice).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn listings_page_by_marker_and_roll_up_by_delimiter() {
    let w = World::new().await;
    let path = container(&w, "c").await;
    for name in ["a/1", "a/2", "a/b/3", "b", "c/1", "Z", "é"] {
        assert_eq!(
            put(
                &w,
                &w.alice,
                &format!("{path}/{name}"),
                name.as_bytes().to_vec()
            )
            .await
            .status(),
            StatusCode::CREATED
        );
    }
    let list = |query: &str| format!("{path}?format=json&{query}");
    assert_eq!(
        names(&w, &list("")).await,
        ["Z", "a/1", "a/2", "a/b/3", "b", "c/1", "é"]
    );
    assert_eq!(
        names(&w, &list("delimiter=/")).await,
        ["Z", "a/", "b", "c/", "é"]
    );
    assert_eq!(
        names(&w, &list("prefix=a/&delimiter=/")).await,
        ["a/1", "a/2", "a/b/"]
    );
    assert_eq!(names(&w, &list("limit=2&delimiter=/")).await, ["Z", "a/"]);
    assert_eq!(
        names(&w, &list("limit=2&delimiter=/&marker=a/")).await,
        ["b", "c/"]
    );
    assert_eq!(
        names(&w, &list("marker=a/2&end_marker=c")).await,
        ["a/b/3", "b"]
    );
    assert_eq!(names(&w, &list("prefix=zz")).await, Vec::<String>::new());
    let entry = &json_body(call(&w, Method::GET, &list("prefix=b"), &w.alice).await).await[0];
    assert_eq!(entry["hash"], md5(b"b"));
    assert_eq!(entry["bytes"], 1);
    assert!(entry["last_modified"].as_str().unwrap().contains('T'));
    let plain = call(&w, Method::GET, &format!("{path}?prefix=c/"), &w.alice).await;
    assert_eq!(plain.text(), "c/1\n");
    let none = call(&w, Method::GET, &format!("{path}?prefix=zz"), &w.alice).await;
    assert_eq!(none.status(), StatusCode::NO_CONTENT);
    let bad = call(&w, Method::GET, &list("delimiter=ab"), &w.alice).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn static_large_objects_join_their_segments_and_delete_with_them() {
    let w = World::new().await;
    let segments_path = container(&w, "c_segments").await;
    let path = container(&w, "c").await;
    let parts: Vec<Vec<u8>> = (0..3)
        .map(|i| sample_bytes(300_000 + i * 7, 10 + i as u64))
        .collect();
    let mut manifest = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let segment = format!("disk.vhd/slo/{i:08}");
        assert_eq!(
            put(
                &w,
                &w.alice,
                &format!("{segments_path}/{segment}"),
                part.clone()
            )
            .await
            .status(),
            StatusCode::CREATED
        );
        manifest.push(json!({"path": format!("/c_segments/{segment}"), "etag": md5(part), "size_bytes": part.len()}));
    }
    let whole: Vec<u8> = parts.concat();
    let object = format!("{path}/disk.vhd");
    let stored = put(
        &w,
        &w.alice,
        &format!("{object}?multipart-manifest=put"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    assert_eq!(stored.status(), StatusCode::CREATED, "{}", stored.text());
    let etags: String = parts.iter().map(|p| md5(p)).collect();
    assert_eq!(
        header(&stored, "etag"),
        format!("\"{}\"", md5(etags.as_bytes()))
    );

    let got = call(&w, Method::GET, &object, &w.alice).await;
    assert_eq!(got.status(), StatusCode::OK);
    assert!(
        got.bytes() == whole,
        "the large object is not its segments joined"
    );
    assert_eq!(header(&got, "x-static-large-object"), "True");
    let listed = json_body(
        call(
            &w,
            Method::GET,
            &format!("{object}?multipart-manifest=get"),
            &w.alice,
        )
        .await,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[1]["name"], "/c_segments/disk.vhd/slo/00000001");
    assert_eq!(listed[1]["hash"], md5(&parts[1]));

    // A manifest naming a missing segment, or one that differs from what it says, stores
    // nothing.
    let other = format!("{path}/other.vhd?multipart-manifest=put");
    let mut wrong_size = manifest.clone();
    wrong_size[0]["size_bytes"] = json!(1);
    let mut wrong_etag = manifest.clone();
    wrong_etag[2]["etag"] = json!(md5(b"x"));
    let mut missing = manifest.clone();
    missing[1]["path"] = json!("/c_segments/nothing");
    let foreign = json!([{"path": format!("/../{}/x", w.globex)}]);
    for bad in [
        json!(wrong_size),
        json!(wrong_etag),
        json!(missing),
        foreign,
        json!([]),
        json!({"path": "x"}),
    ] {
        let reply = put(&w, &w.alice, &other, serde_json::to_vec(&bad).unwrap()).await;
        assert_eq!(
            reply.status(),
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text()
        );
    }
    assert_eq!(
        call(&w, Method::HEAD, &format!("{path}/other.vhd"), &w.alice)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let deleted = call(
        &w,
        Method::DELETE,
        &format!("{object}?multipart-manifest=delete"),
        &w.alice,
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::OK, "{}", deleted.text());
    assert_eq!(json_body(deleted).await["Number Deleted"], 4);
    assert!(
        names(&w, &format!("{segments_path}?format=json"))
            .await
            .is_empty()
    );
    assert_eq!(
        call(&w, Method::GET, &object, &w.alice).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn no_tenant_reaches_another_tenants_account() {
    let w = World::new().await;
    let path = container(&w, "private").await;
    let object = format!("{path}/secret");
    assert_eq!(
        put(&w, &w.alice, &object, b"secret".to_vec())
            .await
            .status(),
        StatusCode::CREATED
    );
    for (method, target) in [
        (Method::GET, account(&w.acme)),
        (Method::HEAD, account(&w.acme)),
        (Method::GET, path.clone()),
        (Method::HEAD, path.clone()),
        (Method::PUT, format!("{}/theirs", account(&w.acme))),
        (Method::DELETE, path.clone()),
        (Method::GET, object.clone()),
        (Method::HEAD, object.clone()),
        (Method::PUT, object.clone()),
        (Method::DELETE, object.clone()),
    ] {
        let reply = call(&w, method.clone(), &target, &w.bob).await;
        assert_eq!(
            reply.status(),
            StatusCode::FORBIDDEN,
            "bob {method} {target}"
        );
        assert!(!reply.text().contains("secret"));
    }
    let anonymous = w.server.request(Method::GET, &object, None).checked().await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // bob's own account has none of it, under the same names.
    assert_eq!(
        call(
            &w,
            Method::GET,
            &format!("{}/private/secret", account(&w.globex)),
            &w.bob
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    assert!(
        call(&w, Method::GET, &account(&w.globex), &w.bob)
            .await
            .text()
            .is_empty()
    );
    assert!(call(&w, Method::GET, &object, &w.alice).await.bytes() == b"secret");

    // A reader of acme reads but changes nothing.
    let reader = w.server.account("acme", "carol", "reader").await;
    let carol = w.server.token(&reader).await;
    assert_eq!(
        call(&w, Method::GET, &object, &carol).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(&w, &carol, &object, b"x".to_vec()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&w, Method::DELETE, &object, &carol).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(
            &w,
            Method::PUT,
            &format!("{}/more", account(&w.acme)),
            &carol
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_container_quota_refuses_growth_and_keeps_the_older_object() {
    let w = World::with_env(&[("CLOUD_IMAGES_CONTAINER_QUOTA", "1000")]).await;
    let path = container(&w, "c").await;
    let first = sample_bytes(600, 1);
    assert_eq!(
        put(&w, &w.alice, &format!("{path}/a"), first.clone())
            .await
            .status(),
        StatusCode::CREATED
    );
    let over = put(&w, &w.alice, &format!("{path}/b"), sample_bytes(600, 2)).await;
    assert_eq!(
        over.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        over.text()
    );
    assert_eq!(
        call(&w, Method::HEAD, &format!("{path}/b"), &w.alice)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // A chunked upload announces no size: it is refused when its size is known, and the
    // older object of that name stays.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(sample_bytes(500, 3)), Ok(sample_bytes(501, 4))];
    let chunked = w
        .server
        .request(Method::PUT, &format!("{path}/a"), Some(&w.alice))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .checked()
        .await;
    assert_eq!(
        chunked.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        chunked.text()
    );
    assert!(
        call(&w, Method::GET, &format!("{path}/a"), &w.alice)
            .await
            .bytes()
            == first
    );
    // A replacement within the quota, and a shrink, pass.
    assert_eq!(
        put(&w, &w.alice, &format!("{path}/a"), sample_bytes(900, 5))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put(&w, &w.alice, &format!("{path}/b"), sample_bytes(100, 6))
            .await
            .status(),
        StatusCode::CREATED
    );
    let head = call(&w, Method::HEAD, &account(&w.acme), &w.alice).await;
    assert_eq!(header(&head, "x-account-bytes-used"), "1000");
}

/// The Rackspace workflow over the object API alone: put a VHD in a container, import it,
/// export the image to a container, take the export out, and compare.
#[tokio::test]
async fn a_tenant_imports_from_and_exports_to_its_own_containers() {
    let w = World::new().await;
    let path = container(&w, "backups").await;
    let raw = sample_bytes(2 * 1024 * 1024, 9);
    let vhd = cloud_images_api_tests::fixed_vhd(&raw);
    assert_eq!(
        put(&w, &w.alice, &format!("{path}/disk.vhd"), vhd.clone())
            .await
            .status(),
        StatusCode::CREATED
    );
    let done = w
        .server
        .run_task(
            &w.alice,
            json!({"type": "import", "input": {
            "import_from": "backups/disk.vhd", "import_from_format": "vhd",
            "image_properties": {"name": "from-my-container"}}}),
        )
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let image_id = done["result"]["image_id"].as_str().unwrap().to_owned();
    let image = json_body(w.server.show_image(&w.alice, &image_id).await).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], md5(&vhd));

    let done = w
        .server
        .run_task(
            &w.alice,
            json!({"type": "export", "input": {
            "image_uuid": image_id, "receiving_swift_container": "exports"}}),
        )
        .await;
    assert_eq!(done["status"], "success", "{done}");
    let location = done["result"]["export_location"].as_str().unwrap();
    assert_eq!(location, format!("exports/{image_id}.vhd"));
    assert_eq!(
        names(&w, &format!("{}?format=json", account(&w.acme))).await,
        ["backups", "exports"]
    );
    let exported = call(
        &w,
        Method::GET,
        &format!("{}/{location}", account(&w.acme)),
        &w.alice,
    )
    .await;
    assert_eq!(exported.status(), StatusCode::OK);
    assert!(exported.bytes() == vhd, "the export differs from the image");
    assert_eq!(header(&exported, "etag"), md5(&vhd));
}

/// As the stack is set up: objects above the direct limit are refused whole (announced or
/// not) and sent in segments, and come back through the store's URL where it issues one.
#[tokio::test]
async fn objects_above_the_direct_limit_go_up_in_segments_and_come_back_from_the_store() {
    let w = World::with_env(&[
        ("CLOUD_IMAGES_DIRECT_UPLOAD_LIMIT", "1M"),
        ("CLOUD_IMAGES_DOWNLOAD_REDIRECT", "60s"),
    ])
    .await;
    let path = container(&w, "c").await;
    let too_big = put(
        &w,
        &w.alice,
        &format!("{path}/big"),
        sample_bytes(1024 * 1024 + 1, 1),
    )
    .await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        too_big.text().contains("--segment-size"),
        "{}",
        too_big.text()
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(sample_bytes(600_000, 2)), Ok(sample_bytes(600_000, 3))];
    let unannounced = w
        .server
        .request(Method::PUT, &format!("{path}/big"), Some(&w.alice))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .checked()
        .await;
    assert_eq!(unannounced.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        call(&w, Method::HEAD, &format!("{path}/big"), &w.alice)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let parts = [sample_bytes(700_000, 4), sample_bytes(700_000, 5)];
    let mut manifest = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(
            put(&w, &w.alice, &format!("{path}/segments/{i}"), part.clone())
                .await
                .status(),
            StatusCode::CREATED
        );
        manifest.push(json!({"path": format!("/c/segments/{i}")}));
    }
    let stored = put(
        &w,
        &w.alice,
        &format!("{path}/big?multipart-manifest=put"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    assert_eq!(stored.status(), StatusCode::CREATED, "{}", stored.text());
    let whole = parts.concat();
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let got = no_follow
        .get(w.server.url(&format!("{path}/big")))
        .header("X-Auth-Token", &w.alice)
        .send()
        .await
        .unwrap();
    let bytes = if cloud_images_api_tests::testing_aws() {
        // S3 issues URLs: the client fetches the bytes there.
        assert_eq!(got.status(), StatusCode::FOUND);
        let location = got.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.contains("X-Amz-Signature"), "{location}");
        let fetched = no_follow.get(&location).send().await.unwrap();
        assert_eq!(fetched.status(), StatusCode::OK);
        fetched.bytes().await.unwrap().to_vec()
    } else {
        // Files do not: the bytes stream through.
        assert_eq!(got.status(), StatusCode::OK);
        got.bytes().await.unwrap().to_vec()
    };
    assert!(bytes == whole, "the large object came back different");
    // Within the limit, bytes always stream through, with their MD5 ETag.
    let small = call(&w, Method::GET, &format!("{path}/segments/0"), &w.alice).await;
    assert_eq!(small.status(), StatusCode::OK);
    assert_eq!(header(&small, "etag"), md5(&parts[0]));
}
