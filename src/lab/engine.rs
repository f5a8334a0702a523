//! A lab session: the target (embedded practice service, Azure, or a generic server), its client, and the
//! running of checks with progress recorded.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::checks::{self, CheckContext, Outcome, TargetKind};
use super::model::{Check, Lab};
use super::progress::{ProgressStore, Status};
use crate::config::{GenericAuth, Profile};
use crate::dicomweb::{AuthConfig, ClientError, DicomWebClient, Exchange};
use crate::practice::{self, RunningService, ServiceConfig, StartError};

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the practice service could not start: {0}")]
    Practice(#[from] StartError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot create a scratch folder: {0}")]
    Scratch(std::io::Error),
}

/// A target to run the lab against.
pub struct Session {
    pub kind: TargetKind,
    pub client: DicomWebClient,
    /// What progress is keyed by: `practice` for the embedded service (its port changes), else the base URL.
    pub target_key: String,
    /// The embedded practice service, when the profile is `practice` without a base URL.
    pub practice: Option<RunningService>,
    /// Retrieved files and generated samples.
    pub scratch: tempfile::TempDir,
}

impl Session {
    /// Opens a session on a profile. `practice_data` is where the embedded service keeps its data.
    pub async fn open(
        profile: &Profile,
        practice_data: Option<PathBuf>,
        sink: Option<mpsc::UnboundedSender<Exchange>>,
    ) -> Result<Session, SessionError> {
        let scratch = tempfile::Builder::new()
            .prefix("dicomlab-")
            .tempdir()
            .map_err(SessionError::Scratch)?;
        let (client, practice, target_key) =
            if profile.kind == TargetKind::Practice && profile.base_url.trim().is_empty() {
                let svc = practice::start(ServiceConfig {
                    data_dir: practice_data,
                    heavy_jobs: 1,
                    ..ServiceConfig::default()
                })
                .await?;
                let auth = AuthConfig::Azure {
                    tenant_id: svc.tenant_id.clone(),
                    client_id: svc.client_id.clone(),
                    client_secret: crate::dicomweb::Secret::new(svc.client_secret.clone()),
                    resource: svc.resource.clone(),
                    authority: svc.authority.clone(),
                    token_version: Default::default(),
                };
                (
                    DicomWebClient::new(&svc.base_url, auth)?,
                    Some(svc),
                    "practice".to_string(),
                )
            } else {
                let auth = match (profile.kind, profile.auth) {
                    (TargetKind::Generic, GenericAuth::None) => AuthConfig::None,
                    (TargetKind::Generic, GenericAuth::Basic) => AuthConfig::Basic {
                        username: profile.username.clone(),
                        password: profile.password.clone(),
                    },
                    (TargetKind::Generic, GenericAuth::Bearer) => AuthConfig::Bearer {
                        token: profile.token.clone(),
                    },
                    _ => AuthConfig::Azure {
                        tenant_id: profile.tenant_id.trim().to_string(),
                        client_id: profile.client_id.trim().to_string(),
                        client_secret: profile.client_secret.clone(),
                        resource: profile.resource.trim().to_string(),
                        authority: profile.authority.trim().to_string(),
                        token_version: profile.token_version,
                    },
                };
                let base = profile.base_url.trim().trim_end_matches('/').to_string();
                (DicomWebClient::new(&base, auth)?, None, base)
            };
        let client = match sink {
            Some(s) => client.with_sink(s),
            None => client,
        };
        Ok(Session {
            kind: profile.kind,
            client,
            target_key,
            practice,
            scratch,
        })
    }

