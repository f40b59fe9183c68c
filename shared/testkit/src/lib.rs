//! Contract suites for the domain's ports: every adapter (embedded and AWS) runs the same
//! checks, so a case that passes on one backend and fails on another is an adapter bug.
//!
//! Each suite panics with a message naming the broken promise; adapters call it from their
//! own tests with a freshly built, isolated instance.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use bytes::Bytes;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::ports::{ByteRange, ImageStore};
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
}
