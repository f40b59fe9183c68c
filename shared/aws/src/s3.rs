//! Image bytes in S3: streamed multipart uploads completed only on commit, ranged reads,
//! idempotent deletes, server-side copies from other buckets (`UploadPartCopy`), and a
//! sweep of abandoned multipart uploads. An import's multipart upload checkpoints: its
//! upload id and finished parts, from which the next delivery of the task resumes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::{Bytes, BytesMut};
use cloud_images_domain::image::ImageId;
use cloud_images_domain::ports::{
    ByteRange, ByteStream, ImageStore, SinkCheckpoint, StagedUpload, StoredObject, UploadSink,
    no_staged_upload,
};
use cloud_images_domain::staging::{PartPlan, check_uploaded_parts};
use cloud_images_domain::{DomainError, DomainResult};
use tokio::task::JoinSet;

/// Smallest part: S3 needs ≥ 5 MiB for every part but the last.
const BASE_PART: usize = 8 * 1024 * 1024;
/// The least S3 takes as a part that is not the last.
pub(crate) const MIN_PART: usize = 5 * 1024 * 1024;
/// Parts uploaded concurrently per upload: enough to overlap network and hashing, bounded
/// so memory stays at a few parts.
const PARTS_IN_FLIGHT: usize = 2;

/// Part `n` (1-based) is `BASE_PART × (1 + (n-1)/1000)`: 8 MiB parts for the first 8 GiB,
/// growing so that 10,000 parts hold about 430 GiB for uploads of unknown length.
fn part_size(part_number: i32) -> usize {
    BASE_PART * (1 + usize::try_from(part_number.max(1) - 1).unwrap_or(0) / 1000)
}

/// The kind of [`StoredObject`] an S3 store names and copies from.
const KIND: &str = "s3";
/// Smallest part of a server-side copy: S3 copies the bytes itself, so a part costs a
/// request, not memory; large parts keep a big image to a few dozen requests.
const COPY_PART: u64 = 256 * 1024 * 1024;
/// S3's limit on the parts of one multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Part copies in flight per copy: each one is a request S3 works on for seconds, so a few
/// overlap well without crowding the client's connections.
const COPIES_IN_FLIGHT: usize = 4;

/// The parts of a server-side copy of `size` (> 0) bytes: (part number, the byte range).
/// Parts are `min_part` long, more when 10,000 of them would not hold `size`; the last
/// holds the rest.
fn copy_ranges(size: u64, min_part: u64) -> impl Iterator<Item = (i32, ByteRange)> {
    let part = min_part.max(1).max(size.div_ceil(MAX_PARTS));
    (0..size.div_ceil(part)).map(move |index| {
        let first = index * part;
        let last = (first + part).min(size) - 1;
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        (number, ByteRange { first, last })
    })
}

/// The `x-amz-copy-source` value: `bucket/key`, percent-encoded, which S3 requires and the
/// SDK leaves to the caller. `/` stays: it separates the bucket from the key.
pub(crate) fn copy_source(bucket: &str, key: &str) -> String {
    let mut encoded = String::with_capacity(bucket.len() + key.len() + 1);
    for byte in format!("{bucket}/{key}").bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn failed(
    context: impl Into<String>,
    error: impl std::error::Error + Send + Sync + 'static,
) -> DomainError {
    DomainError::unavailable(context, error)
}

/// One server-side copy in progress: the multipart upload of `key` that takes the parts of
/// `source`, each pinned to the source's `etag`.
struct PartCopy<'a> {
    key: &'a str,
    upload_id: &'a str,
    source: &'a StoredObject,
    etag: &'a str,
}

/// [`ImageStore`] over one bucket and key prefix.
pub struct S3ImageStore {
    client: Client,
    bucket: String,
    prefix: String,
    stale_after: Duration,
    copy_part: u64,
}