    fn context(&self, passed: HashSet<Check>) -> CheckContext<'_> {
        CheckContext {
            client: &self.client,
            target: self.kind,
            passed,
            scratch: self.scratch.path().to_path_buf(),
        }
    }

    /// The learner-facing reading of an answer that is not a success (401 vs 403, missing /v1, 406…).
    pub fn diagnose(&self, a: &crate::dicomweb::Answer) -> String {
        super::checks::diagnose(&self.context(HashSet::new()), a)
    }

    /// Checks that passed before, from progress: the prerequisites of the delete checks.
    pub fn passed_before(&self, lab: &Lab, store: &ProgressStore) -> HashSet<Check> {
        let steps = store.steps(&lab.id, &self.target_key);
        lab.steps()
            .filter(|s| steps.get(&s.id).is_some_and(|p| p.status == Status::Done))
            .map(|s| s.check.clone())
            .collect()
    }

    /// What a check needs from progress: the checks passed before, and the saved state of every step.
    pub fn before(&self, lab: &Lab, store: &ProgressStore) -> Before {
        Before {
            passed: self.passed_before(lab, store),
            saved: store.steps(&lab.id, &self.target_key),
        }
    }

    /// Runs one step's check without touching progress (the caller records it): the TUI holds no lock
    /// while the requests run. A step done before whose state a later step of its exercise has moved on
    /// (saved as done: the tag deleted after it was added) counts as passed, and says so.
    pub async fn run_check(&self, lab: &Lab, before: &Before, step_id: &str) -> Option<Outcome> {
        let step = lab.step(step_id)?;
        let ctx = self.context(before.passed.clone());
        let outcome = checks::run(&ctx, &step.check).await;
        let done = |id: &str| {
            before
                .saved
                .get(id)
                .is_some_and(|p| p.status == Status::Done)
        };
        let later_done = lab.exercise_of(step_id).is_some_and(|ex| {
            ex.steps
                .iter()
                .skip_while(|s| s.id != step_id)
                .skip(1)
                .any(|s| done(&s.id))
        });
        if !outcome.is_pass()
            && !matches!(outcome, Outcome::NotSupported { .. })
            && done(step_id)
            && later_done
        {
            return Some(moved_on(&outcome));
        }
        Some(outcome)
    }

    /// Records an outcome in progress.
    pub fn record(&self, lab: &Lab, store: &mut ProgressStore, step_id: &str, outcome: &Outcome) {
        record(store, lab, &self.target_key, step_id, outcome);
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

    /// Runs every check in lab order (or only `only`), recording progress; a pass counts as a
    /// prerequisite for the steps after it. A step done before whose state a later step of the same
    /// exercise has moved on (the tag deleted after it was added) counts as passed, and says so.
    pub async fn check_all(
        &self,
        lab: &Lab,
        store: &mut ProgressStore,
        only: Option<&str>,
    ) -> Vec<(String, Outcome)> {
        let before = self.before(lab, store);
        let out = self.run_all(lab, &before, only).await;
        for (id, o) in &out {
            self.record(lab, store, id, o);
        }
        out
    }

    /// [`Session::check_all`] without touching progress (the caller records).
    pub async fn run_all(
        &self,
        lab: &Lab,
        before: &Before,
        only: Option<&str>,
    ) -> Vec<(String, Outcome)> {
        let mut passed = before.passed.clone();
        let mut out: Vec<(String, Outcome)> = Vec::new();
        for step in lab.steps() {
            if only.is_some_and(|o| o != step.id) {
                continue;
            }
            let ctx = self.context(passed.clone());
            let outcome = checks::run(&ctx, &step.check).await;
            if outcome.is_pass() {
                passed.insert(step.check.clone());
            }
            out.push((step.id.clone(), outcome));
        }
        for exercise in &lab.exercises {
            let ids: Vec<&str> = exercise.steps.iter().map(|s| s.id.as_str()).collect();
            for (i, id) in ids.iter().enumerate() {
                let later_passes = ids[i + 1..]
                    .iter()
                    .any(|l| out.iter().any(|(s, o)| s == l && o.is_pass()));
                let was_done = before
                    .saved
                    .get(*id)
                    .is_some_and(|p| p.status == Status::Done);
                if let Some((_, o)) = out.iter_mut().find(|(s, _)| s == id)
                    && !o.is_pass()
                    && !matches!(o, Outcome::NotSupported { .. })
                    && was_done
                    && later_passes
                {
                    *o = moved_on(o);
                }
            }
        }
        out
    }

    /// The values lab text may name: `{baseUrl}`, `{tokenUrl}`, `{tenantId}`, `{clientId}`, `{resource}`
    /// (never the secret), plus the lab's UIDs.
    pub fn placeholders(&self) -> Vec<(String, String)> {
        use crate::dicom::samples::{RED_UID, SERIES1_UID, STUDY_UID};
        let mut v = vec![
            ("{baseUrl}".to_string(), self.client.base().to_string()),
            ("{study}".to_string(), STUDY_UID.to_string()),
            ("{series1}".to_string(), SERIES1_UID.to_string()),
            ("{red}".to_string(), RED_UID.to_string()),
        ];
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

/// What progress says before a check runs (see [`Session::before`]).
pub struct Before {
    pub passed: HashSet<Check>,
    pub saved: std::collections::BTreeMap<String, crate::lab::progress::StepProgress>,
}

/// A step done before, whose state a later step moved on: a pass that says so.
fn moved_on(o: &Outcome) -> Outcome {
    Outcome::Pass {
        detail: format!(
            "done earlier; a later step has moved the state on ({})",
            o.one_line()
        ),
    }
}

fn record(store: &mut ProgressStore, lab: &Lab, target: &str, step: &str, outcome: &Outcome) {
    match outcome {
        // Not supported is not the learner's failure: leave the record alone.
        Outcome::NotSupported { .. } => {}
        o => store.record(
            &lab.id,
            target,
            step,
            o.is_pass(),
            (!o.is_pass()).then(|| o.one_line()),
        ),
    }
}
