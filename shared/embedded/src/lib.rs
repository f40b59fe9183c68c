//! The embedded default backend: everything in one data directory, no external service.
//!
//! Metadata lives in SQLite (WAL, one writer connection, a few readers); writers take the
//! database lock up front (`BEGIN IMMEDIATE`) and wait on `busy_timeout`, so concurrent
//! writers queue instead of failing with "database is locked" — also across processes such
//! as the admin CLI running beside the server.

mod containers;
mod db;
mod error;
mod events;
mod files;
mod identity;
mod images;
pub mod keyfile;
mod members;
mod metadefs;
mod objects;
mod queue;
mod tasks;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use containers::SqliteContainerRepository;
pub use db::Sqlite;
pub use error::EmbeddedError;
pub use events::{Discarded, JsonLinesSink, SqliteEventOutbox};
pub use files::FileImageStore;
pub use identity::SqliteIdentityStore;
pub use images::SqliteImageRepository;
pub use members::SqliteMemberRepository;
pub use metadefs::SqliteMetadefRepository;
pub use objects::DirObjectStore;
pub use queue::SqliteTaskQueue;
pub use tasks::SqliteTaskRepository;

/// The adapters of the embedded backend, opened on one data directory.
pub struct EmbeddedBackend {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The metadata database.
    pub db: Arc<Sqlite>,
    /// Tenants and users.
    pub identity: Arc<SqliteIdentityStore>,
    /// Image records.
    pub images: Arc<SqliteImageRepository>,
    /// Image bytes.
    pub files: Arc<FileImageStore>,
    /// Image memberships.
    pub members: Arc<SqliteMemberRepository>,
    /// Import and export task records.
    pub tasks: Arc<SqliteTaskRepository>,
    /// The bytes of the tenants' objects.
    pub objects: Arc<DirObjectStore>,
    /// The records of the tenants' containers and objects.
    pub containers: Arc<SqliteContainerRepository>,
    /// The metadata definitions catalogue.
    pub metadefs: Arc<SqliteMetadefRepository>,
}

impl EmbeddedBackend {
    /// Opens (creating when absent) the data directory and its database.
    pub fn open(data_dir: &Path) -> Result<Self, EmbeddedError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| EmbeddedError::io(format!("creating {}", data_dir.display()), e))?;
        let db = Arc::new(Sqlite::open(&data_dir.join("metadata.sqlite3"))?);
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            identity: Arc::new(SqliteIdentityStore::new(db.clone())),
            images: Arc::new(SqliteImageRepository::new(db.clone())),
            files: Arc::new(FileImageStore::open(&data_dir.join("images"))?),
            members: Arc::new(SqliteMemberRepository::new(db.clone())),
            tasks: Arc::new(SqliteTaskRepository::new(db.clone())),
            objects: Arc::new(DirObjectStore::open(&data_dir.join("objects"))?),
            containers: Arc::new(SqliteContainerRepository::new(db.clone())),
            metadefs: Arc::new(SqliteMetadefRepository::new(db.clone())),
            db,
        })
    }
}

#[cfg(test)]
mod contracts {
    use super::EmbeddedBackend;

    fn backend() -> (tempfile::TempDir, EmbeddedBackend) {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = EmbeddedBackend::open(dir.path()).expect("open");
        (dir, backend)
    }

    #[tokio::test]
    async fn sqlite_keeps_the_identity_store_contract() {
        let (_dir, backend) = backend();
        cloud_images_testkit::identity_store_contract(backend.identity.as_ref()).await;
    }

    #[tokio::test]
    async fn sqlite_keeps_the_image_repository_contract() {
        let (_dir, backend) = backend();
        cloud_images_testkit::image_repository_contract(backend.images.as_ref()).await;
    }

    #[tokio::test]
    async fn sqlite_holds_quotas_exactly() {
        let (_dir, backend) = backend();
        cloud_images_testkit::image_quota_contract(backend.images.as_ref()).await;
    }

    #[tokio::test]
    async fn sqlite_keeps_the_member_repository_contract() {
        let (_dir, backend) = backend();
        cloud_images_testkit::member_repository_contract(backend.members.as_ref()).await;
    }

    #[tokio::test]
    async fn sqlite_lists_translate_the_visibility_rule() {
        let (_dir, backend) = backend();
        cloud_images_testkit::list_visibility_contract(
            backend.images.as_ref(),
            backend.members.as_ref(),
        )
        .await;
    }

    #[tokio::test]
    async fn sqlite_keeps_the_task_repository_contract() {
        let (_dir, backend) = backend();
        cloud_images_testkit::task_repository_contract(backend.tasks.as_ref()).await;
    }

    #[tokio::test]
    async fn sqlite_keeps_the_container_repository_contract() {
        let (_dir, backend) = backend();
        cloud_images_testkit::container_repository_contract(backend.containers.as_ref()).await;
    }

    #[tokio::test]
    async fn sqlite_keeps_the_metadef_repository_contract() {
        let (_dir, backend) = backend();
        cloud_images_testkit::metadef_repository_contract(backend.metadefs.as_ref()).await;
    }

    #[tokio::test]
    async fn the_directory_keeps_the_object_store_contract() {
        let (_dir, backend) = backend();
        cloud_images_testkit::object_store_contract(backend.objects.as_ref()).await;
    }
}

#[cfg(test)]
mod queue_contract {
    #[tokio::test]
    async fn the_sqlite_queue_keeps_the_task_queue_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = super::EmbeddedBackend::open(dir.path()).expect("open");
        let queue = super::SqliteTaskQueue::new(backend.db.clone(), 2);
        cloud_images_testkit::task_queue_contract(&queue).await;
    }

    #[tokio::test]
    async fn queued_messages_survive_a_restart() {
        use cloud_images_domain::ports::TaskQueue;
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let backend = super::EmbeddedBackend::open(dir.path()).expect("open");
            super::SqliteTaskQueue::new(backend.db.clone(), 2)
                .send("durable")
                .await
                .expect("send");
        }
        let backend = super::EmbeddedBackend::open(dir.path()).expect("reopen");
        let queue = super::SqliteTaskQueue::new(backend.db.clone(), 2);
        let delivered = queue
            .receive(1, std::time::Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(
            delivered
                .iter()
                .map(|d| d.body.as_str())
                .collect::<Vec<_>>(),
            ["durable"]
        );
    }
}
