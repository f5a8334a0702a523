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
//! Rows are buffered in memory and written in batches (every 250 ms) so auditing costs a request no
//! disk write of its own; a crash loses at most that much of the log, never data.

use std::sync::{Mutex, Weak};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::auth::{LOG_ANALYTICS_RESOURCE, Role};
use super::db::{Db, DbError};
use super::kql::{self, Cell, Column, Table};
use super::{SharedService, origin_of};

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
/// Longest Uri kept of a caller without a valid token (its User-Agent: half of it).
const ANONYMOUS_FIELD: usize = 256;
/// Rows of callers without a valid token kept a minute, on average (a person makes a few), and at
/// once.
const ANONYMOUS_PER_MINUTE: f64 = 120.0;
const ANONYMOUS_BURST: f64 = 60.0;
/// Rows a query reads from the index at a time.
const PAGE: usize = 2_000;

/// One audit row.
#[derive(Debug, Clone)]
struct AuditRow {
    time: OffsetDateTime,
    operation: &'static str,
    identity: Value,
    status: Option<u16>,
    result_type: &'static str,
    correlation_id: String,
    uri: String,
    user_agent: String,
}

/// One sign-in row.
#[derive(Debug, Clone)]
struct SignInRow {
    time: OffsetDateTime,
    app_id: String,
    /// `0` for success, else the AADSTS number.
    result_type: String,
    result_description: String,
    resource: String,
    correlation_id: String,
    user_agent: String,
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
    fn admit_anonymous(&self) -> bool {
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

    fn push_audit(&self, row: AuditRow) {
        if let Ok(mut p) = self.pending.lock() {
            p.audit.push(row);
        }
        self.wake.notify_one();
    }

    fn push_signin(&self, row: SignInRow) {
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
                tx.execute(
                    &format!("DELETE FROM {table} WHERE id <= (SELECT max(id) FROM {table}) - ?1"),
                    [self.keep_rows],
                )?;
            }
        }
        tx.commit()?;
        if wakes {
            self.learner_rows.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }

    /// The rows of `table` written at or after `since` and at least `delay` ago that `keep` lets
    /// through, read a page at a time — the index's lock is held for a page, never for the whole read
    /// — until `plan.wanted` of them are in, or every row was looked at: a query costs what it
    /// returns, not what the table holds. None: no such table.
    fn read(
        &self,
        db: &Db,
        table: &str,
        since: Option<OffsetDateTime>,
        plan: kql::Plan,
        mut keep: impl FnMut(&mut Table) -> Result<(), kql::KqlError>,
    ) -> Result<Option<Result<Table, kql::KqlError>>, DbError> {
        let visible = kql::format_time(OffsetDateTime::now_utc() - self.delay);
        let since = since.map_or_else(String::new, kql::format_time);
        let mut cursor = if plan.newest_first { i64::MAX } else { 0 };
        let mut out: Option<Table> = None;
        loop {
            let page = {
                let c = db.lock()?;
                self.read_page(&c, table, [&since, &visible], cursor, plan.newest_first)?
            };
            let Some((mut page, last)) = page else {
                return Ok(None);
            };
            let ended = page.rows.len() < PAGE;
            if let Some(i) = page.columns.iter().position(|c| c.name == "UserAgent")
                && !self.agent_column
            {
                page.columns.remove(i);
                for row in &mut page.rows {
                    if i < row.len() {
                        row.remove(i);
                    }
                }
            }
            if let Err(e) = keep(&mut page) {
                return Ok(Some(Err(e)));
            }
            let t = out.get_or_insert_with(|| Table {
                columns: page.columns.clone(),
                rows: Vec::new(),
            });
            t.rows.extend(page.rows);
            if t.rows.len() >= plan.wanted {
                t.rows.truncate(plan.wanted);
                break;
            }
            match last {
                Some(id) if !ended => cursor = id,
                _ => break,
            }
        }
        let mut t = out.unwrap_or_default();
        if plan.newest_first {
            // Read newest first; the query's own order (and everything after it) runs on these.
            t.rows.reverse();
        }
        Ok(Some(Ok(t)))
    }