impl S3ImageStore {
    /// A store of objects `<prefix><image id>` in `bucket`; the sweep aborts multipart
    /// uploads older than `stale_after` (uploads still running elsewhere are younger).
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        stale_after: Duration,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
            stale_after,
            copy_part: COPY_PART,
        }
    }

    /// Copies in parts of at least `bytes` (default 256 MiB), so a test can span several
    /// parts with little data; S3 refuses parts but the last under 5 MiB.
    #[doc(hidden)]
    #[must_use]
    pub fn with_copy_part_size(mut self, bytes: u64) -> Self {
        self.copy_part = bytes;
        self
    }

    fn key(&self, id: ImageId) -> String {
        format!("{}{id}", self.prefix)
    }

    /// Starts a multipart upload of `key`; its upload id. `what` names the work in errors.
    async fn start_multipart(&self, key: &str, what: &str) -> DomainResult<String> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed(what, e))?;
        created
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| DomainError::unavailable(what.to_owned(), "S3 returned no upload id"))
    }

    /// Deletes `key`; deleting an absent key succeeds, as S3 does.
    async fn delete_key(&self, key: String, what: String) -> DomainResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed(format!("deleting {what}"), e))?;
        Ok(())
    }

    /// Where a client's staged upload of `id` lands: beside the image keys (so the same
    /// permissions reach it) under a prefix of its own (so a lifecycle rule can expire it).
    fn staged_key(&self, id: ImageId) -> String {
        format!("{}{STAGING}{id}", self.prefix)
    }

    /// Where an interrupted import of `id` notes how to resume: beside its staged data.
    fn resume_point_key(&self, id: ImageId) -> String {
        format!("{}{STAGING}{id}.resume", self.prefix)
    }

    async fn presign_parts(
        &self,
        key: &str,
        upload_id: &str,
        count: u64,
        valid_for: Duration,
    ) -> DomainResult<Vec<String>> {
        let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(valid_for)
            .map_err(|e| failed("presigning a part upload", e))?;
        let mut urls = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        for number in 1..=count {
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(i32::try_from(number).unwrap_or(i32::MAX))
                .presigned(presigning.clone())
                .await
                .map_err(|e| failed("presigning a part upload", e))?;
            urls.push(request.uri().to_owned());
        }
        Ok(urls)
    }

    /// `HeadObject` of `source`. A source bucket in another region answers our client with
    /// a 301 naming its region, which the SDK does not follow; ask again there.
    async fn head_source(
        &self,
        source: &StoredObject,
    ) -> Result<HeadObjectOutput, aws_sdk_s3::error::SdkError<HeadObjectError, HttpResponse>> {
        let head = || {
            self.client
                .head_object()
                .bucket(&source.container)
                .key(&source.key)
        };
        let error = match head().send().await {
            Err(error) => error,
            found => return found,
        };
        let region = error
            .raw_response()
            .filter(|r| r.status().as_u16() == 301)
            .and_then(|r| r.headers().get("x-amz-bucket-region"));
        match region {
            Some(region) => {
                let there = aws_sdk_s3::config::Builder::new()
                    .region(aws_sdk_s3::config::Region::new(region.to_owned()));
                head().customize().config_override(there).send().await
            }
            None => Err(error),
        }
    }

    /// The size and ETag of the data of `id` at `source`; `NotFound` when there is none.
    async fn source_object(
        &self,
        id: ImageId,
        source: &StoredObject,
    ) -> DomainResult<(u64, String)> {
        let head = self.head_source(source).await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                DomainError::NotFound(format!("no data stored for image {id}"))
            } else {
                failed(format!("reading the size of image {id}"), e)
            }
        })?;
        let size = head.content_length().and_then(|l| u64::try_from(l).ok());
        match (size, head.e_tag()) {
            (Some(size), Some(etag)) => Ok((size, etag.to_owned())),
            _ => Err(DomainError::unavailable(
                format!("reading the size of image {id}"),
                "S3 returned no length or ETag",
            )),
        }
    }

    /// Copies the data of `id` at `source` (another bucket, perhaps in another region) into
    /// this store with `UploadPartCopy`: S3 moves the bytes, the service only sends requests.
    /// The object appears whole on completion or not at all.
    async fn copy_from_s3(
        &self,
        id: ImageId,
        source: &StoredObject,
        copied: &AtomicU64,
    ) -> DomainResult<u64> {
        let (size, etag) = self.source_object(id, source).await?;
        let key = self.key(id);
        if size == 0 {
            // A multipart upload needs at least one part, and a part copy a non-empty range.
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(S3Body::from(Bytes::new()))
                .send()
                .await
                .map_err(|e| failed(format!("storing image {id}"), e))?;
            return Ok(0);
        }
        let upload_id = &self.start_multipart(&key, "starting a copy").await?;
        let copy = PartCopy {
            key: &key,
            upload_id,
            source,
            etag: &etag,
        };
        // A copy abandoned here (the process killed) is an incomplete upload for the sweep.
        let done = match self.copy_parts(&copy, size, copied).await {
            Ok(parts) => completion(&self.client, &self.bucket, &key, upload_id, parts)
                .send()
                .await
                .map_err(|e| failed(format!("completing the copy of image {id}"), e)),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            abort(&self.client, &self.bucket, &key, upload_id).await;
            return Err(e);
        }
        Ok(size)
    }

    /// Copies every range of the source into the upload, a few at a time, adding each
    /// part's length to `copied` as it lands.
    async fn copy_parts(
        &self,
        copy: &PartCopy<'_>,
        size: u64,
        copied: &AtomicU64,
    ) -> DomainResult<Vec<CompletedPart>> {
        let (key, upload_id, etag) = (copy.key, copy.upload_id, copy.etag);
        let from = copy_source(&copy.source.container, &copy.source.key);
        let mut in_flight = JoinSet::new();
        let mut parts = Vec::new();
        let mut landed = |finished| -> DomainResult<()> {
            let (part, len) = joined_copy(finished)?;
            copied.fetch_add(len, Ordering::Relaxed);
            parts.push(part);
            Ok(())
        };
        for (number, range) in copy_ranges(size, self.copy_part) {
            if in_flight.len() >= COPIES_IN_FLIGHT
                && let Some(finished) = in_flight.join_next().await
            {
                landed(finished)?;
            }
            // If-Match: every part comes from the object measured, not one that replaced it.
            let request = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(&from)
                .copy_source_if_match(etag)
                .copy_source_range(format!("bytes={}-{}", range.first, range.last));
            in_flight.spawn(async move {
                let copied = request
                    .send()
                    .await
                    .map_err(|e| failed(format!("copying part {number}"), e))?;
                // S3 can answer a part copy with 200 and an error body: no ETag, no part.
                let etag = copied.copy_part_result().and_then(|r| r.e_tag());
                let etag = etag.ok_or_else(|| {
                    DomainError::unavailable(
                        format!("copying part {number}"),
                        "S3 returned no ETag",
                    )
                })?;
                let part = CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build();
                Ok((part, range.len()))
            });
        }
        // Returning early drops `in_flight`, which cancels the copies still running.
        while let Some(finished) = in_flight.join_next().await {
            landed(finished)?;
        }
        Ok(parts)
    }

    /// Every part uploaded so far: (number, size) for the checks, and the parts as
    /// `CompleteMultipartUpload` wants them.
    async fn uploaded_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> DomainResult<(Vec<(u64, u64)>, Vec<CompletedPart>)> {
        let (mut sizes, mut parts) = (Vec::new(), Vec::new());
        let mut marker = None::<String>;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| {
                    staged_upload_error(e, upload_id, "listing the parts of a staged upload")
                })?;
            for part in page.parts() {
                let number = part.part_number().unwrap_or(0);
                sizes.push((
                    u64::try_from(number).unwrap_or(0),
                    u64::try_from(part.size().unwrap_or(0)).unwrap_or(0),
                ));
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            if page.is_truncated() != Some(true) {
                return Ok((sizes, parts));
            }
            marker = page.next_part_number_marker().map(str::to_owned);
        }
    }
}

