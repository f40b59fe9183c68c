//! Metadata definitions (Glance's metadefs): the stock catalogue, namespaces and their
//! objects, properties, tags and resource type associations, as administrators manage them
//! and everyone else reads them.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{Checked, Reply, World, json_body};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const NAMESPACES: &str = "/v2/metadefs/namespaces";

async fn send(w: &World, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let request = w.server.request(method, path, Some(token));
    match body {
        Some(body) => request.json(&body).checked().await,
        None => request.checked().await,
    }
}

async fn expect(
    w: &World,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let reply = send(w, method.clone(), path, token, body).await;
    let got = reply.status().as_u16();
    let text = reply.text();
    assert_eq!(got, status, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A unique namespace name for this test run (the stack is shared between runs).
fn unique(base: &str) -> String {
    format!(
        "CloudImages::Test::{base}::{}",
        uuid::Uuid::new_v4().simple()
    )
}

async fn new_namespace(w: &World, body: Value) -> String {
    let created = expect(w, Method::POST, NAMESPACES, &w.admin, Some(body), 201).await;
    created["namespace"].as_str().unwrap().to_owned()
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_stock_catalogue_describes_the_properties_this_service_checks() {
    let w = World::new().await;
    let types = expect(
        &w,
        Method::GET,
        "/v2/metadefs/resource_types",
        &w.alice,
        None,
        200,
    )
    .await;
    let types = names(&types, "resource_types");
    for stock in [
        "OS::Glance::Image",
        "OS::Cinder::Volume",
        "OS::Nova::Flavor",
        "OS::Nova::Server",
    ] {
        assert!(
            types.contains(&stock.to_owned()),
            "{stock} missing from {types:?}"
        );
    }
    let os = expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/OS::OperatingSystem"),
        &w.alice,
        None,
        200,
    )
    .await;
    assert_eq!(os["visibility"], "public");
    assert_eq!(os["protected"], true);
    let distros = os["properties"]["os_distro"]["enum"].as_array().unwrap();
    assert!(distros.contains(&json!("ubuntu")) && distros.contains(&json!("windows")));
    // Every value the catalogue offers is one an image may take, and only those.
    let image = w
        .server
        .new_image(
            &w.alice,
            json!({ "name": "described", "os_distro": distros[0] }),
        )
        .await;
    assert_eq!(image["os_distro"], distros[0]);
    let refused = w
        .server
        .create_image(
            &w.alice,
            json!({ "name": "undescribed", "os_distro": "beos" }),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    // The libvirt hints read with the image prefix, as Horizon asks for them.
    let hw = expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/OS::Compute::LibvirtImage?resource_type=OS::Glance::Image"),
        &w.bob,
        None,
        200,
    )
    .await;
    assert!(hw["properties"].get("hw_disk_bus").is_some(), "{hw}");
    let topology = &hw["objects"][0]["properties"];
    assert!(topology.get("hw_cpu_sockets").is_some(), "{topology}");
    let unprefixed = expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/OS::Compute::LibvirtImage/properties/hw_disk_bus?resource_type=OS::Glance::Image"),
        &w.bob,
        None,
        200,
    )
    .await;
    assert_eq!(unprefixed["name"], "disk_bus");
    // The stock namespaces are protected: even an administrator cannot delete them.
    expect(
        &w,
        Method::DELETE,
        &format!("{NAMESPACES}/OS::OperatingSystem"),
        &w.admin,
        None,
        403,
    )
    .await;
}

#[tokio::test]
async fn a_namespace_lives_through_create_show_list_replace_and_delete() {
    let w = World::new().await;
    let name = unique("Lifecycle");
    let created = expect(
        &w,
        Method::POST,
        NAMESPACES,
        &w.admin,
        Some(json!({
            "namespace": name, "display_name": "Lifecycle", "description": "a test",
            "visibility": "public", "protected": true,
            "resource_type_associations": [{ "name": "OS::Glance::Image", "prefix": "lc_" }],
        })),
        201,
    )
    .await;
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "description",
            "display_name",
            "namespace",
            "owner",
            "protected",
            "resource_type_associations",
            "schema",
            "self",
            "updated_at",
            "visibility"
        ]
    );
    assert_eq!(created["self"], format!("{NAMESPACES}/{name}"));
    assert_eq!(created["owner"], json!(admin_tenant(&w).await));

    // The newest namespace is on the first page of the default list (newest first).
    let list = expect(&w, Method::GET, NAMESPACES, &w.bob, None, 200).await;
    let first_page: Vec<&str> = list["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespace"].as_str().unwrap())
        .collect();
    assert!(first_page.contains(&name.as_str()), "{first_page:?}");
    assert!(
        list["namespaces"][0].get("properties").is_none(),
        "lists never show contents"
    );

    expect(
        &w,
        Method::DELETE,
        &format!("{NAMESPACES}/{name}"),
        &w.admin,
        None,
        403,
    )
    .await;
    let replaced = expect(
        &w,
        Method::PUT,
        &format!("{NAMESPACES}/{name}"),
        &w.admin,
        Some(json!({ "namespace": name, "visibility": "private" })),
        200,
    )
    .await;
    // Glance's PUT replaces the header: what the body leaves out takes its default.
    assert_eq!(replaced["protected"], false);
    assert!(replaced.get("display_name").is_none());
    assert_eq!(replaced["created_at"], created["created_at"]);
    // ... and keeps the associations.
    assert_eq!(replaced["resource_type_associations"][0]["prefix"], "lc_");
    // Private now: another tenant no longer finds it.
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{name}"),
        &w.bob,
        None,
        404,
    )
    .await;

    expect(
        &w,
        Method::DELETE,
        &format!("{NAMESPACES}/{name}"),
        &w.admin,
        None,
        204,
    )
    .await;
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{name}"),
        &w.admin,
        None,
        404,
    )
    .await;
}

