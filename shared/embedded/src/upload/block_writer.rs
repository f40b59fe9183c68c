//! Writes an upload's blocks on a thread of their own, a few queued while the next block
//! arrives and is hashed, and past the page cache ([`DiskWriter`]): the bytes reach the disk
//! as they stream instead of piling up dirty until the commit's fsync stalls on all of them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Blocks queued ahead of the one being written: enough that the stream never waits on a
/// single slow write, few enough that a dropped upload's last writes end within milliseconds.
const QUEUED_BLOCKS: usize = 2;

/// What the writing thread is asked to do, in order.
enum Operation {
    Write(Bytes),
    SyncData(oneshot::Sender<()>),
}

/// A file written in order by a thread of its own. A plain thread rather than the runtime's
/// blocking pool: an upload that is never finished (its process dying, as tests simulate
/// with `mem::forget`) must not keep the runtime from shutting down.
pub(crate) struct BlockWriter {
    operations: mpsc::Sender<Operation>,
    /// The thread's outcome: the file when every operation succeeded, else the first failure.
    outcome: Option<oneshot::Receiver<io::Result<File>>>,
}

impl BlockWriter {
    /// Writes to `file`, which is at `path`, from `offset` on.
    pub(crate) fn new(file: File, path: PathBuf, offset: u64) -> Self {
        let (operations, queue) = mpsc::channel(QUEUED_BLOCKS);
        let (report, outcome) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("upload-writer".into())
            .spawn(move || {
                let _ = report.send(run(file, path, offset, queue));
            });
        Self {
            operations,
            // A thread that could not start reports as one that failed at once.
            outcome: spawned.is_ok().then_some(outcome),
        }
    }

