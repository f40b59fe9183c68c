//! Account administration as Keystone v3 offers it (users and projects), the user's own
//! password change, and Rackspace's API-key reset. Part of the identity route group.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use cloud_images_domain::identity::{Tenant, User};
use cloud_images_service::{Actor, IdentityService, NewUser, Principal, UserChanges};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::identity::{DOMAIN_ID, project_document};
use super::{RouteTable, created, public_root};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::Group;

type IdentityState = State<Group<IdentityService>>;

/// Where Rackspace clients reset a user's API key.
pub const API_KEY_RESET: &str =
    "/v2.0/users/{user_id}/OS-KSADM/credentials/RAX-KSKEY:apiKeyCredentials/RAX-AUTH/reset";

/// Users, projects and credentials.
pub(super) fn table() -> RouteTable<Group<IdentityService>> {
    vec![
        ("/v3/projects", get(list_projects).post(create_project)),
        (
            "/v3/projects/{project_id}",
            get(show_project).delete(delete_project),
        ),
        ("/v3/users", get(list_users).post(create_user)),
        (
            "/v3/users/{user_id}",
            get(show_user).patch(update_user).delete(delete_user),
        ),
        ("/v3/users/{user_id}/password", post(change_password)),
        (API_KEY_RESET, post(reset_api_key)),
    ]
}

/// `?name=`, as clients find a user or project by name.
#[derive(Deserialize)]
struct NameFilter {
    name: Option<String>,
}

fn user_document(root: &str, user: &User, tenant: &Tenant) -> Value {
    json!({
        "id": user.id, "name": user.name, "domain_id": DOMAIN_ID, "enabled": user.enabled,
        "default_project_id": tenant.id, "password_expires_at": null, "options": {},
        "links": { "self": format!("{root}/v3/users/{}", user.id) },
    })
}

fn api_key_document(user: &User, api_key: &str) -> Value {
    json!({ "RAX-KSKEY:apiKeyCredentials": { "username": user.name, "apiKey": api_key } })
}

// ---- projects ----------------------------------------------------------------------------

/// `GET /v3/projects`: every project (or the one named), for administrators.
async fn list_projects(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Query(filter): Query<NameFilter>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let root = public_root(&state.common, &headers);
    let projects: Vec<Value> = state
        .service
        .list_tenants()
        .await?
        .iter()
        .filter(|t| filter.name.as_deref().is_none_or(|n| n == t.name.as_str()))
        .map(|t| project_document(&root, t))
        .collect();
    Ok(Json(
        json!({ "projects": projects, "links": { "self": format!("{root}/v3/projects") } }),
    ))
}

#[derive(Deserialize)]
struct ProjectRequest {
    project: NewProject,
}

#[derive(Deserialize)]
struct NewProject {
    name: String,
}

/// `POST /v3/projects`: a new project, for administrators.
async fn create_project(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ProjectRequest>,
) -> Result<Response, ApiError> {
    let tenant = state
        .service
        .create_project(Actor::Api(&caller), &request.project.name)
        .await?;
    let root = public_root(&state.common, &headers);
    let path = format!("/v3/projects/{}", tenant.id);
    Ok(created(
        &state.common,
        &headers,
        &path,
        json!({ "project": project_document(&root, &tenant) }),
    ))
}

/// `GET /v3/projects/{id}`: the caller's own project, or any for administrators.
async fn show_project(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.service.project(&caller, &id).await?;
    Ok(Json(
        json!({ "project": project_document(&public_root(&state.common, &headers), &tenant) }),
    ))
}

