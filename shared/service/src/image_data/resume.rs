//! Imports that survive their worker. While an import's bytes flow, every
//! [`CHECKPOINT_EVERY`] the sink makes what it holds durable and a [`ResumePoint`] (the
//! sink's note, the pipeline's hashes and inspection, the source's version) is saved beside
//! the staged data. The next delivery of a task whose worker was killed or timed out finds
//! it, takes up the sink, asks the source for the rest (a ranged `GET` naming the version
//! with `If-Range`; staged data read from the offset) and goes on. Anything that does not
//! fit (another store or source, a changed source, an upload the store no longer has)
//! starts the import over, as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cloud_images_domain::image::{Image, ImageId};
use cloud_images_domain::lifecycle::StoredData;
use cloud_images_domain::ports::{ByteStream, SinkCheckpoint, UploadSink, WebBody, WebSource};
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::ImageDataService;
use super::pipeline::{Intake, PipelineState, receive};
use crate::stores::ImageStores;

/// Bytes between checkpoints: each waits for the parts in flight and writes a resume point
/// of about half a MiB, so they cost well under 1 % of the bytes they save.
pub const CHECKPOINT_EVERY: u64 = 64 * 1024 * 1024;

/// Where an import's bytes come from.
pub(crate) enum ImportSource<'a> {
    /// The image's staged data (`glance-direct`).
    Staged,
    /// A URL (`web-download`), fetched as the policy allows.
    Web {
        /// The URL.
        uri: &'a str,
        /// The fetcher.
        web: &'a dyn WebSource,
    },
}

/// An import's progress as it runs, for its task's reports.
#[derive(Debug, Default)]
pub(crate) struct ImportWatch {
    /// Bytes through the pipeline (counting those before a resume).
    pub arrived: AtomicU64,
    /// Bytes safe at the last checkpoint.
    pub checkpoint: AtomicU64,
    /// The whole data's size, once the source said it (`None` inside: it did not).
    pub total: std::sync::OnceLock<Option<u64>>,
    /// Woken at each checkpoint, so the task says so at once.
    pub saved: Notify,
}

/// What identifies the source a resume point was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SourceNote {
    /// The URL, for web-download; `None` for staged data.
    uri: Option<String>,
    /// The version of the URL's data (`If-Range`).
    validator: Option<String>,
    /// The whole data's size, when known.
    size: Option<u64>,
}

impl SourceNote {
    /// Whether an import from this source can be taken up mid-way: staged data can, and a
    /// URL whose version a range request can name.
    fn resumable(&self) -> bool {
        self.uri.is_none() || self.validator.is_some()
    }
}

/// An interrupted import's state, as saved at its last checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct ResumePoint {
    /// The store being written.
    store: String,
    source: SourceNote,
    sink: SinkCheckpoint,
    pipeline: PipelineState,
}

/// Saves resume points as the pipeline passes checkpoints.
pub(crate) struct Checkpoints {
    stores: Arc<ImageStores>,
    image: ImageId,
    store: String,
    source: SourceNote,
    last: u64,
    watch: Arc<ImportWatch>,
}

impl Checkpoints {
    /// Whether a checkpoint is due after `size` bytes; never at the very end, where the
    /// commit follows at once.
    pub(crate) fn due(&self, size: u64, size_hint: Option<u64>) -> bool {
        size - self.last >= CHECKPOINT_EVERY && size_hint != Some(size)
    }

    /// Saves the point; a failure to save is logged, as the import itself goes on.
    pub(crate) async fn save(&mut self, sink: SinkCheckpoint, pipeline: PipelineState) {
        let size = pipeline.size;
        let point = ResumePoint {
            store: self.store.clone(),
            source: self.source.clone(),
            sink,
            pipeline,
        };
        let saved = match serde_json::to_vec(&point) {
            Ok(json) => {
                self.stores
                    .staging()
                    .save_resume_point(self.image, Bytes::from(json))
                    .await
            }
            Err(e) => Err(DomainError::unavailable("noting a resume point", e)),
        };
        match saved {
            Ok(()) => {
                self.last = size;
                self.watch.checkpoint.store(size, Ordering::Relaxed);
                self.watch.saved.notify_one();
            }
            Err(e) => {
                tracing::warn!(image = %self.image, error = %e, "could not save an import's checkpoint");
            }
        }
    }
}

/// An import's bytes ready to flow: the sink, the body, and where the pipeline starts.
struct Opened {
    sink: Box<dyn UploadSink>,
    body: ByteStream,
    source: SourceNote,
    start: Option<PipelineState>,
}

impl ImportSource<'_> {
    /// The whole data, from its start.
    async fn open(
        &self,
        id: ImageId,
        stores: &ImageStores,
    ) -> DomainResult<(SourceNote, ByteStream)> {
        match self {
            Self::Staged => {
                let (size, body) = stores.staging().open_staged(id, 0).await?;
                Ok((staged_note(size), body))
            }
            Self::Web { uri, web } => {
                let WebBody {
                    size,
                    validator,
                    body,
                } = web.open(uri).await?;
                let note = SourceNote {
                    uri: Some((*uri).to_owned()),
                    validator,
                    size,
                };
                Ok((note, body))
            }
        }
    }

    /// The data from byte `from` on, if it is still what `note` describes; `None` when it
    /// changed or the source cannot serve it from there.
    async fn open_from(
        &self,
        id: ImageId,
        stores: &ImageStores,
        from: u64,
        note: &SourceNote,
    ) -> DomainResult<Option<ByteStream>> {
        match self {
            Self::Staged => {
                let (size, body) = stores.staging().open_staged(id, from).await?;
                Ok((note.uri.is_none() && note.size == Some(size) && from < size).then_some(body))
            }
            Self::Web { uri, web } => {
                if note.uri.as_deref() != Some(*uri) {
                    return Ok(None);
                }
                let Some(validator) = &note.validator else {
                    return Ok(None);
                };
                let resumed = web.open_from(uri, from, validator).await?;
                Ok(resumed
                    .filter(|rest| rest.size == note.size)
                    .map(|rest| rest.body))
            }
        }
    }
}

