//! Test harness: starts the real `cloud-images` binary on port 0 in its own data directory
//! and offers a typed client per endpoint. Conformance cases live in `tests/`.
//!
//! The binary is found through `CLOUD_IMAGES_BIN`, or beside the test executable in the
//! workspace target directory (`cargo build -p cloud-images` first; the test script does).
//!
//! With `CLOUD_IMAGES_TEST_BACKEND=stack` the cases run against the deployed SAM stack instead
//! (`scripts/local-stack.sh client-env` prints what it needs): a "server" is then the one
//! deployment, accounts are made with the admin CLI on its table under names unique to the
//! test, and cases that need the local binary itself (its settings, restarts, logs, files)
//! are listed in `tests/api/stack-skips.txt`.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod spec;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Path of the binary under test.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLOUD_IMAGES_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir.join("cloud-images");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p cloud-images` first",
        path.display()
    );
    path
}

/// A response read whole and already checked against the OpenAPI description.
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// Response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }
}

/// Sends a request and checks the response against the served OpenAPI description.
pub trait Checked {
    /// Sends, reads the whole body and validates status and body for the route.
    fn checked(self) -> impl std::future::Future<Output = Reply> + Send;
}

impl Checked for RequestBuilder {
    async fn checked(self) -> Reply {
        let (client, request) = self.build_split();
        let request = request.unwrap();
        let (method, url) = (request.method().clone(), request.url().clone());
        let response = client.execute(request).await.unwrap();
        let root = format!("{}://{}", url.scheme(), url.authority());
        spec::ensure_loaded(&client, &root).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        let media = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        spec::check(
            &method,
            url.path(),
            status,
            media,
            &String::from_utf8_lossy(&body),
        );
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// The credentials the server printed when it created the first administrator.
#[derive(Debug, Clone)]
pub struct Account {
    /// Tenant id.
    pub tenant_id: String,
    /// Tenant name.
    pub tenant_name: String,
    /// User name.
    pub user_name: String,
    /// API key.
    pub api_key: String,
    /// Password, when set.
    pub password: Option<String>,
}

/// A running server with its own data directory; killed when dropped. On the stack: the
/// deployment, with this test's own accounts.
pub struct Server {
    child: Option<Child>,
    /// Appended to tenant and user names: the stack is shared by every test.
    names: String,
    /// Root URL, e.g. `http://127.0.0.1:41234`.
    pub root: String,
    /// The administrator created on first start, if this start created it.
    pub first_admin: Option<Account>,
    data: DataDir,
    http: reqwest::Client,
}

/// A data directory that outlives server restarts within one test.
pub struct DataDir {
    dir: tempfile::TempDir,
    backend: Vec<(String, String)>,
}

/// Whether this run tests the aws backend (`CLOUD_IMAGES_TEST_BACKEND=aws`, against the
/// emulator `AWS_ENDPOINT_URL` names) rather than the embedded default. The deployed stack
/// keeps its data on the aws backend too.
pub fn testing_aws() -> bool {
    std::env::var("CLOUD_IMAGES_TEST_BACKEND").is_ok_and(|b| b == "aws" || b == "stack")
}

/// Whether this run tests the deployed stack (`CLOUD_IMAGES_TEST_BACKEND=stack`).
pub fn testing_stack() -> bool {
    std::env::var("CLOUD_IMAGES_TEST_BACKEND").is_ok_and(|b| b == "stack")
}

/// One output of the deployed stack (`infra/template.yaml`, `Outputs`).
pub fn stack_output(key: &str) -> String {
    let path = std::env::var("CLOUD_IMAGES_STACK_OUTPUTS")
        .expect("CLOUD_IMAGES_STACK_OUTPUTS is unset: run `eval \"$(bash scripts/local-stack.sh client-env)\"`");
    let outputs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    outputs[key].as_str().unwrap().to_owned()
}

/// The deployed stack: its URL and what the admin CLI needs to reach its table.
struct Stack {
    url: String,
    cli_env: Vec<(String, String)>,
}

fn stack() -> Stack {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is unset: run `eval \"$(bash scripts/local-stack.sh client-env)\"`")
        })
    };
    let outputs: Value =
        serde_json::from_str(&std::fs::read_to_string(var("CLOUD_IMAGES_STACK_OUTPUTS")).unwrap())
            .unwrap();
    let output = |key: &str| outputs[key].as_str().unwrap().to_owned();
    Stack {
        url: var("CLOUD_IMAGES_STACK_URL"),
        cli_env: vec![
            ("CLOUD_IMAGES_BACKEND".into(), "aws".into()),
            ("CLOUD_IMAGES_AWS_TABLE".into(), output("TableName")),
            ("CLOUD_IMAGES_AWS_BUCKET".into(), output("BucketName")),
            ("CLOUD_IMAGES_AWS_QUEUE_URL".into(), output("TaskQueueUrl")),
            (
                "CLOUD_IMAGES_AWS_DEAD_LETTER_QUEUE_URL".into(),
                output("TaskDeadLetterQueueUrl"),
            ),
            (
                "CLOUD_IMAGES_TOKEN_SIGNING_KEY".into(),
                var("CLOUD_IMAGES_STACK_SIGNING_KEY"),
            ),
            ("CLOUD_IMAGES_STORES".into(), output("Stores")),
        ],
    }
}

