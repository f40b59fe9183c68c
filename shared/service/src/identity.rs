//! Authentication and account administration.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use cloud_images_domain::identity::{
    AccountName, Caller, LockoutPolicy, LoginStanding, Role, Tenant, TenantId, User, UserId,
};
use cloud_images_domain::ports::{ContainerRepository, IdentityStore, ImageRepository};
use cloud_images_domain::{DomainError, DomainResult};

use crate::revocation::TokenVerifier;
use crate::secrets;
use crate::tokens::{Claims, IssuedToken};

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
    /// The existing tenant the user joins.
    pub tenant: Principal,
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

/// An administrator's change to a user; what is `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// A new login name.
    pub name: Option<String>,
    /// Enables or disables the user.
    pub enabled: Option<bool>,
    /// A new password.
    pub password: Option<String>,
    /// A new role.
    pub role: Option<Role>,
}

/// Who asks for an account change: the command line, acting with the deployment's full
/// authority, or an API caller, acting as its token allows.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// An operator at the command line.
    Operator,
    /// An authenticated API caller.
    Api(&'a Caller),
}

impl Actor<'_> {
    fn require_admin(self) -> DomainResult<()> {
        match self {
            Actor::Operator => Ok(()),
            Actor::Api(caller) => caller.require_admin(),
        }
    }

    /// Administrators manage every user; others only themselves.
    fn require_self_or_admin(self, user: &UserId) -> DomainResult<()> {
        match self {
            Actor::Api(caller) if !caller.is_admin() && caller.user_id != *user => Err(
                DomainError::Forbidden("you may only manage your own account".into()),
            ),
            _ => Ok(()),
        }
    }

    /// Refuses an API caller's change that would end the very account it is using.
    fn require_not_self(self, user: &UserId, what: &str) -> DomainResult<()> {
        match self {
            Actor::Api(caller) if caller.user_id == *user => Err(DomainError::Conflict(format!(
                "you cannot {what} the account you are signed in with"
            ))),
            _ => Ok(()),
        }
    }
}

/// What the identity service needs besides its own store: what a tenant still owns, so a
/// tenant is deleted only when nothing of its is left behind.
#[derive(Clone)]
pub struct TenantHoldings {
    /// Image records (their counters).
    pub images: Arc<dyn ImageRepository>,
    /// Container records (their counters).
    pub containers: Arc<dyn ContainerRepository>,
}

const BOOTSTRAP_NAME: &str = "admin";

/// Authenticates callers, verifies tokens and administers accounts.
#[derive(Clone)]
pub struct IdentityService {
    store: Arc<dyn IdentityStore>,
    tokens: TokenVerifier,
    lockout: LockoutPolicy,
    holdings: Option<TenantHoldings>,
    /// How long the latest password check took, in microseconds: a locked account's refusal
    /// waits as long, so timing tells an attacker nothing the answer does not.
    check_micros: Arc<AtomicU64>,
}