async fn admin_tenant(w: &World) -> String {
    let token = json_body(
        w.server
            .request(Method::GET, "/v3/auth/tokens", Some(&w.admin))
            .header("X-Subject-Token", &w.admin)
            .checked()
            .await,
    )
    .await;
    token["token"]["project"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn only_administrators_change_the_catalogue_and_others_do_not_learn_private_names() {
    let w = World::new().await;
    let public = new_namespace(
        &w,
        json!({ "namespace": unique("Public"), "visibility": "public" }),
    )
    .await;
    let private = new_namespace(&w, json!({ "namespace": unique("Private") })).await;
    expect(
        &w,
        Method::POST,
        NAMESPACES,
        &w.alice,
        Some(json!({ "namespace": unique("Mine") })),
        403,
    )
    .await;
    expect(
        &w,
        Method::PUT,
        &format!("{NAMESPACES}/{public}"),
        &w.alice,
        Some(json!({ "namespace": public })),
        403,
    )
    .await;
    expect(
        &w,
        Method::DELETE,
        &format!("{NAMESPACES}/{public}"),
        &w.alice,
        None,
        403,
    )
    .await;
    expect(
        &w,
        Method::POST,
        &format!("{NAMESPACES}/{public}/tags/t"),
        &w.alice,
        None,
        403,
    )
    .await;
    for path in ["", "/objects", "/properties", "/tags", "/resource_types"] {
        expect(
            &w,
            Method::GET,
            &format!("{NAMESPACES}/{private}{path}"),
            &w.alice,
            None,
            404,
        )
        .await;
    }
    expect(
        &w,
        Method::PUT,
        &format!("{NAMESPACES}/{private}"),
        &w.alice,
        Some(json!({ "namespace": private })),
        404,
    )
    .await;
    let listed: Vec<Value> = all_namespaces(&w, &w.alice, "").await;
    let listed: Vec<&str> = listed
        .iter()
        .map(|n| n["namespace"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&public.as_str()));
    assert!(!listed.contains(&private.as_str()));
    // A private namespace given to a tenant is that tenant's to read, not to change.
    let given = new_namespace(&w, json!({ "namespace": unique("Given"), "owner": w.acme })).await;
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{given}"),
        &w.alice,
        None,
        200,
    )
    .await;
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{given}"),
        &w.bob,
        None,
        404,
    )
    .await;
    expect(
        &w,
        Method::DELETE,
        &format!("{NAMESPACES}/{given}"),
        &w.alice,
        None,
        403,
    )
    .await;
}

