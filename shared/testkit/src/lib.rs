//! Contract suites for the domain's ports: every adapter (embedded and AWS) runs the same
//! checks, so a case that passes on one backend and fails on another is an adapter bug.
//!
//! Each suite panics with a message naming the broken promise; adapters call it from their
//! own tests with a freshly built, isolated instance.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeSet;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use cloud_images_domain::DomainError;
use cloud_images_domain::containers::{ContainerRecord, ObjectRecord};
use cloud_images_domain::identity::{AccountName, Role, Tenant, TenantId, User, UserId};
use cloud_images_domain::image::{Image, ImageId, ImageStatus};
use cloud_images_domain::member::{Member, MemberStatus};
use cloud_images_domain::ports::{
    ByteRange, ContainerRepository, IdentityStore, ImageRepository, ImageStore, MemberRepository,
    ObjectStore, StoredObject, TaskRepository, Viewer,
};
use cloud_images_domain::quota::{TenantQuota, TenantUsage};
use cloud_images_domain::task::{
    NewTask, ObjectPath, Task, TaskId, TaskInput, TaskStatus, TaskType,
};
use futures_util::StreamExt;

/// Deterministic pseudo-random bytes.
pub fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

async fn read(store: &dyn ImageStore, id: ImageId, range: Option<ByteRange>) -> Option<Vec<u8>> {
    let mut stream = store.read(id, range).await.ok()?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.ok()?);
    }
    Some(out)
}

