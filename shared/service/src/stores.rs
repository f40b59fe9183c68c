//! The configured image stores by id: where uploads and imports write, where downloads read,
//! what a deletion empties, and copies between stores (`copy-image`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cloud_images_domain::image::{Image, ImageId};
use cloud_images_domain::import::StoreCatalog;
use cloud_images_domain::ports::{ByteStream, ImageStore, UploadSink};
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::StreamExt;

/// Every configured store, each under the id the catalog gives it. The default store also
/// keeps the staging area (`PUT .../stage`, staged parts), as Glance has one staging store.
pub struct ImageStores {
    catalog: StoreCatalog,
    stores: Vec<(String, Arc<dyn ImageStore>)>,
}

impl ImageStores {
    /// The stores of `catalog`, one per id it lists; an id without a store, or a store the
    /// catalog does not list, is a configuration error.
    pub fn new(
        catalog: StoreCatalog,
        stores: Vec<(String, Arc<dyn ImageStore>)>,
    ) -> DomainResult<Self> {
        let listed: Vec<&str> = catalog.stores.iter().map(|s| s.id.as_str()).collect();
        let built: Vec<&str> = stores.iter().map(|(id, _)| id.as_str()).collect();
        if listed != built {
            return Err(DomainError::Invalid(format!(
                "the stores {built:?} do not match the catalog {listed:?}"
            )));
        }
        Ok(Self { catalog, stores })
    }

    /// One store, the default, as a deployment with a single store has it.
    pub fn single(catalog: StoreCatalog, store: Arc<dyn ImageStore>) -> DomainResult<Self> {
        let id = catalog.default.clone();
        Self::new(catalog, vec![(id, store)])
    }

    /// The ids and descriptions.
    pub fn catalog(&self) -> &StoreCatalog {
        &self.catalog
    }

    /// The store with id `id`; `NotFound` when none is configured.
    pub fn get(&self, id: &str) -> DomainResult<&Arc<dyn ImageStore>> {
        self.stores
            .iter()
            .find(|(store_id, _)| store_id == id)
            .map(|(_, store)| store)
            .ok_or_else(|| DomainError::NotFound(format!("Store for identifier {id} not found")))
    }

    /// The store data goes to when no store is named.
    pub fn default_store(&self) -> &Arc<dyn ImageStore> {
        self.get(&self.catalog.default)
            .expect("the catalog's default store is built, as `new` checked")
    }

    /// Where staged data lives.
    pub fn staging(&self) -> &Arc<dyn ImageStore> {
        self.default_store()
    }

    /// The id of the store an upload naming `requested` (`X-Image-Meta-Store`) writes.
    pub fn upload_target(&self, requested: Option<&str>) -> DomainResult<String> {
        match requested {
            None => Ok(self.catalog.default.clone()),
            Some(id) => self
                .get(id)
                .map(|_| id.to_owned())
                .map_err(|_| DomainError::Invalid(format!("Store for identifier {id} not found"))),
        }
    }

    /// The configured stores holding the data of `image`, in the order it lists them.
    pub fn holding(&self, image: &Image) -> Vec<(String, &Arc<dyn ImageStore>)> {
        self.catalog
            .holding(image)
            .into_iter()
            .filter_map(|id| self.get(&id).ok().map(|store| (id, store)))
            .collect()
    }

    /// A store to read the data of `image` from: the first that holds it.
    pub fn reader_for(&self, image: &Image) -> DomainResult<&Arc<dyn ImageStore>> {
        self.holding(image)
            .into_iter()
            .next()
            .map(|(_, store)| store)
            .ok_or_else(|| {
                DomainError::NotFound(format!(
                    "The data of image {} is in no configured store",
                    image.id
                ))
            })
    }

    /// Removes the data of `image` from every store holding it, and its staged data.
    pub async fn delete_everywhere(&self, image: &Image) -> DomainResult<()> {
        let holding = self.holding(image);
        let stores: Vec<&Arc<dyn ImageStore>> = if holding.is_empty() {
            // No data recorded yet, but an import cut off before it activated the image may
            // have committed bytes to any store it targeted.
            self.stores.iter().map(|(_, store)| store).collect()
        } else {
            holding.into_iter().map(|(_, store)| store).collect()
        };
        for store in stores {
            store.delete(image.id).await?;
        }
        self.staging().delete_staged(image.id).await
    }

    /// Copies the data of `id` from store `from` to store `to`: server-side where the two
    /// stores can (S3 to S3, file to file), streamed through this process otherwise. Adds
    /// to `progress` as bytes land; returns the bytes copied.
    pub async fn copy(
        &self,
        id: ImageId,
        from: &str,
        to: &str,
        progress: &AtomicU64,
    ) -> DomainResult<u64> {
        let (source, target) = (self.get(from)?, self.get(to)?);
        if let Some(location) = source.locate(id)
            && let Some(copied) = target.copy_in(id, &location, progress).await?
        {
            return Ok(copied);
        }
        let body = source.read(id, None).await?;
        let sink = target.begin_upload(id).await?;
        stream_into(sink, body, progress).await
    }

    /// Removes the temporary objects killed processes left in every store; how many.
    pub async fn sweep_incomplete(&self) -> DomainResult<usize> {
        let mut removed = 0;
        for (_, store) in &self.stores {
            removed += store.sweep_incomplete().await?;
        }
        Ok(removed)
    }
}

/// Writes `body` into `sink` and commits it, adding each chunk's length to `progress`; on any
/// failure the sink is aborted, so nothing half-written remains. Returns the bytes written.
pub(crate) async fn stream_into(
    mut sink: Box<dyn UploadSink>,
    mut body: ByteStream,
    progress: &AtomicU64,
) -> DomainResult<u64> {
    let written = async {
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            sink.write(chunk).await?;
        }
        Ok::<u64, DomainError>(written)
    }
    .await;
    match written {
        Ok(written) => sink.commit().await.map(|()| written),
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}