/// The part a finished copy task produced.
fn joined_copy(
    finished: Result<DomainResult<(CompletedPart, u64)>, tokio::task::JoinError>,
) -> DomainResult<(CompletedPart, u64)> {
    finished.map_err(|e| failed("copying a part", e))?
}

/// A client's unknown (or already completed) upload id is its mistake; anything else is ours.
fn staged_upload_error<E, R>(
    error: aws_sdk_s3::error::SdkError<E, R>,
    upload_id: &str,
    context: &str,
) -> DomainError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if error.as_service_error().and_then(|s| s.code()) == Some("NoSuchUpload") {
        no_staged_upload(upload_id)
    } else {
        failed(context, error)
    }
}

/// The key segment, after the store's prefix, of staged uploads.
const STAGING: &str = "staging/";

/// An upload: bytes gather into parts; the first full part starts a multipart upload,
/// a short body becomes one `PutObject` at commit.
pub(crate) struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    buffer: BytesMut,
    upload_id: Option<String>,
    next_part: i32,
    in_flight: JoinSet<DomainResult<CompletedPart>>,
    done: Vec<CompletedPart>,
    finished: bool,
    written: u64,
    kept_on_drop: bool,
}

/// What a checkpoint of an [`S3Upload`] notes: enough to complete it later.
#[derive(serde::Serialize, serde::Deserialize)]
struct UploadNote {
    upload_id: String,
    next_part: i32,
    /// (part number, ETag) of every part uploaded.
    parts: Vec<(i32, String)>,
}

