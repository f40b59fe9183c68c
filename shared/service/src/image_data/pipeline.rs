//! The upload pipeline every byte of image data passes: size, quota, MD5, the multihash and
//! format inspection, then the sink. Its state serializes ([`PipelineState`]), so an import
//! that was interrupted goes on from its last checkpoint with the hashes and the inspection
//! exactly where they were.

use bytes::{Bytes, BytesMut};
use cloud_images_domain::image::{DiskFormat, HashAlgo};
use cloud_images_domain::inspection::{Inspector, Refused};
use cloud_images_domain::ports::{ByteStream, UploadSink};
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::StreamExt;
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::sync::{mpsc, oneshot};

use super::quota_exceeded;
use super::resume::Checkpoints;

/// Bytes gathered before a write and a hash update: large blocks keep per-chunk costs
/// (a blocking file write, two channel hops) small next to the work on the bytes.
const BLOCK: usize = 1024 * 1024;

/// Lowercase hex, as Glance writes digests.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a hash worker is handed: the next bytes, or a request for its state so far.
enum Feed {
    Block(Bytes),
    State(oneshot::Sender<Vec<u8>>),
}

/// Feeds blocks to a hasher on its own blocking thread, so MD5 and the multihash run on two
/// cores at once.
struct HashWorker {
    feed: mpsc::Sender<Feed>,
    digest: tokio::task::JoinHandle<String>,
}

impl HashWorker {
    fn start<D>(mut hasher: D) -> Self
    where
        D: Digest + SerializableState + Send + 'static,
    {
        let (feed, mut receiver) = mpsc::channel::<Feed>(4);
        let digest = tokio::task::spawn_blocking(move || {
            while let Some(next) = receiver.blocking_recv() {
                match next {
                    Feed::Block(block) => hasher.update(&block),
                    Feed::State(reply) => {
                        let _ = reply.send(hasher.serialize().to_vec());
                    }
                }
            }
            hex(&hasher.finalize())
        });
        Self { feed, digest }
    }

    /// A worker for `D`, from `state` when one was saved.
    fn resume<D>(state: Option<&[u8]>) -> DomainResult<Self>
    where
        D: Digest + SerializableState + Send + 'static,
    {
        let Some(state) = state else {
            return Ok(Self::start(D::new()));
        };
        let restored = SerializedState::<D>::try_from(state)
            .ok()
            .and_then(|state| D::deserialize(&state).ok())
            .ok_or_else(|| {
                DomainError::unavailable("resuming a hash", "the saved hash state is unreadable")
            })?;
        Ok(Self::start(restored))
    }

    async fn feed(&self, block: Bytes) -> DomainResult<()> {
        self.feed
            .send(Feed::Block(block))
            .await
            .map_err(|_| hasher_stopped())
    }

    /// The hasher's state after every block fed so far.
    async fn state(&self) -> DomainResult<Vec<u8>> {
        let (reply, state) = oneshot::channel();
        self.feed
            .send(Feed::State(reply))
            .await
            .map_err(|_| hasher_stopped())?;
        state.await.map_err(|_| hasher_stopped())
    }

    async fn finish(self) -> DomainResult<String> {
        drop(self.feed);
        self.digest
            .await
            .map_err(|e| DomainError::unavailable("hashing image data", e))
    }
}

fn hasher_stopped() -> DomainError {
    DomainError::unavailable("hashing image data", "hasher stopped")
}

fn multihash(algo: HashAlgo, state: Option<&[u8]>) -> DomainResult<HashWorker> {
    match algo {
        HashAlgo::Sha256 => HashWorker::resume::<Sha256>(state),
        HashAlgo::Sha384 => HashWorker::resume::<Sha384>(state),
        HashAlgo::Sha512 => HashWorker::resume::<Sha512>(state),
    }
}

/// Where a stream through the pipeline stands after `size` bytes: what a checkpoint saves
/// and a resumed import starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PipelineState {
    /// Bytes that passed.
    pub size: u64,
    /// The MD5 state.
    #[serde(with = "cloud_images_domain::base64_bytes")]
    pub md5: Vec<u8>,
    /// The multihash's algorithm and state.
    pub hash_algo: HashAlgo,
    #[serde(with = "cloud_images_domain::base64_bytes")]
    pub multihash: Vec<u8>,
    /// The inspection, when the data is inspected.
    pub inspector: Option<Inspector>,
}

