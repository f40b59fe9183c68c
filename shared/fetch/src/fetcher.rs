//! The HTTP client web-download fetches with: every hop of a fetch passes the
//! [`FetchPolicy`], and every address it connects to is one the policy checked.
//!
//! A URI naming an address is checked by [`FetchPolicy::check_uri`] (the client connects to
//! it without resolving anything). A host name is resolved once, by the client's resolver,
//! which checks every address the name has and hands the client exactly those: a second
//! lookup, which a rebinding DNS server would answer differently, never happens.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloud_images_domain::ports::ByteStream;
use cloud_images_domain::{DomainError, DomainResult};
use futures_util::{Stream, StreamExt, stream};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE};
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Client, Response, StatusCode};

use crate::{FetchPolicy, refused};

/// How far, how long and how much a fetch may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchLimits {
    /// Redirects followed before the fetch is refused.
    pub max_redirects: usize,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes, from the response's head to its last byte.
    pub read_timeout: Duration,
    /// Longest a whole fetch may take; none by default, as the caller's lease bounds it.
    pub total_timeout: Option<Duration>,
    /// Most bytes a body may have.
    pub max_bytes: u64,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            max_redirects: 5,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            total_timeout: None,
            max_bytes: 1 << 40,
        }
    }
}

/// A response being fetched: where the redirects led, and its bytes.
pub struct Fetched {
    /// The URI the bytes come from, after every redirect.
    pub url_after_redirects: String,
    /// The whole data's length, as the server announced it (`Content-Length`, or the total of
    /// a ranged answer's `Content-Range`), if it did.
    pub size: Option<u64>,
    /// What names this version of the data in a later `If-Range`: a strong `ETag`, else
    /// `Last-Modified`, when the server sent one.
    pub validator: Option<String>,
    /// The body; it fails instead of yielding more than the limit's `max_bytes`.
    pub body: ByteStream,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("url_after_redirects", &self.url_after_redirects)
            .field("size", &self.size)
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

/// Fetches what a [`FetchPolicy`] allows, within [`FetchLimits`]. Clones share one client
/// (and its connection pool).
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: Client,
    policy: Arc<FetchPolicy>,
    limits: FetchLimits,
}

/// Resolves a host name to all of its addresses.
pub(crate) type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;
/// What a [`Lookup`] answers with.
pub(crate) type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

fn system_lookup() -> Lookup {
    Arc::new(|host| {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    })
}

impl Fetcher {
    /// A fetcher resolving names with the system's resolver.
    pub fn new(policy: FetchPolicy, limits: FetchLimits) -> Self {
        Self::with_lookup(policy, limits, system_lookup())
    }

    pub(crate) fn with_lookup(policy: FetchPolicy, limits: FetchLimits, lookup: Lookup) -> Self {
        let policy = Arc::new(policy);
        let resolver = Arc::new(CheckedResolver {
            policy: policy.clone(),
            lookup,
        });
        let client = build_client(&policy, &limits, resolver);
        Self {
            client,
            policy,
            limits,
        }
    }

    /// Starts fetching `raw_uri`: checks it, sends the request, follows the redirects the
    /// policy allows and returns once the response's head has arrived.
    pub async fn open(&self, raw_uri: &str) -> DomainResult<Fetched> {
        let response = self.send(raw_uri, None).await?;
        self.fetched(response, 0, None)
    }

