//! What a ✓ rests on. A step is done when the service's own records show that the learner's client did
//! it — with dicomlab, Postman, curl or Python — or when the learner did it inside dicomlab. Evidence,
//! strongest first:
//!
//! 1. [`Source::ChangeFeed`]: the service's history of writes (Create / Delete entries).
//! 2. [`Source::AuditLog`]: the service's audit log (Azure: `AHDSDicomAuditLogs` in Log Analytics; the
//!    practice service keeps the same), and the sign-in log for tokens.
//! 3. [`Source::ServiceState`]: what the service holds now as the result of the learner's write (the tag
//!    list, a role assignment, the service itself, a generic server's stored data).
//! 4. [`Source::Dicomlab`]: dicomlab's own exchange, done by the learner inside dicomlab.
//! 5. [`Source::Answer`]: a question only the result answers, checked against the service.
//! 6. [`Source::Local`]: the learner's own configuration.
//!
//! "The service would answer this now" is never evidence: a check shows it as *ready*.
//!
//! [`Records`] gathers the records once per check run: the learner's attempts (audit rows, sign-in rows,
//! dicomlab's exchanges), other clients' attempts (to say "stored by someone else"), the change feed and
//! the tag list. Records of the checks' own requests are left out (see `DicomWebClient::checking`).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use dicomlab_dicomweb::client::CHECK_MARK;
use dicomlab_dicomweb::ledger::{OwnRequest, route_key};

/// The product part of the checks' User-Agent (`dicomlab-check/<version>`).
const CHECK_AGENT: &str = "dicomlab-check/";
use dicomlab_dicomweb::{
    Answer, ClientError, DicomWebClient, LogError, LogReader, LogTable, eq_ci, get_ci,
    parse_timestamp,
};

/// A read that did not work: the answer it got, or a failure to reach the service.
enum ReadError {
    Answer(Box<Answer>),
    Client(ClientError),
}

impl From<ClientError> for ReadError {
    fn from(e: ClientError) -> Self {
        ReadError::Client(e)
    }
}

/// Where a verdict comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    ChangeFeed,
    AuditLog,
    ServiceState,
    Dicomlab,
    Answer,
    Local,
}

impl Source {
    /// Whether it rests on the service's records (the alternative: on the learner's own machine).
    pub fn on_service(self) -> bool {
        matches!(
            self,
            Source::ChangeFeed | Source::AuditLog | Source::ServiceState
        )
    }

    /// How reports and screens name it.
    pub fn label(self) -> &'static str {
        match self {
            Source::ChangeFeed => "change feed",
            Source::AuditLog => "audit log",
            Source::ServiceState => "service state",
            Source::Dicomlab => "done in dicomlab",
            Source::Answer => "answered question",
            Source::Local => "your configuration",
        }
    }
}

/// What a pass rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub source: Source,
    /// What the record shows, in a sentence.
    pub summary: String,
    /// When the learner did it, as the record says (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// What it is about, for the steps after it (the learner's extended query tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Evidence {
    pub fn new(source: Source, summary: impl Into<String>, at: Option<OffsetDateTime>) -> Evidence {
        Evidence {
            source,
            summary: summary.into(),
            at: at.map(rfc3339),
            subject: None,
        }
    }

    /// The same evidence, about `subject`.
    pub fn about(mut self, subject: impl Into<String>) -> Evidence {
        self.subject = Some(subject.into());
        self
    }
}

/// Who made a request: the app itself (client credentials: what dicomlab, Postman, curl and Python
/// use in the lab), or a user signed in through the app (a delegated token: a browser app such as the
/// OHIF viewer). An audit row tells them apart by its caller's claims (`scp`, `upn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    App,
    User {
        /// The user's name (UPN), or object id.
        name: String,
    },
}

impl Principal {
    /// The principal of an audit row's `Identity` (None: the row does not say).
    pub fn of_identity(identity: &Value) -> Option<Principal> {
        let claims = identity.get("claims").unwrap_or(identity);
        let text = |k: &str| {
            get_ci(claims, k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        if text("scp").is_some() || text("upn").is_some() || text("unique_name").is_some() {
            let name = text("upn")
                .or(text("unique_name"))
                .or(text("preferred_username"))
                .or(text("oid"))
                .unwrap_or("a user");
            return Some(Principal::User {
                name: dicomlab_dicom::text::visible(name)
                    .chars()
                    .take(120)
                    .collect(),
            });
        }
        (text("appid").is_some() || text("azp").is_some()).then_some(Principal::App)
    }

    /// The user's name, for a user.
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::User { name } => Some(name),
            Principal::App => None,
        }
    }
}

