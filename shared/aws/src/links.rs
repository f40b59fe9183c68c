//! Linked containers' storage: the tenant's own S3-compatible bucket, reached with the
//! tenant's keys at the tenant's endpoint. Every connection goes through a resolver that
//! checks each address a name resolves to, as web-download's does, so a link cannot point
//! the service at its own network (the endpoint's literal address is checked before).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use cloud_images_domain::links::{LinkAccess, LinkCredentials};
use cloud_images_domain::ports::{ByteStream, LinkedStorage, UploadSink};
use cloud_images_domain::{DomainError, DomainResult};

use crate::s3::{S3Upload, get_streamed};

/// Whether the service may connect to an address (the fetch policy's rule).
pub type AddressCheck = Arc<dyn Fn(IpAddr) -> DomainResult<()> + Send + Sync>;

/// Resolves a name and refuses it when any of its addresses is not allowed: a client may
/// connect to any of them.
#[derive(Clone)]
struct CheckedResolver {
    allowed: AddressCheck,
}

impl std::fmt::Debug for CheckedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckedResolver")
    }
}

impl ResolveDns for CheckedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let allowed = self.allowed.clone();
        let name = name.to_owned();
        DnsFuture::new(async move {
            let addresses: Vec<IpAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(ResolveDnsError::new)?
                .map(|a| a.ip())
                .collect();
            if addresses.is_empty() {
                return Err(ResolveDnsError::new(format!("{name} has no address")));
            }
            for &ip in &addresses {
                allowed(ip).map_err(|e| {
                    tracing::warn!(%name, %ip, "a linked container's endpoint resolved to a refused address");
                    ResolveDnsError::new(e.to_string())
                })?;
            }
            Ok(addresses)
        })
    }
}

/// [`LinkedStorage`] over the S3 API: one HTTP client for every link, one SDK client per
/// link (endpoint, region and keys, or role), made on first use; a role's client is made
/// again when its assumed keys near their expiry.
pub struct S3LinkedStorage {
    http: SharedHttpClient,
    clients: Mutex<HashMap<ClientKey, (Client, Option<SystemTime>)>>,
    sts: tokio::sync::OnceCell<aws_sdk_sts::Client>,
    sts_endpoint: Option<String>,
}

/// Which link a client serves: endpoint, region, and the key id and secret or the role and
/// external id.
type ClientKey = (String, String, String, String);

/// Clients kept at most; past it the cache starts again.
const MAX_CLIENTS: usize = 1024;

/// Assumed keys are replaced this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

impl S3LinkedStorage {
    /// Storage whose connections go only to addresses `allowed` admits; roles are assumed
    /// through STS at `sts_endpoint` when given (else where the process's AWS configuration
    /// says), with the process's own credentials.
    pub fn new(allowed: AddressCheck, sts_endpoint: Option<String>) -> Self {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_with_resolver(CheckedResolver { allowed });
        Self {
            http,
            clients: Mutex::new(HashMap::new()),
            sts: tokio::sync::OnceCell::new(),
            sts_endpoint,
        }
    }