    /// Queues `block` after the blocks before it; the failure of an earlier write surfaces
    /// here or at a later call.
    pub(crate) async fn write(&mut self, block: Bytes) -> io::Result<()> {
        if self.operations.send(Operation::Write(block)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Makes every block queued so far durable (data, not necessarily metadata).
    pub(crate) async fn sync_data(&mut self) -> io::Result<()> {
        let (reply, synced) = oneshot::channel();
        if self
            .operations
            .send(Operation::SyncData(reply))
            .await
            .is_err()
            || synced.await.is_err()
        {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// The file, once every queued block is written.
    pub(crate) async fn finish(mut self) -> io::Result<File> {
        drop(self.operations);
        match self.outcome.take() {
            Some(outcome) => outcome.await.map_err(io::Error::other)?,
            None => Err(closed()),
        }
    }

    /// Why the thread stopped; the first call gets the cause, later ones that it is closed.
    async fn failure(&mut self) -> io::Error {
        match self.outcome.take() {
            Some(outcome) => match outcome.await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => closed(),
                Err(e) => io::Error::other(e),
            },
            None => closed(),
        }
    }
}

fn run(
    file: File,
    path: PathBuf,
    offset: u64,
    mut queue: mpsc::Receiver<Operation>,
) -> io::Result<File> {
    let mut disk = DiskWriter::new(file, open_direct(&path), offset);
    while let Some(operation) = queue.blocking_recv() {
        match operation {
            Operation::Write(block) => disk.write(&block)?,
            Operation::SyncData(reply) => {
                disk.flush()?;
                disk.buffered.sync_data()?;
                let _ = reply.send(());
            }
        }
    }
    disk.flush()?;
    Ok(disk.buffered)
}

/// Alignment of direct writes (address, length and offset): the largest logical block size
/// in common use, so it suits 512-byte and 4 KiB devices alike.
const ALIGN: usize = 4096;
/// Bytes gathered before a direct write.
const STAGE: usize = 1024 * 1024;

/// Writes through `O_DIRECT` where it can: on this kind of machine copying into the page
/// cache costs half a core at upload speed and a direct write almost nothing, and an upload
/// of many GiB no longer evicts everything else cached. What can't be written directly (a
/// start or end off the alignment, a file system without `O_DIRECT`) goes through the
/// ordinary handle; the commit's fsync covers both.
struct DiskWriter {
    buffered: File,
    direct: Option<File>,
    /// An aligned window of `memory`, filled from its start.
    memory: Vec<u8>,
    window: usize,
    staged: usize,
    /// Where the staged bytes go.
    offset: u64,
}

impl DiskWriter {
    /// Writes through `direct` where given, else through `buffered` alone.
    fn new(buffered: File, direct: Option<File>, offset: u64) -> Self {
        let memory = if direct.is_some() {
            vec![0; STAGE + ALIGN]
        } else {
            Vec::new()
        };
        let window = memory.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self {
            buffered,
            direct,
            memory,
            window,
            staged: 0,
            offset,
        }
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.direct.is_none() {
                return self.write_buffered(data);
            }
            let misaligned = self.offset as usize % ALIGN;
            if self.staged == 0 && misaligned != 0 {
                let head = data.len().min(ALIGN - misaligned);
                self.write_buffered(&data[..head])?;
                data = &data[head..];
                continue;
            }
            let taken = data.len().min(STAGE - self.staged);
            let at = self.window + self.staged;
            self.memory[at..at + taken].copy_from_slice(&data[..taken]);
            self.staged += taken;
            data = &data[taken..];
            if self.staged == STAGE {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes what is staged: its aligned part directly, the rest through the page cache.
    fn flush(&mut self) -> io::Result<()> {
        let staged = std::mem::take(&mut self.staged);
        if staged == 0 {
            // Nothing staged; without O_DIRECT nothing ever is, and there is no window.
            return Ok(());
        }
        let start = self.window;
        let aligned = staged - staged % ALIGN;
        let mut direct_bytes = 0;
        if aligned > 0
            && let Some(direct) = &self.direct
        {
            match direct.write_all_at(&self.memory[start..start + aligned], self.offset) {
                Ok(()) => direct_bytes = aligned,
                // Whatever the reason (another alignment, a file system that opens with
                // O_DIRECT but refuses the writes), the same bytes go buffered from here;
                // a failure that is not about O_DIRECT (a full disk) fails there too.
                Err(e) => {
                    tracing::debug!(error = %e, "direct writes refused; writing buffered");
                    self.direct = None;
                }
            }
        }
        let rest = &self.memory[start + direct_bytes..start + staged];
        self.buffered
            .write_all_at(rest, self.offset + direct_bytes as u64)?;
        self.offset += staged as u64;
        Ok(())
    }

    fn write_buffered(&mut self, data: &[u8]) -> io::Result<()> {
        self.buffered.write_all_at(data, self.offset)?;
        self.offset += data.len() as u64;
        Ok(())
    }
}

fn closed() -> io::Error {
    io::Error::other("the file was closed by an earlier failed write")
}

/// A second handle on `path` that bypasses the page cache, where the file system allows.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A file holding `head`, and a writer that continues after it.
    fn writer_after(head: &[u8]) -> (tempfile::TempDir, PathBuf, BlockWriter) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        std::fs::write(&path, head).expect("write");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        let writer = BlockWriter::new(file, path.clone(), head.len() as u64);
        (dir, path, writer)
    }

    #[tokio::test]
    async fn blocks_land_in_order_after_the_starting_offset() {
        let (_dir, path, mut writer) = writer_after(b"head");
        for block in [&b"one"[..], b"two", b"three"] {
            writer
                .write(Bytes::copy_from_slice(block))
                .await
                .expect("write");
        }
        writer.sync_data().await.expect("sync");
        writer.write(Bytes::from_static(b"!")).await.expect("write");
        drop(writer.finish().await.expect("finish"));
        assert_eq!(std::fs::read(&path).expect("read"), b"headonetwothree!");
    }

    #[tokio::test]
    async fn a_failed_write_fails_every_later_call() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"").expect("write");
        // A read-only handle: whatever is not written directly fails.
        let file = File::open(&path).expect("open");
        let mut writer = BlockWriter::new(file, path, 0);
        writer
            .write(Bytes::from_static(b"x"))
            .await
            .expect("queued");
        let failure = writer.sync_data().await.expect_err("a read-only file");
        assert_ne!(
            failure.to_string(),
            closed().to_string(),
            "the cause comes first"
        );
        assert!(writer.write(Bytes::from_static(b"y")).await.is_err());
        assert!(writer.finish().await.is_err());
    }

    #[test]
    fn without_o_direct_every_byte_goes_through_the_ordinary_handle() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"ab").expect("write");
        let buffered = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        let mut disk = DiskWriter::new(buffered, None, 2);
        let big: Vec<u8> = (0..STAGE + 7).map(|i| (i % 251) as u8).collect();
        disk.write(b"cd").expect("write");
        disk.write(&big).expect("write");
        disk.flush().expect("flush");
        let mut expected = b"abcd".to_vec();
        expected.extend_from_slice(&big);
        assert!(std::fs::read(&path).expect("read") == expected);
    }

    /// A block of `length` bytes that differ from their neighbours, and a sync after it or not.
    fn blocks() -> impl Strategy<Value = Vec<(usize, bool)>> {
        let length = prop_oneof![
            1usize..64,
            ALIGN - 3..ALIGN + 3,
            STAGE - 5..STAGE + 5,
            1usize..3 * STAGE,
        ];
        proptest::collection::vec((length, proptest::bool::weighted(0.2)), 1..8)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the start, the block sizes and the syncs between them, the file ends
        /// up as the head followed by every block, in order: the direct and the buffered
        /// handles never overlap or leave a gap.
        #[test]
        fn the_file_is_the_head_and_every_block(head in 0usize..2 * ALIGN, blocks in blocks()) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let head_bytes: Vec<u8> = (0..head).map(|i| (i % 7) as u8).collect();
            let mut expected = head_bytes.clone();
            let written = runtime.block_on(async {
                let (_dir, path, mut writer) = writer_after(&head_bytes);
                for (index, (length, sync)) in blocks.into_iter().enumerate() {
                    let block: Vec<u8> = (0..length).map(|i| (i * 31 + index) as u8).collect();
                    expected.extend_from_slice(&block);
                    writer.write(Bytes::from(block)).await.expect("write");
                    if sync {
                        writer.sync_data().await.expect("sync");
                    }
                }
                drop(writer.finish().await.expect("finish"));
                std::fs::read(&path).expect("read")
            });
            prop_assert_eq!(written.len(), expected.len());
            prop_assert!(written == expected, "the file differs from the blocks written");
        }
    }
}