/// A request the learner's client made, as a record shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// RFC 3339, UTC.
    pub at: String,
    pub method: String,
    /// The request's URI (or path).
    pub url: String,
    /// The HTTP status (0: no answer).
    pub status: u16,
    pub source: Source,
    /// The tool that sent it, when the record says (`Postman`, `curl`, `Python`, `dicomlab`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What else the record says (a token request's AADSTS error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Its route, parsed once (checks match many patterns against many attempts).
    #[serde(skip)]
    pub parsed: std::sync::OnceLock<Option<super::request::Route>>,
    /// Who made it, when the record says: the app, or a user signed in through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
}

impl Attempt {
    /// Its route under the base URL (parsed once).
    pub fn route(&self) -> Option<&super::request::Route> {
        self.parsed
            .get_or_init(|| super::request::route_of(&self.url))
            .as_ref()
    }

    /// Whether it is the request `p` names.
    pub fn is(&self, p: &super::request::RequestPattern) -> bool {
        self.route()
            .is_some_and(|r| p.matches_route(&self.method, r))
    }

    /// Whether it is an attempt at the request `p` names (the same route, other values).
    pub fn tries(&self, p: &super::request::RequestPattern) -> bool {
        self.route()
            .is_some_and(|r| p.loosely_matches_route(&self.method, r))
    }

    pub fn time(&self) -> Option<OffsetDateTime> {
        parse_timestamp(&self.at)
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `POST /v1/studies`: the method and path (with query) of the request.
    pub fn line(&self) -> String {
        let path = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, rest)| {
                rest.find('/').map_or("/", |i| &rest[i..])
            });
        format!("{} {}", self.method, dicomlab_dicom::text::visible(path))
    }

    /// A token request (the sign-in log, or dicomlab's own).
    pub fn is_token_request(&self) -> bool {
        self.url.contains("/oauth2/")
    }

    /// Made by a user signed in through the app (not by the app itself).
    pub fn by_user(&self) -> bool {
        matches!(self.principal, Some(Principal::User { .. }))
    }

    /// A user's sign-in (the user sign-in log), successful or refused.
    pub fn is_user_sign_in(&self) -> bool {
        self.by_user() && self.url.contains("/oauth2/v2.0/authorize")
    }

    /// An attempt from one of dicomlab's exchanges (the learner's action inside dicomlab).
    pub fn from_exchange(e: &dicomlab_dicomweb::Exchange) -> Option<Attempt> {
        if e.by_check {
            return None;
        }
        // A request sent without credentials on purpose ("does the service answer?") and answered
        // 401 is the answer it wanted: no failed attempt of the token or any other step.
        let anonymous = !e
            .request_headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if anonymous && e.status == Some(401) {
            return None;
        }
        Some(Attempt {
            at: if e.at.is_empty() {
                rfc3339(OffsetDateTime::now_utc())
            } else {
                e.at.clone()
            },
            method: e.method.clone(),
            url: e.url.clone(),
            status: e.status.unwrap_or(0),
            source: Source::Dicomlab,
            tool: Some("dicomlab".into()),
            detail: e.error.clone(),
            parsed: Default::default(),
            principal: Some(Principal::App),
        })
    }
}

/// The name of the tool in a User-Agent.
pub fn tool_of(user_agent: &str) -> Option<String> {
    let ua = user_agent.to_ascii_lowercase();
    let t = if ua.is_empty() {
        return None;
    } else if ua.starts_with("postmanruntime") {
        "Postman"
    } else if ua.starts_with("curl") {
        "curl"
    } else if ua.contains("python") || ua.contains("dicomweb-client") {
        "Python"
    } else if ua.starts_with("dicomlab") {
        "dicomlab"
    } else if ua.contains("mozilla") {
        "a browser"
    } else if ua.contains("powershell") {
        "PowerShell"
    } else {
        return Some(
            dicomlab_dicom::text::visible(user_agent.split('/').next().unwrap_or(user_agent))
                .chars()
                .take(24)
                .collect(),
        );
    };
    Some(t.into())
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.checked_to_offset(time::UtcOffset::UTC)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One change-feed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub sequence: u64,
    pub action: String,
    pub study: String,
    pub series: String,
    pub sop: String,
    pub timestamp: Option<OffsetDateTime>,
}

