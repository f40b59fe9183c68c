//! Staged uploads: `POST /v2/images/{image_id}/file/parts` hands out part URLs the client
//! `PUT`s the data to, straight to the store; `.../file/complete` joins them and queues the
//! task that checks them and activates the image.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use cloud_images_domain::staging::{CompleteRequest, StageRequest};
use cloud_images_service::StagingService;
use serde_json::{Map, Value};

use super::{RouteTable, located, mount};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{Common, Group};
use crate::views;

/// `/v2/images/{image_id}/file/parts` and `/v2/images/{image_id}/file/complete`.
pub fn table() -> RouteTable<Group<StagingService>> {
    vec![
        ("/v2/images/{image_id}/file/parts", post(stage)),
        ("/v2/images/{image_id}/file/complete", post(complete)),
    ]
}

/// The staging routes over their service.
pub fn router(common: Common, service: StagingService) -> Router {
    mount(table(), Group { common, service })
}

fn json_object(body: Value, expected: &str) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request(format!(
            "The request body must be a JSON object with {expected}"
        ))),
    }
}

/// Starts a staged upload: the part URLs a client `PUT`s the data to, straight to the store.
async fn stage(
    State(state): State<Group<StagingService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let request = StageRequest::parse(&json_object(body, "size")?)?;
    let offer = state.service.stage(&caller, &id, request).await?;
    Ok(Json(views::staged_upload(&offer)).into_response())
}

/// Completes a staged upload: 202 and the task that checks the data and activates the image.
async fn complete(
    State(state): State<Group<StagingService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let request = CompleteRequest::parse(&json_object(body, "upload_id")?)?;
    let store = super::store_header(&headers)?;
    let task = state
        .service
        .complete_staged(&caller, &id, request, store)
        .await?;
    let path = format!("/v2/tasks/{}", task.id);
    Ok(located(
        StatusCode::ACCEPTED,
        &state.common,
        &headers,
        &path,
        views::task(&task),
    ))
}
