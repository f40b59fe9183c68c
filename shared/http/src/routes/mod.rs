//! Route groups, one module each; a Lambda function hosts one group.

pub mod discovery;
pub mod identity;
pub mod images;

use axum::http::HeaderMap;
use axum::http::header::HOST;

use crate::state::AppState;

/// The externally visible root URL: configured, or derived from the request's `Host`.
pub(crate) fn public_root(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.public_url {
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