    /// Starts fetching `raw_uri` from byte `from` on, as [`Fetcher::open`] does, asking the
    /// server for that range only if the data is still the version `validator` names;
    /// `None` when the answer is not exactly that range (the data changed, or the server
    /// does not serve ranges): the caller must fetch it whole.
    pub async fn open_from(
        &self,
        raw_uri: &str,
        from: u64,
        validator: &str,
    ) -> DomainResult<Option<Fetched>> {
        let response = self.send(raw_uri, Some((from, validator))).await;
        let response = match response {
            Ok(response) if response.status() == StatusCode::PARTIAL_CONTENT => response,
            Ok(_) | Err(DomainError::RangeNotSatisfiable { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(total) = range_start(&response, from) else {
            return Ok(None);
        };
        self.fetched(response, from, total).map(Some)
    }

    /// Sends the request (a ranged one for `(from, validator)`), following the redirects
    /// the policy allows; a response that succeeded.
    async fn send(&self, raw_uri: &str, range: Option<(u64, &str)>) -> DomainResult<Response> {
        let target = self.policy.check_uri(raw_uri)?;
        let mut request = self.client.get(target.url);
        if let Some((from, validator)) = range {
            request = request
                .header(RANGE, format!("bytes={from}-"))
                .header(IF_RANGE, validator);
        }
        if let Some(total) = self.limits.total_timeout {
            request = request.timeout(total);
        }
        let response = request.send().await.map_err(fetch_error)?;
        self.successful(response)
    }

    /// The response's body from byte `from` of data `total` long (when known; from the
    /// response's own length otherwise), within the byte limit.
    fn fetched(&self, response: Response, from: u64, total: Option<u64>) -> DomainResult<Fetched> {
        let size = total.or_else(|| response.content_length().map(|rest| from + rest));
        if let Some(size) = size.filter(|&s| s > self.limits.max_bytes) {
            return Err(too_large(format!("it is {size} bytes")));
        }
        Ok(Fetched {
            url_after_redirects: response.url().to_string(),
            size,
            validator: validator_of(&response),
            body: limited(
                response.bytes_stream(),
                self.limits.max_bytes.saturating_sub(from),
            ),
        })
    }
}

/// A strong `ETag` (a weak one may not name a range's version), else `Last-Modified`.
fn validator_of(response: &Response) -> Option<String> {
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
    header(ETAG)
        .filter(|tag| !tag.starts_with("W/"))
        .or_else(|| header(LAST_MODIFIED))
        .map(str::to_owned)
}

/// For a `206` that starts at `from`: the data's total length (`None` inside when the server
/// wrote `*`); `None` when its `Content-Range` says anything else.
fn range_start(response: &Response, from: u64) -> Option<Option<u64>> {
    let range = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let (span, total) = range.strip_prefix("bytes ")?.split_once('/')?;
    let (first, _) = span.split_once('-')?;
    if first.trim().parse::<u64>().ok()? != from {
        return None;
    }
    Some(total.trim().parse::<u64>().ok())
}

fn build_client(
    policy: &Arc<FetchPolicy>,
    limits: &FetchLimits,
    resolver: Arc<CheckedResolver>,
) -> Client {
    let builder = || {
        Client::builder()
            // A proxy would make the connection the policy never saw.
            .no_proxy()
            .redirect(checked_redirects(policy.clone(), limits.max_redirects))
            .dns_resolver(resolver.clone())
            // The previous URI (and any token in its query) is nothing the next host needs.
            .referer(false)
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .http1_only()
            .user_agent(concat!(
                "cloud-images-web-download/",
                env!("CARGO_PKG_VERSION")
            ))
    };
    builder().build().unwrap_or_else(|e| {
        // Only the system's trust roots can fail (all of them unreadable): http still works,
        // and https fails with an unknown issuer rather than the whole service.
        tracing::error!(error = %e, "web-download fetches will trust no certificate authority");
        builder()
            .tls_built_in_native_certs(false)
            .build()
            .expect("a client without trust roots needs nothing that can fail")
    })
}

/// Follows a redirect only to a URI the policy allows, and only so many times.
fn checked_redirects(policy: Arc<FetchPolicy>, max_redirects: usize) -> Policy {
    Policy::custom(move |attempt: Attempt<'_>| {
        // `previous` holds the first URI and every hop so far: this is redirect number len().
        if attempt.previous().len() > max_redirects {
            let why = format!("it redirects more than {max_redirects} times");
            return attempt.error(Refusal::from(refused(why)));
        }
        match policy.check_uri(attempt.url().as_str()) {
            Ok(_) => attempt.follow(),
            Err(e) => attempt.error(Refusal::from(e)),
        }
    })
}

/// The client's resolver: one lookup, every address checked, the checked ones used.
struct CheckedResolver {
    policy: Arc<FetchPolicy>,
    lookup: Lookup,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        let lookup = (self.lookup)(host.clone());
        Box::pin(async move {
            let addresses = lookup.await?;
            if addresses.is_empty() {
                return Err(
                    io::Error::new(io::ErrorKind::NotFound, "the name has no address").into(),
                );
            }
            // One refused address refuses the name: the client may try any of them.
            for &ip in &addresses {
                policy.check_address(ip).map_err(|e| {
                    tracing::warn!(%host, %ip, "web-download refused a name with an internal address");
                    Refusal::from(e)
                })?;
            }
            let checked: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(checked)
        })
    }
}

/// A policy refusal raised inside the client, found again in the error it returns.
#[derive(Debug)]
struct Refusal(String);

impl From<DomainError> for Refusal {
    fn from(e: DomainError) -> Self {
        Self(e.to_string())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

fn refusal_in(error: &reqwest::Error) -> Option<&Refusal> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        cause = e.source();
    }
    None
}

/// What the tenant reads about a failed fetch: the policy's refusal when there was one
/// (not the client's generic text), or whether the host was unreachable or too slow. All are
/// final (`Invalid`): the URL is the tenant's, and retrying it would only delay the reason.
fn fetch_error(error: reqwest::Error) -> DomainError {
    if let Some(refusal) = refusal_in(&error) {
        return DomainError::Invalid(refusal.0.clone());
    }
    let host = error
        .url()
        .and_then(|u| u.host_str())
        .unwrap_or("the host")
        .to_owned();
    let context = if error.is_timeout() {
        format!("The web-download from '{host}' timed out")
    } else if error.is_connect() {
        format!("The host '{host}' could not be reached for web-download")
    } else {
        format!("The web-download from '{host}' failed")
    };
    DomainError::Invalid(format!("{context}: {error}"))
}

impl Fetcher {
    fn successful(&self, response: Response) -> DomainResult<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_redirection() {
            return Err(self.unfollowed_redirect(&response));
        }
        let message = format!(
            "The URI for web-download could not be fetched: {} answered {status}",
            response.url()
        );
        Err(match status {
            StatusCode::NOT_FOUND => DomainError::NotFound(message),
            StatusCode::RANGE_NOT_SATISFIABLE => DomainError::RangeNotSatisfiable { size: 0 },
            _ => DomainError::Invalid(message),
        })
    }

