//! API version discovery and JSON Schemas.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::{Value, json};

use super::{RouteTable, mount, public_root};
use crate::error::ApiError;
use crate::schemas;
use crate::state::Common;

/// Image API versions offered, newest first; the first is `CURRENT`. 2.6 brought
/// interoperable import, 2.8 stores, 2.12 an image's tasks (`GET /v2/images/{id}/tasks`).
const VERSIONS: &[&str] = &[
    "v2.12", "v2.11", "v2.10", "v2.9", "v2.8", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2",
    "v2.1", "v2.0",
];

/// `GET /`, `GET /versions`, `GET /v2/schemas/{name}` and `GET /openapi.json`.
pub fn table() -> RouteTable<Common> {
    vec![
        ("/", get(root)),
        ("/versions", get(versions)),
        ("/v2/schemas/{name}", get(schema)),
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

async fn schema(Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    schemas::by_name(&name)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("No schema named '{name}'")))
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
