//! The tenants' object storage in S3: an object of tenant T is the key
//! `<prefix><T>/<container>/<object>`. Names were checked by the domain so they cannot leave
//! the container; the tenant id is checked here so it cannot reach another tenant's prefix.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use cloud_images_domain::ports::{ByteStream, ObjectStore, UploadSink};
use cloud_images_domain::task::ObjectPath;
use cloud_images_domain::{DomainError, DomainResult};

use crate::s3::{S3Upload, get_streamed};

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
}