async fn store_whole(store: &dyn ImageStore, id: ImageId, data: &[u8], chunk: usize) {
    let mut upload = store.begin_upload(id).await.unwrap();
    for piece in data.chunks(chunk) {
        upload.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    upload.commit().await.unwrap();
}

/// Waits for cleanup a store may do on a background task, then counts leftovers.
async fn leftovers_after_settling(store: &dyn ImageStore) -> usize {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    store.sweep_incomplete().await.unwrap()
}

/// Staged data (`PUT .../stage`): its own place, readable only once committed, replaced by
/// a later stage, gone when deleted, and never the image's data.
async fn staging_contract(store: &dyn ImageStore, large: usize) {
    let id = ImageId::random();
    assert!(
        store.open_staged(id, 0).await.is_err(),
        "staged data exists before any stage"
    );
    let mut stage = store.begin_stage(id).await.unwrap();
    stage.write(Bytes::from(sample(1024, 6))).await.unwrap();
    assert!(
        store.open_staged(id, 0).await.is_err(),
        "uncommitted staged data is readable"
    );
    stage.abort().await;
    assert!(
        store.open_staged(id, 0).await.is_err(),
        "aborted staged data is readable"
    );

    let data = sample(large, 7);
    for (round, payload) in [&data[..], &b"restaged"[..]].into_iter().enumerate() {
        let mut stage = store.begin_stage(id).await.unwrap();
        for chunk in payload.chunks(1024 * 1024 + 3) {
            stage.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        stage.commit().await.unwrap();
        let (size, mut body) = store.open_staged(id, 0).await.unwrap();
        let mut read_back = Vec::new();
        while let Some(chunk) = body.next().await {
            read_back.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(size, payload.len() as u64, "round {round}: staged size");
        assert_eq!(read_back, payload, "round {round}: staged bytes");
    }
    let (size, mut rest) = store.open_staged(id, 3).await.unwrap();
    let mut read_back = Vec::new();
    while let Some(chunk) = rest.next().await {
        read_back.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(size, 8, "a staged read from an offset gives the whole size");
    assert_eq!(read_back, b"taged", "a staged read from an offset");
    assert!(
        read(store, id, None).await.is_none(),
        "staged data became the image's data"
    );
    store
        .save_resume_point(id, Bytes::from_static(b"point"))
        .await
        .unwrap();
    store.delete_staged(id).await.unwrap();
    assert_eq!(
        store.load_resume_point(id).await.unwrap(),
        None,
        "deleting staged data keeps its resume point"
    );
    assert!(
        store.open_staged(id, 0).await.is_err(),
        "deleted staged data is readable"
    );
    store.delete_staged(id).await.unwrap();
}

/// Writes `data` to `upload` in 1 MiB pieces.
async fn write_all(upload: &mut dyn cloud_images_domain::ports::UploadSink, data: &[u8]) {
    for piece in data.chunks(1024 * 1024) {
        upload.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
}

/// Imports survive their process: a checkpoint makes what was written durable, and a new
/// sink taken up from it (after the first one was lost without a word, as a killed worker
/// loses it) completes data that reads back exactly; an upload that completed, was aborted
/// or is not the store's own does not resume. Resume points round-trip.
pub async fn image_store_resume_contract(store: &dyn ImageStore) {
    let id = ImageId::random();
    let data = sample(14 * 1024 * 1024, 21);
    let cut = 6 * 1024 * 1024;
    let mut first = store.begin_import(id).await.unwrap();
    write_all(first.as_mut(), &data[..cut]).await;
    let checkpoint = first
        .checkpoint()
        .await
        .unwrap()
        .expect("a 6 MiB import can checkpoint");
    assert_eq!(checkpoint.written, cut as u64, "the checkpoint's size");
    // Bytes past the checkpoint, then the process dies: no abort, no drop.
    write_all(first.as_mut(), &data[cut..cut + 3 * 1024 * 1024]).await;
    std::mem::forget(first);
    assert!(
        read(store, id, None).await.is_none(),
        "an interrupted import became the image's data"
    );

    store
        .save_resume_point(id, Bytes::from_static(b"first"))
        .await
        .unwrap();
    store
        .save_resume_point(id, Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(
        store.load_resume_point(id).await.unwrap().as_deref(),
        Some(&b"second"[..]),
        "a saved resume point replaces the older one"
    );

    let mut resumed = store
        .resume_import(id, &checkpoint)
        .await
        .unwrap()
        .expect("the checkpointed import resumes");
    write_all(resumed.as_mut(), &data[cut..]).await;
    resumed.commit().await.unwrap();
    assert_eq!(
        read(store, id, None).await.as_deref(),
        Some(&data[..]),
        "the resumed import's data"
    );
    assert!(
        store
            .resume_import(id, &checkpoint)
            .await
            .unwrap()
            .is_none(),
        "a completed import resumed again"
    );
    store.delete_resume_point(id).await.unwrap();
    assert_eq!(store.load_resume_point(id).await.unwrap(), None);
    store.delete_resume_point(id).await.unwrap();

    let other = ImageId::random();
    let mut aborted = store.begin_import(other).await.unwrap();
    write_all(aborted.as_mut(), &data[..cut]).await;
    let lost = aborted.checkpoint().await.unwrap().expect("checkpoint");
    aborted.abort().await;
    assert!(
        store.resume_import(other, &lost).await.unwrap().is_none(),
        "an aborted import resumed"
    );
    let forged = cloud_images_domain::ports::SinkCheckpoint {
        written: 1,
        token: "not this store's".into(),
    };
    assert!(
        store.resume_import(other, &forged).await.unwrap().is_none(),
        "a checkpoint the store never wrote resumed"
    );
    store.delete(id).await.unwrap();
}

/// Everything an [`ImageStore`] promises. `large` should span several multipart parts
/// where the adapter has them. The store's sweep must treat every incomplete upload as
/// stale (configure adapters that use an age threshold with zero).
pub async fn image_store_contract(store: &dyn ImageStore, large: usize) {
    // Small and large data round-trip, whole and by ranges, whatever the chunking.
    for (len, chunk, seed) in [
        (11, 3, 1),
        (large, 1024 * 1024 + 7, 2),
        (large, 64 * 1024, 3),
    ] {
        let id = ImageId::random();
        let data = sample(len, seed);
        store_whole(store, id, &data, chunk).await;
        assert_eq!(
            read(store, id, None).await.as_deref(),
            Some(&data[..]),
            "{len} bytes did not read back"
        );
        let last = (len - 1) as u64;
        for range in [
            ByteRange { first: 0, last: 0 },
            ByteRange {
                first: 1,
                last: last / 2,
            },
            ByteRange { first: last, last },
        ] {
            let slice = &data[range.first as usize..=range.last as usize];
            assert_eq!(
                read(store, id, Some(range)).await.as_deref(),
                Some(slice),
                "range {range:?} of {len} bytes"
            );
        }
        store.delete(id).await.unwrap();
        assert!(
            read(store, id, None).await.is_none(),
            "deleted data is still readable"
        );
    }

    // Nothing is readable before commit, and an abort leaves nothing behind.
    let id = ImageId::random();
    let mut upload = store.begin_upload(id).await.unwrap();
    upload
        .write(Bytes::from(sample(large.min(3 * 1024 * 1024), 4)))
        .await
        .unwrap();
    assert!(
        read(store, id, None).await.is_none(),
        "uncommitted data is readable"
    );
    upload.abort().await;
    assert!(
        read(store, id, None).await.is_none(),
        "aborted data is readable"
    );
    assert_eq!(
        store.sweep_incomplete().await.unwrap(),
        0,
        "an aborted upload left something behind"
    );

    // Dropping an upload (a client that vanished) is an abort.
    let mut upload = store.begin_upload(id).await.unwrap();
    upload.write(Bytes::from(sample(1024, 5))).await.unwrap();
    drop(upload);
    assert!(
        read(store, id, None).await.is_none(),
        "dropped data is readable"
    );
    assert_eq!(
        leftovers_after_settling(store).await,
        0,
        "a dropped upload left something behind"
    );

    // A committed upload replaces earlier data of the same image.
    store_whole(store, id, b"first", 5).await;
    store_whole(store, id, b"second", 2).await;
    assert_eq!(read(store, id, None).await.as_deref(), Some(&b"second"[..]));

    // Deleting is idempotent.
    store.delete(id).await.unwrap();
    store.delete(id).await.unwrap();
    store.delete(ImageId::random()).await.unwrap();

    // An upload abandoned without abort or drop (a killed process) is swept.
    let abandoned = ImageId::random();
    let mut upload = store.begin_upload(abandoned).await.unwrap();
    // Large enough that stores which buffer small bodies have started a multipart upload.
    upload.write(Bytes::from(sample(large, 6))).await.unwrap();
    std::mem::forget(upload);
    // Parts still in flight may land after the sweep lists uploads; give them a moment.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        store.sweep_incomplete().await.unwrap() >= 1,
        "the sweep missed an abandoned upload"
    );
    assert_eq!(
        store.sweep_incomplete().await.unwrap(),
        0,
        "the sweep left the abandoned upload"
    );
    assert!(read(store, abandoned, None).await.is_none());

    staging_contract(store, large).await;
}

/// Server-side copies ([`ImageStore::copy_in`] of what [`ImageStore::locate`] names) from
/// `source` into `target`, two stores of one kind: every byte of small, `large` (several
/// parts where the adapter copies in parts) and empty data, replacing older data; the
/// source keeps its data; a missing source is `NotFound` and leaves nothing; a location of
/// another kind is declined with `None`. `target`'s sweep must treat every incomplete upload
/// as stale, as for [`image_store_contract`].
pub async fn image_store_copy_contract(
    source: &dyn ImageStore,
    target: &dyn ImageStore,
    large: usize,
) {
    for (len, seed) in [(11, 21), (large, 22), (0, 23)] {
        let id = ImageId::random();
        let data = sample(len, seed);
        store_whole(source, id, &data, 1024 * 1024 + 7).await;
        store_whole(target, id, b"older data", 4).await;
        let location = source
            .locate(id)
            .expect("the source names where its data is");
        let progress = std::sync::atomic::AtomicU64::new(0);
        assert_eq!(
            target.copy_in(id, &location, &progress).await.unwrap(),
            Some(len as u64),
            "copying {len} bytes"
        );
        assert_eq!(
            progress.into_inner(),
            len as u64,
            "the progress of copying {len} bytes"
        );
        assert!(
            read(target, id, None).await.as_deref() == Some(&data[..]),
            "{len} copied bytes did not read back"
        );
        assert!(
            read(source, id, None).await.as_deref() == Some(&data[..]),
            "copying {len} bytes changed the source"
        );
        source.delete(id).await.unwrap();
        target.delete(id).await.unwrap();
    }

    // A missing source is NotFound, and the failed copy leaves nothing behind.
    let missing = ImageId::random();
    let location = source.locate(missing).unwrap();
    let copied = target
        .copy_in(missing, &location, &Default::default())
        .await;
    assert!(
        matches!(copied, Err(DomainError::NotFound(_))),
        "copying a missing image: {copied:?}"
    );
    assert!(
        read(target, missing, None).await.is_none(),
        "a failed copy left readable data"
    );
    assert_eq!(
        leftovers_after_settling(target).await,
        0,
        "a failed copy left something behind"
    );

    // Another kind of store's location is declined, even where that data exists.
    let id = ImageId::random();
    store_whole(source, id, b"elsewhere", 9).await;
    let location = source.locate(id).unwrap();
    let foreign = StoredObject {
        kind: "somewhere-else",
        ..location
    };
    assert_eq!(
        target
            .copy_in(id, &foreign, &Default::default())
            .await
            .unwrap(),
        None,
        "a location of another kind was not declined"
    );
    assert!(
        read(target, id, None).await.is_none(),
        "a declined copy stored data"
    );
    source.delete(id).await.unwrap();
}

fn name(raw: &str) -> AccountName {
    AccountName::parse(raw).unwrap()
}

/// Everything an [`IdentityStore`] promises: unique names, lookups by id and name, ordered lists.
pub async fn identity_store_contract(store: &dyn IdentityStore) {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let acme = Tenant {
        id: TenantId::random(),
        name: name("acme"),
        created_at: at,
    };
    store.insert_tenant(&acme).await.unwrap();
    let again = Tenant {
        id: TenantId::random(),
        ..acme.clone()
    };
    assert!(
        matches!(
            store.insert_tenant(&again).await,
            Err(DomainError::Conflict(_))
        ),
        "duplicate tenant name accepted"
    );
    assert_eq!(
        store.tenant_by_name(&name("acme")).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.tenant_by_id(&acme.id).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(store.tenant_by_name(&name("nobody")).await.unwrap(), None);
    let beta = Tenant {
        id: TenantId::random(),
        name: name("beta"),
        created_at: at,
    };
    store.insert_tenant(&beta).await.unwrap();
    let tenants: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(tenants, ["acme", "beta"]);

    let user = |user_name: &str, role: Role, password: Option<&str>| User {
        id: UserId::random(),
        name: name(user_name),
        tenant_id: acme.id.clone(),
        role,
        password_hash: password.map(str::to_owned),
        api_key_hash: format!("key-hash-of-{user_name}"),
        created_at: at,
        enabled: true,
        token_epoch: 0,
        failed_logins: 0,
        last_failed_login: None,
        revision: 0,
    };
    let zed = user("zed", Role::Reader, None);
    let alice = user("alice", Role::Admin, Some("pw-hash"));
    store.insert_user(&zed).await.unwrap();
    store.insert_user(&alice).await.unwrap();
    let clash = User {
        id: UserId::random(),
        ..alice.clone()
    };
    assert!(
        matches!(
            store.insert_user(&clash).await,
            Err(DomainError::Conflict(_))
        ),
        "duplicate user name accepted"
    );
    assert_eq!(
        store.user_by_name(&name("alice")).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.user_by_id(&zed.id).await.unwrap(), Some(zed.clone()));
    assert_eq!(store.user_by_id(&UserId::random()).await.unwrap(), None);
    let users: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .iter()
        .map(|u| u.name.to_string())
        .collect();
    assert_eq!(users, ["alice", "zed"]);
    user_lifecycle_contract(store, &beta, alice, zed).await;
}

/// Updates are compare-and-set on `revision` and move names; failed logins count apart from
/// revisions; deletes free names.
async fn user_lifecycle_contract(store: &dyn IdentityStore, beta: &Tenant, alice: User, zed: User) {
    let renamed = User {
        name: name("alicia"),
        enabled: false,
        password_hash: Some("new-pw-hash".into()),
        revision: 1,
        ..alice.clone()
    }
    .with_tokens_revoked();
    store.update_user(&renamed, &alice).await.unwrap();
    assert_eq!(store.user_by_name(&name("alice")).await.unwrap(), None);
    assert_eq!(
        store.user_by_name(&name("alicia")).await.unwrap(),
        Some(renamed.clone())
    );
    let stale = User {
        revision: 1,
        ..alice.clone()
    };
    assert!(
        matches!(
            store.update_user(&stale, &alice).await,
            Err(DomainError::Conflict(_))
        ),
        "an update from a stale revision landed"
    );
    let onto_zed = User {
        name: name("zed"),
        revision: 2,
        ..renamed.clone()
    };
    assert!(
        matches!(
            store.update_user(&onto_zed, &renamed).await,
            Err(DomainError::Conflict(_))
        ),
        "a rename onto another user's name landed"
    );
    assert_eq!(
        store.user_by_name(&name("zed")).await.unwrap(),
        Some(zed.clone())
    );

    let failed_at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 5, 0).unwrap();
    let failures = (0..6).map(|_| store.record_failed_login(&zed.id, failed_at));
    for counted in futures_util::future::join_all(failures).await {
        counted.unwrap();
    }
    let counted = store.user_by_id(&zed.id).await.unwrap().unwrap();
    assert_eq!(
        (counted.failed_logins, counted.last_failed_login),
        (6, Some(failed_at))
    );
    let promoted = User {
        role: Role::Member,
        revision: 1,
        ..counted.clone()
    };
    store.update_user(&promoted, &counted).await.unwrap();
    assert_eq!(
        store
            .user_by_id(&zed.id)
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        6,
        "an update lost the failed-login count"
    );
    store.clear_failed_logins(&zed.id).await.unwrap();
    let cleared = store.user_by_id(&zed.id).await.unwrap().unwrap();
    assert_eq!(
        (cleared.failed_logins, cleared.last_failed_login),
        (0, None)
    );

    store.delete_user(&cleared).await.unwrap();
    assert!(matches!(
        store.delete_user(&cleared).await,
        Err(DomainError::NotFound(_))
    ));
    assert_eq!(store.user_by_name(&name("zed")).await.unwrap(), None);
    store.record_failed_login(&zed.id, failed_at).await.unwrap();
    assert_eq!(
        store.user_by_id(&zed.id).await.unwrap(),
        None,
        "a count made a user"
    );
    store.delete_tenant(beta).await.unwrap();
    assert_eq!(store.tenant_by_name(&name("beta")).await.unwrap(), None);
    assert!(matches!(
        store.delete_tenant(beta).await,
        Err(DomainError::NotFound(_))
    ));
}

fn image_owned_by(owner: &str) -> Image {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let mut image = Image::new_queued(ImageId::random(), Some(TenantId::from_trusted(owner)), at);
    image.name = Some("contract".into());
    image.tags = vec!["b".into(), "a".into()];
    image.properties.insert("os_distro".into(), "debian".into());
    image
}

const NO_QUOTA: TenantQuota = TenantQuota {
    max_images: None,
    max_bytes: None,
};

fn usage(images: u64, bytes: u64) -> TenantUsage {
    TenantUsage { images, bytes }
}

/// Quotas hold exactly under concurrency: the counters move in the same atomic write as the
/// image, so of 40 concurrent creates at a quota of 10 exactly 10 land, and of 10 concurrent
/// uploads of 30 bytes at 100 exactly 3; deletes give the room back; a tenant over a lowered
/// quota can still change what grows nothing.
pub async fn image_quota_contract(repo: &dyn ImageRepository) {
    let owner = format!("quota-{}", ImageId::random());
    let ten = TenantQuota {
        max_images: Some(10),
        max_bytes: Some(100),
    };
    let images: Vec<Image> = (0..40).map(|_| image_owned_by(&owner)).collect();
    let created =
        futures_util::future::join_all(images.iter().map(|i| repo.insert(i, &ten, &[]))).await;
    let landed: Vec<Image> = images
        .iter()
        .zip(&created)
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i.clone())
        .collect();
    assert_eq!(landed.len(), 10, "{created:?}");
    assert!(
        created
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(DomainError::QuotaExceeded(_)))),
        "{created:?}"
    );
    assert_eq!(repo.usage(&owner).await.unwrap(), usage(10, 0));

    let uploads: Vec<Image> = landed
        .iter()
        .map(|i| {
            let mut active = i.clone();
            active.status = ImageStatus::Active;
            active.size = Some(30);
            active.version += 1;
            active
        })
        .collect();
    let stored = futures_util::future::join_all(
        uploads
            .iter()
            .zip(&landed)
            .map(|(next, current)| repo.update(next, current, &ten, &[])),
    )
    .await;
    let kept = stored.iter().filter(|r| r.is_ok()).count();
    assert_eq!(kept, 3, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(DomainError::QuotaExceeded(_)))),
        "{stored:?}"
    );
    assert_eq!(repo.usage(&owner).await.unwrap(), usage(10, 90));

    let (active, queued): (Vec<_>, Vec<_>) = uploads
        .iter()
        .zip(&landed)
        .zip(&stored)
        .partition(|(_, r)| r.is_ok());
    let ((first_active, _), _) = active[0];
    repo.delete(first_active, &[]).await.unwrap();
    assert_eq!(repo.usage(&owner).await.unwrap(), usage(9, 60));
    let ((_, still_queued), _) = queued[0];
    let mut retried = uploads[0].clone();
    retried.id = still_queued.id;
    retried.version = still_queued.version + 1;
    repo.update(&retried, still_queued, &ten, &[])
        .await
        .unwrap();
    assert_eq!(repo.usage(&owner).await.unwrap(), usage(9, 90));

    let lowered = TenantQuota {
        max_images: Some(1),
        max_bytes: Some(10),
    };
    let mut renamed = retried.clone();
    renamed.name = Some("renamed over a lowered quota".into());
    renamed.version += 1;
    repo.update(&renamed, &retried, &lowered, &[])
        .await
        .unwrap();
    assert!(matches!(
        repo.insert(&image_owned_by(&owner), &lowered, &[]).await,
        Err(DomainError::QuotaExceeded(_))
    ));
    assert_eq!(repo.usage(&owner).await.unwrap(), usage(9, 90));
}

