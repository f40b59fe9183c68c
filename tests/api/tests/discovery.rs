//! Version discovery, schemas, request ids and error bodies.

#![allow(clippy::unwrap_used)]

use cloud_images_api_tests::{Checked, Server, json_body};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn the_root_answers_300_and_versions_answers_200_with_one_current_v2() {
    let server = Server::start().await;
    let root = server.request(Method::GET, "/", None).checked().await;
    assert_eq!(root.status(), StatusCode::MULTIPLE_CHOICES);
    let root_body = json_body(root).await;
    let versions = server
        .request(Method::GET, "/versions", None)
        .checked()
        .await;
    assert_eq!(versions.status(), StatusCode::OK);
    let body = json_body(versions).await;
    assert_eq!(body, root_body);
    let entries = body["versions"].as_array().unwrap();
    let current: Vec<_> = entries
        .iter()
        .filter(|v| v["status"] == "CURRENT")
        .collect();
    assert_eq!(current.len(), 1);
    // Exactly the minor versions whose features are served: 2.13 brought the quota usage
    // API; 2.14 on are the cache and locations APIs, which this service does not have.
    assert_eq!(current[0]["id"], "v2.13");
    assert_eq!(entries.len(), 14);
    assert!(
        entries
            .iter()
            .all(|v| v["status"] == "CURRENT" || v["status"] == "SUPPORTED")
    );
    assert_eq!(
        current[0]["links"][0]["href"],
        format!("{}/v2/", server.root)
    );
}

/// Glance's version negotiation: a path under a version this server does not route answers
/// 300 with the versions document; unknown paths under v2 and the identity versions are 404.
#[tokio::test]
async fn a_request_under_a_version_not_offered_answers_300_with_the_versions() {
    let server = Server::start().await;
    let versions = json_body(
        server
            .request(Method::GET, "/versions", None)
            .checked()
            .await,
    )
    .await;
    for (method, path) in [
        (Method::GET, "/v1/images"),
        (Method::POST, "/v1/images"),
        (Method::GET, "/v4"),
        (Method::DELETE, "/v3.1/images/x"),
    ] {
        let answer = server.request(method.clone(), path, None).checked().await;
        assert_eq!(
            answer.status(),
            StatusCode::MULTIPLE_CHOICES,
            "{method} {path}"
        );
        assert_eq!(json_body(answer).await, versions, "{method} {path}");
    }
    for path in ["/v2/nowhere", "/v2.0/nowhere", "/v3/nowhere", "/nowhere"] {
        let answer = server.request(Method::GET, path, None).checked().await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            json_body(answer).await["error"]["message"].is_string(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_glance_schema_is_served() {
    let server = Server::start().await;
    for name in ["image", "images", "member", "members", "task", "tasks"] {
        let response = server
            .request(Method::GET, &format!("/v2/schemas/{name}"), None)
            .checked()
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(json_body(response).await["name"], name);
    }
    let image = json_body(
        server
            .request(Method::GET, "/v2/schemas/image", None)
            .checked()
            .await,
    )
    .await;
    let disk_formats = image["properties"]["disk_format"]["enum"]
        .as_array()
        .unwrap();
    for format in ["raw", "qcow2", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop"] {
        assert!(disk_formats.iter().any(|f| f == format), "{format}");
    }
    assert_eq!(
        image["properties"]["visibility"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(image["properties"]["status"]["readOnly"], true);
    let missing = server
        .request(Method::GET, "/v2/schemas/nothing", None)
        .checked()
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_response_carries_a_distinct_request_id() {
    let server = Server::start().await;
    let mut seen = std::collections::HashSet::new();
    for (method, path) in [
        (Method::GET, "/versions"),
        (Method::GET, "/no/such/route"),
        (Method::DELETE, "/versions"),
        (Method::GET, "/v3/users"),
    ] {
        let response = server.request(method, path, None).checked().await;
        let id = response
            .headers()
            .get("x-openstack-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(id.starts_with("req-"), "{id}");
        assert!(seen.insert(id));
    }
}

#[tokio::test]
async fn errors_are_flat_glance_json_when_json_is_asked_for_and_enveloped_otherwise() {
    let server = Server::start().await;
    let flat = server
        .request(Method::GET, "/nowhere", None)
        .header("Accept", "application/json")
        .checked()
        .await;
    assert_eq!(flat.status(), StatusCode::NOT_FOUND);
    let flat = json_body(flat).await;
    assert_eq!(
        flat["code"], 404,
        "the numeric status, as in the nested form"
    );
    assert_eq!(flat["title"], "Not Found");
    assert!(flat["message"].as_str().unwrap().contains("/nowhere"));

    // python-glanceclient sends Accept: */* and reads `message` from each nested object.
    let nested = server
        .request(Method::GET, "/nowhere", None)
        .header("Accept", "*/*")
        .checked()
        .await;
    let nested = json_body(nested).await;
    assert_eq!(nested["error"]["code"], 404);
    assert!(
        nested["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nowhere")
    );
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow() {
    let server = Server::start().await;
    let response = server
        .request(Method::PUT, "/v2.0/tokens", None)
        .checked()
        .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        response.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(json_body(response).await["error"]["message"].is_string());
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_400_and_413_with_a_message() {
    let server = Server::start().await;
    let cases: Vec<(Vec<u8>, StatusCode)> = vec![
        (b"{not json".to_vec(), StatusCode::BAD_REQUEST),
        (b"[]".to_vec(), StatusCode::BAD_REQUEST),
        (br#"{"auth": {}}"#.to_vec(), StatusCode::BAD_REQUEST),
        (
            br#"{"auth": {"passwordCredentials": {"username": 7}}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (vec![0xff, 0xfe, 0x00], StatusCode::BAD_REQUEST),
    ];
    for (body, expected) in cases {
        for path in ["/v2.0/tokens", "/v3/auth/tokens"] {
            let response = server
                .request(Method::POST, path, None)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .checked()
                .await;
            assert_eq!(
                response.status(),
                expected,
                "{path} {:?}",
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
            assert!(
                json_body(response).await["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
}

#[tokio::test]
async fn an_oversized_body_gets_413_before_it_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start().await;
    let address = server.root.trim_start_matches("http://").to_owned();
    for path in ["/v2.0/tokens", "/v3/auth/tokens"] {
        // A raw socket, because the server answers (and may close) before the body is sent,
        // which HTTP clients report as a write error instead of the answer.
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            2 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let _ = stream.write_all(&vec![b' '; 2 * 1024 * 1024]).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(
            answer.contains("larger than this service accepts"),
            "{path}: {answer}"
        );
    }
}
