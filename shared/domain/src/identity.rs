//! Tenants (projects), users, roles and the authenticated caller.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::{DomainError, DomainResult};

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id, 32 lowercase hex digits as Keystone writes them.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4().simple().to_string())
            }
            /// Wraps an id read back from storage or a verified token.
            pub fn from_trusted(raw: impl Into<String>) -> Self {
                Self(raw.into())
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Read as text wherever an id is compared or stored (SQL columns, item attributes).
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

hex_id!(
    /// Identifies a tenant (a Keystone project); images are owned by tenants.
    TenantId
);
hex_id!(
    /// Identifies a user.
    UserId
);

/// What a user may do within its tenant. Each role implies the ones below it, as Keystone's
/// default implied roles do (`admin` ⊃ `member` ⊃ `reader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads what its project may read; changes nothing.
    Reader,
    /// Reads and changes what its project may.
    Member,
    /// Operates the whole service.
    Admin,
}

impl Role {
    /// The role's name as Keystone and tokens spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    /// This role and every role it implies, strongest first.
    pub fn with_implied(self) -> Vec<Role> {
        [Role::Admin, Role::Member, Role::Reader]
            .into_iter()
            .filter(|r| *r <= self)
            .collect()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(s: &str) -> DomainResult<Self> {
        match s {
            "reader" => Ok(Role::Reader),
            "member" | "_member_" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            other => Err(DomainError::Invalid(format!(
                "unknown role '{other}'; expected one of: admin, member, reader"
            ))),
        }
    }
}

/// A validated tenant or user name: 1 to 255 characters, none of them control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountName(String);

/// Whether `text` starts or ends with white space: Unicode's (what `str::trim` strips) or
/// U+FEFF, which JSON Schema's `\s` also counts, so the API description's pattern
/// `^[^\s\x85]([\s\S]*[^\s\x85])?$` says exactly what is refused.
pub fn has_surrounding_space(text: &str) -> bool {
    let space = |c: Option<char>| c.is_some_and(|c| c.is_whitespace() || c == '\u{feff}');
    space(text.chars().next()) || space(text.chars().next_back())
}

impl AccountName {
    /// Validates a name given by an operator or a client.
    pub fn parse(raw: &str) -> DomainResult<Self> {
        if raw.is_empty() || raw.chars().count() > 255 {
            return Err(DomainError::Invalid(
                "a name must be 1 to 255 characters long".into(),
            ));
        }
        if raw.chars().any(char::is_control) || has_surrounding_space(raw) {
            return Err(DomainError::Invalid(
                "a name must not contain control characters or surrounding spaces".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant (Keystone project) that owns images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Stable id used as image `owner`.
    pub id: TenantId,
    /// Unique human name.
    pub name: AccountName,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A user account with its secrets held only as slow salted hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// Unique login name.
    pub name: AccountName,
    /// The one tenant the user belongs to.
    pub tenant_id: TenantId,
    /// What the user may do in that tenant.
    pub role: Role,
    /// PHC-format hash of the password, when the user has one.
    pub password_hash: Option<String>,
    /// PHC-format hash of the API key.
    pub api_key_hash: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// A disabled user can neither log in nor use the tokens it holds.
    pub enabled: bool,
    /// Tokens carry the epoch they were issued in; raising it revokes every older token.
    pub token_epoch: u64,
    /// Failed password logins since the last successful one (or the last lockout's end).
    pub failed_logins: u32,
    /// When the latest of those failures happened.
    pub last_failed_login: Option<DateTime<Utc>>,
    /// Bumped by every stored change: updates are compare-and-set on it.
    pub revision: u64,
}

impl User {
    /// Whether tokens issued in `epoch` still speak for this user.
    pub fn honours(&self, epoch: u64) -> bool {
        self.enabled && self.token_epoch == epoch
    }

    /// The user after a change that must end its existing sessions (a new secret, a new
    /// name, being disabled).
    pub fn with_tokens_revoked(mut self) -> Self {
        self.token_epoch += 1;
        self
    }
}

/// Keystone's `lockout_failure_attempts` and `lockout_duration`: after `attempts` failed
/// password logins in a row a user's password is refused, right or wrong, until `duration`
/// has passed since the last failure. `attempts == 0` turns lockout off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the password.
    pub attempts: u32,
    /// How long the lock lasts after the last failure.
    pub duration: std::time::Duration,
}

/// Where a user stands against the lockout policy at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStanding {
    /// The password may be tried.
    Open,
    /// The password may be tried, and the earlier failures no longer count: the lock they
    /// made has run out.
    LockExpired,
    /// The password is refused without being checked.
    Locked,
}

impl LockoutPolicy {
    /// Where `user` stands at `now`.
    pub fn standing(&self, user: &User, now: DateTime<Utc>) -> LoginStanding {
        if self.attempts == 0 || user.failed_logins < self.attempts {
            return LoginStanding::Open;
        }
        let duration = chrono::Duration::from_std(self.duration).unwrap_or(chrono::Duration::MAX);
        match user.last_failed_login {
            Some(at)
                if now
                    < at.checked_add_signed(duration)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC) =>
            {
                LoginStanding::Locked
            }
            _ => LoginStanding::LockExpired,
        }
    }
}

/// The authenticated principal of a request, as carried by a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The caller's tenant.
    pub tenant_id: TenantId,
    /// The tenant's name.
    pub tenant_name: String,
    /// The caller's user id.
    pub user_id: UserId,
    /// The caller's user name.
    pub user_name: String,
    /// The caller's roles, implied ones included.
    pub roles: Vec<Role>,
    /// The `x-openstack-request-id` of the request being served: who made a change, for
    /// its events. Never part of a token.
    #[serde(skip)]
    pub request_id: Option<String>,
}

impl Caller {
    /// Whether the caller holds `role` (directly or implied).
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller operates the whole service.
    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }

    /// Refuses callers who may only read.
    pub fn require_writer(&self) -> DomainResult<()> {
        if self.has_role(Role::Member) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(
                "this account may read but not change anything".into(),
            ))
        }
    }

    /// Refuses callers who are not administrators.
    pub fn require_admin(&self) -> DomainResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(DomainError::Forbidden(
                "this action needs the admin role".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller_with(role: Role) -> Caller {
        Caller {
            tenant_id: TenantId::random(),
            tenant_name: "t".into(),
            user_id: UserId::random(),
            user_name: "u".into(),
            roles: role.with_implied(),
            request_id: None,
        }
    }

    #[test]
    fn admin_implies_member_and_reader() {
        assert_eq!(
            Role::Admin.with_implied(),
            vec![Role::Admin, Role::Member, Role::Reader]
        );
        assert_eq!(Role::Reader.with_implied(), vec![Role::Reader]);
    }

    #[test]
    fn roles_parse_from_keystone_names() {
        assert_eq!("member".parse::<Role>().ok(), Some(Role::Member));
        assert_eq!("_member_".parse::<Role>().ok(), Some(Role::Member));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn a_reader_may_not_write_and_a_member_may() {
        assert!(caller_with(Role::Reader).require_writer().is_err());
        assert!(caller_with(Role::Member).require_writer().is_ok());
        assert!(caller_with(Role::Member).require_admin().is_err());
        assert!(caller_with(Role::Admin).require_admin().is_ok());
    }

    #[test]
    fn names_reject_empty_long_and_control_characters() {
        assert!(AccountName::parse("").is_err());
        assert!(AccountName::parse(&"x".repeat(256)).is_err());
        assert!(AccountName::parse("a\nb").is_err());
        assert!(AccountName::parse(" padded").is_err());
        assert_eq!(
            AccountName::parse("acme-prod").map(|n| n.to_string()).ok(),
            Some("acme-prod".into())
        );
    }

    fn user_with(failed_logins: u32, last_failed_login: Option<DateTime<Utc>>) -> User {
        User {
            id: UserId::random(),
            name: AccountName::parse("u").unwrap_or_else(|e| panic!("{e}")),
            tenant_id: TenantId::random(),
            role: Role::Member,
            password_hash: None,
            api_key_hash: String::new(),
            created_at: Utc::now(),
            enabled: true,
            token_epoch: 0,
            failed_logins,
            last_failed_login,
            revision: 0,
        }
    }

    #[test]
    fn a_password_locks_after_the_set_number_of_failures_until_the_duration_passes() {
        let policy = LockoutPolicy {
            attempts: 3,
            duration: std::time::Duration::from_secs(60),
        };
        let now = Utc::now();
        assert_eq!(
            policy.standing(&user_with(2, Some(now)), now),
            LoginStanding::Open
        );
        assert_eq!(
            policy.standing(&user_with(3, Some(now)), now),
            LoginStanding::Locked
        );
        let later = now + chrono::Duration::seconds(59);
        assert_eq!(
            policy.standing(&user_with(9, Some(now)), later),
            LoginStanding::Locked
        );
        let after = now + chrono::Duration::seconds(60);
        assert_eq!(
            policy.standing(&user_with(3, Some(now)), after),
            LoginStanding::LockExpired
        );
    }

    #[test]
    fn no_attempt_count_locks_when_lockout_is_off() {
        let off = LockoutPolicy {
            attempts: 0,
            duration: std::time::Duration::from_secs(60),
        };
        let now = Utc::now();
        assert_eq!(
            off.standing(&user_with(1000, Some(now)), now),
            LoginStanding::Open
        );
    }

    #[test]
    fn revoking_tokens_ends_the_current_epoch_and_disabling_ends_all() {
        let user = user_with(0, None);
        assert!(user.honours(0));
        let revoked = user.clone().with_tokens_revoked();
        assert!(!revoked.honours(0) && revoked.honours(1));
        let disabled = User {
            enabled: false,
            ..user
        };
        assert!(!disabled.honours(0));
    }

    #[test]
    fn random_ids_are_32_hex_digits() {
        let id = TenantId::random();
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }
}