/// Every namespace `token` may list with `query`, following `next` links.
async fn all_namespaces(w: &World, token: &str, query: &str) -> Vec<Value> {
    let mut path = format!("{NAMESPACES}?limit=7{query}");
    let mut found = Vec::new();
    loop {
        let page = expect(w, Method::GET, &path, token, None, 200).await;
        found.extend(page["namespaces"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => return found,
        }
    }
}

#[tokio::test]
async fn lists_page_by_marker_and_filter_by_visibility_and_resource_type() {
    let w = World::new().await;
    let rt = format!("CloudImages::Test::Type{}", uuid::Uuid::new_v4().simple());
    let mut mine = Vec::new();
    for n in 0..9 {
        let visibility = if n % 3 == 0 { "private" } else { "public" };
        mine.push(
            new_namespace(
                &w,
                json!({
                    "namespace": unique(&format!("Paged{n}")), "visibility": visibility,
                    "resource_type_associations": [{ "name": rt }],
                }),
            )
            .await,
        );
    }
    let filter = format!("&resource_types=OS::Nowhere,{rt}&sort_key=namespace&sort_dir=asc");
    let listed = all_namespaces(&w, &w.admin, &filter).await;
    let listed: Vec<String> = listed
        .iter()
        .map(|n| n["namespace"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = mine.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    let public = all_namespaces(&w, &w.admin, &format!("{filter}&visibility=public")).await;
    assert_eq!(public.len(), 6);
    assert!(public.iter().all(|n| n["visibility"] == "public"));
    // The new type was named by the associations.
    let types = expect(
        &w,
        Method::GET,
        "/v2/metadefs/resource_types",
        &w.bob,
        None,
        200,
    )
    .await;
    assert!(names(&types, "resource_types").contains(&rt));
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}?marker=CloudImages::Nowhere"),
        &w.bob,
        None,
        404,
    )
    .await;
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}?limit=-1"),
        &w.bob,
        None,
        400,
    )
    .await;
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}?sort_key=owner"),
        &w.bob,
        None,
        400,
    )
    .await;
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}?visibility=shared"),
        &w.bob,
        None,
        400,
    )
    .await;
}

#[tokio::test]
async fn objects_are_added_replaced_renamed_and_deleted() {
    let w = World::new().await;
    let ns = new_namespace(
        &w,
        json!({ "namespace": unique("Objects"), "visibility": "public" }),
    )
    .await;
    let objects = format!("{NAMESPACES}/{ns}/objects");
    let cpu = json!({
        "name": "CPU Limits", "description": "limits", "required": ["quota"],
        "properties": { "quota": { "title": "Quota", "type": "integer", "minimum": 0 } },
    });
    let created = expect(&w, Method::POST, &objects, &w.admin, Some(cpu.clone()), 201).await;
    assert_eq!(created["self"], format!("{objects}/CPU Limits"));
    assert_eq!(created["properties"]["quota"]["minimum"], 0);
    expect(&w, Method::POST, &objects, &w.admin, Some(cpu), 409).await;
    expect(
        &w,
        Method::POST,
        &objects,
        &w.admin,
        Some(json!({ "name": "Other" })),
        201,
    )
    .await;
    let renamed = expect(
        &w,
        Method::PUT,
        &format!("{objects}/CPU Limits"),
        &w.admin,
        Some(json!({ "name": "CPU" })),
        200,
    )
    .await;
    // A PUT replaces the object: what it leaves out is gone, the creation time stays.
    assert_eq!(renamed["required"], json!([]));
    assert_eq!(renamed["created_at"], created["created_at"]);
    expect(
        &w,
        Method::PUT,
        &format!("{objects}/CPU"),
        &w.admin,
        Some(json!({ "name": "Other" })),
        409,
    )
    .await;
    expect(
        &w,
        Method::GET,
        &format!("{objects}/CPU Limits"),
        &w.bob,
        None,
        404,
    )
    .await;
    let listed = expect(&w, Method::GET, &objects, &w.bob, None, 200).await;
    assert_eq!(names(&listed, "objects"), ["CPU", "Other"]);
    expect(
        &w,
        Method::GET,
        &format!("{objects}?limit=0"),
        &w.bob,
        None,
        400,
    )
    .await;
    expect(
        &w,
        Method::DELETE,
        &format!("{objects}/CPU"),
        &w.admin,
        None,
        204,
    )
    .await;
    expect(&w, Method::DELETE, &objects, &w.admin, None, 204).await;
    let listed = expect(&w, Method::GET, &objects, &w.bob, None, 200).await;
    assert_eq!(listed["objects"], json!([]));
    // A property of an object must be a definition.
    let bad = json!({ "name": "Bad", "properties": { "p": { "type": "string" } } });
    expect(&w, Method::POST, &objects, &w.admin, Some(bad), 400).await;
}

