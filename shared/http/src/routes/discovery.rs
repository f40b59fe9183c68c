//! API version discovery and JSON Schemas.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{RouteTable, mount, public_root, public_root_from};
use crate::error::{ApiError, unknown_route};
use crate::state::Common;
use crate::{metadef_schemas, schemas};

/// Image API versions offered, newest first; the first is `CURRENT`: exactly those whose
/// features are served. 2.6 brought interoperable import, 2.8 stores, 2.10 deleting an
/// image from one store, 2.12 an image's tasks (`GET /v2/images/{id}/tasks`), 2.13 quota
/// usage (`GET /v2/info/usage`). Not 2.14 and later: 2.14, 2.16 and 2.18 are the cache
/// API and 2.17 the locations API, which this service does not have (it does serve 2.15's
/// `GET /v2/info/stores/detail`, but a version promises the ones before it too).
const VERSIONS: &[&str] = &[
    "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3",
    "v2.2", "v2.1", "v2.0",
];

/// `GET /`, `GET /versions`, `GET /v2/schemas/{name}` and `GET /openapi.json`.
pub fn table() -> RouteTable<Common> {
    vec![
        ("/", get(root)),
        ("/versions", get(versions)),
        ("/v2/schemas/{name}", get(schema)),
        ("/v2/schemas/metadefs/{name}", get(metadef_schema)),
        ("/openapi.json", get(openapi)),
    ]
}

/// The discovery routes: they need no service.
pub fn router(common: Common) -> Router {
    mount(table(), common)
}

fn versions_document(root: &str) -> Value {
    let entries: Vec<Value> = VERSIONS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "id": id,
                "status": if i == 0 { "CURRENT" } else { "SUPPORTED" },
                "links": [{ "rel": "self", "href": format!("{root}/v2/") }],
            })
        })
        .collect();
    json!({ "versions": entries })
}

/// Glance answers the root with 300 Multiple Choices.
async fn root(State(state): State<Common>, headers: HeaderMap) -> impl IntoResponse {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(versions_document(&public_root(&state, &headers))),
    )
}

/// The same document with 200: glanceclient refuses a 300 here.
async fn versions(State(state): State<Common>, headers: HeaderMap) -> Json<Value> {
    Json(versions_document(&public_root(&state, &headers)))
}

/// A path no route serves. Under an API version this server does not route (`/v1/...`,
/// `/v4`, `/v2.6/...`) it answers as Glance's version negotiation does: 300 with the versions
/// document, whose links name `/v2/`. Anything else is 404.
pub(crate) async fn unmatched(
    uri: Uri,
    headers: HeaderMap,
    public_url: Option<String>,
) -> Response {
    if names_unrouted_version(uri.path()) {
        let root = public_root_from(public_url.as_deref(), &headers);
        return (StatusCode::MULTIPLE_CHOICES, Json(versions_document(&root))).into_response();
    }
    unknown_route(uri).await.into_response()
}

/// Whether the path's first segment is a version (`v<major>` or `v<major>.<minor>`) other
/// than the ones routed here: `v2` (this API: an unknown path under it is 404), `v2.0` and
/// `v3` (the identity APIs).
fn names_unrouted_version(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let Some(number) = first.strip_prefix('v') else {
        return false;
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let mut parts = number.splitn(2, '.');
    let shaped = parts.next().is_some_and(digits) && parts.next().is_none_or(digits);
    shaped && !matches!(first, "v2" | "v2.0" | "v3")
}

async fn schema(Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    schemas::by_name(&name)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("No schema named '{name}'")))
}

async fn metadef_schema(Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    metadef_schemas::by_name(&name).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No metadefs schema named '{name}'"),
        )
    })
}

/// The OpenAPI 3.1 description of every route, kept beside the handlers.
static OPENAPI: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json is valid JSON")
});

async fn openapi(State(state): State<Common>, headers: HeaderMap) -> Json<Value> {
    let mut document = OPENAPI.clone();
    document["servers"] = json!([{ "url": public_root(&state, &headers) }]);
    Json(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_version_segments_not_routed_here_are_negotiated() {
        for path in [
            "/v1",
            "/v1/images",
            "/v4/images/x",
            "/v2.6/images",
            "/v10.2/",
            "/v3.1/x",
        ] {
            assert!(names_unrouted_version(path), "{path}");
        }
        for path in [
            "/",
            "/v2/nowhere",
            "/v2.0/nowhere",
            "/v3/nowhere",
            "/nowhere",
            "/v",
            "/v2.",
            "/v.2",
            "/vx/images",
            "/v2.6x/images",
            "/version",
            "/v1.2.3/x",
        ] {
            assert!(!names_unrouted_version(path), "{path}");
        }
    }
}
