//! Interoperable image import (the `imports` route group): `POST /v2/images/{id}/import`
//! takes the image for an `api_image_import` task and queues it; `GET /v2/images/{id}/tasks`
//! shows the tasks that worked on an image. The task runs in [`crate::TaskRunner`].

use std::sync::Arc;

use cloud_images_domain::events::Actor;
use cloud_images_domain::identity::Caller;
use cloud_images_domain::image::{Image, ImageStatus};
use cloud_images_domain::import::{IMPORT_TASK, ImportMethod, ImportOffer, ImportRequest};
use cloud_images_domain::ports::WebSource;
use cloud_images_domain::task::{NewTask, Task};
use cloud_images_domain::{DomainError, DomainResult};

use crate::access::{ImageAccess, now};
use crate::stores::ImageStores;
use crate::tasks::TaskService;

/// Interoperable import use cases.
#[derive(Clone)]
pub struct ImportService {
    access: ImageAccess,
    tasks: TaskService,
    web: Arc<dyn WebSource>,
    stores: Arc<ImageStores>,
}

impl ImportService {
    /// Builds the service over image access, the tasks that run imports, the web source
    /// whose policy web-download URIs must pass, and the stores (whose data
    /// `DELETE /v2/stores/...` removes).
    pub fn new(
        access: ImageAccess,
        tasks: TaskService,
        web: Arc<dyn WebSource>,
        stores: Arc<ImageStores>,
    ) -> Self {
        Self {
            access,
            tasks,
            web,
            stores,
        }
    }

    /// The methods and stores offered.
    pub fn offer(&self) -> &ImportOffer {
        &self.access.settings().imports
    }

    /// `POST /v2/images/{id}/import`: checks the request against the image (Glance's rules
    /// and words), takes the image for a new task, and queues the task.
    pub async fn import(
        &self,
        caller: &Caller,
        raw_id: &str,
        request: ImportRequest,
    ) -> DomainResult<Task> {
        let image = self.importable(caller, raw_id, &request.method).await?;
        if let ImportMethod::WebDownload { uri } = &request.method {
            self.web.check(uri)?;
        }
        let stores = self.target_stores(&image, &request)?;
        let owner = image
            .owner
            .clone()
            .unwrap_or_else(|| caller.tenant_id.clone());
        let mut task = Task::new_pending(
            NewTask::image_import(image.id, &request, stores.clone()),
            owner,
            now(),
        );
        task.record_maker(caller);
        let task_id = task.id.to_string();
        let is_copy = request.method == ImportMethod::CopyImage;
        let held = self
            .access
            .compare_and_set(caller, raw_id, |current| {
                request.method.check_status(current)?;
                let next = if is_copy {
                    current.begin_copy(&task_id, &stores, now())?
                } else {
                    current.begin_import(&task_id, &stores, now())?
                };
                Ok(Some(next))
            })
            .await?;
        match self.tasks.submit(task).await {
            Ok(task) => Ok(task),
            Err(e) => {
                self.release(&held, &task_id, &stores, &Actor::of(caller))
                    .await;
                Err(e)
            }
        }
    }

    /// The image, if the caller may import to it with `method`: owners (and admins) import;
    /// copying needs an admin, as Glance's default `copy_image` policy says.
    async fn importable(
        &self,
        caller: &Caller,
        raw_id: &str,
        method: &ImportMethod,
    ) -> DomainResult<Image> {
        let image = self.access.writable(caller, raw_id).await?;
        if *method == ImportMethod::CopyImage && !caller.is_admin() {
            return Err(DomainError::Forbidden(
                "copy-image is an administrator's action".into(),
            ));
        }
        method.check_status(&image)?;
        if image.disk_format.is_none() {
            return Err(DomainError::Conflict(
                "'disk_format' needs to be set before import".into(),
            ));
        }
        if image.container_format.is_none() {
            return Err(DomainError::Conflict(
                "'container_format' needs to be set before import".into(),
            ));
        }
        Ok(image)
    }

