//! The HTTP face of Cloud Images.
//!
//! Each route group is a `Router<AppState>`; the local binary mounts them all on one server,
//! each Lambda function mounts one. [`with_common_layers`] adds what every response needs:
//! a request id, a log line, error bodies in the form the client asked for, a body cap.

mod caller;
mod error;
mod json;
mod middleware;
pub mod routes;
mod schemas;
mod state;
mod views;

pub use caller::Authenticated;
pub use error::ApiError;
pub use json::JsonBody;
pub use state::{AppState, HttpSettings};

use axum::Router;
use axum::extract::DefaultBodyLimit;

/// Every route group of the service on one router, as the local binary serves it.
pub fn all_routes() -> Router<AppState> {
    routes::router(routes::all_tables())
}

/// Wraps a router (all groups, or one group in a function) with the layers every response
/// needs, and an error body for any route that matches nothing.
pub fn with_common_layers(routes: Router<AppState>, state: AppState) -> Router {
    let body_limit = state.settings.max_json_body;
    routes
        .fallback(error::unknown_route)
        .layer(axum::middleware::from_fn(middleware::render_errors))
        .layer(axum::middleware::from_fn(middleware::explicit_headers))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(middleware::request_context))
        .with_state(state)
}
