//! Identity: the three credential forms, token validation, roles and project lookup.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{Checked, DataDir, Server, json_body, v3_password_by_name};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_rackspace_api_key_token_opens_the_api_and_lists_an_unversioned_image_endpoint() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let response = server.api_key_auth(&alice.user_name, &alice.api_key).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    let access = &body["access"];
    assert_eq!(access["token"]["tenant"]["id"], alice.tenant_id.as_str());
    assert_eq!(
        access["token"]["tenant"]["name"],
        alice.tenant_name.as_str()
    );
    assert!(access["token"]["expires"].as_str().unwrap().ends_with('Z'));
    assert_eq!(access["user"]["name"], alice.user_name.as_str());
    let roles: Vec<&str> = access["user"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["member", "reader"]);
    let image = access["serviceCatalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "image")
        .unwrap();
    assert_eq!(image["endpoints"][0]["publicURL"], server.root.as_str());
    assert_eq!(image["endpoints"][0]["tenantId"], alice.tenant_id.as_str());

    let token = access["token"]["id"].as_str().unwrap();
    let project = server
        .request(
            Method::GET,
            &format!("/v3/projects/{}", alice.tenant_id),
            Some(token),
        )
        .checked()
        .await;
    assert_eq!(project.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_v2_password_token_works_and_may_name_its_tenant() {
    let server = Server::start().await;
    let bob = server.account("acme", "bob", "member").await;
    let password = bob.password.as_deref().unwrap();
    for tenant in [None, Some(bob.tenant_name.as_str())] {
        let response = server
            .v2_password_auth(&bob.user_name, password, tenant)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "tenant {tenant:?}");
        let body = json_body(response).await;
        let token = body["access"]["token"]["id"].as_str().unwrap();
        let me = server
            .request(
                Method::GET,
                &format!("/v3/projects/{}", bob.tenant_id),
                Some(token),
            )
            .checked()
            .await;
        assert_eq!(me.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_v3_password_token_comes_in_x_subject_token_with_a_catalog() {
    let server = Server::start().await;
    let carol = server.account("acme", "carol", "reader").await;
    let response = server
        .v3_auth(v3_password_by_name(
            &carol.user_name,
            carol.password.as_deref().unwrap(),
            &carol.tenant_name,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = response.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = json_body(response).await;
    let t = &body["token"];
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(t["project"]["id"], carol.tenant_id.as_str());
    assert_eq!(t["project"]["domain"]["id"], "default");
    assert_eq!(t["user"]["domain"]["name"], "Default");
    assert_eq!(t["roles"], json!([{ "id": "reader", "name": "reader" }]));
    let image = t["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "image")
        .unwrap();
    let public = image["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["interface"] == "public")
        .unwrap();
    assert_eq!(public["url"], server.root.as_str());
    assert_eq!(public["region"], "RegionOne");

    let validated = server
        .request(Method::GET, "/v3/auth/tokens", Some(&token))
        .header("X-Subject-Token", &token)
        .checked()
        .await;
    assert_eq!(validated.status(), StatusCode::OK);
    assert_eq!(
        json_body(validated).await["token"]["user"]["name"],
        carol.user_name.as_str()
    );
}

#[tokio::test]
async fn v3_accepts_the_default_domain_by_id_and_users_and_projects_by_id() {
    let server = Server::start().await;
    let dave = server.account("acme", "dave", "member").await;
    let password = dave.password.as_deref().unwrap();
    let first = json_body(
        server
            .v3_auth(v3_password_by_name(
                &dave.user_name,
                password,
                &dave.tenant_name,
            ))
            .await,
    )
    .await;
    let user_id = first["token"]["user"]["id"].as_str().unwrap();
    let by_ids = json!({
        "identity": { "methods": ["password"], "password": { "user": { "id": user_id, "password": password } } },
        "scope": { "project": { "id": dave.tenant_id, "domain": { "id": "default" } } },
    });
    assert_eq!(server.v3_auth(by_ids).await.status(), StatusCode::CREATED);
    let by_name_in_domain_id = json!({
        "identity": { "methods": ["password"], "password": { "user": {
            "name": dave.user_name, "domain": { "id": "default" }, "password": password } } },
        "scope": { "project": { "name": dave.tenant_name, "domain": { "id": "default" } } },
    });
    assert_eq!(
        server.v3_auth(by_name_in_domain_id).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn wrong_secrets_unknown_users_and_foreign_scopes_get_401_with_a_message() {
    let server = Server::start().await;
    let erin = server.account("acme", "erin", "member").await;
    let frank = server.account("other", "frank", "member").await;
    let (name, password) = (erin.user_name.as_str(), erin.password.as_deref().unwrap());
    let (own, other) = (erin.tenant_name.as_str(), frank.tenant_name.as_str());
    let refusals = [
        server
            .api_key_auth(name, "0000000000000000000000000000000")
            .await,
        server.api_key_auth("nobody", &erin.api_key).await,
        server.v2_password_auth(name, "wrong", None).await,
        server.v2_password_auth(name, password, Some(other)).await,
        server
            .v3_auth(v3_password_by_name(name, "wrong", own))
            .await,
        server
            .v3_auth(v3_password_by_name(name, password, other))
            .await,
    ];
    for response in refusals {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = json_body(response).await;
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_user_without_a_password_cannot_log_in_with_an_empty_one() {
    let server = Server::start().await;
    let (tenant, user) = (server.name("acme"), server.name("keyonly"));
    let _ = server.cli_raw(&["tenant", "create", &tenant]).await;
    let created = server
        .cli(&["user", "create", "--tenant", &tenant, &user])
        .await;
    assert_eq!(
        server.v2_password_auth(&user, "", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let api_key = created["api_key"].as_str().unwrap();
    assert_eq!(
        server.api_key_auth(&user, api_key).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn missing_malformed_forged_and_tampered_tokens_get_401() {
    let server = Server::start().await;
    let other = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let good = server.token(&alice).await;
    let stranger = other.account("acme", "alice", "member").await;
    let forged = other.token(&stranger).await;
    let mut tampered = good.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let path = format!("/v3/projects/{}", alice.tenant_id);

    assert_eq!(
        server
            .request(Method::GET, &path, Some(&good))
            .checked()
            .await
            .status(),
        StatusCode::OK
    );
    let missing = server.request(Method::GET, &path, None).checked().await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_body(missing).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Auth-Token")
    );
    for bad in [
        "garbage",
        "ci1.e30.AAAA",
        forged.as_str(),
        tampered.as_str(),
    ] {
        let response = server
            .request(Method::GET, &path, Some(bad))
            .checked()
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(json_body(response).await["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn a_token_stops_working_when_it_expires() {
    let server = Server::start_in(DataDir::new(), &[("CLOUD_IMAGES_TOKEN_TTL", "1s")]).await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let path = format!("/v3/projects/{}", alice.tenant_id);
    // A token issued late in a second may already have expired; its own expiry is what counts.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = server
        .request(Method::GET, &path, Some(&token))
        .checked()
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_body(response).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn a_member_token_on_an_admin_route_gets_403_and_an_admin_token_gets_200() {
    let server = Server::start().await;
    let member = server.account("acme", "alice", "member").await;
    let member_token = server.token(&member).await;
    let admin_token = server.token(server.first_admin.as_ref().unwrap()).await;
    for path in ["/v3/projects", "/v3/users"] {
        let refused = server
            .request(Method::GET, path, Some(&member_token))
            .checked()
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            json_body(refused).await["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin")
        );
        let allowed = server
            .request(Method::GET, path, Some(&admin_token))
            .checked()
            .await;
        assert_eq!(allowed.status(), StatusCode::OK, "{path}");
    }
    let users = json_body(
        server
            .request(Method::GET, "/v3/users", Some(&admin_token))
            .checked()
            .await,
    )
    .await;
    let text = users.to_string();
    assert!(text.contains(&member.user_name));
    assert!(
        !text.contains(&member.api_key) && !text.contains("argon2"),
        "secrets leaked: {text}"
    );
}

#[tokio::test]
async fn another_tenants_project_is_forbidden_not_missing() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let bob = server.account("globex", "bob", "member").await;
    let token = server.token(&alice).await;
    let foreign = server
        .request(
            Method::GET,
            &format!("/v3/projects/{}", bob.tenant_id),
            Some(&token),
        )
        .checked()
        .await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let admin_token = server.token(server.first_admin.as_ref().unwrap()).await;
    let as_admin = server
        .request(
            Method::GET,
            &format!("/v3/projects/{}", bob.tenant_id),
            Some(&admin_token),
        )
        .checked()
        .await;
    assert_eq!(
        json_body(as_admin).await["project"]["name"],
        bob.tenant_name.as_str()
    );
}

#[tokio::test]
async fn identity_discovery_documents_name_their_versions() {
    let server = Server::start().await;
    for (path, id) in [("/v3", "v3.14"), ("/v2.0", "v2.0"), ("/v3/", "v3.14")] {
        let response = server
            .request(Method::GET, path, None)
            .header("Accept", "application/json")
            .checked()
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = json_body(response).await;
        assert_eq!(body["version"]["id"], id);
        assert!(
            body["version"]["links"][0]["href"]
                .as_str()
                .unwrap()
                .starts_with(&server.root)
        );
    }
}

#[tokio::test]
async fn credentials_never_reach_the_log() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    server.v2_password_auth("alice", "pw-alice", None).await;
    server.api_key_auth("alice", "wrong-key-1234").await;
    let log = server.log();
    assert!(
        log.contains("/v2.0/tokens"),
        "the log should record requests: {log}"
    );
    for secret in [
        alice.api_key.as_str(),
        "pw-alice",
        "wrong-key-1234",
        token.as_str(),
    ] {
        assert!(!log.contains(secret), "secret {secret} found in the log");
    }
}
