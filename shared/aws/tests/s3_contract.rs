//! The S3 store keeps the image-store contract against the S3 endpoint `AWS_ENDPOINT_URL`
//! names (the test command starts a local emulator and sets it).

use std::time::Duration;

use cloud_images_aws::{S3ImageStore, load_config, s3_client};

#[tokio::test]
async fn the_s3_store_keeps_the_image_store_contract() {
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
    // Every incomplete upload is stale for the contract's sweep checks.
    let store = S3ImageStore::new(client, bucket, "images/", Duration::ZERO);
    cloud_images_testkit::image_store_contract(&store, 20 * 1024 * 1024).await;
}