/// What an upload learned about the bytes.
pub(crate) struct Received {
    pub size: u64,
    pub checksum: String,
    pub os_hash_value: String,
    pub virtual_size: Option<u64>,
}

/// How a stream enters the pipeline.
pub(crate) struct Intake {
    /// The format to inspect the data as (`None`: not inspected now).
    pub declared: Option<DiskFormat>,
    /// Bytes the owner may still store.
    pub allowance: Option<u64>,
    /// The size announced for the whole data, checked at the end.
    pub size_hint: Option<u64>,
    /// The multihash to compute.
    pub hash_algo: HashAlgo,
    /// Where an interrupted stream stood (the body then starts after `start.size` bytes).
    pub start: Option<PipelineState>,
    /// Saves checkpoints as the bytes pass, for a resumable import.
    pub checkpoints: Option<Checkpoints>,
}

/// The hashers and the inspector, at the start or where an interrupted stream stood.
struct Work {
    size: u64,
    md5: HashWorker,
    multihash: HashWorker,
    hash_algo: HashAlgo,
    inspector: Option<Inspector>,
}

impl Work {
    fn begin(intake: &Intake) -> DomainResult<Self> {
        let Some(start) = &intake.start else {
            return Ok(Self {
                size: 0,
                md5: HashWorker::start(Md5::new()),
                multihash: multihash(intake.hash_algo, None)?,
                hash_algo: intake.hash_algo,
                // Data staged before its image has a disk_format is inspected when imported.
                inspector: intake.declared.map(Inspector::new),
            });
        };
        Ok(Self {
            size: start.size,
            md5: HashWorker::resume::<Md5>(Some(&start.md5))?,
            multihash: multihash(start.hash_algo, Some(&start.multihash))?,
            hash_algo: start.hash_algo,
            inspector: start.inspector.clone(),
        })
    }

    async fn take(&mut self, block: Bytes, sink: &mut dyn UploadSink) -> DomainResult<()> {
        metrics::counter!("cloud_images_image_data_bytes_received_total")
            .increment(block.len() as u64);
        if let Some(inspector) = self.inspector.as_mut() {
            inspector.observe(&block).map_err(counted)?;
        }
        self.md5.feed(block.clone()).await?;
        self.multihash.feed(block.clone()).await?;
        sink.write(block).await
    }

    async fn state(&self) -> DomainResult<PipelineState> {
        Ok(PipelineState {
            size: self.size,
            md5: self.md5.state().await?,
            hash_algo: self.hash_algo,
            multihash: self.multihash.state().await?,
            inspector: self.inspector.clone(),
        })
    }

    async fn finish(self) -> DomainResult<Received> {
        let virtual_size = match self.inspector {
            Some(inspector) => inspector.finish().map_err(counted)?,
            None => None,
        };
        Ok(Received {
            size: self.size,
            checksum: self.md5.finish().await?,
            os_hash_value: self.multihash.finish().await?,
            virtual_size,
        })
    }
}

