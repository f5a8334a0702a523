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

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use dicomlab_dicomweb::ledger::OwnRequest;
use dicomlab_dicomweb::{Answer, ClientError, DicomWebClient, LogError, LogReader, get_ci};

mod audit;
mod feed;
mod own;

use audit::read_audit;
pub use audit::{audit_attempt, newest_learner_row};
#[cfg(test)]
use audit::{audit_query, method_of};
use feed::{read_feed, read_tags};

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
    /// When the learner did it, as the record says (RFC 3339, UTC, on disk).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "dicomlab_dicomweb::timestamp::rfc3339_option"
    )]
    pub at: Option<OffsetDateTime>,
    /// What it is about, for the steps after it (the learner's extended query tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Evidence {
    pub fn new(source: Source, summary: impl Into<String>, at: Option<OffsetDateTime>) -> Evidence {
        Evidence {
            source,
            summary: summary.into(),
            at: at.map(utc),
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
    /// When the record says it was made (RFC 3339 on disk, `""` when the record has no time).
    #[serde(default, with = "dicomlab_dicomweb::timestamp::rfc3339_or_empty")]
    pub at: Option<OffsetDateTime>,
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
        self.at
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
            at: Some(utc(e.at.unwrap_or_else(OffsetDateTime::now_utc))),
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
pub(crate) fn tool_of(user_agent: &str) -> Option<String> {
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
    utc(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `t` in UTC (itself when it cannot be moved there): the times dicomlab keeps, as it writes them.
pub fn utc(t: OffsetDateTime) -> OffsetDateTime {
    t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t)
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

#[cfg(test)]
mod tests;
