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

#[tokio::test]
async fn the_account_commands_disable_enable_reset_set_and_delete_with_json_answers() {
    let server = Server::start().await;
    let alice = server.account("acme", "alice", "member").await;
    let name = alice.user_name.as_str();
    let logs_in = |key: String| {
        let server = &server;
        async move { server.api_key_auth(name, &key).await.status() }
    };

    let disabled = server.cli(&["user", "disable", name]).await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(
        logs_in(alice.api_key.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    let enabled = server.cli(&["user", "enable", name]).await;
    assert_eq!(enabled["enabled"], true);
    assert_eq!(logs_in(alice.api_key.clone()).await, StatusCode::OK);

    let reset = server.cli(&["user", "reset-key", name]).await;
    let new_key = reset["api_key"].as_str().unwrap().to_owned();
    assert_eq!(
        logs_in(alice.api_key.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(logs_in(new_key.clone()).await, StatusCode::OK);

    let mut set = server.cli_command(&["user", "set-password", name, "--password-stdin"]);
    set.stdin(std::process::Stdio::piped());
    let mut child = set.spawn().unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"piped-secret\n").await.unwrap();
    drop(stdin);
    assert!(child.wait_with_output().await.unwrap().status.success());
    let tenant = alice.tenant_name.as_str();
    let by_password = server
        .v2_password_auth(name, "piped-secret", Some(tenant))
        .await;
    assert_eq!(by_password.status(), StatusCode::OK);

    let tenants = server.cli(&["tenant", "list"]).await;
    let listed = tenants["tenants"].as_array().unwrap();
    assert!(
        listed.iter().any(|t| t["tenant_name"] == tenant),
        "{tenants}"
    );
    let deleted = server.cli(&["user", "delete", name]).await;
    assert_eq!(deleted["user_name"], name);
    assert_eq!(logs_in(new_key).await, StatusCode::UNAUTHORIZED);
    let gone = server.cli(&["tenant", "delete", tenant]).await;
    assert_eq!(gone["tenant_name"], tenant);
    let tenants = server.cli(&["tenant", "list"]).await;
    assert!(
        !tenants.to_string().contains(&format!("\"{tenant}\"")),
        "{tenants}"
    );

    let missing = server.cli_raw(&["user", "delete", name]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user named"));
}

#[tokio::test]
async fn a_locked_password_opens_again_once_the_lockout_duration_has_passed() {
    let settings = [
        ("CLOUD_IMAGES_LOCKOUT_FAILURE_ATTEMPTS", "2"),
        ("CLOUD_IMAGES_LOCKOUT_DURATION", "2s"),
    ];
    let server = Server::start_in(cloud_images_api_tests::DataDir::new(), &settings).await;
    let bob = server.account("acme", "bob", "member").await;
    let (name, tenant) = (bob.user_name.as_str(), Some(bob.tenant_name.as_str()));
    let password = bob.password.as_deref().unwrap();
    for _ in 0..2 {
        let wrong = server.v2_password_auth(name, "wrong", tenant).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = server.v2_password_auth(name, password, tenant).await;
    assert_eq!(locked.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let open = server.v2_password_auth(name, password, tenant).await;
    assert_eq!(open.status(), StatusCode::OK);
}
