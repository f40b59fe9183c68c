//! The one error type of the domain layer.

use std::error::Error as StdError;

/// Boxed source error carried by infrastructure failures so the cause is never dropped.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything a use case can refuse or fail with. HTTP status mapping lives in the http crate.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Credentials were missing, wrong, expired or forged.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist, or the caller may not know that it exists.
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The input is malformed or violates a rule.
    #[error("{0}")]
    Invalid(String),
    /// A `Range` selects no byte of data of this size.
    #[error("The requested range is not satisfiable; the data has {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the data.
        size: u64,
    },
    /// A configured limit would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The request took a way this deployment does not offer for it; the HTTP layer names
    /// the way that is (its routes are not the domain's to know).
    #[error("{0}")]
    Misdirected(Misdirection),
    /// The storage or another dependency failed; the message is for logs, not for callers.
    #[error("{context}: {source}")]
    Unavailable {
        /// What we were doing when it failed.
        context: String,
        /// The underlying failure.
        #[source]
        source: BoxError,
    },
}

/// A request sent the wrong way, and what the right way needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misdirection {
    /// Data above the direct-upload limit goes through a staged upload.
    StageInstead {
        /// The image.
        image: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// This image store takes data directly; it has no staged uploads.
    UploadDirectly {
        /// The image.
        image: String,
    },
    /// Completing a staged upload needs the id its start returned.
    UploadIdRequired,
    /// The store knows no such staged upload for the image.
    NoStagedUpload {
        /// The id given.
        upload_id: String,
    },
    /// `api_image_import` tasks come from completing staged uploads, not from task creation.
    ImportTasksComeFromStaging,
}

impl std::fmt::Display for Misdirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StageInstead { limit, .. } => {
                write!(
                    f,
                    "Image data over {limit} bytes must be staged, not sent directly"
                )
            }
            Self::UploadDirectly { .. } => {
                write!(
                    f,
                    "This service's image store takes data directly; it has no staged uploads"
                )
            }
            Self::UploadIdRequired => write!(f, "upload_id is required"),
            Self::NoStagedUpload { upload_id } => {
                write!(
                    f,
                    "No staged upload '{upload_id}' is in progress for this image"
                )
            }
            Self::ImportTasksComeFromStaging => {
                write!(
                    f,
                    "api_image_import tasks are made by completing a staged upload"
                )
            }
        }
    }
}

impl DomainError {
    /// Wraps an infrastructure failure, keeping its source for the logs.
    pub fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Result alias used across the domain and service layers.
pub type DomainResult<T> = Result<T, DomainError>;
