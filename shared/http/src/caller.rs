//! The `X-Auth-Token` extractor.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cloud_images_domain::DomainError;
use cloud_images_domain::identity::Caller;

use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::WithCommon;

/// The verified caller of a request. Extracting it rejects with 401 when the token is
/// missing, malformed, forged, expired or revoked; the store is consulted at most once per
/// user per revocation interval.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl<S: WithCommon + Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get("x-auth-token")
            .ok_or_else(|| {
                DomainError::Unauthenticated("this request needs an X-Auth-Token header".into())
            })?
            .to_str()
            .map_err(|_| DomainError::Unauthenticated("the token is malformed".into()))?;
        let mut caller = state.common().tokens.verify(token.trim()).await?.caller;
        caller.request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|RequestId(id)| id.clone());
        Ok(Self(caller))
    }
}
