//! A lab session: the target (embedded practice service, a served one, Azure, or a generic server), the
//! learner's client and the checks' own twin of it, the reader of the service's audit log, and the
//! running of checks against the gathered records, with progress recorded.

use crate::model::StepId;
use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::mpsc;

use super::checks::{self, CheckContext, Outcome, TargetKind};
use super::evidence::{self, Evidence, Learner, Needs, Records, Source};
use super::model::{Check, Lab, Step};
use super::progress::{ProgressStore, Status, TargetProgress};
use crate::config::Profile;
use dicomlab_dicomweb::{AuthConfig, ClientError, DicomWebClient, Exchange, LogReader};

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Open(#[from] crate::targets::OpenError),
    #[error("cannot create a scratch folder: {0}")]
    Scratch(std::io::Error),
}

pub use crate::targets::PRACTICE_PORT;

/// A target to run the lab against.
pub struct Session {
    pub kind: TargetKind,
    /// The learner's client: what "do it" and the screens send.
    pub client: DicomWebClient,
    /// The checks' client: the same credentials and token, its requests marked as the checks' own.
    pub checker: DicomWebClient,
    /// What progress is keyed by: `practice` for the embedded service, else the base URL.
    pub target_key: String,
    /// The embedded practice service, when the profile is `practice` without a base URL.
    pub practice: Option<std::sync::Arc<dyn crate::targets::Embedded>>,
    /// Who assigns roles on the target (the role step's screen and "do it").
    pub roles: crate::targets::RoleAdmin,
    /// Retrieved files and generated samples.
    pub scratch: tempfile::TempDir,
    /// The audit log's reader, when the target has one.
    pub log: Option<LogReader>,
    /// How late audit rows may arrive, in seconds.
    pub log_delay: u64,
    /// The service is shared with other learners.
    pub shared: bool,
    /// What the checks sent themselves (kept with progress at each record).
    pub ledger: dicomlab_dicomweb::Ledger,
    /// What is wrong with the profile (one validation for config and checks).
    pub profile_problems: Vec<String>,
}

impl Session {
    /// Opens a session on a profile. `embedded` starts the embedded practice service, when the
    /// profile is `practice` without a base URL.
    pub async fn open(
        profile: &Profile,
        embedded: Option<&dyn crate::targets::Launch>,
        sink: Option<mpsc::UnboundedSender<Exchange>>,
    ) -> Result<Session, SessionError> {
        let scratch = tempfile::Builder::new()
            .prefix("dicomlab-")
            .tempdir()
            .map_err(SessionError::Scratch)?;
        let t = crate::targets::open(profile, embedded, sink).await?;
        let ledger = dicomlab_dicomweb::Ledger::default();
        let checker = t.client.checking().with_ledger(ledger.clone());
        // The log reader's own token fetches are told apart by their resource (Log Analytics').
        let log = t.log;
        Ok(Session {
            kind: t.kind,
            client: t.client,
            checker,
            target_key: t.key,
            practice: t.practice,
            roles: t.roles,
            scratch,
            log,
            log_delay: t.log_delay,
            shared: profile.shared,
            ledger,
            profile_problems: profile.problems(),
        })
    }

    /// The learner-facing reading of an answer that is not a success (401 vs 403, missing /v1, 406…).
    pub fn diagnose(&self, a: &dicomlab_dicomweb::Answer) -> String {
        super::diagnose::diagnose_answer(
            super::diagnose::Place {
                target: self.kind,
                base: self.client.base(),
                client_id: self.client_id(),
            },
            a,
        )
    }

    fn client_id(&self) -> Option<&str> {
        match self.client.auth() {
            AuthConfig::Azure { client_id, .. } => Some(client_id.as_str()),
            _ => None,
        }
    }

    /// What progress holds for this lab on this target.
    pub fn before(&self, lab: &Lab, store: &ProgressStore) -> TargetProgress {
        store.target(&lab.id, &self.target_key)
    }

    /// Who the learner is in the records: the app's client id and its token's object id.
    pub(crate) async fn learner(&self) -> Learner {
        let mut ids = HashSet::new();
        if let Some(c) = self.client_id() {
            ids.insert(c.to_string());
        }
        if let Ok(Some(t)) = self.checker.token().await
            && let Some(c) = &t.claims
        {
            ids.extend(c.oid.clone());
            ids.extend(c.app.clone());
        }
        Learner {
            ids,
            shared: self.shared,
        }
    }

