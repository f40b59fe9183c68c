//! Authentication and account administration.

use std::sync::Arc;

use chrono::Utc;
use cloud_images_domain::identity::{AccountName, Caller, Role, Tenant, TenantId, User, UserId};
use cloud_images_domain::ports::IdentityStore;
use cloud_images_domain::{DomainError, DomainResult};

use crate::secrets;
use crate::tokens::{Claims, IssuedToken, TokenSigner};

/// Names a user or a tenant either by id or by name, as Keystone requests may.
#[derive(Debug, Clone)]
pub enum Principal {
    /// By id.
    Id(String),
    /// By name.
    Name(String),
}

/// The ways a client can prove who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Keystone password credentials.
    Password {
        /// The user.
        user: Principal,
        /// Its password.
        password: String,
    },
    /// Rackspace `RAX-KSKEY:apiKeyCredentials`.
    ApiKey {
        /// The user's name.
        username: String,
        /// Its API key.
        api_key: String,
    },
}

/// A successful authentication: the token and what it was issued for.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token to send as `X-Auth-Token`.
    pub token: IssuedToken,
    /// The user's tenant.
    pub tenant: Tenant,
}

/// An operator's request to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Name of the existing tenant the user joins.
    pub tenant_name: String,
    /// Login name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// Optional password; the user can always authenticate with its API key.
    pub password: Option<String>,
}

/// A created user and its API key, which is shown once and never stored in clear.
#[derive(Debug, Clone)]
pub struct CreatedUser {
    /// The stored user.
    pub user: User,
    /// Its tenant.
    pub tenant: Tenant,
    /// The API key in clear.
    pub api_key: String,
}

/// The credentials of the administrator created on first start.
#[derive(Debug, Clone)]
pub struct BootstrapAdmin {
    /// The created user.
    pub created: CreatedUser,
    /// Its generated password.
    pub password: String,
}

const BOOTSTRAP_NAME: &str = "admin";

/// Authenticates callers, verifies tokens and administers accounts.
#[derive(Clone)]
pub struct IdentityService {
    store: Arc<dyn IdentityStore>,
    signer: TokenSigner,
}

impl IdentityService {
    /// Builds the service over a store and a token signer.
    pub fn new(store: Arc<dyn IdentityStore>, signer: TokenSigner) -> Self {
        Self { store, signer }
    }

    /// Checks credentials (and the requested tenant scope, if any) and issues a token.
    pub async fn authenticate(
        &self,
        credentials: Credentials,
        scope: Option<Principal>,
    ) -> DomainResult<Session> {
        let refused = || DomainError::Unauthenticated("the credentials are not valid".into());
        let (user, secret, is_api_key) = match credentials {
            Credentials::Password { user, password } => {
                (self.find_user(&user).await?, password, false)
            }
            Credentials::ApiKey { username, api_key } => (
                self.find_user(&Principal::Name(username)).await?,
                api_key,
                true,
            ),
        };
        let stored_hash = user.as_ref().and_then(|u| {
            if is_api_key {
                Some(u.api_key_hash.clone())
            } else {
                u.password_hash.clone()
            }
        });
        // Verify even when the user is unknown so timing does not reveal which names exist.
        let hash = match stored_hash {
            Some(hash) => hash,
            None => decoy_hash().await,
        };
        let matches = secrets::verify_off_thread(secret, hash).await;
        let user = user.filter(|_| matches).ok_or_else(refused)?;
        let tenant = self
            .store
            .tenant_by_id(&user.tenant_id)
            .await?
            .ok_or_else(|| {
                DomainError::Unauthenticated("the user's project no longer exists".into())
            })?;
        if scope.is_some_and(|s| !principal_matches(&s, tenant.id.as_str(), tenant.name.as_str())) {
            return Err(DomainError::Unauthenticated(
                "the user has no role on the requested project".into(),
            ));
        }
        let caller = Caller {
            tenant_id: tenant.id.clone(),
            tenant_name: tenant.name.to_string(),
            user_id: user.id.clone(),
            user_name: user.name.to_string(),
            roles: user.role.with_implied(),
            request_id: None,
        };
        let token = self.signer.issue(caller, Utc::now());
        Ok(Session { token, tenant })
    }

