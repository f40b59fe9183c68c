//! Tenants and users in SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloud_images_domain::identity::{AccountName, Tenant, TenantId, User, UserId};
use cloud_images_domain::ports::IdentityStore;
use cloud_images_domain::{DomainError, DomainResult};
use rusqlite::{OptionalExtension, Row, params};

use crate::db::Sqlite;
use crate::error::EmbeddedError;

/// [`IdentityStore`] over the embedded database.
pub struct SqliteIdentityStore {
    db: Arc<Sqlite>,
}

impl SqliteIdentityStore {
    /// Wraps the shared database.
    pub fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

const TENANT_COLUMNS: &str = "id, name, created_at";
const USER_COLUMNS: &str = "id, name, tenant_id, role, password_hash, api_key_hash, created_at, \
     enabled, token_epoch, failed_logins, last_failed_login, revision";

fn timestamp(raw: &str) -> Result<DateTime<Utc>, EmbeddedError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| EmbeddedError::Corrupt(format!("timestamp {raw:?}: {e}")))
}

fn name(raw: &str) -> Result<AccountName, EmbeddedError> {
    AccountName::parse(raw).map_err(|e| EmbeddedError::Corrupt(format!("name {raw:?}: {e}")))
}

fn tenant_from(row: &Row<'_>) -> Result<Tenant, EmbeddedError> {
    Ok(Tenant {
        id: TenantId::from_trusted(row.get::<_, String>(0)?),
        name: name(&row.get::<_, String>(1)?)?,
        created_at: timestamp(&row.get::<_, String>(2)?)?,
    })
}

fn user_from(row: &Row<'_>) -> Result<User, EmbeddedError> {
    let role: String = row.get(3)?;
    Ok(User {
        id: UserId::from_trusted(row.get::<_, String>(0)?),
        name: name(&row.get::<_, String>(1)?)?,
        tenant_id: TenantId::from_trusted(row.get::<_, String>(2)?),
        role: role
            .parse()
            .map_err(|_| EmbeddedError::Corrupt(format!("role {role:?}")))?,
        password_hash: row.get(4)?,
        api_key_hash: row.get(5)?,
        created_at: timestamp(&row.get::<_, String>(6)?)?,
        enabled: row.get(7)?,
        token_epoch: row.get(8)?,
        failed_logins: row.get(9)?,
        last_failed_login: row
            .get::<_, Option<String>>(10)?
            .map(|at| timestamp(&at))
            .transpose()?,
        revision: row.get(11)?,
    })
}

fn conflict_or(e: EmbeddedError, what: String) -> DomainError {
    if e.is_unique_violation() {
        DomainError::Conflict(what)
    } else {
        e.into()
    }
}

impl SqliteIdentityStore {
    async fn one<T: Send + 'static>(
        &self,
        sql: String,
        key: String,
        map: fn(&Row<'_>) -> Result<T, EmbeddedError>,
    ) -> DomainResult<Option<T>> {
        let found = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let row = stmt.query_row([key], |r| Ok(map(r))).optional()?;
                row.transpose()
            })
            .await?;
        Ok(found)
    }

    async fn all<T: Send + 'static>(
        &self,
        sql: String,
        map: fn(&Row<'_>) -> Result<T, EmbeddedError>,
    ) -> DomainResult<Vec<T>> {
        let rows = self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt.query_map([], |r| Ok(map(r)))?;
                rows.map(|r| r?).collect()
            })
            .await?;
        Ok(rows)
    }
}