impl DataDir {
    /// A fresh, empty data directory; on the aws backend, also a fresh table and bucket.
    pub fn new() -> Self {
        let backend = if testing_stack() {
            stack().cli_env
        } else if testing_aws() {
            let unique = uuid::Uuid::new_v4().simple().to_string();
            vec![
                ("CLOUD_IMAGES_BACKEND".into(), "aws".into()),
                ("CLOUD_IMAGES_AWS_TABLE".into(), format!("t{unique}")),
                ("CLOUD_IMAGES_AWS_BUCKET".into(), format!("b{unique}")),
                // Servers sharing a queue would take (and drop) each other's task messages.
                ("CLOUD_IMAGES_AWS_QUEUE".into(), format!("q{unique}")),
                ("CLOUD_IMAGES_AWS_CREATE_RESOURCES".into(), "true".into()),
                // One server per bucket here, so every incomplete upload at start-up is stale.
                ("CLOUD_IMAGES_AWS_STALE_UPLOAD_AFTER".into(), "0".into()),
            ]
        } else {
            Vec::new()
        };
        Self {
            dir: tempfile::tempdir().unwrap(),
            backend,
        }
    }

    /// A fresh data directory whose server keeps two stores: `fast` (the default: the
    /// data directory's `images/`, or the bucket as [`DataDir::new`] names it) and `cheap` (a
    /// directory or bucket of its own). The deployed stack has the template's stores.
    pub fn with_two_stores() -> Self {
        let mut data = Self::new();
        if testing_stack() {
            return data;
        }
        let stores = match data.bucket() {
            Some(bucket) => format!("fast=s3://{bucket}/images/,cheap=s3://{bucket}-cheap/images/"),
            None => "fast=images,cheap=cheap".to_owned(),
        };
        data.backend.push(("CLOUD_IMAGES_STORES".into(), stores));
        data
    }

