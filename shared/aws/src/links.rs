//! Linked containers' storage: the tenant's own S3-compatible bucket, reached with the
//! tenant's keys at the tenant's endpoint. Every connection goes through a resolver that
//! checks each address a name resolves to, as web-download's does, so a link cannot point
//! the service at its own network (the endpoint's literal address is checked before).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use cloud_images_domain::links::LinkAccess;
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
/// link (endpoint, region and keys), made on first use.
pub struct S3LinkedStorage {
    http: SharedHttpClient,
    clients: Mutex<HashMap<(String, String, String, String), Client>>,
}

impl S3LinkedStorage {
    /// Storage whose connections go only to addresses `allowed` admits.
    pub fn new(allowed: AddressCheck) -> Self {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_with_resolver(CheckedResolver { allowed });
        Self {
            http,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, link: &LinkAccess) -> Client {
        let key = (
            link.endpoint.clone(),
            link.region.clone(),
            link.access_key_id.clone(),
            link.secret_access_key.expose().to_owned(),
        );
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(key)
            .or_insert_with(|| {
                let credentials = Credentials::new(
                    &link.access_key_id,
                    link.secret_access_key.expose(),
                    None,
                    None,
                    "linked-container",
                );
                // Path-style: S3-compatible stores rarely serve virtual-hosted buckets, and
                // the bucket must not become part of the host the resolver checks.
                let config = aws_sdk_s3::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new(link.region.clone()))
                    .endpoint_url(&link.endpoint)
                    .credentials_provider(credentials)
                    .force_path_style(true)
                    .http_client(self.http.clone())
                    .build();
                Client::from_conf(config)
            })
            .clone()
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
                "The {where_} refused access key '{}' ({}): check the keys and that they may list and read the bucket",
                link.access_key_id,
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
        let client = self.client(link);
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
        let request = self.client(link).get_object().bucket(&link.bucket).key(key);
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
            self.client(link),
            link.bucket.clone(),
            key.to_owned(),
        )))
    }
}
