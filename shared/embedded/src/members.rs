//! Image memberships in SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cloud_images_domain::events::Event;
use cloud_images_domain::identity::TenantId;
use cloud_images_domain::image::ImageId;
use cloud_images_domain::member::Member;
use cloud_images_domain::ports::MemberRepository;
use cloud_images_domain::{DomainError, DomainResult};
use rusqlite::{OptionalExtension, Row, params};

use crate::db::Sqlite;
use crate::error::EmbeddedError;
use crate::events;

/// [`MemberRepository`] over the embedded database.
pub struct SqliteMemberRepository {
    db: Arc<Sqlite>,
}

impl SqliteMemberRepository {
    /// Wraps the shared database.
    pub fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

const COLUMNS: &str = "image_id, member_id, status, created_at, updated_at";

fn time(raw: i64) -> Result<DateTime<Utc>, EmbeddedError> {
    DateTime::from_timestamp(raw, 0).ok_or_else(|| EmbeddedError::Corrupt(format!("time {raw}")))
}

fn member_from(row: &Row<'_>) -> Result<Member, EmbeddedError> {
    let image_id: String = row.get(0)?;
    let status: String = row.get(2)?;
    Ok(Member {
        image_id: ImageId::parse(&image_id).map_err(|e| EmbeddedError::Corrupt(e.to_string()))?,
        member_id: TenantId::from_trusted(row.get::<_, String>(1)?),
        status: status
            .parse()
            .map_err(|_| EmbeddedError::Corrupt(format!("member status {status}")))?,
        created_at: time(row.get(3)?)?,
        updated_at: time(row.get(4)?)?,
    })
}

fn no_such_member(member_id: &str) -> DomainError {
    DomainError::NotFound(format!("{member_id} is not a member of this image"))
}

/// Outcomes of the atomic insert that are answers, not failures.
enum Insert {
    Done,
    Duplicate,
    Full,
}

#[async_trait]
impl MemberRepository for SqliteMemberRepository {
    async fn insert(
        &self,
        member: &Member,
        max_members: usize,
        events: &[Event],
    ) -> DomainResult<()> {
        let m = member.clone();
        let events = events.to_vec();
        let max = i64::try_from(max_members).unwrap_or(i64::MAX);
        let outcome = self
            .db
            .write(move |tx| {
                let id = m.image_id.to_string();
                let exists: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM members WHERE image_id = ?1 AND member_id = ?2)",
                    params![id, m.member_id.as_str()],
                    |r| r.get(0),
                )?;
                if exists {
                    return Ok(Insert::Duplicate);
                }
                let count: i64 = tx.query_row(
                    "SELECT count(*) FROM members WHERE image_id = ?1",
                    [&id],
                    |r| r.get(0),
                )?;
                if count >= max {
                    return Ok(Insert::Full);
                }
                tx.execute(
                    &format!("INSERT INTO members ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                    params![
                        id,
                        m.member_id.as_str(),
                        m.status.as_str(),
                        m.created_at.timestamp(),
                        m.updated_at.timestamp()
                    ],
                )?;
                events::append(tx, &events)?;
                Ok(Insert::Done)
            })
            .await?;
        match outcome {
            Insert::Done => Ok(()),
            Insert::Duplicate => Err(DomainError::Conflict(format!(
                "{} is already a member",
                member.member_id
            ))),
            Insert::Full => Err(DomainError::QuotaExceeded(format!(
                "at most {max_members} members"
            ))),
        }
    }

    async fn get(&self, image_id: ImageId, member_id: &str) -> DomainResult<Option<Member>> {
        let member_id = member_id.to_owned();
        Ok(self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM members WHERE image_id = ?1 AND member_id = ?2"
                ))?;
                stmt.query_row(params![image_id.to_string(), member_id], |r| {
                    Ok(member_from(r))
                })
                .optional()?
                .transpose()
            })
            .await?)
    }

    async fn list(&self, image_id: ImageId) -> DomainResult<Vec<Member>> {
        Ok(self
            .db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM members WHERE image_id = ?1 ORDER BY created_at, member_id"
                ))?;
                let rows = stmt.query_map([image_id.to_string()], |r| Ok(member_from(r)))?;
                rows.map(|r| r?).collect()
            })
            .await?)
    }

    async fn set_status(&self, member: &Member, events: &[Event]) -> DomainResult<()> {
        let m = member.clone();
        let events = events.to_vec();
        let changed = self
            .db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE members SET status = ?3, updated_at = ?4 WHERE image_id = ?1 AND member_id = ?2",
                    params![m.image_id.to_string(), m.member_id.as_str(), m.status.as_str(), m.updated_at.timestamp()],
                )?;
                if changed == 1 {
                    events::append(tx, &events)?;
                }
                Ok(changed)
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(no_such_member(&member.member_id))
        }
    }

    async fn delete(
        &self,
        image_id: ImageId,
        member_id: &str,
        events: &[Event],
    ) -> DomainResult<()> {
        let id = member_id.to_owned();
        let events = events.to_vec();
        let changed = self
            .db
            .write(move |tx| {
                let changed = tx.execute(
                    "DELETE FROM members WHERE image_id = ?1 AND member_id = ?2",
                    params![image_id.to_string(), id],
                )?;
                if changed == 1 {
                    events::append(tx, &events)?;
                }
                Ok(changed)
            })
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(no_such_member(member_id))
        }
    }

    async fn delete_all(&self, image_id: ImageId) -> DomainResult<()> {
        self.db
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM members WHERE image_id = ?1",
                    [image_id.to_string()],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}