    /// Where store `id` keeps data, from the server's `CLOUD_IMAGES_STORES`: a directory or
    /// an S3 bucket and prefix.
    fn store_location(&self, id: &str) -> StoreAt {
        let stores = self
            .backend
            .iter()
            .find(|(k, _)| k == "CLOUD_IMAGES_STORES")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let location = stores
            .split(',')
            .find_map(|s| s.strip_prefix(&format!("{id}=")))
            .unwrap_or_else(|| panic!("no store {id} in {stores:?}"));
        match location.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                StoreAt::Bucket(bucket.to_owned(), prefix.to_owned())
            }
            None => StoreAt::Directory(self.path().join(location)),
        }
    }

    fn bucket(&self) -> Option<&str> {
        self.backend
            .iter()
            .find(|(k, _)| k == "CLOUD_IMAGES_AWS_BUCKET")
            .map(|(_, v)| v.as_str())
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for DataDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// Starts a server on a fresh data directory with default settings.
    pub async fn start() -> Self {
        Self::start_in(DataDir::new(), &[]).await
    }

    /// Starts a server on `data` with extra environment variables.
    pub async fn start_in(data: DataDir, env: &[(&str, &str)]) -> Self {
        if testing_stack() {
            assert!(
                env.is_empty(),
                "the deployed stack has the template's settings, not {env:?}: \
                 list this case in tests/api/stack-skips.txt"
            );
            return Self::on_stack(data).await;
        }
        let log = std::fs::File::create(data.path().join("server.log")).unwrap();
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CLOUD_IMAGES_DATA_DIR", data.path())
            .envs(data.backend.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        let root = loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
                .await
                .expect("server did not start within 30 s")
                .unwrap()
                .unwrap_or_else(|| panic!("server exited before listening; stdout: {printed:?}"));
            if let Some(root) = line.strip_prefix("Cloud Images listening on ") {
                break root.trim().to_owned();
            }
            printed.push(line);
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let first_admin = parse_first_admin(&printed);
        Self {
            child: Some(child),
            names: String::new(),
            root,
            first_admin,
            data,
            http: reqwest::Client::new(),
        }
    }

    /// The deployed stack as this test's server, with an administrator of the test's own.
    async fn on_stack(data: DataDir) -> Self {
        let mut server = Self {
            child: None,
            names: format!("-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
            root: stack().url,
            first_admin: None,
            data,
            http: reqwest::Client::new(),
        };
        server.first_admin = Some(server.account("admin", "admin", "admin").await);
        server
    }

    /// Stops the server and hands back its data directory, for restart tests.
    pub async fn stop(mut self) -> DataDir {
        let child = self
            .child
            .as_mut()
            .expect("tests do not restart the deployed stack");
        child.kill().await.unwrap();
        self.data
    }

    /// The server's data directory (the embedded default's files, its events file).
    pub fn data_path(&self) -> &Path {
        self.data.path()
    }

    /// Everything the server logged so far (the stack's functions log to CloudWatch Logs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// A request to `path`, authenticated when a token is given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match token {
            Some(token) => builder.header("X-Auth-Token", token),
            None => builder,
        }
    }

    /// Runs an admin command of the binary on this server's data directory, expecting success,
    /// and returns its `--json` output.
    pub async fn cli(&self, args: &[&str]) -> Value {
        let output = self.cli_raw(args).await;
        assert!(
            output.status.success(),
            "cli {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Runs an admin command with `--json` and returns the raw outcome.
    pub async fn cli_raw(&self, args: &[&str]) -> std::process::Output {
        self.cli_command(args).output().await.unwrap()
    }

    /// An admin command with `--json` on this server's data directory, ready to spawn.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .arg("--json")
            .env("CLOUD_IMAGES_DATA_DIR", self.data.path())
            .envs(
                self.data
                    .backend
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Creates a tenant (if new) and a user in it with `role`, returning its credentials. On
    /// the shared stack the names get this test's suffix: use the returned names.
    pub async fn account(&self, tenant: &str, user: &str, role: &str) -> Account {
        let (tenant, user) = (self.name(tenant), self.name(user));
        let (tenant, user) = (tenant.as_str(), user.as_str());
        let _ = self.cli_raw(&["tenant", "create", tenant]).await;
        let password = format!("pw-{user}");
        let created = self
            .cli(&[
                "user",
                "create",
                "--tenant",
                tenant,
                user,
                "--role",
                role,
                "--password",
                &password,
            ])
            .await;
        Account {
            tenant_id: created["tenant_id"].as_str().unwrap().to_owned(),
            tenant_name: tenant.to_owned(),
            user_name: user.to_owned(),
            api_key: created["api_key"].as_str().unwrap().to_owned(),
            password: Some(password),
        }
    }

    /// A tenant or user name as this test's accounts carry it (suffixed on the shared stack).
    pub fn name(&self, base: &str) -> String {
        format!("{base}{}", self.names)
    }

    /// Authenticates with the Rackspace API-key flow and returns the token id.
    pub async fn token(&self, account: &Account) -> String {
        let response = self
            .api_key_auth(&account.user_name, &account.api_key)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = json_body(response).await;
        body["access"]["token"]["id"].as_str().unwrap().to_owned()
    }

    /// `POST /v2.0/tokens` with `RAX-KSKEY:apiKeyCredentials`.
    pub async fn api_key_auth(&self, username: &str, api_key: &str) -> Reply {
        let body = json!({ "auth": { "RAX-KSKEY:apiKeyCredentials": { "username": username, "apiKey": api_key } } });
        self.request(Method::POST, "/v2.0/tokens", None)
            .json(&body)
            .checked()
            .await
    }

    /// `POST /v2.0/tokens` with `passwordCredentials` and an optional tenant name.
    pub async fn v2_password_auth(
        &self,
        username: &str,
        password: &str,
        tenant: Option<&str>,
    ) -> Reply {
        let mut auth =
            json!({ "passwordCredentials": { "username": username, "password": password } });
        if let Some(tenant) = tenant {
            auth["tenantName"] = json!(tenant);
        }
        self.request(Method::POST, "/v2.0/tokens", None)
            .json(&json!({ "auth": auth }))
            .checked()
            .await
    }

    /// `POST /v3/auth/tokens` with the given `auth` document.
    pub async fn v3_auth(&self, auth: Value) -> Reply {
        self.request(Method::POST, "/v3/auth/tokens", None)
            .json(&json!({ "auth": auth }))
            .checked()
            .await
    }
}

/// A v3 password `auth` document naming user and project by name in the `Default` domain.
pub fn v3_password_by_name(user: &str, password: &str, project: &str) -> Value {
    json!({
        "identity": { "methods": ["password"], "password": { "user": {
            "name": user, "domain": { "name": "Default" }, "password": password } } },
        "scope": { "project": { "name": project, "domain": { "name": "Default" } } },
    })
}

fn parse_first_admin(printed: &[String]) -> Option<Account> {
    let field = |label: &str| {
        printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
    };
    let tenant = field("tenant:")?;
    let (tenant_name, tenant_id) = tenant.split_once(' ')?;
    Some(Account {
        tenant_id: tenant_id.trim_matches(|c| c == '(' || c == ')').to_owned(),
        tenant_name: tenant_name.to_owned(),
        user_name: field("user:")?,
        api_key: field("API key:")?,
        password: field("password:"),
    })
}

/// Reads a response body as JSON, failing the test with the body text if it is not JSON.
pub async fn json_body(reply: Reply) -> Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.text()))
}

