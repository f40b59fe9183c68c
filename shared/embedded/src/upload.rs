//! Writing a file so that readers see either the old file or the whole new one: bytes go to
//! a private `.partial-*` file beside the target, which is fsynced and renamed into place on
//! commit; an abort, a failure or a drop removes it. Shared by the image and object stores.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use cloud_images_domain::ports::{ByteStream, UploadSink};
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::EmbeddedError;

/// Names of uncommitted files start with this, so a sweep can tell them from data.
pub(crate) const PARTIAL_PREFIX: &str = ".partial-";
/// Read size when streaming a file out: large reads keep per-chunk overhead negligible.
pub(crate) const READ_CHUNK: usize = 1024 * 1024;

/// An I/O failure as the domain sees it, keeping the cause.
pub(crate) fn io_error(context: String, source: std::io::Error) -> DomainError {
    EmbeddedError::io(context, source).into()
}

/// Streams `reader` in [`READ_CHUNK`] pieces; `what` names the data in read errors.
pub(crate) fn stream_reader<R>(reader: R, what: String) -> ByteStream
where
    R: tokio::io::AsyncRead + Send + 'static,
{
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK)
        .map(move |chunk| chunk.map_err(|e| io_error(format!("reading {what}"), e)));
    Box::pin(stream)
}

/// An upload into a partial file; removed unless committed, even when simply dropped
/// (a client that disconnects drops the request future mid-stream).
pub(crate) struct FileUpload {
    file: Option<tokio::fs::File>,
    partial: PathBuf,
    target: PathBuf,
    dir: PathBuf,
}

impl FileUpload {
    /// Starts writing what becomes `target` on commit; its directory must exist.
    pub(crate) async fn begin(target: PathBuf) -> DomainResult<Self> {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(DomainError::unavailable(
                format!("writing {}", target.display()),
                "the target has no directory or file name",
            ));
        };
        // Beside the target, so the commit is a rename within one file system.
        let partial = dir.join(format!(
            "{PARTIAL_PREFIX}{}-{}",
            name.to_string_lossy(),
            uuid::Uuid::new_v4().simple()
        ));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .await
            .map_err(|e| io_error(format!("creating {}", partial.display()), e))?;
        Ok(Self {
            file: Some(file),
            dir: dir.to_path_buf(),
            partial,
            target,
        })
    }

    /// Fills the partial file with a copy of `source` and commits it: the bytes copied.
    /// The kernel copies (`copy_file_range`, a reflink where the file system shares blocks),
    /// so the bytes never pass through this process. An absent `source` is
    /// `NotFound(missing)`; on any failure the partial file goes, as with an abort.
    pub(crate) async fn commit_copy_of(self, source: &Path, missing: String) -> DomainResult<u64> {
        let copied = match tokio::fs::copy(source, &self.partial).await {
            Ok(copied) => copied,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DomainError::NotFound(missing));
            }
            Err(e) => {
                return Err(io_error(
                    format!("copying {} to {}", source.display(), self.partial.display()),
                    e,
                ));
            }
        };
        // The copy rewrote the partial file in place (same inode), so the commit's fsync
        // through our own handle makes the copied bytes durable before the rename.
        Box::new(self).commit().await?;
        Ok(copied)
    }

    fn context(&self, what: &str) -> String {
        format!("{what} {}", self.partial.display())
    }

    /// Makes the partial file durable, then its name: a crash leaves old or new, never half.
    async fn publish(&self, mut file: tokio::fs::File) -> DomainResult<()> {
        file.flush()
            .await
            .map_err(|e| io_error(self.context("flushing"), e))?;
        file.sync_all()
            .await
            .map_err(|e| io_error(self.context("syncing"), e))?;
        drop(file);
        tokio::fs::rename(&self.partial, &self.target)
            .await
            .map_err(|e| io_error(self.context("renaming"), e))?;
        sync_dir(&self.dir).await
    }
}

/// The rename itself must survive a crash: sync the directory entry too.
async fn sync_dir(dir: &Path) -> DomainResult<()> {
    let handle = tokio::fs::File::open(dir)
        .await
        .map_err(|e| io_error(format!("opening {}", dir.display()), e))?;
    handle
        .sync_all()
        .await
        .map_err(|e| io_error(format!("syncing {}", dir.display()), e))
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
            .ok_or_else(|| DomainError::unavailable("writing data", "upload closed"))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error(format!("writing {}", self.partial.display()), e))
    }

    async fn commit(mut self: Box<Self>) -> DomainResult<()> {
        let Some(file) = self.file.take() else {
            return Err(DomainError::unavailable("committing data", "upload closed"));
        };
        let result = self.publish(file).await;
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
