//! AWS adapters of Cloud Images, built on the official AWS SDK for Rust: image bytes and the
//! tenants' task objects in S3; identity, image records, memberships and task records in one
//! DynamoDB table; the task queue in SQS.
//!
//! Clients are built once per process from the standard AWS configuration chain; an
//! `AWS_ENDPOINT_URL` points them at an S3-compatible store or a local emulator (the code
//! never asks whether it is under test).

mod containers;
pub mod dynamo;
mod eventbridge;
mod identity;
mod images;
mod links;
mod members;
mod metadefs;
mod objects;
mod resources;
mod s3;
mod sqs;
mod tasks;

pub use containers::DynamoContainerRepository;
pub use eventbridge::{EVENT_SOURCE, EventBridgeSink};
pub use identity::DynamoIdentityStore;
pub use images::DynamoImageRepository;
pub use links::{AddressCheck, S3LinkedStorage};
pub use members::DynamoMemberRepository;
pub use metadefs::DynamoMetadefRepository;
pub use objects::S3ObjectStore;
pub use resources::{AwsResources, AwsSettings};
pub use s3::S3ImageStore;
pub use sqs::SqsTaskQueue;
pub use tasks::DynamoTaskRepository;

/// Loads the shared AWS configuration (region, credentials, endpoint) once, with the one
/// HTTP client every SDK client of the process shares: rustls on ring (the SDK's default
/// client is left out of the build, see the workspace manifest).
pub async fn load_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

/// A DynamoDB client for `config` that records the capacity of each call it makes.
pub fn dynamodb_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(dynamo::CapacityRecorder)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An EventBridge client for `config`.
pub fn eventbridge_client(config: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(config)
}

/// An SQS client for `config`.
pub fn sqs_client(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// An S3 client for `config`; path-style addressing when an endpoint override is set,
/// because S3-compatible stores and emulators rarely serve virtual-hosted buckets.
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    s3_client_in(config, None)
}

/// An S3 client for `config`, addressing buckets in `region` when given (a store whose
/// bucket lives outside the deployment's region).
pub fn s3_client_in(config: &aws_config::SdkConfig, region: Option<&str>) -> aws_sdk_s3::Client {
    let mut builder =
        aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    if let Some(region) = region {
        builder = builder.region(aws_sdk_s3::config::Region::new(region.to_owned()));
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Creates the bucket if it does not exist yet: for the local binary and tests; the SAM
/// template creates it in a deployment.
pub async fn ensure_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> cloud_images_domain::DomainResult<()> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(cloud_images_domain::DomainError::unavailable(
            "creating the image bucket",
            e,
        )),
    }
}
