//! The DynamoDB adapters keep the same contracts as the SQLite ones, against the endpoint
//! `AWS_ENDPOINT_URL` names (the test command starts a local emulator and sets it).

use aws_sdk_dynamodb::types::AttributeValue;
use cloud_images_aws::{
    DynamoContainerRepository, DynamoIdentityStore, DynamoMemberRepository,
    DynamoMetadefRepository, dynamo, dynamodb_client, load_config,
};

async fn fresh_table() -> (aws_sdk_dynamodb::Client, String) {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "set AWS_ENDPOINT_URL to a DynamoDB endpoint (scripts/test starts an emulator and sets it)"
    );
    let client = dynamodb_client(&load_config().await);
    let table = format!("contract-{}", uuid::Uuid::new_v4().simple());
    dynamo::ensure_table(&client, &table)
        .await
        .expect("create the test table");
    (client, table)
}

#[tokio::test]
async fn dynamodb_keeps_the_identity_store_contract() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::identity_store_contract(&DynamoIdentityStore::new(client, table)).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_member_repository_contract() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::member_repository_contract(&DynamoMemberRepository::new(client, table))
        .await;
}

#[tokio::test]
async fn dynamodb_keeps_the_container_repository_contract() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::container_repository_contract(&DynamoContainerRepository::new(
        client, table,
    ))
    .await;
}

#[tokio::test]
async fn dynamodb_keeps_the_metadef_repository_contract() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::metadef_repository_contract(&DynamoMetadefRepository::new(client, table))
        .await;
}

#[tokio::test]
async fn ten_concurrent_adds_of_one_member_give_exactly_one_success() {
    use chrono::Utc;
    use cloud_images_domain::image::ImageId;
    use cloud_images_domain::member::{Member, MemberStatus};
    use cloud_images_domain::ports::MemberRepository;
    let (client, table) = fresh_table().await;
    let repo = DynamoMemberRepository::new(client, table);
    let member = Member {
        image_id: ImageId::random(),
        member_id: cloud_images_domain::identity::TenantId::from_trusted("t1"),
        status: MemberStatus::Pending,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let results =
        futures_util::future::join_all((0..10).map(|_| repo.insert(&member, 128, &[]))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(repo.list(member.image_id).await.expect("list").len(), 1);
}

#[tokio::test]
async fn dynamodb_keeps_the_image_repository_contract() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::image_repository_contract(&cloud_images_aws::DynamoImageRepository::new(
        client, table,
    ))
    .await;
}

#[tokio::test]
async fn dynamodb_holds_quotas_exactly() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::image_quota_contract(&cloud_images_aws::DynamoImageRepository::new(
        client, table,
    ))
    .await;
}

/// Tables from before the counters: a tenant's first counted write counts its images.
#[tokio::test]
async fn dynamodb_counts_a_tenant_without_counters_from_its_images() {
    use cloud_images_domain::identity::TenantId;
    use cloud_images_domain::image::{Image, ImageId};
    use cloud_images_domain::ports::ImageRepository;
    use cloud_images_domain::quota::{TenantQuota, TenantUsage};
    let (client, table) = fresh_table().await;
    let repo = cloud_images_aws::DynamoImageRepository::new(client.clone(), table.clone());
    let owner = TenantId::from_trusted("before-counters");
    let none = TenantQuota::default();
    for _ in 0..3 {
        let mut image =
            Image::new_queued(ImageId::random(), Some(owner.clone()), chrono::Utc::now());
        image.size = Some(7);
        repo.insert(&image, &none, &[]).await.expect("insert");
    }
    client
        .delete_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("USAGE#before-counters".into()))
        .key("sk", AttributeValue::S("USAGE".into()))
        .send()
        .await
        .expect("forget the counters");
    let three = TenantQuota {
        max_images: Some(3),
        max_bytes: None,
    };
    let fourth = Image::new_queued(ImageId::random(), Some(owner), chrono::Utc::now());
    assert!(matches!(
        repo.insert(&fourth, &three, &[]).await,
        Err(cloud_images_domain::DomainError::QuotaExceeded(_))
    ));
    assert_eq!(
        repo.usage("before-counters").await.expect("usage"),
        TenantUsage {
            images: 3,
            bytes: 21
        }
    );
}

#[tokio::test]
async fn dynamodb_keeps_the_task_repository_contract() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::task_repository_contract(&cloud_images_aws::DynamoTaskRepository::new(
        client, table,
    ))
    .await;
}

#[tokio::test]
async fn ensuring_the_table_twice_leaves_ttl_on_the_expiry_attribute() {
    let (client, table) = fresh_table().await;
    dynamo::ensure_table(&client, &table)
        .await
        .expect("ensure an existing table");
    let described = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("describe TTL");
    let ttl = described
        .time_to_live_description()
        .expect("a TTL description");
    assert_eq!(ttl.attribute_name(), Some(dynamo::TTL_ATTRIBUTE));
    assert_eq!(
        ttl.time_to_live_status(),
        Some(&aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled)
    );
}

#[tokio::test]
async fn dynamodb_lists_translate_the_visibility_rule() {
    let (client, table) = fresh_table().await;
    cloud_images_testkit::list_visibility_contract(
        &cloud_images_aws::DynamoImageRepository::new(client.clone(), table.clone()),
        &DynamoMemberRepository::new(client, table),
    )
    .await;
}

