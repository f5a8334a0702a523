//! The practice service's index in SQLite (WAL): instances, searchable values, change feed, extended query
//! tags, operations, clients and role assignments, and the bytes of small instances. Other instances'
//! files live on disk beside it (see `blobs`).
//! All calls are synchronous; the handlers run them on the blocking pool.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

/// Why the index could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the practice service's database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "this data folder was written by a newer dicomlab (its index has format {found}; this \
         dicomlab reads formats up to {known}): update dicomlab, or give it another data folder"
    )]
    NewerFormat { found: i64, known: i64 },
}

const SCHEMA: &str = r"
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances(
    watermark INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL, transfer_syntax TEXT NOT NULL,
    blob TEXT NOT NULL, size INTEGER NOT NULL, frames INTEGER NOT NULL,
    created TEXT NOT NULL, metadata TEXT NOT NULL,
    UNIQUE(study_uid, series_uid, sop_uid));
CREATE INDEX IF NOT EXISTS ix_instances_sop ON instances(sop_uid);
-- A study's (series') instances newest first: its current value of an attribute (qido.rs).
CREATE INDEX IF NOT EXISTS ix_instances_study_watermark ON instances(study_uid, watermark);
CREATE INDEX IF NOT EXISTS ix_instances_series_watermark ON instances(series_uid, watermark);
CREATE TABLE IF NOT EXISTS attr_index(
    watermark INTEGER NOT NULL REFERENCES instances(watermark) ON DELETE CASCADE,
    tag INTEGER NOT NULL, value TEXT, num REAL);
