//! Group commit: the rows of stores that reach the index at the same time go into one transaction.
//!
//! A store's commit writes to the WAL every B-tree page it dirtied, and most of them are pages every
//! store dirties — the right-hand leaves of the instances, searchable values and change feed, the
//! sequence table, the pages of values all instances share. Stores committed together write those
//! once. A store whose file is written (or whose bytes the index keeps) queues its row; if no store
//! is committing, it commits every row queued (up to [`MAX_BATCH`]), its own among them, and hands
//! each store its answer; otherwise it waits, and commits the next batch itself if its row is still
//! queued when the commit ends.
//!
//! Each row's answer is its own: a row already stored (the UID triple's uniqueness) or over the
//! quota inserts nothing and takes nothing from the others; if the transaction fails, each row of the
//! batch is tried again alone, so that one row's error is not its neighbours'. A 200 still means
//! the row was committed before the answer.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::{Transaction, params};

use super::instance::{Inserted, NewInstance};
use crate::Service;

/// The most rows one transaction commits (a burst of stores is committed in several).
const MAX_BATCH: usize = 64;

/// Why a row was not committed.
pub(super) type CommitError = Box<dyn std::error::Error + Send + Sync>;

/// A stored instance's row, waiting for the index.
pub(super) struct Row {
    pub rec: NewInstance,
    /// Its blob name, already written and synced ([`IN_INDEX`](crate::blobs::IN_INDEX) for `data`).
    pub blob: String,
    pub size: u64,
    /// A small instance's bytes, kept in the index (`inline_blobs`) rather than in a file.
    pub data: Option<Vec<u8>>,
}

/// The stores waiting for the index, and the answers of those committed.
#[derive(Default)]
pub(crate) struct StoreCommits {
    queue: Mutex<Queue>,
    /// A batch was committed (its stores have their answers; another may commit).
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(u64, Row)>,
    answers: HashMap<u64, Result<Inserted, CommitError>>,
    /// A store is committing a batch (the others wait for it).
    committing: bool,
    next_ticket: u64,
}

