//! The `X-Auth-Token` extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cloud_images_domain::DomainError;
use cloud_images_domain::identity::Caller;

use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::WithCommon;

/// The verified caller of a request, from `X-Auth-Token` or the console's session cookie.
/// Extracting it rejects with 401 when the token is
/// missing, malformed, forged, expired or revoked; the store is consulted at most once per
/// user per revocation interval.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S: WithCommon + Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = match parts.headers.get("x-auth-token") {
            Some(token) => token
                .to_str()
                .map_err(|_| DomainError::Unauthenticated("the token is malformed".into()))?,
            None => console_session(parts)?.ok_or_else(|| {
                DomainError::Unauthenticated("this request needs an X-Auth-Token header".into())
            })?,
        };
        let mut caller = state.common().tokens.verify(token.trim()).await?.caller;
        caller.request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|RequestId(id)| id.clone());
        Ok(Self(caller))
    }
}

/// The console's session cookie (HttpOnly, so scripts never hold the token).
pub const SESSION_COOKIE: &str = "cloud_images_session";

/// The header the console sends with every call. A page of another site cannot send it
/// without a CORS preflight, which this service never grants.
pub const CONSOLE_HEADER: &str = "x-console-request";

/// The token of a console session, when the request carries the session cookie. The cookie
/// is `SameSite=Strict`, so other sites' requests never carry it; a request that changes
/// something must also carry [`CONSOLE_HEADER`], so even a browser that ignored `SameSite`
/// could not be made to change anything by another site.
fn console_session(parts: &Parts) -> Result<Option<&str>, DomainError> {
    let Some(token) = session_cookie(&parts.headers) else {
        return Ok(None);
    };
    if !parts.method.is_safe() && !parts.headers.contains_key(CONSOLE_HEADER) {
        return Err(DomainError::Forbidden(
            "a console session changes things only from the console (the X-Console-Request \
             header); other clients send X-Auth-Token"
                .into(),
        ));
    }
    Ok(Some(token))
}

/// The value of the session cookie among a request's cookies.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| token)
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header::COOKIE};

    fn with_cookies(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                COOKIE,
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        headers
    }

    #[test]
    fn the_session_is_found_among_other_cookies_and_cookie_headers() {
        let headers = with_cookies(&["theme=dark; cloud_images_session=ci1.abc.def", "lang=en"]);
        assert_eq!(session_cookie(&headers), Some("ci1.abc.def"));
        let second = with_cookies(&["lang=en", "cloud_images_session=ci1.x.y"]);
        assert_eq!(session_cookie(&second), Some("ci1.x.y"));
    }

    #[test]
    fn lookalike_names_and_an_empty_value_are_no_session() {
        for value in [
            "xcloud_images_session=t",
            "cloud_images_session_old=t",
            "cloud_images_session=",
            "nothing",
        ] {
            assert_eq!(session_cookie(&with_cookies(&[value])), None, "{value}");
        }
    }
}
