//! The tenants' object storage as a directory tree: an object of tenant T is the file
//! `<root>/<T>/<container>/<object>`. Names were checked by the domain so they cannot leave
//! the container; the tenant id is checked here so it cannot leave the root.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use cloud_images_domain::ports::{
    ByteRange, ByteStream, ObjectStore, UploadSink, join_by_streaming,
};
use cloud_images_domain::task::ObjectPath;
use cloud_images_domain::{DomainError, DomainResult};

use crate::error::EmbeddedError;
use crate::upload::{FileUpload, io_error, stream_file};

/// [`ObjectStore`] over a directory, one subdirectory per tenant.
pub struct DirObjectStore {
    root: PathBuf,
}

/// The answer for an absent object.
fn not_found(path: &ObjectPath) -> DomainError {
    DomainError::NotFound(format!("object '{path}' not found"))
}

/// A file cannot also be a directory: unlike a bucket, the tree cannot hold both `a` and `a/b`.
fn clash(path: &ObjectPath) -> DomainError {
    DomainError::Conflict(format!(
        "object '{path}' cannot be stored: its name and another object's name are each other's prefix"
    ))
}

/// Whether opening failed because nothing is there (a file on the way counts as nothing).
fn is_missing(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

impl DirObjectStore {
    /// Opens (creating when absent) the root directory.
    pub fn open(root: &Path) -> Result<Self, EmbeddedError> {
        std::fs::create_dir_all(root)
            .map_err(|e| EmbeddedError::io(format!("creating {}", root.display()), e))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn file(&self, tenant: &str, path: &ObjectPath) -> DomainResult<PathBuf> {
        Ok(self
            .root
            .join(cloud_images_domain::task::check_tenant_segment(tenant)?)
            .join(&path.container)
            .join(&path.object))
    }
}

#[async_trait]
impl ObjectStore for DirObjectStore {
    async fn open(&self, tenant: &str, path: &ObjectPath) -> DomainResult<(u64, ByteStream)> {
        let file_path = self.file(tenant, path)?;
        let file = match tokio::fs::File::open(&file_path).await {
            Ok(file) => file,
            Err(e) if is_missing(&e) => return Err(not_found(path)),
            Err(e) => return Err(io_error(format!("opening {}", file_path.display()), e)),
        };
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error(format!("inspecting {}", file_path.display()), e))?;
        if !meta.is_file() {
            return Err(not_found(path));
        }
        let file = file.into_std().await;
        Ok((
            meta.len(),
            stream_file(file, 0, None, format!("object '{path}'")),
        ))
    }

    async fn create(&self, tenant: &str, path: &ObjectPath) -> DomainResult<Box<dyn UploadSink>> {
        let target = self.file(tenant, path)?;
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::NotADirectory | ErrorKind::AlreadyExists => clash(path),
                    _ => io_error(format!("creating {}", dir.display()), e),
                })?;
        }
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
            return Err(clash(path));
        }
        Ok(Box::new(FileUpload::begin(target).await?))
    }

    async fn read(
        &self,
        tenant: &str,
        path: &ObjectPath,
        range: Option<ByteRange>,
    ) -> DomainResult<ByteStream> {
        let file_path = self.file(tenant, path)?;
        let file = match tokio::fs::File::open(&file_path).await {
            Ok(file) => file.into_std().await,
            Err(e) if is_missing(&e) => return Err(not_found(path)),
            Err(e) => return Err(io_error(format!("opening {}", file_path.display()), e)),
        };
        let what = format!("object '{path}'");
        Ok(match range {
            Some(range) => stream_file(file, range.first, Some(range.len()), what),
            None => stream_file(file, 0, None, what),
        })
    }

    async fn join(
        &self,
        tenant: &str,
        target: &ObjectPath,
        parts: &[(ObjectPath, u64)],
    ) -> DomainResult<()> {
        join_by_streaming(self, tenant, target, parts).await
    }

    async fn delete(&self, tenant: &str, path: &ObjectPath) -> DomainResult<()> {
        let file_path = self.file(tenant, path)?;
        match tokio::fs::remove_file(&file_path).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(io_error(format!("removing {}", file_path.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn objects_live_under_their_tenant_and_container() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirObjectStore::open(dir.path()).expect("open");
        let path = ObjectPath::new("c", "a/b.vhd", "test").expect("path");
        let mut sink = store.create("t1", &path).await.expect("create");
        sink.write(Bytes::from_static(b"x")).await.expect("write");
        sink.commit().await.expect("commit");
        let file = dir.path().join("t1").join("c").join("a").join("b.vhd");
        assert_eq!(std::fs::read(file).expect("file"), b"x");
    }

    #[tokio::test]
    async fn a_name_that_is_a_prefix_of_another_is_a_conflict() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DirObjectStore::open(dir.path()).expect("open");
        let outer = ObjectPath::new("c", "a", "test").expect("path");
        let inner = ObjectPath::new("c", "a/b", "test").expect("path");
        store
            .create("t1", &inner)
            .await
            .expect("create")
            .commit()
            .await
            .expect("commit");
        assert!(matches!(
            store.create("t1", &outer).await.err(),
            Some(DomainError::Conflict(_))
        ));
        assert!(matches!(
            store.open("t1", &outer).await.err(),
            Some(DomainError::NotFound(_))
        ));
        let nested = ObjectPath::new("c", "a/b/c", "test").expect("path");
        assert!(matches!(
            store.create("t1", &nested).await.err(),
            Some(DomainError::Conflict(_))
        ));
        assert!(matches!(
            store.open("t1", &nested).await.err(),
            Some(DomainError::NotFound(_))
        ));
    }
}
