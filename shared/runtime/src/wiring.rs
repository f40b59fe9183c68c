//! Builds each adapter and service on first use, once per process.
//!
//! A host asks only for what it serves: a Lambda function for its route group's services,
//! the local binary for all of them. Nothing else is built, and, since each function's
//! `main` names its own group, the linker leaves out the SDK code of the adapters it never
//! asks for (the members function carries no S3 or SQS client).

use std::sync::Arc;

use axum::Router;
use cloud_images_domain::identity::LockoutPolicy;
use cloud_images_domain::ports::{
    ContainerRepository, IdentityStore, ImageRepository, ImageStore, LinkedStorage,
    MemberRepository, MetadefRepository, ObjectStore, TaskQueue, TaskRepository, WebSource,
};
use cloud_images_http::{Common, HttpSettings, routes};
use cloud_images_service::{
    ContainerService, EventDelivery, IdentityService, ImageAccess, ImageDataService, ImageService,
    ImageStores, ImportService, LinkSealer, Links, MemberService, MetadefService, SigningKey,
    StagingService, TaskRunner, TaskService, TaskSettings, TenantHoldings, TokenSigner,
    TokenVerifier,
};

use crate::{Backend, Config, EventSinks, StartupError, StoreLayout, StoreLocation};

/// Deliveries after which a task message goes to the dead letters. Above the task's own
/// attempt limit, because a delivery that finds the task busy elsewhere also counts.
const QUEUE_MAX_RECEIVES: u32 = 10;

/// The configured backend's adapters and the services over them, built when first asked
/// for. Cheap to share by reference; everything it hands out is cheap to clone.
pub struct Wiring {
    config: Config,
    backend: Opened,
    signer: TokenSigner,
    verifier: tokio::sync::OnceCell<TokenVerifier>,
    task_settings: Arc<TaskSettings>,
    http: Arc<HttpSettings>,
    web: std::sync::OnceLock<Arc<dyn WebSource>>,
    layout: StoreLayout,
    stores: tokio::sync::OnceCell<Arc<ImageStores>>,
    sealer: Arc<LinkSealer>,
    linked: std::sync::OnceLock<Arc<dyn LinkedStorage>>,
}

enum Opened {
    #[cfg(feature = "embedded")]
    Embedded(Box<Embedded>),
    Aws(Box<cloud_images_aws::AwsResources>),
}

#[cfg(feature = "embedded")]
struct Embedded {
    backend: cloud_images_embedded::EmbeddedBackend,
    queue: Arc<cloud_images_embedded::SqliteTaskQueue>,
}

impl Wiring {
    /// Opens the configured backend (the embedded one's database and directory; for AWS,
    /// nothing until an adapter is asked for) and reads the token key.
    pub async fn open(config: &Config) -> Result<Self, StartupError> {
        let backend = match config.backend {
            #[cfg(feature = "embedded")]
            Backend::Embedded => {
                let backend = cloud_images_embedded::EmbeddedBackend::open(&config.data_dir)?;
                let queue = Arc::new(cloud_images_embedded::SqliteTaskQueue::new(
                    backend.db.clone(),
                    QUEUE_MAX_RECEIVES,
                ));
                Opened::Embedded(Box::new(Embedded { backend, queue }))
            }
            #[cfg(not(feature = "embedded"))]
            Backend::Embedded => return Err(StartupError::NotBuiltIn("embedded backend")),
            Backend::Aws => Opened::Aws(Box::new(cloud_images_aws::AwsResources::new(
                aws_settings(config),
            ))),
        };
        let layout = StoreLayout::of(config)
            .map_err(|e| StartupError::Config(cloud_images_domain::DomainError::Invalid(e)))?;
        let key = match &config.token_signing_key {
            Some(hex) => SigningKey::from_hex(hex)?,
            None => SigningKey::from_hex(&signing_key_in_data_dir(config)?)?,
        };
        let sealer = Arc::new(LinkSealer::new(
            key.derive(cloud_images_service::link_sealing::SEALING_PURPOSE),
        ));
        Ok(Self {
            sealer,
            linked: std::sync::OnceLock::new(),
            signer: TokenSigner::new(key, config.token_ttl),
            verifier: tokio::sync::OnceCell::new(),
            task_settings: Arc::new(config.task_settings()),
            http: Arc::new(HttpSettings {
                public_url: config.public_url.clone(),
                region: config.region.clone(),
                max_json_body: config.max_json_body,
                console_upload_origins: config.console_upload_origins.clone(),
            }),
            config: config.clone(),
            backend,
            web: std::sync::OnceLock::new(),
            layout,
            stores: tokio::sync::OnceCell::new(),
        })
    }

