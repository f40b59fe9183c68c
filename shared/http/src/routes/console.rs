//! The console: a web control panel served at `/console/`. Its pages are static files built
//! into the binary; everything they show or change goes through the public API, with the
//! session's token in an HttpOnly cookie that scripts never see.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use chrono::Utc;
use cloud_images_domain::identity::Caller;
use cloud_images_service::{Credentials, IdentityService, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RouteTable, mount};
use crate::caller::{Authenticated, SESSION_COOKIE};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::state::{Common, Group, HttpSettings};

/// Pages and scripts come only from here; nothing inline, nothing framed. Scripts talk to
/// this origin and, with bytes only, to the origins of staged-upload part URLs.
fn content_security_policy(upload_origins: &[String]) -> String {
    // Startup checked the origins (config::parse_origin); this filter keeps the header
    // valid and unextendable even if a caller skipped that.
    let plain = |origin: &&String| {
        origin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:/-".contains(c))
    };
    let connect = std::iter::once("'self'")
        .chain(upload_origins.iter().filter(plain).map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The console's files: name, media type, contents.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../console/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../console/favicon.svg"),
    ),
];

/// The console's pages and its session.
pub fn table() -> RouteTable<Group<IdentityService>> {
    vec![
        // The page names its files by absolute path, so it is served the same at both (API
        // Gateway hands a function `/console/` as `/console`).
        ("/console", get(index)),
        ("/console/", get(index)),
        (
            "/console/session",
            get(show_session).post(open_session).delete(close_session),
        ),
        ("/console/{asset}", get(asset)),
    ]
}

/// The console routes over the identity service (which opens sessions).
pub fn router(common: Common, service: IdentityService) -> axum::Router {
    mount(table(), Group { common, service })
}

async fn index(State(state): State<Group<IdentityService>>) -> Response {
    serve("index.html", &state.common.settings)
}

async fn asset(State(state): State<Group<IdentityService>>, Path(name): Path<String>) -> Response {
    serve(&name, &state.common.settings)
}

fn serve(name: &str, settings: &HttpSettings) -> Response {
    let Some((_, media_type, contents)) = ASSETS.iter().find(|(file, _, _)| *file == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("the console has no file '{name}'"),
        )
        .into_response();
    };
    let mut response = (*contents).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    // Small files that change with each release: always revalidate.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(policy) =
        HeaderValue::from_str(&content_security_policy(&settings.console_upload_origins))
    {
        headers.insert(HeaderName::from_static("content-security-policy"), policy);
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// `POST /console/session`: a password login; the token goes into the session cookie.
async fn open_session(
    State(state): State<Group<IdentityService>>,
    headers: HeaderMap,
    JsonBody(login): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let credentials = Credentials::Password {
        user: Principal::Name(login.username),
        password: login.password,
    };
    let session = state.service.authenticate(credentials, None).await?;
    let claims = &session.token.claims;
    let lifetime = (claims.expires_at() - Utc::now()).num_seconds().max(0);
    let mut response = (
        StatusCode::CREATED,
        Json(session_document(&claims.caller, Some(claims.expires_at()))),
    )
        .into_response();
    let secure = is_https(&state.common, &headers);
    set_session_cookie(&mut response, &session.token.id, lifetime, secure)?;
    Ok(response)
}

/// `GET /console/session`: who the session is, so a reloaded page knows; without a valid
/// session, `{"authenticated": false}` (a 200: not being logged in is the console's first
/// state, not an error).
async fn show_session(caller: Result<Authenticated, ApiError>) -> Json<Value> {
    match caller {
        Ok(Authenticated(caller)) => Json(session_document(&caller, None)),
        Err(_) => Json(json!({ "authenticated": false })),
    }
}

/// `DELETE /console/session`: forgets the cookie. The token itself stays valid until it
/// expires, but no script ever read it, so nothing else holds it.
async fn close_session(
    State(state): State<Group<IdentityService>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_session_cookie(&mut response, "", 0, is_https(&state.common, &headers))?;
    Ok(response)
}

/// Sets the session cookie: `HttpOnly` (no script reads it), `SameSite=Strict` (no other
/// site's request carries it), `Secure` over HTTPS; path `/` because the console calls the
/// API's own paths (see [`crate::caller`] for what a cookie alone may do).
fn set_session_cookie(
    response: &mut Response,
    token: &str,
    max_age: i64,
    secure: bool,
) -> Result<(), ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    let value = HeaderValue::from_str(&cookie)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cookie not encodable"))?;
    response.headers_mut().insert(SET_COOKIE, value);
    Ok(())
}

fn session_document(caller: &Caller, expires_at: Option<chrono::DateTime<Utc>>) -> Value {
    json!({
        "authenticated": true,
        "user": { "id": caller.user_id, "name": caller.user_name },
        "project": { "id": caller.tenant_id, "name": caller.tenant_name },
        "roles": caller.roles,
        "expires_at": expires_at,
    })
}

/// Whether the client reached us over HTTPS (directly, or as the proxy in front says).
fn is_https(common: &Common, headers: &HeaderMap) -> bool {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let configured = common
        .settings
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    forwarded || configured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_upload_origins_only_in_connect_src() {
        let policy = content_security_policy(&["https://b.s3.us-east-1.amazonaws.com".into()]);
        assert!(policy.contains("connect-src 'self' https://b.s3.us-east-1.amazonaws.com;"));
        assert!(policy.contains("script-src 'self';"));
        assert_eq!(policy.matches("amazonaws").count(), 1);
    }

    #[test]
    fn an_origin_that_would_extend_the_policy_is_left_out() {
        let policy = content_security_policy(&["https://x; script-src *".into()]);
        assert!(policy.contains("connect-src 'self';"));
        assert!(!policy.contains("script-src *"));
    }
}
