//! The practice service's own records of who did what, kept like Azure's and read like Azure's:
//!
//! - `AHDSDicomAuditLogs`: one `Started` row and one `Succeeded` / `Failed` row per DICOM request, with
//!   the columns Azure documents (TimeGenerated, OperationName, Identity, StatusCode, ResultType,
//!   CorrelationId, Uri, Level, …) and one the practice service adds, `UserAgent`, so dicomlab can say
//!   "from Postman". OperationName follows the open-source server's audit event types (`Store`,
//!   `Retrieve`, `RetrieveMetadata`, `Query`, …); Azure's exact strings are not published, so readers
//!   match them loosely.
//! - `AADServicePrincipalSignInLogs`: one row per token request (Azure AD's sign-in log for apps), so a
//!   failed token request (AADSTS7000215…) can be shown to the learner too.
//! - `SigninLogs`: the sign-ins of the tenant's users (Azure AD's interactive sign-in log): each token
//!   issued to a user through an app, and each sign-in refused (AADSTS50011…), written by `identity`.
//!
//! An owner of the service reads them through a route shaped like the Log Analytics query API
//! (`POST /loganalytics/v1/workspaces/{id}/query` with a KQL query, answering `tables` → `columns` /
//! `rows`), with a token for `https://api.loganalytics.io` and the "Log Analytics Reader" role. Records
//! can be held back for a while (`ServiceConfig::audit_delay`) the way Azure delivers them minutes late.
//!
//! Rows are buffered in memory and written in batches ([`BATCH_WINDOW`] after the first row of a
//! batch) so auditing costs a request no disk write of its own; a crash loses at most that much of the
//! log, never data.
//!
//! This file keeps the log and writes its rows; [`record`] is the middleware that makes them, [`read`]
//! reads a table a page at a time, and [`query`] is the Log Analytics route.

pub(crate) mod query;
mod read;
pub(crate) mod record;

use std::sync::{Mutex, Weak};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use crate::db::{Db, DbError};
use crate::kql;

/// The audit table's name, as in Log Analytics.
pub(crate) const AUDIT_TABLE: &str = "AHDSDicomAuditLogs";
/// The sign-in table's name, as in Log Analytics.
pub(crate) const SIGNIN_TABLE: &str = "AADServicePrincipalSignInLogs";
/// The user sign-in table's name, as in Log Analytics.
pub(crate) const USER_SIGNIN_TABLE: &str = "SigninLogs";
/// Most rows kept per table (the oldest go first).
const KEEP_ROWS: i64 = 200_000;
/// Longest Uri and User-Agent kept.
const MAX_FIELD: usize = 2048;
/// Rows of callers without a valid token kept a minute, on average (a person makes a few), and at
/// once.
const ANONYMOUS_PER_MINUTE: f64 = 120.0;
const ANONYMOUS_BURST: f64 = 60.0;

/// One audit row.
#[derive(Debug, Clone)]
pub(super) struct AuditRow {
    pub(super) time: OffsetDateTime,
    pub(super) operation: &'static str,
    pub(super) identity: Value,
    pub(super) status: Option<u16>,
    pub(super) result_type: &'static str,
    pub(super) correlation_id: String,
    pub(super) uri: String,
    pub(super) user_agent: String,
}

/// One sign-in row.
#[derive(Debug, Clone)]
pub(super) struct SignInRow {
    pub(super) time: OffsetDateTime,
    pub(super) app_id: String,
    /// `0` for success, else the AADSTS number.
    pub(super) result_type: String,
    pub(super) result_description: String,
    pub(super) resource: String,
    pub(super) correlation_id: String,
    pub(super) user_agent: String,
}

/// One user sign-in (a `SigninLogs` row), as the identity endpoint reports it.
#[derive(Debug, Clone, Default)]
pub struct UserSignIn {
    /// The user's UPN (empty when the sign-in failed before a user was known).
    pub user: String,
    /// The user's object id.
    pub user_id: String,
    /// The app the user signed in to.
    pub app_id: String,
    /// `0` for success, else the AADSTS number.
    pub result_type: String,
    pub result_description: String,
    /// The resource of the access token issued.
    pub resource: String,
    pub user_agent: String,
}

#[derive(Default)]
struct Pending {
    audit: Vec<AuditRow>,
    signin: Vec<SignInRow>,
    users: Vec<(OffsetDateTime, UserSignIn)>,
}