impl IdentityService {
    /// Builds the service over a store and a token verifier, locking passwords out as
    /// `lockout` says. Tenants can be deleted only when `holdings` tells what they own.
    pub fn new(
        store: Arc<dyn IdentityStore>,
        tokens: TokenVerifier,
        lockout: LockoutPolicy,
        holdings: Option<TenantHoldings>,
    ) -> Self {
        Self {
            store,
            tokens,
            lockout,
            holdings,
            check_micros: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Checks credentials (and the requested tenant scope, if any) and issues a token.
    pub async fn authenticate(
        &self,
        credentials: Credentials,
        scope: Option<Principal>,
    ) -> DomainResult<Session> {
        let user = self.check_credentials(credentials).await?;
        if !user.enabled {
            return Err(DomainError::Unauthenticated(
                "this account is disabled".into(),
            ));
        }
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
        let token = self
            .tokens
            .signer()
            .issue(caller, user.token_epoch, Utc::now());
        Ok(Session { token, tenant })
    }

    /// The user the credentials prove, or the same refusal whatever was wrong: unknown
    /// user, wrong secret, or a password locked out.
    async fn check_credentials(&self, credentials: Credentials) -> DomainResult<User> {
        let refused = || DomainError::Unauthenticated("the credentials are not valid".into());
        let (user, secret, is_password) = match credentials {
            Credentials::Password { user, password } => {
                (self.find_user(&user).await?, password, true)
            }
            Credentials::ApiKey { username, api_key } => (
                self.find_user(&Principal::Name(username)).await?,
                api_key,
                false,
            ),
        };
        if is_password && let Some(user) = &user {
            match self.lockout.standing(user, Utc::now()) {
                LoginStanding::Open => {}
                LoginStanding::LockExpired => self.store.clear_failed_logins(&user.id).await?,
                LoginStanding::Locked => {
                    // No hash is computed: the attacker waits, the server does not work.
                    tokio::time::sleep(self.typical_check()).await;
                    return Err(refused());
                }
            }
        }
        let stored_hash = user.as_ref().and_then(|u| {
            if is_password {
                u.password_hash.clone()
            } else {
                Some(u.api_key_hash.clone())
            }
        });
        let matches = self.matches(secret, stored_hash).await;
        match user {
            Some(user) if matches => {
                if is_password && user.failed_logins > 0 {
                    self.store.clear_failed_logins(&user.id).await?;
                }
                Ok(user)
            }
            Some(user) => {
                if is_password {
                    self.store.record_failed_login(&user.id, Utc::now()).await?;
                }
                Err(refused())
            }
            None => Err(refused()),
        }
    }

    /// Checks a secret against a stored hash; without one, against a decoy, so timing does
    /// not reveal which names exist.
    async fn matches(&self, secret: String, stored_hash: Option<String>) -> bool {
        let hash = match stored_hash {
            Some(hash) => hash,
            None => decoy_hash().await,
        };
        let started = Instant::now();
        metrics::counter!("cloud_images_secret_checks_total").increment(1);
        let matches = secrets::verify_off_thread(secret, hash).await;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.check_micros.store(took, Ordering::Relaxed);
        matches
    }

    fn typical_check(&self) -> Duration {
        Duration::from_micros(self.check_micros.load(Ordering::Relaxed))
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

    /// Verifies a token presented on a request, revocation included.
    pub async fn verify(&self, token: &str) -> DomainResult<Claims> {
        self.tokens.verify(token).await
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
        let tenant = self.find_tenant(&new.tenant).await?;
        let api_key = secrets::new_api_key();
        let api_key_hash = secrets::hash_off_thread(api_key.clone()).await?;
        let password_hash = match new.password {
            Some(p) => Some(hash_password(p).await?),
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
            enabled: true,
            token_epoch: 0,
            failed_logins: 0,
            last_failed_login: None,
            revision: 0,
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
            tenant: Principal::Name(BOOTSTRAP_NAME.into()),
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

    /// A user as `actor` may see it: administrators any, others only themselves.
    pub async fn user(&self, actor: Actor<'_>, who: &Principal) -> DomainResult<(User, Tenant)> {
        let user = self.existing_user(who).await?;
        actor.require_self_or_admin(&user.id)?;
        let tenant = self.tenant_of(&user).await?;
        Ok((user, tenant))
    }

    /// An administrator's change to a user. Any change but enabling ends the user's
    /// existing sessions.
    pub async fn update_user(
        &self,
        actor: Actor<'_>,
        who: &Principal,
        changes: UserChanges,
    ) -> DomainResult<(User, Tenant)> {
        actor.require_admin()?;
        let name = changes
            .name
            .as_deref()
            .map(AccountName::parse)
            .transpose()?;
        let password_hash = match changes.password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        if changes.enabled == Some(false) {
            actor.require_not_self(&self.existing_user(who).await?.id, "disable")?;
        }
        let user = self
            .change_user(who, |user| {
                let ends_sessions = name.as_ref().is_some_and(|n| *n != user.name)
                    || password_hash.is_some()
                    || changes.role.is_some_and(|r| r != user.role)
                    || changes.enabled == Some(false);
                let mut next = User {
                    name: name.clone().unwrap_or(user.name.clone()),
                    enabled: changes.enabled.unwrap_or(user.enabled),
                    password_hash: password_hash.clone().or(user.password_hash.clone()),
                    role: changes.role.unwrap_or(user.role),
                    ..user.clone()
                };
                if ends_sessions {
                    next = next.with_tokens_revoked();
                }
                next
            })
            .await?;
        let tenant = self.tenant_of(&user).await?;
        Ok((user, tenant))
    }

    /// A user's own password change: the original password proves it is the user (a
    /// wrong one counts toward lockout, as a failed login does). Ends every session.
    pub async fn change_password(
        &self,
        caller: &Caller,
        id: &str,
        original: String,
        password: String,
    ) -> DomainResult<()> {
        if caller.user_id.as_str() != id {
            return Err(DomainError::Forbidden(
                "you may only change your own password".into(),
            ));
        }
        let who = Principal::Id(id.to_owned());
        self.check_credentials(Credentials::Password {
            user: who.clone(),
            password: original,
        })
        .await
        .map_err(|_| DomainError::Unauthenticated("the original password is not right".into()))?;
        let hash = hash_password(password).await?;
        self.change_user(&who, |user| {
            User {
                password_hash: Some(hash.clone()),
                ..user.clone()
            }
            .with_tokens_revoked()
        })
        .await?;
        Ok(())
    }

    /// Rackspace's API key reset: a new key, shown once (only its hash is kept); the old
    /// key and every session end.
    pub async fn reset_api_key(
        &self,
        actor: Actor<'_>,
        who: &Principal,
    ) -> DomainResult<(User, String)> {
        actor.require_self_or_admin(&self.existing_user(who).await?.id)?;
        let api_key = secrets::new_api_key();
        let hash = secrets::hash_off_thread(api_key.clone()).await?;
        let user = self
            .change_user(who, |user| {
                User {
                    api_key_hash: hash.clone(),
                    ..user.clone()
                }
                .with_tokens_revoked()
            })
            .await?;
        Ok((user, api_key))
    }

    /// Deletes a user; its tokens stop working.
    pub async fn delete_user(&self, actor: Actor<'_>, who: &Principal) -> DomainResult<User> {
        actor.require_admin()?;
        let user = self.existing_user(who).await?;
        actor.require_not_self(&user.id, "delete")?;
        self.store.delete_user(&user).await?;
        self.tokens.forget(&user.id);
        Ok(user)
    }

    /// Creates a tenant, for administrators.
    pub async fn create_project(&self, actor: Actor<'_>, name: &str) -> DomainResult<Tenant> {
        actor.require_admin()?;
        self.create_tenant(name).await
    }

    /// Deletes a tenant that owns no images and no containers, with its users (whose
    /// tokens stop working). Images shared with it simply lose a member that can no longer
    /// sign in.
    pub async fn delete_tenant(&self, actor: Actor<'_>, who: &Principal) -> DomainResult<Tenant> {
        actor.require_admin()?;
        let tenant = self.find_tenant(who).await?;
        if let Actor::Api(caller) = actor
            && caller.tenant_id == tenant.id
        {
            return Err(DomainError::Conflict(
                "you cannot delete the tenant you are signed in to".into(),
            ));
        }
        self.require_nothing_owned(&tenant).await?;
        for user in self.store.list_users().await? {
            if user.tenant_id == tenant.id {
                self.store.delete_user(&user).await?;
                self.tokens.forget(&user.id);
            }
        }
        self.store.delete_tenant(&tenant).await?;
        Ok(tenant)
    }

    async fn require_nothing_owned(&self, tenant: &Tenant) -> DomainResult<()> {
        let holdings = self.holdings.as_ref().ok_or_else(|| {
            DomainError::unavailable("deleting a tenant", "this host cannot see what tenants own")
        })?;
        let images = holdings.images.usage(tenant.id.as_str()).await?.images;
        let containers = holdings
            .containers
            .usage(tenant.id.as_str())
            .await?
            .containers;
        if images > 0 || containers > 0 {
            return Err(DomainError::Conflict(format!(
                "tenant '{}' still owns {images} image(s) and {containers} container(s); \
                 delete them first",
                tenant.name
            )));
        }
        Ok(())
    }

    /// Applies `change` to the stored user, again on the newer record when another change
    /// got there first, and forgets the user's standing so this process sees it at once.
    async fn change_user(
        &self,
        who: &Principal,
        change: impl Fn(&User) -> User,
    ) -> DomainResult<User> {
        const ATTEMPTS: usize = 8;
        let mut attempt = 0;
        loop {
            let current = self.existing_user(who).await?;
            let next = User {
                revision: current.revision + 1,
                ..change(&current)
            };
            match self.store.update_user(&next, &current).await {
                Ok(()) => {
                    self.tokens.forget(&next.id);
                    return Ok(next);
                }
                Err(DomainError::Conflict(_))
                    if attempt + 1 < ATTEMPTS && self.moved_on(&current).await? =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the stored user is no longer at `seen`'s revision.
    async fn moved_on(&self, seen: &User) -> DomainResult<bool> {
        Ok(self
            .store
            .user_by_id(&seen.id)
            .await?
            .is_none_or(|u| u.revision != seen.revision))
    }

    async fn existing_user(&self, who: &Principal) -> DomainResult<User> {
        let found = match who {
            Principal::Id(_) => self.find_user(who).await?,
            // The command line names users either way.
            Principal::Name(name) => match self.find_user(who).await? {
                Some(user) => Some(user),
                None => self.find_user(&Principal::Id(name.clone())).await?,
            },
        };
        found.ok_or_else(|| DomainError::NotFound(format!("no user {}", who.described())))
    }

    async fn find_tenant(&self, who: &Principal) -> DomainResult<Tenant> {
        let by_id = |id: &str| TenantId::from_trusted(id);
        let found = match who {
            Principal::Id(id) => self.store.tenant_by_id(&by_id(id)).await?,
            Principal::Name(name) => match AccountName::parse(name) {
                Ok(parsed) => match self.store.tenant_by_name(&parsed).await? {
                    Some(tenant) => Some(tenant),
                    None => self.store.tenant_by_id(&by_id(name)).await?,
                },
                Err(_) => None,
            },
        };
        found.ok_or_else(|| DomainError::NotFound(format!("no tenant {}", who.described())))
    }

    async fn tenant_of(&self, user: &User) -> DomainResult<Tenant> {
        self.store
            .tenant_by_id(&user.tenant_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no tenant with id '{}'", user.tenant_id)))
    }
}

impl Principal {
    /// How a message names what was looked for.
    fn described(&self) -> String {
        match self {
            Principal::Id(id) => format!("with id '{id}'"),
            Principal::Name(name) => format!("named '{name}'"),
        }
    }
}

async fn hash_password(password: String) -> DomainResult<String> {
    if password.is_empty() {
        return Err(DomainError::Invalid("a password must not be empty".into()));
    }
    secrets::hash_off_thread(password).await
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
