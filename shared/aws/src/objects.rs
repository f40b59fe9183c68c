//! The tenants' object storage in S3: an object of tenant T is the key
//! `<prefix><T>/<container>/<object>`. Names were checked by the domain so they cannot leave
//! the container; the tenant id is checked here so it cannot reach another tenant's prefix.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use cloud_images_domain::ports::{
    ByteRange, ByteStream, ObjectStore, UploadSink, join_by_streaming,
};
use cloud_images_domain::task::ObjectPath;
use cloud_images_domain::{DomainError, DomainResult};
use tokio::task::JoinSet;

use crate::s3::{MIN_PART, S3Upload, abort, completion, copy_source, get_range, get_streamed};

/// The largest part S3 copies in one `UploadPartCopy`.
const MAX_COPY_PART: u64 = 5 * 1024 * 1024 * 1024;
/// Part copies in flight per join.
const COPIES_IN_FLIGHT: usize = 4;

fn failed(
    context: impl Into<String>,
    error: impl std::error::Error + Send + Sync + 'static,
) -> DomainError {
    DomainError::unavailable(context, error)
}

/// Whether S3 can join `parts` by copying each one whole as a part: every part but the last
/// at least S3's minimum, none above its maximum.
fn copyable(parts: &[(ObjectPath, u64)]) -> bool {
    let Some(((_, last), rest)) = parts.split_last() else {
        return false;
    };
    *last <= MAX_COPY_PART
        && rest
            .iter()
            .all(|(_, size)| (MIN_PART as u64..=MAX_COPY_PART).contains(size))
}

/// [`ObjectStore`] over one bucket and key prefix.
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3ObjectStore {
    /// A store of objects `<prefix><tenant>/<container>/<object>` in `bucket`.
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    fn key(&self, tenant: &str, path: &ObjectPath) -> DomainResult<String> {
        Ok(format!(
            "{}{}/{path}",
            self.prefix,
            cloud_images_domain::task::check_tenant_segment(tenant)?
        ))
    }
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn open(&self, tenant: &str, path: &ObjectPath) -> DomainResult<(u64, ByteStream)> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(tenant, path)?);
        let (length, body) = get_streamed(
            request,
            format!("object '{path}'"),
            format!("object '{path}' not found"),
        )
        .await?;
        let size = length.and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
            DomainError::unavailable(format!("reading object '{path}'"), "S3 reported no length")
        })?;
        Ok((size, body))
    }

    async fn create(&self, tenant: &str, path: &ObjectPath) -> DomainResult<Box<dyn UploadSink>> {
        Ok(Box::new(S3Upload::new(
            self.client.clone(),
            self.bucket.clone(),
            self.key(tenant, path)?,
        )))
    }

    async fn read(
        &self,
        tenant: &str,
        path: &ObjectPath,
        range: Option<ByteRange>,
    ) -> DomainResult<ByteStream> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(tenant, path)?);
        get_range(
            request,
            range,
            format!("object '{path}'"),
            format!("object '{path}' not found"),
        )
        .await
    }

    /// Segments S3 can copy whole are joined by `UploadPartCopy`, S3 moving the bytes;
    /// smaller ones (S3 refuses parts under 5 MiB but the last) are streamed through.
    async fn join(
        &self,
        tenant: &str,
        target: &ObjectPath,
        parts: &[(ObjectPath, u64)],
    ) -> DomainResult<()> {
        let parts: Vec<(ObjectPath, u64)> = parts
            .iter()
            .filter(|(_, size)| *size > 0)
            .cloned()
            .collect();
        if parts.is_empty() {
            let mut sink = self.create(tenant, target).await?;
            sink.write(Bytes::new()).await?;
            return sink.commit().await;
        }
        if copyable(&parts) {
            self.copy_join(tenant, target, &parts).await
        } else {
            join_by_streaming(self, tenant, target, &parts).await
        }
    }

    async fn delete(&self, tenant: &str, path: &ObjectPath) -> DomainResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(tenant, path)?)
            .send()
            .await
            .map_err(|e| failed(format!("deleting object '{path}'"), e))?;
        Ok(())
    }

    async fn download_url(
        &self,
        tenant: &str,
        path: &ObjectPath,
        valid_for: Duration,
    ) -> DomainResult<Option<String>> {
        let presigning = aws_sdk_s3::presigning::PresigningConfig::expires_in(valid_for)
            .map_err(|e| failed("presigning a download", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(tenant, path)?)
            .presigned(presigning)
            .await
            .map_err(|e| failed("presigning a download", e))?;
        Ok(Some(request.uri().to_owned()))
    }
}

impl S3ObjectStore {
    async fn copy_join(
        &self,
        tenant: &str,
        target: &ObjectPath,
        parts: &[(ObjectPath, u64)],
    ) -> DomainResult<()> {
        let key = self.key(tenant, target)?;
        let what = format!("joining object '{target}'");
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| failed(what.clone(), e))?;
        let upload_id = created
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| DomainError::unavailable(what.clone(), "S3 returned no upload id"))?;
        let done = match self.copy_parts(tenant, &key, &upload_id, parts).await {
            Ok(completed) => completion(&self.client, &self.bucket, &key, &upload_id, completed)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| failed(what, e)),
            Err(e) => Err(e),
        };
        if done.is_err() {
            abort(&self.client, &self.bucket, &key, &upload_id).await;
        }
        done
    }

    async fn copy_parts(
        &self,
        tenant: &str,
        key: &str,
        upload_id: &str,
        parts: &[(ObjectPath, u64)],
    ) -> DomainResult<Vec<CompletedPart>> {
        let mut in_flight = JoinSet::new();
        let mut completed = Vec::new();
        for (index, (part, _)) in parts.iter().enumerate() {
            if in_flight.len() >= COPIES_IN_FLIGHT
                && let Some(finished) = in_flight.join_next().await
            {
                completed.push(finished.map_err(|e| failed("copying a part", e))??);
            }
            let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
            let request = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(copy_source(&self.bucket, &self.key(tenant, part)?));
            let path = part.clone();
            in_flight.spawn(async move {
                let copied = request.send().await.map_err(|e| {
                    if e.as_service_error().is_some_and(|s| {
                        aws_sdk_s3::error::ProvideErrorMetadata::code(s) == Some("NoSuchKey")
                    }) {
                        DomainError::NotFound(format!("object '{path}' not found"))
                    } else {
                        failed(format!("copying segment '{path}'"), e)
                    }
                })?;
                let etag = copied
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .ok_or_else(|| {
                        DomainError::unavailable(
                            format!("copying segment '{path}'"),
                            "S3 returned no ETag",
                        )
                    })?;
                Ok::<_, DomainError>(
                    CompletedPart::builder()
                        .part_number(number)
                        .e_tag(etag)
                        .build(),
                )
            });
        }
        while let Some(finished) = in_flight.join_next().await {
            completed.push(finished.map_err(|e| failed("copying a part", e))??);
        }
        Ok(completed)
    }
}
