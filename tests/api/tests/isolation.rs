//! Tenant isolation as a security boundary: every image-scoped route, for every kind of
//! caller, against every visibility, must answer exactly the status in [`expected`].
//!
//! The rows come from one table, and a test checks that the table names every image-scoped
//! route and method the OpenAPI description lists, so a new route cannot be added without
//! deciding its row here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use futures::StreamExt;

use cloud_images_api_tests::{Checked, Server, id_of, json_body, testing_aws};
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Owner,
    MemberPending,
    MemberAccepted,
    MemberRejected,
    FormerMember,
    Stranger,
    Admin,
}

const ROLES: [Role; 7] = [
    Role::Owner,
    Role::MemberPending,
    Role::MemberAccepted,
    Role::MemberRejected,
    Role::FormerMember,
    Role::Stranger,
    Role::Admin,
];
const VISIBILITIES: [&str; 4] = ["private", "shared", "community", "public"];

/// The one visibility rule everything else derives from: may this caller see the image?
fn sees(role: Role, visibility: &str) -> bool {
    matches!(
        (role, visibility),
        (Role::Owner | Role::Admin, _)
            | (_, "public" | "community")
            | (
                Role::MemberPending | Role::MemberAccepted | Role::MemberRejected,
                "shared"
            )
    )
}

fn manages(role: Role) -> bool {
    matches!(role, Role::Owner | Role::Admin)
}

/// What the fixture image looks like before the call.
#[derive(Debug, Clone, Copy)]
enum Fixture {
    /// Active, with data and a `probe` tag.
    Active,
    /// Queued, without data.
    Queued,
}

/// A row: the route, the fixture, and the status each caller must get.
struct Row {
    method: Method,
    template: &'static str,
    fixture: Fixture,
    body: fn(&Tenants) -> Option<Value>,
    expected: fn(Role, &str) -> u16,
}

fn no_body(_: &Tenants) -> Option<Value> {
    None
}

/// Answer of a route anyone who sees the image may use.
fn readable(ok: u16) -> impl Fn(Role, &str) -> u16 {
    move |role, visibility| if sees(role, visibility) { ok } else { 404 }
}

/// Answer of a route only the owner or an admin may use.
fn owner_only(ok: u16) -> impl Fn(Role, &str) -> u16 {
    move |role, visibility| match (sees(role, visibility), manages(role)) {
        (false, _) => 404,
        (true, true) => ok,
        (true, false) => 403,
    }
}

/// Member routes exist only on shared images.
fn shared_only(role: Role, visibility: &str, ok_for: fn(Role) -> Option<u16>) -> u16 {
    if !sees(role, visibility) {
        404
    } else if visibility != "shared" {
        403
    } else {
        ok_for(role).unwrap_or(403)
    }
}

