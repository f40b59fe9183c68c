//! Container and object records in SQLite. Names compare as bytes (SQLite's `BINARY`
//! collation over UTF-8), the order Swift lists in.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloud_images_domain::DomainResult;
use cloud_images_domain::containers::{
    AccountUsage, ContainerRecord, ObjectRecord, no_container, not_empty, quota_full,
};
use cloud_images_domain::ports::ContainerRepository;
use cloud_images_domain::task::ObjectPath;
use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::db::Sqlite;
use crate::error::EmbeddedError;

/// [`ContainerRepository`] over the embedded database.
pub struct SqliteContainerRepository {
    db: Arc<Sqlite>,
}

impl SqliteContainerRepository {
    /// Wraps the shared database.
    pub fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(raw: i64) -> Result<DateTime<Utc>, EmbeddedError> {
    DateTime::from_timestamp_micros(raw)
        .ok_or_else(|| EmbeddedError::Corrupt(format!("time {raw}")))
}

fn count(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const CONTAINER_COLUMNS: &str = "name, objects, bytes, created_at, link";
const OBJECT_COLUMNS: &str = "name, size, etag, content_type, last_modified, manifest";

fn container_from(row: &Row<'_>) -> Result<ContainerRecord, EmbeddedError> {
    Ok(ContainerRecord {
        name: row.get(0)?,
        objects: count(row.get(1)?),
        bytes: count(row.get(2)?),
        created_at: time(row.get(3)?)?,
        link: row
            .get::<_, Option<String>>(4)?
            .map(|raw| {
                serde_json::from_str(&raw)
                    .map_err(|e| EmbeddedError::Corrupt(format!("container link: {e}")))
            })
            .transpose()?,
    })
}

fn object_from(row: &Row<'_>) -> Result<ObjectRecord, EmbeddedError> {
    Ok(ObjectRecord {
        name: row.get(0)?,
        size: count(row.get(1)?),
        etag: row.get(2)?,
        content_type: row.get(3)?,
        last_modified: time(row.get(4)?)?,
        manifest: row.get(5)?,
    })
}

fn usage_in(tx: &rusqlite::Connection, tenant: &str) -> Result<AccountUsage, EmbeddedError> {
    Ok(tx.query_row(
        "SELECT count(*), COALESCE(SUM(objects), 0), COALESCE(SUM(bytes), 0)
         FROM containers WHERE tenant = ?1",
        [tenant],
        |r| {
            Ok(AccountUsage {
                containers: count(r.get(0)?),
                objects: count(r.get(1)?),
                bytes: count(r.get(2)?),
            })
        },
    )?)
}

fn object_in(
    tx: &rusqlite::Connection,
    tenant: &str,
    container: &str,
    name: &str,
) -> Result<Option<ObjectRecord>, EmbeddedError> {
    tx.query_row(
        &format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE tenant = ?1 AND container = ?2 AND name = ?3"
        ),
        params![tenant, container, name],
        |row| Ok(object_from(row)),
    )
    .optional()?
    .transpose()
}

fn move_counters(
    tx: &Transaction<'_>,
    tenant: &str,
    container: &str,
    objects: i64,
    bytes: i64,
) -> Result<(), EmbeddedError> {
    tx.execute(
        "UPDATE containers SET objects = objects + ?3, bytes = bytes + ?4
         WHERE tenant = ?1 AND name = ?2",
        params![tenant, container, objects, bytes],
    )?;
    Ok(())
}

/// Outcomes of a record write that are answers, not failures.
enum Put {
    Done(Option<ObjectRecord>),
    NoContainer,
    Full(u64),
}

#[async_trait]
impl ContainerRepository for SqliteContainerRepository {
    async fn create_container(
        &self,
        tenant: &str,
        container: &ContainerRecord,
    ) -> DomainResult<bool> {
        let (tenant, record) = (tenant.to_owned(), container.clone());
        Ok(self
            .db
            .write(move |tx| {
                let link = record
                    .link
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| EmbeddedError::Corrupt(format!("container link: {e}")))?;
                let inserted = tx.execute(
                    "INSERT INTO containers (tenant, name, created_at, link) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, name) DO NOTHING",
                    params![tenant, record.name, micros(record.created_at), link],
                )?;
                Ok(inserted == 1)
            })
            .await?)
    }