#[tokio::test]
async fn properties_carry_their_definition_and_read_with_a_resource_type_prefix() {
    let w = World::new().await;
    let ns = new_namespace(
        &w,
        json!({
            "namespace": unique("Properties"),
            "resource_type_associations": [{ "name": "OS::Glance::Image", "prefix": "hv_" }],
        }),
    )
    .await;
    let properties = format!("{NAMESPACES}/{ns}/properties");
    // tempest names a property after a resource type: `::` in a path segment.
    let body = json!({
        "name": "OS::Glance::Image", "title": "Hypervisor", "type": "string",
        "enum": ["kvm", "xen"], "default": "kvm", "uniqueItems": false,
    });
    let created = expect(
        &w,
        Method::POST,
        &properties,
        &w.admin,
        Some(body.clone()),
        201,
    )
    .await;
    assert_eq!(created, body);
    expect(&w, Method::POST, &properties, &w.admin, Some(body), 409).await;
    let shown = expect(
        &w,
        Method::GET,
        &format!("{properties}/OS::Glance::Image"),
        &w.admin,
        None,
        200,
    )
    .await;
    assert_eq!(shown["enum"], json!(["kvm", "xen"]));
    let prefixed = format!("{properties}/hv_OS::Glance::Image?resource_type=OS::Glance::Image");
    assert_eq!(
        expect(&w, Method::GET, &prefixed, &w.admin, None, 200).await["name"],
        "OS::Glance::Image"
    );
    let unprefixed = format!("{properties}/OS::Glance::Image?resource_type=OS::Glance::Image");
    expect(&w, Method::GET, &unprefixed, &w.admin, None, 404).await;
    let namespace = expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{ns}?resource_type=OS::Glance::Image"),
        &w.admin,
        None,
        200,
    )
    .await;
    assert!(
        namespace["properties"]
            .get("hv_OS::Glance::Image")
            .is_some(),
        "{namespace}"
    );

    let updated = expect(
        &w,
        Method::PUT,
        &format!("{properties}/OS::Glance::Image"),
        &w.admin,
        Some(json!({ "name": "hypervisor", "title": "Hypervisor type", "type": "string" })),
        200,
    )
    .await;
    assert_eq!(updated["title"], "Hypervisor type");
    assert!(
        updated.get("enum").is_none(),
        "a PUT replaces the definition"
    );
    for bad in [
        json!({ "name": "p", "type": "string" }),
        json!({ "name": "p", "title": "P", "type": "text" }),
        json!({ "name": "p", "title": "P", "type": "string", "colour": "red" }),
        json!({ "name": "p", "title": "P", "type": "integer", "minimum": 9, "maximum": 1 }),
    ] {
        expect(&w, Method::POST, &properties, &w.admin, Some(bad), 400).await;
    }
    expect(
        &w,
        Method::POST,
        &properties,
        &w.admin,
        Some(json!({ "name": "p", "title": "P", "type": "string", "created_at": "x" })),
        403,
    )
    .await;
    expect(
        &w,
        Method::DELETE,
        &format!("{properties}/hypervisor"),
        &w.admin,
        None,
        204,
    )
    .await;
    let listed = expect(&w, Method::GET, &properties, &w.admin, None, 200).await;
    assert_eq!(listed["properties"], json!({}));
}

