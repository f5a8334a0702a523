//! Step checks. A ✓ is a claim about the learner: the service's own records (its change feed, its audit
//! log, what it holds as the result of the learner's write) show that the learner's client did the step,
//! or the learner did it inside dicomlab (see [`super::evidence`]). A check reads those records; "the
//! service could answer this now" is never a pass, only *ready*. A failure says what was expected, what
//! was observed, and the fix — with the learner's own failed attempts, from any tool, diagnosed.
//!
//! Every outcome is computed from the gathered [`Records`] plus, for the few steps whose record is the
//! service itself (it exists, the role, a generic server's stored data), one probe of the checks' own.

use crate::model::CheckKind;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::dataset::Instance;
use super::diagnose::{Failed, Place, diagnose_answer, diagnose_status};
use super::evidence::{Attempt, AuditState, Evidence, FeedEntry, Records, Source, rfc3339};
use super::model::{AnswerFrom, By, Check, LEARNER_TAG, Lab, Level, Permission, Step};
use super::progress::StepProgress;
use super::request::RequestPattern;
use dicomlab_dicomweb::{AuthConfig, DicomWebClient, Retrieve, get_ci};

mod signin;

pub use super::diagnose::{diagnose_error, reason_text};
pub use crate::targets::TargetKind;

/// One of the learner's failed attempts at a step, diagnosed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tried {
    /// RFC 3339, UTC.
    pub at: String,
    /// `POST /v1/studies`
    pub line: String,
    pub status: u16,
    /// `Postman`, `curl`… when the record says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    pub source: Source,
    pub diagnosis: String,
}

impl Tried {
    /// `14:03 POST /v1/studies from Postman → 415: <diagnosis>` (local time).
    pub fn text(&self) -> String {
        let tool = self
            .tool
            .as_ref()
            .map(|t| format!(" from {t}"))
            .unwrap_or_default();
        format!(
            "{} {}{tool} → {}: {}",
            local_time(&self.at),
            self.line,
            self.status,
            self.diagnosis
        )
    }
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Done: the evidence says so.
    Pass { detail: String, evidence: Evidence },
    /// Tried and not done (or partly done): what was expected, what the records show, the fix.
    Fail {
        expected: String,
        observed: String,
        diagnosis: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tried: Vec<Tried>,
    },
    /// Nothing of it in the records yet; the service is ready for it.
    Ready {
        detail: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tried: Vec<Tried>,
    },
    /// Not done, and nothing the learner sent for it failed: what the checks' own look at the service
    /// shows now, and what to do. Never a failure: a ✗ rests on the learner's own attempts.
    NotYet { observed: String, fix: String },
    /// The record may not have arrived yet (Azure's audit log comes minutes late): never a failure.
    Waiting {
        reason: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tried: Vec<Tried>,
    },
    /// A prerequisite is missing, or something before it failed: do that first.
    Blocked { reason: String },
    /// The server lacks the feature (a generic DICOMweb server without change feed or tags).
    NotSupported { reason: String },
    /// The check itself could not run.
    Error { message: String },
}

impl Outcome {
    pub fn is_pass(&self) -> bool {
        matches!(self, Outcome::Pass { .. })
    }
    /// A short label: `pass`, `fail`, `ready`, `waiting`, `blocked`, `not supported`, `error`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass { .. } => "pass",
            Outcome::Fail { .. } => "fail",
            Outcome::Ready { .. } => "ready",
            Outcome::NotYet { .. } => "not yet",
            Outcome::Waiting { .. } => "waiting",
            Outcome::Blocked { .. } => "blocked",
            Outcome::NotSupported { .. } => "not supported",
            Outcome::Error { .. } => "error",
        }
    }
    /// The symbol that carries the outcome without color: ✓ ✗ ○ … – (or + x o ~ - in ASCII).
    pub fn symbol(&self, ascii: bool) -> &'static str {
        let (u, a) = match self {
            Outcome::Pass { .. } => ("✓", "+"),
            Outcome::Fail { .. } | Outcome::Error { .. } => ("✗", "x"),
            Outcome::Ready { .. } | Outcome::NotYet { .. } | Outcome::Blocked { .. } => ("○", "o"),
            Outcome::Waiting { .. } => ("…", "~"),
            Outcome::NotSupported { .. } => ("–", "-"),
        };
        if ascii { a } else { u }
    }

    /// One line for lists and progress files.
    pub fn one_line(&self) -> String {
        match self {
            Outcome::Pass { detail, .. } => detail.clone(),
            Outcome::Fail {
                observed,
                diagnosis,
                ..
            } => format!("{observed} — {diagnosis}"),
            Outcome::Ready { detail, .. } => format!("ready: {detail}"),
            Outcome::NotYet { observed, fix } => format!("not yet: {observed} — {fix}"),
            Outcome::Waiting { reason, .. } => reason.clone(),
            Outcome::Blocked { reason } | Outcome::NotSupported { reason } => reason.clone(),
            Outcome::Error { message } => message.clone(),
        }
    }

    /// How a failure reads, line by line: expected, observed, fix (None: not a failure).
    pub fn failure_lines(&self) -> Option<[(&'static str, &str); 3]> {
        match self {
            Outcome::Fail {
                expected,
                observed,
                diagnosis,
                ..
            } => Some([
                ("expected", expected.as_str()),
                ("observed", observed.as_str()),
                ("fix", diagnosis.as_str()),
            ]),
            _ => None,
        }
    }

    /// The evidence of a pass.
    pub fn evidence(&self) -> Option<&Evidence> {
        match self {
            Outcome::Pass { evidence, .. } => Some(evidence),
            _ => None,
        }
    }

    /// The learner's failed attempts it carries.
    pub fn tried(&self) -> &[Tried] {
        match self {
            Outcome::Fail { tried, .. }
            | Outcome::Ready { tried, .. }
            | Outcome::Waiting { tried, .. } => tried,
            _ => &[],
        }
    }
}

fn fail(
    expected: impl Into<String>,
    observed: impl Into<String>,
    diagnosis: impl Into<String>,
    tried: Vec<Tried>,
) -> Outcome {
    Outcome::Fail {
        expected: expected.into(),
        observed: observed.into(),
        diagnosis: diagnosis.into(),
        tried,
    }
}

fn pass(detail: impl Into<String>, evidence: Evidence) -> Outcome {
    Outcome::Pass {
        detail: detail.into(),
        evidence,
    }
}

/// What the checks' own look found wrong: a failure when the learner tried and failed (their
/// attempts are in `tried`), else "not yet" — the checks' own requests are never the learner's try.
fn checks_saw(
    expected: impl Into<String>,
    observed: impl Into<String>,
    diagnosis: impl Into<String>,
    tried: Vec<Tried>,
) -> Outcome {
    if tried.is_empty() {
        Outcome::NotYet {
            observed: observed.into(),
            fix: diagnosis.into(),
        }
    } else {
        fail(expected, observed, diagnosis, tried)
    }
}

pub(crate) fn ready(detail: impl Into<String>, tried: Vec<Tried>) -> Outcome {
    Outcome::Ready {
        detail: detail.into(),
        tried,
    }
}

/// Everything a check may use.
pub struct CheckContext<'a> {
    /// The checks' own client (its requests are marked, never taken for the learner's).
    pub client: &'a DicomWebClient,
    pub target: TargetKind,
    pub lab: &'a Lab,
    pub records: &'a Records,
    /// This target's saved progress.
    pub saved: &'a BTreeMap<String, StepProgress>,
    /// Steps done (saved, or passed earlier in this run).
    pub done: &'a HashSet<String>,
    /// Records older than this do not count for the step (its last reset).
    pub since: Option<OffsetDateTime>,
    /// Where retrieved files go.
    pub scratch: PathBuf,
    /// The service is shared with other learners: the change feed alone cannot say who stored.
    pub shared: bool,
    /// What is wrong with the profile's values (one validation: `Profile::problems`).
    pub profile_problems: &'a [String],
}

