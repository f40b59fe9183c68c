//! [`WebSource`] for the services: the URI check a request makes before any task exists, and
//! the fetch a web-download task streams from.

use std::sync::OnceLock;

use async_trait::async_trait;
use cloud_images_domain::DomainResult;
use cloud_images_domain::ports::{WebBody, WebSource};

use crate::{FetchLimits, FetchPolicy, Fetcher};

/// The web as web-download reaches it. The HTTP client (and the system's trust roots it
/// loads) is made on the first fetch, so a host that only checks URIs never pays for it.
pub struct WebFetcher {
    policy: FetchPolicy,
    fetcher: OnceLock<Fetcher>,
}

impl WebFetcher {
    /// Fetches what `policy` allows, within the default limits.
    pub fn new(policy: FetchPolicy) -> Self {
        Self {
            policy,
            fetcher: OnceLock::new(),
        }
    }

    fn fetcher(&self) -> &Fetcher {
        self.fetcher
            .get_or_init(|| Fetcher::new(self.policy.clone(), FetchLimits::default()))
    }
}

#[async_trait]
impl WebSource for WebFetcher {
    fn check(&self, uri: &str) -> DomainResult<()> {
        self.policy.check_uri(uri).map(|_| ())
    }

    async fn open(&self, uri: &str) -> DomainResult<WebBody> {
        Ok(body_of(self.fetcher().open(uri).await?))
    }

    async fn open_from(
        &self,
        uri: &str,
        from: u64,
        validator: &str,
    ) -> DomainResult<Option<WebBody>> {
        let fetched = self.fetcher().open_from(uri, from, validator).await?;
        Ok(fetched.map(body_of))
    }
}

fn body_of(fetched: crate::Fetched) -> WebBody {
    WebBody {
        size: fetched.size,
        validator: fetched.validator,
        body: fetched.body,
    }
}