    /// The stores the import writes: those asked for that exist; a copy leaves out those
    /// that already hold the image, and refuses when none is left.
    fn target_stores(&self, image: &Image, request: &ImportRequest) -> DomainResult<Vec<String>> {
        let catalog = &self.offer().stores;
        let mut stores = catalog.resolve(&request.stores)?;
        if request.method == ImportMethod::CopyImage {
            let holding = catalog.holding(image);
            stores.retain(|store| !holding.contains(store));
            if stores.is_empty() {
                return Err(DomainError::Conflict(
                    "Image is already present at all requested stores".into(),
                ));
            }
        }
        Ok(stores)
    }

    /// Gives an image back when its task could not be queued.
    async fn release(&self, held: &Image, task_id: &str, stores: &[String], actor: &Actor) {
        if let Err(e) = self
            .access
            .release_import(held.id, task_id, stores, actor)
            .await
        {
            tracing::warn!(image = %held.id, error = %e, "could not release an image whose import was not queued");
        }
    }

    /// `DELETE /v2/stores/{store}/{id}`: removes an active image's data from one store.
    /// Administrators only (Glance's default policy); the last store holding the data keeps
    /// it (delete the image instead).
    pub async fn delete_from_store(
        &self,
        caller: &Caller,
        store: &str,
        raw_id: &str,
    ) -> DomainResult<()> {
        if !caller.is_admin() {
            return Err(DomainError::Forbidden(
                "Only administrators may remove image data from a store".into(),
            ));
        }
        let image = self.access.visible(caller, raw_id).await?;
        let catalog = &self.offer().stores;
        if catalog.get(store).is_none() {
            return Err(DomainError::NotFound(format!("Unknown store {store}")));
        }
        check_removable(&image, catalog.holding(&image), store)?;
        self.access
            .compare_and_set(caller, raw_id, |current| {
                check_removable(current, catalog.holding(current), store)?;
                Ok(Some(current.without_store(store, now())))
            })
            .await?;
        // Record first, bytes second: no reader is sent to a store that no longer has them.
        self.stores.get(store)?.delete(image.id).await
    }

    /// `GET /v2/images/{id}/tasks`: the tasks that worked on an image the caller may see,
    /// newest first; only its owner (or an admin) reads them, as they carry the owner's
    /// inputs.
    pub async fn image_tasks(&self, caller: &Caller, raw_id: &str) -> DomainResult<Vec<Task>> {
        let image = self.access.visible(caller, raw_id).await?;
        if !caller.is_admin() && !image.is_owned_by(caller.tenant_id.as_str()) {
            return Err(DomainError::Forbidden(
                "Only the image's owner can see its tasks".into(),
            ));
        }
        let mut tasks = self.tasks.for_image(image.id).await?;
        tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(tasks)
    }
}

/// Why the data of `image` may not leave `store`, if it may not: it must be there, the image
/// active with no import running, and another store must keep a copy.
fn check_removable(image: &Image, holding: Vec<String>, store: &str) -> DomainResult<()> {
    if image.status != ImageStatus::Active {
        return Err(DomainError::Conflict(
            "It's not allowed to remove image data from store if image status is not 'active'"
                .into(),
        ));
    }
    if !holding.iter().any(|s| s == store) {
        return Err(DomainError::NotFound(format!(
            "Image {} is not available in store {store}",
            image.id
        )));
    }
    if let Some(task) = image.properties.get(IMPORT_TASK) {
        return Err(DomainError::Conflict(format!(
            "Image has active task {task}; remove its data from a store once it ends"
        )));
    }
    if holding.len() == 1 {
        return Err(DomainError::Forbidden(
            "Cannot delete image data from the only store containing it. Consider deleting the image instead."
                .into(),
        ));
    }
    Ok(())
}
