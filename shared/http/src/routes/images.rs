//! Image metadata routes: create, show, list, patch, delete, tags and actions.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use cloud_images_domain::image_patch::{self, Dialect};
use cloud_images_domain::image_rules::NewImage;
use cloud_images_domain::listing::parse_list_query;
use cloud_images_service::ImageService;
use serde_json::Value;

use super::{RouteTable, created, mount};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{Common, Group};
use crate::views;

const PATCH_V2_1: &str = "application/openstack-images-v2.1-json-patch";
const PATCH_V2_0: &str = "application/openstack-images-v2.0-json-patch";

/// `/v2/images`, `/v2/images/{image_id}`, its tags and its actions.
pub fn table() -> RouteTable<Group<ImageService>> {
    vec![
        ("/v2/images", get(list).post(create)),
        (
            "/v2/images/{image_id}",
            get(show).patch(patch).delete(delete),
        ),
        (
            "/v2/images/{image_id}/tags/{tag}",
            put(add_tag).delete(remove_tag),
        ),
        ("/v2/images/{image_id}/actions/deactivate", post(deactivate)),
        ("/v2/images/{image_id}/actions/reactivate", post(reactivate)),
        ("/v2/info/usage", get(usage)),
    ]
}

/// The images routes over their service.
pub fn router(common: Common, service: ImageService) -> Router {
    mount(table(), Group { common, service })
}

async fn create(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(properties) = body else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object of image properties",
        ));
    };
    let image = state
        .service
        .create(&caller, NewImage::parse(properties)?)
        .await?;
    let path = format!("/v2/images/{}", image.id);
    let mut response = created(&state.common, &headers, &path, views::image(&image));
    // Clients (openstacksdk) read these to decide between import and PUT .../file.
    let offer = state.service.import_offer();
    let methods: Vec<&str> = offer.methods.iter().map(|m| m.as_str()).collect();
    let stores: Vec<&str> = offer.stores.stores.iter().map(|s| s.id.as_str()).collect();
    let headers = response.headers_mut();
    for (name, value) in [
        ("openstack-image-import-methods", methods.join(",")),
        ("openstack-image-store-ids", stores.join(",")),
    ] {
        if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(response)
}

async fn show(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let image = state.service.show(&caller, &id).await?;
    Ok(Json(views::image(&image)).into_response())
}

pub(crate) fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("The query string is malformed: {e}")))
}

fn encoded(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// The `first` and `next` links of a list page: every parameter kept, repeated ones
/// included, with the marker swapped for `next_marker` (the last item, when more follow).
pub(crate) fn page_links(
    base: &str,
    pairs: Vec<(String, String)>,
    next_marker: Option<String>,
) -> (String, Option<String>) {
    let mut kept: Vec<(String, String)> =
        pairs.into_iter().filter(|(k, _)| k != "marker").collect();
    let first = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", encoded(&kept))
    };
    let next = next_marker.map(|marker| {
        kept.push(("marker".into(), marker));
        format!("{base}?{}", encoded(&kept))
    });
    (first, next)
}

async fn list(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw.as_deref())?;
    let query = parse_list_query(&pairs, state.service.page_limits())?;
    let page = state.service.list(&caller, &query).await?;
    let last = page.has_more.then(|| page.images.last()).flatten();
    let (first, next) = page_links("/v2/images", pairs, last.map(|i| i.id.to_string()));
    let body = views::ImageListView {
        images: page.images.iter().map(views::image).collect(),
        first,
        next,
        schema: "/v2/schemas/images",
    };
    Ok(Json(body).into_response())
}

fn patch_dialect(headers: &HeaderMap) -> Result<Dialect, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    match media_type {
        PATCH_V2_1 => Ok(Dialect::V2_1),
        PATCH_V2_0 => Ok(Dialect::V2_0),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported Content-Type '{other}'; use {PATCH_V2_1}"),
        )
        .with_header(
            axum::http::HeaderName::from_static("accept-patch"),
            &format!("{PATCH_V2_1}, {PATCH_V2_0}"),
        )),
    }
}

async fn patch(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(document): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let dialect = patch_dialect(&headers)?;
    let ops = image_patch::parse_document(&document, dialect)?;
    let image = state.service.patch(&caller, &id, &ops).await?;
    Ok(Json(views::image(&image)).into_response())
}

async fn delete(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_tag(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.service.add_tag(&caller, &id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_tag(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.service.remove_tag(&caller, &id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deactivate(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.set_deactivated(&caller, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reactivate(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.set_deactivated(&caller, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

const MIB: u64 = 1024 * 1024;

/// `{"usage": …}` as Glance's quota usage API (2.13) shows it: stored bytes in MiB, images
/// by count, each with its limit (-1: none).
async fn usage(
    State(state): State<Group<ImageService>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let (usage, quota) = state.service.usage(&caller).await?;
    let limit = |max: Option<u64>| max.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
    Ok(Json(serde_json::json!({
        "usage": {
            "image_size_total": {
                "usage": usage.bytes / MIB,
                "limit": limit(quota.max_bytes.map(|b| b / MIB)),
            },
            "image_count_total": {
                "usage": usage.images,
                "limit": limit(quota.max_images),
            },
        }
    })))
}