    async fn find_user(&self, who: &Principal) -> DomainResult<Option<User>> {
        match who {
            Principal::Id(id) => {
                self.store
                    .user_by_id(&UserId::from_trusted(id.clone()))
                    .await
            }
            Principal::Name(name) => match AccountName::parse(name) {
                Ok(name) => self.store.user_by_name(&name).await,
                Err(_) => Ok(None),
            },
        }
    }

    /// Verifies a token presented on a request.
    pub fn verify(&self, token: &str) -> DomainResult<Claims> {
        self.signer.verify(token, Utc::now())
    }

    /// Creates a tenant; `Conflict` if the name is taken.
    pub async fn create_tenant(&self, name: &str) -> DomainResult<Tenant> {
        let tenant = Tenant {
            id: TenantId::random(),
            name: AccountName::parse(name)?,
            created_at: Utc::now(),
        };
        self.store.insert_tenant(&tenant).await?;
        Ok(tenant)
    }

    /// Creates a user in an existing tenant and returns its fresh API key.
    pub async fn create_user(&self, new: NewUser) -> DomainResult<CreatedUser> {
        let name = AccountName::parse(&new.name)?;
        let tenant_name = AccountName::parse(&new.tenant_name)?;
        let tenant = self
            .store
            .tenant_by_name(&tenant_name)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no tenant named '{tenant_name}'")))?;
        if new.password.as_deref() == Some("") {
            return Err(DomainError::Invalid("a password must not be empty".into()));
        }
        let api_key = secrets::new_api_key();
        let api_key_hash = secrets::hash_off_thread(api_key.clone()).await?;
        let password_hash = match new.password {
            Some(p) => Some(secrets::hash_off_thread(p).await?),
            None => None,
        };
        let user = User {
            id: UserId::random(),
            name,
            tenant_id: tenant.id.clone(),
            role: new.role,
            password_hash,
            api_key_hash,
            created_at: Utc::now(),
        };
        self.store.insert_user(&user).await?;
        Ok(CreatedUser {
            user,
            tenant,
            api_key,
        })
    }

    /// Lists users with their tenants, for operators.
    pub async fn list_users(&self) -> DomainResult<Vec<(User, Tenant)>> {
        let tenants = self.store.list_tenants().await?;
        let users = self.store.list_users().await?;
        Ok(users
            .into_iter()
            .filter_map(|u| {
                let tenant = tenants.iter().find(|t| t.id == u.tenant_id)?.clone();
                Some((u, tenant))
            })
            .collect())
    }

    /// Lists tenants, for operators.
    pub async fn list_tenants(&self) -> DomainResult<Vec<Tenant>> {
        self.store.list_tenants().await
    }

    /// On an empty store, creates the `admin` tenant and user so a new service is usable at
    /// once. Returns `None` when any user already exists (or another process just made it).
    pub async fn bootstrap_admin(&self) -> DomainResult<Option<BootstrapAdmin>> {
        if !self.store.list_users().await?.is_empty() {
            return Ok(None);
        }
        match self.create_tenant(BOOTSTRAP_NAME).await {
            Ok(_) | Err(DomainError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        let password = secrets::random_hex(12);
        let new = NewUser {
            tenant_name: BOOTSTRAP_NAME.into(),
            name: BOOTSTRAP_NAME.into(),
            role: Role::Admin,
            password: Some(password.clone()),
        };
        match self.create_user(new).await {
            Ok(created) => Ok(Some(BootstrapAdmin { created, password })),
            Err(DomainError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Shows a project to a caller: its own, or any when the caller is admin. Others are
    /// forbidden rather than hidden, as Keystone answers (clients resolve members this way).
    pub async fn project(&self, caller: &Caller, id: &str) -> DomainResult<Tenant> {
        if caller.tenant_id.as_str() != id && !caller.is_admin() {
            return Err(DomainError::Forbidden(
                "you may only look up your own project".into(),
            ));
        }
        self.store
            .tenant_by_id(&TenantId::from_trusted(id))
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no project with id '{id}'")))
    }
}

fn principal_matches(principal: &Principal, id: &str, name: &str) -> bool {
    match principal {
        Principal::Id(want) => want == id,
        Principal::Name(want) => want == name,
    }
}

/// A real Argon2id hash of a random secret, so unknown users cost the same time as known ones.
async fn decoy_hash() -> String {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_init(|| async {
            secrets::hash_off_thread(secrets::random_hex(16))
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}