impl StoreCommits {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing that can panic runs under this lock: a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `row` (with whatever rows are waiting beside it) and answers what became of it. Blocks:
    /// runs on the blocking pool.
    pub(super) fn commit(&self, svc: &Service, row: Row) -> Result<Inserted, CommitError> {
        let mut q = self.lock();
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push((ticket, row));
        loop {
            if let Some(answer) = q.answers.remove(&ticket) {
                return answer;
            }
            if !q.committing && q.waiting.iter().any(|(t, _)| *t == ticket) {
                q.committing = true;
                let take = q.waiting.len().min(MAX_BATCH);
                let batch: Vec<(u64, Row)> = q.waiting.drain(..take).collect();
                drop(q);
                let answers = commit_answering(svc, batch);
                // Each row has its answer; the waiting stores wake, and one of them commits next.
                q = self.lock();
                q.committing = false;
                q.answers.extend(answers);
                self.changed.notify_all();
                continue;
            }
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Commits a batch ([`commit_batch`]) and answers every row of it: the rows of a commit that
/// panicked are answered with an error (the store thread and the group commit's stores alike).
pub(super) fn commit_answering(
    svc: &Service,
    batch: Vec<(u64, Row)>,
) -> HashMap<u64, Result<Inserted, CommitError>> {
    let tickets: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
    let mut answers: HashMap<u64, _> = catch_unwind(AssertUnwindSafe(|| commit_batch(svc, batch)))
        .unwrap_or_else(|_| {
            tracing::error!("stores panicked while committing");
            Vec::new()
        })
        .into_iter()
        .collect();
    for ticket in tickets {
        answers.entry(ticket).or_insert_with(|| Err(unanswered()));
    }
    answers
}

/// The answer of a row its commit left unanswered (it panicked).
pub(super) fn unanswered() -> CommitError {
    "the store's commit failed unexpectedly".into()
}

/// Commits a batch in one transaction; if that fails, each row alone.
fn commit_batch(
    svc: &Service,
    batch: Vec<(u64, Row)>,
) -> Vec<(u64, Result<Inserted, CommitError>)> {
    let rows: Vec<&Row> = batch.iter().map(|(_, r)| r).collect();
    match insert_all(svc, &rows) {
        Ok(answers) => batch
            .iter()
            .map(|(t, _)| *t)
            .zip(answers.into_iter().map(Ok))
            .collect(),
        Err(e) if batch.len() == 1 => vec![(batch[0].0, Err(e))],
        Err(e) => {
            tracing::warn!(
                "a group commit of {} stores failed ({e}); committing each alone",
                batch.len()
            );
            batch
                .iter()
                .map(|(t, row)| {
                    let answer = insert_all(svc, &[row]).and_then(|mut a| {
                        a.pop()
                            .ok_or_else(|| "the store's commit answered nothing".into())
                    });
                    (*t, answer)
                })
                .collect()
        }
    }
}

/// Records each row (its file already written under its blob name, or its bytes), its searchable
/// values and a `Create` change-feed entry in one transaction; answers what became of each.
fn insert_all(svc: &Service, rows: &[&Row]) -> Result<Vec<Inserted>, CommitError> {
    let mut conn = svc.db.lock()?;
    let tx = conn.transaction()?;
    let now = crate::now_timestamp();
    let held = svc.db.stored_bytes();
    let mut added = 0u64;
    let mut answers = Vec::with_capacity(rows.len());
    for row in rows {
        let answer = insert_row(svc, &tx, row, &now, held.saturating_add(added))?;
        if matches!(answer, Inserted::Stored) {
            added = added.saturating_add(row.size);
        }
        answers.push(answer);
    }
    tx.commit()?;
    svc.db.stored_changed(added, 0);
    Ok(answers)
}

/// One row of a batch; `held` counts the rows stored before it in the batch.
fn insert_row(
    svc: &Service,
    tx: &Transaction<'_>,
    row: &Row,
    now: &str,
    held: u64,
) -> rusqlite::Result<Inserted> {
    let rec = &row.rec;
    if let Some(quota) = svc.config.max_stored_bytes
        && held.saturating_add(row.size) > quota
    {
        // Under the index lock: stores in parallel cannot together pass the limit. An instance
        // already there is answered as such, as it would be with room to spare.
        let exists = tx
            .prepare_cached(
                "SELECT 1 FROM instances WHERE study_uid = ?1 AND series_uid = ?2 AND sop_uid = ?3",
            )?
            .exists(params![rec.study, rec.series, rec.sop])?;
        return Ok(if exists {
            Inserted::Exists
        } else {
            Inserted::Full { quota, held }
        });
    }
    // The UID triple's uniqueness is the check: an instance already there inserts no row.
    let added = tx
        .prepare_cached(
            "INSERT INTO instances(study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax, blob, size, frames, created, metadata)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(study_uid, series_uid, sop_uid) DO NOTHING",
        )?
        .execute(params![
            rec.study,
            rec.series,
            rec.sop,
            rec.class,
            rec.transfer_syntax,
            row.blob,
            row.size as i64,
            rec.frames,
            now,
            rec.metadata
        ])?;
    if added == 0 {
        return Ok(Inserted::Exists);
    }
    let watermark = tx.last_insert_rowid();
    if let Some(data) = &row.data {
        tx.prepare_cached("INSERT INTO inline_blobs(watermark, data) VALUES(?1, ?2)")?
            .execute(params![watermark, data])?;
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO attr_index(watermark, tag, value, num) VALUES(?1, ?2, ?3, ?4)",
        )?;
        for (tag, text, num) in &rec.values {
            stmt.execute(params![watermark, tag, text, num])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO changefeed(study_uid, series_uid, sop_uid, action, timestamp, watermark)
         VALUES(?1, ?2, ?3, 'Create', ?4, ?5)",
    )?
    .execute(params![rec.study, rec.series, rec.sop, now, watermark])?;
    Ok(Inserted::Stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ServiceConfig, SharedService};

    fn service(max_stored_bytes: Option<u64>) -> SharedService {
        crate::build(
            ServiceConfig {
                max_stored_bytes,
                ..ServiceConfig::default()
            },
            "http://127.0.0.1",
        )
        .expect("service")
        .service
    }

    fn row(sop: &str, size: u64) -> Row {
        Row {
            rec: NewInstance {
                study: "1.2.3".into(),
                series: "1.2.3.4".into(),
                sop: sop.into(),
                class: "1.2.840.10008.5.1.4.1.1.7".into(),
                transfer_syntax: "1.2.840.10008.1.2.1".into(),
                frames: 1,
                metadata: "{}".into(),
                values: vec![(0x0010_0010, Some(format!("patient {sop}")), None)],
            },
            blob: format!("00/{sop}.dcm"),
            size,
            data: None,
        }
    }

    fn waiting(svc: &Service) -> usize {
        svc.store_commits.lock().waiting.len()
    }

    /// Waits (at most 20 s) until `done` holds.
    fn until(what: &str, done: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed().as_secs() < 20, "{what}");
            std::thread::yield_now();
        }
    }

    /// Commits each row on its own thread while the test holds the index: the first row's store
    /// takes its batch and waits for the index; the others queue behind it in order (each thread
    /// starts once the one before has queued), and go in one batch once the index is free. Answers
    /// each row's answer, in order.
    fn commit_queued(svc: &SharedService, rows: Vec<Row>) -> Vec<Result<Inserted, String>> {
        let held = svc.db.lock().expect("index");
        let threads: Vec<_> = rows
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let mine = svc.clone();
                let t = std::thread::spawn(move || {
                    mine.store_commits
                        .commit(&mine, row)
                        .map_err(|e| e.to_string())
                });
                if i == 0 {
                    until("the first store never committed", || {
                        svc.store_commits.lock().committing
                    });
                } else {
                    until("a store never queued", || waiting(svc) == i);
                }
                t
            })
            .collect();
        drop(held);
        threads
            .into_iter()
            .map(|t| t.join().expect("store thread"))
            .collect()
    }

    fn count(svc: &Service, sql: &str) -> i64 {
        svc.db
            .lock()
            .expect("index")
            .query_row(sql, [], |r| r.get(0))
            .expect("count")
    }

    /// Stores committed together each get their own answer: the instance already there (and the
    /// same instance twice in one batch) inserts nothing; the rows of one batch share one commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_queued_together_commit_in_one_batch_each_with_its_own_answer() {
        let svc = service(None);
        let answers = commit_queued(
            &svc,
            vec![
                row("1", 10),
                row("2", 10),
                row("3", 10),
                row("1", 10),
                row("3", 10),
            ],
        );
        let kinds: Vec<&str> = answers
            .iter()
            .map(|a| match a {
                Ok(Inserted::Stored) => "stored",
                Ok(Inserted::Exists) => "exists",
                Ok(Inserted::Full { .. }) => "full",
                Err(_) => "error",
            })
            .collect();
        assert_eq!(kinds, ["stored", "stored", "stored", "exists", "exists"]);
        assert_eq!(count(&svc, "SELECT COUNT(*) FROM instances"), 3);
        assert_eq!(count(&svc, "SELECT COUNT(*) FROM changefeed"), 3);
        assert_eq!(count(&svc, "SELECT COUNT(*) FROM attr_index"), 3);
        assert_eq!(svc.db.stored_bytes(), 30);
        // The four rows queued behind the first went in one transaction (one commit time), the first
        // in its own.
        assert_eq!(
            count(&svc, "SELECT COUNT(DISTINCT created) FROM instances"),
            2
        );
        assert_eq!(waiting(&svc), 0);
        assert!(svc.store_commits.lock().answers.is_empty());
    }

    /// The quota counts the rows stored before a row in its batch; an instance already stored is
    /// answered as such even when there is no room.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_cannot_pass_the_quota_together() {
        let svc = service(Some(250));
        let answers = commit_queued(
            &svc,
            vec![row("1", 100), row("2", 100), row("3", 100), row("1", 100)],
        );
        assert!(matches!(answers[0], Ok(Inserted::Stored)));
        assert!(matches!(answers[1], Ok(Inserted::Stored)));
        assert!(
            matches!(
                answers[2],
                Ok(Inserted::Full {
                    quota: 250,
                    held: 200
                })
            ),
            "the third does not fit beside the first two"
        );
        assert!(matches!(answers[3], Ok(Inserted::Exists)));
        assert_eq!(count(&svc, "SELECT COUNT(*) FROM instances"), 2);
        assert_eq!(svc.db.stored_bytes(), 200);
    }

    /// A row whose insert fails fails alone: its batch is committed again row by row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_row_does_not_fail_its_batch() {
        let svc = service(None);
        svc.db
            .lock()
            .expect("index")
            .execute_batch(
                "CREATE TEMP TRIGGER refuse_bad BEFORE INSERT ON changefeed WHEN NEW.sop_uid = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )
            .expect("trigger");
        let answers = commit_queued(
            &svc,
            vec![row("1", 10), row("2", 10), row("bad", 10), row("3", 10)],
        );
        assert!(matches!(answers[0], Ok(Inserted::Stored)));
        assert!(matches!(answers[1], Ok(Inserted::Stored)));
        assert!(
            matches!(&answers[2], Err(e) if e.contains("refused by the test")),
            "{:?}",
            answers[2].as_ref().err()
        );
        assert!(matches!(answers[3], Ok(Inserted::Stored)));
        assert_eq!(count(&svc, "SELECT COUNT(*) FROM instances"), 3);
        assert_eq!(count(&svc, "SELECT COUNT(*) FROM changefeed"), 3);
        assert_eq!(svc.db.stored_bytes(), 30);
    }
}