/// The log: a buffer in front of two SQLite tables.
pub struct AuditLog {
    pending: Mutex<Pending>,
    /// Rows are pending: wakes the flusher (which sleeps while nothing happens — a classroom runs
    /// thirty services in one process).
    wake: std::sync::Arc<tokio::sync::Notify>,
    /// Rows are visible to queries only this long after they were written (Azure: minutes).
    pub delay: Duration,
    /// The practice "workspace" id (a GUID, kept with the data).
    pub workspace_id: String,
    /// What `_ResourceId` says.
    resource_id: String,
    /// Whether the tables show the practice service's extra `UserAgent` column (Azure's keep none:
    /// off, the service reads like Azure's to dicomlab's checks).
    pub agent_column: bool,
    /// Bumped once a flush has written a row a check could credit or show — a completed request or
    /// a sign-in of anyone but dicomlab's checks: what a lab session in this process waits on
    /// instead of polling (a check's own requests wake nobody, so checking never feeds itself).
    learner_rows: tokio::sync::watch::Sender<u64>,
    /// Most rows kept per table (the oldest go first): a classroom keeps fewer per learner.
    pub keep_rows: i64,
    /// What rows of callers without a valid token may still be written: (tokens, last refill).
    anonymous: Mutex<(f64, std::time::Instant)>,
}

/// The product part of the User-Agent of dicomlab's checks (`dicomlab-check/<version>`): their rows
/// are kept like any other, but wake no watcher.
const CHECK_AGENT: &str = "dicomlab-check/";

fn by_check(user_agent: &str) -> bool {
    user_agent.starts_with(CHECK_AGENT)
}