    /// The HTTP settings every router is served with.
    pub fn http_settings(&self) -> &HttpSettings {
        &self.http
    }

    // ---- services ----

    /// Authentication and accounts.
    pub async fn identity(&self) -> Result<IdentityService, StartupError> {
        let holdings = TenantHoldings {
            images: self.image_repository().await?,
            containers: self.container_repository().await?,
        };
        let lockout = LockoutPolicy {
            attempts: self.config.lockout_failure_attempts,
            duration: self.config.lockout_duration,
        };
        Ok(IdentityService::new(
            self.identity_store().await?,
            self.token_verifier().await?,
            lockout,
            Some(holdings),
        ))
    }

    /// The one token check of this process: its cache of users' standing is what lets a
    /// change made here revoke tokens here at once.
    async fn token_verifier(&self) -> Result<TokenVerifier, StartupError> {
        let verifier = self
            .verifier
            .get_or_try_init(|| async {
                Ok::<_, StartupError>(TokenVerifier::new(
                    self.signer.clone(),
                    self.identity_store().await?,
                    self.config.token_revocation_check,
                ))
            })
            .await?;
        Ok(verifier.clone())
    }

    async fn access(&self) -> Result<ImageAccess, StartupError> {
        Ok(ImageAccess::new(
            self.image_repository().await?,
            self.member_repository().await?,
            self.config.image_settings(&self.layout),
        ))
    }

    /// Image metadata.
    pub async fn images(&self) -> Result<ImageService, StartupError> {
        Ok(ImageService::new(
            self.access().await?,
            self.image_stores().await?,
        ))
    }

    /// Image data.
    pub async fn image_data(&self) -> Result<ImageDataService, StartupError> {
        Ok(ImageDataService::new(
            self.access().await?,
            self.image_stores().await?,
        ))
    }

    /// Sharing.
    pub async fn members(&self) -> Result<MemberService, StartupError> {
        Ok(MemberService::new(
            self.access().await?,
            self.member_repository().await?,
        ))
    }

    /// Task records.
    pub async fn tasks(&self) -> Result<TaskService, StartupError> {
        Ok(TaskService::new(
            self.task_repository().await?,
            self.task_queue().await?,
            self.task_settings.clone(),
        ))
    }

    /// Staged uploads.
    pub async fn staging(&self) -> Result<StagingService, StartupError> {
        Ok(StagingService::new(
            self.access().await?,
            self.image_stores().await?,
            self.imports().await?,
        ))
    }

    /// Interoperable import.
    pub async fn imports(&self) -> Result<ImportService, StartupError> {
        Ok(ImportService::new(
            self.access().await?,
            self.tasks().await?,
            self.web_source(),
            self.image_stores().await?,
        ))
    }

    /// Containers and objects.
    pub async fn containers(&self) -> Result<ContainerService, StartupError> {
        Ok(ContainerService::new(
            self.container_repository().await?,
            self.object_store().await?,
            Links {
                storage: self.linked_storage(),
                endpoints: self.web_source(),
                sealer: self.sealer.clone(),
            },
            self.config.container_settings(),
        ))
    }

    /// The metadata definitions catalogue, with the stock catalogue loaded into a store
    /// that never had it (the local binary's first start; a function's first cold start).
    pub async fn metadefs(&self) -> Result<MetadefService, StartupError> {
        let service = MetadefService::new(self.metadef_repository().await?);
        service.load_stock_catalogue().await?;
        Ok(service)
    }

    /// Runs queued tasks.
    pub async fn task_runner(&self) -> Result<TaskRunner, StartupError> {
        Ok(TaskRunner::new(
            self.task_repository().await?,
            self.containers().await?,
            self.web_source(),
            self.access().await?,
            self.image_data().await?,
            self.task_settings.clone(),
        ))
    }

    // ---- routers, one per route group ----

    async fn common(&self) -> Result<Common, StartupError> {
        Ok(Common {
            tokens: self.token_verifier().await?,
            settings: self.http.clone(),
        })
    }

    /// `GET /`, versions, schemas: no store at all.
    pub async fn discovery_routes(&self) -> Result<Router, StartupError> {
        Ok(routes::discovery::router(self.common().await?))
    }

    /// Tokens, projects, users.
    pub async fn identity_routes(&self) -> Result<Router, StartupError> {
        Ok(routes::identity::router(
            self.common().await?,
            self.identity().await?,
        ))
    }

    /// The console's pages and session.
    pub async fn console_routes(&self) -> Result<Router, StartupError> {
        Ok(routes::console::router(
            self.common().await?,
            self.identity().await?,
        ))
    }