    /// Runs the checks of every step (or only `only`) without touching progress (the caller records):
    /// the TUI holds no lock while the requests run. A step done before keeps its verdict.
    pub async fn run_all(
        &self,
        lab: &Lab,
        before: &TargetProgress,
        only: Option<&str>,
    ) -> Vec<(StepId, Outcome)> {
        let steps: Vec<&Step> = lab
            .steps()
            .filter(|s| only.is_none_or(|o| o == s.id))
            .collect();
        let mut out: Vec<(StepId, Outcome)> = Vec::new();
        let mut done: HashSet<StepId> = before
            .steps
            .iter()
            .filter(|(_, p)| p.status == Status::Done)
            .map(|(id, _)| id.clone())
            .collect();
        let mut todo: Vec<&Step> = Vec::new();
        for s in &steps {
            match before.steps.get(&s.id).and_then(checks::saved_pass) {
                Some(o) => out.push((s.id.clone(), o)),
                None => todo.push(s),
            }
        }
        if todo.is_empty() {
            return order(lab, out);
        }
        let needs = needs_of(&todo, self.kind);
        let learner = if needs.audit {
            self.learner().await
        } else {
            Learner::default()
        };
        // The checks' own requests: kept in progress, and those of this session not yet kept.
        let mut own = before.own.clone();
        own.extend(self.ledger.snapshot());
        let gathered = evidence::gather(
            &self.checker,
            evidence::Sources {
                log: self.log.as_ref(),
                delay_secs: self.log_delay,
                learner: &learner,
                did: &before.did,
                own: &own,
            },
            before.earliest_since(),
            needs,
        )
        .await;
        let records = match gathered {
            Ok(r) => r,
            Err(e) => {
                self.judge_unreachable(lab, before, &done, todo, &e, &mut out)
                    .await;
                return order(lab, out);
            }
        };
        for s in todo {
            let mut o = self.judge(lab, before, &done, s, &records).await;
            if o.is_pass() {
                done.insert(s.id.clone());
            } else if let Some(r) = s.requires.iter().find(|r| !done.contains(*r))
                && !matches!(
                    o,
                    Outcome::NotSupported { .. } | Outcome::Fail { .. } | Outcome::NotYet { .. }
                )
            {
                let title = lab.step(r).map_or(r.as_str(), |x| x.title.as_str());
                o = Outcome::Blocked {
                    reason: format!("do \"{title}\" first"),
                };
            }
            out.push((s.id.clone(), o));
        }
        order(lab, out)
    }

    /// The service (or its token host) cannot be reached: said once, the rest blocked; what needs
    /// no service (or, a token problem, no token) is judged as usual.
    async fn judge_unreachable(
        &self,
        lab: &Lab,
        before: &TargetProgress,
        done: &HashSet<StepId>,
        todo: Vec<&Step>,
        e: &ClientError,
        out: &mut Vec<(StepId, Outcome)>,
    ) {
        // The service (or its token host) cannot be reached: say why once, block the rest.
        let why = super::diagnose::diagnose_error(e);
        let token = matches!(e, ClientError::Token(_));
        let mut said = false;
        for s in todo {
            let o = match &s.check {
                // What needs no service, or (a token problem) no token, is judged as usual.
                Check::Environment | Check::PostmanImport => {
                    self.judge(lab, before, done, s, &Records::empty()).await
                }
                Check::ServiceExists if token => {
                    self.judge(lab, before, done, s, &Records::empty()).await
                }
                // Said once, as "not yet": the checks' own requests failed, not the
                // learner's (their attempts, when they made some, show on the steps once
                // the service answers again).
                Check::Token if token => {
                    said = true;
                    Outcome::NotYet {
                        observed: format!(
                            "no token for the DICOM service: {}",
                            dicomlab_dicom::text::visible(&e.to_string())
                        ),
                        fix: why.clone(),
                    }
                }
                _ if !said && !token => {
                    said = true;
                    Outcome::NotYet {
                        observed: format!(
                            "no answer from the service: {}",
                            dicomlab_dicom::text::visible(&e.to_string())
                        ),
                        fix: why.clone(),
                    }
                }
                _ => Outcome::Blocked {
                    reason: format!(
                        "blocked by {}: {why}",
                        if token { "the token" } else { "the service" }
                    ),
                },
            };
            out.push((s.id.clone(), o));
        }
    }

