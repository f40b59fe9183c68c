//! A Keystone-compatible token service (v2.0 with Rackspace API keys, and v3 password auth),
//! so OpenStack clients and the Rackspace curl flow authenticate the ordinary way.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use cloud_images_domain::DomainError;
use cloud_images_domain::identity::{Caller, Tenant};
use cloud_images_service::IdentityService;
use cloud_images_service::tokens::Claims;
use cloud_images_service::{Credentials, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RouteTable, mount, public_root};
use crate::caller::Authenticated;
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{Common, Group};

/// The one domain; requests may name it by id (`default`) or name (`Default`).
pub(super) const DOMAIN_ID: &str = "default";
const DOMAIN_NAME: &str = "Default";

/// Token, discovery and project routes under `/v2.0` and `/v3`.
pub fn table() -> RouteTable<Group<IdentityService>> {
    vec![
        ("/v2.0", get(v2_discovery)),
        ("/v2.0/", get(v2_discovery)),
        ("/v2.0/tokens", post(v2_tokens)),
        ("/v3", get(v3_discovery)),
        ("/v3/", get(v3_discovery)),
        ("/v3/auth/tokens", post(v3_tokens).get(v3_validate)),
        ("/v3/auth/projects", get(v3_my_projects)),
    ]
    .into_iter()
    .chain(super::accounts::table())
    .collect()
}

/// The identity routes over their service.
pub fn router(common: Common, service: IdentityService) -> Router {
    mount(table(), Group { common, service })
}

fn version_document(root: &str, id: &str, path: &str, media: &str) -> Json<Value> {
    Json(json!({
        "version": {
            "id": id,
            "status": "stable",
            "updated": "2024-01-01T00:00:00Z",
            "links": [{ "rel": "self", "href": format!("{root}/{path}/") }],
            "media-types": [{ "base": "application/json", "type": media }],
        }
    }))
}

async fn v2_discovery(
    State(state): State<Group<IdentityService>>,
    headers: HeaderMap,
) -> Json<Value> {
    version_document(
        &public_root(&state.common, &headers),
        "v2.0",
        "v2.0",
        "application/vnd.openstack.identity-v2.0+json",
    )
}

async fn v3_discovery(
    State(state): State<Group<IdentityService>>,
    headers: HeaderMap,
) -> Json<Value> {
    version_document(
        &public_root(&state.common, &headers),
        "v3.14",
        "v3",
        "application/vnd.openstack.identity-v3+json",
    )
}

// ---- v2.0 ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct V2Request {
    auth: V2Auth,
}

#[derive(Deserialize)]
struct V2Auth {
    #[serde(rename = "passwordCredentials")]
    password: Option<V2Password>,
    #[serde(rename = "RAX-KSKEY:apiKeyCredentials")]
    api_key: Option<V2ApiKey>,
    #[serde(rename = "tenantName")]
    tenant_name: Option<String>,
    #[serde(rename = "tenantId")]
    tenant_id: Option<String>,
}

