//! Image bytes as files: `<data-dir>/images/<id>`. Uploads write a private `.partial-*`
//! file that is fsynced and renamed into place on commit, so a reader never sees partial
//! data; partial files of a killed process are swept at start-up.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::ports::{ByteRange, ByteStream, ImageStore, UploadSink};
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::EmbeddedError;

const PARTIAL_PREFIX: &str = ".partial-";
/// Read size when streaming a file out: large reads keep per-chunk overhead negligible.
const READ_CHUNK: usize = 1024 * 1024;

/// [`ImageStore`] over a directory.
pub struct FileImageStore {
    dir: PathBuf,
}

fn io_error(context: String, source: std::io::Error) -> DomainError {
    EmbeddedError::io(context, source).into()
}

impl FileImageStore {
    /// Opens (creating when absent) the image directory.
    pub fn open(dir: &Path) -> Result<Self, EmbeddedError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| EmbeddedError::io(format!("creating {}", dir.display()), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, id: ImageId) -> PathBuf {
        self.dir.join(id.to_string())
    }
}

/// An upload into a partial file; removed unless committed, even when simply dropped
/// (a client that disconnects drops the request future mid-stream).
struct FileUpload {
    file: Option<tokio::fs::File>,
    partial: PathBuf,
    target: PathBuf,
    dir: PathBuf,
}

impl Drop for FileUpload {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[async_trait]
impl UploadSink for FileUpload {
    async fn write(&mut self, chunk: Bytes) -> DomainResult<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| DomainError::unavailable("writing image data", "upload closed"))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error(format!("writing {}", self.partial.display()), e))
    }

    async fn commit(mut self: Box<Self>) -> DomainResult<()> {
        let Some(mut file) = self.file.take() else {
            return Err(DomainError::unavailable(
                "committing image data",
                "upload closed",
            ));
        };
        let context = |what: &str| format!("{what} {}", self.partial.display());
        let result = async {
            file.flush()
                .await
                .map_err(|e| io_error(context("flushing"), e))?;
            file.sync_all()
                .await
                .map_err(|e| io_error(context("syncing"), e))?;
            drop(file);
            tokio::fs::rename(&self.partial, &self.target)
                .await
                .map_err(|e| io_error(context("renaming"), e))?;
            // The rename itself must survive a crash: sync the directory entry too.
            let dir = tokio::fs::File::open(&self.dir)
                .await
                .map_err(|e| io_error(context("opening dir of"), e))?;
            dir.sync_all()
                .await
                .map_err(|e| io_error(context("syncing dir of"), e))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&self.partial).await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) {
        if self.file.take().is_some() {
            let _ = tokio::fs::remove_file(&self.partial).await;
        }
    }
}

#[async_trait]
impl ImageStore for FileImageStore {
    async fn begin_upload(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        let partial = self.dir.join(format!(
            "{PARTIAL_PREFIX}{id}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .await
            .map_err(|e| io_error(format!("creating {}", partial.display()), e))?;
        Ok(Box::new(FileUpload {
            file: Some(file),
            partial,
            target: self.path(id),
            dir: self.dir.clone(),
        }))
    }

    async fn read(&self, id: ImageId, range: Option<ByteRange>) -> DomainResult<ByteStream> {
        let path = self.path(id);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_error(format!("opening {}", path.display()), e))?;
        let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match range {
            Some(range) => {
                file.seek(SeekFrom::Start(range.first))
                    .await
                    .map_err(|e| io_error(format!("seeking {}", path.display()), e))?;
                Box::new(file.take(range.len()))
            }
            None => Box::new(file),
        };
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK)
            .map(move |chunk| chunk.map_err(|e| io_error(format!("reading image {id}"), e)));
        Ok(Box::pin(stream))
    }

    async fn delete(&self, id: ImageId) -> DomainResult<()> {
        let path = self.path(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(format!("removing {}", path.display()), e)),
        }
    }

    async fn sweep_incomplete(&self) -> DomainResult<usize> {
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| io_error(format!("listing {}", self.dir.display()), e))?;
        let mut removed = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error(format!("listing {}", self.dir.display()), e))?
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(PARTIAL_PREFIX)
            {
                tokio::fs::remove_file(entry.path())
                    .await
                    .map_err(|e| io_error(format!("removing {}", entry.path().display()), e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .map(|e| e.expect("entry").file_name().to_string_lossy().into())
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
}