    /// A redirect the client handed back instead of following: its location is no URI it
    /// can request (`file:`, say), or there is none. The policy says why when it can.
    fn unfollowed_redirect(&self, response: &Response) -> DomainError {
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok());
        let Some(location) = location else {
            return refused(format!("it answered {status} without a location to follow"));
        };
        let next = response
            .url()
            .join(location)
            .map_or_else(|_| location.to_owned(), String::from);
        match self.policy.check_uri(&next) {
            Err(refusal) => refusal,
            Ok(_) => refused(format!(
                "it redirects to '{next}', which cannot be followed"
            )),
        }
    }
}

fn too_large(why: impl std::fmt::Display) -> DomainError {
    DomainError::QuotaExceeded(format!("The data for web-download is too large: {why}"))
}

/// The body, failing once more than `max_bytes` arrived and ending after any failure.
fn limited<S>(body: S, max_bytes: u64) -> ByteStream
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
{
    let state = (Box::pin(body), 0u64, false);
    Box::pin(stream::unfold(
        state,
        move |(mut body, seen, failed)| async move {
            if failed {
                return None;
            }
            let chunk = match body.next().await? {
                Ok(chunk) => chunk,
                Err(e) => return Some((Err(fetch_error(e)), (body, seen, true))),
            };
            let seen = seen + chunk.len() as u64;
            if seen > max_bytes {
                let error = too_large(format!("it has more than {max_bytes} bytes"));
                return Some((Err(error), (body, seen, true)));
            }
            Some((Ok(chunk), (body, seen, false)))
        },
    ))
}

#[cfg(test)]
mod tests;