fn table() -> Vec<Row> {
    vec![
        Row {
            method: Method::GET,
            template: "/v2/images/{image_id}",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| readable(200)(r, v),
        },
        Row {
            method: Method::PATCH,
            template: "/v2/images/{image_id}",
            fixture: Fixture::Active,
            body: |_| Some(json!([{ "op": "replace", "path": "/name", "value": "changed" }])),
            expected: |r, v| owner_only(200)(r, v),
        },
        Row {
            method: Method::DELETE,
            template: "/v2/images/{image_id}",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| owner_only(204)(r, v),
        },
        Row {
            method: Method::PUT,
            template: "/v2/images/{image_id}/tags/{tag}",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| owner_only(204)(r, v),
        },
        Row {
            method: Method::DELETE,
            template: "/v2/images/{image_id}/tags/{tag}",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| owner_only(204)(r, v),
        },
        Row {
            method: Method::POST,
            template: "/v2/images/{image_id}/actions/deactivate",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| {
                if !sees(r, v) {
                    404
                } else if r == Role::Admin {
                    204
                } else {
                    403
                }
            },
        },
        Row {
            method: Method::POST,
            template: "/v2/images/{image_id}/actions/reactivate",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| {
                if !sees(r, v) {
                    404
                } else if r == Role::Admin {
                    204
                } else {
                    403
                }
            },
        },
        Row {
            method: Method::PUT,
            template: "/v2/images/{image_id}/file",
            fixture: Fixture::Queued,
            body: no_body,
            expected: |r, v| owner_only(204)(r, v),
        },
        Row {
            method: Method::GET,
            template: "/v2/images/{image_id}/file",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| readable(200)(r, v),
        },
        Row {
            method: Method::PUT,
            template: "/v2/images/{image_id}/stage",
            fixture: Fixture::Queued,
            body: no_body,
            expected: |r, v| owner_only(204)(r, v),
        },
        Row {
            method: Method::POST,
            template: "/v2/images/{image_id}/import",
            fixture: Fixture::Queued,
            body: |_| Some(json!({ "method": { "name": "glance-direct" } })),
            // Only a writer learns that the image has nothing staged.
            expected: |r, v| owner_only(409)(r, v),
        },
        Row {
            method: Method::GET,
            template: "/v2/images/{image_id}/tasks",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| owner_only(200)(r, v),
        },
        Row {
            method: Method::POST,
            template: "/v2/images/{image_id}/file/parts",
            fixture: Fixture::Queued,
            body: |_| Some(json!({ "size": 10 })),
            // Files take data directly (400 says so); S3 issues the part URLs.
            expected: |r, v| owner_only(if testing_aws() { 200 } else { 400 })(r, v),
        },
        Row {
            method: Method::POST,
            template: "/v2/images/{image_id}/file/complete",
            fixture: Fixture::Queued,
            body: |_| Some(json!({ "upload_id": "no-such-upload" })),
            // Only a writer learns that the upload does not exist.
            expected: |r, v| owner_only(404)(r, v),
        },
        Row {
            method: Method::GET,
            template: "/v2/images/{image_id}/members",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| shared_only(r, v, |_| Some(200)),
        },
        Row {
            method: Method::POST,
            template: "/v2/images/{image_id}/members",
            fixture: Fixture::Active,
            body: |t| Some(json!({ "member": t.newcomer })),
            // Ownership is checked before visibility: non-owners get 403 either way.
            expected: |r, v| match (sees(r, v), manages(r), v) {
                (false, _, _) => 404,
                (true, true, "shared") => 200,
                _ => 403,
            },
        },
        Row {
            method: Method::GET,
            template: "/v2/images/{image_id}/members/{member_id}",
            fixture: Fixture::Active,
            body: no_body,
            // Another member's entry is hidden from members: 404, not 403.
            expected: |r, v| {
                shared_only(r, v, |r| match r {
                    Role::Owner | Role::Admin | Role::MemberAccepted => Some(200),
                    _ => Some(404),
                })
            },
        },
        Row {
            method: Method::PUT,
            template: "/v2/images/{image_id}/members/{member_id}",
            fixture: Fixture::Active,
            body: |_| Some(json!({ "status": "rejected" })),
            expected: |r, v| shared_only(r, v, |r| (r == Role::MemberAccepted).then_some(200)),
        },
        Row {
            method: Method::DELETE,
            template: "/v2/images/{image_id}/members/{member_id}",
            fixture: Fixture::Active,
            body: no_body,
            expected: |r, v| shared_only(r, v, |r| manages(r).then_some(204)),
        },
    ]
}

/// The tenants of the matrix and their tokens.
struct Tenants {
    owner: String,
    pending: (String, String),
    accepted: (String, String),
    rejected: (String, String),
    former: (String, String),
    stranger: String,
    admin: String,
    newcomer: String,
}

impl Tenants {
    fn token(&self, role: Role) -> &str {
        match role {
            Role::Owner => &self.owner,
            Role::MemberPending => &self.pending.1,
            Role::MemberAccepted => &self.accepted.1,
            Role::MemberRejected => &self.rejected.1,
            Role::FormerMember => &self.former.1,
            Role::Stranger => &self.stranger,
            Role::Admin => &self.admin,
        }
    }
}