#[tokio::test]
async fn tags_are_replaced_or_appended_in_bulk_and_a_duplicate_changes_nothing() {
    let w = World::new().await;
    let ns = new_namespace(
        &w,
        json!({ "namespace": unique("Tags"), "visibility": "public" }),
    )
    .await;
    let tags = format!("{NAMESPACES}/{ns}/tags");
    let bulk = |names: &[&str]| json!({ "tags": names.iter().map(|n| json!({ "name": n })).collect::<Vec<_>>() });
    let created = expect(
        &w,
        Method::POST,
        &tags,
        &w.admin,
        Some(bulk(&["a", "b"])),
        201,
    )
    .await;
    assert_eq!(names(&created, "tags"), ["a", "b"]);
    let append = |names: &[&str]| {
        w.server
            .request(Method::POST, &tags, Some(&w.admin))
            .header("X-Openstack-Append", "True")
            .json(&bulk(names))
            .checked()
    };
    assert_eq!(append(&["c"]).await.status(), StatusCode::CREATED);
    assert_eq!(append(&["a"]).await.status(), StatusCode::CONFLICT);
    expect(
        &w,
        Method::POST,
        &tags,
        &w.admin,
        Some(bulk(&["x", "x"])),
        409,
    )
    .await;
    let mut listed = names(
        &expect(&w, Method::GET, &tags, &w.bob, None, 200).await,
        "tags",
    );
    listed.sort();
    assert_eq!(
        listed,
        ["a", "b", "c"],
        "a refused bulk request changed the tags"
    );
    expect(&w, Method::POST, &tags, &w.admin, Some(bulk(&["d"])), 201).await;
    assert_eq!(
        names(
            &expect(&w, Method::GET, &tags, &w.bob, None, 200).await,
            "tags"
        ),
        ["d"]
    );

    let single = expect(&w, Method::POST, &format!("{tags}/e"), &w.admin, None, 201).await;
    assert_eq!(single["name"], "e");
    expect(&w, Method::POST, &format!("{tags}/e"), &w.admin, None, 409).await;
    let renamed = expect(
        &w,
        Method::PUT,
        &format!("{tags}/e"),
        &w.admin,
        Some(json!({ "name": "f" })),
        200,
    )
    .await;
    assert_eq!(renamed["created_at"], single["created_at"]);
    expect(&w, Method::GET, &format!("{tags}/e"), &w.bob, None, 404).await;
    let page = expect(
        &w,
        Method::GET,
        &format!("{tags}?sort_key=name&sort_dir=asc&limit=1"),
        &w.bob,
        None,
        200,
    )
    .await;
    assert_eq!(names(&page, "tags"), ["d"]);
    let after = expect(
        &w,
        Method::GET,
        &format!("{tags}?sort_key=name&sort_dir=asc&marker=d"),
        &w.bob,
        None,
        200,
    )
    .await;
    assert_eq!(names(&after, "tags"), ["f"]);
    expect(
        &w,
        Method::DELETE,
        &format!("{tags}/f"),
        &w.admin,
        None,
        204,
    )
    .await;
    expect(&w, Method::DELETE, &tags, &w.admin, None, 204).await;
    assert_eq!(
        expect(&w, Method::GET, &tags, &w.bob, None, 200).await["tags"],
        json!([])
    );
}

#[tokio::test]
async fn concurrent_changes_to_one_namespace_all_land() {
    let w = World::new().await;
    let ns = new_namespace(&w, json!({ "namespace": unique("Race") })).await;
    let replies = join_all((0..16).map(|n| {
        let path = format!("{NAMESPACES}/{ns}/tags/t{n:02}");
        let admin = w.admin.clone();
        let server = &w.server;
        async move {
            server
                .request(Method::POST, &path, Some(&admin))
                .checked()
                .await
                .status()
        }
    }))
    .await;
    assert!(
        replies.iter().all(|s| *s == StatusCode::CREATED),
        "{replies:?}"
    );
    let listed = expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{ns}/tags?sort_key=name&sort_dir=asc"),
        &w.admin,
        None,
        200,
    )
    .await;
    let expected: Vec<String> = (0..16).map(|n| format!("t{n:02}")).collect();
    assert_eq!(
        names(&listed, "tags"),
        expected,
        "a concurrent change was lost"
    );
}