    /// Image metadata routes.
    pub async fn images_routes(&self) -> Result<Router, StartupError> {
        Ok(routes::images::router(
            self.common().await?,
            self.images().await?,
        ))
    }

    /// Image data routes, direct and staged.
    pub async fn image_data_routes(&self) -> Result<Router, StartupError> {
        Ok(
            routes::image_data::router(self.common().await?, self.image_data().await?).merge(
                routes::staging::router(self.common().await?, self.staging().await?),
            ),
        )
    }

    /// Member routes.
    pub async fn members_routes(&self) -> Result<Router, StartupError> {
        Ok(routes::members::router(
            self.common().await?,
            self.members().await?,
        ))
    }

    /// Task routes, and interoperable import (which makes tasks).
    pub async fn tasks_routes(&self) -> Result<Router, StartupError> {
        Ok(
            routes::tasks::router(self.common().await?, self.tasks().await?).merge(
                routes::imports::router(self.common().await?, self.imports().await?),
            ),
        )
    }

    /// The object API: containers and objects.
    pub async fn objects_routes(&self) -> Result<Router, StartupError> {
        Ok(routes::objects::router(
            self.common().await?,
            self.containers().await?,
        ))
    }

    /// The metadata definitions catalogue.
    pub async fn metadefs_routes(&self) -> Result<Router, StartupError> {
        Ok(routes::metadefs::router(
            self.common().await?,
            self.metadefs().await?,
        ))
    }

    /// Every route group on one router, as the local binary serves them.
    pub async fn all_routes(&self) -> Result<Router, StartupError> {
        Ok(self
            .discovery_routes()
            .await?
            .merge(self.identity_routes().await?)
            .merge(self.console_routes().await?)
            .merge(self.images_routes().await?)
            .merge(self.image_data_routes().await?)
            .merge(self.members_routes().await?)
            .merge(self.tasks_routes().await?)
            .merge(self.objects_routes().await?)
            .merge(self.metadefs_routes().await?))
    }

    // ---- adapters ----

    /// The web, as web-download reaches it: one HTTP client per process.
    fn web_source(&self) -> Arc<dyn WebSource> {
        self.web
            .get_or_init(|| {
                Arc::new(cloud_images_fetch::WebFetcher::new(
                    self.config.fetch_policy(),
                ))
            })
            .clone()
    }

    /// The tenants' own storage behind linked containers, on either backend: connections
    /// go only where web-download's policy lets server-side requests go.
    fn linked_storage(&self) -> Arc<dyn LinkedStorage> {
        self.linked
            .get_or_init(|| {
                let policy = self.config.fetch_policy();
                Arc::new(cloud_images_aws::S3LinkedStorage::new(
                    Arc::new(move |ip| policy.check_address(ip)),
                    self.config.link_sts_endpoint.clone(),
                ))
            })
            .clone()
    }