    /// One page of a table's rows after `cursor` (an id) in the reading order, and the last id read.
    fn read_page(
        &self,
        c: &rusqlite::Connection,
        table: &str,
        window: [&String; 2],
        cursor: i64,
        newest_first: bool,
    ) -> Result<Option<(Table, Option<i64>)>, DbError> {
        let (cmp, dir) = if newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let page = PAGE as i64;
        let col = |name: &str, ty: &'static str| Column {
            name: name.into(),
            ty,
        };
        let parse_time = |s: String| kql::parse_datetime(&s).map_or(Cell::Null, Cell::Time);
        if table.eq_ignore_ascii_case(AUDIT_TABLE) {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT id, time, operation, identity, status, result_type, correlation_id, uri, user_agent FROM audit_log WHERE time >= ?1 AND time <= ?2 AND id {cmp} ?3 ORDER BY id {dir} LIMIT ?4"
            ))?;
            let mut last = None;
            let rows = stmt
                .query_map(rusqlite::params![window[0], window[1], cursor, page], |r| {
                    let id: i64 = r.get(0)?;
                    let identity: String = r.get(3)?;
                    let status: Option<i64> = r.get(4)?;
                    let result_type: String = r.get(5)?;
                    Ok((
                        id,
                        vec![
                            parse_time(r.get(1)?),
                            Cell::Str(r.get(2)?),
                            Cell::Dyn(serde_json::from_str(&identity).unwrap_or(Value::Null)),
                            status.map_or(Cell::Null, Cell::Int),
                            Cell::Str(if result_type == "Started" {
                                "Informational".into()
                            } else if status.unwrap_or(0) >= 500 {
                                "Error".into()
                            } else {
                                "Informational".into()
                            }),
                            Cell::Str(result_type),
                            Cell::Str(r.get(6)?),
                            Cell::Str(r.get(7)?),
                            Cell::Str(r.get(8)?),
                            Cell::Str(self.workspace_id.clone()),
                            Cell::Str("Azure".into()),
                            Cell::Str(AUDIT_TABLE.into()),
                            Cell::Str(self.resource_id.clone()),
                        ],
                    ))
                })?
                .map(|r| {
                    r.map(|(id, row)| {
                        last = Some(id);
                        row
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let columns = vec![
                col("TimeGenerated", "datetime"),
                col("OperationName", "string"),
                col("Identity", "dynamic"),
                col("StatusCode", "int"),
                col("Level", "string"),
                col("ResultType", "string"),
                col("CorrelationId", "string"),
                col("Uri", "string"),
                col("UserAgent", "string"),
                col("TenantId", "string"),
                col("SourceSystem", "string"),
                col("Type", "string"),
                col("_ResourceId", "string"),
            ];
            return Ok(Some((Table { columns, rows }, last)));
        }
        let (sql, names, type_name): (&str, &[&str], &str) = if table
            .eq_ignore_ascii_case(USER_SIGNIN_TABLE)
        {
            (
                "SELECT id, time, upn, user_id, app_id, result_type, result_description, resource, correlation_id, user_agent FROM user_signin_log",
                &[
                    "UserPrincipalName",
                    "UserId",
                    "AppId",
                    "ResultType",
                    "ResultDescription",
                    "ResourceIdentity",
                    "CorrelationId",
                    "UserAgent",
                ],
                USER_SIGNIN_TABLE,
            )
        } else if table.eq_ignore_ascii_case(SIGNIN_TABLE) {
            (
                "SELECT id, time, app_id, result_type, result_description, resource, correlation_id, user_agent FROM signin_log",
                &[
                    "AppId",
                    "ResultType",
                    "ResultDescription",
                    "ResourceIdentity",
                    "CorrelationId",
                    "UserAgent",
                ],
                SIGNIN_TABLE,
            )
        } else {
            return Ok(None);
        };
        let sql = format!(
            "{sql} WHERE time >= ?1 AND time <= ?2 AND id {cmp} ?3 ORDER BY id {dir} LIMIT ?4"
        );
        text_table(c, &sql, (window, cursor, page), names, type_name).map(Some)
    }
}

/// A page of a table whose rows are the id, the time, then text columns (`names`, in the query's
/// order), then `Type`; and the last id read.
fn text_table(
    c: &rusqlite::Connection,
    sql: &str,
    (window, cursor, page): ([&String; 2], i64, i64),
    names: &[&str],
    type_name: &str,
) -> Result<(Table, Option<i64>), DbError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut last = None;
    let rows = stmt
        .query_map(rusqlite::params![window[0], window[1], cursor, page], |r| {
            let id: i64 = r.get(0)?;
            let time: String = r.get(1)?;
            let mut row = vec![kql::parse_datetime(&time).map_or(Cell::Null, Cell::Time)];
            for i in 0..names.len() {
                row.push(Cell::Str(r.get(i + 2)?));
            }
            row.push(Cell::Str(type_name.into()));
            Ok((id, row))
        })?
        .map(|r| {
            r.map(|(id, row)| {
                last = Some(id);
                row
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let col = |name: &str, ty: &'static str| Column {
        name: name.into(),
        ty,
    };
    let mut columns = vec![col("TimeGenerated", "datetime")];
    columns.extend(names.iter().map(|n| col(n, "string")));
    columns.push(col("Type", "string"));
    Ok((Table { columns, rows }, last))
}

/// Writes the buffer 250 ms after rows arrive (one transaction for a burst), while the service lives;
/// asleep while nothing happens.
pub(crate) fn spawn_flusher(service: Weak<super::Service>) {
    let Some(wake) = service.upgrade().map(|s| s.audit.wake.clone()) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            // Asleep until a row is pushed (and now and then, to notice the service is gone); then
            // the rows of the next 250 ms go in one transaction.
            let _ = tokio::time::timeout(Duration::from_secs(30), wake.notified()).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
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

/// The audit event type of a DICOM route (None: not a DICOM route, not audited).
pub(crate) fn operation_name(method: &Method, path: &str) -> Option<&'static str> {
    let mut segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let version = segs.first()?;
    if !(version.starts_with('v') && version[1..].starts_with(|c: char| c.is_ascii_digit())) {
        return None;
    }
    segs.remove(0);
    if segs.first() == Some(&"partitions") {
        if segs.len() <= 2 {
            return Some("Partition");
        }
        segs.drain(..2);
    }
    let m = method.as_str();
    // HEAD, OPTIONS (a CORS preflight) and methods the contract has no route for are no operation:
    // a HEAD logged as a Retrieve would read as a GET the learner never sent.
    if !matches!(m, "GET" | "POST" | "PATCH" | "DELETE") {
        return None;
    }
    let last = *segs.last()?;
    Some(match segs.first().copied()? {
        "studies" | "series" | "instances" => match m {
            "POST" => "Store",
            "DELETE" => "Delete",
            "PATCH" => return None,
            _ if last == "metadata" => "RetrieveMetadata",
            _ if last == "rendered" => "RetrieveRendered",
            _ if segs.len() % 2 == 1 => "Query",
            _ => "Retrieve",
        },
        "changefeed" => "ChangeFeed",
        "extendedquerytags" => match (m, segs.len()) {
            ("POST", _) => "AddExtendedQueryTag",
            ("GET", 1) => "GetAllExtendedQueryTags",
            ("GET", 2) => "GetExtendedQueryTag",
            ("GET", _) => "GetExtendedQueryTagErrors",
            ("PATCH", _) => "UpdateExtendedQueryTag",
            ("DELETE", _) => "RemoveExtendedQueryTag",
            _ => return None,
        },
        "operations" => "Operation",
        _ => return None,
    })
}

fn bounded(s: &str) -> String {
    s.chars().take(MAX_FIELD).collect()
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(bounded)
        .unwrap_or_default()
}

/// The middleware that writes the audit rows of every DICOM request and the sign-in rows of every
/// token request.
pub(crate) async fn record(State(svc): State<SharedService>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.ends_with("/oauth2/token") || path.ends_with("/oauth2/v2.0/token") {
        return record_signin(svc, req, next).await;
    }
    let Some(operation) = operation_name(req.method(), &path) else {
        return next.run(req).await;
    };
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let uri = bounded(&format!(
        "{}{}",
        origin_of(req.headers(), &svc),
        req.uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str())
    ));
    let identity = svc.auth.identity(req.headers());
    let user_agent = user_agent(req.headers());
    // A caller without a token this service signed (none, or a forged one): one small row, and only
    // as many as a person makes — a flood of them costs the log (and the checks that read it)
    // nothing. A learner's own 401s (an expired token) keep their full rows.
    if identity.as_object().is_some_and(serde_json::Map::is_empty) {
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&correlation_id) {
            resp.headers_mut().insert("x-ms-request-id", v);
        }
        if svc.audit.admit_anonymous() {
            svc.audit.push_audit(AuditRow {
                time: OffsetDateTime::now_utc(),
                operation,
                identity,
                status: Some(resp.status().as_u16()),
                result_type: if resp.status().as_u16() < 400 {
                    "Succeeded"
                } else {
                    "Failed"
                },
                correlation_id,
                uri: uri.chars().take(ANONYMOUS_FIELD).collect(),
                user_agent: user_agent.chars().take(ANONYMOUS_FIELD / 2).collect(),
            });
        }
        return resp;
    }
    let started = AuditRow {
        time: OffsetDateTime::now_utc(),
        operation,
        identity: identity.clone(),
        status: None,
        result_type: "Started",
        correlation_id: correlation_id.clone(),
        uri: uri.clone(),
        user_agent: user_agent.clone(),
    };
    svc.audit.push_audit(started);
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        resp.headers_mut().insert("x-ms-request-id", v);
    }
    svc.audit.push_audit(AuditRow {
        time: OffsetDateTime::now_utc(),
        operation,
        identity,
        status: Some(status),
        result_type: if status < 400 { "Succeeded" } else { "Failed" },
        correlation_id,
        uri,
        user_agent,
    });
    resp
}

