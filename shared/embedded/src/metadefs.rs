//! Metadata definitions in SQLite: one row per namespace holding its header and contents
//! as JSON, written under a compare-and-set on its revision.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloud_images_domain::metadefs::{Contents, Namespace, NamespaceRecord, ResourceType};
use cloud_images_domain::ports::MetadefRepository;
use cloud_images_domain::{DomainError, DomainResult};
use rusqlite::{OptionalExtension, params};

use crate::db::Sqlite;
use crate::error::EmbeddedError;

const STOCK_LOADED: &str = "stock_catalogue_loaded";

/// [`MetadefRepository`] over the embedded database.
pub struct SqliteMetadefRepository {
    db: Arc<Sqlite>,
}

impl SqliteMetadefRepository {
    /// Wraps the shared database.
    pub fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, EmbeddedError> {
    serde_json::to_string(value).map_err(|e| EmbeddedError::Corrupt(format!("metadef: {e}")))
}

fn parsed<T: for<'de> serde::Deserialize<'de>>(raw: &str) -> Result<T, EmbeddedError> {
    serde_json::from_str(raw).map_err(|e| EmbeddedError::Corrupt(format!("metadef: {e}")))
}

fn stale(name: &str) -> DomainError {
    DomainError::Conflict(format!(
        "the namespace {name} changed while this change was made"
    ))
}

fn revision(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

fn time(raw: i64) -> Result<DateTime<Utc>, EmbeddedError> {
    DateTime::from_timestamp_micros(raw)
        .ok_or_else(|| EmbeddedError::Corrupt(format!("time {raw}")))
}

/// What a compare-and-set write found: done, or a stale revision / taken name.
enum Written {
    Done,
    Refused,
}

#[async_trait]
impl MetadefRepository for SqliteMetadefRepository {
    async fn namespaces(&self) -> DomainResult<Vec<Namespace>> {
        Ok(self
            .db
            .read(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT header FROM metadef_namespaces ORDER BY name")?;
                let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
                rows.map(|raw| parsed(&raw?)).collect()
            })
            .await?)
    }

    async fn namespace(&self, name: &str) -> DomainResult<Option<NamespaceRecord>> {
        let name = name.to_owned();
        Ok(self
            .db
            .read(move |conn| {
                let row = conn
                    .query_row(
                        "SELECT header, contents, revision FROM metadef_namespaces WHERE name = ?1",
                        [&name],
                        |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, i64>(2)?,
                            ))
                        },
                    )
                    .optional()?;
                row.map(|(header, contents, raw_revision)| {
                    Ok(NamespaceRecord {
                        namespace: parsed(&header)?,
                        contents: parsed(&contents)?,
                        revision: revision(raw_revision),
                    })
                })
                .transpose()
            })
            .await?)
    }

    async fn insert_namespace(
        &self,
        namespace: &Namespace,
        contents: &Contents,
    ) -> DomainResult<()> {
        let (name, header, body) = (
            namespace.namespace.clone(),
            json(namespace)?,
            json(contents)?,
        );
        let inserted = self
            .db
            .write(move |tx| {
                Ok(tx.execute(
                    "INSERT INTO metadef_namespaces (name, header, contents, revision)
                     VALUES (?1, ?2, ?3, 1) ON CONFLICT (name) DO NOTHING",
                    params![name, header, body],
                )?)
            })
            .await?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(DomainError::Conflict(format!(
                "A metadata definition namespace with name={} already exists.",
                namespace.namespace
            )))
        }
    }

    async fn replace_namespace(
        &self,
        current: &NamespaceRecord,
        namespace: &Namespace,
        contents: &Contents,
    ) -> DomainResult<()> {
        let old = current.namespace.namespace.clone();
        let new = namespace.namespace.clone();
        let expected = i64::try_from(current.revision).unwrap_or(i64::MAX);
        let (header, body) = (json(namespace)?, json(contents)?);
        let written = self
            .db
            .write(move |tx| {
                let taken = old != new
                    && tx
                        .query_row(
                            "SELECT 1 FROM metadef_namespaces WHERE name = ?1",
                            [&new],
                            |_| Ok(()),
                        )
                        .optional()?
                        .is_some();
                if taken {
                    return Ok(Written::Refused);
                }
                let updated = tx.execute(
                    "UPDATE metadef_namespaces
                     SET name = ?3, header = ?4, contents = ?5, revision = revision + 1
                     WHERE name = ?1 AND revision = ?2",
                    params![old, expected, new, header, body],
                )?;
                Ok(if updated == 1 {
                    Written::Done
                } else {
                    Written::Refused
                })
            })
            .await?;
        match written {
            Written::Done => Ok(()),
            Written::Refused => Err(stale(&current.namespace.namespace)),
        }
    }

    async fn delete_namespace(&self, current: &NamespaceRecord) -> DomainResult<()> {
        let name = current.namespace.namespace.clone();
        let expected = i64::try_from(current.revision).unwrap_or(i64::MAX);
        let removed = self
            .db
            .write(move |tx| {
                Ok(tx.execute(
                    "DELETE FROM metadef_namespaces WHERE name = ?1 AND revision = ?2",
                    params![name, expected],
                )?)
            })
            .await?;
        if removed == 1 {
            Ok(())
        } else {
            Err(stale(&current.namespace.namespace))
        }
    }

    async fn resource_types(&self) -> DomainResult<Vec<ResourceType>> {
        Ok(self
            .db
            .read(|conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT name, created_at, updated_at FROM metadef_resource_types ORDER BY name",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?;
                rows.map(|row| {
                    let (name, created, updated) = row?;
                    Ok(ResourceType {
                        name,
                        created_at: time(created)?,
                        updated_at: time(updated)?,
                    })
                })
                .collect()
            })
            .await?)
    }

    async fn add_resource_types(&self, types: &[ResourceType]) -> DomainResult<()> {
        let types = types.to_vec();
        Ok(self
            .db
            .write(move |tx| {
                for resource_type in &types {
                    tx.execute(
                        "INSERT INTO metadef_resource_types (name, created_at, updated_at)
                         VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                        params![
                            resource_type.name,
                            resource_type.created_at.timestamp_micros(),
                            resource_type.updated_at.timestamp_micros()
                        ],
                    )?;
                }
                Ok(())
            })
            .await?)
    }

    async fn stock_loaded(&self) -> DomainResult<bool> {
        Ok(self
            .db
            .read(|conn| {
                Ok(conn
                    .query_row(
                        "SELECT 1 FROM metadef_state WHERE key = ?1",
                        [STOCK_LOADED],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some())
            })
            .await?)
    }

    async fn mark_stock_loaded(&self) -> DomainResult<()> {
        Ok(self
            .db
            .write(|tx| {
                tx.execute(
                    "INSERT INTO metadef_state (key, value) VALUES (?1, 'yes')
                     ON CONFLICT (key) DO NOTHING",
                    [STOCK_LOADED],
                )?;
                Ok(())
            })
            .await?)
    }
}
