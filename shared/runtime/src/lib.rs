//! Process start-up: configuration from flags and environment, tracing, and [`Services`]
//! built once per process and shared by every request.

mod config;

use std::sync::Arc;

use cloud_images_domain::DomainError;
use cloud_images_embedded::{EmbeddedBackend, EmbeddedError};
use cloud_images_http::{AppState, HttpSettings};
use cloud_images_service::{IdentityService, ImageService, SigningKey, TokenSigner};

pub use config::{Config, LogFormat, parse_bytes, parse_duration};

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory or database could not be opened.
    #[error("opening the embedded store: {0}")]
    Embedded(#[from] EmbeddedError),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(#[from] DomainError),
}

/// Every use case, built over the configured adapters.
#[derive(Clone)]
pub struct Services {
    /// Authentication and accounts.
    pub identity: IdentityService,
    /// Image metadata.
    pub images: ImageService,
}

/// Opens the configured backend and builds the use cases; call once per process.
pub fn build_services(config: &Config) -> Result<Services, StartupError> {
    let backend = EmbeddedBackend::open(&config.data_dir)?;
    let key = match &config.token_signing_key {
        Some(hex) => SigningKey::from_hex(hex)?,
        None => SigningKey::from_hex(&cloud_images_embedded::keyfile::load_or_create(
            &backend.data_dir,
            || cloud_images_service::secrets::random_hex(32),
        )?)?,
    };
    let signer = TokenSigner::new(key, config.token_ttl);
    Ok(Services {
        identity: IdentityService::new(backend.identity.clone() as Arc<_>, signer),
        images: ImageService::new(
            backend.images.clone() as Arc<_>,
            backend.files.clone() as Arc<_>,
            backend.members.clone() as Arc<_>,
            config.image_settings(),
        ),
    })
}

/// The state every HTTP handler sees.
pub fn app_state(services: &Services, config: &Config) -> AppState {
    AppState {
        identity: services.identity.clone(),
        images: services.images.clone(),
        settings: Arc::new(HttpSettings {
            public_url: config.public_url.clone(),
            region: config.region.clone(),
            max_json_body: config.max_json_body,
        }),
    }
}

/// Installs the global tracing subscriber: human-readable (coloured only on a terminal) or JSON
/// lines on stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