#[tokio::test]
async fn associations_name_new_resource_types_and_protected_namespaces_keep_their_contents() {
    let w = World::new().await;
    let ns = new_namespace(
        &w,
        json!({
            "namespace": unique("Protected"), "protected": true,
            "properties": { "p": { "title": "P", "type": "string" } },
            "objects": [{ "name": "o" }], "tags": [{ "name": "t" }],
        }),
    )
    .await;
    let base = format!("{NAMESPACES}/{ns}");
    let rt = format!("CloudImages::Test::Type{}", uuid::Uuid::new_v4().simple());
    let associated = expect(
        &w,
        Method::POST,
        &format!("{base}/resource_types"),
        &w.admin,
        Some(json!({ "name": rt, "prefix": "x_" })),
        201,
    )
    .await;
    assert_eq!(associated["prefix"], "x_");
    expect(
        &w,
        Method::POST,
        &format!("{base}/resource_types"),
        &w.admin,
        Some(json!({ "name": rt })),
        409,
    )
    .await;
    for path in [
        "/objects",
        "/objects/o",
        "/properties",
        "/properties/p",
        "/tags",
        "/tags/t",
        &format!("/resource_types/{rt}"),
        "",
    ] {
        expect(
            &w,
            Method::DELETE,
            &format!("{base}{path}"),
            &w.admin,
            None,
            403,
        )
        .await;
    }
    let shown = expect(&w, Method::GET, &base, &w.admin, None, 200).await;
    assert_eq!(names(&shown, "objects"), ["o"]);
    assert_eq!(names(&shown, "tags"), ["t"]);
    assert!(shown["properties"].get("p").is_some());
    // Unprotected, it lets go of them.
    expect(
        &w,
        Method::PUT,
        &base,
        &w.admin,
        Some(json!({ "namespace": ns })),
        200,
    )
    .await;
    expect(
        &w,
        Method::DELETE,
        &format!("{base}/resource_types/{rt}"),
        &w.admin,
        None,
        204,
    )
    .await;
    expect(
        &w,
        Method::DELETE,
        &format!("{base}/resource_types/{rt}"),
        &w.admin,
        None,
        404,
    )
    .await;
    let associations = expect(
        &w,
        Method::GET,
        &format!("{base}/resource_types"),
        &w.admin,
        None,
        200,
    )
    .await;
    assert_eq!(associations["resource_type_associations"], json!([]));
    let types = expect(
        &w,
        Method::GET,
        "/v2/metadefs/resource_types",
        &w.admin,
        None,
        200,
    )
    .await;
    assert!(
        names(&types, "resource_types").contains(&rt),
        "a resource type outlives its associations"
    );
    expect(&w, Method::DELETE, &base, &w.admin, None, 204).await;
}

#[tokio::test]
async fn bodies_that_break_the_rules_are_refused_with_a_reason() {
    let w = World::new().await;
    let name = unique("Bad");
    for (body, status) in [
        (json!({ "namespace": name, "self": "/x" }), 403),
        (json!({ "namespace": name, "visibility": "shared" }), 400),
        (json!({ "namespace": name, "colour": "red" }), 400),
        (json!({ "display_name": "no name" }), 400),
        (json!({ "namespace": "x".repeat(81) }), 400),
        (
            json!({ "namespace": name, "description": "d".repeat(501) }),
            400,
        ),
        (
            json!({ "namespace": name, "tags": [{ "name": "a" }, { "name": "a" }] }),
            409,
        ),
        (json!([1, 2]), 400),
    ] {
        let reply = send(&w, Method::POST, NAMESPACES, &w.admin, Some(body.clone())).await;
        assert_eq!(reply.status().as_u16(), status, "{body}: {}", reply.text());
        let error: Value = serde_json::from_str(&reply.text()).unwrap();
        assert!(!error.to_string().is_empty());
    }
    // Nothing half-made stays behind.
    expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{name}"),
        &w.admin,
        None,
        404,
    )
    .await;
    let taken = new_namespace(&w, json!({ "namespace": unique("Taken") })).await;
    expect(
        &w,
        Method::POST,
        NAMESPACES,
        &w.admin,
        Some(json!({ "namespace": taken })),
        409,
    )
    .await;
    let other = new_namespace(&w, json!({ "namespace": unique("Other") })).await;
    expect(
        &w,
        Method::PUT,
        &format!("{NAMESPACES}/{other}"),
        &w.admin,
        Some(json!({ "namespace": taken })),
        409,
    )
    .await;
}