#[async_trait]
impl IdentityStore for SqliteIdentityStore {
    async fn insert_tenant(&self, tenant: &Tenant) -> DomainResult<()> {
        let t = tenant.clone();
        self.db
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                    params![t.id.as_str(), t.name.as_str(), t.created_at.to_rfc3339()],
                )?;
                Ok(())
            })
            .await
            .map_err(|e| {
                conflict_or(
                    e,
                    format!("a tenant named '{}' already exists", tenant.name),
                )
            })
    }

    async fn tenant_by_name(&self, name: &AccountName) -> DomainResult<Option<Tenant>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE name = ?1");
        self.one(sql, name.to_string(), tenant_from).await
    }

    async fn tenant_by_id(&self, id: &TenantId) -> DomainResult<Option<Tenant>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1");
        self.one(sql, id.to_string(), tenant_from).await
    }

    async fn list_tenants(&self) -> DomainResult<Vec<Tenant>> {
        self.all(
            format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY name"),
            tenant_from,
        )
        .await
    }

    async fn insert_user(&self, user: &User) -> DomainResult<()> {
        let u = user.clone();
        self.db
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO users (id, name, tenant_id, role, password_hash, api_key_hash, created_at,
                                        enabled, token_epoch, revision)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        u.id.as_str(),
                        u.name.as_str(),
                        u.tenant_id.as_str(),
                        u.role.as_str(),
                        u.password_hash,
                        u.api_key_hash,
                        u.created_at.to_rfc3339(),
                        u.enabled,
                        u.token_epoch,
                        u.revision
                    ],
                )?;
                Ok(())
            })
            .await
            .map_err(|e| conflict_or(e, format!("a user named '{}' already exists", user.name)))
    }

    async fn user_by_name(&self, name: &AccountName) -> DomainResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1");
        self.one(sql, name.to_string(), user_from).await
    }

    async fn user_by_id(&self, id: &UserId) -> DomainResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
        self.one(sql, id.to_string(), user_from).await
    }

    async fn list_users(&self) -> DomainResult<Vec<User>> {
        self.all(
            format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"),
            user_from,
        )
        .await
    }

    async fn update_user(&self, next: &User, current: &User) -> DomainResult<()> {
        let (n, expected) = (next.clone(), current.revision);
        let changed = self
            .db
            .write(move |tx| {
                Ok(tx.execute(
                    "UPDATE users SET name = ?2, role = ?3, password_hash = ?4, api_key_hash = ?5,
                            enabled = ?6, token_epoch = ?7, revision = ?8
                     WHERE id = ?1 AND revision = ?9",
                    params![
                        n.id.as_str(),
                        n.name.as_str(),
                        n.role.as_str(),
                        n.password_hash,
                        n.api_key_hash,
                        n.enabled,
                        n.token_epoch,
                        n.revision,
                        expected
                    ],
                )?)
            })
            .await
            .map_err(|e| conflict_or(e, format!("a user named '{}' already exists", next.name)))?;
        if changed == 1 {
            return Ok(());
        }
        match self.user_by_id(&current.id).await? {
            Some(_) => Err(DomainError::Conflict(format!(
                "user '{}' changed meanwhile",
                current.id
            ))),
            None => Err(gone_user(&current.id)),
        }
    }

    async fn delete_user(&self, user: &User) -> DomainResult<()> {
        let id = user.id.to_string();
        let deleted = self
            .db
            .write(move |tx| Ok(tx.execute("DELETE FROM users WHERE id = ?1", [id])?))
            .await?;
        if deleted == 0 {
            return Err(gone_user(&user.id));
        }
        Ok(())
    }

    async fn delete_tenant(&self, tenant: &Tenant) -> DomainResult<()> {
        let id = tenant.id.to_string();
        let deleted = self
            .db
            .write(move |tx| Ok(tx.execute("DELETE FROM tenants WHERE id = ?1", [id])?))
            .await
            .map_err(|e| {
                if e.is_foreign_key_violation() {
                    DomainError::Conflict(format!("tenant '{}' still has users", tenant.name))
                } else {
                    e.into()
                }
            })?;
        if deleted == 0 {
            return Err(DomainError::NotFound(format!(
                "no tenant with id '{}'",
                tenant.id
            )));
        }
        Ok(())
    }

    async fn record_failed_login(&self, user: &UserId, at: DateTime<Utc>) -> DomainResult<()> {
        let (id, at) = (user.to_string(), at.to_rfc3339());
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE users SET failed_logins = failed_logins + 1, last_failed_login = ?2
                     WHERE id = ?1",
                    params![id, at],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn clear_failed_logins(&self, user: &UserId) -> DomainResult<()> {
        let id = user.to_string();
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE users SET failed_logins = 0, last_failed_login = NULL WHERE id = ?1",
                    [id],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}

fn gone_user(id: &UserId) -> DomainError {
    DomainError::NotFound(format!("no user with id '{id}'"))
}
