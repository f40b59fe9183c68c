//! Image bytes as files: `<data-dir>/images/<id>`, staged data (`PUT .../stage`) as
//! `<data-dir>/images/staging/<id>`. Uploads write a private `.partial-*` file that is
//! fsynced and renamed into place on commit, so a reader never sees partial data; partial
//! files of a killed process are swept at start-up. Imports write a `.resumable-*` file instead,
//! which outlives the process so the next delivery of the task goes on from its last
//! checkpoint (their resume points are `staging/<id>.resume`); only those left alone for
//! [`RESUMABLE_KEPT`] are swept. Another file store's image is copied in the same way as an
//! upload, the kernel copying the bytes into the partial file.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::ports::{
    ByteRange, ByteStream, ImageStore, SinkCheckpoint, StoredObject, UploadSink,
};
use cloud_images_domain::{DomainError, DomainResult};

use crate::error::EmbeddedError;
use crate::upload::{
    FileUpload, PARTIAL_PREFIX, RESUMABLE_PREFIX, io_error, resumable_partial, stream_file,
};

/// How long an import's resumable file waits for its task to come back before a start-up
/// sweep takes it for abandoned (as the S3 lifecycle rule ends multipart uploads).
pub const RESUMABLE_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The kind of [`StoredObject`] a file store names and copies from.
const KIND: &str = "file";

/// [`ImageStore`] over a directory.
pub struct FileImageStore {
    dir: PathBuf,
    staging: PathBuf,
}

impl FileImageStore {
    /// Opens (creating when absent) the image directory.
    pub fn open(dir: &Path) -> Result<Self, EmbeddedError> {
        let staging = dir.join("staging");
        std::fs::create_dir_all(&staging)
            .map_err(|e| EmbeddedError::io(format!("creating {}", staging.display()), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            staging,
        })
    }

    fn path(&self, id: ImageId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn staged_path(&self, id: ImageId) -> PathBuf {
        self.staging.join(id.to_string())
    }

    fn resume_point_path(&self, id: ImageId) -> PathBuf {
        self.staging.join(format!("{id}.resume"))
    }
}

/// Streams a file, or the given range of it.
async fn read_file(
    path: &Path,
    range: Option<ByteRange>,
    what: String,
) -> DomainResult<ByteStream> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_error(format!("opening {}", path.display()), e))?
        .into_std()
        .await;
    Ok(match range {
        Some(range) => stream_file(file, range.first, Some(range.len()), what),
        None => stream_file(file, 0, None, what),
    })
}

/// Removes a file; an absent one is already removed.
async fn remove_file(path: &Path) -> DomainResult<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("removing {}", path.display()), e)),
    }
}

