//! Route groups, one module each; a Lambda function hosts one group.

pub mod accounts;
pub mod console;
pub mod discovery;
pub mod identity;
pub mod image_data;
pub mod images;
pub mod imports;
pub mod members;
pub mod metadefs;
pub mod objects;
pub mod staging;
pub mod tasks;

use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::routing::MethodRouter;

use crate::ApiError;
use crate::state::Common;

/// A route group: each path with the methods it answers, over the group's state `S`.
/// Routers are built from these tables so the list of mounted paths cannot drift from what
/// is served.
pub type RouteTable<S> = Vec<(&'static str, MethodRouter<S>)>;

/// A router serving one route table over its state.
pub(crate) fn mount<S: Clone + Send + Sync + 'static>(table: RouteTable<S>, state: S) -> Router {
    table
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
        .with_state(state)
}

/// The path templates of a route table.
pub fn paths<S>(table: RouteTable<S>) -> Vec<&'static str> {
    table.into_iter().map(|(path, _)| path).collect()
}

/// Each route group's name and the path templates it serves: the route groups one Lambda
/// function serves a share of, and the local binary all of.
fn route_groups() -> [(&'static str, Vec<&'static str>); 11] {
    [
        ("console", paths(console::table())),
        ("discovery", paths(discovery::table())),
        ("identity", paths(identity::table())),
        ("images", paths(images::table())),
        ("imports", paths(imports::table())),
        ("image_data", paths(image_data::table())),
        ("staging", paths(staging::table())),
        ("members", paths(members::table())),
        ("tasks", paths(tasks::table())),
        ("objects", paths(objects::table())),
        ("metadefs", paths(metadefs::table())),
    ]
}

/// The route group serving a path template (`"unrouted"` for none): the label request
/// metrics carry.
pub(crate) fn group_of(template: &str) -> &'static str {
    static GROUPS: std::sync::LazyLock<std::collections::HashMap<&'static str, &'static str>> =
        std::sync::LazyLock::new(|| {
            route_groups()
                .into_iter()
                .flat_map(|(group, paths)| paths.into_iter().map(move |path| (path, group)))
                .collect()
        });
    GROUPS.get(template).copied().unwrap_or("unrouted")
}

/// Every mounted path template, for checking the OpenAPI description covers them all.
pub fn mounted_paths() -> Vec<&'static str> {
    route_groups()
        .into_iter()
        .flat_map(|(_, paths)| paths)
        .collect()
}

/// A 201 answer with the created resource's document and its absolute URL in `Location`.
pub(crate) fn created(
    common: &Common,
    headers: &HeaderMap,
    path: &str,
    document: impl serde::Serialize,
) -> axum::response::Response {
    located(
        axum::http::StatusCode::CREATED,
        common,
        headers,
        path,
        document,
    )
}

/// An answer with a document and the absolute URL of the resource it describes in
/// `Location` (201 for a new resource, 202 for work that goes on there).
pub(crate) fn located(
    status: axum::http::StatusCode,
    common: &Common,
    headers: &HeaderMap,
    path: &str,
    document: impl serde::Serialize,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let location = format!("{}{path}", public_root(common, headers));
    let mut response = (status, axum::Json(document)).into_response();
    if let Ok(value) = location.parse() {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    response
}

/// The externally visible root URL: configured, or derived from the request's `Host`.
pub(crate) fn public_root(common: &Common, headers: &HeaderMap) -> String {
    public_root_from(common.settings.public_url.as_deref(), headers)
}

/// The root URL from the configured public URL, else from `Host`.
pub(crate) fn public_root_from(public_url: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(url) = public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| valid_host(h));
    format!("http://{}", host.unwrap_or("localhost"))
}

/// Only host[:port] characters: a hostile `Host` must not inject into URLs we hand out.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

/// The `X-Image-Meta-Store` header: the store an upload or import writes to.
pub(crate) fn store_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get("x-image-meta-store")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request("X-Image-Meta-Store must be a store id"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts_with_url_syntax_are_not_trusted() {
        assert!(valid_host("127.0.0.1:9292"));
        assert!(valid_host("[::1]:9292"));
        assert!(valid_host("images.example.com"));
        assert!(!valid_host("evil.com/path?"));
        assert!(!valid_host("a b"));
        assert!(!valid_host(""));
    }
}
