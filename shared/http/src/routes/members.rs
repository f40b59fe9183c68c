//! Image members: `/v2/images/{image_id}/members[/{member_id}]`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::get;
use cloud_images_domain::member::Member;
use cloud_images_service::MemberService;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RouteTable, mount};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{Common, Group};
use crate::views;

/// The member collection of an image and each member in it.
pub fn table() -> RouteTable<Group<MemberService>> {
    vec![
        ("/v2/images/{image_id}/members", get(list).post(create)),
        (
            "/v2/images/{image_id}/members/{member_id}",
            get(show).put(update).delete(remove),
        ),
    ]
}

/// The members routes over their service.
pub fn router(common: Common, service: MemberService) -> Router {
    mount(table(), Group { common, service })
}

fn member_document(member: &Member) -> Value {
    json!({
        "image_id": member.image_id.to_string(),
        "member_id": member.member_id,
        "status": member.status.as_str(),
        "created_at": views::time(&member.created_at),
        "updated_at": views::time(&member.updated_at),
        "schema": "/v2/schemas/member",
    })
}

#[derive(Deserialize)]
struct NewMember {
    member: String,
}

#[derive(Deserialize)]
struct StatusChange {
    status: String,
}

async fn create(
    State(state): State<Group<MemberService>>,
    Authenticated(caller): Authenticated,
    Path(image_id): Path<String>,
    JsonBody(body): JsonBody<NewMember>,
) -> Result<Json<Value>, ApiError> {
    let member = state
        .service
        .add_member(&caller, &image_id, &body.member)
        .await?;
    Ok(Json(member_document(&member)))
}

async fn list(
    State(state): State<Group<MemberService>>,
    Authenticated(caller): Authenticated,
    Path(image_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let members: Vec<Value> = state
        .service
        .list_members(&caller, &image_id)
        .await?
        .iter()
        .map(member_document)
        .collect();
    Ok(Json(
        json!({ "members": members, "schema": "/v2/schemas/members" }),
    ))
}

async fn show(
    State(state): State<Group<MemberService>>,
    Authenticated(caller): Authenticated,
    Path((image_id, member_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(member_document(
        &state
            .service
            .show_member(&caller, &image_id, &member_id)
            .await?,
    )))
}

async fn update(
    State(state): State<Group<MemberService>>,
    Authenticated(caller): Authenticated,
    Path((image_id, member_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<StatusChange>,
) -> Result<Json<Value>, ApiError> {
    let member = state
        .service
        .update_member(&caller, &image_id, &member_id, &body.status)
        .await?;
    Ok(Json(member_document(&member)))
}

async fn remove(
    State(state): State<Group<MemberService>>,
    Authenticated(caller): Authenticated,
    Path((image_id, member_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .remove_member(&caller, &image_id, &member_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