impl CheckContext<'_> {
    fn place(&self) -> Place<'_> {
        Place {
            target: self.target,
            base: self.client.base(),
            client_id: match self.client.auth() {
                AuthConfig::Azure { client_id, .. } => Some(client_id.as_str()),
                _ => None,
            },
        }
    }

    fn diagnose_attempt(&self, a: &Attempt) -> String {
        diagnose_status(
            self.place(),
            &Failed {
                method: &a.method,
                url: &a.url,
                status: a.status,
                detail: a.detail.as_deref(),
                ..Failed::default()
            },
        )
    }

    fn tried_of(&self, a: &Attempt) -> Tried {
        Tried {
            at: a.at.clone(),
            line: a.line(),
            status: a.status,
            tool: a.tool.clone(),
            source: a.source,
            diagnosis: self.diagnose_attempt(a),
        }
    }

    /// The learner's most recent failed attempts (newest first, at most three) that `belongs` to the
    /// step, made after its last success.
    fn tried(
        &self,
        belongs: impl Fn(&Attempt) -> bool,
        failed: impl Fn(&Attempt) -> bool,
    ) -> Vec<Tried> {
        let mut mine: Vec<&Attempt> = self
            .records
            .attempts
            .iter()
            .filter(|a| self.since.is_none_or(|s| a.time().is_none_or(|t| t >= s)))
            .filter(|a| belongs(a))
            .collect();
        mine.sort_by_key(|a| std::cmp::Reverse(a.time()));
        mine.iter()
            .take_while(|a| failed(a))
            .take(3)
            .map(|a| self.tried_of(a))
            .collect()
    }

    /// Whether a missing audit record may still be on its way (Azure delivers them minutes late).
    fn may_still_arrive(&self, step: &Step) -> bool {
        let AuditState::Read { delay_secs } = self.records.audit else {
            return false;
        };
        if delay_secs == 0 {
            return false;
        }
        let since = self
            .saved
            .get(&step.id)
            .and_then(|p| p.waiting_since.as_deref())
            .and_then(dicomlab_dicomweb::parse_timestamp);
        since.is_none_or(|s| {
            OffsetDateTime::now_utc() - s < time::Duration::seconds(delay_secs as i64)
        })
    }

    /// A step not done: the learner's last failed attempt (a failure, diagnosed), else waiting for a
    /// late record, else `otherwise`.
    fn after_attempts(
        &self,
        step: &Step,
        expected: impl Into<String>,
        tried: Vec<Tried>,
        otherwise: impl FnOnce(Vec<Tried>) -> Outcome,
    ) -> Outcome {
        // While a record may still be on its way, never ✗: the failed attempts show, diagnosed.
        if self.may_still_arrive(step) && self.records.audit_read() {
            return self.waiting(tried);
        }
        match tried.first() {
            Some(t) => fail(
                expected,
                format!("your last attempt: {} answered {}", t.line, t.status),
                t.diagnosis.clone(),
                tried.clone(),
            ),
            None => otherwise(tried),
        }
    }

    fn waiting(&self, tried: Vec<Tried>) -> Outcome {
        let AuditState::Read { delay_secs } = self.records.audit else {
            return ready("", tried);
        };
        Outcome::Waiting {
            reason: format!(
                "waiting for the audit log: no record of it yet. Azure delivers audit records late (usually within {} min); dicomlab looks again on its own",
                delay_secs.div_ceil(60).max(1)
            ),
            tried,
        }
    }

    /// Why records of reads cannot show this step, when they cannot.
    fn reads_unrecorded(&self) -> Option<String> {
        match &self.records.audit {
            AuditState::Read { .. } => None,
            AuditState::NotConfigured => Some(match self.target {
                TargetKind::Generic => {
                    "this server keeps no record of reads dicomlab can see".into()
                }
                _ => "the audit log is not set up (profile: log_workspace)".into(),
            }),
            AuditState::Failed(why) => Some(format!("the audit log could not be read: {why}")),
        }
    }

    fn fill(&self, text: &str) -> String {
        self.lab.dataset.fill(text)
    }

    fn saved_subject(&self, kind: CheckKind) -> Option<String> {
        let step = self.lab.step_of_kind(kind)?;
        self.saved
            .get(&step.id)
            .and_then(|p| p.subject.clone())
            .filter(|s| !s.trim().is_empty())
    }

    /// Whether the service's state alone (a tag in the list, an instance gone) may stand for the
    /// learner's request: only where no record of requests is read (records would show the request
    /// itself, so their silence counts) and the service is the learner's own.
    fn state_may_show(&self) -> bool {
        !self.records.audit_read() && !self.shared
    }
}

use dicomlab_dicomweb::routes::{DICOM_JSON, FRAMES_ANY, JSON, MULTIPART_ANY};

/// Runs a step's check.
pub async fn run(ctx: &CheckContext<'_>, step: &Step) -> Outcome {
    match &step.check {
        Check::ServiceExists => service_exists(ctx).await,
        Check::Role { may } => role(ctx, *may).await,
        Check::Environment => environment(ctx),
        Check::PostmanImport => ready(
            "import the workshop's Postman environment on the Environment screen (I), or run `dicomlab import-postman FILE`",
            Vec::new(),
        ),
        Check::Token => token(ctx, step).await,
        Check::Store { instances } => store(ctx, step, instances).await,
        Check::Requests {
            requests,
            status,
            by,
        } => {
            // `{tag}`: the learner's own extended query tag; without one the step waits for it.
            let tag = if requests
                .iter()
                .any(|r| r.alternatives().iter().any(|a| a.contains(LEARNER_TAG)))
            {
                match subject_or_block(ctx) {
                    Ok(t) => Some(t),
                    Err(o) => return o,
                }
            } else {
                None
            };
            let fill = |a: &str| match &tag {
                Some(t) => ctx.fill(a).replace(LEARNER_TAG, t),
                None => ctx.fill(a),
            };
            let specs: Vec<Vec<(String, By)>> = requests
                .iter()
                .map(|r| {
                    r.alternatives_by()
                        .iter()
                        .map(|(a, b)| (fill(a), b.unwrap_or(*by)))
                        .collect()
                })
                .collect();
            // Shown as the lab writes them ({red.study}…): short, and readable.
            let labels: Vec<Option<String>> = requests
                .iter()
                .map(|r| {
                    r.label()
                        .map(str::to_string)
                        .or_else(|| r.alternatives().first().map(|a| a.to_string()))
                        .map(|l| match &tag {
                            Some(t) => l.replace(LEARNER_TAG, t),
                            None => l,
                        })
                })
                .collect();
            requests_check(ctx, step, &specs, &labels, status)
        }
        Check::TagAdded { suggest } => tag_added(ctx, step, suggest.as_deref()),
        Check::TagUsed { value } => tag_used(ctx, step, value.as_deref()),
        Check::TagUpdated { query_status } => tag_updated(ctx, step, query_status),
        Check::TagDeleted => tag_deleted(ctx, step),
        Check::Deleted { level, instance } => deleted(ctx, step, *level, instance).await,
    }
}

