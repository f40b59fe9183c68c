//! Image records in SQLite, with compare-and-set on `version` and keyset pagination.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloud_images_domain::events::Event;
use cloud_images_domain::identity::TenantId;
use cloud_images_domain::image::{Image, ImageId};
use cloud_images_domain::listing::ListQuery;
use cloud_images_domain::ports::{ImageRepository, Viewer};
use cloud_images_domain::quota::{TenantQuota, TenantUsage, UsageChange};
use cloud_images_domain::{DomainError, DomainResult};
use rusqlite::types::Value as Sql;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use crate::db::Sqlite;
use crate::error::EmbeddedError;
use crate::events;
use listing::read_page;

mod listing;
#[cfg(test)]
mod listing_tests;

/// [`ImageRepository`] over the embedded database.
pub struct SqliteImageRepository {
    db: Arc<Sqlite>,
}

impl SqliteImageRepository {
    /// Wraps the shared database.
    pub fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

const COLUMNS: &str = "id, owner, name, status, visibility, protected, os_hidden, checksum, os_hash_algo, \
     os_hash_value, size, virtual_size, container_format, disk_format, min_ram, min_disk, tags, properties, \
     created_at, updated_at, version";

/// Times are stored as whole seconds since the epoch: cheap to compare, sort and read.
fn seconds(t: &DateTime<Utc>) -> Sql {
    Sql::Integer(t.timestamp())
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> EmbeddedError {
    EmbeddedError::Corrupt(format!("{what}: {detail}"))
}

fn parse_time(raw: i64) -> Result<DateTime<Utc>, EmbeddedError> {
    DateTime::from_timestamp(raw, 0).ok_or_else(|| corrupt("time", raw))
}

fn parse_text<T: std::str::FromStr>(
    raw: Option<String>,
    what: &str,
) -> Result<Option<T>, EmbeddedError> {
    raw.map(|s| s.parse().map_err(|_| corrupt(what, &s)))
        .transpose()
}

fn to_u64(raw: Option<i64>) -> Option<u64> {
    raw.and_then(|n| u64::try_from(n).ok())
}

fn image_from(row: &Row<'_>) -> Result<Image, EmbeddedError> {
    let id: String = row.get(0)?;
    let tags: String = row.get(16)?;
    let properties: String = row.get(17)?;
    Ok(Image {
        id: ImageId::parse(&id).map_err(|e| corrupt("id", e))?,
        owner: row.get::<_, Option<String>>(1)?.map(TenantId::from_trusted),
        name: row.get(2)?,
        status: parse_text(Some(row.get(3)?), "status")?
            .ok_or_else(|| corrupt("status", "missing"))?,
        visibility: parse_text(Some(row.get(4)?), "visibility")?
            .ok_or_else(|| corrupt("visibility", "missing"))?,
        protected: row.get(5)?,
        os_hidden: row.get(6)?,
        checksum: row.get(7)?,
        os_hash_algo: row.get(8)?,
        os_hash_value: row.get(9)?,
        size: to_u64(row.get(10)?),
        virtual_size: to_u64(row.get(11)?),
        container_format: parse_text(row.get(12)?, "container_format")?,
        disk_format: parse_text(row.get(13)?, "disk_format")?,
        min_ram: to_u64(row.get(14)?).unwrap_or(0),
        min_disk: to_u64(row.get(15)?).unwrap_or(0),
        tags: serde_json::from_str(&tags).map_err(|e| corrupt("tags", e))?,
        properties: serde_json::from_str::<BTreeMap<String, String>>(&properties)
            .map_err(|e| corrupt("properties", e))?,
        created_at: parse_time(row.get(18)?)?,
        updated_at: parse_time(row.get(19)?)?,
        version: to_u64(row.get(20)?).unwrap_or(0),
    })
}

fn int(n: Option<u64>) -> Sql {
    n.map_or(Sql::Null, |n| {
        Sql::Integer(i64::try_from(n).unwrap_or(i64::MAX))
    })
}

fn text(s: Option<&str>) -> Sql {
    s.map_or(Sql::Null, |s| Sql::Text(s.to_owned()))
}

/// The values of every column, in [`COLUMNS`] order.
fn row_values(image: &Image) -> Vec<Sql> {
    vec![
        Sql::Text(image.id.to_string()),
        text(image.owner.as_deref()),
        text(image.name.as_deref()),
        Sql::Text(image.status.to_string()),
        Sql::Text(image.visibility.to_string()),
        Sql::Integer(image.protected.into()),
        Sql::Integer(image.os_hidden.into()),
        text(image.checksum.as_deref()),
        text(image.os_hash_algo.as_deref()),
        text(image.os_hash_value.as_deref()),
        int(image.size),
        int(image.virtual_size),
        text(image.container_format.map(|f| f.as_str())),
        text(image.disk_format.map(|f| f.as_str())),
        int(Some(image.min_ram)),
        int(Some(image.min_disk)),
        Sql::Text(serde_json::to_string(&image.tags).unwrap_or_else(|_| "[]".into())),
        Sql::Text(serde_json::to_string(&image.properties).unwrap_or_else(|_| "{}".into())),
        seconds(&image.created_at),
        seconds(&image.updated_at),
        int(Some(image.version)),
    ]
}

/// What `owner` keeps, from the counters the triggers maintain.
fn usage_in(c: &rusqlite::Connection, owner: &str) -> Result<TenantUsage, EmbeddedError> {
    let counts = c
        .prepare_cached("SELECT images, bytes FROM tenant_usage WHERE tenant = ?1")?
        .query_row([owner], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?;
    let (images, bytes) = counts.unwrap_or((0, 0));
    Ok(TenantUsage {
        images: u64::try_from(images).unwrap_or(0),
        bytes: u64::try_from(bytes).unwrap_or(0),
    })
}

fn stale(id: ImageId) -> DomainError {
    DomainError::Conflict(format!("Image {id} was changed concurrently"))
}

#[async_trait]
impl ImageRepository for SqliteImageRepository {
    async fn insert(
        &self,
        image: &Image,
        quota: &TenantQuota,
        events: &[Event],
    ) -> DomainResult<()> {
        let values = row_values(image);
        let events = events.to_vec();
        let (id, owner, quota) = (image.id, image.owner.clone(), *quota);
        let change = UsageChange::between(None, Some(image));
        self.db
            .write(move |tx| {
                // A refusal is the write's value, not a database error: nothing was written.
                if let Some(owner) = &owner
                    && let Err(refused) = quota.admit(usage_in(tx, owner)?, change)
                {
                    return Ok(Err(refused));
                }
                let marks = vec!["?"; values.len()].join(", ");
                tx.execute(
                    &format!("INSERT INTO images ({COLUMNS}) VALUES ({marks})"),
                    params_from_iter(values),
                )?;
                events::append(tx, &events)?;
                Ok(Ok(()))
            })
            .await
            .map_err(|e| {
                if e.is_unique_violation() {
                    DomainError::Conflict(format!("Image {id} exists"))
                } else {
                    e.into()
                }
            })?
    }

    async fn get(&self, id: ImageId) -> DomainResult<Option<Image>> {
        let found = self
            .db
            .read(move |c| {
                let mut stmt =
                    c.prepare_cached(&format!("SELECT {COLUMNS} FROM images WHERE id = ?1"))?;
                stmt.query_row([id.to_string()], |r| Ok(image_from(r)))
                    .optional()?
                    .transpose()
            })
            .await?;
        Ok(found)
    }

    async fn update(
        &self,
        next: &Image,
        current: &Image,
        quota: &TenantQuota,
        events: &[Event],
    ) -> DomainResult<()> {
        let (id, owner, quota) = (next.id, next.owner.clone(), *quota);
        let events = events.to_vec();
        let change = UsageChange::between(Some(current), Some(next));
        // Only the columns that change: SQLite rewrites the entries of every index on a
        // column an UPDATE sets, and a list index exists for each sort key.
        let (mut columns, mut values): (Vec<&str>, Vec<Sql>) = COLUMNS
            .split(", ")
            .zip(row_values(next).into_iter().zip(row_values(current)))
            .filter(|(_, (new, old))| new != old)
            .map(|(column, (new, _))| (column, new))
            .unzip();
        if columns.is_empty() {
            // Nothing differs: still a compare-and-set, so a stale writer hears of it.
            columns.push("version");
            values.push(int(Some(next.version)));
        }
        values.push(Sql::Text(id.to_string()));
        values.push(int(Some(current.version)));
        let changed = self
            .db
            .write(move |tx| {
                if let Some(owner) = owner.as_deref().filter(|_| !change.is_none())
                    && let Err(refused) = quota.admit(usage_in(tx, owner)?, change)
                {
                    return Ok(Err(refused));
                }
                let assignments: Vec<String> = columns.iter().map(|c| format!("{c} = ?")).collect();
                let sql = format!(
                    "UPDATE images SET {} WHERE id = ? AND version = ?",
                    assignments.join(", ")
                );
                let changed = tx.execute(&sql, params_from_iter(values))?;
                // A stale writer changed nothing, and so has nothing to report.
                if changed == 1 {
                    events::append(tx, &events)?;
                }
                Ok(Ok(changed))
            })
            .await??;
        if changed == 1 { Ok(()) } else { Err(stale(id)) }
    }

    async fn delete(&self, current: &Image, events: &[Event]) -> DomainResult<()> {
        let (id, version) = (current.id, current.version);
        let events = events.to_vec();
        let changed = self
            .db
            .write(move |tx| {
                let changed = tx.execute(
                    "DELETE FROM images WHERE id = ?1 AND version = ?2",
                    params![id.to_string(), int(Some(version))],
                )?;
                if changed == 1 {
                    events::append(tx, &events)?;
                }
                Ok(changed)
            })
            .await?;
        if changed == 1 { Ok(()) } else { Err(stale(id)) }
    }

    async fn list(
        &self,
        viewer: &Viewer,
        query: &ListQuery,
        after: Option<&Image>,
    ) -> DomainResult<Vec<Image>> {
        let (viewer, query, after) = (viewer.clone(), query.clone(), after.cloned());
        let images = self
            .db
            .read(move |c| {
                let page = read_page(c, &viewer, &query, after.as_ref())?;
                tracing::trace!(vm_steps = page.vm_steps, "read a list page");
                Ok(page.images)
            })
            .await?;
        Ok(images)
    }

    async fn usage(&self, owner: &str) -> DomainResult<TenantUsage> {
        let owner = owner.to_owned();
        Ok(self.db.read(move |c| usage_in(c, &owner)).await?)
    }

    async fn receiving(&self) -> DomainResult<Vec<Image>> {
        let images = self
            .db
            .read(|c| {
                let sql =
                    format!("SELECT {COLUMNS} FROM images WHERE status IN ('saving', 'uploading')");
                let mut statement = c.prepare(&sql)?;
                let rows = statement.query_map([], |row| Ok(image_from(row)))?;
                rows.map(|row| row?).collect()
            })
            .await?;
        Ok(images)
    }
}