/// Removes the partial files a killed process left in `dir`, and resumable ones untouched
/// for [`RESUMABLE_KEPT`]; returns how many.
async fn sweep_partials(dir: &Path) -> DomainResult<usize> {
    let listing = |e| io_error(format!("listing {}", dir.display()), e);
    let mut entries = tokio::fs::read_dir(dir).await.map_err(listing)?;
    let mut removed = 0;
    let stale_before = SystemTime::now() - RESUMABLE_KEPT;
    while let Some(entry) = entries.next_entry().await.map_err(listing)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let abandoned = name.starts_with(PARTIAL_PREFIX)
            || (name.starts_with(RESUMABLE_PREFIX)
                && entry
                    .metadata()
                    .await
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified < stale_before));
        if abandoned {
            remove_file(&entry.path()).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[async_trait]
impl ImageStore for FileImageStore {
    async fn begin_upload(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        Ok(Box::new(FileUpload::begin(self.path(id)).await?))
    }

    async fn begin_import(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        Ok(Box::new(FileUpload::begin_resumable(self.path(id)).await?))
    }

    async fn resume_import(
        &self,
        id: ImageId,
        checkpoint: &SinkCheckpoint,
    ) -> DomainResult<Option<Box<dyn UploadSink>>> {
        let target = self.path(id);
        let ours = resumable_partial(&target)?
            .file_name()
            .is_some_and(|name| *name.to_string_lossy() == checkpoint.token);
        if !ours {
            return Ok(None);
        }
        let resumed = FileUpload::resume(target, checkpoint.written).await?;
        Ok(resumed.map(|upload| Box::new(upload) as Box<dyn UploadSink>))
    }

    async fn read(&self, id: ImageId, range: Option<ByteRange>) -> DomainResult<ByteStream> {
        read_file(&self.path(id), range, format!("image {id}")).await
    }

    /// The data, and an import of it that was interrupted.
    async fn delete(&self, id: ImageId) -> DomainResult<()> {
        remove_file(&resumable_partial(&self.path(id))?).await?;
        remove_file(&self.path(id)).await
    }

    async fn sweep_incomplete(&self) -> DomainResult<usize> {
        Ok(sweep_partials(&self.dir).await? + sweep_partials(&self.staging).await?)
    }

    async fn begin_stage(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        Ok(Box::new(FileUpload::begin(self.staged_path(id)).await?))
    }

    async fn open_staged(&self, id: ImageId, from: u64) -> DomainResult<(u64, ByteStream)> {
        let path = self.staged_path(id);
        let size = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DomainError::NotFound(format!(
                    "No staged data for image {id}; stage it again"
                )));
            }
            Err(e) => return Err(io_error(format!("reading {}", path.display()), e)),
        };
        let what = format!("the staged data of image {id}");
        let body = if from == 0 {
            read_file(&path, None, what).await?
        } else if from >= size {
            Box::pin(futures_util::stream::empty())
        } else {
            let rest = ByteRange {
                first: from,
                last: size - 1,
            };
            read_file(&path, Some(rest), what).await?
        };
        Ok((size, body))
    }

    async fn delete_staged(&self, id: ImageId) -> DomainResult<()> {
        remove_file(&self.resume_point_path(id)).await?;
        remove_file(&self.staged_path(id)).await
    }

    async fn save_resume_point(&self, id: ImageId, point: Bytes) -> DomainResult<()> {
        let mut upload = Box::new(FileUpload::begin(self.resume_point_path(id)).await?);
        upload.write(point).await?;
        upload.commit().await
    }

    async fn load_resume_point(&self, id: ImageId) -> DomainResult<Option<Bytes>> {
        let path = self.resume_point_path(id);
        match tokio::fs::read(&path).await {
            Ok(point) => Ok(Some(Bytes::from(point))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(format!("reading {}", path.display()), e)),
        }
    }

    async fn delete_resume_point(&self, id: ImageId) -> DomainResult<()> {
        remove_file(&self.resume_point_path(id)).await
    }

    /// `None` for a directory whose path is not UTF-8: the copy then streams instead.
    fn locate(&self, id: ImageId) -> Option<StoredObject> {
        Some(StoredObject {
            kind: KIND,
            container: self.dir.to_str()?.to_owned(),
            key: id.to_string(),
        })
    }

    async fn copy_in(
        &self,
        id: ImageId,
        source: &StoredObject,
        copied: &AtomicU64,
    ) -> DomainResult<Option<u64>> {
        if source.kind != KIND {
            return Ok(None);
        }
        let from = Path::new(&source.container).join(&source.key);
        let upload = FileUpload::begin(self.path(id)).await?;
        // One kernel copy: the progress lands all at once.
        let bytes = upload
            .commit_copy_of(&from, format!("no data stored for image {id}"))
            .await?;
        copied.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::StreamExt;

    async fn read_all(store: &FileImageStore, id: ImageId, range: Option<ByteRange>) -> Vec<u8> {
        let mut stream = store.read(id, range).await.expect("read");
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        out
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry"))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn committed_data_reads_back_whole_and_by_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileImageStore::open(dir.path()).expect("open");
        let id = ImageId::random();
        let mut upload = store.begin_upload(id).await.expect("begin");
        upload
            .write(Bytes::from_static(b"hello "))
            .await
            .expect("write");
        upload
            .write(Bytes::from_static(b"world"))
            .await
            .expect("write");
        upload.commit().await.expect("commit");
        assert_eq!(read_all(&store, id, None).await, b"hello world");
        assert_eq!(
            read_all(&store, id, Some(ByteRange { first: 6, last: 9 })).await,
            b"worl"
        );
        assert_eq!(files_in(dir.path()), vec![id.to_string()]);
    }

    #[tokio::test]
    async fn aborted_or_dropped_uploads_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileImageStore::open(dir.path()).expect("open");
        let mut aborted = store.begin_upload(ImageId::random()).await.expect("begin");
        aborted
            .write(Bytes::from_static(b"partial"))
            .await
            .expect("write");
        aborted.abort().await;
        let mut dropped = store.begin_upload(ImageId::random()).await.expect("begin");
        dropped
            .write(Bytes::from_static(b"partial"))
            .await
            .expect("write");
        drop(dropped);
        assert!(files_in(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn the_sweep_removes_partials_and_keeps_committed_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileImageStore::open(dir.path()).expect("open");
        let kept = ImageId::random();
        let mut upload = store.begin_upload(kept).await.expect("begin");
        upload.write(Bytes::from_static(b"x")).await.expect("write");
        upload.commit().await.expect("commit");
        std::fs::write(
            dir.path().join(format!("{PARTIAL_PREFIX}leftover")),
            b"junk",
        )
        .expect("write");
        assert_eq!(store.sweep_incomplete().await.expect("sweep"), 1);
        assert_eq!(files_in(dir.path()), vec![kept.to_string()]);
    }

    #[tokio::test]
    async fn deleting_absent_data_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileImageStore::open(dir.path()).expect("open");
        store
            .delete(ImageId::random())
            .await
            .expect("idempotent delete");
    }
}

#[cfg(test)]
mod contract {
    use super::FileImageStore;

    #[tokio::test]
    async fn the_file_store_keeps_the_image_store_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileImageStore::open(dir.path()).expect("open");
        cloud_images_testkit::image_store_contract(&store, 20 * 1024 * 1024).await;
    }

    #[tokio::test]
    async fn file_imports_resume_from_their_checkpoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileImageStore::open(dir.path()).expect("open");
        cloud_images_testkit::image_store_resume_contract(&store).await;
    }

    #[tokio::test]
    async fn file_stores_keep_the_copy_contract() {
        let (from, to) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let source = FileImageStore::open(from.path()).expect("open");
        let target = FileImageStore::open(to.path()).expect("open");
        cloud_images_testkit::image_store_copy_contract(&source, &target, 20 * 1024 * 1024).await;
    }
}
