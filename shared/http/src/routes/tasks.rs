//! Task routes: create (which queues the task), list and show. There is no DELETE: finished
//! tasks expire on their own.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use cloud_images_domain::task::NewTask;
use cloud_images_service::TaskService;
use serde_json::Value;

use super::{RouteTable, created, mount};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::routes::images::{page_links, query_pairs};
use crate::state::{Common, Group};
use crate::views;

/// `/v2/tasks` and `/v2/tasks/{task_id}`.
pub fn table() -> RouteTable<Group<TaskService>> {
    vec![
        ("/v2/tasks", get(list).post(create)),
        ("/v2/tasks/{task_id}", get(show)),
    ]
}

/// The tasks routes over their service.
pub fn router(common: Common, service: TaskService) -> Router {
    mount(table(), Group { common, service })
}

async fn create(
    State(state): State<Group<TaskService>>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object with type and input",
        ));
    };
    let task = state
        .service
        .create(&caller, NewTask::parse(&body)?)
        .await?;
    let path = format!("/v2/tasks/{}", task.id);
    Ok(created(&state.common, &headers, &path, views::task(&task)))
}

async fn show(
    State(state): State<Group<TaskService>>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let task = state.service.show(&caller, &id).await?;
    Ok(Json(views::task(&task)).into_response())
}

async fn list(
    State(state): State<Group<TaskService>>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(raw.as_deref())?;
    let query = state.service.list_query(&pairs)?;
    let (tasks, has_more) = state.service.list(&caller, &query).await?;
    let last = has_more.then(|| tasks.last()).flatten();
    let (first, next) = page_links("/v2/tasks", pairs, last.map(|t| t.id.to_string()));
    let body = views::TaskListView {
        tasks: tasks.iter().map(views::task_stub).collect(),
        first,
        next,
        schema: "/v2/schemas/tasks",
    };
    Ok(Json(body).into_response())
}