#[derive(Deserialize)]
struct V2Password {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2ApiKey {
    username: String,
    api_key: String,
}

async fn v2_tokens(
    State(state): State<Group<IdentityService>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<V2Request>,
) -> Result<Json<Value>, ApiError> {
    let auth = request.auth;
    let credentials = match (auth.password, auth.api_key) {
        (Some(p), None) => Credentials::Password {
            user: Principal::Name(p.username),
            password: p.password,
        },
        (None, Some(k)) => Credentials::ApiKey {
            username: k.username,
            api_key: k.api_key,
        },
        _ => {
            return Err(ApiError::bad_request(
                "auth needs exactly one of passwordCredentials or RAX-KSKEY:apiKeyCredentials",
            ));
        }
    };
    let scope = auth
        .tenant_id
        .map(Principal::Id)
        .or(auth.tenant_name.map(Principal::Name));
    let session = state.service.authenticate(credentials, scope).await?;
    let root = public_root(&state.common, &headers);
    let claims = &session.token.claims;
    let caller = &claims.caller;
    let roles: Vec<Value> = caller
        .roles
        .iter()
        .map(|r| json!({ "id": r.as_str(), "name": r.as_str() }))
        .collect();
    Ok(Json(json!({
        "access": {
            "token": {
                "id": session.token.id,
                "issued_at": v2_time(claims.issued_at()),
                "expires": v2_time(claims.expires_at()),
                "tenant": tenant_ref(&session.tenant),
                "audit_ids": [claims.aid],
            },
            "user": {
                "id": caller.user_id,
                "name": caller.user_name,
                "username": caller.user_name,
                "roles": roles,
                "roles_links": [],
                "RAX-AUTH:defaultRegion": state.common.settings.region,
            },
            "serviceCatalog": v2_catalog(&root, &state.common.settings.region, caller),
            "metadata": { "is_admin": i32::from(caller.is_admin()), "roles": caller.roles },
        }
    })))
}

fn tenant_ref(tenant: &Tenant) -> Value {
    json!({ "id": tenant.id, "name": tenant.name, "enabled": true, "description": null })
}

fn v2_catalog(root: &str, region: &str, caller: &Caller) -> Value {
    let endpoint = |url: String, id: &str| {
        json!([{
            "id": id, "region": region, "tenantId": caller.tenant_id,
            "publicURL": url, "internalURL": url, "adminURL": url,
        }])
    };
    json!([
        { "type": "image", "name": "cloudImages", "endpoints": endpoint(root.to_owned(), "image-public"), "endpoints_links": [] },
        { "type": "object-store", "name": "cloudFiles", "endpoints": endpoint(format!("{root}/v1/AUTH_{}", caller.tenant_id), "object-store-public"), "endpoints_links": [] },
        { "type": "identity", "name": "keystone", "endpoints": endpoint(format!("{root}/v2.0"), "identity-public"), "endpoints_links": [] },
    ])
}

fn v2_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---- v3 --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct V3Request {
    auth: V3Auth,
}

#[derive(Deserialize)]
struct V3Auth {
    identity: V3Identity,
    scope: Option<V3Scope>,
}

#[derive(Deserialize)]
struct V3Identity {
    methods: Vec<String>,
    password: Option<V3Password>,
}

#[derive(Deserialize)]
struct V3Password {
    user: V3User,
}

#[derive(Deserialize)]
struct V3User {
    id: Option<String>,
    name: Option<String>,
    domain: Option<V3Domain>,
    password: String,
}

#[derive(Deserialize)]
struct V3Domain {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct V3Scope {
    project: Option<V3Project>,
}

#[derive(Deserialize)]
struct V3Project {
    id: Option<String>,
    name: Option<String>,
    domain: Option<V3Domain>,
}

/// Whether a named domain is the one domain; an absent domain is fine when ids are used.
fn domain_is_ours(domain: Option<&V3Domain>) -> bool {
    domain.is_none_or(|d| {
        d.id.as_deref().is_none_or(|id| id == DOMAIN_ID)
            && d.name
                .as_deref()
                .is_none_or(|n| n.eq_ignore_ascii_case(DOMAIN_NAME))
    })
}

fn principal(id: Option<String>, name: Option<String>, what: &str) -> Result<Principal, ApiError> {
    match (id, name) {
        (Some(id), _) => Ok(Principal::Id(id)),
        (None, Some(name)) => Ok(Principal::Name(name)),
        (None, None) => Err(ApiError::bad_request(format!(
            "{what} needs an id or a name"
        ))),
    }
}

async fn v3_tokens(
    State(state): State<Group<IdentityService>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<V3Request>,
) -> Result<Response, ApiError> {
    let identity = request.auth.identity;
    let password = match identity.password {
        Some(p) if identity.methods.iter().any(|m| m == "password") => p,
        _ => {
            return Err(DomainError::Unauthenticated(
                "only the password authentication method is supported".into(),
            )
            .into());
        }
    };
    let user = password.user;
    if !domain_is_ours(user.domain.as_ref()) {
        return Err(DomainError::Unauthenticated("the credentials are not valid".into()).into());
    }
    let who = principal(user.id, user.name, "auth.identity.password.user")?;
    let scope = match request.auth.scope {
        None => None,
        Some(V3Scope {
            project: Some(project),
        }) => {
            if !domain_is_ours(project.domain.as_ref()) {
                return Err(DomainError::Unauthenticated(
                    "the user has no role on the requested project".into(),
                )
                .into());
            }
            Some(principal(project.id, project.name, "auth.scope.project")?)
        }
        Some(V3Scope { project: None }) => {
            return Err(DomainError::Unauthenticated(
                "only project-scoped tokens are supported".into(),
            )
            .into());
        }
    };
    let credentials = Credentials::Password {
        user: who,
        password: user.password,
    };
    let session = state.service.authenticate(credentials, scope).await?;
    let body = v3_token_body(
        &public_root(&state.common, &headers),
        &state.common.settings.region,
        &session.token.claims,
    );
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let token = HeaderValue::from_str(&session.token.id).map_err(|_| {
        DomainError::unavailable("issuing a token", "token is not a valid header value")
    })?;
    response.headers_mut().insert("x-subject-token", token);
    Ok(response)
}

/// `GET /v3/auth/tokens`: validates the token in `X-Subject-Token` for an authenticated caller.
async fn v3_validate(
    State(state): State<Group<IdentityService>>,
    Authenticated(_caller): Authenticated,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("X-Subject-Token names the token to validate"))?;
    let claims = state
        .service
        .verify(subject)
        .await
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "The subject token is not valid"))?;
    let body = v3_token_body(
        &public_root(&state.common, &headers),
        &state.common.settings.region,
        &claims,
    );
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(subject) {
        response.headers_mut().insert("x-subject-token", value);
    }
    Ok(response)
}

