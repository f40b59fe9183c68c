//! Errors of the embedded adapters.

use cloud_images_domain::DomainError;

/// What can go wrong below the embedded adapters.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// SQLite refused or failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task was cancelled or panicked.
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The database is shutting down.
    #[error("the database is closed")]
    Closed,
    /// Stored data could not be read back.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl EmbeddedError {
    /// An I/O failure with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether SQLite refused the write because of a UNIQUE or PRIMARY KEY constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    }

    /// Whether a write failed because a row another refers to would be orphaned.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
        )
    }
}

impl From<EmbeddedError> for DomainError {
    fn from(e: EmbeddedError) -> Self {
        DomainError::unavailable("embedded storage", e)
    }
}
