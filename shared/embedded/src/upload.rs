//! Writing a file so that readers see either the old file or the whole new one: bytes go to
//! a private `.partial-*` file beside the target, which is fsynced and renamed into place on
//! commit; an abort, a failure or a drop removes it. Shared by the image and object stores.
//! An import's upload is resumable instead: its `.resumable-*` file has a name the next
//! process finds again, and checkpoints make what was written durable.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use cloud_images_domain::ports::{ByteStream, SinkCheckpoint, UploadSink};
use cloud_images_domain::{DomainError, DomainResult};

use crate::error::EmbeddedError;
use block_writer::BlockWriter;

mod block_writer;

/// Names of uncommitted files start with this, so a sweep can tell them from data.
pub(crate) const PARTIAL_PREFIX: &str = ".partial-";
/// Names of uncommitted imports that survive their process, for the next delivery of the
/// task to resume; only their own commit, abort or a stale sweep removes them.
pub(crate) const RESUMABLE_PREFIX: &str = ".resumable-";
/// Read size when streaming a file out: large reads keep per-chunk overhead negligible.
pub(crate) const READ_CHUNK: usize = 1024 * 1024;

/// An I/O failure as the domain sees it, keeping the cause.
pub(crate) fn io_error(context: String, source: std::io::Error) -> DomainError {
    EmbeddedError::io(context, source).into()
}

/// Blocks read ahead of the one being sent: the disk reads the next blocks while the
/// network takes this one.
const READ_AHEAD: usize = 4;

/// Streams `file` from byte `first` on, `length` bytes or to its end, in [`READ_CHUNK`]
/// blocks read on a thread of their own a few blocks ahead; `what` names the data in read
/// errors. Reading stops when the stream is dropped.
pub(crate) fn stream_file(
    file: std::fs::File,
    first: u64,
    length: Option<u64>,
    what: String,
) -> ByteStream {
    let (blocks, received) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let end = length.map(|length| first + length);
        let mut offset = first;
        while end.is_none_or(|end| offset < end) {
            let wanted = end.map_or(READ_CHUNK as u64, |end| {
                (end - offset).min(READ_CHUNK as u64)
            });
            let mut block = vec![0; wanted as usize];
            let read = match file.read_at(&mut block, offset) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = blocks.blocking_send(Err(io_error(format!("reading {what}"), e)));
                    break;
                }
            };
            block.truncate(read);
            offset += read as u64;
            if blocks.blocking_send(Ok(Bytes::from(block))).is_err() {
                break;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(
        received,
        |mut received| async move { received.recv().await.map(|block| (block, received)) },
    ))
}

/// An upload into a partial file; removed unless committed, even when simply dropped
/// (a client that disconnects drops the request future mid-stream).
pub(crate) struct FileUpload {
    file: Option<BlockWriter>,
    partial: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    written: u64,
    /// A resumable upload outlives a dropped future (a worker shutting down mid-import).
    kept_on_drop: bool,
}

/// The directory and file name of `target`.
fn split_target(target: &Path) -> DomainResult<(&Path, String)> {
    match (target.parent(), target.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name.to_string_lossy().into_owned())),
        _ => Err(DomainError::unavailable(
            format!("writing {}", target.display()),
            "the target has no directory or file name",
        )),
    }
}

impl FileUpload {
    /// Starts writing what becomes `target` on commit; its directory must exist.
    pub(crate) async fn begin(target: PathBuf) -> DomainResult<Self> {
        let (dir, name) = split_target(&target)?;
        // Beside the target, so the commit is a rename within one file system.
        let partial = dir.join(format!(
            "{PARTIAL_PREFIX}{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .await
            .map_err(|e| io_error(format!("creating {}", partial.display()), e))?;
        Ok(Self::over(file, partial, target, 0, false).await)
    }

    /// Starts a resumable upload of what becomes `target`: its partial file has the one name
    /// [`FileUpload::resume`] finds again, and survives the process.
    pub(crate) async fn begin_resumable(target: PathBuf) -> DomainResult<Self> {
        let partial = resumable_partial(&target)?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .await
            .map_err(|e| io_error(format!("creating {}", partial.display()), e))?;
        Ok(Self::over(file, partial, target, 0, true).await)
    }

    /// Takes up the resumable upload of `target` after its first `written` bytes; `None`
    /// when its partial file is gone or shorter (bytes past `written` were never
    /// checkpointed, so they go).
    pub(crate) async fn resume(target: PathBuf, written: u64) -> DomainResult<Option<Self>> {
        let partial = resumable_partial(&target)?;
        let opened = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .await;
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(format!("opening {}", partial.display()), e)),
        };
        let context = |what: &str| format!("{what} {}", partial.display());
        let length = file
            .metadata()
            .await
            .map_err(|e| io_error(context("reading"), e))?
            .len();
        if length < written {
            return Ok(None);
        }
        file.set_len(written)
            .await
            .map_err(|e| io_error(context("truncating"), e))?;
        Ok(Some(Self::over(file, partial, target, written, true).await))
    }

    /// `file` already holds `written` bytes; the writer goes on after them (it writes at
    /// explicit offsets, so the file's position does not matter).
    async fn over(
        file: tokio::fs::File,
        partial: PathBuf,
        target: PathBuf,
        written: u64,
        kept_on_drop: bool,
    ) -> Self {
        let dir = partial.parent().map(Path::to_path_buf).unwrap_or_default();
        Self {
            file: Some(BlockWriter::new(
                file.into_std().await,
                partial.clone(),
                written,
            )),
            dir,
            partial,
            target,
            written,
            kept_on_drop,
        }
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
    async fn publish(&self, writer: BlockWriter) -> DomainResult<()> {
        let file = writer
            .finish()
            .await
            .map_err(|e| io_error(self.context("writing"), e))?;
        let file = tokio::fs::File::from_std(file);
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

/// The one partial file of a resumable upload of `target`.
pub(crate) fn resumable_partial(target: &Path) -> DomainResult<PathBuf> {
    let (dir, name) = split_target(target)?;
    Ok(dir.join(format!("{RESUMABLE_PREFIX}{name}")))
}

impl Drop for FileUpload {
    fn drop(&mut self) {
        if self.file.is_some() && !self.kept_on_drop {
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
        let length = chunk.len() as u64;
        file.write(chunk)
            .await
            .map_err(|e| io_error(format!("writing {}", self.partial.display()), e))?;
        self.written += length;
        Ok(())
    }

    async fn checkpoint(&mut self) -> DomainResult<Option<SinkCheckpoint>> {
        if !self.kept_on_drop {
            return Ok(None);
        }
        let context = self.context("syncing");
        let Some(file) = self.file.as_mut() else {
            return Err(DomainError::unavailable(
                "checkpointing data",
                "upload closed",
            ));
        };
        file.sync_data().await.map_err(|e| io_error(context, e))?;
        Ok(Some(SinkCheckpoint {
            written: self.written,
            token: self
                .partial
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }))
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
