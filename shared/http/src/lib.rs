//! The HTTP face of Cloud Images.
//!
//! Each route group is a router over its own service (`routes::<group>::router`); the local
//! binary merges them all on one server, each Lambda function serves one or two. [`with_common_layers`] adds what every response needs:
//! a request id, a log line, error bodies in the form the client asked for, a body cap.

mod caller;
mod drain;
mod error;
mod json;
mod metadef_schemas;
mod metrics;
mod middleware;
pub mod routes;
mod schemas;
mod state;
mod views;

pub use caller::Authenticated;
pub use error::ApiError;
pub use json::JsonBody;
pub use state::{Common, Group, HttpSettings};

use axum::Router;
use axum::extract::DefaultBodyLimit;

/// Wraps a router (all groups, or one group in a function) with the layers every response
/// needs, and an error body for any route that matches nothing.
pub fn with_common_layers(routes: Router, settings: &HttpSettings) -> Router {
    let public_url = settings.public_url.clone();
    routes
        .fallback(move |uri, headers| routes::discovery::unmatched(uri, headers, public_url))
        .layer(axum::middleware::from_fn(metrics::record_request))
        .layer(axum::middleware::from_fn(middleware::render_errors))
        .layer(axum::middleware::from_fn(middleware::explicit_headers))
        .layer(DefaultBodyLimit::max(settings.max_json_body))
        .layer(axum::middleware::from_fn(middleware::request_context))
}
