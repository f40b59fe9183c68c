//! What handlers share: the use cases and the HTTP settings.

use std::sync::Arc;

use cloud_images_service::TokenVerifier;

/// Settings that shape HTTP answers.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The externally visible root URL (no trailing slash); derived from `Host` when unset.
    pub public_url: Option<String>,
    /// Region named in service catalogs.
    pub region: String,
    /// Largest JSON request body accepted, in bytes.
    pub max_json_body: usize,
    /// Origins besides its own the console may send bytes to (staged-upload part URLs).
    pub console_upload_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            region: "RegionOne".into(),
            max_json_body: 1024 * 1024,
            console_upload_origins: Vec::new(),
        }
    }
}

/// What every route group's handlers share: the token check and the HTTP settings. Tokens
/// are verified by signature, and their users' standing read from the account store at
/// most once per user per revocation interval.
#[derive(Clone)]
pub struct Common {
    /// Verifies `X-Auth-Token`.
    pub tokens: TokenVerifier,
    /// HTTP settings.
    pub settings: Arc<HttpSettings>,
}

/// A route group's state: the common part and the group's one service; cheap to clone.
#[derive(Clone)]
pub struct Group<S> {
    /// What every group shares.
    pub common: Common,
    /// The group's use cases.
    pub service: S,
}

/// A state a handler can find the common part in.
pub trait WithCommon {
    /// The common part.
    fn common(&self) -> &Common;
}

impl WithCommon for Common {
    fn common(&self) -> &Common {
        self
    }
}

impl<S> WithCommon for Group<S> {
    fn common(&self) -> &Common {
        &self.common
    }
}