impl AuditLog {
    /// Opens the log's tables in the index.
    pub fn open(db: &Db, delay: Duration) -> Result<Self, DbError> {
        {
            let c = db.lock()?;
            c.execute_batch(
                r"
CREATE TABLE IF NOT EXISTS audit_log(
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, operation TEXT NOT NULL,
    identity TEXT NOT NULL, status INTEGER, result_type TEXT NOT NULL, correlation_id TEXT NOT NULL,
    uri TEXT NOT NULL, user_agent TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_audit_time ON audit_log(time);
CREATE TABLE IF NOT EXISTS signin_log(
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, app_id TEXT NOT NULL,
    result_type TEXT NOT NULL, result_description TEXT NOT NULL, resource TEXT NOT NULL,
    correlation_id TEXT NOT NULL, user_agent TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_signin_time ON signin_log(time);
CREATE TABLE IF NOT EXISTS user_signin_log(
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, upn TEXT NOT NULL, user_id TEXT NOT NULL,
    app_id TEXT NOT NULL, result_type TEXT NOT NULL, result_description TEXT NOT NULL,
    resource TEXT NOT NULL, correlation_id TEXT NOT NULL, user_agent TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_user_signin_time ON user_signin_log(time);
",
            )?;
        }
        let workspace_id = match db.meta_get("workspace_id")? {
            Some(w) => w,
            None => {
                let w = uuid::Uuid::new_v4().to_string();
                db.meta_set("workspace_id", &w)?;
                w
            }
        };
        let service_id = match db.meta_get("service_id")? {
            Some(s) => s,
            None => {
                let s = uuid::Uuid::new_v4().simple().to_string();
                db.meta_set("service_id", &s)?;
                s
            }
        };
        Ok(Self {
            pending: Mutex::new(Pending::default()),
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            delay,
            resource_id: format!(
                "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/PRACTICE/PROVIDERS/MICROSOFT.HEALTHCAREAPIS/WORKSPACES/DICOMLAB/DICOMSERVICES/PRACTICE-{}",
                service_id.to_uppercase()
            ),
            workspace_id,
            agent_column: true,
            learner_rows: tokio::sync::watch::channel(0).0,
            keep_rows: KEEP_ROWS,
            anonymous: Mutex::new((ANONYMOUS_BURST, std::time::Instant::now())),
        })
    }

    /// Whether one more row of a caller without a valid token may be written (a token bucket).
    pub(super) fn admit_anonymous(&self) -> bool {
        let Ok(mut b) = self.anonymous.lock() else {
            return false;
        };
        let now = std::time::Instant::now();
        let refill = now.duration_since(b.1).as_secs_f64() * ANONYMOUS_PER_MINUTE / 60.0;
        *b = ((b.0 + refill).min(ANONYMOUS_BURST), now);
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Something a check reads changed without a row (a role assigned with `dicomlab role`, as the
    /// portal assigns it on Azure): wakes the watchers as a row would.
    pub fn touch(&self) {
        self.learner_rows.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes when rows a check could use were written (see `learner_rows`); the value only counts.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.learner_rows.subscribe()
    }

    pub(super) fn push_audit(&self, row: AuditRow) {
        if let Ok(mut p) = self.pending.lock() {
            p.audit.push(row);
        }
        self.wake.notify_one();
    }

    pub(super) fn push_signin(&self, row: SignInRow) {
        if let Ok(mut p) = self.pending.lock() {
            p.signin.push(row);
        }
        self.wake.notify_one();
    }

    /// Records a user's sign-in (or a refused one) in `SigninLogs`.
    pub fn push_user_signin(&self, row: UserSignIn) {
        let row = UserSignIn {
            user: bounded(&row.user),
            user_id: bounded(&row.user_id),
            app_id: bounded(&row.app_id),
            result_type: bounded(&row.result_type),
            result_description: bounded(&row.result_description),
            resource: bounded(&row.resource),
            user_agent: bounded(&row.user_agent),
        };
        if let Ok(mut p) = self.pending.lock() {
            p.users.push((OffsetDateTime::now_utc(), row));
        }
        self.wake.notify_one();
    }

    /// Writes what is buffered (one transaction) and trims the tables to their size.
    pub fn flush(&self, db: &Db) -> Result<(), DbError> {
        let batch = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Ok(()),
        };
        if batch.audit.is_empty() && batch.signin.is_empty() && batch.users.is_empty() {
            return Ok(());
        }
        // Started rows carry no answer: no check reads them.
        let wakes = batch
            .audit
            .iter()
            .any(|r| r.status.is_some() && !by_check(&r.user_agent))
            || batch.signin.iter().any(|r| !by_check(&r.user_agent))
            || !batch.users.is_empty();
        let mut c = db.lock()?;
        let tx = c.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO audit_log(time, operation, identity, status, result_type, correlation_id, uri, user_agent) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in &batch.audit {
                stmt.execute(rusqlite::params![
                    kql::format_time(r.time),
                    r.operation,
                    r.identity.to_string(),
                    r.status,
                    r.result_type,
                    r.correlation_id,
                    r.uri,
                    r.user_agent
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO signin_log(time, app_id, result_type, result_description, resource, correlation_id, user_agent) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for r in &batch.signin {
                stmt.execute(rusqlite::params![
                    kql::format_time(r.time),
                    r.app_id,
                    r.result_type,
                    r.result_description,
                    r.resource,
                    r.correlation_id,
                    r.user_agent
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO user_signin_log(time, upn, user_id, app_id, result_type, result_description, resource, correlation_id, user_agent) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (time, r) in &batch.users {
                stmt.execute(rusqlite::params![
                    kql::format_time(*time),
                    r.user,
                    r.user_id,
                    r.app_id,
                    r.result_type,
                    r.result_description,
                    r.resource,
                    uuid::Uuid::new_v4().to_string(),
                    r.user_agent
                ])?;
            }
            for table in ["audit_log", "signin_log", "user_signin_log"] {
                tx.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE id <= (SELECT max(id) FROM {table}) - ?1"
                ))?
                .execute([self.keep_rows])?;
            }
        }
        tx.commit()?;
        if wakes {
            self.learner_rows.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }
}

/// A field cut to the longest the log keeps.
pub(super) fn bounded(s: &str) -> String {
    s.chars().take(MAX_FIELD).collect()
}

/// How long rows wait for others to go in their transaction: long enough that a burst of requests
/// costs one write, short enough that a check waiting for a learner's rows (the TUI's, the room's)
/// hardly waits. (It was 250 ms: every step's ✓ in a classroom waited for it.)
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(25);

/// Writes the buffer [`BATCH_WINDOW`] after rows arrive (one transaction for a burst), while the
/// service lives; asleep while nothing happens.
pub(crate) fn spawn_flusher(service: Weak<super::Service>) {
    let Some(wake) = service.upgrade().map(|s| s.audit.wake.clone()) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            // Asleep until a row is pushed (and now and then, to notice the service is gone); then
            // the rows of the next moment go in one transaction.
            let _ = tokio::time::timeout(Duration::from_secs(30), wake.notified()).await;
            tokio::time::sleep(BATCH_WINDOW).await;
            let Some(svc) = service.upgrade() else {
                break;
            };
            let done = tokio::task::spawn_blocking(move || svc.audit.flush(&svc.db)).await;
            if let Ok(Err(e)) = done {
                tracing::warn!("could not write the audit log: {e}");
            }
        }
    });
}
