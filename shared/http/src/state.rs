//! What handlers share: the use cases and the HTTP settings.

use std::sync::Arc;

use cloud_images_service::{IdentityService, ImageService, TaskService};

/// Settings that shape HTTP answers.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The externally visible root URL (no trailing slash); derived from `Host` when unset.
    pub public_url: Option<String>,
    /// Region named in service catalogs.
    pub region: String,
    /// Largest JSON request body accepted, in bytes.
    pub max_json_body: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            region: "RegionOne".into(),
            max_json_body: 1024 * 1024,
        }
    }
}

/// State shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Authentication and accounts.
    pub identity: IdentityService,
    /// Image metadata.
    pub images: ImageService,
    /// Import and export tasks.
    pub tasks: TaskService,
    /// HTTP settings.
    pub settings: Arc<HttpSettings>,
}