async fn tenants(server: &Server) -> Tenants {
    let account = |tenant: &'static str, user: &'static str| async move {
        let account = server.account(tenant, user, "member").await;
        let token = server.token(&account).await;
        (account.tenant_id, token)
    };
    let (owner, pending, accepted, rejected, former, stranger) = tokio::join!(
        account("producer", "owner"),
        account("consumer-pending", "pending"),
        account("consumer-accepted", "accepted"),
        account("consumer-rejected", "rejected"),
        account("consumer-former", "former"),
        account("outsider", "stranger"),
    );
    let admin = server.token(server.first_admin.as_ref().unwrap()).await;
    Tenants {
        owner: owner.1,
        pending,
        accepted,
        rejected,
        former,
        stranger: stranger.1,
        admin,
        newcomer: "f".repeat(32),
    }
}

/// An image of `visibility` shared (while it was `shared`) with the pending, accepted,
/// rejected and former members, who then answered or were removed.
async fn fixture(server: &Server, t: &Tenants, visibility: &str, kind: Fixture) -> String {
    let id = id_of(&server.new_image(&t.owner, json!({ "name": "probe", "disk_format": "raw", "container_format": "bare", "tags": ["probe"] })).await);
    if let Fixture::Active = kind {
        assert_eq!(
            server
                .upload(&t.owner, &id, b"probe data".to_vec())
                .await
                .status(),
            204
        );
    }
    for (tenant, _) in [&t.pending, &t.accepted, &t.rejected, &t.former] {
        assert_eq!(server.add_member(&t.owner, &id, tenant).await.status(), 200);
    }
    assert_eq!(
        server
            .set_member_status(&t.accepted.1, &id, &t.accepted.0, "accepted")
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .set_member_status(&t.rejected.1, &id, &t.rejected.0, "rejected")
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .remove_member(&t.owner, &id, &t.former.0)
            .await
            .status(),
        204
    );
    if visibility != "shared" {
        let who = if visibility == "public" {
            &t.admin
        } else {
            &t.owner
        };
        let ops = json!([{ "op": "replace", "path": "/visibility", "value": visibility }]);
        assert_eq!(server.patch_image(who, &id, ops).await.status(), 200);
    }
    id
}

/// Every (METHOD, path template) the served OpenAPI description lists under paths `keep`s.
async fn described_routes(keep: impl Fn(&str) -> bool) -> BTreeSet<(String, String)> {
    let server = Server::start().await;
    let spec = json_body(
        server
            .request(Method::GET, "/openapi.json", None)
            .checked()
            .await,
    )
    .await;
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| keep(path))
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_matrix_covers_every_image_scoped_route_of_the_api() {
    let described = described_routes(|path| path.starts_with("/v2/images/{image_id}")).await;
    let rows: BTreeSet<(String, String)> = table()
        .iter()
        .map(|r| (r.method.to_string(), r.template.to_owned()))
        .collect();
    assert_eq!(
        rows, described,
        "every image-scoped route needs a row in the isolation table"
    );
}

/// Cells run this many at a time: each makes its own fixture image, so they are independent,
/// and over API Gateway and Lambda one at a time would take minutes.
const CELLS_AT_ONCE: usize = 8;