fn domain_ref() -> Value {
    json!({ "id": DOMAIN_ID, "name": DOMAIN_NAME })
}

fn v3_token_body(root: &str, region: &str, claims: &Claims) -> Value {
    let caller = &claims.caller;
    let roles: Vec<Value> = caller
        .roles
        .iter()
        .map(|r| json!({ "id": r.as_str(), "name": r.as_str() }))
        .collect();
    json!({
        "token": {
            "methods": ["password"],
            "user": { "id": caller.user_id, "name": caller.user_name, "domain": domain_ref(), "password_expires_at": null },
            "project": { "id": caller.tenant_id, "name": caller.tenant_name, "domain": domain_ref() },
            "is_domain": false,
            "roles": roles,
            "audit_ids": [claims.aid],
            "issued_at": v3_time(claims.issued_at()),
            "expires_at": v3_time(claims.expires_at()),
            "catalog": v3_catalog(root, region, caller.tenant_id.as_str()),
        }
    })
}

fn v3_catalog(root: &str, region: &str, tenant: &str) -> Value {
    let endpoints = |url: String, service: &str| -> Vec<Value> {
        ["public", "internal", "admin"]
            .iter()
            .map(|interface| {
                json!({
                    "id": format!("{service}-{interface}"), "interface": interface,
                    "region": region, "region_id": region, "url": url,
                })
            })
            .collect()
    };
    json!([
        { "type": "image", "name": "glance", "id": "image", "endpoints": endpoints(root.to_owned(), "image") },
        { "type": "object-store", "name": "swift", "id": "object-store", "endpoints": endpoints(format!("{root}/v1/AUTH_{tenant}"), "object-store") },
        { "type": "identity", "name": "keystone", "id": "identity", "endpoints": endpoints(format!("{root}/v3"), "identity") },
    ])
}

fn v3_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn project_document(root: &str, tenant: &Tenant) -> Value {
    json!({
        "id": tenant.id, "name": tenant.name, "domain_id": DOMAIN_ID, "parent_id": DOMAIN_ID,
        "description": "", "enabled": true, "is_domain": false, "tags": [], "options": {},
        "links": { "self": format!("{root}/v3/projects/{}", tenant.id) },
    })
}

/// `GET /v3/auth/projects`: the projects the caller's token may be scoped to (its own).
async fn v3_my_projects(
    State(state): State<Group<IdentityService>>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let root = public_root(&state.common, &headers);
    let tenant = state
        .service
        .project(&caller, caller.tenant_id.as_str())
        .await?;
    Ok(Json(
        json!({ "projects": [project_document(&root, &tenant)], "links": { "self": format!("{root}/v3/auth/projects") } }),
    ))
}