impl S3Upload {
    /// An upload of what becomes `key` in `bucket` on commit.
    pub(crate) fn new(client: Client, bucket: String, key: String) -> Self {
        Self {
            client,
            bucket,
            key,
            buffer: BytesMut::new(),
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            done: Vec::new(),
            finished: false,
            written: 0,
            kept_on_drop: false,
        }
    }

    /// The upload a checkpoint noted, after its `written` bytes.
    fn resumed(
        client: Client,
        bucket: String,
        key: String,
        note: UploadNote,
        written: u64,
    ) -> Self {
        let done = note
            .parts
            .into_iter()
            .map(|(number, e_tag)| {
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(e_tag)
                    .build()
            })
            .collect();
        let mut upload = Self::new(client, bucket, key).resumable();
        upload.upload_id = Some(note.upload_id);
        upload.next_part = note.next_part;
        upload.done = done;
        upload.written = written;
        upload
    }

    /// This upload outlives a dropped future (a worker shutting down mid-import): only its
    /// commit, an abort or the sweep of stale uploads ends it.
    fn resumable(mut self) -> Self {
        self.kept_on_drop = true;
        self
    }

    async fn start_multipart(&mut self) -> DomainResult<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| failed("starting a multipart upload", e))?;
        let id = created
            .upload_id()
            .ok_or_else(|| {
                DomainError::unavailable("starting a multipart upload", "S3 returned no upload id")
            })?
            .to_owned();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn send_part(&mut self, body: Bytes) -> DomainResult<()> {
        let upload_id = self.start_multipart().await?;
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.collect_one().await?;
        }
        let (client, bucket, key, number) = (
            self.client.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.next_part,
        );
        self.next_part += 1;
        self.in_flight.spawn(async move {
            let sent = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(S3Body::from(body))
                .send()
                .await
                .map_err(|e| failed(format!("uploading part {number}"), e))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .build())
        });
        Ok(())
    }

    async fn collect_one(&mut self) -> DomainResult<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part = joined.map_err(|e| failed("uploading a part", e))??;
            self.done.push(part);
        }
        Ok(())
    }

    async fn finish(&mut self) -> DomainResult<()> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = self.buffer.split().freeze();
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(S3Body::from(body))
                .send()
                .await
                .map_err(|e| failed(format!("storing {}", self.key), e))?;
            return Ok(());
        };
        if !self.buffer.is_empty() {
            let last = self.buffer.split().freeze();
            self.send_part(last).await?;
        }
        while !self.in_flight.is_empty() {
            self.collect_one().await?;
        }
        let parts = std::mem::take(&mut self.done);
        completion(&self.client, &self.bucket, &self.key, &upload_id, parts)
            .send()
            .await
            .map_err(|e| failed("completing a multipart upload", e))?;
        Ok(())
    }

    async fn abort_now(&mut self) {
        self.finished = true;
        self.in_flight.abort_all();
        if let Some(upload_id) = self.upload_id.take() {
            abort(&self.client, &self.bucket, &self.key, &upload_id).await;
        }
    }

    /// Sends the buffer as a part (when S3 takes it as one) and waits for every part in
    /// flight; the note of the upload then, or `None` when the buffer is too short to be a
    /// part or nothing was sent yet.
    async fn settle(&mut self) -> DomainResult<Option<UploadNote>> {
        if !self.buffer.is_empty() {
            if self.buffer.len() < MIN_PART {
                return Ok(None);
            }
            let part = std::mem::replace(&mut self.buffer, BytesMut::new()).freeze();
            self.send_part(part).await?;
        }
        let Some(upload_id) = self.upload_id.clone() else {
            return Ok(None);
        };
        while !self.in_flight.is_empty() {
            self.collect_one().await?;
        }
        let parts = self
            .done
            .iter()
            .map(|p| {
                (
                    p.part_number().unwrap_or(0),
                    p.e_tag().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Ok(Some(UploadNote {
            upload_id,
            next_part: self.next_part,
            parts,
        }))
    }
}

/// The request that joins `parts` (in any order) into the object `key`.
pub(crate) fn completion(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    mut parts: Vec<CompletedPart>,
) -> CompleteMultipartUploadFluentBuilder {
    parts.sort_by_key(|p| p.part_number());
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
}

pub(crate) async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    if let Err(e) = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        tracing::warn!(key, error = %e, "could not abort a multipart upload; the bucket lifecycle rule will");
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if self.finished || self.kept_on_drop {
            return;
        }
        self.in_flight.abort_all();
        if let (Some(upload_id), Ok(runtime)) =
            (self.upload_id.take(), tokio::runtime::Handle::try_current())
        {
            let (client, bucket, key) =
                (self.client.clone(), self.bucket.clone(), self.key.clone());
            runtime.spawn(async move { abort(&client, &bucket, &key, &upload_id).await });
        }
    }
}