#[tokio::test]
async fn every_caller_gets_exactly_the_expected_status_on_every_route_and_visibility() {
    let server = Server::start().await;
    let t = tenants(&server).await;
    let rows = table();
    let cells = rows.iter().flat_map(|row| {
        VISIBILITIES
            .iter()
            .flat_map(move |visibility| ROLES.iter().map(move |role| (row, *visibility, *role)))
    });
    let failures: Vec<String> = futures::stream::iter(cells)
        .map(|(row, visibility, role)| cell(&server, &t, row, visibility, role))
        .buffer_unordered(CELLS_AT_ONCE)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One cell of the matrix: a fresh fixture, one call; a description when the status differs.
async fn cell(
    server: &Server,
    t: &Tenants,
    row: &Row,
    visibility: &str,
    role: Role,
) -> Option<String> {
    let id = fixture(server, t, visibility, row.fixture).await;
    let path = row
        .template
        .replace("{image_id}", &id)
        .replace("{tag}", "probe")
        .replace("{member_id}", &t.accepted.0);
    let mut request = server.request(row.method.clone(), &path, Some(t.token(role)));
    let carries_data = row.template.ends_with("/file") || row.template.ends_with("/stage");
    request = match ((row.body)(t), carries_data) {
        (_, true) => request
            .header("Content-Type", "application/octet-stream")
            .body(b"uploaded".to_vec()),
        (Some(body), false) if row.method == Method::PATCH => request
            .header(
                "Content-Type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(body.to_string()),
        (Some(body), false) => request.json(&body),
        (None, false) => request,
    };
    let got = request.checked().await.status().as_u16();
    let want = (row.expected)(role, visibility);
    (got != want).then(|| {
        format!(
            "{} {} as {role:?} on a {visibility} image: got {got}, want {want}",
            row.method, row.template
        )
    })
}

#[tokio::test]
async fn the_default_list_shows_each_caller_exactly_what_it_should() {
    let server = Server::start().await;
    let t = tenants(&server).await;
    let mut failures = Vec::new();
    for visibility in VISIBILITIES {
        let id = fixture(&server, &t, visibility, Fixture::Active).await;
        for role in ROLES {
            // Narrowed to the fixture: on the shared stack other tests' images fill pages.
            let listed = server
                .listed_ids(t.token(role), &format!("id={id}"))
                .await
                .contains(&id);
            let want = matches!(
                (role, visibility),
                (Role::Owner | Role::Admin, _) | (_, "public") | (Role::MemberAccepted, "shared")
            );
            let shown = server
                .show_image(t.token(role), &id)
                .await
                .status()
                .as_u16()
                == 200;
            if listed != want || shown != sees(role, visibility) {
                failures.push(format!(
                    "{role:?} on a {visibility} image: listed {listed} (want {want}), shown {shown}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Callers of the object API: its owner, a reader of the same tenant, another tenant, an
/// administrator (of the admin tenant: no reseller rights over other accounts), nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Owner,
    Reader,
    Stranger,
    Admin,
    Anonymous,
}

/// The object routes, each with what its owner gets on the fixture (a container holding
/// one object) and whether it changes anything.
const OBJECT_ROWS: [(&str, &str, u16, bool); 13] = [
    ("GET", "/v1/{account}", 200, false),
    ("HEAD", "/v1/{account}", 204, false),
    ("GET", "/v1/{account}/", 200, false),
    ("HEAD", "/v1/{account}/", 204, false),
    ("GET", "/v1/{account}/{container}", 200, false),
    ("HEAD", "/v1/{account}/{container}", 204, false),
    ("PUT", "/v1/{account}/{container}", 202, true),
    ("DELETE", "/v1/{account}/{container}", 409, true),
    ("GET", "/v1/{account}/{container}/{*object}", 200, false),
    ("HEAD", "/v1/{account}/{container}/{*object}", 200, false),
    ("PUT", "/v1/{account}/{container}/{*object}", 201, true),
    ("DELETE", "/v1/{account}/{container}/{*object}", 204, true),
    ("GET", "/info", 200, false),
];

fn object_expected(caller: Caller, template: &str, owner: u16, writes: bool) -> u16 {
    match caller {
        _ if template == "/info" => 200,
        Caller::Owner => owner,
        Caller::Reader if !writes => owner,
        Caller::Reader | Caller::Stranger | Caller::Admin => 403,
        Caller::Anonymous => 401,
    }
}

#[tokio::test]
async fn the_object_matrix_covers_every_object_route_of_the_api() {
    let described = described_routes(|path| path.starts_with("/v1/") || path == "/info").await;
    let rows: BTreeSet<(String, String)> = OBJECT_ROWS
        .iter()
        .map(|(method, template, _, _)| ((*method).to_owned(), (*template).to_owned()))
        .collect();
    assert_eq!(
        rows, described,
        "every object route needs a row in OBJECT_ROWS"
    );
}

/// A member and a reader of one tenant, a member of another, and the first administrator:
/// the owning member's account and the four tokens in that order.
async fn four_callers(
    server: &Server,
    [tenant, member, reader]: [&str; 3],
    [other_tenant, stranger]: [&str; 2],
) -> (cloud_images_api_tests::Account, [String; 4]) {
    let owner = server.account(tenant, member, "member").await;
    let reader = server.account(tenant, reader, "reader").await;
    let stranger = server.account(other_tenant, stranger, "member").await;
    let (owner_token, reader_token, stranger_token, admin_token) = tokio::join!(
        server.token(&owner),
        server.token(&reader),
        server.token(&stranger),
        server.token(server.first_admin.as_ref().unwrap()),
    );
    (
        owner,
        [owner_token, reader_token, stranger_token, admin_token],
    )
}

/// Every caller on every object route of one tenant's account: only the owner's tenant gets
/// in, and only its writers change anything; nothing another tenant does touches it.
#[tokio::test]
async fn every_caller_reaches_only_its_own_account_on_every_object_route() {
    let server = Server::start().await;
    let (owner, [owner_token, reader_token, stranger_token, admin_token]) = four_callers(
        &server,
        ["storage", "owner", "reader"],
        ["outsider", "stranger"],
    )
    .await;
    let account = format!("/v1/AUTH_{}", owner.tenant_id);
    let callers = [
        (Caller::Owner, Some(owner_token.as_str())),
        (Caller::Reader, Some(reader_token.as_str())),
        (Caller::Stranger, Some(stranger_token.as_str())),
        (Caller::Admin, Some(admin_token.as_str())),
        (Caller::Anonymous, None),
    ];
    let mut failures = Vec::new();
    for (n, (method, template, owner_status, writes)) in OBJECT_ROWS.iter().enumerate() {
        for (caller, token) in callers {
            // A fresh container holding one object per cell: writes of one cell do not
            // change another's fixture.
            let container = format!("cell-{n}-{caller:?}").to_lowercase();
            let fixture = format!("{account}/{container}");
            let put = |path: String, body: Vec<u8>| {
                server
                    .request(Method::PUT, &path, Some(&owner_token))
                    .body(body)
                    .checked()
            };
            assert_eq!(put(fixture.clone(), Vec::new()).await.status(), 201);
            assert_eq!(
                put(format!("{fixture}/probe/object"), b"probe".to_vec())
                    .await
                    .status(),
                201
            );
            let path = template
                .replace("{account}", &format!("AUTH_{}", owner.tenant_id))
                .replace("{container}", &container)
                .replace("{*object}", "probe/object");
            let verb = Method::from_bytes(method.as_bytes()).unwrap();
            let body = if template.ends_with("{*object}") {
                b"written".to_vec()
            } else {
                Vec::new()
            };
            let got = server
                .request(verb, &path, token)
                .body(body)
                .checked()
                .await
                .status()
                .as_u16();
            let want = object_expected(caller, template, *owner_status, *writes);
            if got != want {
                failures.push(format!(
                    "{method} {template} as {caller:?}: got {got}, want {want}"
                ));
            }
            // Whoever called, the object is the owner's or gone by the owner's hand only.
            let left = server
                .request(
                    Method::GET,
                    &format!("{fixture}/probe/object"),
                    Some(&owner_token),
                )
                .checked()
                .await;
            let changed_by_owner = *writes && matches!(caller, Caller::Owner);
            if !changed_by_owner && left.bytes() != b"probe" {
                failures.push(format!(
                    "{method} {template} as {caller:?} changed the owner's object"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Callers of the metadefs API: an administrator, a member and a reader of the tenant that
/// owns the fixture namespace, a member of another tenant, and nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatalogueCaller {
    Owner,
    OwnerReader,
    Stranger,
    Anonymous,
    Admin,
}

/// Admin last: only its calls may change the fixture, and the others are checked against it.
const CATALOGUE_CALLERS: [CatalogueCaller; 5] = [
    CatalogueCaller::Owner,
    CatalogueCaller::OwnerReader,
    CatalogueCaller::Stranger,
    CatalogueCaller::Anonymous,
    CatalogueCaller::Admin,
];

/// What a metadefs route is to the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// A list any authenticated caller reads.
    Everyone,
    /// Creates a namespace: administrators only.
    CreatesNamespace,
    /// Reads within a namespace.
    Reads,
    /// Changes a namespace.
    Writes,
}

/// Every metadefs route with what an administrator gets on the fixture (a namespace with
/// object `o`, property `p`, tag `t` and an association with `OS::Glance::Image`), what it
/// is to the matrix and the body it sends.
fn catalogue_rows() -> Vec<(&'static str, String, u16, Reach, Option<Value>)> {
    use Reach::{CreatesNamespace, Everyone, Reads, Writes};
    let ns = "/v2/metadefs/namespaces/{namespace}";
    let rows: Vec<(&str, String, u16, Reach, Option<Value>)> = vec![
        ("GET", "/v2/metadefs/namespaces".into(), 200, Everyone, None),
        (
            "POST",
            "/v2/metadefs/namespaces".into(),
            201,
            CreatesNamespace,
            Some(json!({ "namespace": "{fresh}" })),
        ),
        (
            "GET",
            "/v2/metadefs/resource_types".into(),
            200,
            Everyone,
            None,
        ),
        ("GET", ns.into(), 200, Reads, None),
        (
            "PUT",
            ns.into(),
            200,
            Writes,
            Some(
                json!({ "namespace": "{namespace}", "visibility": "{visibility}", "owner": "{owner}" }),
            ),
        ),
        ("DELETE", ns.into(), 204, Writes, None),
        ("GET", format!("{ns}/objects"), 200, Reads, None),
        (
            "POST",
            format!("{ns}/objects"),
            201,
            Writes,
            Some(json!({ "name": "o2" })),
        ),
        ("DELETE", format!("{ns}/objects"), 204, Writes, None),
        ("GET", format!("{ns}/objects/{{object}}"), 200, Reads, None),
        (
            "PUT",
            format!("{ns}/objects/{{object}}"),
            200,
            Writes,
            Some(json!({ "name": "o" })),
        ),
        (
            "DELETE",
            format!("{ns}/objects/{{object}}"),
            204,
            Writes,
            None,
        ),
        ("GET", format!("{ns}/properties"), 200, Reads, None),
        (
            "POST",
            format!("{ns}/properties"),
            201,
            Writes,
            Some(json!({ "name": "p2", "title": "P", "type": "string" })),
        ),
        ("DELETE", format!("{ns}/properties"), 204, Writes, None),
        (
            "GET",
            format!("{ns}/properties/{{property}}"),
            200,
            Reads,
            None,
        ),
        (
            "PUT",
            format!("{ns}/properties/{{property}}"),
            200,
            Writes,
            Some(json!({ "name": "p", "title": "P2", "type": "string" })),
        ),
        (
            "DELETE",
            format!("{ns}/properties/{{property}}"),
            204,
            Writes,
            None,
        ),
        ("GET", format!("{ns}/tags"), 200, Reads, None),
        (
            "POST",
            format!("{ns}/tags"),
            201,
            Writes,
            Some(json!({ "tags": [{ "name": "t2" }] })),
        ),
        ("DELETE", format!("{ns}/tags"), 204, Writes, None),
        ("GET", format!("{ns}/tags/{{tag}}"), 200, Reads, None),
        ("POST", format!("{ns}/tags/{{tag}}"), 201, Writes, None),
        (
            "PUT",
            format!("{ns}/tags/{{tag}}"),
            200,
            Writes,
            Some(json!({ "name": "t3" })),
        ),
        ("DELETE", format!("{ns}/tags/{{tag}}"), 204, Writes, None),
        ("GET", format!("{ns}/resource_types"), 200, Reads, None),
        (
            "POST",
            format!("{ns}/resource_types"),
            201,
            Writes,
            Some(json!({ "name": "OS::Nova::Flavor" })),
        ),
        (
            "DELETE",
            format!("{ns}/resource_types/{{resource_type}}"),
            204,
            Writes,
            None,
        ),
    ];
    rows
}

fn catalogue_expected(caller: CatalogueCaller, reach: Reach, admin: u16, visibility: &str) -> u16 {
    use CatalogueCaller::{Admin, Anonymous, Owner, OwnerReader, Stranger};
    match (caller, reach) {
        (Anonymous, _) => 401,
        (Admin, _) | (_, Reach::Everyone) => admin,
        (_, Reach::CreatesNamespace) => 403,
        (Stranger, _) if visibility == "private" => 404,
        (Owner | OwnerReader | Stranger, Reach::Reads) => admin,
        (Owner | OwnerReader | Stranger, Reach::Writes) => 403,
    }
}

#[tokio::test]
async fn the_catalogue_matrix_covers_every_metadefs_route_of_the_api() {
    let described = described_routes(|path| path.starts_with("/v2/metadefs/")).await;
    let rows: BTreeSet<(String, String)> = catalogue_rows()
        .into_iter()
        .map(|(method, template, ..)| (method.to_owned(), template))
        .collect();
    assert_eq!(
        rows, described,
        "every metadefs route needs a row in catalogue_rows"
    );
}

/// Every caller on every metadefs route, for a private and a public namespace owned by one
/// tenant: only administrators change anything, the owning tenant reads its private
/// namespace, and another tenant cannot tell a private namespace exists.
#[tokio::test]
async fn every_caller_gets_exactly_the_expected_status_on_every_metadefs_route() {
    let server = Server::start().await;
    let (owner, [owner_token, reader_token, stranger_token, admin_token]) = four_callers(
        &server,
        ["catalogue", "cat-owner", "cat-reader"],
        ["elsewhere", "cat-stranger"],
    )
    .await;
    let token = |caller: CatalogueCaller| match caller {
        CatalogueCaller::Owner => Some(owner_token.as_str()),
        CatalogueCaller::OwnerReader => Some(reader_token.as_str()),
        CatalogueCaller::Stranger => Some(stranger_token.as_str()),
        CatalogueCaller::Admin => Some(admin_token.as_str()),
        CatalogueCaller::Anonymous => None,
    };
    let rows = catalogue_rows();
    let groups = rows
        .iter()
        .flat_map(|row| ["private", "public"].map(move |visibility| (row, visibility)));
    let failures: Vec<String> = futures::stream::iter(groups)
        .map(|((method, template, admin_status, reach, body), visibility)| {
            let (server, owner, admin_token, token) = (&server, &owner, &admin_token, &token);
            async move {
                let namespace = format!("Isolation::{}", uuid::Uuid::new_v4().simple());
                let created = server
                    .request(Method::POST, "/v2/metadefs/namespaces", Some(admin_token))
                    .json(&json!({
                        "namespace": namespace, "visibility": visibility, "owner": owner.tenant_id,
                        "resource_type_associations": [{ "name": "OS::Glance::Image" }],
                        "properties": { "p": { "title": "P", "type": "string" } },
                        "objects": [{ "name": "o" }], "tags": [{ "name": "t" }],
                    }))
                    .checked()
                    .await;
                assert_eq!(created.status(), 201, "{}", created.text());
                let shown = || async {
                    server
                        .request(Method::GET, &format!("/v2/metadefs/namespaces/{namespace}"), Some(admin_token))
                        .checked()
                        .await
                        .text()
                };
                let before = shown().await;
                let fill = |text: &str| {
                    text.replace("{namespace}", &namespace)
                        .replace("{object}", "o")
                        .replace("{property}", "p")
                        .replace("{resource_type}", "OS::Glance::Image")
                        .replace("{visibility}", visibility)
                        .replace("{owner}", &owner.tenant_id)
                };
                let mut failures = Vec::new();
                for caller in CATALOGUE_CALLERS {
                    let path = fill(template).replace("{tag}", if *method == "POST" { "fresh" } else { "t" });
                    let mut request = server.request(Method::from_bytes(method.as_bytes()).unwrap(), &path, token(caller));
                    if let Some(body) = body {
                        let fresh = format!("Isolation::{}", uuid::Uuid::new_v4().simple());
                        let body: Value = serde_json::from_str(&fill(&body.to_string()).replace("{fresh}", &fresh)).unwrap();
                        request = request.json(&body);
                    }
                    let got = request.checked().await.status().as_u16();
                    let want = catalogue_expected(caller, *reach, *admin_status, visibility);
                    if got != want {
                        failures.push(format!("{method} {template} as {caller:?} on a {visibility} namespace: got {got}, want {want}"));
                    }
                    if caller != CatalogueCaller::Admin && shown().await != before {
                        failures.push(format!("{method} {template} as {caller:?} changed a {visibility} namespace"));
                    }
                }
                failures
            }
        })
        .buffer_unordered(CELLS_AT_ONCE)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