/// Largest token request or answer read for the sign-in log (they are a few hundred bytes).
const SIGNIN_BODY_LIMIT: usize = 64 * 1024;

async fn record_signin(svc: SharedService, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, SIGNIN_BODY_LIMIT).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The token request is too large.",
        )
            .into_response();
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| bounded(v.trim()))
            .unwrap_or_default()
    };
    // A user's code redemption: the identity endpoint writes its row (to SigninLogs, with the user).
    if field("grant_type") == "authorization_code" {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let app_id = field("client_id");
    let resource = {
        let r = field("resource");
        if r.is_empty() {
            field("scope").trim_end_matches("/.default").to_string()
        } else {
            r
        }
    };
    let user_agent = user_agent(&parts.headers);
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = resp.into_parts();
    let Ok(rbytes) = to_bytes(rbody, SIGNIN_BODY_LIMIT).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let answer: Value = serde_json::from_slice(&rbytes).unwrap_or(Value::Null);
    let (result_type, result_description) = match answer
        .get("error_codes")
        .and_then(|c| c.get(0))
        .and_then(Value::as_u64)
    {
        Some(code) => (
            code.to_string(),
            answer
                .get("error_description")
                .and_then(Value::as_str)
                .and_then(|d| d.lines().next())
                .map(bounded)
                .unwrap_or_default(),
        ),
        None if rparts.status.is_success() => ("0".to_string(), String::new()),
        None => (rparts.status.as_u16().to_string(), String::new()),
    };
    svc.audit.push_signin(SignInRow {
        time: OffsetDateTime::now_utc(),
        app_id,
        result_type,
        result_description,
        resource,
        correlation_id: answer
            .get("correlation_id")
            .and_then(Value::as_str)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
        user_agent,
    });
    Response::from_parts(rparts, Body::from(rbytes))
}