/// The record operations every [`ImageRepository`] promises: unique ids, whole-record round
/// trips, and compare-and-set on `version` for every change.
pub async fn image_repository_contract(repo: &dyn ImageRepository) {
    let image = image_owned_by("tenant-a");
    repo.insert(&image, &NO_QUOTA, &[]).await.unwrap();
    assert!(
        matches!(
            repo.insert(&image, &NO_QUOTA, &[]).await,
            Err(DomainError::Conflict(_))
        ),
        "duplicate id accepted"
    );
    assert_eq!(
        repo.get(image.id).await.unwrap(),
        Some(image.clone()),
        "the record did not round-trip"
    );
    assert_eq!(repo.get(ImageId::random()).await.unwrap(), None);

    let mut active = image.clone();
    active.status = ImageStatus::Active;
    active.size = Some(10);
    active.checksum = Some("0".repeat(32));
    active.version = image.version + 1;
    repo.update(&active, &image, &NO_QUOTA, &[]).await.unwrap();
    assert_eq!(repo.get(image.id).await.unwrap(), Some(active.clone()));
    let mut stale = image.clone();
    stale.name = Some("lost update".into());
    stale.version = image.version + 1;
    assert!(
        matches!(
            repo.update(&stale, &image, &NO_QUOTA, &[]).await,
            Err(DomainError::Conflict(_))
        ),
        "a stale write won"
    );
    assert_eq!(repo.get(image.id).await.unwrap(), Some(active.clone()));

    assert_eq!(repo.usage("tenant-a").await.unwrap(), usage(1, 10));
    assert_eq!(repo.usage("tenant-b").await.unwrap(), usage(0, 0));

    let mut saving = image_owned_by("tenant-a");
    saving.status = ImageStatus::Saving;
    saving.size = Some(99);
    repo.insert(&saving, &NO_QUOTA, &[]).await.unwrap();
    let mut staging = image_owned_by("tenant-a");
    staging.status = ImageStatus::Uploading;
    repo.insert(&staging, &NO_QUOTA, &[]).await.unwrap();
    let mut interrupted = repo.receiving().await.unwrap();
    interrupted.sort_by_key(|i| i.status != ImageStatus::Saving);
    assert_eq!(
        interrupted,
        vec![saving.clone(), staging.clone()],
        "only the images in saving and uploading"
    );
    let queued_again = staging.requeue(staging.updated_at).unwrap();
    repo.update(&queued_again, &staging, &NO_QUOTA, &[])
        .await
        .unwrap();
    assert_eq!(repo.receiving().await.unwrap(), vec![saving.clone()]);
    let queued = saving.requeue(saving.updated_at).unwrap();
    repo.update(&queued, &saving, &NO_QUOTA, &[]).await.unwrap();
    let requeued = repo.get(saving.id).await.unwrap().unwrap();
    assert_eq!(
        (requeued.status, requeued.size),
        (ImageStatus::Queued, None)
    );

    assert!(
        matches!(
            repo.delete(&image, &[]).await,
            Err(DomainError::Conflict(_))
        ),
        "a stale delete won"
    );
    repo.delete(&active, &[]).await.unwrap();
    assert_eq!(repo.get(image.id).await.unwrap(), None);
}