CREATE INDEX IF NOT EXISTS ix_attr_value ON attr_index(tag, value);
-- Only numbers are compared as numbers: the index skips the text values' rows (most of them).
CREATE INDEX IF NOT EXISTS ix_attr_num_set ON attr_index(tag, num) WHERE num IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_attr_watermark ON attr_index(watermark, tag);
-- Small instances' files, kept in the index rather than in a file of their own (stow/instance.rs):
-- their rows have the blob name ''.
CREATE TABLE IF NOT EXISTS inline_blobs(
    watermark INTEGER PRIMARY KEY REFERENCES instances(watermark) ON DELETE CASCADE,
    data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS changefeed(
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_uid TEXT NOT NULL,
    action TEXT NOT NULL, timestamp TEXT NOT NULL, watermark INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ix_changefeed_time ON changefeed(timestamp, sequence);
CREATE TABLE IF NOT EXISTS eqt(
    key INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, vr TEXT NOT NULL,
    private_creator TEXT, level TEXT NOT NULL, status TEXT NOT NULL, query_status TEXT NOT NULL,
    error_count INTEGER NOT NULL DEFAULT 0, operation_id TEXT);
CREATE TABLE IF NOT EXISTS eqt_errors(
    id INTEGER PRIMARY KEY AUTOINCREMENT, tag_key INTEGER NOT NULL REFERENCES eqt(key) ON DELETE CASCADE,
    study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_uid TEXT NOT NULL,
    created TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations(
    id TEXT PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL, created TEXT NOT NULL,
    updated TEXT NOT NULL, percent INTEGER NOT NULL, resources TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients(client_id TEXT PRIMARY KEY, secret TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS role_assignments(client_id TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY(client_id, role));
-- Indexes earlier versions made that no query needs (every store paid for them): the series index
-- is the prefix of (series_uid, watermark), nothing looks the change feed up by UIDs, and the full
-- (tag, num) index held a row for every text value.
DROP INDEX IF EXISTS ix_instances_series;
DROP INDEX IF EXISTS ix_changefeed_uids;
DROP INDEX IF EXISTS ix_attr_num;
";

/// The index's format, kept as SQLite's `user_version`: what a dicomlab that opens the folder must
/// know to serve it. 2: small instances' bytes may be kept in the index (`inline_blobs`, blob name
/// `''`), which a version that knows only files cannot serve. 0: no format recorded — a folder of a
/// version before the check, whose small instances may be kept in the index too (1 is not used).
/// A dicomlab refuses a folder of a newer format than its own rather than serve it in part;
/// versions before the check read any folder.
const FORMAT: i64 = 2;

/// The index. One connection behind a mutex: SQLite serialises writers anyway, and every call is short.
pub struct Db {
    conn: Mutex<Connection>,
    /// The stored files' bytes (the sum of `instances.size`), read at open and kept as stores and
    /// deletes commit (under the lock): a store's quota check is not a scan of every instance.
    stored: AtomicU64,
    /// Rows of the extended query tags' table written since open (SQLite's update hook counts them,
    /// whoever writes): a store reads the tags to index only after they changed.
    eqt_writes: Arc<AtomicU64>,
}

/// Bytes the stored instances' files take, counted on a connection the caller holds.
fn stored_bytes_in(c: &Connection) -> rusqlite::Result<u64> {
    let held: i64 = c.query_row("SELECT COALESCE(SUM(size), 0) FROM instances", [], |r| {
        r.get(0)
    })?;
    Ok(u64::try_from(held).unwrap_or(0))
}

/// A value of the `meta` table, read on a connection the caller holds.
fn meta_in(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// The format of the index `c` is open on ([`FORMAT`]); an error if it is newer than this dicomlab's.
fn known_format(c: &Connection) -> Result<i64, DbError> {
    let found: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > FORMAT {
        return Err(DbError::NewerFormat {
            found,
            known: FORMAT,
        });
    }
    Ok(found)
}

/// The lab client of the index at `path` — tenant id, client id, secret — read without opening the
/// service (another process may serve it: nothing is written). `None` when there is no index yet.
pub fn read_lab_client(path: &Path) -> Result<Option<(String, String, String)>, DbError> {
    if !path.exists() {
        return Ok(None);
    }
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    known_format(&c)?;
    let (Some(tenant), Some(client)) = (meta_in(&c, "tenant_id")?, meta_in(&c, "lab_client_id")?)
    else {
        return Ok(None);
    };
    let secret: Option<String> = c
        .query_row(
            "SELECT secret FROM clients WHERE client_id = ?1",
            [&client],
            |r| r.get(0),
        )
        .optional()?;
    Ok(secret.map(|s| (tenant, client, s)))
}

impl Db {
    /// Opens (creating if needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Before anything is written: a folder of a newer format is left as it was.
        let found = known_format(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A cached statement keeps its plan. Without this SQLite (3.54) plans a bound LIMIT as the
        // number bound and marks the statement to be prepared again at every new binding — every
        // search, change-feed page and audit read was parsed and planned anew each time (~70 µs a
        // search on the project's VM).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        // The statements a lab's requests use (the searches', the logs', the change feed's, the
        // stores') outnumber rusqlite's default 16: past it, each was parsed again and again.
        conn.set_prepared_statement_cache_capacity(48);
        conn.execute_batch(SCHEMA)?;
        if found < FORMAT {
            conn.pragma_update(None, "user_version", FORMAT)?;
        }
        let stored = AtomicU64::new(stored_bytes_in(&conn)?);
        let eqt_writes = Arc::new(AtomicU64::new(0));
        let counted = eqt_writes.clone();
        conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
                if table == "eqt" {
                    counted.fetch_add(1, Ordering::AcqRel);
                }
            },
        ))?;
        Ok(Self {
            conn: Mutex::new(conn),
            stored,
            eqt_writes,
        })
    }

    /// Locks the connection for one unit of work.
    pub fn lock(&self) -> Result<MutexGuard<'_, Connection>, DbError> {
        match self.conn.lock() {
            Ok(c) => Ok(c),
            Err(poisoned) => self.recover(poisoned.into_inner()),
        }
    }

    /// The connection after a request panicked while holding it. A transaction it left open is
    /// rolled back — rusqlite's `Transaction` does that as the panic unwinds; one begun by hand is
    /// rolled back here — and the stored bytes are counted again (the panic may have come between
    /// a commit and its count). Then the lock serves every request as before: one request that
    /// panicked does not take the service's index down with it. What the request had already
    /// committed stays, and what it kept outside the index (a cache in memory, the files of a
    /// delete) is not reconciled here.
    fn recover<'a>(
        &'a self,
        c: MutexGuard<'a, Connection>,
    ) -> Result<MutexGuard<'a, Connection>, DbError> {
        if !c.is_autocommit() {
            c.execute_batch("ROLLBACK")?;
        }
        self.stored.store(stored_bytes_in(&c)?, Ordering::Release);
        self.conn.clear_poison();
        tracing::warn!(
            "a request panicked while holding the index; a transaction it left open was rolled back"
        );
        Ok(c)
    }

    /// Bytes the stored instances' files take (as of the last commit that stored or deleted one).
    pub fn stored_bytes(&self) -> u64 {
        self.stored.load(Ordering::Acquire)
    }

    /// A commit (made while the caller held the lock) added `added` bytes of files and removed
    /// `removed`.
    pub fn stored_changed(&self, added: u64, removed: u64) {
        let _ = self
            .stored
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_add(added).saturating_sub(removed))
            });
    }

    /// How many rows of the `eqt` table were inserted, updated or deleted since open (rolled back or
    /// not). Read under the lock, it dates what the connection then reads of the table.
    pub fn eqt_writes(&self) -> u64 {
        self.eqt_writes.load(Ordering::Acquire)
    }

    /// A value of the `meta` table (service keys, lab client).
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(meta_in(&*self.lock()?, key)?)
    }

    pub fn meta_set(&self, key: &str, value: &str) -> Result<(), DbError> {
        let c = self.lock()?;
        c.execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Every blob name the index refers to (for clean-up of files a crash left behind).
    pub fn blob_names(&self) -> Result<std::collections::HashSet<String>, DbError> {
        let c = self.lock()?;
        let mut stmt = c.prepare("SELECT blob FROM instances")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder gets this dicomlab's format; one of a newer format is refused with a message that
    /// says what to do, and left as it was.
    #[test]
    fn a_folder_of_a_newer_format_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.sqlite");
        let format = |p: &Path| -> i64 {
            Connection::open(p)
                .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
                .expect("format")
        };
        drop(Db::open(&path).expect("a new index"));
        assert_eq!(format(&path), FORMAT);
        // An earlier version's folder (no format set) is brought to this one's.
        Connection::open(&path)
            .and_then(|c| c.pragma_update(None, "user_version", 0))
            .expect("as an earlier version left it");
        drop(Db::open(&path).expect("an earlier index"));
        assert_eq!(format(&path), FORMAT);
        // A newer version's index: with an index this one's schema drops, and out of WAL mode.
        Connection::open(&path)
            .and_then(|c| {
                c.pragma_update(None, "journal_mode", "DELETE")?;
                c.execute_batch("CREATE INDEX ix_attr_num ON attr_index(tag, num)")?;
                c.pragma_update(None, "user_version", FORMAT + 1)
            })
            .expect("as a newer version left it");
        let refused = Db::open(&path).err().expect("refused");
        assert!(matches!(refused, DbError::NewerFormat { found, known }
            if found == FORMAT + 1 && known == FORMAT));
        assert!(refused.to_string().contains("update dicomlab"), "{refused}");
        let c = Connection::open(&path).expect("open");
        let journal: String = c
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal mode");
        let kept: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'ix_attr_num'",
                [],
                |r| r.get(0),
            )
            .expect("indexes");
        assert_eq!(
            (journal.as_str(), kept),
            ("delete", 1),
            "nothing was changed"
        );
        assert_eq!(format(&path), FORMAT + 1);
        // Nor are its lab client's credentials read as if it were this dicomlab's.
        assert!(matches!(
            read_lab_client(&path),
            Err(DbError::NewerFormat { .. })
        ));
    }

    /// A panic while a transaction was open leaves the lock poisoned; the next request finds the
    /// transaction rolled back — as rusqlite's `Transaction` unwinds (what the service's code uses),
    /// or by the recovery (one begun by hand, which nothing rolls back as it unwinds) — counts the
    /// stored bytes again, and is served, as is every one after it.
    #[test]
    fn a_request_that_panicked_holding_the_index_does_not_take_it_down() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("index.sqlite")).expect("open");
        let insert = "INSERT INTO instances(study_uid, series_uid, sop_uid, sop_class_uid,
            transfer_syntax, blob, size, frames, created, metadata)
            VALUES('1.2', '1.2.3', ?1, '1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.1.2.1', 'b', ?2,
            1, '2026-12-07T00:00:00Z', '{}')";
        db.lock()
            .expect("lock")
            .execute(insert, params!["1.2.3.1", 100])
            .expect("a committed instance");
        db.stored_changed(100, 0);
        for by_hand in [true, false] {
            let panicked = std::thread::scope(|s| {
                s.spawn(|| {
                    let mut c = db.lock().expect("lock");
                    // As if a commit had counted bytes it never made durable.
                    db.stored_changed(5_000, 0);
                    if by_hand {
                        c.execute_batch("BEGIN").expect("begin");
                        c.execute(insert, params!["1.2.3.2", 5_000])
                            .expect("an uncommitted instance");
                        panic!("a bug, mid-transaction");
                    }
                    let tx = c.transaction().expect("transaction");
                    tx.execute(insert, params!["1.2.3.2", 5_000])
                        .expect("an uncommitted instance");
                    panic!("a bug, mid-transaction");
                })
                .join()
            });
            assert!(panicked.is_err());
            assert!(db.conn.is_poisoned());
            for _ in 0..2 {
                let c = db.lock().expect("the index serves again");
                assert!(c.is_autocommit(), "the open transaction was rolled back");
                let sops: Vec<String> = c
                    .prepare("SELECT sop_uid FROM instances")
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .expect("read");
                assert_eq!(sops, ["1.2.3.1"]);
            }
            assert!(!db.conn.is_poisoned());
            assert_eq!(db.stored_bytes(), 100);
        }
        db.meta_set("after", "yes")
            .expect("a write after the panic");
        assert_eq!(db.meta_get("after").expect("meta").as_deref(), Some("yes"));
    }

    fn index_names(db: &Db) -> Vec<String> {
        let c = db.lock().expect("lock");
        let mut s = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'ix_%' ORDER BY name")
            .expect("prepare");
        s.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("names")
    }

    /// A data folder an earlier version made loses the indexes every store paid for and no query used,
    /// and gains the numbers-only one; its rows stay.
    #[test]
    fn an_earlier_index_is_brought_to_the_current_indexes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.sqlite");
        {
            let c = Connection::open(&path).expect("open");
            let before_drops = SCHEMA.split("DROP INDEX").next().unwrap_or(SCHEMA);
            c.execute_batch(before_drops)
                .expect("the schema without its drops");
            c.execute_batch(
                "DROP INDEX ix_attr_num_set;
                 CREATE INDEX ix_instances_series ON instances(series_uid);
                 CREATE INDEX ix_attr_num ON attr_index(tag, num);
                 CREATE INDEX ix_changefeed_uids ON changefeed(sop_uid, series_uid, study_uid);
                 INSERT INTO meta(key, value) VALUES('kept', 'yes');",
            )
            .expect("an earlier version's indexes");
        }
        let db = Db::open(&path).expect("open the earlier index");
        assert_eq!(
            index_names(&db),
            [
                "ix_attr_num_set",
                "ix_attr_value",
                "ix_attr_watermark",
                "ix_changefeed_time",
                "ix_instances_series_watermark",
                "ix_instances_sop",
                "ix_instances_study_watermark",
            ]
        );
        assert_eq!(db.meta_get("kept").expect("meta").as_deref(), Some("yes"));
        // Opening again changes nothing.
        drop(db);
        assert_eq!(index_names(&Db::open(&path).expect("reopen")).len(), 7);
    }

    /// A cached statement with bound parameters — a LIMIT among them, as every search, change-feed
    /// page and audit read has — runs again with new values without being prepared again.
    #[test]
    fn cached_statements_are_not_prepared_again_for_new_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("index.sqlite")).expect("open");
        let c = db.lock().expect("lock");
        let sql = "SELECT i.study_uid, MAX(i.watermark) FROM instances i
                   WHERE i.watermark IN (SELECT a.watermark FROM attr_index a WHERE a.tag = ? AND a.value = ?)
                   GROUP BY i.study_uid ORDER BY MIN(i.watermark) DESC LIMIT ? OFFSET ?";
        for (i, limit) in [100i64, 100, 7, 100].into_iter().enumerate() {
            let mut s = c.prepare_cached(sql).expect("prepare");
            let rows: Vec<String> = s
                .query_map(
                    rusqlite::params![0x0010_0010, format!("p{i}"), limit, i as i64],
                    |r| r.get(0),
                )
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert!(rows.is_empty());
            assert_eq!(
                s.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "run {i} prepared the statement again"
            );
        }
    }

    /// Every write of an extended query tag's row is counted, by any statement, and nothing else is.
    #[test]
    fn writes_of_the_tags_table_are_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("index.sqlite")).expect("open");
        assert_eq!(db.eqt_writes(), 0);
        db.meta_set("k", "v").expect("meta");
        let c = db.lock().expect("lock");
        c.execute(
            "INSERT INTO eqt(path, vr, level, status, query_status) VALUES('00101002', 'SQ', 'Study', 'adding', 'enabled')",
            [],
        )
        .expect("insert");
        assert_eq!(db.eqt_writes(), 1);
        c.execute("UPDATE eqt SET status = 'ready'", [])
            .expect("update");
        assert_eq!(db.eqt_writes(), 2);
        c.execute("UPDATE eqt SET status = 'ready' WHERE key = -1", [])
            .expect("update nothing");
        assert_eq!(db.eqt_writes(), 2);
        c.execute("DELETE FROM eqt WHERE path = '00101002'", [])
            .expect("delete");
        assert_eq!(db.eqt_writes(), 3);
    }

    /// The stored bytes kept in memory start from what the index holds and follow each change.
    #[test]
    fn stored_bytes_start_from_the_index_and_follow_its_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.sqlite");
        {
            let db = Db::open(&path).expect("open");
            assert_eq!(db.stored_bytes(), 0);
            db.lock()
                .expect("lock")
                .execute_batch(
                    "INSERT INTO instances(study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax,
                       blob, size, frames, created, metadata)
                     VALUES('1', '1.1', '1.1.1', '1.2', '1.2.840.10008.1.2.1', 'a', 1000, 1, '', '{}'),
                           ('1', '1.1', '1.1.2', '1.2', '1.2.840.10008.1.2.1', 'b', 234, 1, '', '{}');",
                )
                .expect("rows");
        }
        let db = Db::open(&path).expect("reopen");
        assert_eq!(db.stored_bytes(), 1234);
        db.stored_changed(66, 0);
        assert_eq!(db.stored_bytes(), 1300);
        db.stored_changed(0, 300);
        assert_eq!(db.stored_bytes(), 1000);
        db.stored_changed(0, 5000);
        assert_eq!(db.stored_bytes(), 0, "never below nothing");
    }
}
