//! What every request adds to the service's metrics, through the `metrics` facade: the host
//! installs a recorder (the local binary's Prometheus endpoint); without one these are no-ops.
//! Names and labels are listed in the README ("Metrics").

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;

use crate::routes::group_of;

/// Counts the request by route group and status class, times it to its response head, and
/// adds the bodies' declared lengths to the bytes in and out.
pub(crate) async fn record_request(request: Request, next: Next) -> Response {
    let group = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unrouted", |path| group_of(path.as_str()));
    let bytes_in = declared_length(request.headers());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = status_class(response.status().as_u16());
    metrics::counter!("cloud_images_http_requests_total", "group" => group, "status" => status)
        .increment(1);
    metrics::histogram!("cloud_images_http_request_duration_seconds", "group" => group)
        .record(started.elapsed().as_secs_f64());
    if let Some(bytes) = bytes_in {
        metrics::counter!("cloud_images_http_request_bytes_total", "group" => group)
            .increment(bytes);
    }
    if let Some(bytes) = declared_length(response.headers()) {
        metrics::counter!("cloud_images_http_response_bytes_total", "group" => group)
            .increment(bytes);
    }
    response
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}
