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

#[tokio::test]
async fn the_sweep_of_abandoned_uploads_leaves_clients_staged_uploads_alone() {
    use cloud_images_domain::image::ImageId;
    use cloud_images_domain::ports::ImageStore;
    use cloud_images_domain::staging::PartPlan;

    let (client, bucket) = fresh_bucket().await;
    // Zero: every multipart upload of the service's own is stale at once.
    let store = S3ImageStore::new(client.clone(), bucket.clone(), "images/", Duration::ZERO);
    let plan = PartPlan::for_size(20 * 1024 * 1024).expect("a valid size");
    let staged = store
        .begin_staged(ImageId::random(), &plan, Duration::from_secs(60))
        .await
        .expect("start a staged upload")
        .expect("S3 issues part URLs");
    assert_eq!(staged.part_urls.len(), 3);
    assert!(
        staged
            .part_urls
            .iter()
            .all(|u| u.contains("X-Amz-Signature"))
    );
    store.sweep_incomplete().await.expect("sweep");
    let open = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .expect("list multipart uploads");
    let ids: Vec<_> = open
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(ids, [staged.upload_id.as_str()]);
}