    async fn identity_store(&self) -> Result<Arc<dyn IdentityStore>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.backend.identity.clone(),
            Opened::Aws(aws) => Arc::new(aws.identity_store().await?),
        })
    }

    async fn image_repository(&self) -> Result<Arc<dyn ImageRepository>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.backend.images.clone(),
            Opened::Aws(aws) => Arc::new(aws.image_repository().await?),
        })
    }

    async fn member_repository(&self) -> Result<Arc<dyn MemberRepository>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.backend.members.clone(),
            Opened::Aws(aws) => Arc::new(aws.member_repository().await?),
        })
    }

    async fn task_repository(&self) -> Result<Arc<dyn TaskRepository>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.backend.tasks.clone(),
            Opened::Aws(aws) => Arc::new(aws.task_repository().await?),
        })
    }

    /// The queue tasks go through; a worker host drains it into [`TaskRunner::execute`].
    pub async fn task_queue(&self) -> Result<Arc<dyn TaskQueue>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.queue.clone(),
            Opened::Aws(aws) => Arc::new(aws.task_queue().await?),
        })
    }

    /// The deliveries of the outbox, one per configured sink, on a host that delivers its
    /// own events (the embedded default). On the aws backend a change's events travel in
    /// its DynamoDB item and the stack's event function publishes them from the table's
    /// stream: there is nothing to deliver here.
    pub fn event_deliveries(&self, sinks: &EventSinks) -> Result<Vec<EventDelivery>, StartupError> {
        match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => {
                let mut chosen: Vec<Arc<dyn cloud_images_domain::ports::EventSink>> = Vec::new();
                if let Some(file) = sinks.file() {
                    let path = self.config.data_dir.join(file);
                    chosen.push(Arc::new(cloud_images_embedded::JsonLinesSink::new(path)));
                }
                if let Some(url) = &sinks.webhook {
                    chosen.push(Arc::new(cloud_images_fetch::WebhookSink::new(
                        url,
                        sinks.webhook_secret.as_deref(),
                    )?));
                }
                if chosen.is_empty() {
                    chosen.push(Arc::new(cloud_images_embedded::Discarded));
                }
                let names = chosen.iter().map(|s| s.name().to_owned()).collect();
                let outbox: Arc<dyn cloud_images_domain::ports::EventOutbox> = Arc::new(
                    cloud_images_embedded::SqliteEventOutbox::new(e.backend.db.clone(), names),
                );
                Ok(chosen
                    .into_iter()
                    .map(|sink| EventDelivery::new(outbox.clone(), sink))
                    .collect())
            }
            Opened::Aws(_) => {
                let _ = sinks;
                Ok(Vec::new())
            }
        }
    }

    /// Every configured image store, built once.
    async fn image_stores(&self) -> Result<Arc<ImageStores>, StartupError> {
        let stores = self
            .stores
            .get_or_try_init(|| async {
                let mut built = Vec::with_capacity(self.layout.stores.len());
                for spec in &self.layout.stores {
                    built.push((spec.id.clone(), self.image_store(&spec.location).await?));
                }
                let stores = ImageStores::new(self.layout.catalog(), built)?;
                Ok::<_, StartupError>(Arc::new(stores))
            })
            .await?;
        Ok(stores.clone())
    }

    async fn image_store(
        &self,
        location: &StoreLocation,
    ) -> Result<Arc<dyn ImageStore>, StartupError> {
        Ok(match (&self.backend, location) {
            #[cfg(feature = "embedded")]
            (Opened::Embedded(e), StoreLocation::Directory(dir)) => {
                if *dir == self.config.data_dir.join("images") {
                    e.backend.files.clone()
                } else {
                    Arc::new(cloud_images_embedded::FileImageStore::open(dir)?)
                }
            }
            (
                Opened::Aws(aws),
                StoreLocation::S3 {
                    bucket,
                    prefix,
                    region,
                },
            ) => Arc::new(
                aws.image_store_in(bucket, prefix, region.as_deref())
                    .await?,
            ),
            _ => {
                return Err(StartupError::Config(
                    cloud_images_domain::DomainError::Invalid(
                        "a store's location does not fit the backend".into(),
                    ),
                ));
            }
        })
    }

    async fn container_repository(&self) -> Result<Arc<dyn ContainerRepository>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.backend.containers.clone(),
            Opened::Aws(aws) => Arc::new(aws.container_repository().await?),
        })
    }

    async fn metadef_repository(&self) -> Result<Arc<dyn MetadefRepository>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.backend.metadefs.clone(),
            Opened::Aws(aws) => Arc::new(aws.metadef_repository().await?),
        })
    }

    async fn object_store(&self) -> Result<Arc<dyn ObjectStore>, StartupError> {
        Ok(match &self.backend {
            #[cfg(feature = "embedded")]
            Opened::Embedded(e) => e.backend.objects.clone(),
            Opened::Aws(aws) => Arc::new(aws.object_store().await?),
        })
    }
}

fn aws_settings(config: &Config) -> cloud_images_aws::AwsSettings {
    let queue_urls = match (&config.aws_queue_url, &config.aws_dead_letter_queue_url) {
        (Some(url), Some(dead_letters)) => Some((url.to_string(), dead_letters.to_string())),
        _ => None,
    };
    cloud_images_aws::AwsSettings {
        table: config.aws_table.clone(),
        stale_upload_after: config.aws_stale_upload_after,
        objects_bucket: config
            .aws_objects_bucket
            .clone()
            .unwrap_or_else(|| config.aws_bucket.clone()),
        objects_prefix: config.aws_objects_prefix.clone(),
        queue_urls,
        queue_name: config.aws_queue.clone(),
        queue_max_receives: QUEUE_MAX_RECEIVES,
        create_resources: config.aws_create_resources,
    }
}

/// The token signing key kept in the data directory, made on first use (the embedded
/// default's way; functions get theirs from the environment).
#[cfg(feature = "embedded")]
fn signing_key_in_data_dir(config: &Config) -> Result<String, StartupError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        cloud_images_embedded::EmbeddedError::io(
            format!("creating {}", config.data_dir.display()),
            e,
        )
    })?;
    Ok(cloud_images_embedded::keyfile::load_or_create(
        &config.data_dir,
        || cloud_images_service::secrets::random_hex(32),
    )?)
}

#[cfg(not(feature = "embedded"))]
fn signing_key_in_data_dir(_config: &Config) -> Result<String, StartupError> {
    Err(StartupError::NotBuiltIn(
        "key file: set CLOUD_IMAGES_TOKEN_SIGNING_KEY",
    ))
}
