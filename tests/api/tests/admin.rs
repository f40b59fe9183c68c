//! The admin commands and the embedded default's persistence across restarts.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{Checked, Server, json_body};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn the_first_start_creates_an_admin_whose_printed_credentials_work() {
    let server = Server::start().await;
    let admin = server
        .first_admin
        .clone()
        .expect("first start prints the admin's credentials");
    assert_eq!(admin.user_name, "admin");
    let by_key = server.api_key_auth("admin", &admin.api_key).await;
    assert_eq!(by_key.status(), StatusCode::OK);
    let roles = json_body(by_key).await["access"]["user"]["roles"].to_string();
    assert!(roles.contains("\"admin\""));
    let by_password = server
        .v2_password_auth("admin", admin.password.as_deref().unwrap(), Some("admin"))
        .await;
    assert_eq!(by_password.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_restart_keeps_accounts_and_tokens_and_prints_no_new_admin() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let token = server.token(&alice).await;
    let data = server.stop().await;

    let again = Server::start_in(data, &[]).await;
    assert!(
        again.first_admin.is_none(),
        "the admin must be created only once"
    );
    let path = format!("/v3/projects/{}", alice.tenant_id);
    let old_token = again
        .request(Method::GET, &path, Some(&token))
        .checked()
        .await;
    assert_eq!(
        old_token.status(),
        StatusCode::OK,
        "the signing key must survive restarts"
    );
    assert_eq!(
        again.api_key_auth("alice", &alice.api_key).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_commands_print_one_json_object_and_list_users_without_secrets() {
    let server = Server::start().await;
    let tenant = server.cli(&["tenant", "create", "acme"]).await;
    assert_eq!(tenant["tenant_name"], "acme");
    assert_eq!(tenant["tenant_id"].as_str().unwrap().len(), 32);
    let reader = server
        .cli(&[
            "user", "create", "--tenant", "acme", "rita", "--role", "reader",
        ])
        .await;
    assert_eq!(reader["role"], "reader");
    assert_eq!(reader["api_key"].as_str().unwrap().len(), 32);
    let boss = server
        .cli(&["user", "create", "--tenant", "acme", "boss", "--admin"])
        .await;
    assert_eq!(boss["role"], "admin");

    let listed = server.cli(&["user", "list"]).await;
    let users = listed["users"].as_array().unwrap();
    let names: Vec<&str> = users
        .iter()
        .map(|u| u["user_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "boss", "rita"]);
    assert!(
        !listed
            .to_string()
            .contains(reader["api_key"].as_str().unwrap())
    );
    assert!(users.iter().all(|u| u.get("api_key").is_none()));
}

#[tokio::test]
async fn admin_commands_refuse_duplicates_unknown_tenants_and_unknown_roles_with_a_message() {
    let server = Server::start().await;
    server.cli(&["tenant", "create", "acme"]).await;
    server
        .cli(&["user", "create", "--tenant", "acme", "alice"])
        .await;
    let cases: [(&[&str], &str); 4] = [
        (&["tenant", "create", "acme"], "already exists"),
        (
            &["user", "create", "--tenant", "acme", "alice"],
            "already exists",
        ),
        (
            &["user", "create", "--tenant", "nowhere", "zed"],
            "no tenant named",
        ),
        (
            &[
                "user", "create", "--tenant", "acme", "zed", "--role", "root",
            ],
            "unknown role",
        ),
    ];
    for (args, expected) in cases {
        let output = server.cli_raw(args).await;
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn users_created_concurrently_with_a_running_server_can_all_log_in() {
    let server = Server::start().await;
    server.cli(&["tenant", "create", "acme"]).await;
    let names: Vec<String> = (0..6).map(|i| format!("user{i}")).collect();
    // All CLI processes start before any is awaited, so they contend for the database.
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            server
                .cli_command(&["user", "create", "--tenant", "acme", n.as_str()])
                .spawn()
                .unwrap()
        })
        .collect();
    for (name, child) in names.iter().zip(children) {
        let output = child.wait_with_output().await.unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let response = server
            .api_key_auth(name, created["api_key"].as_str().unwrap())
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
}