    async fn judge(
        &self,
        lab: &Lab,
        before: &TargetProgress,
        done: &HashSet<StepId>,
        step: &Step,
        records: &Records,
    ) -> Outcome {
        let ctx = CheckContext {
            client: &self.checker,
            target: self.kind,
            lab,
            records,
            saved: &before.steps,
            done,
            since: before.since(&step.id),
            scratch: self.scratch.path().to_path_buf(),
            shared: self.shared,
            profile_problems: &self.profile_problems,
        };
        checks::run(&ctx, step).await
    }

    /// Runs one step's check (see [`Session::run_all`]).
    pub async fn run_check(
        &self,
        lab: &Lab,
        before: &TargetProgress,
        step_id: &str,
    ) -> Option<Outcome> {
        lab.step(step_id)?;
        self.run_all(lab, before, Some(step_id))
            .await
            .into_iter()
            .next()
            .map(|(_, o)| o)
    }

    /// Records an outcome in progress.
    pub fn record(&self, lab: &Lab, store: &mut ProgressStore, step_id: &str, outcome: &Outcome) {
        self.keep_own(lab, store);
        store.record(&lab.id, &self.target_key, step_id, outcome);
    }

    /// Moves the checks' own requests noted so far into progress (their audit rows arrive later).
    pub fn keep_own(&self, lab: &Lab, store: &mut ProgressStore) {
        store.own(&lab.id, &self.target_key, self.ledger.take());
    }

    /// Records an outcome judged from `before` unless the step was reset meanwhile (see
    /// [`ProgressStore::record_from`]); whether it was recorded.
    pub fn record_from(
        &self,
        lab: &Lab,
        store: &mut ProgressStore,
        before: &TargetProgress,
        step_id: &str,
        outcome: &Outcome,
    ) -> bool {
        self.keep_own(lab, store);
        store.record_from(&lab.id, &self.target_key, before, step_id, outcome)
    }

    /// Keeps one of the learner's exchanges sent from dicomlab (never the checks').
    pub fn keep_exchange(&self, lab: &Lab, store: &mut ProgressStore, e: &Exchange) {
        if let Some(a) = evidence::Attempt::from_exchange(e) {
            store.did(&lab.id, &self.target_key, a);
        }
    }

    /// Runs one step's check and records it.
    pub async fn check_step(
        &self,
        lab: &Lab,
        store: &mut ProgressStore,
        step_id: &str,
    ) -> Option<Outcome> {
        let before = self.before(lab, store);
        let outcome = self.run_check(lab, &before, step_id).await?;
        self.record(lab, store, step_id, &outcome);
        Some(outcome)
    }

    /// Runs every check (or only `only`) and records them.
    pub async fn check_all(
        &self,
        lab: &Lab,
        store: &mut ProgressStore,
        only: Option<&str>,
    ) -> Vec<(StepId, Outcome)> {
        let before = self.before(lab, store);
        let out = self.run_all(lab, &before, only).await;
        for (id, o) in &out {
            self.record(lab, store, id, o);
        }
        out
    }

