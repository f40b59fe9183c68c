//! The event outbox in SQLite, and the JSON-lines file events are delivered to.
//!
//! Repositories append a change's events inside the change's own transaction
//! ([`append`]), so an event exists if and only if its change committed. Delivery reads
//! them back in order; each sink keeps its own place (`event_sinks`), and an event leaves
//! the outbox once every sink took it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloud_images_domain::DomainResult;
use cloud_images_domain::events::Event;
use cloud_images_domain::ports::{EventOutbox, EventSink, OutboxEntry};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::db::Sqlite;
use crate::error::EmbeddedError;

/// Stores `events` in the transaction of the change they describe.
pub(crate) fn append(tx: &Transaction<'_>, events: &[Event]) -> Result<(), EmbeddedError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert =
        tx.prepare_cached("INSERT INTO event_outbox (stored_at, body) VALUES (?1, ?2)")?;
    let now = chrono::Utc::now().timestamp_millis();
    for event in events {
        let body = serde_json::to_string(event)
            .map_err(|e| EmbeddedError::Corrupt(format!("event: {e}")))?;
        insert.execute(params![now, body])?;
    }
    Ok(())
}

/// [`EventOutbox`] over the embedded database, for the sinks `sinks` names: an event
/// leaves only once each of them took it.
pub struct SqliteEventOutbox {
    db: Arc<Sqlite>,
    sinks: Arc<[String]>,
}

impl SqliteEventOutbox {
    /// The outbox of `db`, delivered to the sinks named `sinks` (the configured ones).
    pub fn new(db: Arc<Sqlite>, sinks: Vec<String>) -> Self {
        Self {
            db,
            sinks: sinks.into(),
        }
    }
}

