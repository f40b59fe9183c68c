//! Process start-up: configuration from flags and environment, tracing, and [`Services`]
//! built once per process and shared by every request.

mod config;

use std::sync::Arc;

use cloud_images_domain::DomainError;
use cloud_images_domain::ports::{
    IdentityStore, ImageRepository, ImageStore, MemberRepository, ObjectStore, TaskQueue,
    TaskRepository,
};
use cloud_images_http::{AppState, HttpSettings};
use cloud_images_service::{IdentityService, ImageService, SigningKey, TaskService, TokenSigner};

pub use config::{Backend, Config, LogFormat, parse_bytes, parse_duration};

/// Why the process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The data directory or database could not be opened.
    #[cfg(feature = "embedded")]
    #[error("opening the embedded store: {0}")]
    Embedded(#[from] cloud_images_embedded::EmbeddedError),
    /// This build leaves out what the configuration asks for.
    #[error("this build has no {0}; it is the local binary's (cloud-images)")]
    NotBuiltIn(&'static str),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(#[from] DomainError),
}

/// Every use case, built over the configured adapters.
#[derive(Clone)]
pub struct Services {
    /// Authentication and accounts.
    pub identity: IdentityService,
    /// Image metadata.
    pub images: ImageService,
    /// Import and export tasks.
    pub tasks: TaskService,
    /// The queue a worker host drains into [`TaskService::execute`].
    pub queue: Arc<dyn TaskQueue>,
}

/// Deliveries after which a task message goes to the dead letters. Above the task's own
/// attempt limit, because a delivery that finds the task busy elsewhere also counts.
const QUEUE_MAX_RECEIVES: u32 = 10;

/// The adapters behind the ports, from one backend.
struct Adapters {
    identity: Arc<dyn IdentityStore>,
    images: Arc<dyn ImageRepository>,
    members: Arc<dyn MemberRepository>,
    bytes: Arc<dyn ImageStore>,
    tasks: Arc<dyn TaskRepository>,
    queue: Arc<dyn TaskQueue>,
    objects: Arc<dyn ObjectStore>,
}

#[cfg(feature = "embedded")]
fn embedded_adapters(config: &Config) -> Result<Adapters, StartupError> {
    let backend = cloud_images_embedded::EmbeddedBackend::open(&config.data_dir)?;
    Ok(Adapters {
        identity: backend.identity,
        images: backend.images,
        members: backend.members,
        bytes: backend.files,
        tasks: backend.tasks,
        queue: Arc::new(cloud_images_embedded::SqliteTaskQueue::new(
            backend.db,
            QUEUE_MAX_RECEIVES,
        )),
        objects: backend.objects,
    })
}

async fn aws_adapters(config: &Config) -> Result<Adapters, StartupError> {
    let sdk = cloud_images_aws::load_config().await;
    let (dynamodb, s3, sqs) = (
        cloud_images_aws::dynamodb_client(&sdk),
        cloud_images_aws::s3_client(&sdk),
        cloud_images_aws::sqs_client(&sdk),
    );
    let objects_bucket = config
        .aws_objects_bucket
        .as_ref()
        .unwrap_or(&config.aws_bucket);
    let (table, bucket) = (&config.aws_table, &config.aws_bucket);
    if config.aws_create_resources {
        cloud_images_aws::dynamo::ensure_table(&dynamodb, table).await?;
        cloud_images_aws::ensure_bucket(&s3, bucket).await?;
        cloud_images_aws::ensure_bucket(&s3, objects_bucket).await?;
    }
    let queue = match (&config.aws_queue_url, &config.aws_dead_letter_queue_url) {
        (Some(url), Some(dead_letters)) => {
            cloud_images_aws::SqsTaskQueue::new(sqs, url.as_str(), dead_letters.as_str())
        }
        _ if config.aws_create_resources => {
            cloud_images_aws::SqsTaskQueue::ensure(sqs, &config.aws_queue, QUEUE_MAX_RECEIVES)
                .await?
        }
        _ => {
            return Err(StartupError::Config(DomainError::Invalid(
                "the aws backend needs --aws-queue-url and --aws-dead-letter-queue-url, or --aws-create-resources".into(),
            )));
        }
    };
    Ok(Adapters {
        identity: Arc::new(cloud_images_aws::DynamoIdentityStore::new(
            dynamodb.clone(),
            table,
        )),
        images: Arc::new(cloud_images_aws::DynamoImageRepository::new(
            dynamodb.clone(),
            table,
        )),
        members: Arc::new(cloud_images_aws::DynamoMemberRepository::new(
            dynamodb.clone(),
            table,
        )),
        tasks: Arc::new(cloud_images_aws::DynamoTaskRepository::new(dynamodb, table)),
        queue: Arc::new(queue),
        objects: Arc::new(cloud_images_aws::S3ObjectStore::new(
            s3.clone(),
            objects_bucket,
            config.aws_objects_prefix.clone(),
        )),
        bytes: Arc::new(cloud_images_aws::S3ImageStore::new(
            s3,
            bucket,
            config.aws_prefix.clone(),
            config.aws_stale_upload_after,
        )),
    })
}

/// Opens the configured backend and builds the use cases; call once per process (SDK
/// clients are built here, before serving).
pub async fn build_services(config: &Config) -> Result<Services, StartupError> {
    let adapters = match config.backend {
        #[cfg(feature = "embedded")]
        Backend::Embedded => embedded_adapters(config)?,
        #[cfg(not(feature = "embedded"))]
        Backend::Embedded => return Err(StartupError::NotBuiltIn("embedded backend")),
        Backend::Aws => aws_adapters(config).await?,
    };
    let key = match &config.token_signing_key {
        Some(hex) => SigningKey::from_hex(hex)?,
        None => SigningKey::from_hex(&signing_key_in_data_dir(config)?)?,
    };
    let signer = TokenSigner::new(key, config.token_ttl);
    let images = ImageService::new(
        adapters.images,
        adapters.bytes,
        adapters.members,
        config.image_settings(),
    );
    Ok(Services {
        identity: IdentityService::new(adapters.identity, signer),
        tasks: TaskService::new(
            adapters.tasks,
            adapters.queue.clone(),
            adapters.objects,
            images.clone(),
            config.task_settings(),
        ),
        images,
        queue: adapters.queue,
    })
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

/// The state every HTTP handler sees.
pub fn app_state(services: &Services, config: &Config) -> AppState {
    AppState {
        identity: services.identity.clone(),
        images: services.images.clone(),
        tasks: services.tasks.clone(),
        settings: Arc::new(HttpSettings {
            public_url: config.public_url.clone(),
            region: config.region.clone(),
            max_json_body: config.max_json_body,
        }),
    }
}

/// Installs the global tracing subscriber: human-readable (coloured only on a terminal) or JSON
/// lines on stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