#[async_trait]
impl UploadSink for S3Upload {
    async fn write(&mut self, chunk: Bytes) -> DomainResult<()> {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let size = part_size(self.next_part);
            if self.buffer.capacity() < size {
                self.buffer.reserve(size - self.buffer.len());
            }
            let room = size - self.buffer.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buffer.extend_from_slice(now);
            self.written += now.len() as u64;
            rest = later;
            if self.buffer.len() < size {
                return Ok(());
            }
            // Each part gets a buffer of exactly its size: growing one buffer by doubling
            // and splitting parts off it kept up to twice the parts in flight alive.
            let part = std::mem::replace(&mut self.buffer, BytesMut::new()).freeze();
            if let Err(e) = self.send_part(part).await {
                self.abort_now().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> DomainResult<()> {
        let result = self.finish().await;
        if result.is_err() {
            self.abort_now().await;
        }
        self.finished = true;
        result
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_now().await;
    }

    async fn checkpoint(&mut self) -> DomainResult<Option<SinkCheckpoint>> {
        let note = match self.settle().await {
            Ok(Some(note)) => note,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.abort_now().await;
                return Err(e);
            }
        };
        let token = serde_json::to_string(&note)
            .map_err(|e| DomainError::unavailable("noting a multipart upload", e))?;
        Ok(Some(SinkCheckpoint {
            written: self.written,
            token,
        }))
    }
}

/// Sends a `GetObject` and streams its body as it arrives, never holding it whole; returns
/// the length S3 reported too. A missing key is `NotFound(missing)`; `what` names the data
/// in other errors.
pub(crate) async fn get_streamed(
    request: GetObjectFluentBuilder,
    what: String,
    missing: String,
) -> DomainResult<(Option<i64>, ByteStream)> {
    let object = request.send().await.map_err(|e| {
        if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
            DomainError::NotFound(missing)
        } else {
            failed(format!("reading {what}"), e)
        }
    })?;
    let length = object.content_length();
    let body = futures_util::stream::unfold((object.body, what), |(mut body, what)| async move {
        match body.next().await {
            Some(Ok(bytes)) => Some((Ok(bytes), (body, what))),
            Some(Err(e)) => Some((Err(failed(format!("reading {what}"), e)), (body, what))),
            None => None,
        }
    });
    Ok((length, Box::pin(body)))
}

/// [`get_streamed`] of `range` (the whole object when `None`), without the length.
pub(crate) async fn get_range(
    request: GetObjectFluentBuilder,
    range: Option<ByteRange>,
    what: String,
    missing: String,
) -> DomainResult<ByteStream> {
    let request = match range {
        Some(r) => request.range(format!("bytes={}-{}", r.first, r.last)),
        None => request,
    };
    let (_, body) = get_streamed(request, what, missing).await?;
    Ok(body)
}

#[async_trait]
impl ImageStore for S3ImageStore {
    async fn begin_upload(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        Ok(Box::new(S3Upload::new(
            self.client.clone(),
            self.bucket.clone(),
            self.key(id),
        )))
    }

