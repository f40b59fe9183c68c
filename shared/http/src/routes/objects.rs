//! The object API: the subset of OpenStack Object Storage (Swift) v1 that python-swiftclient
//! needs, over the caller's own account `/v1/AUTH_<tenant>`, and `/info` for its discovery
//! of Static Large Objects.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::header::{
    ACCEPT, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
    LOCATION,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use cloud_images_domain::DomainError;
use cloud_images_domain::containers::{
    AccountUsage, ContainerRecord, ListQuery, Listed, MAX_LISTING, MAX_MANIFEST_BYTES,
    MAX_SEGMENTS, ObjectRecord,
};
use cloud_images_domain::task::ObjectPath;
use cloud_images_service::ContainerService;
use cloud_images_service::containers::{NewObject, listing_time};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::image_data::{parse_range, refused};
use super::{RouteTable, mount};
use crate::caller::Authenticated;
use crate::drain::KeptBody;
use crate::error::ApiError;
use crate::state::{Common, Group};

type Objects = State<Group<ContainerService>>;

/// `/info`, the account, its containers and their objects. Object uploads lift the JSON
/// body cap: their bytes are streamed to storage, never buffered.
pub fn table() -> RouteTable<Group<ContainerService>> {
    vec![
        ("/info", get(info)),
        ("/v1/{account}", get(list_account).head(head_account)),
        // openstacksdk lists an account at its endpoint with a trailing slash.
        ("/v1/{account}/", get(list_account).head(head_account)),
        (
            "/v1/{account}/{container}",
            get(list_container)
                .head(head_container)
                .put(create_container)
                .delete(delete_container),
        ),
        (
            "/v1/{account}/{container}/{*object}",
            get(download)
                .head(head_object)
                .put(upload)
                .layer(DefaultBodyLimit::disable())
                .delete(delete_object),
        ),
    ]
}

/// The object routes over their service. A `/v1/...` path whose account is not
/// `AUTH_<tenant>` is Glance's v1 API, which is not offered: it gets the version
/// negotiation every unrouted version gets.
pub fn router(common: Common, service: ContainerService) -> Router {
    let public_url = common.settings.public_url.clone();
    mount(table(), Group { common, service }).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let public_url = public_url.clone();
            async move {
                let account = request.uri().path().split('/').nth(2).unwrap_or_default();
                if request.uri().path().starts_with("/v1/") && !account.starts_with("AUTH_") {
                    let (uri, headers) = (request.uri().clone(), request.headers().clone());
                    return super::discovery::unmatched(uri, headers, public_url).await;
                }
                next.run(request).await
            }
        },
    ))
}

/// What `/info` tells swiftclient: that Static Large Objects are offered, and their limits.
async fn info() -> Json<Value> {
    Json(json!({
        "swift": { "version": "2.0.0", "container_listing_limit": MAX_LISTING, "max_object_name_length": 1024 },
        "slo": { "max_manifest_segments": MAX_SEGMENTS, "max_manifest_size": MAX_MANIFEST_BYTES, "min_segment_size": 1 },
    }))
}

/// The tenant id in `AUTH_<tenant>` (the router sent every other `/v1/...` elsewhere).
fn account_id(account: &str) -> Result<&str, ApiError> {
    account.strip_prefix("AUTH_").ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("'{account}' is not an account; accounts are AUTH_<your tenant id>"),
        )
    })
}

#[derive(Deserialize, Default)]
struct ListParams {
    format: Option<String>,
    prefix: Option<String>,
    delimiter: Option<String>,
    marker: Option<String>,
    end_marker: Option<String>,
    // Text, so that a limit too big for a number is capped rather than refused.
    limit: Option<String>,
}

impl ListParams {
    fn query(&self) -> Result<ListQuery, ApiError> {
        Ok(ListQuery::new(
            self.prefix.clone(),
            self.delimiter.clone(),
            self.marker.clone(),
            self.end_marker.clone(),
            self.limit()?,
        )?)
    }

    /// `limit` as a count: any run of digits, capped at the largest count there is.
    fn limit(&self) -> Result<Option<usize>, ApiError> {
        self.limit
            .as_deref()
            .map(|raw| {
                if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ApiError::bad_request(
                        "limit must be a non-negative integer",
                    ));
                }
                Ok(raw.parse::<usize>().unwrap_or(usize::MAX))
            })
            .transpose()
    }

    /// Whether the client asked for JSON (`format=json` or `Accept: application/json`)
    /// rather than plain text (`format=plain`); other formats are refused.
    fn json(&self, headers: &HeaderMap) -> Result<bool, ApiError> {
        match self.format.as_deref() {
            Some("json") => Ok(true),
            Some("plain") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "format '{other}' is not offered; ask for json or plain"
            ))),
            None => Ok(headers
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/json"))),
        }
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    format!("{}.{:05}", t.timestamp(), t.timestamp_subsec_micros() / 10)
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn insert(response: &mut Response, name: impl Into<HeaderName>, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name.into(), value);
    }
}

