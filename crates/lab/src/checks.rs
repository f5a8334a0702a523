//! Step checks. A ✓ is a claim about the learner: the service's own records (its change feed, its audit
//! log, what it holds as the result of the learner's write) show that the learner's client did the step,
//! or the learner did it inside dicomlab (see [`super::evidence`]). A check reads those records; "the
//! service could answer this now" is never a pass, only *ready*. A failure says what was expected, what
//! was observed, and the fix — with the learner's own failed attempts, from any tool, diagnosed.
//!
//! Every outcome is computed from the gathered [`Records`] plus, for the few steps whose record is the
//! service itself (it exists, the role, a generic server's stored data), one probe of the checks' own.

use crate::model::StepId;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use time::OffsetDateTime;

use crate::dataset::Instance;
use crate::diagnose::{Failed, Place, diagnose_status};
use crate::evidence::{Attempt, AuditState, Evidence, Records};
use crate::model::{By, Check, CheckKind, LEARNER_TAG, Lab, Step};
use crate::progress::StepProgress;
use crate::request::RequestPattern;
use dicomlab_dicomweb::routes::{DICOM_JSON, FRAMES_ANY, JSON, MULTIPART_ANY};
use dicomlab_dicomweb::{AuthConfig, DicomWebClient, get_ci};

mod answer;
mod deleted;
mod requests;
mod service;
mod signin;
mod store;
mod tags;
mod token;

pub use super::diagnose::{diagnose_error, reason_text};
pub use crate::outcome::{Outcome, Tried};
pub use crate::targets::TargetKind;
pub(crate) use answer::{same_answer, true_answer};

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
    pub saved: &'a BTreeMap<StepId, StepProgress>,
    /// Steps done (saved, or passed earlier in this run).
    pub done: &'a HashSet<StepId>,
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
            at: a.at,
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
        let since = self.saved.get(&step.id).and_then(|p| p.waiting_since);
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

/// Runs a step's check.
pub async fn run(ctx: &CheckContext<'_>, step: &Step) -> Outcome {
    match &step.check {
        Check::ServiceExists => service::service_exists(ctx).await,
        Check::Role { may } => service::role(ctx, *may).await,
        Check::Environment => service::environment(ctx),
        Check::PostmanImport => ready(
            "import the workshop's Postman environment on the Environment screen (I), or run `dicomlab import-postman FILE`",
            Vec::new(),
        ),
        Check::Token => token::token(ctx, step).await,
        Check::Store { instances } => store::store(ctx, step, instances).await,
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
                match tags::subject_or_block(ctx) {
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
            requests::requests_check(ctx, step, &specs, &labels, status)
        }
        Check::TagAdded { suggest } => tags::tag_added(ctx, step, suggest.as_deref()),
        Check::TagUsed { value } => tags::tag_used(ctx, step, value.as_deref()),
        Check::TagUpdated { query_status } => tags::tag_updated(ctx, step, query_status),
        Check::TagDeleted => tags::tag_deleted(ctx, step),
        Check::Deleted { level, instance } => deleted::deleted(ctx, step, *level, instance).await,
    }
}

fn tool_suffix(a: &Attempt) -> String {
    a.tool
        .as_ref()
        .map(|t| format!(", from {t}"))
        .unwrap_or_default()
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

/// What to tell a learner whose reads leave no record dicomlab can see.
fn not_recorded_hint(ctx: &CheckContext<'_>, step: &Step) -> String {
    match (ctx.reads_unrecorded(), &step.question) {
        (Some(why), Some(q)) => format!("no record of it yet ({why}): do it (press d, or with your tool), then answer the question — {}", q.ask),
        (Some(why), None) => format!("no record of it yet ({why}): do it here (press d, or on the screen below)"),
        (None, _) => "nothing of it in the service's records yet: send the requests (press d, or with Postman, curl or Python)".into(),
    }
}

/// The accept header a request of a lab step needs (the lab names the route, not the header).
pub(crate) fn accept_for(pattern: &RequestPattern) -> &'static str {
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
}
