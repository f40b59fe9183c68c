//! The account lifecycle: Keystone's user and project administration, the user's own
//! password change, Rackspace's API-key reset, token revocation and password lockout.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cloud_images_api_tests::{
    Account, Checked, DataDir, Server, json_body, testing_stack, v3_password_by_name,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The longest a process may keep honouring a revoked token (the default revocation check),
/// with room for a slow emulator.
const REVOCATION_BOUND: Duration = Duration::from_secs(75);

/// A token for `account` and its user id, by the Rackspace API-key flow.
async fn login(server: &Server, account: &Account) -> (String, String) {
    let reply = server
        .api_key_auth(&account.user_name, &account.api_key)
        .await;
    assert_eq!(reply.status(), StatusCode::OK, "{}", reply.text());
    let body = json_body(reply).await;
    let access = &body["access"];
    (
        access["token"]["id"].as_str().unwrap().to_owned(),
        access["user"]["id"].as_str().unwrap().to_owned(),
    )
}

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = server.request(method, path, Some(token));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = request.checked().await;
    let status = reply.status();
    (
        status,
        serde_json::from_slice(reply.bytes()).unwrap_or(Value::Null),
    )
}

async fn images_status(server: &Server, token: &str) -> StatusCode {
    call(server, Method::GET, "/v2/images?limit=1", token, None)
        .await
        .0
}

