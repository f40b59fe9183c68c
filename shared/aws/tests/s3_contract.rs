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
async fn s3_imports_resume_from_their_checkpoints() {
    let (client, bucket) = fresh_bucket().await;
    let store = S3ImageStore::new(client, bucket, "images/", Duration::ZERO);
    cloud_images_testkit::image_store_resume_contract(&store).await;
}

#[tokio::test]
async fn s3_stores_keep_the_copy_contract_across_buckets() {
    let (source_client, source_bucket) = fresh_bucket().await;
    let (target_client, target_bucket) = fresh_bucket().await;
    let source = S3ImageStore::new(source_client, source_bucket, "images/", Duration::ZERO);
    // 5 MiB parts, the least S3 accepts, so 12 MiB copies in three parts (5, 5 and 2 MiB).
    let target = S3ImageStore::new(target_client, target_bucket, "copies/", Duration::ZERO)
        .with_copy_part_size(5 * 1024 * 1024);
    cloud_images_testkit::image_store_copy_contract(&source, &target, 12 * 1024 * 1024).await;
}

#[tokio::test]
async fn a_copy_is_a_multipart_upload_of_part_copies_from_any_key() {
    use cloud_images_domain::image::ImageId;
    use cloud_images_domain::ports::ImageStore;

    let (source_client, source_bucket) = fresh_bucket().await;
    let (client, bucket) = fresh_bucket().await;
    // A prefix S3 needs percent-encoded in the copy source.
    let source = S3ImageStore::new(
        source_client,
        source_bucket,
        "image data+ü/",
        Duration::ZERO,
    );
    let target = S3ImageStore::new(client.clone(), bucket.clone(), "images/", Duration::ZERO)
        .with_copy_part_size(5 * 1024 * 1024);
    let id = ImageId::random();
    let data = cloud_images_testkit::sample(12 * 1024 * 1024, 9);
    let mut upload = source.begin_upload(id).await.expect("begin");
    upload.write(data.clone().into()).await.expect("write");
    upload.commit().await.expect("commit");
    let location = source.locate(id).expect("S3 names its objects");
    assert_eq!(
        target
            .copy_in(id, &location, &Default::default())
            .await
            .expect("copy"),
        Some(12 * 1024 * 1024)
    );
    let head = client
        .head_object()
        .bucket(&bucket)
        .key(format!("images/{id}"))
        .send()
        .await
        .expect("the copy exists");
    // A multipart object's ETag ends with its number of parts.
    assert!(
        head.e_tag()
            .is_some_and(|e| e.trim_matches('"').ends_with("-3")),
        "not three part copies: {:?}",
        head.e_tag()
    );
    let copy = client
        .get_object()
        .bucket(&bucket)
        .key(format!("images/{id}"))
        .send()
        .await
        .expect("read the copy");
    let copied = copy.body.collect().await.expect("the copy's bytes");
    assert!(copied.into_bytes() == data, "the copy's bytes differ");
}

#[tokio::test]
async fn a_copy_reaches_a_source_bucket_in_another_region() {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    use cloud_images_aws::s3_client_in;
    use cloud_images_domain::image::ImageId;
    use cloud_images_domain::ports::ImageStore;

    let (client, bucket) = fresh_bucket().await;
    let abroad = s3_client_in(&load_config().await, Some("eu-west-1"));
    let source_bucket = format!("contract-{}", uuid::Uuid::new_v4().simple());
    abroad
        .create_bucket()
        .bucket(&source_bucket)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .expect("create a bucket in eu-west-1");
    let source = S3ImageStore::new(abroad, source_bucket, "images/", Duration::ZERO);
    let target = S3ImageStore::new(client, bucket, "images/", Duration::ZERO)
        .with_copy_part_size(5 * 1024 * 1024);
    let id = ImageId::random();
    let mut upload = source.begin_upload(id).await.expect("begin");
    upload
        .write(cloud_images_testkit::sample(6 * 1024 * 1024, 3).into())
        .await
        .expect("write");
    upload.commit().await.expect("commit");
    let location = source.locate(id).expect("S3 names its objects");
    assert_eq!(
        target
            .copy_in(id, &location, &Default::default())
            .await
            .expect("copy across regions"),
        Some(6 * 1024 * 1024)
    );
    let missing = source
        .locate(ImageId::random())
        .expect("S3 names its objects");
    assert!(matches!(
        target.copy_in(id, &missing, &Default::default()).await,
        Err(cloud_images_domain::DomainError::NotFound(_))
    ));
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
