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
