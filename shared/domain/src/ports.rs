//! Ports: what the use cases need from storage, implemented by the embedded and AWS adapters.

use async_trait::async_trait;

use crate::error::DomainResult;
use crate::identity::{AccountName, Tenant, TenantId, User, UserId};

/// Where tenants and users live. Names are unique; creating a duplicate is a `Conflict`.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Stores a new tenant; `Conflict` if the name is taken.
    async fn insert_tenant(&self, tenant: &Tenant) -> DomainResult<()>;
    /// Finds a tenant by name.
    async fn tenant_by_name(&self, name: &AccountName) -> DomainResult<Option<Tenant>>;
    /// Finds a tenant by id.
    async fn tenant_by_id(&self, id: &TenantId) -> DomainResult<Option<Tenant>>;
    /// Lists every tenant, ordered by name.
    async fn list_tenants(&self) -> DomainResult<Vec<Tenant>>;
    /// Stores a new user; `Conflict` if the name is taken.
    async fn insert_user(&self, user: &User) -> DomainResult<()>;
    /// Finds a user by name.
    async fn user_by_name(&self, name: &AccountName) -> DomainResult<Option<User>>;
    /// Finds a user by id.
    async fn user_by_id(&self, id: &UserId) -> DomainResult<Option<User>>;
    /// Lists every user, ordered by name.
    async fn list_users(&self) -> DomainResult<Vec<User>>;
}