/// The PATCH media type clients use.
pub const PATCH_TYPE: &str = "application/openstack-images-v2.1-json-patch";

/// Typed calls to the images API.
impl Server {
    /// `POST /v2/images`.
    pub async fn create_image(&self, token: &str, body: Value) -> Reply {
        self.request(Method::POST, "/v2/images", Some(token))
            .json(&body)
            .checked()
            .await
    }

    /// Creates an image, expecting 201, and returns its document.
    pub async fn new_image(&self, token: &str, body: Value) -> Value {
        let response = self.create_image(token, body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        json_body(response).await
    }

    /// `GET /v2/images/{id}`.
    pub async fn show_image(&self, token: &str, id: &str) -> Reply {
        self.request(Method::GET, &format!("/v2/images/{id}"), Some(token))
            .checked()
            .await
    }

    /// `GET /v2/images?{query}`.
    pub async fn list_images(&self, token: &str, query: &str) -> Reply {
        let path = if query.is_empty() {
            "/v2/images".to_owned()
        } else {
            format!("/v2/images?{query}")
        };
        self.request(Method::GET, &path, Some(token))
            .checked()
            .await
    }

    /// The ids of one list page, expecting 200.
    pub async fn listed_ids(&self, token: &str, query: &str) -> Vec<String> {
        let response = self.list_images(token, query).await;
        assert_eq!(response.status(), StatusCode::OK, "list ?{query}");
        ids_of(&json_body(response).await)
    }

    /// Follows `next` links from `first_path` to the end, returning every id in order.
    pub async fn list_all(&self, token: &str, first_path: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut path = Some(first_path.to_owned());
        while let Some(current) = path {
            let response = self
                .request(Method::GET, &current, Some(token))
                .checked()
                .await;
            assert_eq!(response.status(), StatusCode::OK, "{current}");
            let page = json_body(response).await;
            ids.extend(ids_of(&page));
            path = page.get("next").and_then(Value::as_str).map(str::to_owned);
        }
        ids
    }

    /// `PATCH /v2/images/{id}` with the v2.1 media type.
    pub async fn patch_image(&self, token: &str, id: &str, ops: Value) -> Reply {
        self.request(Method::PATCH, &format!("/v2/images/{id}"), Some(token))
            .header("Content-Type", PATCH_TYPE)
            .body(ops.to_string())
            .checked()
            .await
    }

    /// `DELETE /v2/images/{id}`.
    pub async fn delete_image(&self, token: &str, id: &str) -> Reply {
        self.request(Method::DELETE, &format!("/v2/images/{id}"), Some(token))
            .checked()
            .await
    }

    /// `PUT` (add) or `DELETE` (remove) `/v2/images/{id}/tags/{tag}`.
    pub async fn tag(&self, method: Method, token: &str, id: &str, tag: &str) -> Reply {
        self.request(method, &format!("/v2/images/{id}/tags/{tag}"), Some(token))
            .checked()
            .await
    }

    /// `POST /v2/images/{id}/actions/{action}`.
    pub async fn image_action(&self, token: &str, id: &str, action: &str) -> Reply {
        self.request(
            Method::POST,
            &format!("/v2/images/{id}/actions/{action}"),
            Some(token),
        )
        .checked()
        .await
    }
}

/// Typed calls to the image data API.
impl Server {
    /// `PUT /v2/images/{id}/file` with the whole body (sent with `Content-Length`).
    pub async fn upload(&self, token: &str, id: &str, data: Vec<u8>) -> Reply {
        self.request(Method::PUT, &format!("/v2/images/{id}/file"), Some(token))
            .header("Content-Type", "application/octet-stream")
            .body(data)
            .checked()
            .await
    }

    /// `PUT /v2/images/{id}/file` chunked, in pieces of `chunk` bytes, as glanceclient sends.
    pub async fn upload_chunked(
        &self,
        token: &str,
        id: &str,
        data: Vec<u8>,
        chunk: usize,
    ) -> Reply {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            data.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
        self.request(Method::PUT, &format!("/v2/images/{id}/file"), Some(token))
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
            .checked()
            .await
    }

    /// `GET /v2/images/{id}/file`, optionally with a `Range` header.
    pub async fn download(&self, token: &str, id: &str, range: Option<&str>) -> Reply {
        let request = self.request(Method::GET, &format!("/v2/images/{id}/file"), Some(token));
        match range {
            Some(range) => request.header("Range", range),
            None => request,
        }
        .checked()
        .await
    }