/// Waits until `token` is refused. A change made through the API is seen at once by the
/// process that made it (the local binary); the stack's other functions may honour the token
/// for up to the revocation check.
async fn until_refused(server: &Server, token: &str) {
    let started = Instant::now();
    loop {
        let status = images_status(server, token).await;
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert!(
            testing_stack(),
            "the process that revoked the token still took it ({status})"
        );
        assert!(
            started.elapsed() < REVOCATION_BOUND,
            "a revoked token still worked after {REVOCATION_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until `token` is taken: a process trusts what refused a user's tokens for a
/// second at most (the local binary, which made the change, not at all).
async fn until_accepted(server: &Server, token: &str) {
    let started = Instant::now();
    loop {
        let status = images_status(server, token).await;
        if status == StatusCode::OK {
            return;
        }
        assert!(
            testing_stack(),
            "a token of an enabled user was refused ({status})"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a token of a user enabled again was still refused after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn password_login(server: &Server, user: &str, password: &str, project: &str) -> StatusCode {
    server
        .v3_auth(v3_password_by_name(user, password, project))
        .await
        .status()
}

#[tokio::test]
async fn an_administrator_creates_a_project_and_a_user_then_disables_and_deletes_them() {
    let server = Server::start().await;
    let admin = server.first_admin.clone().unwrap();
    let (admin_token, _) = login(&server, &admin).await;
    let project_name = server.name("newco");
    let (status, project) = call(
        &server,
        Method::POST,
        "/v3/projects",
        &admin_token,
        Some(json!({ "project": { "name": project_name } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project_id = project["project"]["id"].as_str().unwrap().to_owned();
    let user_name = server.name("newbie");
    let body = json!({ "user": { "name": user_name, "password": "first-pw", "default_project_id": project_id } });
    let (status, user) = call(&server, Method::POST, "/v3/users", &admin_token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(user["user"]["enabled"], true);
    assert_eq!(user["user"]["default_project_id"], project_id.as_str());
    let api_key = user["user"]["RAX-KSKEY:apiKeyCredentials"]["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();

    let newbie = Account {
        tenant_id: project_id.clone(),
        tenant_name: project_name.clone(),
        user_name: user_name.clone(),
        api_key,
        password: Some("first-pw".into()),
    };
    let (token, _) = login(&server, &newbie).await;
    assert_eq!(images_status(&server, &token).await, StatusCode::OK);
    assert_eq!(
        password_login(&server, &user_name, "first-pw", &project_name).await,
        StatusCode::CREATED
    );
    let (status, me) = call(
        &server,
        Method::GET,
        &format!("/v3/users/{user_id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, me["user"]["name"].as_str()),
        (StatusCode::OK, Some(user_name.as_str()))
    );
    let (status, found) = call(
        &server,
        Method::GET,
        &format!("/v3/users?name={user_name}"),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["users"].as_array().unwrap().len(), 1);

    let disable = json!({ "user": { "enabled": false } });
    let (status, disabled) = call(
        &server,
        Method::PATCH,
        &format!("/v3/users/{user_id}"),
        &admin_token,
        Some(disable),
    )
    .await;
    assert_eq!(
        (status, &disabled["user"]["enabled"]),
        (StatusCode::OK, &json!(false))
    );
    until_refused(&server, &token).await;
    let refused = server
        .v3_auth(v3_password_by_name(&user_name, "first-pw", &project_name))
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().contains("disabled"), "{}", refused.text());

    let enable = json!({ "user": { "enabled": true } });
    let (status, _) = call(
        &server,
        Method::PATCH,
        &format!("/v3/users/{user_id}"),
        &admin_token,
        Some(enable),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (token, _) = login(&server, &newbie).await;
    until_accepted(&server, &token).await;

    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v3/users/{user_id}"),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    until_refused(&server, &token).await;
    assert_eq!(
        server
            .api_key_auth(&newbie.user_name, &newbie.api_key)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v3/users/{user_id}"),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v3/projects/{project_id}"),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/v3/projects/{project_id}"),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tenant_is_deleted_only_once_it_owns_no_images_and_its_users_go_with_it() {
    let server = Server::start().await;
    let admin = server.first_admin.clone().unwrap();
    let (admin_token, _) = login(&server, &admin).await;
    let owner = server.account("holder", "holder-user", "member").await;
    let (token, _) = login(&server, &owner).await;
    let image = server
        .new_image(
            &token,
            json!({ "name": "kept", "disk_format": "raw", "container_format": "bare" }),
        )
        .await;
    let image_id = image["id"].as_str().unwrap();
    let path = format!("/v3/projects/{}", owner.tenant_id);
    let (status, refusal) = call(&server, Method::DELETE, &path, &admin_token, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refusal}");
    assert!(refusal.to_string().contains("1 image"), "{refusal}");
    assert_eq!(
        images_status(&server, &token).await,
        StatusCode::OK,
        "the refusal changed something"
    );

    assert_eq!(
        server.delete_image(&token, image_id).await.status(),
        StatusCode::NO_CONTENT
    );
    let (status, _) = call(&server, Method::DELETE, &path, &admin_token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    until_refused(&server, &token).await;
    assert_eq!(
        server
            .api_key_auth(&owner.user_name, &owner.api_key)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let (status, refusal) = call(
        &server,
        Method::DELETE,
        &format!("/v3/projects/{}", admin.tenant_id),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an administrator deleted its own tenant: {refusal}"
    );
}

#[tokio::test]
async fn resetting_the_api_key_shows_the_new_key_once_and_ends_the_old_key_and_its_tokens() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let bob = server.account("acme", "bob", "member").await;
    let (token, user_id) = login(&server, &alice).await;
    let (bob_token, bob_id) = login(&server, &bob).await;
    let reset = |id: &str| {
        format!("/v2.0/users/{id}/OS-KSADM/credentials/RAX-KSKEY:apiKeyCredentials/RAX-AUTH/reset")
    };

    let (status, _) = call(&server, Method::POST, &reset(&user_id), &bob_token, None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a member reset another user's key"
    );
    let (status, body) = call(&server, Method::POST, &reset(&user_id), &token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let credentials = &body["RAX-KSKEY:apiKeyCredentials"];
    assert_eq!(credentials["username"], alice.user_name.as_str());
    let new_key = credentials["apiKey"].as_str().unwrap();
    assert_ne!(new_key, alice.api_key);

    assert_eq!(
        server
            .api_key_auth(&alice.user_name, &alice.api_key)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .api_key_auth(&alice.user_name, new_key)
            .await
            .status(),
        StatusCode::OK
    );
    until_refused(&server, &token).await;
    assert_eq!(
        images_status(&server, &bob_token).await,
        StatusCode::OK,
        "another user's token was revoked"
    );

    let admin = server.first_admin.clone().unwrap();
    let (admin_token, _) = login(&server, &admin).await;
    let (status, body) = call(&server, Method::POST, &reset(&bob_id), &admin_token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call(
        &server,
        Method::POST,
        &reset("0123456789abcdef0123456789abcdef"),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_password_change_needs_the_original_and_ends_every_session() {
    let server = Server::start().await;
    let carol = server.account("acme", "carol", "reader").await;
    let (token, user_id) = login(&server, &carol).await;
    let path = format!("/v3/users/{user_id}/password");
    let original = carol.password.clone().unwrap();

    let wrong = json!({ "user": { "original_password": "not-it", "password": "new-pw" } });
    let (status, _) = call(&server, Method::POST, &path, &token, Some(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        images_status(&server, &token).await,
        StatusCode::OK,
        "a refused change revoked"
    );

    let right = json!({ "user": { "original_password": original, "password": "new-pw" } });
    let (status, body) = call(&server, Method::POST, &path, &token, Some(right)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    until_refused(&server, &token).await;
    assert_eq!(
        password_login(&server, &carol.user_name, &original, &carol.tenant_name).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        password_login(&server, &carol.user_name, "new-pw", &carol.tenant_name).await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn members_administer_no_accounts_but_their_own() {
    let server = Server::start().await;
    let dave = server.account("acme", "dave", "member").await;
    let erin = server.account("acme", "erin", "member").await;
    let (token, dave_id) = login(&server, &dave).await;
    let (_, erin_id) = login(&server, &erin).await;
    let new_user = json!({ "user": { "name": "sneaky", "default_project_id": dave.tenant_id } });
    let cases = [
        (
            Method::POST,
            "/v3/projects".to_owned(),
            Some(json!({ "project": { "name": "mine" } })),
        ),
        (Method::GET, "/v3/projects".to_owned(), None),
        (
            Method::DELETE,
            format!("/v3/projects/{}", dave.tenant_id),
            None,
        ),
        (Method::POST, "/v3/users".to_owned(), Some(new_user)),
        (Method::GET, "/v3/users".to_owned(), None),
        (Method::GET, format!("/v3/users/{erin_id}"), None),
        (
            Method::PATCH,
            format!("/v3/users/{erin_id}"),
            Some(json!({ "user": { "enabled": false } })),
        ),
        (
            Method::PATCH,
            format!("/v3/users/{dave_id}"),
            Some(json!({ "user": { "name": "davey" } })),
        ),
        (Method::DELETE, format!("/v3/users/{erin_id}"), None),
        (
            Method::POST,
            format!("/v3/users/{erin_id}/password"),
            Some(json!({ "user": { "original_password": "x", "password": "y" } })),
        ),
    ];
    for (method, path, body) in cases {
        let (status, answer) = call(&server, method.clone(), &path, &token, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert!(
            answer["message"].is_string() || answer["error"].is_object(),
            "{answer}"
        );
    }
    assert_eq!(
        server
            .api_key_auth(&erin.user_name, &erin.api_key)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_administrator_renames_a_user_and_names_stay_unique() {
    let server = Server::start().await;
    let admin = server.first_admin.clone().unwrap();
    let (admin_token, admin_id) = login(&server, &admin).await;
    let frank = server.account("acme", "frank", "member").await;
    let grace = server.account("acme", "grace", "member").await;
    let (_, frank_id) = login(&server, &frank).await;
    let path = format!("/v3/users/{frank_id}");
    let clash = json!({ "user": { "name": grace.user_name } });
    let (status, _) = call(&server, Method::PATCH, &path, &admin_token, Some(clash)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let new_name = server.name("francis");
    let (status, body) = call(
        &server,
        Method::PATCH,
        &path,
        &admin_token,
        Some(json!({ "user": { "name": new_name } })),
    )
    .await;
    assert_eq!(
        (status, body["user"]["name"].as_str()),
        (StatusCode::OK, Some(new_name.as_str()))
    );
    assert_eq!(
        server
            .api_key_auth(&frank.user_name, &frank.api_key)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .api_key_auth(&new_name, &frank.api_key)
            .await
            .status(),
        StatusCode::OK
    );

    let moved = json!({ "user": { "default_project_id": admin.tenant_id } });
    let (status, _) = call(&server, Method::PATCH, &path, &admin_token, Some(moved)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &server,
        Method::PATCH,
        &format!("/v3/users/{admin_id}"),
        &admin_token,
        Some(json!({ "user": { "enabled": false } })),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an administrator disabled itself"
    );
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/v3/users/{admin_id}"),
        &admin_token,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an administrator deleted itself"
    );
}

#[tokio::test]
async fn wrong_passwords_lock_the_password_alone_and_answer_as_for_an_unknown_user() {
    let metrics = (!testing_stack()).then(free_address);
    let server = match &metrics {
        Some(address) => {
            Server::start_in(DataDir::new(), &[("CLOUD_IMAGES_METRICS_LISTEN", address)]).await
        }
        None => Server::start().await,
    };
    let mallory_target = server.account("acme", "target", "member").await;
    let bystander = server.account("acme", "bystander", "member").await;
    let project = mallory_target.tenant_name.clone();
    let unknown = server
        .v3_auth(v3_password_by_name("nobody-at-all", "guess", &project))
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let checks_before = secret_checks(metrics.as_deref()).await;
    for attempt in 0..100 {
        let reply = server
            .v3_auth(v3_password_by_name(
                &mallory_target.user_name,
                &format!("guess-{attempt}"),
                &project,
            ))
            .await;
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
        let body = json_body(reply).await;
        let unknown_body: Value = serde_json::from_slice(unknown.bytes()).unwrap();
        assert_eq!(
            body["error"]["message"], unknown_body["error"]["message"],
            "attempt {attempt} told more than an unknown user's"
        );
    }
    if let (Some(before), Some(after)) = (checks_before, secret_checks(metrics.as_deref()).await) {
        assert_eq!(
            after - before,
            5.0,
            "the server hashed more than the lockout's 5 attempts"
        );
    }
    let right = mallory_target.password.as_deref().unwrap();
    assert_eq!(
        password_login(&server, &mallory_target.user_name, right, &project).await,
        StatusCode::UNAUTHORIZED,
        "a locked password was accepted"
    );
    assert_eq!(
        server
            .api_key_auth(&mallory_target.user_name, &mallory_target.api_key)
            .await
            .status(),
        StatusCode::OK,
        "the lock reached the API key"
    );
    let bystander_password = bystander.password.as_deref().unwrap();
    assert_eq!(
        password_login(&server, &bystander.user_name, bystander_password, &project).await,
        StatusCode::CREATED
    );
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The local binary's count of password and API-key hash checks (Argon2 runs).
async fn secret_checks(metrics: Option<&str>) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", metrics?))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = text
        .lines()
        .find_map(|line| line.strip_prefix("cloud_images_secret_checks_total "))
        .map_or(0.0, |value| value.trim().parse().unwrap());
    Some(count)
}