/// One extended query tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    pub path: String,
    pub status: String,
    pub query_status: String,
    pub operation: Option<String>,
}

/// Whether the audit log could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditState {
    /// No workspace in the profile (or a generic server).
    NotConfigured,
    /// Read; rows arrive `delay_secs` late at most (Azure: minutes).
    Read { delay_secs: u64 },
    /// Configured, but the query failed: why.
    Failed(String),
}

/// The records a check run reads, gathered once.
#[derive(Debug, Clone)]
pub struct Records {
    /// The learner's attempts (audit rows, sign-in rows, dicomlab's exchanges), oldest first.
    pub attempts: Vec<Attempt>,
    /// Other clients' attempts (from the audit log).
    pub others: Vec<Attempt>,
    pub audit: AuditState,
    /// Whether audit rows name their caller (Azure documents that DICOM's may not).
    pub audit_names_caller: bool,
    /// The change feed (None: the server has none); from the oldest entry.
    pub feed: Option<Vec<FeedEntry>>,
    /// Why the change feed could not be read: the answer it gave.
    pub feed_error: Option<Box<Answer>>,
    /// The extended query tags (None: the server has none).
    pub tags: Option<Vec<TagEntry>>,
    pub tags_error: Option<Box<Answer>>,
}

impl Records {
    /// Records with nothing in them (a check that needs none).
    pub fn empty() -> Records {
        Records {
            attempts: Vec::new(),
            others: Vec::new(),
            audit: AuditState::NotConfigured,
            audit_names_caller: false,
            feed: None,
            feed_error: None,
            tags: None,
            tags_error: None,
        }
    }

    /// The learner's attempts since `since`, audit rows before dicomlab's (the stronger record first),
    /// each group oldest first.
    pub fn attempts_since(&self, since: Option<OffsetDateTime>) -> Vec<&Attempt> {
        let mut v: Vec<&Attempt> = self
            .attempts
            .iter()
            .filter(|a| since.is_none_or(|s| a.time().is_none_or(|t| t >= s)))
            .collect();
        v.sort_by_key(|a| (a.source != Source::AuditLog, a.time()));
        v
    }

    /// Whether the audit log was read.
    pub fn audit_read(&self) -> bool {
        matches!(self.audit, AuditState::Read { .. })
    }
}

/// What to gather.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub audit: bool,
    pub feed: bool,
    pub tags: bool,
}

/// Who the learner is in the records: the app's client id, and the object id its tokens carry.
#[derive(Debug, Clone, Default)]
pub struct Learner {
    pub ids: HashSet<String>,
    /// The service is shared: a row that names no caller is nobody's (on a service of the
    /// learner's own it is theirs).
    pub shared: bool,
}

impl Learner {
    fn is(&self, identity: &Value) -> Option<bool> {
        let claims = identity.get("claims").unwrap_or(identity);
        let named: Vec<&str> = ["appid", "azp", "oid", "appId", "clientId"]
            .iter()
            .filter_map(|k| get_ci(claims, k).and_then(Value::as_str))
            .collect();
        if named.is_empty() {
            return None;
        }
        Some(
            named
                .iter()
                .any(|n| self.ids.iter().any(|i| i.eq_ignore_ascii_case(n))),
        )
    }
}

/// Most change-feed entries read in one check run.
const MAX_FEED: usize = 50_000;
/// Most change-feed pages read for one check (100 entries or sequences each).
const MAX_FEED_PAGES: usize = MAX_FEED / 100 + 10;

/// Where the learner's attempts are read from.
pub struct Sources<'a> {
    /// The audit log's reader, when the target has one.
    pub log: Option<&'a LogReader>,
    /// How late its rows may arrive, in seconds.
    pub delay_secs: u64,
    pub learner: &'a Learner,
    /// dicomlab's own exchanges for the learner, saved in progress.
    pub did: &'a [Attempt],
    /// The checks' own requests: their rows are left out.
    pub own: &'a [OwnRequest],
}

