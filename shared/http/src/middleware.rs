//! Middleware every response passes through.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::PendingError;

pub(crate) const REQUEST_ID: &str = "x-openstack-request-id";

/// The `x-openstack-request-id` of the request being handled, for records that name it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What Glance sends with an empty body (webob's default). Any explicit type will do for
/// the clients; without one API Gateway adds `application/json`, and python-glanceclient then
/// parses the empty body as JSON and fails ("Expecting value").
const EMPTY_BODY_TYPE: &str = "text/html; charset=UTF-8";

/// Gives each request an id (`x-openstack-request-id`, as Glance does), a tracing span, and
/// one log line with its outcome. Headers and bodies are never logged: they carry secrets.
pub(crate) async fn request_context(mut request: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let _entered = span.enter();
    tracing::info!(
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "handled"
    );
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Gives every response the headers clients rely on whatever proxy sits in front: an explicit
/// `Content-Type` on an empty body (the others name theirs) and, when the body's size is
/// known, `Content-Length`.
pub(crate) async fn explicit_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let known_length = axum::body::HttpBody::size_hint(response.body()).exact();
    let headers = response.headers_mut();
    if known_length == Some(0) && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(EMPTY_BODY_TYPE));
    }
    if let Some(length) = known_length
        && !headers.contains_key(CONTENT_LENGTH)
    {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

/// Renders every error response with a body that says what was wrong, in the form the client
/// asked for: Glance's flat `{"code","title","message"}` to clients that ask for JSON, and an
/// `{"error": {...}}` envelope otherwise, because python-glanceclient (which sends
/// `Accept: */*`) reads `message` from each nested object and crashes on the flat form.
pub(crate) async fn render_errors(request: Request, next: Next) -> Response {
    let wants_flat_json = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match parts.extensions.remove::<PendingError>() {
        Some(PendingError(message)) => message,
        // Errors produced by the framework itself (a query string its extractor refused,
        // 405, 413 from the body cap) have no message of ours: keep the short text it
        // wrote, else name the status.
        None => framework_message(body, status).await,
    };
    let title = status.canonical_reason().unwrap_or("Error");
    // The numeric status in both forms, so a client reads `code` one way (webob's flat
    // form has "404 Not Found" there).
    let code = status.as_u16();
    let document = if wants_flat_json {
        serde_json::json!({ "code": code, "title": title, "message": message })
    } else {
        serde_json::json!({ "error": { "code": code, "title": title, "message": message } })
    };
    let bytes = document.to_string();
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, Body::from(bytes))
}

async fn framework_message(body: Body, status: StatusCode) -> String {
    const MAX_TEXT: usize = 1024;
    match axum::body::to_bytes(body, MAX_TEXT).await {
        Ok(bytes) if !bytes.is_empty() && status != StatusCode::PAYLOAD_TOO_LARGE => {
            match std::str::from_utf8(&bytes) {
                Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
                _ => default_message(status),
            }
        }
        _ => default_message(status),
    }
}

fn default_message(status: StatusCode) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "The method is not allowed on this resource; see the Allow header.".into()
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "The request body is larger than this service accepts.".into()
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "The request's Content-Type is not supported here.".into()
        }
        other => other.canonical_reason().unwrap_or("Error").to_owned(),
    }
}