fn place_of(c: &rusqlite::Connection, sink: &str) -> Result<i64, EmbeddedError> {
    Ok(
        c.prepare_cached("SELECT delivered FROM event_sinks WHERE sink = ?1")?
            .query_row([sink], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

fn corrupt(e: impl std::fmt::Display) -> EmbeddedError {
    EmbeddedError::Corrupt(format!("event: {e}"))
}

#[async_trait]
impl EventOutbox for SqliteEventOutbox {
    async fn pending(&self, sink: &str, max: usize) -> DomainResult<Vec<OutboxEntry>> {
        let sink = sink.to_owned();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .db
            .read(move |c| {
                let after = place_of(c, &sink)?;
                let mut stmt = c.prepare_cached(
                    "SELECT position, body FROM event_outbox WHERE position > ?1 \
                     ORDER BY position LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![after, max], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        let entries = rows
            .into_iter()
            .map(|(position, body)| {
                Ok(OutboxEntry {
                    position: u64::try_from(position).map_err(corrupt)?,
                    event: serde_json::from_str(&body).map_err(corrupt)?,
                })
            })
            .collect::<Result<Vec<_>, EmbeddedError>>()?;
        Ok(entries)
    }

    async fn delivered(&self, sink: &str, position: u64) -> DomainResult<()> {
        let sink = sink.to_owned();
        let sinks = self.sinks.clone();
        let position = i64::try_from(position).map_err(corrupt)?;
        self.db
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO event_sinks (sink, delivered) VALUES (?1, ?2) \
                     ON CONFLICT (sink) DO UPDATE SET delivered = MAX(delivered, excluded.delivered)",
                    params![sink, position],
                )?;
                // A sink that never delivered holds everything back (its place is 0).
                let mut everyone_took = i64::MAX;
                for name in sinks.iter() {
                    everyone_took = everyone_took.min(place_of(tx, name)?);
                }
                tx.execute(
                    "DELETE FROM event_outbox WHERE position <= ?1",
                    [everyone_took],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn backlog(&self, sink: &str) -> DomainResult<(u64, Option<Duration>)> {
        let sink = sink.to_owned();
        let (count, oldest) = self
            .db
            .read(move |c| {
                let after = place_of(c, &sink)?;
                Ok(c.prepare_cached(
                    "SELECT count(*), MIN(stored_at) FROM event_outbox WHERE position > ?1",
                )?
                .query_row([after], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
                })?)
            })
            .await?;
        let now = chrono::Utc::now().timestamp_millis();
        let age = oldest.map(|at| Duration::from_millis(u64::try_from(now - at).unwrap_or(0)));
        Ok((u64::try_from(count).unwrap_or(0), age))
    }
}

/// Whether `file` is empty or its last byte ends a line.
fn ends_with_newline(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Delivers events as JSON lines appended to a file: an audit trail on the embedded
/// default. The file is opened per delivery, so an operator may rotate it by renaming it.
pub struct JsonLinesSink {
    path: PathBuf,
}

impl JsonLinesSink {
    /// The name the outbox keeps this sink's place by.
    pub const NAME: &'static str = "file";

    /// Appends to `path` (created when absent).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait]
impl EventSink for JsonLinesSink {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn deliver(&self, events: &[Event]) -> DomainResult<()> {
        let mut lines = Vec::new();
        for event in events {
            serde_json::to_writer(&mut lines, event).map_err(corrupt)?;
            lines.push(b'\n');
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let context = || format!("appending events to {}", path.display());
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(|e| EmbeddedError::io(context(), e))?;
            // A line an earlier write left torn (a full disk) must not swallow the next one.
            if !ends_with_newline(&mut file).map_err(|e| EmbeddedError::io(context(), e))? {
                lines.insert(0, b'\n');
            }
            // One write of whole lines, then durable before the outbox forgets them.
            file.write_all(&lines)
                .and_then(|()| file.sync_data())
                .map_err(|e| EmbeddedError::io(context(), e))
        })
        .await
        .map_err(EmbeddedError::from)??;
        Ok(())
    }
}

/// The sink of a host whose operator switched every sink off: events are dropped as they
/// come, so the outbox does not grow.
pub struct Discarded;

#[async_trait]
impl EventSink for Discarded {
    fn name(&self) -> &str {
        "discarded"
    }

    async fn deliver(&self, _events: &[Event]) -> DomainResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use cloud_images_domain::events::{Actor, image_events};
    use cloud_images_domain::identity::TenantId;
    use cloud_images_domain::image::{Image, ImageId};

    fn some_events(n: usize) -> Vec<Event> {
        let image = Image::new_queued(
            ImageId::random(),
            Some(TenantId::from_trusted("t1".to_owned())),
            Utc::now(),
        );
        (0..n)
            .flat_map(|_| image_events(None, Some(&image), &Actor::service(), Utc::now()))
            .collect()
    }

    async fn outbox_with(sinks: &[&str]) -> (tempfile::TempDir, Arc<Sqlite>, SqliteEventOutbox) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Arc::new(Sqlite::open(&dir.path().join("m.sqlite3")).expect("open"));
        let outbox =
            SqliteEventOutbox::new(db.clone(), sinks.iter().map(|s| (*s).to_owned()).collect());
        (dir, db, outbox)
    }

    #[tokio::test]
    async fn each_sink_keeps_its_place_and_events_leave_once_every_sink_took_them() {
        let (_dir, db, outbox) = outbox_with(&["file", "webhook"]).await;
        let events = some_events(3);
        let stored = events.clone();
        db.write(move |tx| append(tx, &stored))
            .await
            .expect("append");

        let pending = outbox.pending("file", 2).await.expect("pending");
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].event, events[0]);
        outbox
            .delivered("file", pending[1].position)
            .await
            .expect("delivered");
        let rest = outbox.pending("file", 10).await.expect("pending");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].event, events[2]);
        // The webhook took nothing yet: it still sees all three.
        assert_eq!(outbox.pending("webhook", 10).await.expect("p").len(), 3);
        assert_eq!(outbox.backlog("webhook").await.expect("b").0, 3);

        let last = outbox.pending("webhook", 10).await.expect("p")[2].position;
        outbox.delivered("webhook", last).await.expect("delivered");
        let left: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM event_outbox", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(left, 1, "only the event the file has not taken stays");
    }

    #[tokio::test]
    async fn a_change_rolled_back_leaves_no_event() {
        let (_dir, db, outbox) = outbox_with(&["file"]).await;
        let events = some_events(1);
        let failed = db
            .write(move |tx| {
                append(tx, &events)?;
                Err::<(), _>(EmbeddedError::Corrupt("the change failed".into()))
            })
            .await;
        assert!(failed.is_err());
        assert!(
            outbox
                .pending("file", 10)
                .await
                .expect("pending")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn the_file_sink_appends_one_json_line_per_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let sink = JsonLinesSink::new(path.clone());
        let events = some_events(2);
        sink.deliver(&events[..1]).await.expect("first");
        sink.deliver(&events[1..]).await.expect("second");
        let text = std::fs::read_to_string(&path).expect("read");
        let read: Vec<Event> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(read, events);
    }

    #[tokio::test]
    async fn a_torn_last_line_does_not_swallow_the_next_delivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, b"{\"message_id\": \"torn").expect("torn line");
        let events = some_events(1);
        JsonLinesSink::new(path.clone())
            .deliver(&events)
            .await
            .expect("deliver");
        let text = std::fs::read_to_string(&path).expect("read");
        let last = text.lines().last().expect("a line");
        assert_eq!(
            serde_json::from_str::<Event>(last).expect("whole"),
            events[0]
        );
    }
}