/// Streams the body into the sink while hashing and inspecting it; commits the sink only
/// when everything checked out, and aborts it otherwise.
pub(crate) async fn receive(
    mut sink: Box<dyn UploadSink>,
    body: ByteStream,
    intake: Intake,
) -> DomainResult<Received> {
    match pump(sink.as_mut(), body, intake).await {
        Ok(received) => {
            sink.commit().await?;
            Ok(received)
        }
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}

async fn pump(
    sink: &mut dyn UploadSink,
    mut body: ByteStream,
    mut intake: Intake,
) -> DomainResult<Received> {
    let mut work = Work::begin(&intake)?;
    let allowance = intake.allowance;
    let mut pending = BytesMut::with_capacity(BLOCK);
    loop {
        let chunk = body.next().await.transpose()?;
        if let Some(chunk) = &chunk {
            work.size += chunk.len() as u64;
            if allowance.is_some_and(|a| work.size > a) {
                return Err(quota_exceeded(allowance.unwrap_or(0)));
            }
            pending.extend_from_slice(chunk);
            if pending.len() < BLOCK {
                continue;
            }
        }
        let block = pending.split().freeze();
        if !block.is_empty() {
            work.take(block, sink).await?;
            if let Some(checkpoints) = intake.checkpoints.as_mut()
                && checkpoints.due(work.size, intake.size_hint)
            {
                checkpoint(sink, &work, checkpoints).await?;
            }
        }
        if chunk.is_none() {
            break;
        }
    }
    if intake.size_hint.is_some_and(|hint| hint != work.size) {
        return Err(DomainError::Invalid(format!(
            "The upload had {} bytes but x-openstack-image-size announced {}",
            work.size,
            intake.size_hint.unwrap_or(0)
        )));
    }
    work.finish().await
}

/// Makes what the sink holds durable and saves where the stream stands, when the sink can
/// checkpoint now (else a later block tries again).
async fn checkpoint(
    sink: &mut dyn UploadSink,
    work: &Work,
    checkpoints: &mut Checkpoints,
) -> DomainResult<()> {
    let Some(written) = sink.checkpoint().await? else {
        return Ok(());
    };
    if written.written != work.size {
        tracing::warn!(
            sink = written.written,
            pipeline = work.size,
            "a sink checkpointed another size than the pipeline passed; not saved"
        );
        return Ok(());
    }
    checkpoints.save(written, work.state().await?).await;
    Ok(())
}

/// A refusal of the format inspection, counted by its reason for operators.
fn counted(refused: Refused) -> DomainError {
    metrics::counter!("cloud_images_inspection_refusals_total", "reason" => refused.reason)
        .increment(1);
    refused.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_workers_match_known_digests() {
        let md5 = HashWorker::start(Md5::new());
        let sha = multihash(HashAlgo::Sha512, None).expect("sha");
        for part in [&b"hello "[..], &b"world"[..]] {
            md5.feed(Bytes::copy_from_slice(part)).await.expect("feed");
            sha.feed(Bytes::copy_from_slice(part)).await.expect("feed");
        }
        assert_eq!(
            md5.finish().await.expect("md5"),
            "5eb63bbbe01eeed093cb22bb8f5acdc3"
        );
        assert!(
            sha.finish()
                .await
                .expect("sha")
                .starts_with("309ecc489c12d6eb4cc40f50c902f2b4")
        );
    }

    #[tokio::test]
    async fn a_hash_resumed_from_its_state_ends_as_one_never_stopped() {
        for algo in [HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512] {
            let whole = multihash(algo, None).expect("hash");
            let first = multihash(algo, None).expect("hash");
            let md5_whole = HashWorker::start(Md5::new());
            let md5_first = HashWorker::start(Md5::new());
            // Odd lengths, so the state holds a partly filled block.
            let (head, tail) = (vec![7u8; 1_000_003], vec![9u8; 77]);
            for worker in [&whole, &first, &md5_whole, &md5_first] {
                worker.feed(Bytes::from(head.clone())).await.expect("feed");
            }
            let second =
                multihash(algo, Some(&first.state().await.expect("state"))).expect("resume");
            let md5_second =
                HashWorker::resume::<Md5>(Some(&md5_first.state().await.expect("state")))
                    .expect("resume");
            for worker in [&whole, &second, &md5_whole, &md5_second] {
                worker.feed(Bytes::from(tail.clone())).await.expect("feed");
            }
            drop(first);
            drop(md5_first);
            assert_eq!(
                second.finish().await.expect("resumed"),
                whole.finish().await.expect("whole"),
                "{algo}"
            );
            assert_eq!(
                md5_second.finish().await.expect("resumed"),
                md5_whole.finish().await.expect("whole")
            );
        }
    }

    #[tokio::test]
    async fn an_unreadable_hash_state_is_refused_not_trusted() {
        assert!(HashWorker::resume::<Md5>(Some(b"short")).is_err());
    }
}
