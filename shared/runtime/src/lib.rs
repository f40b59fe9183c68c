//! Process start-up: configuration from flags and environment, tracing, and the [`Wiring`]
//! that builds, once per process, the adapters and services a host serves.

mod config;
mod stores;
mod wiring;

use cloud_images_domain::DomainError;

pub use config::{Backend, Config, EventSinks, LogFormat, parse_bytes, parse_duration};
pub use stores::{StoreLayout, StoreLocation, StoreSpec};
pub use wiring::Wiring;

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory or database could not be opened.
    #[cfg(feature = "embedded")]
    #[error("opening the embedded store: {0}")]
    Embedded(#[from] cloud_images_embedded::EmbeddedError),
    /// This build leaves out what the configuration asks for.
    #[error("this build has no {0}; it is the local binary's (cloud-images)")]
    NotBuiltIn(&'static str),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(#[from] DomainError),
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