#[tokio::test]
async fn the_metadefs_schemas_are_served_to_every_caller_under_glances_names() {
    let w = World::new().await;
    for (path, name) in [
        ("namespace", "namespace"),
        ("namespaces", "namespaces"),
        ("object", "object"),
        ("objects", "objects"),
        ("property", "property"),
        ("properties", "properties"),
        ("resource_type", "resource_type_association"),
        ("resource_types", "resource_type_associations"),
        ("tag", "tag"),
        ("tags", "tags"),
    ] {
        let schema = expect(
            &w,
            Method::GET,
            &format!("/v2/schemas/metadefs/{path}"),
            &w.bob,
            None,
            200,
        )
        .await;
        assert_eq!(schema["name"], name);
    }
    expect(
        &w,
        Method::GET,
        "/v2/schemas/metadefs/image",
        &w.bob,
        None,
        404,
    )
    .await;
}

#[tokio::test]
async fn what_a_namespace_shows_validates_against_the_schema_glanceclient_fetches() {
    let w = World::new().await;
    let ns = new_namespace(
        &w,
        json!({
            "namespace": unique("Valid"), "visibility": "public",
            "resource_type_associations": [{ "name": "OS::Glance::Image", "prefix": "v_" }],
            "properties": { "p": { "title": "P", "type": "array", "items": { "type": "string", "enum": ["a"] } } },
            "objects": [{ "name": "o", "properties": { "q": { "title": "Q", "type": "number" } } }],
            "tags": [{ "name": "t" }],
        }),
    )
    .await;
    for (schema, path) in [
        ("namespace", format!("{NAMESPACES}/{ns}")),
        ("object", format!("{NAMESPACES}/{ns}/objects/o")),
        ("property", format!("{NAMESPACES}/{ns}/properties/p")),
        ("tag", format!("{NAMESPACES}/{ns}/tags/t")),
    ] {
        let document = expect(
            &w,
            Method::GET,
            &format!("/v2/schemas/metadefs/{schema}"),
            &w.bob,
            None,
            200,
        )
        .await;
        let shown = expect(&w, Method::GET, &path, &w.bob, None, 200).await;
        let validator = jsonschema::validator_for(&document).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&shown)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{path} against {schema}: {errors:?}");
    }
    let document = expect(
        &w,
        Method::GET,
        "/v2/schemas/metadefs/resource_type",
        &w.bob,
        None,
        200,
    )
    .await;
    let validator = jsonschema::validator_for(&document).unwrap();
    let types = expect(
        &w,
        Method::GET,
        "/v2/metadefs/resource_types",
        &w.bob,
        None,
        200,
    )
    .await;
    for item in types["resource_types"].as_array().unwrap() {
        assert!(validator.is_valid(item), "{item}");
    }
}

#[tokio::test]
async fn a_namespace_too_big_for_one_record_is_413_and_stays_as_it_was() {
    let w = World::new().await;
    let ns = new_namespace(&w, json!({ "namespace": unique("Big") })).await;
    let description = "d".repeat(60_000);
    for n in 0..4 {
        let property = json!({ "name": format!("p{n}"), "title": "P", "type": "string", "description": description });
        expect(
            &w,
            Method::POST,
            &format!("{NAMESPACES}/{ns}/properties"),
            &w.admin,
            Some(property),
            201,
        )
        .await;
    }
    let one_more =
        json!({ "name": "p4", "title": "P", "type": "string", "description": description });
    let refused = send(
        &w,
        Method::POST,
        &format!("{NAMESPACES}/{ns}/properties"),
        &w.admin,
        Some(one_more),
    )
    .await;
    assert_eq!(
        refused.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("split it"));
    let properties = expect(
        &w,
        Method::GET,
        &format!("{NAMESPACES}/{ns}/properties"),
        &w.admin,
        None,
        200,
    )
    .await;
    assert_eq!(properties["properties"].as_object().unwrap().len(), 4);
}