/// `DELETE /v3/projects/{id}`: a project that owns nothing any more, with its users.
async fn delete_project(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .delete_tenant(Actor::Api(&caller), &Principal::Id(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- users -------------------------------------------------------------------------------

/// `GET /v3/users`: every user (or the one named), for administrators. Secrets are never
/// part of the view.
async fn list_users(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Query(filter): Query<NameFilter>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let root = public_root(&state.common, &headers);
    let users: Vec<Value> = state
        .service
        .list_users()
        .await?
        .iter()
        .filter(|(u, _)| filter.name.as_deref().is_none_or(|n| n == u.name.as_str()))
        .map(|(u, t)| user_document(&root, u, t))
        .collect();
    Ok(Json(
        json!({ "users": users, "links": { "self": format!("{root}/v3/users") } }),
    ))
}

#[derive(Deserialize)]
struct UserRequest {
    user: UserFields,
}

/// The fields of a user a request may give; Keystone's others (description, email) are
/// accepted and not kept. Each may be left out, none may be null.
#[derive(Deserialize, Default)]
struct UserFields {
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    password: Option<String>,
    #[serde(default, deserialize_with = "present")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    default_project_id: Option<String>,
}

/// A field given, which must then hold a value: `null` is refused, not read as "left out".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    field: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(field).map(Some)
}

/// `POST /v3/users`: a user in an existing project, with the `member` role. The answer
/// carries its API key (Rackspace's extension), shown this once.
async fn create_user(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    JsonBody(request): JsonBody<UserRequest>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let fields = request.user;
    let (Some(name), Some(project)) = (fields.name, fields.default_project_id) else {
        return Err(ApiError::bad_request(
            "a user needs a name and a default_project_id (the project it belongs to)",
        ));
    };
    let new = NewUser {
        tenant: Principal::Id(project),
        name,
        role: cloud_images_domain::identity::Role::Member,
        password: fields.password,
    };
    let mut created_user = state.service.create_user(new).await?;
    if fields.enabled == Some(false) {
        let disable = UserChanges {
            enabled: Some(false),
            ..UserChanges::default()
        };
        let who = Principal::Id(created_user.user.id.to_string());
        (created_user.user, _) = state
            .service
            .update_user(Actor::Api(&caller), &who, disable)
            .await?;
    }
    let root = public_root(&state.common, &headers);
    let mut document = json!({
        "user": user_document(&root, &created_user.user, &created_user.tenant),
    });
    document["user"]["RAX-KSKEY:apiKeyCredentials"] =
        api_key_document(&created_user.user, &created_user.api_key)["RAX-KSKEY:apiKeyCredentials"]
            .take();
    let path = format!("/v3/users/{}", created_user.user.id);
    Ok(created(&state.common, &headers, &path, document))
}

/// `GET /v3/users/{id}`: the caller itself, or anyone for administrators.
async fn show_user(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (user, tenant) = state
        .service
        .user(Actor::Api(&caller), &Principal::Id(id))
        .await?;
    let root = public_root(&state.common, &headers);
    Ok(Json(
        json!({ "user": user_document(&root, &user, &tenant) }),
    ))
}

/// `PATCH /v3/users/{id}`: rename, enable or disable, or set a password (administrators).
async fn update_user(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UserRequest>,
) -> Result<Json<Value>, ApiError> {
    let fields = request.user;
    let who = Principal::Id(id);
    if let Some(project) = &fields.default_project_id {
        let (_, tenant) = state.service.user(Actor::Api(&caller), &who).await?;
        if *project != tenant.id.as_str() {
            return Err(ApiError::bad_request(
                "a user belongs to one project for good: default_project_id cannot change",
            ));
        }
    }
    let changes = UserChanges {
        name: fields.name,
        enabled: fields.enabled,
        password: fields.password,
        role: None,
    };
    let (user, tenant) = state
        .service
        .update_user(Actor::Api(&caller), &who, changes)
        .await?;
    let root = public_root(&state.common, &headers);
    Ok(Json(
        json!({ "user": user_document(&root, &user, &tenant) }),
    ))
}

/// `DELETE /v3/users/{id}`: for administrators; the user's tokens stop working.
async fn delete_user(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .delete_user(Actor::Api(&caller), &Principal::Id(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct PasswordRequest {
    user: PasswordChange,
}

#[derive(Deserialize)]
struct PasswordChange {
    original_password: String,
    password: String,
}

/// `POST /v3/users/{id}/password`: the user's own change; every session of it ends.
async fn change_password(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<PasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let change = request.user;
    state
        .service
        .change_password(&caller, &id, change.original_password, change.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rackspace's API-key reset, for the user itself or an administrator: the new key is in
/// the answer and nowhere else (only its hash is kept); the old key and every session end.
async fn reset_api_key(
    State(state): IdentityState,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (user, api_key) = state
        .service
        .reset_api_key(Actor::Api(&caller), &Principal::Id(id))
        .await?;
    Ok(Json(api_key_document(&user, &api_key)))
}