    /// Puts an object into a tenant's container, as the tenant would before an import:
    /// a file under `<data-dir>/objects/<tenant>/` on the embedded backend, an S3 object
    /// under `containers/<tenant>/` on the aws backend.
    pub async fn put_object(&self, tenant: &str, path: &str, data: Vec<u8>) {
        match self.data.bucket() {
            Some(bucket) => {
                s3().await
                    .put_object()
                    .bucket(bucket)
                    .key(format!("containers/{tenant}/{path}"))
                    .body(data.into())
                    .send()
                    .await
                    .unwrap();
            }
            None => {
                let file = self.data.path().join("objects").join(tenant).join(path);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, data).unwrap();
            }
        }
    }

    /// The bytes of an object in a tenant's container, if it exists.
    pub async fn get_object(&self, tenant: &str, path: &str) -> Option<Vec<u8>> {
        match self.data.bucket() {
            Some(bucket) => {
                let object = s3()
                    .await
                    .get_object()
                    .bucket(bucket)
                    .key(format!("containers/{tenant}/{path}"))
                    .send()
                    .await
                    .ok()?;
                Some(object.body.collect().await.unwrap().into_bytes().to_vec())
            }
            None => std::fs::read(self.data.path().join("objects").join(tenant).join(path)).ok(),
        }
    }

    /// Creates a task.
    pub async fn create_task(&self, token: &str, body: Value) -> Reply {
        self.request(Method::POST, "/v2/tasks", Some(token))
            .header("Accept", "application/json")
            .json(&body)
            .checked()
            .await
    }

    /// Creates a task, expecting 201, and returns its document.
    pub async fn new_task(&self, token: &str, body: Value) -> Value {
        let reply = self.create_task(token, body).await;
        assert_eq!(reply.status(), StatusCode::CREATED, "{}", reply.text());
        json_body(reply).await
    }

    /// Shows a task.
    pub async fn show_task(&self, token: &str, id: &str) -> Reply {
        self.request(Method::GET, &format!("/v2/tasks/{id}"), Some(token))
            .header("Accept", "application/json")
            .checked()
            .await
    }

    /// Lists tasks with a query string (without `?`).
    pub async fn list_tasks(&self, token: &str, query: &str) -> Reply {
        self.request(Method::GET, &format!("/v2/tasks?{query}"), Some(token))
            .header("Accept", "application/json")
            .checked()
            .await
    }

    /// `PUT /v2/images/{id}/stage` with the whole body.
    pub async fn stage(&self, token: &str, id: &str, data: Vec<u8>) -> Reply {
        self.request(Method::PUT, &format!("/v2/images/{id}/stage"), Some(token))
            .header("Content-Type", "application/octet-stream")
            .body(data)
            .checked()
            .await
    }

    /// `POST /v2/images/{id}/import` with `body`.
    pub async fn import_image(&self, token: &str, id: &str, body: Value) -> Reply {
        self.request(
            Method::POST,
            &format!("/v2/images/{id}/import"),
            Some(token),
        )
        .json(&body)
        .checked()
        .await
    }

    /// `GET /v2/images/{id}/tasks`.
    pub async fn image_tasks(&self, token: &str, id: &str) -> Reply {
        self.request(Method::GET, &format!("/v2/images/{id}/tasks"), Some(token))
            .checked()
            .await
    }