/// The `events` attribute of the item at (`pk`, `sk`), as stored.
async fn stored_events(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: String,
    sk: &str,
) -> Option<String> {
    let item = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item?;
    item.get(dynamo::events::EVENTS)
        .map(|v| v.as_s().expect("a string").clone())
}

#[tokio::test]
async fn an_image_change_stores_its_events_in_its_own_write_and_a_refused_one_none() {
    use chrono::Utc;
    use cloud_images_aws::DynamoImageRepository;
    use cloud_images_domain::events::{Actor, image_events};
    use cloud_images_domain::identity::TenantId;
    use cloud_images_domain::image::{Image, ImageId};
    use cloud_images_domain::ports::ImageRepository;
    use cloud_images_domain::quota::TenantQuota;
    use dynamo::events::events_written;

    let (client, table) = fresh_table().await;
    let repo = DynamoImageRepository::new(client.clone(), table.clone());
    let actor = Actor {
        user_id: Some("u1".into()),
        tenant_id: Some("t1".into()),
        request_id: Some("req-1".into()),
    };
    let no_quota = TenantQuota::default();
    let image = Image::new_queued(
        ImageId::random(),
        Some(TenantId::from_trusted("t1")),
        Utc::now(),
    );
    let key = format!("IMAGE#{}", image.id);
    let created = image_events(None, Some(&image), &actor, Utc::now());
    repo.insert(&image, &no_quota, &created)
        .await
        .expect("insert");
    let raw_created = stored_events(&client, &table, key.clone(), "IMAGE").await;
    assert_eq!(
        events_written(raw_created.as_deref(), None).expect("read"),
        created
    );

    let mut renamed = image.clone();
    renamed.name = Some("renamed".into());
    renamed.version += 1;
    let updated = image_events(Some(&image), Some(&renamed), &actor, Utc::now());
    repo.update(&renamed, &image, &no_quota, &updated)
        .await
        .expect("update");
    let raw_updated = stored_events(&client, &table, key.clone(), "IMAGE").await;
    assert_eq!(
        events_written(raw_updated.as_deref(), raw_created.as_deref()).expect("read"),
        updated,
        "the item carries this write's events and no earlier ones"
    );

    // A stale writer changes nothing, events included.
    let mut stale = image.clone();
    stale.name = Some("stale".into());
    stale.version += 1;
    let refused = image_events(Some(&image), Some(&stale), &actor, Utc::now());
    assert!(
        repo.update(&stale, &image, &no_quota, &refused)
            .await
            .is_err()
    );
    assert_eq!(
        stored_events(&client, &table, key.clone(), "IMAGE").await,
        raw_updated
    );

    // A deletion's events need an item of their own, written in the same transaction.
    let deleted = image_events(Some(&renamed), None, &actor, Utc::now());
    repo.delete(&renamed, &deleted).await.expect("delete");
    let event_key = format!("EVENTS#{}", deleted[0].message_id);
    let raw_deleted = stored_events(&client, &table, event_key, "EVENTS").await;
    assert_eq!(
        events_written(raw_deleted.as_deref(), None).expect("read"),
        deleted
    );
}

#[tokio::test]
async fn an_image_with_large_properties_keeps_its_events_beside_it_not_in_it() {
    use chrono::Utc;
    use cloud_images_aws::DynamoImageRepository;
    use cloud_images_domain::events::{Actor, image_events};
    use cloud_images_domain::identity::TenantId;
    use cloud_images_domain::image::{Image, ImageId, ImageStatus};
    use cloud_images_domain::ports::ImageRepository;
    use cloud_images_domain::quota::TenantQuota;
    use dynamo::events::events_written;

    let (client, table) = fresh_table().await;
    let repo = DynamoImageRepository::new(client.clone(), table.clone());
    let mut saving = Image::new_queued(
        ImageId::random(),
        Some(TenantId::from_trusted("t1")),
        Utc::now(),
    );
    // 40 properties of 4 KB: an upload's three events repeat them, 480 KB in all, more
    // than an item may hold.
    for i in 0..40 {
        saving.properties.insert(format!("p{i}"), "v".repeat(4096));
    }
    saving.status = ImageStatus::Saving;
    let no_quota = TenantQuota::default();
    repo.insert(&saving, &no_quota, &[]).await.expect("insert");
    let mut active = saving.clone();
    active.status = ImageStatus::Active;
    active.version += 1;
    let events = image_events(Some(&saving), Some(&active), &Actor::service(), Utc::now());
    assert_eq!(events.len(), 3);
    repo.update(&active, &saving, &no_quota, &events)
        .await
        .expect("the activation is stored");
    let key = format!("IMAGE#{}", active.id);
    assert_eq!(stored_events(&client, &table, key, "IMAGE").await, None);
    for event in &events {
        let beside = stored_events(
            &client,
            &table,
            format!("EVENTS#{}", event.message_id),
            "EVENTS",
        )
        .await;
        assert_eq!(
            events_written(beside.as_deref(), None).expect("read"),
            std::slice::from_ref(event)
        );
    }
}
