//! The AWS resources of one deployment, each SDK client made on first use.
//!
//! A host asks only for the adapters it serves, so a function that never asks for S3 builds
//! no S3 client and, because nothing names it, links none of the S3 operations either.

use std::time::Duration;

use cloud_images_domain::{DomainError, DomainResult};
use tokio::sync::OnceCell;

use crate::{
    DynamoIdentityStore, DynamoImageRepository, DynamoMemberRepository, DynamoTaskRepository,
    S3ImageStore, S3ObjectStore, SqsTaskQueue,
};

/// Where a deployment keeps its data, and whether to create it (local runs and tests; the
/// SAM template creates it in a deployment).
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The DynamoDB table of every record.
    pub table: String,
    /// Age after which an unfinished multipart upload is swept.
    pub stale_upload_after: Duration,
    /// The bucket of the tenants' task objects.
    pub objects_bucket: String,
    /// Key prefix of the tenants' task objects.
    pub objects_prefix: String,
    /// The task queue and its dead letters, when they exist already.
    pub queue_urls: Option<(String, String)>,
    /// The task queue's name, when it is to be created.
    pub queue_name: String,
    /// Deliveries after which a task message goes to the dead letters.
    pub queue_max_receives: u32,
    /// Create the table, buckets and queue when missing.
    pub create_resources: bool,
}

/// The SDK configuration and each client, loaded and built at their first use (a function
/// that serves no stored data, discovery, loads neither).
pub struct AwsResources {
    sdk: OnceCell<aws_config::SdkConfig>,
    settings: AwsSettings,
    dynamodb: OnceCell<aws_sdk_dynamodb::Client>,
    s3: OnceCell<aws_sdk_s3::Client>,
    objects_s3: OnceCell<aws_sdk_s3::Client>,
    regional_s3: std::sync::Mutex<std::collections::HashMap<String, aws_sdk_s3::Client>>,
    queue: OnceCell<SqsTaskQueue>,
}

impl AwsResources {
    /// Resources at these places; nothing is loaded or built yet.
    pub fn new(settings: AwsSettings) -> Self {
        Self {
            sdk: OnceCell::new(),
            settings,
            dynamodb: OnceCell::new(),
            s3: OnceCell::new(),
            objects_s3: OnceCell::new(),
            regional_s3: Default::default(),
            queue: OnceCell::new(),
        }
    }

    /// The standard AWS configuration chain, loaded once.
    async fn sdk(&self) -> &aws_config::SdkConfig {
        self.sdk.get_or_init(crate::load_config).await
    }

    async fn dynamodb(&self) -> DomainResult<aws_sdk_dynamodb::Client> {
        let client = self
            .dynamodb
            .get_or_try_init(|| async {
                let client = crate::dynamodb_client(self.sdk().await);
                if self.settings.create_resources {
                    crate::dynamo::ensure_table(&client, &self.settings.table).await?;
                }
                Ok::<_, DomainError>(client)
            })
            .await?;
        Ok(client.clone())
    }

    async fn s3_for(
        &self,
        cell: &OnceCell<aws_sdk_s3::Client>,
        bucket: &str,
    ) -> DomainResult<aws_sdk_s3::Client> {
        let client = cell
            .get_or_try_init(|| async {
                let client = crate::s3_client(self.sdk().await);
                if self.settings.create_resources {
                    crate::ensure_bucket(&client, bucket).await?;
                }
                Ok::<_, DomainError>(client)
            })
            .await?;
        Ok(client.clone())
    }

    /// Tenants and users.
    pub async fn identity_store(&self) -> DomainResult<DynamoIdentityStore> {
        Ok(DynamoIdentityStore::new(
            self.dynamodb().await?,
            &self.settings.table,
        ))
    }

    /// Image records.
    pub async fn image_repository(&self) -> DomainResult<DynamoImageRepository> {
        Ok(DynamoImageRepository::new(
            self.dynamodb().await?,
            &self.settings.table,
        ))
    }

    /// Memberships.
    pub async fn member_repository(&self) -> DomainResult<DynamoMemberRepository> {
        Ok(DynamoMemberRepository::new(
            self.dynamodb().await?,
            &self.settings.table,
        ))
    }

    /// Container and object records.
    pub async fn container_repository(&self) -> DomainResult<crate::DynamoContainerRepository> {
        Ok(crate::DynamoContainerRepository::new(
            self.dynamodb().await?,
            &self.settings.table,
        ))
    }

    /// The metadata definitions catalogue.
    pub async fn metadef_repository(&self) -> DomainResult<crate::DynamoMetadefRepository> {
        Ok(crate::DynamoMetadefRepository::new(
            self.dynamodb().await?,
            &self.settings.table,
        ))
    }

    /// Task records.
    pub async fn task_repository(&self) -> DomainResult<DynamoTaskRepository> {
        Ok(DynamoTaskRepository::new(
            self.dynamodb().await?,
            &self.settings.table,
        ))
    }

    /// Image bytes in `bucket` under `prefix`, the bucket in `region` when given (else the
    /// deployment's). Clients are made once per region.
    pub async fn image_store_in(
        &self,
        bucket: &str,
        prefix: &str,
        region: Option<&str>,
    ) -> DomainResult<S3ImageStore> {
        let client = match region {
            None => self.s3_for(&self.s3, bucket).await?,
            Some(region) => self.regional_s3(region).await,
        };
        if self.settings.create_resources {
            crate::ensure_bucket(&client, bucket).await?;
        }
        Ok(S3ImageStore::new(
            client,
            bucket,
            prefix.to_owned(),
            self.settings.stale_upload_after,
        ))
    }

    async fn regional_s3(&self, region: &str) -> aws_sdk_s3::Client {
        let sdk = self.sdk().await;
        let mut clients = self.regional_s3.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| crate::s3_client_in(sdk, Some(region)))
            .clone()
    }

    /// The tenants' task objects.
    pub async fn object_store(&self) -> DomainResult<S3ObjectStore> {
        let settings = &self.settings;
        Ok(S3ObjectStore::new(
            self.s3_for(&self.objects_s3, &settings.objects_bucket)
                .await?,
            &settings.objects_bucket,
            settings.objects_prefix.clone(),
        ))
    }

    /// The task queue.
    pub async fn task_queue(&self) -> DomainResult<SqsTaskQueue> {
        let settings = &self.settings;
        let queue = self
            .queue
            .get_or_try_init(|| async {
                let sqs = crate::sqs_client(self.sdk().await);
                match &settings.queue_urls {
                    Some((url, dead_letters)) => Ok(SqsTaskQueue::new(sqs, url, dead_letters)),
                    None if settings.create_resources => {
                        SqsTaskQueue::ensure(sqs, &settings.queue_name, settings.queue_max_receives)
                            .await
                    }
                    None => Err(DomainError::Invalid(
                        "the aws backend needs --aws-queue-url and --aws-dead-letter-queue-url, or --aws-create-resources".into(),
                    )),
                }
            })
            .await?;
        Ok(queue.clone())
    }
}
