//! The S3 stores keep the image-store and object-store contracts against the S3 endpoint `AWS_ENDPOINT_URL`
//! names (the test command starts a local emulator and sets it).

use std::time::Duration;

use cloud_images_aws::{S3ImageStore, S3ObjectStore, load_config, s3_client};

async fn fresh_bucket() -> (aws_sdk_s3::Client, String) {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "set AWS_ENDPOINT_URL to an S3 endpoint (scripts/test starts an emulator and sets it)"
    );
    let client = s3_client(&load_config().await);
    let bucket = format!("contract-{}", uuid::Uuid::new_v4().simple());
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create the test bucket");
    (client, bucket)
}

#[tokio::test]
async fn the_s3_store_keeps_the_image_store_contract() {
    let (client, bucket) = fresh_bucket().await;
    // Every incomplete upload is stale for the contract's sweep checks.
    let store = S3ImageStore::new(client, bucket, "images/", Duration::ZERO);
    cloud_images_testkit::image_store_contract(&store, 20 * 1024 * 1024).await;
}

#[tokio::test]
async fn the_s3_object_store_keeps_the_object_store_contract() {
    let (client, bucket) = fresh_bucket().await;
    let store = S3ObjectStore::new(client, bucket, "objects/");
    cloud_images_testkit::object_store_contract(&store).await;
}