impl<'a> Sources<'a> {
    /// No log, no saved attempts.
    pub fn none(learner: &'a Learner) -> Sources<'a> {
        Sources {
            log: None,
            delay_secs: 0,
            learner,
            did: &[],
            own: &[],
        }
    }
}

/// Gathers what `needs` asks for.
pub async fn gather(
    client: &DicomWebClient,
    from: Sources<'_>,
    since: Option<OffsetDateTime>,
    needs: Needs,
) -> Result<Records, ClientError> {
    let mut r = Records::empty();
    r.attempts.extend(from.did.iter().cloned());
    if needs.audit {
        match from.log {
            None => {}
            // The log is another service (on Azure another host): its failure never blocks the checks.
            Some(reader) => match read_audit(reader, from.learner, since, from.own).await {
                Ok((mine, others, named)) => {
                    r.attempts.extend(mine);
                    r.others = others;
                    r.audit_names_caller = named;
                    r.audit = AuditState::Read {
                        delay_secs: from.delay_secs,
                    };
                }
                Err(LogError::Client(e)) => {
                    r.audit = AuditState::Failed(super::diagnose::diagnose_error(&e));
                }
                Err(e) => r.audit = AuditState::Failed(e.to_string()),
            },
        }
    }
    r.attempts.sort_by_key(Attempt::time);
    if needs.feed {
        match read_feed(client).await {
            Ok(f) => r.feed = f,
            Err(ReadError::Client(e)) => return Err(e),
            Err(ReadError::Answer(a)) => r.feed_error = Some(a),
        }
    }
    if needs.tags {
        match read_tags(client).await {
            Ok(t) => r.tags = t,
            Err(ReadError::Client(e)) => return Err(e),
            Err(ReadError::Answer(a)) => r.tags_error = Some(a),
        }
    }
    Ok(r)
}

/// The Log Analytics API's app id: a sign-in row's ResourceIdentity for a token to read the logs.
const LOG_ANALYTICS_APP_ID: &str = "ca7f3f0b-7d91-482c-8e09-c8ec3fa6a22d";

/// How far apart a check's request and its audit row may be (the row is written when it ends).
const OWN_WINDOW_SECS: i64 = 120;

/// Takes out of `attempts` the log rows of the checks' own requests: each request matches at most
/// one row, of the same method and route, within [`OWN_WINDOW_SECS`] after it was sent.
fn leave_out_own(attempts: &mut Vec<Attempt>, own: &[OwnRequest]) {
    if own.is_empty() {
        return;
    }
    // Per route, the rows with a time, in time order: each request looks only at its window.
    let mut by_route: HashMap<(String, String), Vec<(OffsetDateTime, usize)>> = HashMap::new();
    for (i, a) in attempts.iter().enumerate() {
        if a.source == Source::AuditLog
            && let Some(t) = a.time()
        {
            by_route
                .entry((a.method.to_ascii_uppercase(), route_key(&a.url)))
                .or_default()
                .push((t, i));
        }
    }
    for rows in by_route.values_mut() {
        rows.sort_unstable();
    }
    let mut drop = vec![false; attempts.len()];
    for o in own {
        let Some(sent) = parse_timestamp(&o.at) else {
            continue;
        };
        let Some(rows) = by_route.get(&(o.method.clone(), o.path.clone())) else {
            continue;
        };
        let (Some(lo), Some(hi)) = (
            sent.checked_sub(time::Duration::seconds(5)),
            sent.checked_add(time::Duration::seconds(OWN_WINDOW_SECS)),
        ) else {
            continue;
        };
        let start = rows.partition_point(|(t, _)| *t < lo);
        // The nearest row in the window not yet matched.
        let best = rows[start..]
            .iter()
            .take_while(|(t, _)| *t <= hi)
            .filter(|(_, i)| !drop[*i])
            .min_by_key(|(t, _)| (*t - sent).abs());
        if let Some((_, i)) = best {
            drop[*i] = true;
        }
    }
    let mut i = 0;
    attempts.retain(|_| {
        let keep = !drop[i];
        i += 1;
        keep
    });
}

/// A failure to reach the service at all (the checks then say "blocked by …" once).
pub fn is_transport(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Dns { .. }
            | ClientError::Connect { .. }
            | ClientError::Tls { .. }
            | ClientError::Timeout { .. }
            | ClientError::Token(_)
    )
}

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
pub fn audit_query(since: Option<OffsetDateTime>, learner: &Learner) -> String {
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
async fn read_audit(
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
        at: t.text(row, "TimeGenerated").unwrap_or_default(),
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
        at: t.text(row, "TimeGenerated").unwrap_or_default(),
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
        at: t.text(row, "TimeGenerated").unwrap_or_default(),
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
pub fn method_of(operation: &str, uri: &str) -> &'static str {
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

/// Reads the whole change feed (v1 by sequence windows, v2 by rows), oldest first. None: no change feed.
async fn read_feed(client: &DicomWebClient) -> Result<Option<Vec<FeedEntry>>, ReadError> {
    let latest = client.change_feed_latest().await?;
    if latest.status == 404 {
        return Ok(None);
    }
    if latest.status == 204 {
        return Ok(Some(Vec::new()));
    }
    if !latest.ok() {
        return Err(ReadError::Answer(Box::new(latest)));
    }
    let last = latest
        .json()
        .and_then(|v| get_ci(&v, "sequence").and_then(Value::as_u64))
        .unwrap_or(0);
    let v2 = client.base_url().is_v2();
    let mut out = Vec::new();
    let limit = 100u32;
    // v1's offset is a sequence cursor: start at the newest MAX_FEED sequences (what the lab's steps
    // look for is recent). v2's is a count of rows to skip, from the oldest.
    let mut offset = if v2 {
        0
    } else {
        last.saturating_sub(MAX_FEED as u64)
    };
    for _ in 0..MAX_FEED_PAGES {
        let a = client.change_feed(offset, limit, false).await?;
        if !a.ok() {
            return Err(ReadError::Answer(Box::new(a)));
        }
        let page = a
            .json()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        for e in &page {
            let s = |k: &str| {
                get_ci(e, k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            out.push(FeedEntry {
                sequence: get_ci(e, "sequence").and_then(Value::as_u64).unwrap_or(0),
                action: s("action"),
                study: s("studyInstanceUid"),
                series: s("seriesInstanceUid"),
                sop: s("sopInstanceUid"),
                timestamp: parse_timestamp(&s("timestamp")),
            });
        }
        if out.len() >= MAX_FEED {
            break;
        }
        if v2 {
            offset += page.len() as u64;
            if page.is_empty() || page.len() < limit as usize {
                break;
            }
        } else {
            let max = page
                .iter()
                .filter_map(|e| get_ci(e, "sequence").and_then(Value::as_u64))
                .max();
            // A cursor that does not move ahead (a page of older or no sequences) moves by the
            // window instead: the loop always ends.
            offset = match max {
                Some(m) if m > offset => m,
                _ => offset.saturating_add(u64::from(limit)),
            };
            if offset >= last {
                break;
            }
        }
    }
    out.sort_by_key(|e| e.sequence);
    Ok(Some(out))
}

/// Reads the extended query tags. None: the server has none.
async fn read_tags(client: &DicomWebClient) -> Result<Option<Vec<TagEntry>>, ReadError> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let a = client.tags(200, offset).await?;
        match a.status {
            404 | 405 if offset == 0 => return Ok(None),
            s if (200..300).contains(&s) => {}
            _ => return Err(ReadError::Answer(Box::new(a))),
        }
        let page = a
            .json()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        for t in &page {
            let s = |k: &str| {
                get_ci(t, k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            out.push(TagEntry {
                path: s("path"),
                status: s("status"),
                query_status: s("queryStatus"),
                operation: get_ci(t, "operation")
                    .and_then(|o| get_ci(o, "id"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        if page.len() < 200 || out.len() >= 1000 {
            break;
        }
        offset += 200;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_and_methods() {
        assert_eq!(tool_of("PostmanRuntime/7.39.0").as_deref(), Some("Postman"));
        assert_eq!(tool_of("curl/8.5.0").as_deref(), Some("curl"));
        assert_eq!(tool_of("python-requests/2.32").as_deref(), Some("Python"));
        assert_eq!(tool_of(""), None);
        assert_eq!(method_of("Store", "/v1/studies"), "POST");
        assert_eq!(
            method_of("remove-extended-query-tag", "/v1/extendedquerytags/x"),
            "DELETE"
        );
        assert_eq!(
            method_of("UpdateExtendedQueryTag", "/v1/extendedquerytags/x"),
            "PATCH"
        );
        assert_eq!(
            method_of("RetrieveMetadata", "/v1/studies/1/metadata"),
            "GET"
        );
        assert_eq!(
            method_of("AddExtendedQueryTag", "/v1/extendedquerytags"),
            "POST"
        );
    }

    fn row(at: &str, method: &str, url: &str) -> Attempt {
        Attempt {
            at: at.into(),
            method: method.into(),
            url: url.into(),
            status: 200,
            source: Source::AuditLog,
            tool: None,
            detail: None,
            parsed: Default::default(),
            principal: None,
        }
    }

    #[test]
    fn an_anonymous_probe_answered_401_is_no_attempt() {
        let mut e = dicomlab_dicomweb::Exchange {
            method: "GET".into(),
            url: "http://h/v1/changefeed/latest".into(),
            status: Some(401),
            at: "2026-11-30T14:00:00Z".into(),
            ..Default::default()
        };
        assert!(Attempt::from_exchange(&e).is_none());
        e.request_headers
            .push(("Authorization".into(), "Bearer $TOKEN".into()));
        assert_eq!(
            Attempt::from_exchange(&e).map(|a| a.status),
            Some(401),
            "a token refused is an attempt"
        );
    }

    #[test]
    fn the_checks_own_rows_are_left_out_one_for_one() {
        let mut rows = vec![
            row(
                "2026-11-30T14:00:01Z",
                "GET",
                "https://h/v1/studies/1/metadata",
            ),
            row(
                "2026-11-30T14:00:02Z",
                "GET",
                "https://h/v1/studies/1/metadata",
            ),
            row("2026-11-30T14:00:03Z", "POST", "/oauth2/token"),
            row(
                "2026-11-30T15:00:00Z",
                "GET",
                "https://h/v1/studies/1/metadata",
            ),
        ];
        let own = [
            OwnRequest {
                at: "2026-11-30T14:00:00Z".into(),
                method: "GET".into(),
                path: route_key("https://h/v1/studies/1/metadata?x=1"),
            },
            OwnRequest {
                at: "2026-11-30T14:00:02Z".into(),
                method: "POST".into(),
                path: route_key("https://login.example/tenant/oauth2/v2.0/token"),
            },
        ];
        leave_out_own(&mut rows, &own);
        let left: Vec<&str> = rows.iter().map(|a| a.at.as_str()).collect();
        // One metadata read was the check's; the other (a second later) and the one an hour later
        // are the learner's; the token row near the check's own fetch was the check's.
        assert_eq!(left, ["2026-11-30T14:00:02Z", "2026-11-30T15:00:00Z"]);
    }

    #[test]
    fn the_audit_query_asks_for_the_learners_rows_only() {
        let learner = Learner {
            ids: ["0000-app".to_string(), "bad\" or 1==1".to_string()].into(),
            shared: true,
        };
        let q = audit_query(None, &learner);
        assert!(
            q.contains("tostring(Identity) contains \"0000-app\""),
            "{q}"
        );
        // An id that is not GUID-like never reaches the query; on a shared service rows that name
        // nobody are not asked for.
        assert!(!q.contains("bad"), "{q}");
        assert!(!q.contains("!has"), "{q}");
        let own = Learner {
            shared: false,
            ..learner
        };
        assert!(audit_query(None, &own).contains("!has \"claims\""));
        // That every query parses in the practice workspace's Kusto is shown where both meet: the
        // lab's tests against a practice service run these queries (tests/lab/practice.rs).
    }

    #[test]
    fn audit_rows_become_attempts_and_checks_rows_are_left_out() {
        let body = serde_json::json!({"tables": [{"name": "PrimaryResult",
        "columns": [{"name": "TimeGenerated", "type": "datetime"}, {"name": "OperationName", "type": "string"},
                    {"name": "Identity", "type": "dynamic"}, {"name": "StatusCode", "type": "int"},
                    {"name": "ResultType", "type": "string"}, {"name": "Uri", "type": "string"}],
        "rows": [
            ["2026-11-30T14:03:00Z", "Store", {"claims": {"appid": "me"}}, 415, "Failed", "https://h/v1/studies"],
            ["2026-11-30T14:03:01Z", "Store", {}, null, "Started", "https://h/v1/studies"],
            ["2026-11-30T14:04:00Z", "ChangeFeed", {"claims": {"appid": "me"}}, 200, "Succeeded", "https://h/v1/changefeed?offset=0&dicomlab-check=1"]
        ]}]});
        let t = LogTable::parse(&body).expect("table");
        let a: Vec<Attempt> = t.rows.iter().filter_map(|r| audit_attempt(&t, r)).collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].method, "POST");
        assert_eq!(a[0].status, 415);
        assert_eq!(a[0].line(), "POST /v1/studies");
        let learner = Learner {
            ids: ["me".to_string()].into(),
            shared: false,
        };
        assert_eq!(learner.is(&t.dynamic(&t.rows[0], "Identity")), Some(true));
        assert_eq!(
            learner.is(&serde_json::json!({"claims": {"oid": "other"}})),
            Some(false)
        );
        assert_eq!(learner.is(&serde_json::json!({})), None);
    }
}