/// Everything a [`MemberRepository`] promises: one membership per tenant, an atomic limit,
/// status changes, and removal.
pub async fn member_repository_contract(repo: &dyn MemberRepository) {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let image = ImageId::random();
    let member = |id: &str| Member {
        image_id: image,
        member_id: TenantId::from_trusted(id),
        status: MemberStatus::Pending,
        created_at: at,
        updated_at: at,
    };
    repo.insert(&member("t1"), 2, &[]).await.unwrap();
    assert!(
        matches!(
            repo.insert(&member("t1"), 2, &[]).await,
            Err(DomainError::Conflict(_))
        ),
        "duplicate member accepted"
    );
    repo.insert(&member("t2"), 2, &[]).await.unwrap();
    assert!(
        matches!(
            repo.insert(&member("t3"), 2, &[]).await,
            Err(DomainError::QuotaExceeded(_))
        ),
        "the limit was passed"
    );
    let listed: Vec<String> = repo
        .list(image)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.member_id.to_string())
        .collect();
    assert_eq!(listed, ["t1", "t2"]);

    let mut accepted = member("t1");
    accepted.status = MemberStatus::Accepted;
    repo.set_status(&accepted, &[]).await.unwrap();
    assert_eq!(repo.get(image, "t1").await.unwrap(), Some(accepted));
    assert!(matches!(
        repo.set_status(&member("t9"), &[]).await,
        Err(DomainError::NotFound(_))
    ));

    repo.delete(image, "t2", &[]).await.unwrap();
    assert!(matches!(
        repo.delete(image, "t2", &[]).await,
        Err(DomainError::NotFound(_))
    ));
    assert_eq!(repo.get(image, "t2").await.unwrap(), None);
    repo.delete_all(image).await.unwrap();
    assert!(repo.list(image).await.unwrap().is_empty());
    assert!(repo.list(ImageId::random()).await.unwrap().is_empty());
}

/// Everything a [`TaskQueue`] promises: at-least-once delivery with leases, acks that remove,
/// redelivery of what was not acked, and dead letters after `max_receives` (the adapter
/// under test must be built with `max_receives = 2`).
pub async fn task_queue_contract(queue: &dyn cloud_images_domain::ports::TaskQueue) {
    use std::time::Duration;
    let lease = Duration::from_secs(1);
    let after_lease = Duration::from_millis(1500);
    for body in ["one", "two", "three"] {
        queue.send(body).await.unwrap();
    }
    let first = queue.receive(10, lease).await.unwrap();
    let bodies: BTreeSet<&str> = first.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(
        bodies,
        BTreeSet::from(["one", "two", "three"]),
        "every message is delivered"
    );
    assert!(first.iter().all(|d| d.receive_count == 1));
    assert!(
        queue.receive(10, lease).await.unwrap().is_empty(),
        "leased messages are hidden"
    );
    assert_eq!(
        queue.depth().await.unwrap(),
        3,
        "leased messages still count"
    );

    let one = first.iter().find(|d| d.body == "one").unwrap();
    queue.ack(&one.receipt).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 2, "an acked message is gone");
    tokio::time::sleep(after_lease).await;
    let again = queue.receive(10, lease).await.unwrap();
    let bodies: BTreeSet<&str> = again.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(
        bodies,
        BTreeSet::from(["two", "three"]),
        "unacked messages come back after the lease; acked ones never"
    );
    assert!(again.iter().all(|d| d.receive_count == 2), "{again:?}");
    let two = again.iter().find(|d| d.body == "two").unwrap();
    queue.ack(&two.receipt).await.unwrap();

    // "three" has now been delivered twice without an ack: it is poison.
    tokio::time::sleep(after_lease).await;
    assert!(
        queue.receive(10, lease).await.unwrap().is_empty(),
        "a poison message was delivered a third time"
    );
    assert_eq!(
        queue.dead_letter_count().await.unwrap(),
        1,
        "the poison message is in the dead letters"
    );
}