async fn service_exists(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "any HTTP answer from the service URL (401 without a token proves it exists)";
    let mut a = match ctx.client.get_anonymous("changefeed/latest").await {
        Ok(a) => a,
        Err(e) => return checks_saw(expected, e.to_string(), diagnose_error(&e), Vec::new()),
    };
    if a.status == 404 {
        a = match ctx.client.get_anonymous("studies?limit=1").await {
            Ok(a) => a,
            Err(e) => return checks_saw(expected, e.to_string(), diagnose_error(&e), Vec::new()),
        };
        if a.status == 404 {
            return checks_saw(
                expected,
                a.exchange.summary(),
                diagnose_answer(ctx.place(), &a),
                Vec::new(),
            );
        }
    }
    pass(
        format!("the service answered {} without a token", a.status),
        Evidence::new(
            Source::ServiceState,
            format!(
                "the service at {} answers ({} without a token)",
                ctx.client.base(),
                a.status
            ),
            Some(OffsetDateTime::now_utc()),
        ),
    )
}

/// The role: an empty store (zero parts: nothing is stored) shows whether the app may write; a read
/// whether it may read. DICOM Data Reader may read but not write.
async fn role(ctx: &CheckContext<'_>, may: Permission) -> Outcome {
    // A generic server has no Azure roles (unless a pasted Azure token points at Azure behind it).
    if ctx.target == TargetKind::Generic && !matches!(ctx.client.auth(), AuthConfig::Bearer { .. })
    {
        return Outcome::NotSupported {
            reason:
                "this server has no Azure roles: access is whatever its own configuration allows"
                    .into(),
        };
    }
    let (expected, answer) = match may {
        Permission::Write => (
            "an empty store (it stores nothing) that is neither 401 nor 403: the app may write",
            ctx.client.probe_store().await,
        ),
        Permission::Read => (
            "an authenticated read that is neither 401 nor 403",
            ctx.client
                .get(&ctx.client.marked("changefeed?limit=1"), "application/json")
                .await,
        ),
    };
    let a = match answer {
        Ok(a) => a,
        Err(e) => {
            return if matches!(e, dicomlab_dicomweb::ClientError::Token(_)) {
                Outcome::Blocked {
                    reason: format!("no token: {}", diagnose_error(&e)),
                }
            } else {
                checks_saw(expected, e.to_string(), diagnose_error(&e), Vec::new())
            };
        }
    };
    if a.ok() {
        let what = match may {
            Permission::Write => {
                "the service let the app write (an empty store answered 204; nothing was stored)"
            }
            Permission::Read => "the service let the app read",
        };
        return pass(
            format!("{what}: the role is assigned"),
            Evidence::new(Source::ServiceState, what, Some(OffsetDateTime::now_utc())),
        );
    }
    let mut diagnosis = diagnose_answer(ctx.place(), &a);
    if a.status == 403 && may == Permission::Write {
        diagnosis.push_str(" DICOM Data Reader is not enough: it reads but cannot store.");
    }
    checks_saw(expected, a.exchange.summary(), diagnosis, Vec::new())
}

fn environment(ctx: &CheckContext<'_>) -> Outcome {
    let expected = "tenant id, client id, client secret, resource and a base URL ending in /v1";
    if ctx.profile_problems.is_empty() {
        pass(
            format!("base URL {}; every value is set", ctx.client.base()),
            Evidence::new(
                Source::Local,
                format!(
                    "the profile holds every value (base URL {})",
                    ctx.client.base()
                ),
                None,
            ),
        )
    } else {
        fail(
            expected,
            ctx.profile_problems.join("; "),
            "fix these values on the Environment screen (or in the config file)",
            Vec::new(),
        )
    }
}