    async fn begin_import(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        let upload = S3Upload::new(self.client.clone(), self.bucket.clone(), self.key(id));
        Ok(Box::new(upload.resumable()))
    }

    /// A noted upload whose every noted part S3 still has, with the same ETag; `None` when
    /// the upload is gone (completed, aborted or swept) or lost a part.
    async fn resume_import(
        &self,
        id: ImageId,
        checkpoint: &SinkCheckpoint,
    ) -> DomainResult<Option<Box<dyn UploadSink>>> {
        let Ok(note) = serde_json::from_str::<UploadNote>(&checkpoint.token) else {
            return Ok(None);
        };
        let key = self.key(id);
        let listed = match self.uploaded_parts(&key, &note.upload_id).await {
            Ok((_, parts)) => parts,
            Err(DomainError::Misdirected(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let kept = note.parts.iter().all(|(number, e_tag)| {
            listed
                .iter()
                .any(|p| p.part_number() == Some(*number) && p.e_tag() == Some(e_tag.as_str()))
        });
        if !kept {
            abort(&self.client, &self.bucket, &key, &note.upload_id).await;
            return Ok(None);
        }
        Ok(Some(Box::new(S3Upload::resumed(
            self.client.clone(),
            self.bucket.clone(),
            key,
            note,
            checkpoint.written,
        ))))
    }

    async fn read(&self, id: ImageId, range: Option<ByteRange>) -> DomainResult<ByteStream> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(id));
        get_range(
            request,
            range,
            format!("image {id}"),
            format!("no data stored for image {id}"),
        )
        .await
    }

    async fn download_url(&self, id: ImageId, valid_for: Duration) -> DomainResult<Option<String>> {
        let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(valid_for)
            .map_err(|e| failed("presigning a download", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .presigned(presigning)
            .await
            .map_err(|e| failed("presigning a download", e))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn begin_staged(
        &self,
        id: ImageId,
        plan: &PartPlan,
        valid_for: Duration,
    ) -> DomainResult<Option<StagedUpload>> {
        let key = self.staged_key(id);
        let upload_id = &self
            .start_multipart(&key, "starting a staged upload")
            .await?;
        let part_urls = self
            .presign_parts(&key, upload_id, plan.count, valid_for)
            .await?;
        Ok(Some(StagedUpload {
            upload_id: upload_id.to_owned(),
            part_urls,
        }))
    }

    async fn finish_staged(&self, id: ImageId, upload_id: &str) -> DomainResult<u64> {
        let key = self.staged_key(id);
        let (sizes, parts) = self.uploaded_parts(&key, upload_id).await?;
        let size = check_uploaded_parts(&sizes)?;
        completion(&self.client, &self.bucket, &key, upload_id, parts)
            .send()
            .await
            .map_err(|e| staged_upload_error(e, upload_id, "completing a staged upload"))?;
        Ok(size)
    }

    async fn begin_stage(&self, id: ImageId) -> DomainResult<Box<dyn UploadSink>> {
        Ok(Box::new(S3Upload::new(
            self.client.clone(),
            self.bucket.clone(),
            self.staged_key(id),
        )))
    }

    async fn open_staged(&self, id: ImageId, from: u64) -> DomainResult<(u64, ByteStream)> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.staged_key(id));
        let request = if from > 0 {
            request.range(format!("bytes={from}-"))
        } else {
            request
        };
        let (length, body) = get_streamed(
            request,
            format!("the staged data of image {id}"),
            format!("No staged data for image {id}; upload and complete it again"),
        )
        .await?;
        let length = length.and_then(|l| u64::try_from(l).ok()).ok_or_else(|| {
            DomainError::unavailable("reading staged data", "S3 returned no length")
        })?;
        // A ranged answer's length is what remains from `from`.
        Ok((from + length, body))
    }

    async fn delete_staged(&self, id: ImageId) -> DomainResult<()> {
        self.delete_resume_point(id).await?;
        self.delete_key(
            self.staged_key(id),
            format!("the staged data of image {id}"),
        )
        .await
    }

    async fn save_resume_point(&self, id: ImageId, point: Bytes) -> DomainResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.resume_point_key(id))
            .body(S3Body::from(point))
            .send()
            .await
            .map_err(|e| failed(format!("saving the resume point of image {id}"), e))?;
        Ok(())
    }

