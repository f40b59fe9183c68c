//! The embedded durable task queue: messages are rows, so they survive a restart; a
//! delivery hides its row until the lease ends, and a message delivered `max_receives`
//! times without an ack moves to the dead letters, as SQS's redrive policy does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cloud_images_domain::DomainResult;
use cloud_images_domain::ports::{Delivery, TaskQueue};
use rusqlite::params;

use crate::db::Sqlite;

/// [`TaskQueue`] in the embedded database.
pub struct SqliteTaskQueue {
    db: Arc<Sqlite>,
    max_receives: u32,
}

impl SqliteTaskQueue {
    /// A queue whose messages go to the dead letters after `max_receives` deliveries.
    pub fn new(db: Arc<Sqlite>, max_receives: u32) -> Self {
        Self {
            db,
            max_receives: max_receives.max(1),
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[async_trait]
impl TaskQueue for SqliteTaskQueue {
    async fn send(&self, body: &str) -> DomainResult<()> {
        let body = body.to_owned();
        self.db
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO task_queue (body, visible_at) VALUES (?1, ?2)",
                    params![body, now_millis()],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn receive(&self, max: usize, lease: Duration) -> DomainResult<Vec<Delivery>> {
        let max_receives = i64::from(self.max_receives);
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let deliveries = self
            .db
            .write(move |tx| {
                let now = now_millis();
                let due: Vec<(i64, String, i64)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, body, receive_count FROM task_queue WHERE visible_at <= ?1 ORDER BY id LIMIT ?2",
                    )?;
                    let rows = stmt.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    rows.collect::<Result<_, _>>()?
                };
                let mut out = Vec::new();
                for (id, body, count) in due {
                    if count >= max_receives {
                        tx.execute(
                            "INSERT INTO task_dead_letters (id, body, receive_count, dead_at) VALUES (?1, ?2, ?3, ?4)",
                            params![id, body, count, now],
                        )?;
                        tx.execute("DELETE FROM task_queue WHERE id = ?1", [id])?;
                        continue;
                    }
                    let receipt = uuid::Uuid::new_v4().simple().to_string();
                    tx.execute(
                        "UPDATE task_queue SET visible_at = ?2, receive_count = ?3, receipt = ?4 WHERE id = ?1",
                        params![id, now.saturating_add(lease), count + 1, receipt],
                    )?;
                    out.push(Delivery { body, receipt, receive_count: u32::try_from(count + 1).unwrap_or(u32::MAX) });
                }
                Ok(out)
            })
            .await?;
        Ok(deliveries)
    }

    async fn ack(&self, receipt: &str) -> DomainResult<()> {
        let receipt = receipt.to_owned();
        self.db
            .write(move |tx| {
                tx.execute("DELETE FROM task_queue WHERE receipt = ?1", [receipt])?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn dead_letter_count(&self) -> DomainResult<usize> {
        let count = self
            .db
            .read(|c| {
                Ok(
                    c.query_row("SELECT count(*) FROM task_dead_letters", [], |r| {
                        r.get::<_, i64>(0)
                    })?,
                )
            })
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    async fn depth(&self) -> DomainResult<usize> {
        let count = self
            .db
            .read(|c| {
                Ok(c.query_row("SELECT count(*) FROM task_queue", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}