    /// Checks a learner's answer to a step's question against the service; a right answer is the
    /// step's evidence.
    pub async fn answer(
        &self,
        lab: &Lab,
        before: &TargetProgress,
        step_id: &str,
        given: &str,
    ) -> Outcome {
        let Some(step) = lab.step(step_id) else {
            return Outcome::Error {
                message: format!("no step '{step_id}'"),
            };
        };
        let Some(q) = &step.question else {
            return Outcome::Error {
                message: format!(
                    "the step '{step_id}' asks no question: it is checked from the service's records"
                ),
            };
        };
        let needs = Needs {
            // Where the audit log records the learner's reads, they are the evidence: an answer
            // (which dicomlab checks by reading the service itself) is for services without.
            audit: self.log.is_some(),
            feed: matches!(q.answer, super::model::AnswerFrom::ChangeFeed { .. }),
            ..Needs::default()
        };
        let learner = Learner::default();
        let records = match evidence::gather(
            &self.checker,
            evidence::Sources {
                log: self.log.as_ref(),
                ..evidence::Sources::none(&learner)
            },
            None,
            needs,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Fail {
                    expected: "an answer from the service".into(),
                    observed: e.to_string(),
                    diagnosis: super::diagnose::diagnose_error(&e),
                    tried: Vec::new(),
                };
            }
        };
        if records.audit_read() {
            return checks::ready(
                "this service's audit log records your requests: the step is checked from it, no answer needed (press c to check)",
                Vec::new(),
            );
        }
        let done = HashSet::new();
        let ctx = CheckContext {
            client: &self.checker,
            target: self.kind,
            lab,
            records: &records,
            saved: &before.steps,
            done: &done,
            since: None,
            scratch: self.scratch.path().to_path_buf(),
            shared: self.shared,
            profile_problems: &self.profile_problems,
        };
        match checks::true_answer(&ctx, &q.answer).await {
            Ok(truth) if checks::same_answer(given, &truth) => Outcome::Pass {
                detail: format!("right: {}", truth.trim()),
                evidence: Evidence::new(
                    Source::Answer,
                    format!(
                        "answered \"{}\" to \"{}\" — the service says the same",
                        dicomlab_dicom::text::visible(given.trim()),
                        q.ask
                    ),
                    Some(time::OffsetDateTime::now_utc()),
                ),
            },
            Ok(_) => Outcome::Fail {
                expected: q.ask.clone(),
                observed: format!(
                    "you answered \"{}\"",
                    dicomlab_dicom::text::visible(given.trim())
                ),
                diagnosis:
                    "that is not what the service says: do the step and read its result again"
                        .into(),
                tried: Vec::new(),
            },
            Err(why) => Outcome::Blocked {
                reason: format!("the answer cannot be checked now: {why}"),
            },
        }
    }

    /// The values lab text may name: `{baseUrl}`, `{tokenUrl}`, `{tenantId}`, `{clientId}`, `{resource}`,
    /// `{workspaceId}` (never the secret), plus the dataset's (`{red}`, `{red.study}`…).
    pub fn placeholders(&self, lab: &Lab) -> Vec<(String, String)> {
        let mut v = vec![("{baseUrl}".to_string(), self.client.base().to_string())];
        if let AuthConfig::Azure {
            tenant_id,
            client_id,
            resource,
            ..
        } = self.client.auth()
        {
            v.push((
                "{tokenUrl}".into(),
                self.client.auth().token_url().unwrap_or_default(),
            ));
            v.push(("{tenantId}".into(), tenant_id.clone()));
            v.push(("{clientId}".into(), client_id.clone()));
            v.push(("{resource}".into(), resource.clone()));
        }
        if let Some(l) = &self.log {
            v.push(("{workspaceId}".into(), l.workspace().to_string()));
        }
        let mut data: Vec<(String, String)> = lab.dataset_values().into_iter().collect();
        // Longest first: `{red.study}` before `{red}`.
        data.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        v.extend(data);
        v
    }

    /// How long until the current token lapses (None: no token in use yet).
    pub async fn token_left(&self) -> Option<Duration> {
        self.client
            .token()
            .await
            .ok()
            .flatten()
            .map(|t| t.remaining())
    }
}

/// What the checks of these steps read.
fn needs_of(steps: &[&Step], kind: TargetKind) -> Needs {
    let mut n = Needs::default();
    for s in steps {
        match &s.check {
            Check::Store { .. } | Check::Deleted { .. } => {
                n.feed = kind != TargetKind::Generic;
                n.audit = true;
            }
            Check::Token | Check::Requests { .. } => n.audit = true,
            Check::TagAdded { .. }
            | Check::TagUsed { .. }
            | Check::TagUpdated { .. }
            | Check::TagDeleted => {
                n.tags = kind != TargetKind::Generic;
                n.audit = true;
            }
            _ => {}
        }
        if let Some(q) = &s.question
            && matches!(q.answer, super::model::AnswerFrom::ChangeFeed { .. })
        {
            n.feed = kind != TargetKind::Generic;
        }
    }
    n
}

/// Outcomes in lab order.
fn order(lab: &Lab, mut out: Vec<(StepId, Outcome)>) -> Vec<(StepId, Outcome)> {
    let ids: Vec<&str> = lab.steps().map(|s| s.id.as_str()).collect();
    out.sort_by_key(|(id, _)| ids.iter().position(|i| i == id));
    out
}
