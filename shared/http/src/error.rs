//! The one mapping from errors to HTTP status codes and bodies.

use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloud_images_domain::DomainError;

/// An error on its way to the client: a status, a message the client can act on, and any
/// headers the status calls for (`Allow`, `Accept-Patch`, `WWW-Authenticate`).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable explanation.
    pub message: String,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let status = match &e {
            DomainError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            DomainError::Forbidden(_) => StatusCode::FORBIDDEN,
            DomainError::NotFound(_) => StatusCode::NOT_FOUND,
            DomainError::Conflict(_) => StatusCode::CONFLICT,
            DomainError::Invalid(_) => StatusCode::BAD_REQUEST,
            DomainError::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DomainError::RangeNotSatisfiable { size } => {
                let unsatisfied = format!("bytes */{size}");
                return Self::new(StatusCode::RANGE_NOT_SATISFIABLE, e.to_string())
                    .with_header(axum::http::header::CONTENT_RANGE, &unsatisfied);
            }
            DomainError::Unavailable { .. } => {
                // The details stay in the log; the client learns only that it was us.
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "request failed");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The service could not complete the request; it has been logged.",
                );
            }
        };
        let error = Self::new(status, e.to_string());
        if status == StatusCode::UNAUTHORIZED {
            error.with_header(axum::http::header::WWW_AUTHENTICATE, "Keystone uri=\"/v3\"")
        } else {
            error
        }
    }
}

/// Marks a response as an error to be rendered by the error middleware, which knows the
/// request's `Accept` header.
#[derive(Debug, Clone)]
pub(crate) struct PendingError(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response.extensions_mut().insert(PendingError(self.message));
        response
    }
}

/// The fallback: a path no route group serves.
pub(crate) async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("No resource at {}", uri.path()),
    )
}