fn staged_note(size: u64) -> SourceNote {
    SourceNote {
        uri: None,
        validator: None,
        size: Some(size),
    }
}

impl ImageDataService {
    /// An import's data into `store`, through every check an upload's bytes pass: what was
    /// stored, for the import to activate the image with once its other stores have it.
    /// It resumes from the resume point an interrupted attempt saved, where that fits. The
    /// image stays `importing`; on failure the task's end reverts it (a retry may still
    /// succeed).
    pub(crate) async fn import_data(
        &self,
        importing: &Image,
        source: ImportSource<'_>,
        store: &str,
        watch: Arc<ImportWatch>,
    ) -> DomainResult<StoredData> {
        let declared = importing.disk_format.ok_or_else(|| {
            DomainError::Conflict("'disk_format' needs to be set before import".into())
        })?;
        let opened = match self.resumed(importing, &source, store).await? {
            Some(resumed) => resumed,
            None => {
                let (note, body) = source.open(importing.id, &self.stores).await?;
                let sink = self.stores.get(store)?.begin_import(importing.id).await?;
                Opened {
                    sink,
                    body,
                    source: note,
                    start: None,
                }
            }
        };
        let size_hint = opened.source.size;
        let _ = watch.total.set(size_hint);
        let allowance = self.checked_allowance(importing, size_hint).await?;
        let from = opened.start.as_ref().map_or(0, |start| start.size);
        watch.arrived.store(from, Ordering::Relaxed);
        watch.checkpoint.store(from, Ordering::Relaxed);
        let counter = watch.clone();
        let body = Box::pin(opened.body.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                counter
                    .arrived
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }));
        let checkpointing = opened.source.resumable();
        let intake = Intake {
            declared: Some(declared),
            allowance,
            size_hint,
            hash_algo: self.access.settings().hash_algo,
            start: opened.start,
            // A URL without a validator can't be taken up mid-way: no point in saving one.
            checkpoints: checkpointing.then(|| Checkpoints {
                stores: self.stores.clone(),
                image: importing.id,
                store: store.to_owned(),
                source: opened.source,
                last: from,
                watch,
            }),
        };
        let received = receive(opened.sink, body, intake).await;
        // Committed or aborted, the upload the point describes is gone.
        if checkpointing {
            self.forget_resume_point(importing.id).await;
        }
        Ok(self.stored_data(received?, store))
    }

    /// The sink and the source taken up where an interrupted attempt's resume point says,
    /// when it fits this import; `None` to start over.
    async fn resumed(
        &self,
        image: &Image,
        source: &ImportSource<'_>,
        store: &str,
    ) -> DomainResult<Option<Opened>> {
        let Some(point) = self.resume_point(image.id).await else {
            return Ok(None);
        };
        let fits = point.store == store
            && point.sink.written == point.pipeline.size
            && point
                .source
                .size
                .is_none_or(|size| point.sink.written < size)
            && point.pipeline.hash_algo == self.access.settings().hash_algo
            && point
                .pipeline
                .inspector
                .as_ref()
                .is_some_and(|inspector| Some(inspector.declared()) == image.disk_format);
        if !fits {
            self.forget_resume_point(image.id).await;
            return Ok(None);
        }
        let target = self.stores.get(store)?;
        let Some(sink) = target.resume_import(image.id, &point.sink).await? else {
            self.forget_resume_point(image.id).await;
            return Ok(None);
        };
        let from = point.sink.written;
        match source
            .open_from(image.id, &self.stores, from, &point.source)
            .await
        {
            Ok(Some(body)) => {
                tracing::info!(image = %image.id, from, "resuming an interrupted import");
                Ok(Some(Opened {
                    sink,
                    body,
                    source: point.source,
                    start: Some(point.pipeline),
                }))
            }
            Ok(None) => {
                sink.abort().await;
                self.forget_resume_point(image.id).await;
                Ok(None)
            }
            // The source failed for now: the sink stays for the next attempt.
            Err(e) => Err(e),
        }
    }

    /// The saved resume point of `id`; an unreadable one counts as none.
    async fn resume_point(&self, id: ImageId) -> Option<ResumePoint> {
        match self.stores.staging().load_resume_point(id).await {
            Ok(Some(json)) => serde_json::from_slice(&json)
                .inspect_err(|e| tracing::warn!(image = %id, error = %e, "an unreadable resume point; the import starts over"))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(image = %id, error = %e, "could not read a resume point; the import starts over");
                None
            }
        }
    }

    async fn forget_resume_point(&self, id: ImageId) {
        if let Err(e) = self.stores.staging().delete_resume_point(id).await {
            tracing::warn!(image = %id, error = %e, "could not remove a resume point");
        }
    }
}
