//! Reading the audit log and the sign-in logs (Log Analytics): the queries dicomlab sends for the
//! learner's rows, and the rows as the learner's attempts.

use super::own::leave_out_own;
use super::{Attempt, Learner, Principal, Source, rfc3339, tool_of};
use dicomlab_dicomweb::client::CHECK_MARK;
use dicomlab_dicomweb::ledger::OwnRequest;
use dicomlab_dicomweb::{LogError, LogReader, LogTable, eq_ci};
use serde_json::Value;
use time::OffsetDateTime;

/// The product part of the checks' User-Agent (`dicomlab-check/<version>`).
const CHECK_AGENT: &str = "dicomlab-check/";
/// The Log Analytics API's app id: a sign-in row's ResourceIdentity for a token to read the logs.
const LOG_ANALYTICS_APP_ID: &str = "ca7f3f0b-7d91-482c-8e09-c8ec3fa6a22d";

impl Learner {
    /// The ids that may go into a query: GUID-like text only (a value from a config file or a token
    /// never becomes query syntax).
    fn query_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .ids
            .iter()
            .map(String::as_str)
            .filter(|i| {
                (3..=64).contains(&i.len())
                    && i.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// The query dicomlab sends: the newest completed requests since `since` (Started rows carry no
/// status) that name the learner or no caller at all; older ones have credited their steps
/// already, in progress. Filtered in the workspace: on a shared service the newest rows of
/// everyone would crowd the learner's out.
pub(crate) fn audit_query(since: Option<OffsetDateTime>, learner: &Learner) -> String {
    audit_query_of(since, learner, 20_000)
}

fn audit_query_of(since: Option<OffsetDateTime>, learner: &Learner, take: usize) -> String {
    let since = since.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let ids = learner.query_ids();
    let who = if ids.is_empty() {
        String::new()
    } else {
        // Anywhere in the identity: Azure's claim names vary (appid, azp, oid, URIs).
        let mut any: Vec<String> = ids
            .iter()
            .map(|i| format!("tostring(Identity) contains \"{i}\""))
            .collect();
        if !learner.shared {
            any.push("tostring(Identity) !has \"claims\"".into());
        }
        format!(" | where {}", any.join(" or "))
    };
    format!(
        "AHDSDicomAuditLogs | where TimeGenerated >= datetime({}) and ResultType != \"Started\"{who} | order by TimeGenerated desc | take {take}",
        rfc3339(since)
    )
}

/// Everyone's stores since `since`: who else stored the lab's instances (a small query beside the
/// learner's).
fn stores_query(since: Option<OffsetDateTime>) -> String {
    let since = since.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "AHDSDicomAuditLogs | where TimeGenerated >= datetime({}) and ResultType != \"Started\" and OperationName contains \"store\" | order by TimeGenerated desc | take 2000",
        rfc3339(since)
    )
}

fn signin_query(since: Option<OffsetDateTime>, learner: &Learner) -> String {
    signin_table_query("AADServicePrincipalSignInLogs", since, learner)
}

fn signin_table_query(table: &str, since: Option<OffsetDateTime>, learner: &Learner) -> String {
    signin_table_query_of(table, since, learner, 2000)
}

fn signin_table_query_of(
    table: &str,
    since: Option<OffsetDateTime>,
    learner: &Learner,
    take: usize,
) -> String {
    let since = since.unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let ids = learner.query_ids();
    let who = if ids.is_empty() {
        String::new()
    } else {
        let any: Vec<String> = ids.iter().map(|i| format!("AppId =~ \"{i}\"")).collect();
        format!(" | where {}", any.join(" or "))
    };
    format!(
        "{table} | where TimeGenerated >= datetime({}){who} | order by TimeGenerated desc | take {take}",
        rfc3339(since)
    )
}

/// The learner's and the others' attempts from the audit and sign-in logs, and whether rows name
/// their caller.
///
/// The checks' own requests are left out by their User-Agent where a table keeps it (the practice
/// service's), else by the ledger of what they sent (`own`: Azure's tables keep no User-Agent).
pub(super) async fn read_audit(
    reader: &LogReader,
    learner: &Learner,
    since: Option<OffsetDateTime>,
    own: &[OwnRequest],
) -> Result<(Vec<Attempt>, Vec<Attempt>, bool), LogError> {
    let keeps_agent = |t: &LogTable| t.index("UserAgent").is_some();
    let table = reader.query(&audit_query(since, learner), None).await?;
    let (mut mine, mut others) = (Vec::new(), Vec::new());
    let mut named = false;
    for row in &table.rows {
        let Some(a) = audit_attempt(&table, row) else {
            continue;
        };
        match learner.is(&table.dynamic(row, "Identity")) {
            Some(true) => {
                named = true;
                mine.push(a);
            }
            Some(false) => {
                named = true;
                others.push(a);
            }
            // A row that names no caller: the learner's on a service of their own; on a shared
            // one it could be anyone's, so nobody's.
            None if learner.shared => {}
            None => mine.push(a),
        }
    }
    if !keeps_agent(&table) {
        leave_out_own(&mut mine, own);
    }
    // The main query holds the learner's rows only: others' stores, to say who stored what.
    if !learner.query_ids().is_empty() {
        let t = reader.query(&stores_query(since), None).await?;
        for row in &t.rows {
            if learner.is(&t.dynamic(row, "Identity")) == Some(false)
                && let Some(a) = audit_attempt(&t, row)
            {
                named = true;
                others.push(a);
            }
        }
    }
    // The sign-in log is optional on Azure (a tenant exports it, or not).
    match reader.query(&signin_query(since, learner), None).await {
        Ok(t) => {
            let mut rows = Vec::new();
            for row in &t.rows {
                if let Some(a) = signin_attempt(&t, row) {
                    let app = t.text(row, "AppId").unwrap_or_default();
                    if learner.ids.iter().any(|i| i.eq_ignore_ascii_case(&app)) {
                        rows.push(a);
                    }
                }
            }
            if !keeps_agent(&t) {
                leave_out_own(&mut rows, own);
            }
            mine.extend(rows);
        }
        Err(e) if e.no_such_table() => {}
        Err(e) => tracing::info!("the sign-in log could not be read: {e}"),
    }
    // Users' sign-ins through the learner's app (Azure exports SigninLogs when the tenant sends it).
    match reader
        .query(&signin_table_query("SigninLogs", since, learner), None)
        .await
    {
        Ok(t) => {
            for row in &t.rows {
                let app = t.text(row, "AppId").unwrap_or_default();
                if learner.ids.iter().any(|i| i.eq_ignore_ascii_case(&app))
                    && let Some(a) = user_signin_attempt(&t, row)
                {
                    mine.push(a);
                }
            }
        }
        Err(e) if e.no_such_table() => {}
        Err(e) => tracing::info!("the user sign-in log could not be read: {e}"),
    }
    Ok((mine, others, named))
}

/// Rows a watch reads per table and look: the newest few are enough to see that something happened.
const WATCH_ROWS: usize = 50;

/// The time of the newest row of the learner's in the audit and sign-in logs at or after `since`,
/// the checks' own left out (by User-Agent, else by `own`): what a watch compares between looks.
/// Two small queries, filtered in the workspace.
pub async fn newest_learner_row(
    reader: &LogReader,
    learner: &Learner,
    since: Option<OffsetDateTime>,
    own: &[OwnRequest],
) -> Result<Option<OffsetDateTime>, LogError> {
    let keeps_agent = |t: &LogTable| t.index("UserAgent").is_some();
    let t = reader
        .query(&audit_query_of(since, learner, WATCH_ROWS), None)
        .await?;
    let mut mine: Vec<Attempt> = t
        .rows
        .iter()
        // As the checks read them: a row that names no caller is the learner's on a service of
        // their own.
        .filter(|row| {
            learner
                .is(&t.dynamic(row, "Identity"))
                .unwrap_or(!learner.shared)
        })
        .filter_map(|row| audit_attempt(&t, row))
        .collect();
    if !keeps_agent(&t) {
        leave_out_own(&mut mine, own);
    }
    match reader
        .query(
            &signin_table_query_of("AADServicePrincipalSignInLogs", since, learner, WATCH_ROWS),
            None,
        )
        .await
    {
        Ok(t) => {
            let mut rows: Vec<Attempt> = t
                .rows
                .iter()
                .filter(|row| {
                    let app = t.text(row, "AppId").unwrap_or_default();
                    learner.ids.iter().any(|i| i.eq_ignore_ascii_case(&app))
                })
                .filter_map(|row| signin_attempt(&t, row))
                .collect();
            if !keeps_agent(&t) {
                leave_out_own(&mut rows, own);
            }
            mine.extend(rows);
        }
        Err(e) if e.no_such_table() => {}
        Err(e) => return Err(e),
    }
    Ok(mine.iter().filter_map(Attempt::time).max())
}

/// An audit row as an attempt; None for a start row or one of the checks' own requests.
pub fn audit_attempt(t: &LogTable, row: &[Value]) -> Option<Attempt> {
    let result = t.text(row, "ResultType").unwrap_or_default();
    if eq_ci(&result, "Started") {
        return None;
    }
    let uri = t.text(row, "Uri").unwrap_or_default();
    let ua = t.text(row, "UserAgent").unwrap_or_default();
    if uri.contains(CHECK_MARK) || ua.starts_with(CHECK_AGENT) {
        return None;
    }
    let status = t
        .text(row, "StatusCode")
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(0);
    let op = t.text(row, "OperationName").unwrap_or_default();
    Some(Attempt {
        at: time_generated(t, row),
        method: method_of(&op, &uri).to_string(),
        url: uri,
        status,
        source: Source::AuditLog,
        tool: tool_of(&ua),
        detail: None,
        parsed: Default::default(),
        principal: Principal::of_identity(&t.dynamic(row, "Identity")),
    })
}

/// A row's `TimeGenerated`, read once here (None: the row has no time).
fn time_generated(t: &LogTable, row: &[Value]) -> Option<OffsetDateTime> {
    t.text(row, "TimeGenerated")
        .as_deref()
        .and_then(dicomlab_dicomweb::parse_timestamp)
}

/// A sign-in row's error: `AADSTS<code>: <description>`.
fn aadsts(t: &LogTable, row: &[Value], result: &str) -> String {
    let d = t.text(row, "ResultDescription").unwrap_or_default();
    if d.starts_with("AADSTS") {
        d
    } else {
        format!("AADSTS{result}: {d}")
    }
}

/// A user's sign-in row (`SigninLogs`) as an attempt at the authorization endpoint.
fn user_signin_attempt(t: &LogTable, row: &[Value]) -> Option<Attempt> {
    let ua = t.text(row, "UserAgent").unwrap_or_default();
    let result = t.text(row, "ResultType").unwrap_or_default();
    let ok = result.trim() == "0";
    let user = t.text(row, "UserPrincipalName").unwrap_or_default();
    Some(Attempt {
        at: time_generated(t, row),
        method: "GET".into(),
        url: "/oauth2/v2.0/authorize".into(),
        status: if ok { 200 } else { 400 },
        source: Source::AuditLog,
        tool: tool_of(&ua),
        detail: (!ok).then(|| aadsts(t, row, &result)),
        parsed: Default::default(),
        principal: Some(Principal::User {
            name: if user.is_empty() {
                "a user".into()
            } else {
                dicomlab_dicom::text::visible(&user)
                    .chars()
                    .take(120)
                    .collect()
            },
        }),
    })
}

fn signin_attempt(t: &LogTable, row: &[Value]) -> Option<Attempt> {
    let ua = t.text(row, "UserAgent").unwrap_or_default();
    if ua.starts_with(CHECK_AGENT) {
        return None;
    }
    let resource = t.text(row, "ResourceIdentity").unwrap_or_default();
    // Only tokens for the DICOM service count (dicomlab's own log reads ask for Log Analytics',
    // named by its URL or, on Azure, by its app id).
    if resource.contains("loganalytics")
        || dicomlab_dicomweb::same_guid(resource.trim(), LOG_ANALYTICS_APP_ID)
    {
        return None;
    }
    let result = t.text(row, "ResultType").unwrap_or_default();
    let ok = result.trim() == "0";
    Some(Attempt {
        at: time_generated(t, row),
        method: "POST".into(),
        url: "/oauth2/token".into(),
        status: if ok { 200 } else { 400 },
        source: Source::AuditLog,
        tool: tool_of(&ua),
        detail: (!ok).then(|| aadsts(t, row, &result)),
        parsed: Default::default(),
        principal: Some(Principal::App),
    })
}

/// The HTTP method of an audited operation (the audit log records the operation, not the method).
pub(crate) fn method_of(operation: &str, uri: &str) -> &'static str {
    let op = operation.to_ascii_lowercase().replace(['-', '_', ' '], "");
    if op.contains("store") || op.starts_with("add") || op.contains("addextendedquerytag") {
        "POST"
    } else if op.contains("delete") || op.contains("remove") {
        "DELETE"
    } else if op.contains("update") {
        if uri.contains("extendedquerytags") {
            "PATCH"
        } else {
            "POST"
        }
    } else {
        "GET"
    }
}