fn account_headers(response: &mut Response, usage: &AccountUsage) {
    insert(
        response,
        HeaderName::from_static("x-account-container-count"),
        &usage.containers.to_string(),
    );
    insert(
        response,
        HeaderName::from_static("x-account-object-count"),
        &usage.objects.to_string(),
    );
    insert(
        response,
        HeaderName::from_static("x-account-bytes-used"),
        &usage.bytes.to_string(),
    );
}

fn container_headers(response: &mut Response, container: &ContainerRecord) {
    insert(
        response,
        HeaderName::from_static("x-container-object-count"),
        &container.objects.to_string(),
    );
    insert(
        response,
        HeaderName::from_static("x-container-bytes-used"),
        &container.bytes.to_string(),
    );
    insert(
        response,
        HeaderName::from_static("x-timestamp"),
        &timestamp(container.created_at),
    );
    if let Some(link) = &container.link {
        let place = format!("{} {}/{}", link.endpoint, link.bucket, link.prefix);
        insert(
            response,
            HeaderName::from_static("x-container-link"),
            &place,
        );
    }
}

/// A listing: a JSON array, or one name per line (204 when there is none).
fn listing(json: bool, entries: Vec<Value>, names: Vec<String>) -> Response {
    if json {
        return Json(Value::Array(entries)).into_response();
    }
    if names.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut body = names.join("\n");
    body.push('\n');
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn list_account(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path(account): Path<String>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (usage, containers) = state
        .service
        .account(&caller, account_id(&account)?, &params.query()?)
        .await?;
    let entries = containers
        .iter()
        .map(|c| container_view(caller.tenant_id.as_str(), c))
        .collect();
    let names = containers.iter().map(|c| c.name.clone()).collect();
    let mut response = listing(params.json(&headers)?, entries, names);
    account_headers(&mut response, &usage);
    Ok(response)
}

async fn head_account(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    let query = ListQuery::new(None, None, None, None, Some(1))?;
    let (usage, _) = state
        .service
        .account(&caller, account_id(&account)?, &query)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    account_headers(&mut response, &usage);
    Ok(response)
}

fn object_entry(record: &ObjectRecord) -> Value {
    json!({
        "name": record.name,
        "hash": record.etag,
        "bytes": record.size,
        "content_type": record.content_type,
        "last_modified": listing_time(record),
    })
}

async fn list_container(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container)): Path<(String, String)>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (record, listed) = state
        .service
        .list(&caller, account_id(&account)?, &container, &params.query()?)
        .await?;
    let entries = listed
        .iter()
        .map(|entry| match entry {
            Listed::Object(o) => object_entry(o),
            Listed::Subdir(s) => json!({ "subdir": s }),
        })
        .collect();
    let names = listed
        .into_iter()
        .map(|entry| match entry {
            Listed::Object(o) => o.name,
            Listed::Subdir(s) => s,
        })
        .collect();
    let mut response = listing(params.json(&headers)?, entries, names);
    container_headers(&mut response, &record);
    Ok(response)
}

async fn head_container(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state
        .service
        .container(&caller, account_id(&account)?, &container)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    container_headers(&mut response, &record);
    Ok(response)
}

/// `PUT` a container: a built-in one (Swift's empty body), or, with `{"link": {...}}`, a
/// linked one standing for a bucket of the tenant's own storage.
async fn create_container(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let account = account_id(&account)?;
    if !body.is_empty() {
        let record = state
            .service
            .link(&caller, account, &container, &body)
            .await?;
        let mut response = (
            StatusCode::CREATED,
            Json(json!({ "container": container_view(caller.tenant_id.as_str(), &record) })),
        )
            .into_response();
        container_headers(&mut response, &record);
        return Ok(response);
    }
    let created = state
        .service
        .create_container(&caller, account, &container)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    // As Swift answers: an empty HTML body.
    Ok((status, [(CONTENT_TYPE, "text/html; charset=UTF-8")], "").into_response())
}

/// A container as listings show it; a linked one with its place (never its secret).
fn container_view(tenant: &str, c: &ContainerRecord) -> Value {
    let mut view = json!({
        "name": c.name, "count": c.objects, "bytes": c.bytes,
        "last_modified": c.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
    });
    if let Some(link) = &c.link {
        let mut shown = json!({
            "endpoint": link.endpoint, "region": link.region, "bucket": link.bucket,
            "prefix": link.prefix,
        });
        if let Some(id) = &link.access_key_id {
            shown["access_key_id"] = json!(id);
        }
        if let Some(role) = &link.role_arn {
            shown["role_arn"] = json!(role);
            shown["external_id"] = json!(cloud_images_domain::links::external_id(tenant));
        }
        view["link"] = shown;
    }
    view
}

