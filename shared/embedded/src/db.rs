//! The SQLite connection set and its schema migrations.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::EmbeddedError;

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ordered schema migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    role          TEXT NOT NULL,
    password_hash TEXT,
    api_key_hash  TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE images (
    id               TEXT PRIMARY KEY,
    owner            TEXT,
    name             TEXT,
    status           TEXT NOT NULL,
    visibility       TEXT NOT NULL,
    protected        INTEGER NOT NULL,
    os_hidden        INTEGER NOT NULL,
    checksum         TEXT,
    os_hash_algo     TEXT,
    os_hash_value    TEXT,
    size             INTEGER,
    virtual_size     INTEGER,
    container_format TEXT,
    disk_format      TEXT,
    min_ram          INTEGER NOT NULL,
    min_disk         INTEGER NOT NULL,
    tags             TEXT NOT NULL,
    properties       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL
);
CREATE INDEX images_by_owner ON images (owner, created_at, id);
CREATE INDEX images_by_visibility ON images (visibility, created_at, id);
"#,
    r#"
CREATE TABLE members (
    image_id   TEXT NOT NULL,
    member_id  TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (image_id, member_id)
);
CREATE INDEX members_by_member ON members (member_id, status, image_id);
"#,
    r#"
CREATE TABLE task_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    body          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX task_queue_by_visibility ON task_queue (visible_at, id);
CREATE UNIQUE INDEX task_queue_by_receipt ON task_queue (receipt);
CREATE TABLE task_dead_letters (
    id            INTEGER PRIMARY KEY,
    body          TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at       INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE tasks (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at INTEGER NULL,
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX tasks_by_owner ON tasks (owner);
CREATE INDEX tasks_by_expiry ON tasks (expires_at) WHERE expires_at IS NOT NULL;
"#,
    r#"
ALTER TABLE tasks ADD COLUMN image_id TEXT NULL;
UPDATE tasks SET image_id = json_extract(body, '$.image_id');
CREATE INDEX tasks_by_image ON tasks (image_id) WHERE image_id IS NOT NULL;
"#,
    r#"
-- A list page reads each source of images in the order of an index matching its sort.
-- Those of the owner partition are per visibility: a scope of one reads just those.
DROP INDEX images_by_owner;
CREATE INDEX images_by_owner_created_at ON images (owner, visibility, created_at, id);
CREATE INDEX images_by_owner_name ON images (owner, visibility, COALESCE(name, ''), id);
CREATE INDEX images_by_owner_status ON images (owner, visibility, status, id);
CREATE INDEX images_by_owner_container_format ON images (owner, visibility, COALESCE(container_format, ''), id);
CREATE INDEX images_by_owner_disk_format ON images (owner, visibility, COALESCE(disk_format, ''), id);
CREATE INDEX images_by_owner_size ON images (owner, visibility, COALESCE(size, -1), id);
CREATE INDEX images_by_owner_id ON images (owner, visibility, id);
CREATE INDEX images_by_owner_updated_at ON images (owner, visibility, updated_at, id);
-- Those of the visibility partitions hold only the public and community images every
-- tenant may list (most images are neither: their writes skip these).
CREATE INDEX images_by_visibility_name ON images (visibility, COALESCE(name, ''), id)
    WHERE visibility = 'public' OR visibility = 'community';
CREATE INDEX images_by_visibility_status ON images (visibility, status, id)
    WHERE visibility = 'public' OR visibility = 'community';
CREATE INDEX images_by_visibility_container_format ON images (visibility, COALESCE(container_format, ''), id)
    WHERE visibility = 'public' OR visibility = 'community';
CREATE INDEX images_by_visibility_disk_format ON images (visibility, COALESCE(disk_format, ''), id)
    WHERE visibility = 'public' OR visibility = 'community';
CREATE INDEX images_by_visibility_size ON images (visibility, COALESCE(size, -1), id)
    WHERE visibility = 'public' OR visibility = 'community';
CREATE INDEX images_by_visibility_id ON images (visibility, id)
    WHERE visibility = 'public' OR visibility = 'community';
CREATE INDEX images_by_visibility_updated_at ON images (visibility, updated_at, id)
    WHERE visibility = 'public' OR visibility = 'community';
"#,
    r#"
-- What each tenant keeps, for its quotas: kept by triggers in the same transaction as the
-- image write that moves it, so a quota check reads one row.
CREATE TABLE tenant_usage (
    tenant TEXT PRIMARY KEY,
    images INTEGER NOT NULL,
    bytes  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO tenant_usage
    SELECT owner, count(*), COALESCE(SUM(size), 0) FROM images WHERE owner IS NOT NULL GROUP BY owner;
CREATE TRIGGER images_usage_on_insert AFTER INSERT ON images WHEN NEW.owner IS NOT NULL BEGIN
    INSERT INTO tenant_usage VALUES (NEW.owner, 1, COALESCE(NEW.size, 0))
        ON CONFLICT (tenant) DO UPDATE SET images = images + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER images_usage_on_delete AFTER DELETE ON images WHEN OLD.owner IS NOT NULL BEGIN
    UPDATE tenant_usage SET images = images - 1, bytes = bytes - COALESCE(OLD.size, 0)
        WHERE tenant = OLD.owner;
END;
CREATE TRIGGER images_usage_on_update AFTER UPDATE OF owner, size ON images
    WHEN OLD.owner IS NOT NEW.owner OR OLD.size IS NOT NEW.size BEGIN
    UPDATE tenant_usage SET images = images - 1, bytes = bytes - COALESCE(OLD.size, 0)
        WHERE tenant = OLD.owner;
    INSERT INTO tenant_usage SELECT NEW.owner, 1, COALESCE(NEW.size, 0) WHERE NEW.owner IS NOT NULL
        ON CONFLICT (tenant) DO UPDATE SET images = images + 1, bytes = bytes + excluded.bytes;
END;
"#,
    r#"
-- Events stored in the transaction of the change they describe, until every sink took
-- them; each sink's place is the last position it took.
CREATE TABLE event_outbox (
    position  INTEGER PRIMARY KEY AUTOINCREMENT,
    stored_at INTEGER NOT NULL,
    body      TEXT NOT NULL
);
CREATE TABLE event_sinks (
    sink      TEXT PRIMARY KEY,
    delivered INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- The tenants' containers and the records of their objects (the bytes are files); the
-- counters move in the transaction of the record that moves them.
CREATE TABLE containers (
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    objects    INTEGER NOT NULL DEFAULT 0,
    bytes      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
CREATE TABLE objects (
    tenant        TEXT NOT NULL,
    container     TEXT NOT NULL,
    name          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    etag          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    last_modified INTEGER NOT NULL,
    manifest      TEXT,
    PRIMARY KEY (tenant, container, name),
    FOREIGN KEY (tenant, container) REFERENCES containers (tenant, name)
) WITHOUT ROWID;
"#,
    r#"
-- A linked container's place in the tenant's own storage (JSON, the secret sealed).
ALTER TABLE containers ADD COLUMN link TEXT;
"#,
    r#"
-- Metadata definitions: each namespace whole (header and contents as JSON), written under
-- a compare-and-set on its revision; resource types; whether the stock catalogue was loaded.
CREATE TABLE metadef_namespaces (
    name     TEXT PRIMARY KEY,
    header   TEXT NOT NULL,
    contents TEXT NOT NULL,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE metadef_resource_types (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE metadef_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // The account lifecycle: disabling, revoking tokens, password lockout, updates as
    // compare-and-set.
    r#"
ALTER TABLE users ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_failed_login TEXT;
ALTER TABLE users ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
"#,
];

/// One writer connection and a few readers on one database file.
///
/// Permits bound the blocking threads to the connections there are: callers beyond that
/// wait asynchronously instead of each parking a blocking thread on a mutex (under load
/// that grew the blocking pool to hundreds of threads and their memory).
pub struct Sqlite {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    read_permits: tokio::sync::Semaphore,
    write_permit: tokio::sync::Semaphore,
}

/// How much of the database file each connection maps (address space, not memory).
const MMAP_BYTES: i64 = 1 << 30;

/// Prepared statements each connection keeps: a list page runs one per source of images,
/// and each scope, sort and filter set is a statement of its own.
const CACHED_STATEMENTS: usize = 256;

fn configure(conn: &Connection) -> Result<(), EmbeddedError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Reads map the file instead of copying pages through each connection's small cache:
    // a list page at 100,000 images touches rows all over the table.
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    Ok(())
}

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), EmbeddedError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()?;
    Ok(())
}

impl Sqlite {
    /// Opens the database in WAL mode and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, EmbeddedError> {
        let mut writer = Connection::open(path)?;
        configure(&writer)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                configure(&conn)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<_, EmbeddedError>>()?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            read_permits: tokio::sync::Semaphore::new(READERS),
            write_permit: tokio::sync::Semaphore::new(1),
        })
    }

    /// Runs a read on one of the reader connections, off the async threads.
    pub async fn read<T, F>(self: &std::sync::Arc<Self>, f: F) -> Result<T, EmbeddedError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, EmbeddedError> + Send + 'static,
    {
        let _permit = self
            .read_permits
            .acquire()
            .await
            .map_err(|_| EmbeddedError::Closed)?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let i = db.next_reader.fetch_add(1, Ordering::Relaxed) % db.readers.len();
            let conn = db.readers[i].lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await?
    }

    /// Runs `f` in an immediate transaction on the writer and commits if it succeeds.
    pub async fn write<T, F>(self: &std::sync::Arc<Self>, f: F) -> Result<T, EmbeddedError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, EmbeddedError> + Send + 'static,
    {
        let _permit = self
            .write_permit
            .acquire()
            .await
            .map_err(|_| EmbeddedError::Closed)?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_twice_migrates_once_and_keeps_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.sqlite3");
        {
            let db = Sqlite::open(&path).expect("open");
            let w = db.writer.lock().expect("lock");
            w.execute("INSERT INTO tenants VALUES ('t1', 'acme', 'now')", [])
                .expect("insert");
        }
        let db = Sqlite::open(&path).expect("reopen");
        let r = db.readers[0].lock().expect("lock");
        let version: usize = r
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("v");
        assert_eq!(version, MIGRATIONS.len());
        let n: i64 = r
            .query_row("SELECT count(*) FROM tenants", [], |row| row.get(0))
            .expect("count");
        assert_eq!(n, 1);
    }
}
