//! Interoperable image import: `POST /v2/images/{image_id}/import`, the image's tasks, the
//! discovery of methods and stores (`/v2/info/...`), and `DELETE /v2/stores/{store}/{image}`.
//! Staging (`PUT .../stage`) is image data, served with `.../file`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use axum::routing::{delete, get, post};
use cloud_images_domain::import::ImportRequest;
use cloud_images_service::ImportService;
use serde_json::{Value, json};

use super::{RouteTable, mount};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{Common, Group};
use crate::views;

/// The import routes.
pub fn table() -> RouteTable<Group<ImportService>> {
    vec![
        ("/v2/images/{image_id}/import", post(import)),
        ("/v2/images/{image_id}/tasks", get(image_tasks)),
        ("/v2/info/import", get(import_info)),
        ("/v2/info/stores", get(stores_info)),
        ("/v2/info/stores/detail", get(stores_detail)),
        (
            "/v2/stores/{store_id}/{image_id}",
            delete(delete_from_store),
        ),
    ]
}

/// The import routes over their service.
pub fn router(common: Common, service: ImportService) -> Router {
    mount(table(), Group { common, service })
}

/// 202 with an empty body, as Glance answers; the import goes on in a task.
async fn import(
    State(state): State<Group<ImportService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    let store_header = super::store_header(&headers)?;
    let service = &state.service;
    let request = ImportRequest::parse(&body, store_header, &service.offer().methods)?;
    service.import(&caller, &id, request).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn image_tasks(
    State(state): State<Group<ImportService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tasks = state.service.image_tasks(&caller, &id).await?;
    let views: Vec<_> = tasks.iter().map(views::task).collect();
    Ok(Json(json!({ "tasks": views })))
}

async fn import_info(
    State(state): State<Group<ImportService>>,
    Authenticated(_caller): Authenticated,
) -> Json<Value> {
    let methods: Vec<&str> = state
        .service
        .offer()
        .methods
        .iter()
        .map(|m| m.as_str())
        .collect();
    Json(json!({
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": methods,
        }
    }))
}

async fn stores_info(
    State(state): State<Group<ImportService>>,
    Authenticated(_caller): Authenticated,
) -> Json<Value> {
    Json(json!({ "stores": views::stores(&state.service.offer().stores, false) }))
}

/// The stores with their types and properties: administrators only, as in Glance.
async fn stores_detail(
    State(state): State<Group<ImportService>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Only administrators may see the stores' details",
        ));
    }
    Ok(Json(
        json!({ "stores": views::stores(&state.service.offer().stores, true) }),
    ))
}

async fn delete_from_store(
    State(state): State<Group<ImportService>>,
    Authenticated(caller): Authenticated,
    Path((store, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .delete_from_store(&caller, &store, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
