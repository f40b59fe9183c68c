//! Linked containers: a container name standing for a bucket of the tenant's own storage,
//! checked before it is kept, its secret sealed, and what import and export tasks do
//! through it.

use chrono::Utc;
use cloud_images_domain::containers::ContainerRecord;
use cloud_images_domain::identity::Caller;
use cloud_images_domain::links::{
    ContainerLink, LinkAccess, LinkCredentials, LinkRequest, external_id,
};
use cloud_images_domain::ports::ByteStream;
use cloud_images_domain::task::ObjectPath;
use cloud_images_domain::{DomainError, DomainResult};

use super::{ContainerService, NewObject, container_name, own_account, receive};

impl ContainerService {
    /// Links container `name` to a bucket of the tenant's own storage, once the bucket is
    /// reached and listed with the keys given (or the role's, assumed with the tenant's
    /// external id); a secret key is sealed before it is stored.
    pub async fn link(
        &self,
        caller: &Caller,
        account: &str,
        name: &str,
        body: &[u8],
    ) -> DomainResult<ContainerRecord> {
        own_account(caller, account)?;
        caller.require_writer()?;
        let request = LinkRequest::parse(body)?;
        let tenant = caller.tenant_id.as_str();
        let name = container_name(name)?;
        self.links.endpoints.check(&request.endpoint).map_err(|e| {
            DomainError::Invalid(format!(
                "The endpoint {} is not allowed: {e}",
                request.endpoint
            ))
        })?;
        if self.records.container(tenant, &name).await?.is_some() {
            return Err(already_exists(&name));
        }
        let access = LinkAccess {
            endpoint: request.endpoint.clone(),
            region: request.region(),
            bucket: request.bucket.clone(),
            credentials: request.credentials(tenant)?,
        };
        self.links.storage.check(&access, &request.prefix()).await?;
        let (access_key_id, sealed_secret, role_arn) = match &access.credentials {
            LinkCredentials::Keys {
                access_key_id,
                secret_access_key,
            } => (
                Some(access_key_id.clone()),
                Some(self.links.sealer.seal(tenant, &name, secret_access_key)?),
                None,
            ),
            LinkCredentials::Role { role_arn, .. } => (None, None, Some(role_arn.clone())),
        };
        let record = ContainerRecord {
            link: Some(ContainerLink {
                endpoint: access.endpoint,
                region: access.region,
                bucket: access.bucket,
                prefix: request.prefix(),
                access_key_id,
                sealed_secret,
                role_arn,
            }),
            name: name.clone(),
            objects: 0,
            bytes: 0,
            created_at: Utc::now(),
        };
        if !self.records.create_container(tenant, &record).await? {
            return Err(already_exists(&name));
        }
        Ok(record)
    }

    /// A linked container's storage, its secret opened.
    fn access(
        &self,
        tenant: &str,
        container: &str,
        link: &ContainerLink,
    ) -> DomainResult<LinkAccess> {
        let credentials = match (&link.access_key_id, &link.sealed_secret, &link.role_arn) {
            (Some(access_key_id), Some(sealed), _) => LinkCredentials::Keys {
                access_key_id: access_key_id.clone(),
                secret_access_key: self.links.sealer.open(tenant, container, sealed)?,
            },
            (_, _, Some(role_arn)) => LinkCredentials::Role {
                role_arn: role_arn.clone(),
                external_id: external_id(tenant),
            },
            _ => {
                return Err(DomainError::unavailable(
                    "reading a container link",
                    format!("container '{container}' has neither keys nor a role"),
                ));
            }
        };
        Ok(LinkAccess {
            endpoint: link.endpoint.clone(),
            region: link.region.clone(),
            bucket: link.bucket.clone(),
            credentials,
        })
    }

    /// Opens an object's bytes for an import task: from the tenant's own storage when the
    /// container is linked.
    pub async fn open_for_import(
        &self,
        tenant: &str,
        path: &ObjectPath,
    ) -> DomainResult<(u64, ByteStream)> {
        match self.records.container(tenant, &path.container).await? {
            Some(ContainerRecord {
                link: Some(link), ..
            }) => {
                let access = self.access(tenant, &path.container, &link)?;
                self.links
                    .storage
                    .open(&access, &link.key(&path.object))
                    .await
            }
            _ => self.objects.open(tenant, path).await,
        }
    }

    /// Stores an object an export task produced, creating its container when absent.
    pub async fn store_export(
        &self,
        tenant: &str,
        path: &ObjectPath,
        body: ByteStream,
    ) -> DomainResult<()> {
        if let Some(ContainerRecord {
            link: Some(link), ..
        }) = self.records.container(tenant, &path.container).await?
        {
            // Straight into the tenant's bucket, multipart: no record, no quota of ours.
            let access = self.access(tenant, &path.container, &link)?;
            let mut sink = self
                .links
                .storage
                .create(&access, &link.key(&path.object))
                .await?;
            return match receive(sink.as_mut(), body).await {
                Ok(_) => sink.commit().await,
                Err(e) => {
                    sink.abort().await;
                    Err(e)
                }
            };
        }
        self.create_for(tenant, &path.container).await?;
        let object = NewObject {
            path: path.clone(),
            content_type: None,
            expected_etag: None,
            announced_size: None,
        };
        self.write(tenant, &object, body).await.map(|_| ())
    }
}

fn already_exists(name: &str) -> DomainError {
    DomainError::Conflict(format!(
        "Container '{name}' already exists; a linked container takes a name not in use"
    ))
}