/// A time `offset` seconds from now, in whole seconds as every store keeps them.
fn seconds_from_now(offset: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp() + offset, 0)
        .unwrap()
}

fn task_of(owner: &str) -> Task {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let input = [
        ("import_from", "images/web.vhd"),
        ("import_from_format", "vhd"),
    ]
    .into_iter()
    .collect();
    let parsed = TaskInput::parse(TaskType::Import, &input).expect("a valid import");
    let new = NewTask {
        kind: TaskType::Import,
        input,
        parsed,
    };
    Task::new_pending(new, TenantId::from_trusted(owner), at)
}

fn task_ids(tasks: &[Task]) -> BTreeSet<TaskId> {
    tasks.iter().map(|t| t.id).collect()
}

/// Everything a [`TaskRepository`] promises: unique ids, whole-record round trips,
/// compare-and-set on `version`, lists by owner, and records past their expiry gone for
/// every read (whether or not the store has removed them yet).
pub async fn task_repository_contract(repo: &dyn TaskRepository) {
    let created = task_of("tenant-a");
    let mut task = created.clone();
    task.status = TaskStatus::Processing;
    task.result = Some(
        [("image_id", "3f1b6c8e-8d47-4f55-9a3c-1e2d3c4b5a69")]
            .into_iter()
            .collect(),
    );
    task.message = "converting".into();
    task.updated_at = created.created_at + chrono::Duration::minutes(1);
    task.expires_at = Some(seconds_from_now(86_400));
    task.lease_until = Some(created.created_at + chrono::Duration::minutes(10));
    task.attempts = 2;
    task.version = 3;
    repo.insert(&task, &[]).await.unwrap();
    assert!(
        matches!(repo.insert(&task, &[]).await, Err(DomainError::Conflict(_))),
        "duplicate id accepted"
    );
    assert_eq!(
        repo.get(task.id).await.unwrap(),
        Some(task.clone()),
        "the record did not round-trip"
    );
    assert_eq!(repo.get(TaskId::random()).await.unwrap(), None);

    let mut done = task.clone();
    done.status = TaskStatus::Success;
    done.lease_until = None;
    done.message = String::new();
    done.version = task.version + 1;
    repo.update(&done, task.version, &[]).await.unwrap();
    assert_eq!(repo.get(task.id).await.unwrap(), Some(done.clone()));
    let mut stale = task.clone();
    stale.status = TaskStatus::Failure;
    stale.version = task.version + 1;
    assert!(
        matches!(
            repo.update(&stale, task.version, &[]).await,
            Err(DomainError::Conflict(_))
        ),
        "a stale write won"
    );
    assert_eq!(repo.get(task.id).await.unwrap(), Some(done.clone()));
    let never = task_of("tenant-a");
    assert!(
        matches!(
            repo.update(&never, never.version, &[]).await,
            Err(DomainError::Conflict(_))
        ),
        "updating a task that was never stored succeeded"
    );
    assert_eq!(
        repo.get(never.id).await.unwrap(),
        None,
        "an update created a task"
    );

    // Owners are matched exactly, not by prefix.
    let second = task_of("tenant-a");
    let other = task_of("tenant-a-2");
    repo.insert(&second, &[]).await.unwrap();
    repo.insert(&other, &[]).await.unwrap();
    let listed = repo.list_owned("tenant-a").await.unwrap();
    assert_eq!(task_ids(&listed), BTreeSet::from([done.id, second.id]));
    assert!(listed.contains(&done), "listed records are whole");
    assert_eq!(
        repo.list_owned("tenant-a-2").await.unwrap(),
        std::slice::from_ref(&other)
    );
    assert!(repo.list_owned("tenant-z").await.unwrap().is_empty());

    // An image's tasks are found by the image, and only its own.
    let image = ImageId::random();
    let mut on_image = task_of("tenant-i");
    on_image.image_id = Some(image);
    let mut on_other_image = task_of("tenant-i");
    on_other_image.image_id = Some(ImageId::random());
    repo.insert(&on_image, &[]).await.unwrap();
    repo.insert(&on_other_image, &[]).await.unwrap();
    assert_eq!(
        repo.list_for_image(image).await.unwrap(),
        std::slice::from_ref(&on_image)
    );
    let mut image_task_done = on_image.clone();
    image_task_done.status = TaskStatus::Success;
    image_task_done.version += 1;
    repo.update(&image_task_done, on_image.version, &[])
        .await
        .unwrap();
    assert_eq!(
        repo.list_for_image(image).await.unwrap(),
        std::slice::from_ref(&image_task_done),
        "an updated task is still found by its image"
    );
    assert!(
        repo.list_for_image(ImageId::random())
            .await
            .unwrap()
            .is_empty()
    );

    // Past its expiry a record is gone, whether it was stored so or updated so.
    let mut expired = task_of("tenant-a");
    expired.status = TaskStatus::Failure;
    expired.expires_at = Some(seconds_from_now(-3600));
    repo.insert(&expired, &[]).await.unwrap();
    assert_eq!(
        repo.get(expired.id).await.unwrap(),
        None,
        "an expired task is readable"
    );
    let mut finished = second.clone();
    finished.status = TaskStatus::Failure;
    finished.expires_at = Some(seconds_from_now(-1));
    finished.version = second.version + 1;
    repo.update(&finished, second.version, &[]).await.unwrap();
    assert_eq!(
        repo.get(second.id).await.unwrap(),
        None,
        "an expired task is readable"
    );
    assert_eq!(
        task_ids(&repo.list_owned("tenant-a").await.unwrap()),
        BTreeSet::from([done.id]),
        "expired tasks are listed"
    );

    let purged = repo.purge_expired().await.unwrap();
    assert!(
        purged <= 2,
        "the purge removed {purged} records, only 2 had expired"
    );
    assert_eq!(
        repo.get(done.id).await.unwrap(),
        Some(done.clone()),
        "the purge removed a live task"
    );
    assert_eq!(
        repo.get(other.id).await.unwrap(),
        Some(other),
        "the purge removed a task without expiry"
    );
    assert_eq!(repo.get(expired.id).await.unwrap(), None);
    assert_eq!(
        task_ids(&repo.list_owned("tenant-a").await.unwrap()),
        BTreeSet::from([done.id])
    );
}

fn object_path(container: &str, object: &str) -> ObjectPath {
    ObjectPath::new(container, object, "contract").unwrap()
}

