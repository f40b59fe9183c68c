//! The one mapping from errors to HTTP status codes and bodies.

use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cloud_images_domain::DomainError;
use cloud_images_domain::error::Misdirection;

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
            DomainError::Misdirected(way) => return misdirected(way),
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

/// A request sent the wrong way, answered with the routes of the right one.
fn misdirected(way: &Misdirection) -> ApiError {
    match way {
        Misdirection::StageInstead { image, limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Image data over {limit} bytes cannot be uploaded through PUT /v2/images/{image}/file here. \
                 Stage it instead: POST /v2/images/{image}/file/parts with {{\"size\": <bytes>}}, PUT each \
                 part to the URL it returns, then POST /v2/images/{image}/file/complete with \
                 {{\"upload_id\": \"<upload_id>\"}} (README: Large images)."
            ),
        ),
        Misdirection::UploadDirectly { image } => ApiError::bad_request(format!(
            "This service's image store takes data directly: PUT /v2/images/{image}/file. \
             Staged uploads exist where images are kept in S3."
        )),
        Misdirection::UploadIdRequired => {
            ApiError::bad_request("upload_id is required: the one POST .../file/parts returned")
        }
        Misdirection::NoStagedUpload { upload_id } => ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "No staged upload '{upload_id}' is in progress for this image; start one with \
                 POST .../file/parts"
            ),
        ),
        Misdirection::ImportTasksComeFromStaging => ApiError::bad_request(
            "api_image_import tasks are made by POST /v2/images/{image_id}/file/complete; create \
             import or export tasks here",
        ),
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