async fn token(ctx: &CheckContext<'_>, step: &Step) -> Outcome {
    let expected = "a token request of your app, or a request your app sent with a valid token";
    if !matches!(
        ctx.client.auth(),
        AuthConfig::Azure { .. } | AuthConfig::Bearer { .. }
    ) {
        return Outcome::NotSupported {
            reason: "this target does not use tokens".into(),
        };
    }
    // A user's sign-in or request is not the app's token (the viewer's step reads those).
    let attempts: Vec<&Attempt> = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .filter(|a| !a.by_user())
        .collect();
    if let Some(a) = attempts.iter().find(|a| a.is_token_request() && a.ok()) {
        return pass(
            format!(
                "your app got a token ({}{})",
                local_time(&a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!(
                    "token request of your app answered 200 ({}{})",
                    a.at,
                    tool_suffix(a)
                ),
                a.time(),
            ),
        );
    }
    if let Some(a) = attempts
        .iter()
        .find(|a| !a.is_token_request() && a.status != 401 && a.status != 0)
    {
        return pass(
            format!(
                "your app sent a request with a valid token ({} {}{})",
                a.line(),
                local_time(&a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!(
                    "{} answered {} with your app's token{}",
                    a.line(),
                    a.status,
                    tool_suffix(a)
                ),
                a.time(),
            ),
        );
    }
    let tried = ctx.tried(
        |a| !a.by_user() && (a.is_token_request() || a.status == 401),
        |a| !a.ok(),
    );
    if ctx.may_still_arrive(step) && ctx.records.audit_read() {
        return ctx.waiting(tried);
    }
    // Not done: say whether the values would get a good one (a check's own token, never credit).
    match ctx.client.token().await {
        Ok(Some(t)) => {
            let left = t.remaining().as_secs();
            let aud = t
                .claims
                .as_ref()
                .and_then(|c| c.aud.clone())
                .unwrap_or_default();
            let resource = match ctx.client.auth() {
                AuthConfig::Azure { resource, .. } => resource.trim().to_string(),
                _ => dicomlab_dicomweb::auth::DICOM_RESOURCE.to_string(),
            };
            if !aud.is_empty() && aud.trim_end_matches('/') != resource.trim_end_matches('/') {
                return checks_saw(
                    "a token whose audience is the DICOM service",
                    format!("the token's audience is {aud}"),
                    format!("request the token with resource={resource}"),
                    tried,
                );
            }
            if left < 300 {
                return checks_saw(
                    "a token valid for at least 5 more minutes",
                    format!("the token expires in {left} s"),
                    "request a new token",
                    tried,
                );
            }
            let left = left / 60;
            ready(
                format!(
                    "your values get a token (audience {aud}, {left} min): now request one yourself — press d, or send Postman's AuthorizeGetToken"
                ),
                tried,
            )
        }
        Ok(None) => ready("no token is needed on this target", tried),
        Err(e) => checks_saw(expected, e.to_string(), diagnose_error(&e), tried),
    }
}

fn tool_suffix(a: &Attempt) -> String {
    a.tool
        .as_ref()
        .map(|t| format!(", from {t}"))
        .unwrap_or_default()
}

/// `14:03` in local time when it can be told, else the UTC time.
pub fn local_time(at: &str) -> String {
    match dicomlab_dicomweb::parse_timestamp(at) {
        Some(t) => {
            let t = super::clock::to_local(t);
            format!("{:02}:{:02}", t.hour(), t.minute())
        }
        None => at.to_string(),
    }
}

fn store_patterns() -> Vec<RequestPattern> {
    ["POST studies", "POST studies/x1"]
        .iter()
        .filter_map(|p| RequestPattern::parse(p).ok())
        .collect()
}

fn is_store(a: &Attempt) -> bool {
    store_patterns().iter().any(|p| a.tries(p))
}

/// Create entries in the change feed, attributed to the learner by the audit log where it names callers.
async fn store(ctx: &CheckContext<'_>, step: &Step, names: &[String]) -> Outcome {
    let wanted: Vec<&Instance> = names
        .iter()
        .filter_map(|n| ctx.lab.dataset.instance(n))
        .collect();
    let titles = |v: &[&Instance]| v.iter().map(|i| i.display()).collect::<Vec<_>>().join(", ");
    let expected = format!("Create entries in the change feed for {}", titles(&wanted));
    let tried = ctx.tried(is_store, |a| !a.ok());
    let Some(feed) = &ctx.records.feed else {
        if let Some(a) = &ctx.records.feed_error {
            return checks_saw(
                expected,
                format!("the change feed: {}", a.exchange.summary()),
                diagnose_answer(ctx.place(), a),
                tried,
            );
        }
        return store_without_feed(ctx, &wanted, tried).await;
    };
    let since = ctx.since;
    let created: Vec<(&Instance, &FeedEntry)> = wanted
        .iter()
        .filter_map(|i| {
            feed.iter()
                .rfind(|e| {
                    e.sop == i.sop
                        && e.action.eq_ignore_ascii_case("create")
                        && since.is_none_or(|s| e.timestamp.is_none_or(|t| t >= s))
                })
                .map(|e| (*i, e))
        })
        .collect();
    // Who stored them: the audit log, where its rows name callers.
    let attributed = ctx.records.audit_read() && ctx.records.audit_names_caller;
    if ctx.shared && !attributed {
        let why = ctx
            .reads_unrecorded()
            .unwrap_or_else(|| "its rows name no caller".into());
        return checks_saw(
            expected,
            format!(
                "{} of {} have Create entries, but this service is shared and {why}",
                created.len(),
                wanted.len()
            ),
            "on a shared service the change feed names no caller: set up the audit log (profile log_workspace), or use a service of your own",
            tried,
        );
    }
    // Which request stored an entry: dicomlab's own exchange is timed when it was sent (the entry
    // follows within the upload); an audit row when the request ended (the entry precedes it). A few
    // seconds either way for the clocks; an attempt or entry without a time is not attributed.
    let near = |a: &Attempt, e: &FeedEntry| match (a.time(), e.timestamp) {
        (Some(at), Some(ts)) => {
            let (before, after) = match a.source {
                Source::Dicomlab => (time::Duration::minutes(10), time::Duration::seconds(5)),
                _ => (time::Duration::seconds(5), time::Duration::minutes(2)),
            };
            // Checked: a hostile timestamp near the calendar's ends is no panic.
            match (ts.checked_sub(before), ts.checked_add(after)) {
                (Some(lo), Some(hi)) => at >= lo && at <= hi,
                _ => false,
            }
        }
        _ => false,
    };
    let mut mine = Vec::new();
    let mut by_others = Vec::new();
    for (i, e) in &created {
        if !attributed {
            mine.push((*i, *e));
            continue;
        }
        let own = ctx
            .records
            .attempts
            .iter()
            .any(|a| a.source == Source::AuditLog && is_store(a) && a.ok() && near(a, e))
            || ctx
                .records
                .attempts
                .iter()
                .any(|a| a.source == Source::Dicomlab && is_store(a) && a.ok() && near(a, e));
        if own {
            mine.push((*i, *e));
        } else {
            let other = ctx
                .records
                .others
                .iter()
                .find(|a| is_store(a) && a.ok() && near(a, e));
            by_others.push((*i, *e, other.map(|a| a.at.clone())));
        }
    }
    if mine.len() == wanted.len() && !wanted.is_empty() {
        let latest = mine.iter().filter_map(|(_, e)| e.timestamp).max();
        let seqs: Vec<String> = mine
            .iter()
            .map(|(i, e)| format!("#{} {}", e.sequence, i.display()))
            .collect();
        let who = if attributed {
            ", stored by your app (audit log)"
        } else {
            ""
        };
        return pass(
            format!(
                "{} of {} stored: {}",
                mine.len(),
                wanted.len(),
                titles(&wanted)
            ),
            Evidence::new(
                Source::ChangeFeed,
                format!("Create entries {}{who}", seqs.join(", ")),
                latest,
            ),
        );
    }
    if !by_others.is_empty() {
        let who: Vec<String> = by_others
            .iter()
            .map(|(i, e, at)| {
                format!(
                    "{} (#{}{})",
                    i.display(),
                    e.sequence,
                    at.as_ref()
                        .map(|a| format!(", {}", local_time(a)))
                        .unwrap_or_default()
                )
            })
            .collect();
        return checks_saw(
            expected,
            format!(
                "{} stored by another client, not by yours: {}",
                by_others.len(),
                who.join(", ")
            ),
            "the lab's sample UIDs can be stored once per service: on a shared service ask for a service of your own (or the instructor deletes the study); your own store then answers 200",
            tried,
        );
    }
    let missing: Vec<&Instance> = wanted
        .iter()
        .filter(|i| !mine.iter().any(|(m, _)| m.sop == i.sop))
        .copied()
        .collect();
    if mine.is_empty() {
        if let Some(t) = tried.first() {
            return fail(
                expected,
                format!(
                    "no Create entry yet; your last attempt: {} answered {}",
                    t.line, t.status
                ),
                t.diagnosis.clone(),
                tried,
            );
        }
        let _ = step;
        return ready(
            format!(
                "nothing stored yet: POST {} to {{baseUrl}}/studies",
                titles(&wanted)
            ),
            tried,
        );
    }
    checks_saw(
        expected,
        format!("{} of {} stored", mine.len(), wanted.len()),
        format!("still to store: {}", titles(&missing)),
        tried,
    )
}

/// A server without a change feed: its stored data is the record (and dicomlab's own stores).
async fn store_without_feed(
    ctx: &CheckContext<'_>,
    wanted: &[&Instance],
    tried: Vec<Tried>,
) -> Outcome {
    let expected = "the instances stored on the server (found by SOP Instance UID)";
    let mut found = Vec::new();
    for i in wanted {
        let a = match find_instance(ctx, i).await {
            Ok(a) => a,
            Err(e) => return checks_saw(expected, e.to_string(), diagnose_error(&e), tried),
        };
        if !a.ok() && a.status != 204 {
            return checks_saw(
                expected,
                a.exchange.summary(),
                diagnose_answer(ctx.place(), &a),
                tried,
            );
        }
        if a.results()
            .iter()
            .any(|r| first_str(r, "00080018").as_deref() == Some(i.sop.as_str()))
        {
            found.push(*i);
        }
    }
    let names = |v: &[&Instance]| v.iter().map(|i| i.display()).collect::<Vec<_>>().join(", ");
    if found.len() == wanted.len() {
        let by_dicomlab = ctx
            .records
            .attempts_since(ctx.since)
            .into_iter()
            .rfind(|a| a.source == Source::Dicomlab && is_store(a) && a.ok());
        let evidence = match by_dicomlab {
            Some(a) => Evidence::new(
                Source::Dicomlab,
                format!(
                    "stored from dicomlab ({} answered {}); found on the server",
                    a.line(),
                    a.status
                ),
                a.time(),
            ),
            None => Evidence::new(
                Source::ServiceState,
                "found on the server (a server without a change feed keeps no history of writes: its stored data is the record)",
                Some(OffsetDateTime::now_utc()),
            ),
        };
        return pass(
            format!(
                "{} of {} found: {}",
                found.len(),
                wanted.len(),
                names(wanted)
            ),
            evidence,
        );
    }
    if found.is_empty() {
        return match tried.first() {
            Some(t) => fail(
                expected,
                format!(
                    "none found; your last attempt: {} answered {}",
                    t.line, t.status
                ),
                t.diagnosis.clone(),
                tried,
            ),
            None => ready(
                format!(
                    "nothing stored yet: POST {} to {{baseUrl}}/studies",
                    names(wanted)
                ),
                tried,
            ),
        };
    }
    let missing: Vec<&Instance> = wanted
        .iter()
        .filter(|i| !found.iter().any(|f| f.sop == i.sop))
        .copied()
        .collect();
    checks_saw(
        expected,
        format!("{} of {} found", found.len(), wanted.len()),
        format!("still to store: {}", names(&missing)),
        tried,
    )
}

/// Searches for an instance by SOP Instance UID (a server without history: its stored data).
async fn find_instance(
    ctx: &CheckContext<'_>,
    i: &Instance,
) -> Result<dicomlab_dicomweb::Answer, dicomlab_dicomweb::ClientError> {
    ctx.client
        .search(
            dicomlab_dicomweb::Level::Instance,
            None,
            None,
            &[("SOPInstanceUID", i.sop.as_str())],
        )
        .await
}

fn first_str(obj: &serde_json::Value, tag: &str) -> Option<String> {
    obj.get(tag)?
        .get("Value")?
        .get(0)?
        .as_str()
        .map(str::to_string)
}

/// Whether a status counts as success for a request of the step.
fn accepted(method: &str, status: u16, allowed: &[u16]) -> bool {
    if !allowed.is_empty() {
        return allowed.contains(&status);
    }
    (200..300).contains(&status) && !(status == 204 && method.eq_ignore_ascii_case("GET"))
}

/// The learner made each of these requests (one alternative each) and it succeeded.
fn requests_check(
    ctx: &CheckContext<'_>,
    step: &Step,
    specs: &[Vec<(String, By)>],
    labels: &[Option<String>],
    allowed: &[u16],
) -> Outcome {
    // Whose records count for an alternative: a user's sign-ins are never a request of the step.
    let counts = |by: By, a: &Attempt| {
        !a.is_user_sign_in()
            && match by {
                By::Any => true,
                By::App => !a.by_user(),
                By::User => a.by_user(),
            }
    };
    let with_by: Vec<Vec<(RequestPattern, By)>> = specs
        .iter()
        .map(|alts| {
            alts.iter()
                .filter_map(|(a, by)| RequestPattern::parse(a).ok().map(|p| (p, *by)))
                .collect()
        })
        .collect();
    let patterns: Vec<Vec<RequestPattern>> = with_by
        .iter()
        .map(|alts| alts.iter().map(|(p, _)| p.clone()).collect())
        .collect();
    let wants_user = with_by.iter().flatten().any(|(_, by)| *by == By::User);
    // Azure's own routes on a server that has none of them.
    if ctx.target == TargetKind::Generic
        && let Some(first) = patterns.iter().flatten().find_map(|p| {
            p.segments
                .first()
                .filter(|s| ["changefeed", "extendedquerytags", "operations"].contains(&s.as_str()))
        })
    {
        return Outcome::NotSupported {
            reason: format!(
                "this server has no {first} route: it is an Azure DICOM service feature (try it on the practice service)"
            ),
        };
    }
    let shown = |i: usize| -> String {
        labels[i]
            .clone()
            .or_else(|| patterns[i].first().map(RequestPattern::display))
            .unwrap_or_default()
    };
    let attempts = ctx.records.attempts_since(ctx.since);
    let mut done: Vec<(usize, &Attempt)> = Vec::new();
    for (i, alts) in with_by.iter().enumerate() {
        if let Some(a) = attempts.iter().find(|a| {
            accepted(&a.method, a.status, allowed)
                && alts.iter().any(|(p, by)| counts(*by, a) && a.is(p))
        }) {
            done.push((i, a));
        }
    }
    let belongs = |a: &Attempt| {
        with_by
            .iter()
            .flatten()
            .any(|(p, by)| counts(*by, a) && a.tries(p))
    };
    let tried = ctx.tried(belongs, |a| !accepted(&a.method, a.status, allowed));
    let expected = if patterns.len() == 1 {
        shown(0)
    } else {
        format!(
            "the step's {} requests, each answered with success",
            patterns.len()
        )
    };
    if done.len() == patterns.len() {
        // The service's record first: any request it shows makes the audit log the evidence.
        let source = if done.iter().any(|(_, a)| a.source == Source::AuditLog) {
            Source::AuditLog
        } else {
            Source::Dicomlab
        };
        let last = done.iter().filter_map(|(_, a)| a.time()).max();
        let tools: HashSet<String> = done.iter().filter_map(|(_, a)| a.tool.clone()).collect();
        let mut tools: Vec<String> = tools.into_iter().collect();
        tools.sort();
        let users: Vec<&str> = done
            .iter()
            .filter_map(|(_, a)| a.principal.as_ref().and_then(|p| p.user()))
            .collect();
        let by_user = users
            .first()
            .map(|u| format!(" by your user {u}"))
            .unwrap_or_default();
        let summary = if done.len() == 1 {
            let a = done[0].1;
            format!(
                "{} answered {}{by_user}{}",
                a.line(),
                a.status,
                tool_suffix(a)
            )
        } else {
            format!(
                "{} requests answered with success{by_user}{}",
                done.len(),
                if tools.is_empty() {
                    String::new()
                } else {
                    format!(", from {}", tools.join(" and "))
                }
            )
        };
        return pass(
            if done.len() == 1 {
                summary.clone()
            } else {
                format!("all {} requests done", done.len())
            },
            Evidence::new(source, summary, last),
        );
    }
    let missing: Vec<String> = (0..patterns.len())
        .filter(|i| !done.iter().any(|(d, _)| d == i))
        .map(shown)
        .collect();
    // A step a signed-in user may do (the viewer's): once the records show the user (a sign-in, a
    // request), or when only the user's requests count, say what the set-up still lacks.
    if wants_user
        && done.is_empty()
        && (with_by.iter().flatten().all(|(_, by)| *by == By::User)
            || attempts.iter().any(|a| a.by_user()))
    {
        return signin::not_yet(ctx, step, &expected, tried);
    }
    if done.is_empty() {
        return ctx.after_attempts(step, expected, tried, |tried| {
            ready(not_recorded_hint(ctx, step), tried)
        });
    }
    // While a record may still be on its way, never ✗ (failed attempts show, diagnosed).
    if ctx.may_still_arrive(step) && ctx.records.audit_read() {
        return ctx.waiting(tried);
    }
    // Part done and nothing failed: not a failure, the rest is to do.
    let Some(t) = tried.first() else {
        return ready(
            format!(
                "{} of {} done; still to do: {}",
                done.len(),
                patterns.len(),
                missing.join("; ")
            ),
            tried,
        );
    };
    fail(
        expected,
        format!("{} of {} done", done.len(), patterns.len()),
        format!(
            "still to do: {}. Your last attempt: {} answered {}: {}",
            missing.join("; "),
            t.line,
            t.status,
            t.diagnosis
        ),
        tried.clone(),
    )
}

/// What to tell a learner whose reads leave no record dicomlab can see.
fn not_recorded_hint(ctx: &CheckContext<'_>, step: &Step) -> String {
    match (ctx.reads_unrecorded(), &step.question) {
        (Some(why), Some(q)) => format!("no record of it yet ({why}): do it (press d, or with your tool), then answer the question — {}", q.ask),
        (Some(why), None) => format!("no record of it yet ({why}): do it here (press d, or on the screen below)"),
        (None, _) => "nothing of it in the service's records yet: send the requests (press d, or with Postman, curl or Python)".into(),
    }
}

/// A tag name as the service would take it, compared by tag.
fn same_tag(a: &str, b: &str) -> bool {
    match (
        dicomlab_dicom::tags::resolve(a),
        dicomlab_dicom::tags::resolve(b),
    ) {
        (Some(x), Some(y)) => x.tag == y.tag,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// The keyword of a tag path when it has one (`00100040` → `PatientSex`).
fn tag_name(path: &str) -> String {
    dicomlab_dicom::tags::resolve(path).map_or_else(|| path.to_string(), |a| a.display_name())
}

/// The tag segment of an `extendedquerytags/{path}` request.
fn tag_of_url(url: &str) -> Option<String> {
    let (segs, _) = super::request::route_of(url)?;
    (segs.first().map(String::as_str) == Some("extendedquerytags")).then(|| segs.get(1).cloned())?
}

/// The learner's tag: the one the tag step credited, else one the records show.
pub fn learner_tag(ctx: &CheckContext<'_>, suggest: Option<&str>) -> Option<String> {
    if let Some(s) = ctx.saved_subject(CheckKind::TagAdded) {
        return Some(s);
    }
    if let Some(tags) = &ctx.records.tags
        && !tags.is_empty()
    {
        if let Some(s) = suggest
            && let Some(t) = tags.iter().find(|t| same_tag(&t.path, s))
        {
            return Some(tag_name(&t.path));
        }
        return tags.last().map(|t| tag_name(&t.path));
    }
    // From the learner's own requests on a tag (the add's body is not in any record).
    ctx.records
        .attempts_since(ctx.since)
        .iter()
        .filter(|a| a.ok())
        .find_map(|a| tag_of_url(&a.url))
        .map(|t| tag_name(&t))
}

fn tags_unavailable(ctx: &CheckContext<'_>) -> Option<Outcome> {
    if ctx.records.tags.is_some() {
        return None;
    }
    Some(match &ctx.records.tags_error {
        Some(a) => checks_saw(
            "the extended query tags API answers",
            a.exchange.summary(),
            diagnose_answer(ctx.place(), a),
            Vec::new(),
        ),
        None => Outcome::NotSupported {
            reason: "this server has no extended query tags (an Azure DICOM service feature)"
                .into(),
        },
    })
}

fn is_tag_route(a: &Attempt) -> bool {
    a.url.contains("/extendedquerytags")
}

fn tag_added(ctx: &CheckContext<'_>, step: &Step, suggest: Option<&str>) -> Outcome {
    if let Some(o) = tags_unavailable(ctx) {
        return o;
    }
    let expected = format!(
        "an extended query tag added and re-indexed (the lab suggests {})",
        suggest.unwrap_or("PatientSex")
    );
    let tried = ctx.tried(
        |a| is_tag_route(a) && a.method.eq_ignore_ascii_case("POST"),
        |a| !a.ok(),
    );
    let tag = learner_tag(ctx, suggest);
    let listed = tag.as_deref().and_then(|t| {
        ctx.records
            .tags
            .as_ref()?
            .iter()
            .find(|e| same_tag(&e.path, t))
    });
    let add = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .find(|a| is_tag_route(a) && a.method.eq_ignore_ascii_case("POST") && a.status == 202);
    if let Some(e) = listed
        && e.status.eq_ignore_ascii_case("adding")
    {
        return Outcome::Waiting {
            reason: format!(
                "{} is being re-indexed (status adding): its operation is still running",
                tag_name(&e.path)
            ),
            tried,
        };
    }
    match (add, listed) {
        (Some(a), _) => {
            // The add's body is in no record: the tag is named when the list or a later request
            // shows it, and only then becomes the next steps' subject.
            let evidence = Evidence::new(
                a.source,
                format!(
                    "{} answered 202 (the re-index started){}{}",
                    a.line(),
                    tool_suffix(a),
                    tag.as_deref().map(|t| format!("; tag {t}")).unwrap_or_default()
                ),
                a.time(),
            );
            let (detail, evidence) = match tag.as_deref().filter(|t| !t.trim().is_empty()) {
                Some(t) => (
                    format!("{t} added ({}{})", local_time(&a.at), tool_suffix(a)),
                    evidence.about(t.to_string()),
                ),
                None => (
                    format!("a tag added ({}{})", local_time(&a.at), tool_suffix(a)),
                    evidence,
                ),
            };
            pass(detail, evidence)
        }
        (None, Some(e)) if ctx.state_may_show() => {
            let name = tag_name(&e.path);
            pass(
            format!("{name} is in the tag list (status {})", e.status),
            Evidence::new(
                Source::ServiceState,
                format!(
                    "the service's tag list holds {name} (status {}, queryStatus {})",
                    e.status, e.query_status
                ),
                None,
            )
            .about(name.clone()),
            )
        }
        // In the list, but the records show no add of the learner's since the step began.
        (None, Some(e)) => {
            let name = tag_name(&e.path);
            ctx.after_attempts(step, expected, tried, |tried| {
                ready(
                    format!(
                        "{name} is in the tag list, but {} no add of yours{}: add a tag of your own (POST to {{baseUrl}}/extendedquerytags)",
                        if ctx.shared && !ctx.records.audit_read() {
                            "this service is shared and nothing shows"
                        } else {
                            "the records show"
                        },
                        ctx.since.map(|t| format!(" since {}", local_time(&rfc3339(t)))).unwrap_or_default()
                    ),
                    tried,
                )
            })
        }
        (None, None) => ctx.after_attempts(step, expected, tried, |tried| ready(
                format!(
                    "no tag yet: POST [{{\"Path\":\"{}\",\"Level\":\"Study\"}}] to {{baseUrl}}/extendedquerytags",
                    suggest.unwrap_or("PatientSex")
                ),
                tried,
            )),
    }
}

/// The subject of a tag step: the learner's tag, or why it is not known.
fn subject_or_block(ctx: &CheckContext<'_>) -> Result<String, Outcome> {
    let suggest = ctx.lab.steps().find_map(|s| match &s.check {
        Check::TagAdded { suggest } => suggest.clone(),
        _ => None,
    });
    learner_tag(ctx, suggest.as_deref()).ok_or_else(|| Outcome::Blocked {
        reason: "add an extended query tag first (its step names the tag the next steps use)"
            .into(),
    })
}

fn tag_used(ctx: &CheckContext<'_>, step: &Step, value: Option<&str>) -> Outcome {
    let tag = match tag_step(ctx) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let expected = format!(
        "a search with {tag} (e.g. /studies?{tag}={}) that finds something",
        value.unwrap_or("…")
    );
    let uses = |a: &Attempt| {
        a.method.eq_ignore_ascii_case("GET")
            && a.route().is_some_and(|(segs, q)| {
                matches!(
                    segs.last().map(String::as_str),
                    Some("studies" | "series" | "instances")
                ) && q.iter().any(|(k, _)| same_tag(k, &tag))
            })
    };
    let attempts = ctx.records.attempts_since(ctx.since);
    if let Some(a) = attempts.iter().find(|a| uses(a) && a.status == 200) {
        return pass(
            format!(
                "searched with {tag} ({}{})",
                local_time(&a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!("{} answered 200{}", a.line(), tool_suffix(a)),
                a.time(),
            ),
        );
    }
    let tried = ctx.tried(uses, |a| a.status != 200);
    ctx.after_attempts(step, expected, tried, |tried| {
        ready(not_recorded_hint(ctx, step), tried)
    })
}

/// The learner's tag, for a step on it; or why it cannot be checked (no tags, no tag yet).
fn tag_step(ctx: &CheckContext<'_>) -> Result<String, Outcome> {
    if let Some(o) = tags_unavailable(ctx) {
        return Err(o);
    }
    subject_or_block(ctx)
}

/// A request of `method` on the learner's tag (`extendedquerytags/{tag}`).
fn on_tag<'a>(method: &'a str, tag: &'a str) -> impl Fn(&Attempt) -> bool + 'a {
    move |a: &Attempt| {
        a.method.eq_ignore_ascii_case(method)
            && tag_of_url(&a.url).is_some_and(|t| same_tag(&t, tag))
    }
}

fn tag_updated(ctx: &CheckContext<'_>, step: &Step, query_status: &str) -> Outcome {
    let tag = match tag_step(ctx) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let expected = format!("{tag} with queryStatus {query_status}");
    let is_patch = on_tag("PATCH", &tag);
    let patched = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .find(|a| is_patch(a) && a.status == 200);
    let listed = ctx
        .records
        .tags
        .as_ref()
        .and_then(|tags| tags.iter().find(|e| same_tag(&e.path, &tag)));
    let tried = ctx.tried(is_patch, |a| a.status != 200);
    match (listed, patched) {
        (Some(e), p)
            if e.query_status.eq_ignore_ascii_case(query_status)
                && (p.is_some() || ctx.state_may_show()) =>
        {
            pass(
            format!("{tag} has queryStatus {}", e.query_status),
            match p {
                Some(a) => Evidence::new(
                    a.source,
                    format!(
                        "{} answered 200{}; the tag list shows queryStatus {}",
                        a.line(),
                        tool_suffix(a),
                        e.query_status
                    ),
                    a.time(),
                ),
                None => Evidence::new(
                    Source::ServiceState,
                    format!(
                        "the service's tag list shows {tag} with queryStatus {}",
                        e.query_status
                    ),
                    None,
                ),
            },
            )
        }
        // The tag is gone now (deleted later): the record of the update is what is left.
        (None, Some(a)) => pass(
            format!(
                "{tag} was updated ({}{})",
                local_time(&a.at),
                tool_suffix(a)
            ),
            Evidence::new(
                a.source,
                format!(
                    "{} answered 200{} (the record keeps the request, not its body)",
                    a.line(),
                    tool_suffix(a)
                ),
                a.time(),
            ),
        ),
        (Some(e), _) if e.query_status.eq_ignore_ascii_case(query_status) => {
            ctx.after_attempts(step, expected, tried, |tried| {
                ready(
                    format!(
                        "{tag} has queryStatus {} already, but the records show no PATCH of yours: PATCH {{\"QueryStatus\": \"{query_status}\"}} to {{baseUrl}}/extendedquerytags/{tag}",
                        e.query_status
                    ),
                    tried,
                )
            })
        }
        (Some(e), _) => match tried.first() {
            Some(t) => fail(
                expected,
                format!(
                    "queryStatus is {}; your last attempt: {} answered {}",
                    e.query_status, t.line, t.status
                ),
                t.diagnosis.clone(),
                tried,
            ),
            None => ready(
                format!(
                    "{tag} has queryStatus {}: PATCH {{\"QueryStatus\": \"{query_status}\"}} to {{baseUrl}}/extendedquerytags/{tag}",
                    e.query_status
                ),
                tried,
            ),
        },
        (None, None) => ctx.after_attempts(step, expected, tried, |_| Outcome::Blocked {
            reason: format!("{tag} is not in the tag list: add it first"),
        }),
    }
}

fn tag_deleted(ctx: &CheckContext<'_>, step: &Step) -> Outcome {
    let tag = match tag_step(ctx) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let expected = format!("{tag} deleted (DELETE answered 204)");
    let is_delete = on_tag("DELETE", &tag);
    if let Some(a) = ctx
        .records
        .attempts_since(ctx.since)
        .into_iter()
        .find(|a| is_delete(a) && a.status == 204)
    {
        return pass(
            format!("{tag} deleted ({}{})", local_time(&a.at), tool_suffix(a)),
            Evidence::new(
                a.source,
                format!("{} answered 204{}", a.line(), tool_suffix(a)),
                a.time(),
            ),
        );
    }
    let listed = ctx
        .records
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|e| same_tag(&e.path, &tag)));
    let added = ctx
        .lab
        .step_of_kind(CheckKind::TagAdded)
        .is_some_and(|s| ctx.done.contains(&s.id));
    let tried = ctx.tried(is_delete, |a| a.status != 204);
    if !listed && added && ctx.saved_subject(CheckKind::TagAdded).is_some() && ctx.state_may_show()
    {
        return pass(
            format!("{tag} is gone from the tag list"),
            Evidence::new(
                Source::ServiceState,
                format!("{tag} was in the tag list when its addition was checked, and is gone now"),
                None,
            ),
        );
    }
    match tried.first() {
        Some(t) => fail(
            expected,
            format!("your last attempt: {} answered {}", t.line, t.status),
            t.diagnosis.clone(),
            tried,
        ),
        None if ctx.may_still_arrive(step) && ctx.records.audit_read() => ctx.waiting(tried),
        None if listed => ready(
            format!("{tag} is still in the tag list: DELETE {{baseUrl}}/extendedquerytags/{tag}"),
            tried,
        ),
        None => Outcome::Blocked {
            reason: format!("add {tag} first: its deletion is checked against its addition"),
        },
    }
}

async fn deleted(ctx: &CheckContext<'_>, step: &Step, level: Level, name: &str) -> Outcome {
    let Some(of) = ctx.lab.dataset.instance(name) else {
        return Outcome::Error {
            message: format!("the dataset has no instance '{name}'"),
        };
    };
    let target = of.at(level);
    let path = match level {
        Level::Study => target.study_path(),
        Level::Series => target.series_path(),
        Level::Instance => target.path(),
    };
    let what = match level {
        Level::Instance => format!("the {} instance", of.display()),
        Level::Series => format!("the series of the {}", of.display()),
        Level::Study => format!("the study of the {}", of.display()),
    };
    let expected = format!("{what} deleted (DELETE {path} answered 204)");
    let Ok(pattern) = RequestPattern::parse(&format!("DELETE {path}")) else {
        return Outcome::Error {
            message: format!("cannot read the route {path}"),
        };
    };
    let attempts = ctx.records.attempts_since(ctx.since);
    let scope = ctx.lab.dataset.in_scope(of, level);
    let feed_deletes = |e: &&FeedEntry| {
        e.action.eq_ignore_ascii_case("delete") && scope.iter().any(|i| i.sop == e.sop)
    };
    if let Some(a) = attempts.iter().find(|a| a.is(&pattern) && a.status == 204) {
        let seqs: Vec<String> = ctx
            .records
            .feed
            .iter()
            .flatten()
            .filter(feed_deletes)
            .map(|e| format!("#{}", e.sequence))
            .collect();
        let feed = if seqs.is_empty() {
            String::new()
        } else {
            format!("; change feed Delete entries {}", seqs.join(", "))
        };
        return pass(
            format!("{what} deleted ({}{})", local_time(&a.at), tool_suffix(a)),
            Evidence::new(
                a.source,
                format!("{} answered 204{}{feed}", a.line(), tool_suffix(a)),
                a.time(),
            ),
        );
    }
    let belongs = |a: &Attempt| a.tries(&pattern);
    let tried = ctx.tried(belongs, |a| a.status != 204);
    // Without a record of the route, the change feed shows the deletes (it cannot tell the level).
    if !ctx.records.audit_read()
        && let Some(feed) = &ctx.records.feed
    {
        let since = ctx.since;
        let gone: Vec<&FeedEntry> = feed
            .iter()
            .filter(feed_deletes)
            .filter(|e| since.is_none_or(|s| e.timestamp.is_none_or(|t| t >= s)))
            .collect();
        if !scope.is_empty()
            && scope.iter().all(|i| gone.iter().any(|e| e.sop == i.sop))
            && !ctx.shared
        {
            let latest = gone.iter().filter_map(|e| e.timestamp).max();
            let seqs: Vec<String> = gone.iter().map(|e| format!("#{}", e.sequence)).collect();
            return pass(
                format!("{what} deleted"),
                Evidence::new(
                    Source::ChangeFeed,
                    format!("Delete entries {}", seqs.join(", ")),
                    latest,
                ),
            );
        }
    }
    if ctx.records.feed.is_none() && !ctx.records.audit_read() {
        // A server without history: the instances gone after the store was done.
        let stored = ctx
            .lab
            .step_of_kind(CheckKind::Store)
            .is_some_and(|s| ctx.done.contains(&s.id));
        if stored {
            let mut all_gone = true;
            for i in &scope {
                match find_instance(ctx, i).await {
                    Ok(a) if a.results().is_empty() && (a.ok() || a.status == 204) => {}
                    Ok(_) => all_gone = false,
                    Err(e) => {
                        return checks_saw(expected, e.to_string(), diagnose_error(&e), tried);
                    }
                }
            }
            if all_gone {
                return pass(
                    format!("{what} is gone"),
                    Evidence::new(
                        Source::ServiceState,
                        format!("{what} was stored and is no longer found on the server"),
                        Some(OffsetDateTime::now_utc()),
                    ),
                );
            }
        }
    }
    ctx.after_attempts(step, expected, tried, |tried| {
        ready(format!("DELETE {{baseUrl}}/{path}"), tried)
    })
}

/// The true answer of a step's question, read from the service now (by the checks' client).
pub async fn true_answer(ctx: &CheckContext<'_>, from: &AnswerFrom) -> Result<String, String> {
    let inst = |n: &str| {
        ctx.lab
            .dataset
            .instance(n)
            .ok_or_else(|| format!("the dataset has no instance '{n}'"))
    };
    let read = |e: dicomlab_dicomweb::ClientError| diagnose_error(&e);
    match from {
        AnswerFrom::Metadata {
            instance,
            attribute,
        } => {
            let i = inst(instance)?;
            let a = ctx.client.metadata(&i.reference()).await.map_err(read)?;
            if !a.ok() {
                return Err(diagnose_answer(ctx.place(), &a));
            }
            let attr = dicomlab_dicom::tags::resolve(attribute)
                .ok_or_else(|| format!("'{attribute}' is not a DICOM keyword"))?;
            let key = dicomlab_dicom::json::tag_key(attr.tag);
            let v = a
                .json()
                .and_then(|j| j.get(0)?.get(&key)?.get("Value").cloned())
                .ok_or_else(|| format!("the metadata has no {attribute}"))?;
            let values: Vec<String> = v
                .as_array()
                .map(|arr| {
                    arr.iter()
                        .map(|x| match x {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Object(o) => o
                                .get("Alphabetic")
                                .and_then(|a| a.as_str())
                                .unwrap_or_default()
                                .to_string(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(values.join("\\"))
        }
        AnswerFrom::ChangeFeed { instance, action } => {
            let i = inst(instance)?;
            let feed = ctx
                .records
                .feed
                .as_ref()
                .ok_or("this server has no change feed")?;
            feed.iter()
                .rfind(|e| e.sop == i.sop && e.action.eq_ignore_ascii_case(action))
                .map(|e| e.sequence.to_string())
                .ok_or_else(|| {
                    format!(
                        "the change feed has no {action} entry for the {}",
                        i.display()
                    )
                })
        }
        AnswerFrom::Frame { instance, frame } => {
            let i = inst(instance)?;
            let dir = ctx
                .scratch
                .join(format!("answer-{}", uuid::Uuid::new_v4().simple()));
            let (a, parts) = ctx
                .client
                .retrieve(&Retrieve::Frame(i.reference(), *frame), &dir)
                .await
                .map_err(read)?;
            let _ = tokio::fs::remove_dir_all(&dir).await;
            if !a.ok() {
                return Err(diagnose_answer(ctx.place(), &a));
            }
            parts
                .first()
                .map(|p| p.size.to_string())
                .ok_or_else(|| "the frame came back empty".to_string())
        }
        AnswerFrom::SearchCount { request } => {
            let filled = ctx.fill(request);
            let p = RequestPattern::parse(&filled)?;
            let mut path = p.segments.join("/");
            if !p.query.is_empty() {
                path.push('?');
                path.push_str(&serde_urlencoded::to_string(&p.query).unwrap_or_default());
            }
            let a = ctx.client.get(&path, DICOM_JSON).await.map_err(read)?;
            if !a.ok() && a.status != 204 {
                return Err(diagnose_answer(ctx.place(), &a));
            }
            Ok(a.results().len().to_string())
        }
    }
}

/// Answers compared as a learner would write them: without case, spaces, thousands separators or
/// DICOM padding.
pub fn same_answer(given: &str, truth: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_end_matches('\0')
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ',' && *c != '_' && *c != '\'')
            .collect::<String>()
            .to_lowercase()
    };
    !norm(given).is_empty() && norm(given) == norm(truth)
}

/// The accept header a request of a lab step needs (the lab names the route, not the header).
pub fn accept_for(pattern: &RequestPattern) -> &'static str {
    let segs: Vec<&str> = pattern.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        [.., "metadata"] => DICOM_JSON,
        [.., "rendered"] => "image/png",
        [.., "frames", _] => FRAMES_ANY,
        ["changefeed", ..] | ["extendedquerytags", ..] | ["operations", ..] => JSON,
        [.., "studies" | "series" | "instances"] => DICOM_JSON,
        _ => MULTIPART_ANY,
    }
}

/// The saved outcome of a step done before: its evidence, as saved.
pub fn saved_pass(p: &StepProgress) -> Option<Outcome> {
    let evidence = p.evidence.clone()?;
    Some(Outcome::Pass {
        detail: format!("done ({})", evidence.summary),
        evidence,
    })
}

/// Reads `v` (a tag list entry) without case, for the screens.
pub fn json_text(v: &serde_json::Value, key: &str) -> String {
    get_ci(v, key)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_compare_as_written() {
        assert!(same_answer(" 2,892,945 ", "2892945"));
        assert!(same_answer("024y", "024Y"));
        assert!(!same_answer("", ""));
        assert!(!same_answer("25Y", "024Y"));
    }

    #[test]
    fn accept_headers_follow_the_route() {
        let a = |p: &str| accept_for(&RequestPattern::parse(p).expect("parses"));
        assert_eq!(a("GET studies?StudyInstanceUID=1"), DICOM_JSON);
        assert_eq!(a("GET studies/1/series/2/metadata"), DICOM_JSON);
        assert!(a("GET studies/1").contains("transfer-syntax=*"));
        assert!(a("GET studies/1/series/2/instances/3/frames/1").contains("octet-stream"));
        assert_eq!(
            a("GET studies/1/series/2/instances/3/rendered"),
            "image/png"
        );
        assert_eq!(a("GET changefeed"), "application/json");
    }

    #[test]
    fn statuses_that_count() {
        assert!(accepted("GET", 200, &[]));
        assert!(!accepted("GET", 204, &[]));
        assert!(accepted("DELETE", 204, &[]));
        assert!(!accepted("GET", 404, &[]));
        assert!(accepted("GET", 204, &[204]));
    }
}