    /// Polls an image until its import ended (up to 120 s): active, or with
    /// `os_glance_failed_import` set, and no import holding it. Returns the image document.
    pub async fn imported(&self, token: &str, id: &str) -> Value {
        for _ in 0..1200 {
            let image = json_body(self.show_image(token, id).await).await;
            let failed = image
                .get("os_glance_failed_import")
                .is_some_and(|f| f.as_str() != Some(""));
            let held = image.get("os_glance_import_task").is_some();
            if (image["status"] == "active" || failed) && !held {
                return image;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "image {id} was not imported within 120 s; log:\n{}",
            self.log()
        );
    }

    /// Creates a task and returns its document once it is final.
    pub async fn run_task(&self, token: &str, body: Value) -> Value {
        let task = self.new_task(token, body).await;
        self.finished_task(token, task["id"].as_str().unwrap())
            .await
    }

    /// Polls a task until it is final (up to 120 s) and returns its document.
    pub async fn finished_task(&self, token: &str, id: &str) -> Value {
        for _ in 0..1200 {
            let task = json_body(self.show_task(token, id).await).await;
            if matches!(task["status"].as_str(), Some("success" | "failure")) {
                return task;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "task {id} did not finish within 120 s; log:\n{}",
            self.log()
        );
    }

    /// A second server on this server's data (same database, files, table, bucket and queue),
    /// so two workers drain one queue.
    pub async fn start_beside(&self, env: &[(&str, &str)]) -> Server {
        let shared = DataDir {
            dir: tempfile::tempdir().unwrap(),
            backend: self.data.backend.clone(),
        };
        let mut env: Vec<(&str, &str)> = env.to_vec();
        let data_dir = self.data.path().to_string_lossy().into_owned();
        env.push(("CLOUD_IMAGES_DATA_DIR", &data_dir));
        Server::start_in(shared, &env).await
    }

    /// The data directory of this server.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Uploads in progress or abandoned in the image store: partial files on the embedded
    /// backend, multipart uploads on S3.
    pub async fn partial_files(&self) -> Vec<String> {
        match self.data.bucket() {
            Some(bucket) => s3_incomplete_uploads(bucket).await,
            None => self
                .files_in_store()
                .into_iter()
                .filter(|name| name.starts_with('.'))
                .collect(),
        }
    }

    /// Uploads in progress or abandoned of one image (on a deployment shared by many tests,
    /// the others' uploads are theirs).
    pub async fn partial_files_of(&self, image: &str) -> Vec<String> {
        let mut partial = self.partial_files().await;
        partial.retain(|name| name.contains(image));
        partial
    }

    /// Everything in the image store, committed or not.
    pub async fn stored_objects(&self) -> Vec<String> {
        match self.data.bucket() {
            Some(bucket) => {
                let mut objects = s3_objects(bucket).await;
                objects.extend(s3_incomplete_uploads(bucket).await);
                objects
            }
            None => self.files_in_store(),
        }
    }

    /// Whether store `store` holds data of `image` (committed; a file or an object named by
    /// the image id).
    pub async fn store_holds(&self, store: &str, image: &str) -> bool {
        match self.data.store_location(store) {
            StoreAt::Bucket(bucket, prefix) => s3_objects(&bucket)
                .await
                .iter()
                .any(|key| *key == format!("{prefix}{image}")),
            StoreAt::Directory(dir) => dir.join(image).is_file(),
        }
    }

    /// Makes store `store` fail every write from now on: its directory or bucket is removed.
    pub async fn break_store(&self, store: &str) {
        match self.data.store_location(store) {
            StoreAt::Bucket(bucket, _) => {
                let client = s3().await;
                for key in s3_objects(&bucket).await {
                    client
                        .delete_object()
                        .bucket(&bucket)
                        .key(key)
                        .send()
                        .await
                        .unwrap();
                }
                client.delete_bucket().bucket(&bucket).send().await.unwrap();
            }
            StoreAt::Directory(dir) => std::fs::remove_dir_all(dir).unwrap(),
        }
    }

    /// Polls an image until no import holds it (up to 120 s), and returns it.
    pub async fn import_ended(&self, token: &str, id: &str) -> Value {
        for _ in 0..1200 {
            let image = json_body(self.show_image(token, id).await).await;
            if image.get("os_glance_import_task").is_none() && image["status"] != "importing" {
                return image;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "the import of {id} did not end within 120 s; log:\n{}",
            self.log()
        );
    }

    /// Staged data of one image left in the store (a file in the staging directory, or the
    /// staging object and its incomplete uploads in the bucket).
    pub async fn staged_of(&self, image: &str) -> Vec<String> {
        match self.data.bucket() {
            Some(bucket) => {
                let mut objects = s3_objects(bucket).await;
                objects.extend(s3_incomplete_uploads(bucket).await);
                objects.retain(|key| key.contains("staging") && key.contains(image));
                objects
            }
            None => std::fs::read_dir(self.data.path().join("images").join("staging"))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|name| name.contains(image))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn files_in_store(&self) -> Vec<String> {
        std::fs::read_dir(self.data.path().join("images"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// PUTs part `number` of `data` to its URL as a client without credentials would.
pub async fn put_part(upload: &Value, number: usize, data: &[u8]) {
    let part_size = upload["part_size"].as_u64().unwrap() as usize;
    let part = &upload["parts"][number - 1];
    assert_eq!(part["part_number"], number);
    let first = (number - 1) * part_size;
    let bytes = data[first..data.len().min(first + part_size)].to_vec();
    assert_eq!(part["size"], bytes.len());
    let sent = reqwest::Client::new()
        .put(part["url"].as_str().unwrap())
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK, "part {number}");
}

/// Makes a fixed VHD of `raw` with qemu-img (installed by .ci/run from qemu-utils).
pub fn fixed_vhd(raw: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("disk.raw"), raw).unwrap();
    qemu_img(
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            "subformat=fixed,force_size=on",
            "disk.raw",
            "disk.vhd",
        ],
        dir.path(),
    );
    std::fs::read(dir.path().join("disk.vhd")).unwrap()
}

/// Runs qemu-img in `dir` (installed by .ci/run from Debian's qemu-utils) and returns its
/// standard output.
pub fn qemu_img(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("qemu-img is installed");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The hex digest a coreutils tool (`md5sum`, `sha512sum`) prints for `data`: an
/// independent check of what the server computed.
pub fn tool_digest(tool: &str, data: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), data).unwrap();
    let out = std::process::Command::new(tool)
        .arg(file.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// Deterministic pseudo-random bytes, so failures are reproducible.
pub fn sample_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The `id`s of an image list body.
pub fn ids_of(page: &Value) -> Vec<String> {
    page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The `id` of an image document.
pub fn id_of(image: &Value) -> String {
    image["id"].as_str().unwrap().to_owned()
}

/// A server with three callers: `alice` (member of acme), `bob` (member of globex) and the
/// first administrator.
pub struct World {
    /// The server.
    pub server: Server,
    /// alice's token.
    pub alice: String,
    /// acme's tenant id.
    pub acme: String,
    /// bob's token.
    pub bob: String,
    /// globex's tenant id.
    pub globex: String,
    /// The administrator's token.
    pub admin: String,
}

impl World {
    /// Sends `method path` with `token` and no body.
    pub async fn call(&self, method: Method, path: &str, token: &str) -> Reply {
        self.server
            .request(method, path, Some(token))
            .checked()
            .await
    }

    /// Starts a server with default settings and the three callers.
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    /// Starts a server with extra environment and the three callers.
    pub async fn with_env(env: &[(&str, &str)]) -> Self {
        Self::on(DataDir::new(), env).await
    }

    /// Starts a server keeping two stores ([`DataDir::with_two_stores`]).
    pub async fn with_two_stores() -> Self {
        Self::on(DataDir::with_two_stores(), &[]).await
    }

    async fn on(data: DataDir, env: &[(&str, &str)]) -> Self {
        let server = Server::start_in(data, env).await;
        let (alice, bob) = tokio::join!(
            server.account("acme", "alice", "member"),
            server.account("globex", "bob", "member")
        );
        let admin_account = server.first_admin.clone().unwrap();
        let (alice_token, bob_token, admin) = tokio::join!(
            server.token(&alice),
            server.token(&bob),
            server.token(&admin_account)
        );
        Self {
            acme: alice.tenant_id,
            globex: bob.tenant_id,
            alice: alice_token,
            bob: bob_token,
            admin,
            server,
        }
    }
}

/// An upload driven by hand over a raw socket, to test what HTTP clients cannot easily do:
/// stop halfway, disconnect, or keep sending after the server has answered.
pub struct RawUpload {
    reader: tokio::net::tcp::OwnedReadHalf,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl RawUpload {
    /// Sends the request head of a chunked `PUT .../file`.
    pub async fn start(server: &Server, token: &str, id: &str) -> Self {
        Self::start_to(server, token, id, "file").await
    }

    /// Sends the request head of a chunked `PUT /v2/images/{id}/{what}` (`file` or `stage`).
    pub async fn start_to(server: &Server, token: &str, id: &str, what: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let address = server.root.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (reader, mut writer) = stream.into_split();
        let head = format!(
            "PUT /v2/images/{id}/{what} HTTP/1.1\r\nHost: {address}\r\nX-Auth-Token: {token}\r\n\
             Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nAccept: application/json\r\n\r\n"
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        Self { reader, writer }
    }

    /// Sends one chunk; false once the server no longer accepts bytes.
    pub async fn send(&mut self, data: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        let framed = [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
        self.writer.write_all(&framed).await.is_ok()
    }

    /// Sends the final empty chunk and reads the response status line.
    pub async fn finish(mut self) -> String {
        use tokio::io::AsyncWriteExt;
        let _ = self.writer.write_all(b"0\r\n\r\n").await;
        self.response().await
    }

    /// Sends the final empty chunk (if the server still reads) and reads the whole response:
    /// its status and body, however early the server answered.
    pub async fn reply(mut self) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = self.writer.write_all(b"0\r\n\r\n").await;
        let mut received = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while !response_complete(&received) {
            match tokio::time::timeout_at(deadline, self.reader.read(&mut buffer)).await {
                Ok(Ok(read)) if read > 0 => received.extend_from_slice(&buffer[..read]),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&received).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    }

    /// Reads the status line of the response (waiting up to 30 s).
    pub async fn response(&mut self) -> String {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 4096];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.reader.read(&mut buffer),
        )
        .await
        .expect("no response within 30 s")
        .unwrap_or(0);
        String::from_utf8_lossy(&buffer[..read])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Whether `received` holds a response head and the whole body its Content-Length announces.
fn response_complete(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    length.is_some_and(|length| body.len() >= length) || head.starts_with("HTTP/1.1 204")
}

/// Polls an image until `check` holds (up to 10 s), returning its last document.
pub async fn eventually(
    server: &Server,
    token: &str,
    id: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..200 {
        let image = json_body(server.show_image(token, id).await).await;
        if check(&image) {
            return image;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("image {id} never reached the expected state");
}

/// Typed calls to the members API.
impl Server {
    /// `POST /v2/images/{id}/members`.
    pub async fn add_member(&self, token: &str, id: &str, member: &str) -> Reply {
        self.request(
            Method::POST,
            &format!("/v2/images/{id}/members"),
            Some(token),
        )
        .json(&json!({ "member": member }))
        .checked()
        .await
    }

    /// `GET /v2/images/{id}/members`.
    pub async fn list_members(&self, token: &str, id: &str) -> Reply {
        self.request(
            Method::GET,
            &format!("/v2/images/{id}/members"),
            Some(token),
        )
        .checked()
        .await
    }

    /// `GET /v2/images/{id}/members/{member}`.
    pub async fn show_member(&self, token: &str, id: &str, member: &str) -> Reply {
        self.request(
            Method::GET,
            &format!("/v2/images/{id}/members/{member}"),
            Some(token),
        )
        .checked()
        .await
    }

    /// `PUT /v2/images/{id}/members/{member}` with a new status.
    pub async fn set_member_status(
        &self,
        token: &str,
        id: &str,
        member: &str,
        status: &str,
    ) -> Reply {
        self.request(
            Method::PUT,
            &format!("/v2/images/{id}/members/{member}"),
            Some(token),
        )
        .json(&json!({ "status": status }))
        .checked()
        .await
    }

    /// `DELETE /v2/images/{id}/members/{member}`.
    pub async fn remove_member(&self, token: &str, id: &str, member: &str) -> Reply {
        self.request(
            Method::DELETE,
            &format!("/v2/images/{id}/members/{member}"),
            Some(token),
        )
        .checked()
        .await
    }
}

/// Where a store keeps data.
enum StoreAt {
    Directory(PathBuf),
    Bucket(String, String),
}

/// The service's own SDK configuration (its one HTTP client: this build has no default).
async fn s3() -> aws_sdk_s3::Client {
    cloud_images_aws::s3_client(&cloud_images_aws::load_config().await)
}

async fn s3_objects(bucket: &str) -> Vec<String> {
    let listed = s3()
        .await
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn s3_incomplete_uploads(bucket: &str) -> Vec<String> {
    let listed = s3()
        .await
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    listed
        .uploads()
        .iter()
        .filter_map(|u| u.key().map(|k| format!("incomplete upload of {k}")))
        .collect()
}

/// A tenant's own S3-compatible storage for linked containers: the second emulator that
/// `scripts/linked-storage.sh up` starts (and scripts/test starts for every run), with the
/// keys of a user who may use only its bucket.
pub struct TenantStorage {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The tenant's bucket.
    pub bucket: String,
    /// The tenant's access key id.
    pub key_id: String,
    /// The tenant's secret key.
    pub secret: String,
    /// A role the service may assume for any of its tenants.
    pub role: String,
    /// A role set up for another tenant of the service only.
    pub foreign_role: String,
    /// A role that may not use the bucket.
    pub powerless_role: String,
}

impl TenantStorage {
    /// The storage scripts/linked-storage.sh described in the environment.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is unset: run eval \"$(bash scripts/linked-storage.sh up)\" first (scripts/test does)")
            })
        };
        Self {
            endpoint: var("CLOUD_IMAGES_TEST_LINKED_ENDPOINT"),
            bucket: var("CLOUD_IMAGES_TEST_LINKED_BUCKET"),
            key_id: var("CLOUD_IMAGES_TEST_LINKED_KEY_ID"),
            secret: var("CLOUD_IMAGES_TEST_LINKED_SECRET"),
            role: var("CLOUD_IMAGES_TEST_LINKED_ROLE"),
            foreign_role: var("CLOUD_IMAGES_TEST_LINKED_FOREIGN_ROLE"),
            powerless_role: var("CLOUD_IMAGES_TEST_LINKED_POWERLESS_ROLE"),
        }
    }

    /// The port the storage listens on.
    pub fn port(&self) -> String {
        self.endpoint.rsplit(':').next().unwrap().to_owned()
    }

    /// An S3 client with the tenant's keys, as the tenant's own tools would use.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let sdk = cloud_images_aws::load_config().await;
        let credentials =
            aws_sdk_s3::config::Credentials::new(&self.key_id, &self.secret, None, None, "tenant");
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(credentials)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The `{"link": ...}` body that links a container to `prefix` of the bucket through
    /// `role`.
    pub fn link_role(&self, prefix: &str, role: &str) -> Value {
        json!({"link": {
            "endpoint": self.endpoint, "bucket": self.bucket, "prefix": prefix, "role_arn": role,
        }})
    }

    /// The `{"link": ...}` body that links a container to `prefix` of the bucket.
    pub fn link(&self, prefix: &str) -> Value {
        json!({"link": {
            "endpoint": self.endpoint, "bucket": self.bucket, "prefix": prefix,
            "access_key_id": self.key_id, "secret_access_key": self.secret,
        }})
    }
}