    async fn client(&self, link: &LinkAccess) -> DomainResult<Client> {
        let key = match &link.credentials {
            LinkCredentials::Keys {
                access_key_id,
                secret_access_key,
            } => (access_key_id.clone(), secret_access_key.expose().to_owned()),
            LinkCredentials::Role {
                role_arn,
                external_id,
            } => (role_arn.clone(), external_id.clone()),
        };
        let key = (link.endpoint.clone(), link.region.clone(), key.0, key.1);
        let fresh = |expires: &Option<SystemTime>| {
            expires.is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE)
        };
        if let Some((client, expires)) = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && fresh(expires)
        {
            return Ok(client.clone());
        }
        let (credentials, expires) = match &link.credentials {
            LinkCredentials::Keys {
                access_key_id,
                secret_access_key,
            } => (
                Credentials::new(
                    access_key_id,
                    secret_access_key.expose(),
                    None,
                    None,
                    "linked-container",
                ),
                None,
            ),
            LinkCredentials::Role {
                role_arn,
                external_id,
            } => self.assume(link, role_arn, external_id).await?,
        };
        // Path-style: S3-compatible stores rarely serve virtual-hosted buckets, and the
        // bucket must not become part of the host the resolver checks.
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(link.region.clone()))
            .endpoint_url(&link.endpoint)
            .credentials_provider(credentials)
            .force_path_style(true)
            .http_client(self.http.clone())
            .build();
        let client = Client::from_conf(config);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        // Every link attempt makes a client, refused ones too: a bound keeps a tenant who
        // tries many keys from growing the process.
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, (client.clone(), expires));
        Ok(client)
    }

    /// Keys for the tenant's role, from STS, presenting the tenant's external id.
    async fn assume(
        &self,
        link: &LinkAccess,
        role_arn: &str,
        external_id: &str,
    ) -> DomainResult<(Credentials, Option<SystemTime>)> {
        let sts = self
            .sts
            .get_or_init(|| async {
                let sdk = crate::load_config().await;
                let mut config = aws_sdk_sts::config::Builder::from(&sdk);
                if let Some(endpoint) = &self.sts_endpoint {
                    config = config.endpoint_url(endpoint);
                }
                aws_sdk_sts::Client::from_conf(config.build())
            })
            .await;
        let assumed = sts
            .assume_role()
            .role_arn(role_arn)
            .external_id(external_id)
            .role_session_name("cloud-images")
            .send()
            .await
            .map_err(|e| match e.raw_response().map(|r| r.status().as_u16()) {
                Some(status) => DomainError::Invalid(format!(
                    "Role {role_arn} could not be assumed with external id '{external_id}' ({status}, {}): its trust policy must let this service assume it with that external id",
                    e.as_service_error().and_then(ProvideErrorMetadata::code).unwrap_or("refused")
                )),
                None => DomainError::unavailable(format!("assuming role {role_arn} for bucket '{}'", link.bucket), e),
            })?;
        let keys = assumed.credentials().ok_or_else(|| {
            DomainError::unavailable("assuming a role", "STS returned no credentials")
        })?;
        let expires = SystemTime::try_from(*keys.expiration()).ok();
        Ok((
            Credentials::new(
                keys.access_key_id(),
                keys.secret_access_key(),
                Some(keys.session_token().to_owned()),
                expires,
                "linked-container-role",
            ),
            expires,
        ))
    }
}

/// The key id a link signs with, for messages: the access key, or the role.
fn signer(link: &LinkAccess) -> String {
    match &link.credentials {
        LinkCredentials::Keys { access_key_id, .. } => format!("access key '{access_key_id}'"),
        LinkCredentials::Role { role_arn, .. } => format!("the keys of role {role_arn}"),
    }
}

/// What went wrong reaching a linked bucket, in words for its tenant.
fn explained<E>(error: &SdkError<E, HttpResponse>, link: &LinkAccess) -> DomainError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let where_ = format!("bucket '{}' at {}", link.bucket, link.endpoint);
    // No response at all: the endpoint was not reached (refused, unresolvable, timed out).
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code);
    match (status, code) {
        (None, _) => DomainError::Invalid(format!(
            "The endpoint {} could not be reached: {}",
            link.endpoint,
            cause(error)
        )),
        (_, Some("NoSuchBucket")) | (Some(404), _) => {
            DomainError::Invalid(format!("There is no {where_}"))
        }
        (Some(401 | 403), _)
        | (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied")) => {
            DomainError::Invalid(format!(
                "The {where_} refused {} ({}): check that they may list, read and write the bucket",
                signer(link),
                code.unwrap_or("access denied")
            ))
        }
        (Some(status), code) => DomainError::Invalid(format!(
            "The {where_} answered {status} ({})",
            code.unwrap_or("no error code")
        )),
    }
}

/// The innermost cause of a failed request (a refused connection, a refused address).
fn cause(error: &dyn std::error::Error) -> String {
    let mut inner = error;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

#[async_trait]
impl LinkedStorage for S3LinkedStorage {
    async fn check(&self, link: &LinkAccess, prefix: &str) -> DomainResult<()> {
        let client = self.client(link).await?;
        client
            .head_bucket()
            .bucket(&link.bucket)
            .send()
            .await
            .map_err(|e| explained(&e, link))?;
        client
            .list_objects_v2()
            .bucket(&link.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| explained(&e, link))?;
        Ok(())
    }

    async fn open(&self, link: &LinkAccess, key: &str) -> DomainResult<(u64, ByteStream)> {
        let request = self
            .client(link)
            .await?
            .get_object()
            .bucket(&link.bucket)
            .key(key);
        let (length, body) = get_streamed(
            request,
            format!("'{key}' in bucket '{}'", link.bucket),
            format!("object '{key}' not found in bucket '{}'", link.bucket),
        )
        .await?;
        let size = length.and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
            DomainError::unavailable(format!("reading '{key}'"), "the storage reported no length")
        })?;
        Ok((size, body))
    }

    async fn create(&self, link: &LinkAccess, key: &str) -> DomainResult<Box<dyn UploadSink>> {
        Ok(Box::new(S3Upload::new(
            self.client(link).await?,
            link.bucket.clone(),
            key.to_owned(),
        )))
    }
}