async fn delete_container(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .delete_container(&caller, account_id(&account)?, &container)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
struct ObjectParams {
    #[serde(rename = "multipart-manifest")]
    multipart_manifest: Option<String>,
}

fn object_path(container: &str, object: &str) -> Result<ObjectPath, ApiError> {
    Ok(ObjectPath::new(container, object, "object")?)
}

/// The ETag as Swift sends it: quoted for a Static Large Object, bare otherwise.
fn etag_header(record: &ObjectRecord) -> String {
    if record.manifest.is_some() {
        format!("\"{}\"", record.etag)
    } else {
        record.etag.clone()
    }
}

fn object_headers(response: &mut Response, record: &ObjectRecord) {
    insert(response, ETAG, &etag_header(record));
    insert(response, LAST_MODIFIED, &http_date(record.last_modified));
    insert(
        response,
        HeaderName::from_static("x-timestamp"),
        &timestamp(record.last_modified),
    );
    insert(response, CONTENT_TYPE, &record.content_type);
    insert(response, ACCEPT_RANGES, "bytes");
    if record.manifest.is_some() {
        insert(
            response,
            HeaderName::from_static("x-static-large-object"),
            "True",
        );
    }
}

async fn head_object(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container, object)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let path = object_path(&container, &object)?;
    let record = state
        .service
        .head(&caller, account_id(&account)?, &path)
        .await?;
    let mut response = StatusCode::OK.into_response();
    object_headers(&mut response, &record);
    insert(&mut response, CONTENT_LENGTH, &record.size.to_string());
    Ok(response)
}

async fn download(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container, object)): Path<(String, String, String)>,
    Query(params): Query<ObjectParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = account_id(&account)?;
    let path = object_path(&container, &object)?;
    if params.multipart_manifest.as_deref() == Some("get") {
        let record = state.service.head(&caller, account, &path).await?;
        if let Some(manifest) = record.manifest.clone() {
            let mut response = manifest.into_response();
            object_headers(&mut response, &record);
            insert(
                &mut response,
                CONTENT_TYPE,
                "application/json; charset=utf-8",
            );
            return Ok(response);
        }
    }
    let range = parse_range(&headers)?;
    let download = state
        .service
        .download(&caller, account, &path, range)
        .await?;
    if let Some(url) = download.redirect {
        let mut response = StatusCode::FOUND.into_response();
        insert(&mut response, LOCATION, &url);
        return Ok(response);
    }
    let size = download.record.size;
    let (status, length) = match download.range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
        None => (StatusCode::OK, size),
    };
    let body = download.body.map_or_else(Body::empty, Body::from_stream);
    let mut response = (status, body).into_response();
    object_headers(&mut response, &download.record);
    insert(&mut response, CONTENT_LENGTH, &length.to_string());
    if let Some(r) = download.range {
        insert(
            &mut response,
            CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", r.first, r.last),
        );
    }
    Ok(response)
}

fn header(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

async fn upload(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container, object)): Path<(String, String, String)>,
    Query(params): Query<ObjectParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let account = account_id(&account)?;
    let path = object_path(&container, &object)?;
    let content_type = header(&headers, CONTENT_TYPE);
    let kept = KeptBody::new(body);
    let stored = if params.multipart_manifest.as_deref() == Some("put") {
        match read_manifest(&kept).await {
            Ok(manifest) => {
                state
                    .service
                    .upload_manifest(&caller, account, &path, content_type, &manifest)
                    .await
            }
            Err(e) => Err(e),
        }
    } else {
        let stream = kept
            .stream()
            .map_err(|e| DomainError::Invalid(format!("The upload was interrupted: {e}")));
        let object = NewObject {
            path,
            content_type,
            expected_etag: header(&headers, ETAG),
            announced_size: header(&headers, CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        };
        state
            .service
            .upload(&caller, account, object, Box::pin(stream))
            .await
    };
    let record = match stored {
        Ok(record) => record,
        Err(e) => return Err(refused(kept, e).await),
    };
    let mut response = StatusCode::CREATED.into_response();
    insert(&mut response, ETAG, &etag_header(&record));
    insert(
        &mut response,
        LAST_MODIFIED,
        &http_date(record.last_modified),
    );
    insert(&mut response, CONTENT_TYPE, "text/html; charset=UTF-8");
    Ok(response)
}

/// A manifest body, at most [`MAX_MANIFEST_BYTES`].
async fn read_manifest(kept: &KeptBody) -> Result<Vec<u8>, DomainError> {
    let mut manifest = Vec::new();
    let mut stream = std::pin::pin!(kept.stream());
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| DomainError::Invalid(format!("The manifest upload was interrupted: {e}")))?
    {
        if manifest.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(DomainError::Invalid(format!(
                "The manifest is larger than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        manifest.extend_from_slice(&chunk);
    }
    Ok(manifest)
}

async fn delete_object(
    State(state): Objects,
    Authenticated(caller): Authenticated,
    Path((account, container, object)): Path<(String, String, String)>,
    Query(params): Query<ObjectParams>,
) -> Result<Response, ApiError> {
    let path = object_path(&container, &object)?;
    let segments = params.multipart_manifest.as_deref() == Some("delete");
    let deleted = state
        .service
        .delete(&caller, account_id(&account)?, &path, segments)
        .await?;
    if segments {
        return Ok(Json(json!({
            "Number Deleted": deleted, "Number Not Found": 0,
            "Response Status": "200 OK", "Response Body": "", "Errors": [],
        }))
        .into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