/// `GET /loganalytics/v1/workspaces`: the practice workspace's id and how late its rows arrive (a
/// practice-only route, so dicomlab finds the workspace of a served practice service by itself).
pub(crate) async fn workspaces(State(svc): State<SharedService>) -> Response {
    Json(json!([{
        "id": svc.audit.workspace_id,
        "tables": [AUDIT_TABLE, SIGNIN_TABLE, USER_SIGNIN_TABLE],
        "delaySeconds": svc.audit.delay.as_secs(),
    }]))
    .into_response()
}

/// A Log Analytics error answer.
fn la_error(
    status: StatusCode,
    code: &str,
    message: &str,
    inner: Option<(&str, &str)>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some((c, m)) = inner {
        error["innererror"] = json!({"code": c, "message": m});
    }
    (status, Json(json!({"error": error}))).into_response()
}

/// `POST /loganalytics/v1/workspaces/{id}/query` `{"query": "…", "timespan": "PT1H"}` (and the GET form
/// with `?query=…&timespan=…`): the practice workspace's answer, shaped like the Log Analytics query API's.
pub(crate) async fn query(
    State(svc): State<SharedService>,
    Path(workspace): Path<String>,
    method: Method,
    headers: HeaderMap,
    params: Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = token else {
        return la_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            None,
        );
    };
    let client = match svc.auth.verify_for(&token, LOG_ANALYTICS_RESOURCE) {
        Ok(c) => c,
        Err(why) => {
            return la_error(StatusCode::FORBIDDEN, why.code(), why.message(), None);
        }
    };
    if !svc
        .auth
        .roles_of(&client)
        .contains(&Role::LogAnalyticsReader)
    {
        return la_error(
            StatusCode::FORBIDDEN,
            "InsufficientAccessError",
            &format!(
                "The provided credentials have insufficient access to perform the requested operation: assign \"Log Analytics Reader\" to client {client} (practice service: `dicomlab role grant \"Log Analytics Reader\" --client {client}`)."
            ),
            None,
        );
    }
    if !workspace.eq_ignore_ascii_case(&svc.audit.workspace_id) {
        return la_error(
            StatusCode::NOT_FOUND,
            "PathNotFoundError",
            &format!(
                "The requested path does not exist: no workspace '{workspace}' (this practice service's workspace is {}).",
                svc.audit.workspace_id
            ),
            None,
        );
    }
    let (text, timespan) = if method == Method::POST {
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            return la_error(
                StatusCode::BAD_REQUEST,
                "BadArgumentError",
                "The request had some invalid properties",
                Some((
                    "InvalidJson",
                    "The body must be JSON: {\"query\": \"…\", \"timespan\": \"PT1H\"}.",
                )),
            );
        };
        (
            v.get("query").and_then(Value::as_str).map(str::to_string),
            v.get("timespan")
                .and_then(Value::as_str)
                .map(str::to_string),
        )
    } else {
        let get = |k: &str| {
            params
                .0
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        (get("query"), get("timespan"))
    };
    let Some(text) = text else {
        return la_error(
            StatusCode::BAD_REQUEST,
            "BadArgumentError",
            "The request had some invalid properties",
            Some((
                "MissingQuery",
                "The query is missing: send {\"query\": \"AHDSDicomAuditLogs | take 10\"}.",
            )),
        );
    };
    let now = OffsetDateTime::now_utc();
    let q = match kql::parse(&text, now) {
        Ok(q) => q,
        Err(e) => {
            return la_error(
                StatusCode::BAD_REQUEST,
                "BadArgumentError",
                "The request had some invalid properties",
                Some(("SyntaxError", &e.to_string())),
            );
        }
    };
    let window = match timespan.as_deref().map(|t| kql::parse_timespan(t, now)) {
        Some(None) => {
            return la_error(
                StatusCode::BAD_REQUEST,
                "BadArgumentError",
                "The request had some invalid properties",
                Some((
                    "InvalidTimespan",
                    "timespan is an ISO 8601 duration (PT1H) or start/end.",
                )),
            );
        }
        Some(Some(w)) => Some(w),
        None => None,
    };
    let since = [q.lower_bound("TimeGenerated"), window.map(|w| w.0)]
        .into_iter()
        .flatten()
        .max();
    let table_name = q.table.clone();
    let s2 = svc.clone();
    let q2 = q.clone();
    let read = tokio::task::spawn_blocking(move || {
        s2.audit.flush(&s2.db)?;
        // Each page: the timespan, then the query's leading filters; a query stops reading once it
        // has the rows it returns.
        s2.audit
            .read(&s2.db, &table_name, since, q2.plan(), |page| {
                if let Some((start, end)) = window
                    && let Some(i) = page.columns.iter().position(|c| c.name == "TimeGenerated")
                {
                    page.rows
                        .retain(|r| matches!(&r[i], Cell::Time(t) if *t >= start && *t <= end));
                }
                q2.prefilter(page)
            })
    })
    .await;
    let table = match read {
        Ok(Ok(Some(Ok(t)))) => t,
        Ok(Ok(Some(Err(e)))) => {
            return la_error(
                StatusCode::BAD_REQUEST,
                "BadArgumentError",
                "The request had some invalid properties",
                Some(("SemanticError", &e.to_string())),
            );
        }
        Ok(Ok(None)) => {
            return la_error(
                StatusCode::BAD_REQUEST,
                "BadArgumentError",
                "The request had some invalid properties",
                Some((
                    "SemanticError",
                    &format!(
                        "'{}' could not be resolved: the practice workspace has the tables {AUDIT_TABLE} and {SIGNIN_TABLE}.",
                        q.table
                    ),
                )),
            );
        }
        Ok(Err(e)) => {
            tracing::error!("audit log read: {e}");
            return la_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The practice workspace could not be read.",
                None,
            );
        }
        Err(e) => {
            tracing::error!("audit log task: {e}");
            return la_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The practice workspace could not be read.",
                None,
            );
        }
    };
    let result = match q.run(table) {
        Ok(t) => t,
        Err(e) => {
            return la_error(
                StatusCode::BAD_REQUEST,
                "BadArgumentError",
                "The request had some invalid properties",
                Some(("SemanticError", &e.to_string())),
            );
        }
    };
    let columns: Vec<Value> = result
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.ty}))
        .collect();
    let rows: Vec<Value> = result
        .rows
        .iter()
        .map(|r| Value::Array(r.iter().map(Cell::to_json).collect()))
        .collect();
    Json(json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_follow_the_routes() {
        let get = Method::GET;
        assert_eq!(operation_name(&Method::POST, "/v1/studies"), Some("Store"));
        assert_eq!(operation_name(&get, "/v1/studies"), Some("Query"));
        assert_eq!(operation_name(&get, "/v1/studies/1.2"), Some("Retrieve"));
        assert_eq!(
            operation_name(&get, "/v1/studies/1.2/series"),
            Some("Query")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1.2/series/3"),
            Some("Retrieve")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1.2/series/3/instances"),
            Some("Query")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1/series/3/instances/4/frames/1"),
            Some("Retrieve")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1/metadata"),
            Some("RetrieveMetadata")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1/series/3/instances/4/rendered"),
            Some("RetrieveRendered")
        );
        assert_eq!(
            operation_name(&Method::DELETE, "/v1/studies/1"),
            Some("Delete")
        );
        assert_eq!(
            operation_name(&get, "/v2/changefeed/latest"),
            Some("ChangeFeed")
        );
        assert_eq!(
            operation_name(&Method::POST, "/v1/extendedquerytags"),
            Some("AddExtendedQueryTag")
        );
        assert_eq!(
            operation_name(&get, "/v1/extendedquerytags/PatientSex/errors"),
            Some("GetExtendedQueryTagErrors")
        );
        assert_eq!(
            operation_name(&Method::PATCH, "/v1/extendedquerytags/PatientSex"),
            Some("UpdateExtendedQueryTag")
        );
        assert_eq!(
            operation_name(&get, "/v1/operations/abc"),
            Some("Operation")
        );
        assert_eq!(
            operation_name(&get, "/v1/partitions/p1/studies"),
            Some("Query")
        );
        assert_eq!(operation_name(&get, "/health/check"), None);
        assert_eq!(operation_name(&Method::PUT, "/admin/roles/x/y"), None);
        assert_eq!(operation_name(&Method::HEAD, "/v1/studies/1.2"), None);
        assert_eq!(operation_name(&Method::OPTIONS, "/v1/studies"), None);
        assert_eq!(operation_name(&Method::PUT, "/v1/studies/1.2"), None);
        assert_eq!(operation_name(&get, "/studies"), None);
    }
}
