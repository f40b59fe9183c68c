//! A JSON body extractor whose rejections are ours (a 400 that names the problem).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Parses the request body as JSON whatever its `Content-Type` (clients differ in what they
/// send), rejecting malformed JSON with 400 and oversized bodies with 413.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let message = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "The request body is larger than this service accepts.".to_owned()
                } else {
                    format!(
                        "The request body could not be read: {}",
                        rejection.body_text()
                    )
                };
                ApiError::new(rejection.status(), message)
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}")))
    }
}