async fn put_object(store: &dyn ObjectStore, tenant: &str, path: &ObjectPath, chunks: &[&[u8]]) {
    let mut sink = store.create(tenant, path).await.unwrap();
    for chunk in chunks {
        sink.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    sink.commit().await.unwrap();
}

/// The size `open` reports and every byte of its stream.
async fn read_object(
    store: &dyn ObjectStore,
    tenant: &str,
    path: &ObjectPath,
) -> Result<(u64, Vec<u8>), DomainError> {
    let (size, mut stream) = store.open(tenant, path).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok((size, out))
}

async fn collect(mut stream: cloud_images_domain::ports::ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn is_not_found<T>(result: &Result<T, DomainError>) -> bool {
    matches!(result, Err(DomainError::NotFound(_)))
}

/// Everything an [`ObjectStore`] promises: exact round trips of any size, objects scoped to
/// their tenant and container, nothing visible before commit, replacement on overwrite, and
/// tenant ids that cannot address anything outside their own place.
pub async fn object_store_contract(store: &dyn ObjectStore) {
    let (tenant, stranger) = ("tenant-a", "tenant-b");
    let path = object_path("images", "2026/web.vhd");
    put_object(store, tenant, &path, &[b"hello ", b"object ", b"world"]).await;
    assert_eq!(
        read_object(store, tenant, &path).await.unwrap(),
        (18, b"hello object world".to_vec())
    );
    let absent = read_object(store, tenant, &object_path("images", "2026/absent.vhd")).await;
    assert!(is_not_found(&absent), "absent object: {absent:?}");
    let elsewhere = read_object(store, tenant, &object_path("other", "2026/web.vhd")).await;
    assert!(is_not_found(&elsewhere), "another container: {elsewhere:?}");
    let foreign = read_object(store, stranger, &path).await;
    assert!(
        is_not_found(&foreign),
        "another tenant read it: {foreign:?}"
    );
    put_object(store, stranger, &path, &[b"theirs"]).await;
    assert_eq!(
        read_object(store, stranger, &path).await.unwrap(),
        (6, b"theirs".to_vec())
    );
    assert_eq!(
        read_object(store, tenant, &path).await.unwrap().1,
        b"hello object world",
        "another tenant's write replaced the object"
    );

    // Nothing is visible before commit, and an abort or a drop leaves nothing.
    let fresh = object_path("images", "fresh.vhd");
    let mut sink = store.create(tenant, &fresh).await.unwrap();
    sink.write(Bytes::from_static(b"partial")).await.unwrap();
    assert!(
        is_not_found(&read_object(store, tenant, &fresh).await),
        "uncommitted object is readable"
    );
    sink.abort().await;
    assert!(
        is_not_found(&read_object(store, tenant, &fresh).await),
        "aborted object is readable"
    );
    let mut sink = store.create(tenant, &fresh).await.unwrap();
    sink.write(Bytes::from_static(b"partial")).await.unwrap();
    drop(sink);
    assert!(
        is_not_found(&read_object(store, tenant, &fresh).await),
        "dropped object is readable"
    );

    // An overwrite in progress leaves the old object readable until it commits.
    let mut sink = store.create(tenant, &path).await.unwrap();
    sink.write(Bytes::from_static(b"replacement"))
        .await
        .unwrap();
    assert_eq!(
        read_object(store, tenant, &path).await.unwrap().1,
        b"hello object world",
        "an uncommitted overwrite is visible"
    );
    sink.commit().await.unwrap();
    assert_eq!(
        read_object(store, tenant, &path).await.unwrap(),
        (11, b"replacement".to_vec())
    );

    // Larger than one multipart part where the store has parts.
    let large = sample(9 * 1024 * 1024 + 1234, 7);
    let big = object_path("images", "big.vhd");
    let chunks: Vec<&[u8]> = large.chunks(1024 * 1024).collect();
    put_object(store, tenant, &big, &chunks).await;
    let (size, bytes) = read_object(store, tenant, &big).await.unwrap();
    assert_eq!(size, large.len() as u64);
    assert!(bytes == large, "{} bytes did not read back", large.len());

    // Ranges, joins and deletes.
    let range = collect(
        store
            .read(
                tenant,
                &big,
                Some(ByteRange {
                    first: 5,
                    last: 1_048_580,
                }),
            )
            .await
            .unwrap(),
    )
    .await;
    assert!(range == large[5..=1_048_580], "a range read back wrong");
    let small = object_path("images", "small.vhd");
    put_object(store, tenant, &small, &[b"tail"]).await;
    let joined = object_path("joined", "whole.vhd");
    let (big_size, small_size) = (large.len() as u64, 4);
    let parts = [
        (big.clone(), big_size),
        (small.clone(), small_size),
        (big.clone(), big_size),
    ];
    store.join(tenant, &joined, &parts).await.unwrap();
    let (size, bytes) = read_object(store, tenant, &joined).await.unwrap();
    assert_eq!(size, 2 * large.len() as u64 + 4);
    assert!(
        bytes[..large.len()] == large[..]
            && bytes[large.len()..large.len() + 4] == b"tail"[..]
            && bytes[large.len() + 4..] == large[..],
        "a join read back wrong"
    );
    let missing_part = store
        .join(
            tenant,
            &object_path("joined", "broken"),
            &[(small.clone(), 4), (object_path("images", "absent"), 1)],
        )
        .await;
    assert!(
        is_not_found(&missing_part),
        "a join of a missing part: {missing_part:?}"
    );
    assert!(
        is_not_found(&read_object(store, tenant, &object_path("joined", "broken")).await),
        "a failed join left an object"
    );
    store.delete(stranger, &small).await.unwrap();
    assert!(
        read_object(store, tenant, &small).await.is_ok(),
        "another tenant deleted the object"
    );
    store.delete(tenant, &small).await.unwrap();
    assert!(
        is_not_found(&read_object(store, tenant, &small).await),
        "a deleted object reads"
    );
    store.delete(tenant, &small).await.unwrap();

    for bad in ["", ".", "..", ".hidden", "a/b", "../tenant-a", "a\\b"] {
        assert!(
            matches!(
                read_object(store, bad, &path).await,
                Err(DomainError::Invalid(_))
            ),
            "tenant id {bad:?} was accepted for open"
        );
        assert!(
            matches!(store.create(bad, &path).await, Err(DomainError::Invalid(_))),
            "tenant id {bad:?} was accepted for create"
        );
    }
}

/// A store's list is a translation of the domain's visibility rule: on generated images of
/// four tenants (every visibility, hidden or not, some shared with memberships of every
/// status, some whose memberships outlived a change away from `shared`), every viewer's pages
/// for every visibility scope, member status and sort hold exactly the images
/// [`visibility::listed`] admits and [`listing::matches`] keeps, in the query's order, with
/// no image twice. `images` and `members` must be fresh and share one store.
pub async fn list_visibility_contract(
    images: &dyn ImageRepository,
    members: &dyn MemberRepository,
) {
    use cloud_images_domain::image::Visibility;
    use cloud_images_domain::listing::{self, PageLimits, parse_list_query};
    use cloud_images_domain::visibility;

    let tenants = ["tenant-a", "tenant-b", "tenant-c", "tenant-d"];
    let visibilities = [
        Visibility::Public,
        Visibility::Private,
        Visibility::Shared,
        Visibility::Community,
    ];
    let statuses = [
        MemberStatus::Pending,
        MemberStatus::Accepted,
        MemberStatus::Rejected,
    ];
    let mut state: u64 = 0x5eed;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let base = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let mut all = Vec::new();
    let mut memberships = std::collections::HashMap::new();
    for n in 0..48u32 {
        let owner = tenants[next(4) as usize];
        let mut image =
            Image::new_queued(ImageId::random(), Some(TenantId::from_trusted(owner)), base);
        image.created_at = base + chrono::Duration::seconds(i64::from(n % 20));
        image.updated_at = image.created_at;
        image.name = (next(5) > 0).then(|| format!("image-{:02}", next(10)));
        image.os_hidden = next(8) == 0;
        image.visibility = Visibility::Shared;
        images.insert(&image, &NO_QUOTA, &[]).await.unwrap();
        for tenant in tenants.iter().filter(|t| **t != owner) {
            if next(2) == 0 {
                let status = statuses[next(3) as usize];
                let member = Member {
                    image_id: image.id,
                    member_id: TenantId::from_trusted(*tenant),
                    status,
                    created_at: base,
                    updated_at: base,
                };
                members.insert(&member, 128, &[]).await.unwrap();
                memberships.insert((image.id, (*tenant).to_owned()), status);
            }
        }
        // The visibility it ends with; memberships of formerly shared images stay behind.
        let visibility = visibilities[next(4) as usize];
        if visibility != Visibility::Shared {
            let mut changed = image.revise(image.clone(), image.updated_at);
            changed.visibility = visibility;
            images
                .update(&changed, &image, &NO_QUOTA, &[])
                .await
                .unwrap();
            image = changed;
        }
        all.push(image);
    }

    let scopes = [
        "",
        "visibility=all",
        "visibility=public",
        "visibility=community",
        "visibility=private",
        "visibility=shared",
        "visibility=shared&member_status=pending",
        "visibility=shared&member_status=rejected",
        "visibility=shared&member_status=all",
        "os_hidden=true",
        "sort_key=name&sort_dir=asc",
        "visibility=all&sort_key=updated_at",
    ];
    let viewers = tenants
        .iter()
        .map(|t| Viewer {
            tenant: TenantId::from_trusted(*t),
            is_admin: false,
        })
        .chain([Viewer {
            tenant: TenantId::from_trusted("tenant-admin"),
            is_admin: true,
        }]);
    for viewer in viewers {
        for scope in scopes {
            let mut pairs: Vec<(String, String)> = scope
                .split('&')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            pairs.push(("limit".into(), "5".into()));
            let query = parse_list_query(&pairs, PageLimits::default()).unwrap();
            let mut wanted: Vec<&Image> = all
                .iter()
                .filter(|i| {
                    let membership = memberships.get(&(i.id, viewer.tenant.to_string())).copied();
                    visibility::listed(&viewer, &query, i, membership)
                        && listing::matches(&query, i)
                })
                .collect();
            wanted.sort_by(|a, b| listing::compare(&query.sort, a, b));
            let wanted: Vec<ImageId> = wanted.iter().map(|i| i.id).collect();

            let mut got = Vec::new();
            let mut after: Option<Image> = None;
            loop {
                let mut page = images.list(&viewer, &query, after.as_ref()).await.unwrap();
                let more = page.len() > query.limit;
                page.truncate(query.limit);
                got.extend(page.iter().map(|i| i.id));
                after = page.last().cloned();
                if !more || got.len() > all.len() {
                    break;
                }
            }
            assert_eq!(
                got, wanted,
                "{} (admin: {}) ?{scope}",
                viewer.tenant, viewer.is_admin
            );
        }
    }
}

fn object_record(name: &str, size: u64, etag: &str) -> ObjectRecord {
    ObjectRecord {
        name: name.into(),
        size,
        etag: etag.into(),
        content_type: "application/octet-stream".into(),
        last_modified: Utc.timestamp_opt(1_780_000_000, 123_456_000).unwrap(),
        manifest: None,
    }
}

fn container_record(name: &str) -> ContainerRecord {
    ContainerRecord {
        name: name.into(),
        objects: 0,
        bytes: 0,
        created_at: Utc.timestamp_opt(1_780_000_000, 0).unwrap(),
        link: None,
    }
}

/// Everything a [`ContainerRepository`] promises: containers per tenant, created once and
/// deleted only empty; object records in byte order of their names, replaced by name; the
/// counters moved by every record write; a byte quota that refuses only growth; and nothing
/// of one tenant visible to another.
pub async fn container_repository_contract(repo: &dyn ContainerRepository) {
    let (tenant, stranger) = ("tenant-a", "tenant-b");
    assert!(
        repo.create_container(tenant, &container_record("backups"))
            .await
            .unwrap()
    );
    assert!(
        !repo
            .create_container(tenant, &container_record("backups"))
            .await
            .unwrap()
    );
    assert!(
        repo.create_container(tenant, &container_record("archive"))
            .await
            .unwrap()
    );
    assert!(
        repo.create_container(stranger, &container_record("backups"))
            .await
            .unwrap()
    );
    let names = |list: Vec<ContainerRecord>| list.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(
        names(repo.containers(tenant, "", None, 10).await.unwrap()),
        ["archive", "backups"]
    );
    assert_eq!(
        names(repo.containers(tenant, "archive", None, 10).await.unwrap()),
        ["backups"]
    );
    assert_eq!(
        names(repo.containers(tenant, "", Some("b"), 10).await.unwrap()),
        ["archive"]
    );
    assert_eq!(
        names(repo.containers(tenant, "", None, 1).await.unwrap()),
        ["archive"]
    );
    assert!(repo.container(tenant, "absent").await.unwrap().is_none());
    // A linked container keeps its link, sealed secret and all.
    let link = cloud_images_domain::links::ContainerLink {
        endpoint: "https://s3.example.com".into(),
        region: "eu-west-1".into(),
        bucket: "their-bucket".into(),
        prefix: "exports/".into(),
        access_key_id: Some("AKIAEXAMPLE".into()),
        sealed_secret: Some("c2VhbGVk".into()),
        role_arn: None,
    };
    let linked = ContainerRecord {
        link: Some(link),
        ..container_record("linked")
    };
    assert!(repo.create_container(tenant, &linked).await.unwrap());
    assert_eq!(
        repo.container(tenant, "linked").await.unwrap(),
        Some(linked)
    );
    repo.delete_container(tenant, "linked").await.unwrap();

    let path = |object: &str| object_path("backups", object);
    let first = object_record("disk.vhd", 100, "aa");
    assert_eq!(
        repo.put_object(tenant, "backups", &first, None)
            .await
            .unwrap(),
        None
    );
    // Names in byte order: "Z" < "a" < "é" (0xC3).
    for (name, size) in [("a/2", 1), ("a/1", 2), ("Zebra", 3), ("é", 4)] {
        repo.put_object(tenant, "backups", &object_record(name, size, "bb"), None)
            .await
            .unwrap();
    }
    let listed: Vec<String> = repo
        .objects(tenant, "backups", "", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(listed, ["Zebra", "a/1", "a/2", "disk.vhd", "é"]);
    let after: Vec<String> = repo
        .objects(tenant, "backups", "a/1", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(after, ["a/2", "disk.vhd"]);
    assert_eq!(
        repo.object(tenant, &path("disk.vhd")).await.unwrap(),
        Some(first.clone())
    );

    let counted = repo.container(tenant, "backups").await.unwrap().unwrap();
    assert_eq!((counted.objects, counted.bytes), (5, 110));
    let replacement = object_record("disk.vhd", 40, "cc");
    assert_eq!(
        repo.put_object(tenant, "backups", &replacement, None)
            .await
            .unwrap(),
        Some(first)
    );
    let counted = repo.container(tenant, "backups").await.unwrap().unwrap();
    assert_eq!(
        (counted.objects, counted.bytes),
        (5, 50),
        "a replacement moved the counters wrong"
    );
    let usage = repo.usage(tenant).await.unwrap();
    assert_eq!((usage.containers, usage.objects, usage.bytes), (2, 5, 50));

    // The quota refuses growth past it, and never a shrink.
    let full = repo
        .put_object(
            tenant,
            "archive",
            &object_record("big", 51, "dd"),
            Some(100),
        )
        .await;
    assert!(
        matches!(full, Err(DomainError::QuotaExceeded(_))),
        "growth past the quota: {full:?}"
    );
    assert!(
        repo.object(tenant, &object_path("archive", "big"))
            .await
            .unwrap()
            .is_none()
    );
    repo.put_object(
        tenant,
        "archive",
        &object_record("big", 50, "dd"),
        Some(100),
    )
    .await
    .unwrap();
    repo.put_object(tenant, "archive", &object_record("big", 10, "dd"), Some(20))
        .await
        .unwrap();
    assert_eq!(repo.usage(tenant).await.unwrap().bytes, 60);

    let absent = repo
        .put_object(tenant, "absent", &object_record("x", 1, "ee"), None)
        .await;
    assert!(
        is_not_found(&absent),
        "a record in a missing container: {absent:?}"
    );

    // Another tenant sees none of it.
    assert!(
        repo.object(stranger, &path("disk.vhd"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        repo.objects(stranger, "backups", "", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(repo.usage(stranger).await.unwrap().bytes, 0);
    assert!(
        repo.delete_object(stranger, &path("disk.vhd"))
            .await
            .unwrap()
            .is_none()
    );

    // Deletes.
    let busy = repo.delete_container(tenant, "backups").await;
    assert!(
        matches!(busy, Err(DomainError::Conflict(_))),
        "deleting a full container: {busy:?}"
    );
    assert_eq!(
        repo.delete_object(tenant, &path("disk.vhd")).await.unwrap(),
        Some(replacement)
    );
    assert!(
        repo.delete_object(tenant, &path("disk.vhd"))
            .await
            .unwrap()
            .is_none()
    );
    for name in ["a/2", "a/1", "Zebra", "é"] {
        assert!(
            repo.delete_object(tenant, &path(name))
                .await
                .unwrap()
                .is_some()
        );
    }
    let counted = repo.container(tenant, "backups").await.unwrap().unwrap();
    assert_eq!((counted.objects, counted.bytes), (0, 0));
    repo.delete_container(tenant, "backups").await.unwrap();
    assert!(is_not_found(
        &repo.delete_container(tenant, "backups").await
    ));
    assert!(
        repo.container(stranger, "backups").await.unwrap().is_some(),
        "another tenant's container went"
    );
}

fn metadef_namespace(name: &str, at: DateTime<Utc>) -> cloud_images_domain::metadefs::Namespace {
    use cloud_images_domain::metadefs::{Association, Namespace, NamespaceVisibility};
    Namespace {
        namespace: name.into(),
        display_name: Some(format!("{name} shown")),
        description: None,
        visibility: NamespaceVisibility::Private,
        protected: false,
        owner: "owner-1".into(),
        created_at: at,
        updated_at: at,
        resource_type_associations: vec![Association {
            name: "OS::Glance::Image".into(),
            prefix: Some("hw_".into()),
            properties_target: None,
            created_at: at,
            updated_at: at,
        }],
    }
}

/// Metadef records: whole namespaces round-trip, every write compares and sets the
/// revision it read, a rename moves the record and cannot take a used name, lists are in
/// name order without contents, and resource types are added once.
pub async fn metadef_repository_contract(repo: &dyn cloud_images_domain::ports::MetadefRepository) {
    use cloud_images_domain::metadefs::{Contents, ResourceType};
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let suffix = ImageId::random().to_string();
    let (a, b, c) = (
        format!("A::{suffix}"),
        format!("B::{suffix}"),
        format!("C::{suffix}"),
    );
    let mut contents = Contents::default();
    contents
        .put_tags(&a, &["t1".into(), "t2".into()], false, at)
        .unwrap();
    repo.insert_namespace(&metadef_namespace(&a, at), &contents)
        .await
        .unwrap();
    repo.insert_namespace(&metadef_namespace(&b, at), &Contents::default())
        .await
        .unwrap();
    assert!(
        matches!(
            repo.insert_namespace(&metadef_namespace(&a, at), &Contents::default())
                .await,
            Err(DomainError::Conflict(_))
        ),
        "a namespace name was stored twice"
    );
    let read = repo
        .namespace(&a)
        .await
        .unwrap()
        .expect("stored namespace reads back");
    assert_eq!(
        read.namespace,
        metadef_namespace(&a, at),
        "header changed in the store"
    );
    assert_eq!(read.contents, contents, "contents changed in the store");

    let mut changed = contents.clone();
    changed.put_tags(&a, &["t3".into()], true, at).unwrap();
    repo.replace_namespace(&read, &read.namespace, &changed)
        .await
        .unwrap();
    assert!(
        matches!(
            repo.replace_namespace(&read, &read.namespace, &contents)
                .await,
            Err(DomainError::Conflict(_))
        ),
        "a write from a stale revision was accepted (a lost update)"
    );
    let current = repo.namespace(&a).await.unwrap().unwrap();
    assert_eq!(current.contents, changed);
    assert!(
        current.revision > read.revision,
        "a write did not move the revision"
    );

    let onto_b = metadef_namespace(&b, at);
    assert!(
        matches!(
            repo.replace_namespace(&current, &onto_b, &changed).await,
            Err(DomainError::Conflict(_))
        ),
        "a rename took another namespace's name"
    );
    repo.replace_namespace(&current, &metadef_namespace(&c, at), &changed)
        .await
        .unwrap();
    assert!(
        repo.namespace(&a).await.unwrap().is_none(),
        "a renamed namespace kept its old name"
    );
    let renamed = repo
        .namespace(&c)
        .await
        .unwrap()
        .expect("renamed namespace under its new name");
    assert_eq!(renamed.contents, changed, "a rename lost the contents");

    let names: Vec<String> = repo
        .namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.namespace)
        .filter(|n| n.ends_with(&suffix))
        .collect();
    assert_eq!(
        names,
        [b.clone(), c.clone()],
        "namespaces are not listed in name order"
    );

    assert!(
        matches!(
            repo.delete_namespace(&current).await,
            Err(DomainError::Conflict(_))
        ),
        "a stale delete was accepted"
    );
    repo.delete_namespace(&renamed).await.unwrap();
    assert!(
        repo.namespace(&c).await.unwrap().is_none(),
        "a deleted namespace reads back"
    );

    let type_name = format!("OS::Test::{suffix}");
    let first = ResourceType {
        name: type_name.clone(),
        created_at: at,
        updated_at: at,
    };
    repo.add_resource_types(std::slice::from_ref(&first))
        .await
        .unwrap();
    let later = ResourceType {
        created_at: at + chrono::Duration::days(1),
        ..first.clone()
    };
    repo.add_resource_types(&[later]).await.unwrap();
    let types: Vec<ResourceType> = repo
        .resource_types()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.name == type_name)
        .collect();
    assert_eq!(
        types,
        [first],
        "adding a known resource type changed or repeated it"
    );

    // The stock marker is shared state: only check that setting it sticks.
    repo.mark_stock_loaded().await.unwrap();
    assert!(
        repo.stock_loaded().await.unwrap(),
        "the stock catalogue marker did not stick"
    );
}