    async fn load_resume_point(&self, id: ImageId) -> DomainResult<Option<Bytes>> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.resume_point_key(id));
        let what = format!("the resume point of image {id}");
        let (_, body) = match get_streamed(request, what.clone(), what).await {
            Ok(found) => found,
            Err(DomainError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let chunks: Vec<Bytes> = futures_util::TryStreamExt::try_collect(body).await?;
        Ok(Some(Bytes::from(chunks.concat())))
    }

    async fn delete_resume_point(&self, id: ImageId) -> DomainResult<()> {
        self.delete_key(
            self.resume_point_key(id),
            format!("the resume point of image {id}"),
        )
        .await
    }

    async fn delete(&self, id: ImageId) -> DomainResult<()> {
        self.delete_key(self.key(id), format!("image {id}")).await
    }

    fn locate(&self, id: ImageId) -> Option<StoredObject> {
        Some(StoredObject {
            kind: KIND,
            container: self.bucket.clone(),
            key: self.key(id),
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
        self.copy_from_s3(id, source, copied).await.map(Some)
    }

    async fn sweep_incomplete(&self) -> DomainResult<usize> {
        let cutoff = SystemTime::now() - self.stale_after;
        let mut aborted = 0;
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| failed("listing multipart uploads", e))?;
            for upload in page.uploads() {
                let stale = upload
                    .initiated()
                    .and_then(|t| SystemTime::try_from(*t).ok())
                    .is_none_or(|t| t <= cutoff);
                // Staged uploads are a client's, in progress for hours; the bucket's
                // lifecycle rule ends abandoned ones.
                let staged = upload.key().is_some_and(|k| {
                    k.strip_prefix(self.prefix.as_str())
                        .is_some_and(|rest| rest.starts_with(STAGING))
                });
                if let (true, false, Some(key), Some(id)) =
                    (stale, staged, upload.key(), upload.upload_id())
                {
                    abort(&self.client, &self.bucket, key, id).await;
                    aborted += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_start_at_8_mib_and_grow_so_10000_parts_hold_about_430_gib() {
        assert_eq!(part_size(1), 8 << 20);
        assert_eq!(part_size(1000), 8 << 20);
        assert_eq!(part_size(1001), 16 << 20);
        let total: u64 = (1..=10_000).map(|n| part_size(n) as u64).sum();
        assert_eq!(total, 55_000 * (8 << 20));
    }

    #[test]
    fn copies_use_256_mib_parts_until_10000_would_not_hold_the_image() {
        let copy_ranges = |size, part| {
            copy_ranges(size, part).map(|(n, r)| (n, format!("bytes={}-{}", r.first, r.last)))
        };
        let ranges: Vec<_> = copy_ranges(600 << 20, COPY_PART).collect();
        assert_eq!(
            ranges,
            [
                (1, "bytes=0-268435455".to_owned()),
                (2, "bytes=268435456-536870911".to_owned()),
                (3, "bytes=536870912-629145599".to_owned()),
            ]
        );
        assert_eq!(
            copy_ranges(1, COPY_PART).collect::<Vec<_>>(),
            [(1, "bytes=0-0".to_owned())]
        );
        // 5 TiB, S3's largest object: 10,000 parts of 525 MiB or so, under the 5 GiB limit.
        let size = 5u64 << 40;
        let ranges: Vec<_> = copy_ranges(size, COPY_PART).collect();
        assert_eq!(ranges.len(), 10_000);
        assert_eq!(ranges[9_999].0, 10_000);
        assert!(ranges[9_999].1.ends_with(&format!("-{}", size - 1)));
        assert_eq!(
            ranges[0].1,
            format!("bytes=0-{}", size.div_ceil(10_000) - 1)
        );
    }

    #[test]
    fn copy_sources_are_percent_encoded_but_for_the_separator() {
        assert_eq!(
            copy_source("images-eu", "images/0b9c-AZ_x.~"),
            "images-eu/images/0b9c-AZ_x.~"
        );
        assert_eq!(copy_source("b", "a b+c%é"), "b/a%20b%2Bc%25%C3%A9");
    }
}