    async fn container(&self, tenant: &str, name: &str) -> DomainResult<Option<ContainerRecord>> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        Ok(self
            .db
            .read(move |conn| {
                conn.query_row(
                    &format!(
                        "SELECT {CONTAINER_COLUMNS} FROM containers WHERE tenant = ?1 AND name = ?2"
                    ),
                    params![tenant, name],
                    |row| Ok(container_from(row)),
                )
                .optional()?
                .transpose()
            })
            .await?)
    }

    async fn containers(
        &self,
        tenant: &str,
        after: &str,
        before: Option<&str>,
        limit: usize,
    ) -> DomainResult<Vec<ContainerRecord>> {
        let (tenant, after) = (tenant.to_owned(), after.to_owned());
        let before = before.map(str::to_owned);
        let limit = signed(limit as u64);
        Ok(self
            .db
            .read(move |conn| {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {CONTAINER_COLUMNS} FROM containers
                     WHERE tenant = ?1 AND name > ?2 AND (?3 IS NULL OR name < ?3)
                     ORDER BY name LIMIT ?4"
                ))?;
                let rows = statement.query_map(params![tenant, after, before, limit], |row| {
                    Ok(container_from(row))
                })?;
                rows.map(|r| r?).collect()
            })
            .await?)
    }

    async fn delete_container(&self, tenant: &str, name: &str) -> DomainResult<()> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        let found = self
            .db
            .write({
                let name = name.clone();
                move |tx| {
                    let objects: Option<i64> = tx
                        .query_row(
                            "SELECT objects FROM containers WHERE tenant = ?1 AND name = ?2",
                            params![tenant, name],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if objects == Some(0) {
                        tx.execute(
                            "DELETE FROM containers WHERE tenant = ?1 AND name = ?2",
                            params![tenant, name],
                        )?;
                    }
                    Ok(objects)
                }
            })
            .await?;
        match found {
            None => Err(no_container(&name)),
            Some(0) => Ok(()),
            Some(_) => Err(not_empty(&name)),
        }
    }

    async fn usage(&self, tenant: &str) -> DomainResult<AccountUsage> {
        let tenant = tenant.to_owned();
        Ok(self.db.read(move |conn| usage_in(conn, &tenant)).await?)
    }

    async fn object(&self, tenant: &str, path: &ObjectPath) -> DomainResult<Option<ObjectRecord>> {
        let (tenant, path) = (tenant.to_owned(), path.clone());
        Ok(self
            .db
            .read(move |conn| object_in(conn, &tenant, &path.container, &path.object))
            .await?)
    }

    async fn objects(
        &self,
        tenant: &str,
        container: &str,
        after: &str,
        limit: usize,
    ) -> DomainResult<Vec<ObjectRecord>> {
        let (tenant, container, after) =
            (tenant.to_owned(), container.to_owned(), after.to_owned());
        let limit = signed(limit as u64);
        Ok(self
            .db
            .read(move |conn| {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM objects
                     WHERE tenant = ?1 AND container = ?2 AND name > ?3
                     ORDER BY name LIMIT ?4"
                ))?;
                let rows = statement
                    .query_map(params![tenant, container, after, limit], |row| {
                        Ok(object_from(row))
                    })?;
                rows.map(|r| r?).collect()
            })
            .await?)
    }

    async fn put_object(
        &self,
        tenant: &str,
        container: &str,
        record: &ObjectRecord,
        max_bytes: Option<u64>,
    ) -> DomainResult<Option<ObjectRecord>> {
        let (tenant, container, record) = (tenant.to_owned(), container.to_owned(), record.clone());
        let name = container.clone();
        let outcome = self
            .db
            .write(move |tx| {
                let exists: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM containers WHERE tenant = ?1 AND name = ?2)",
                    params![tenant, container],
                    |r| r.get(0),
                )?;
                if !exists {
                    return Ok(Put::NoContainer);
                }
                let replaced = object_in(tx, &tenant, &container, &record.name)?;
                let old_size = replaced.as_ref().map_or(0, |r| r.size);
                if let Some(max) = max_bytes
                    && record.size > old_size
                {
                    let usage = usage_in(tx, &tenant)?;
                    if usage.bytes - old_size.min(usage.bytes) + record.size > max {
                        return Ok(Put::Full(max));
                    }
                }
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO objects (tenant, container, {OBJECT_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    params![
                        tenant,
                        container,
                        record.name,
                        signed(record.size),
                        record.etag,
                        record.content_type,
                        micros(record.last_modified),
                        record.manifest
                    ],
                )?;
                let objects = i64::from(replaced.is_none());
                move_counters(
                    tx,
                    &tenant,
                    &container,
                    objects,
                    signed(record.size) - signed(old_size),
                )?;
                Ok(Put::Done(replaced))
            })
            .await?;
        match outcome {
            Put::Done(replaced) => Ok(replaced),
            Put::NoContainer => Err(no_container(&name)),
            Put::Full(max) => Err(quota_full(max)),
        }
    }

    async fn delete_object(
        &self,
        tenant: &str,
        path: &ObjectPath,
    ) -> DomainResult<Option<ObjectRecord>> {
        let (tenant, path) = (tenant.to_owned(), path.clone());
        Ok(self
            .db
            .write(move |tx| {
                let Some(removed) = object_in(tx, &tenant, &path.container, &path.object)? else {
                    return Ok(None);
                };
                tx.execute(
                    "DELETE FROM objects WHERE tenant = ?1 AND container = ?2 AND name = ?3",
                    params![tenant, path.container, path.object],
                )?;
                move_counters(tx, &tenant, &path.container, -1, -signed(removed.size))?;
                Ok(Some(removed))
            })
            .await?)
    }
}
