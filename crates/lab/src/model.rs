//! The lab as data: `labs/*.toml`. A lab declares its dataset (the instances it stores, with the UIDs and
//! attributes the checks expect) and its exercises → steps, each with instructions, progressive hints,
//! an optional "show me", prerequisites and a parameterised check, keyed by stable ids. The default lab
//! is embedded in the binary; `--lab FILE` loads another. `labs/README.md` documents the format.
//!
//! Loading validates everything a check will rely on — step ids, prerequisites, instance names,
//! placeholders, request patterns, generators, UIDs — and names the line of the first problem, so an
//! instructor finds mistakes at `dicomlab lab lint FILE`, never in class.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, DatasetError};
pub use super::request::By;
use super::request::{RequestPattern, RequestSpec};

mod step_id;
pub use step_id::StepId;

/// The format this build reads.
pub const FORMAT_VERSION: u32 = 2;

/// The default lab, embedded.
pub const DEFAULT_LAB: &str = include_str!("../../../labs/dicom-service.toml");

/// A lab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    pub format_version: u32,
    /// Stable id: progress is kept per lab id.
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub intro: String,
    /// The instances the lab stores and the checks look for.
    #[serde(default)]
    pub dataset: Dataset,
    /// What the practice service starts with when it runs this lab.
    #[serde(default)]
    pub practice: PracticeStart,
    #[serde(rename = "exercise")]
    pub exercises: Vec<Exercise>,
}

/// What the practice service starts with when it runs a lab (`[practice]` of the lab file): the
/// embedded one, `dicomlab --lab FILE serve`, a classroom's learners' services. Held while that service
/// runs, never kept: another lab started on the same service later begins without it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PracticeStart {
    /// Roles the lab's client app holds from the start (`"DICOM Data Owner"`, `"DICOM Data Reader"`):
    /// a lab without a role step needs one, or its first store answers 403.
    #[serde(default)]
    pub roles: Vec<crate::targets::Role>,
}

impl PracticeStart {
    /// Gives the embedded practice service a session opened what the lab starts it with (a served one
    /// took its own `--lab`'s at start; Azure's roles are the portal's).
    pub fn apply(&self, embedded: Option<&dyn crate::targets::Embedded>) {
        if let Some(svc) = embedded {
            svc.hold_lab_roles(&self.roles);
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// Which of the TUI's screens a step opens below its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenKind {
    Role,
    Environment,
    Store,
    Search,
    Retrieve,
    ChangeFeed,
    Tags,
    Viewer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Stable id (progress is keyed by it, so reordering keeps a learner's progress).
    pub id: StepId,
    pub title: String,
    pub instructions: String,
    /// Revealed one at a time.
    #[serde(default)]
    pub hints: Vec<String>,
    /// The exact request, with `{baseUrl}`, `{red.study}` and friends.
    #[serde(default)]
    pub show_me: Option<String>,
    /// Optional steps do not count for `dicomlab check`'s exit code; untried, a report says "not tried".
    #[serde(default)]
    pub optional: bool,
    /// Steps that must be done first (ids).
    #[serde(default)]
    pub requires: Vec<StepId>,
    /// The screen below the instructions (default: from the check's kind).
    #[serde(default)]
    pub screen: Option<ScreenKind>,
    /// The dataset instance the step's screen starts on (retrieve, viewer).
    #[serde(default)]
    pub instance: Option<String>,
    pub check: Check,
    /// A question only the result answers: the evidence where the service keeps no record of the
    /// learner's reads (a generic server, Azure without the audit log).
    #[serde(default)]
    pub question: Option<Question>,
}

impl Step {
    /// The screen this step shows.
    pub fn screen(&self) -> Option<ScreenKind> {
        self.screen.or(match &self.check {
            Check::Role { .. } => Some(ScreenKind::Role),
            Check::Environment | Check::PostmanImport => Some(ScreenKind::Environment),
            Check::Store { .. } => Some(ScreenKind::Store),
            Check::TagAdded { .. } | Check::TagUpdated { .. } | Check::TagDeleted => {
                Some(ScreenKind::Tags)
            }
            Check::TagUsed { .. } => Some(ScreenKind::Search),
            _ => None,
        })
    }
}

/// What the learner must do for a role step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Read,
    #[default]
    Write,
}

pub use dicomlab_dicom::Level;

/// What a step's check looks for (see `checks`); every kind names the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The service URL answers at all (a 401 without a token proves it exists).
    ServiceExists,
    /// The app holds a role that allows `may` (write: an empty store, which stores nothing, is not 403).
    Role {
        #[serde(default)]
        may: Permission,
    },
    /// The environment values are all there and well-formed (the learner's own configuration).
    Environment,
    /// The workshop's Postman environment was imported into dicomlab.
    PostmanImport,
    /// The learner's app got a token (the sign-in log, an authenticated request, or dicomlab's).
    Token,
    /// These dataset instances were stored (Create entries in the change feed).
    Store { instances: Vec<String> },
    /// The learner made these requests, and the service answered each with success.
    Requests {
        requests: Vec<RequestSpec>,
        /// Statuses that count (default: 2xx, but not 204 for a GET: a search that found nothing).
        #[serde(default)]
        status: Vec<u16>,
        /// Whose requests count: anyone's (default), the app's own, or a user's signed in through
        /// the app (a browser app such as OHIF; the audit log tells them apart). An alternative may
        /// say its own (`{ request = "…", by = "user" }`).
        #[serde(default)]
        by: By,
    },
    /// An extended query tag was added (any valid tag; `suggest` is the one the lab proposes).
    TagAdded {
        #[serde(default)]
        suggest: Option<String>,
    },
    /// A search used the learner's tag and found something (`value`: what the lab suggests).
    TagUsed {
        #[serde(default)]
        value: Option<String>,
    },
    /// The learner's tag got this QueryStatus.
    TagUpdated { query_status: String },
    /// The learner's tag was deleted.
    TagDeleted,
    /// The learner deleted the study / series / instance of a dataset instance.
    Deleted { level: Level, instance: String },
}

/// The kinds of [`Check`]: what code that looks for "the lab's tag step" names (never a string).
/// The lab file's `kind = "…"` names are these variants' snake_case names, as [`Check`]'s serde
/// tag derives them (a test keeps the two in step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    ServiceExists,
    Role,
    Environment,
    PostmanImport,
    Token,
    Store,
    Requests,
    TagAdded,
    TagUsed,
    TagUpdated,
    TagDeleted,
    Deleted,
}

impl CheckKind {
    pub const ALL: [CheckKind; 12] = [
        CheckKind::ServiceExists,
        CheckKind::Role,
        CheckKind::Environment,
        CheckKind::PostmanImport,
        CheckKind::Token,
        CheckKind::Store,
        CheckKind::Requests,
        CheckKind::TagAdded,
        CheckKind::TagUsed,
        CheckKind::TagUpdated,
        CheckKind::TagDeleted,
        CheckKind::Deleted,
    ];

    /// The name the lab file writes.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::ServiceExists => "service_exists",
            CheckKind::Role => "role",
            CheckKind::Environment => "environment",
            CheckKind::PostmanImport => "postman_import",
            CheckKind::Token => "token",
            CheckKind::Store => "store",
            CheckKind::Requests => "requests",
            CheckKind::TagAdded => "tag_added",
            CheckKind::TagUsed => "tag_used",
            CheckKind::TagUpdated => "tag_updated",
            CheckKind::TagDeleted => "tag_deleted",
            CheckKind::Deleted => "deleted",
        }
    }
}

impl Check {
    /// Its kind.
    pub fn kind(&self) -> CheckKind {
        match self {
            Check::ServiceExists => CheckKind::ServiceExists,
            Check::Role { .. } => CheckKind::Role,
            Check::Environment => CheckKind::Environment,
            Check::PostmanImport => CheckKind::PostmanImport,
            Check::Token => CheckKind::Token,
            Check::Store { .. } => CheckKind::Store,
            Check::Requests { .. } => CheckKind::Requests,
            Check::TagAdded { .. } => CheckKind::TagAdded,
            Check::TagUsed { .. } => CheckKind::TagUsed,
            Check::TagUpdated { .. } => CheckKind::TagUpdated,
            Check::TagDeleted => CheckKind::TagDeleted,
            Check::Deleted { .. } => CheckKind::Deleted,
        }
    }
}

/// A question whose answer only the result of the step gives, checked against the service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub ask: String,
    pub answer: AnswerFrom,
}

/// Where the true answer is read (at answer time, from the service).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum AnswerFrom {
    /// An attribute of an instance's metadata (WADO-RS metadata), e.g. PatientAge.
    Metadata { instance: String, attribute: String },
    /// The sequence number of an instance's change-feed entry.
    ChangeFeed {
        instance: String,
        #[serde(default = "create")]
        action: String,
    },
    /// The size in bytes of a frame of an instance.
    Frame {
        instance: String,
        #[serde(default = "one")]
        frame: u32,
    },
    /// How many results a search returns.
    SearchCount { request: String },
}

fn create() -> String {
    "Create".into()
}
fn one() -> u32 {
    1
}

/// Why a lab file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot read the lab file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the lab file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error(
        "the lab file {path} has format_version {found}; this dicomlab reads version {FORMAT_VERSION} (labs/README.md describes it)"
    )]
    Version { path: String, found: u32 },
    /// A problem found after parsing, with the line it is on.
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

/// In a step's requests only: the learner's extended query tag (the one the tag step credited), so that
/// `"GET extendedquerytags/{tag}"` is checked on the learner's own tag.
pub const LEARNER_TAG: &str = "{tag}";

/// The placeholders lab text may use besides the dataset's (`{red}`, `{red.study}`…).
pub const TARGET_PLACEHOLDERS: [&str; 6] = [
    "baseUrl",
    "tokenUrl",
    "tenantId",
    "clientId",
    "resource",
    "workspaceId",
];

impl Lab {
    /// The embedded default lab.
    pub fn embedded() -> Result<Lab, LabError> {
        Self::parse(DEFAULT_LAB, "<embedded dicom-service.toml>")
    }

    /// Loads a lab file (`--lab FILE`); files the dataset names are found beside it.
    pub fn load(path: &std::path::Path) -> Result<Lab, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut lab = Self::parse(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            lab.dataset.set_folder(dir);
        }
        Ok(lab)
    }

    /// Parses and validates lab text; errors name the line.
    pub fn parse(text: &str, path: &str) -> Result<Lab, LabError> {
        #[derive(Deserialize)]
        struct Version {
            format_version: Option<u32>,
        }
        if let Ok(Version {
            format_version: Some(v),
        }) = toml::from_str::<Version>(text)
            && v != FORMAT_VERSION
        {
            return Err(LabError::Version {
                path: path.to_string(),
                found: v,
            });
        }
        let lab: Lab = toml::from_str(text).map_err(|e| LabError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        lab.validate(text, path)?;
        Ok(lab)
    }

    /// Everything a check relies on, checked once at load.
    fn validate(&self, text: &str, path: &str) -> Result<(), LabError> {
        let w = Where { text, path };
        let at = |needle: &str, after: usize| w.at(needle, after);
        let invalid = |line: usize, message: String| w.invalid(line, message);
        self.dataset
            .validate()
            .map_err(|DatasetError { name, message }| {
                invalid(at(&format!("\"{name}\""), 0), message)
            })?;
        let mut seen = HashSet::new();
        let mut earlier: HashSet<&str> = HashSet::new();
        for s in self.steps() {
            let step_line = at(&format!("\"{}\"", s.id), 0);
            if !seen.insert(s.id.as_str()) {
                return Err(invalid(
                    at(&format!("\"{}\"", s.id), step_line + 1),
                    format!("the step id '{}' is used twice", s.id),
                ));
            }
            for r in &s.requires {
                if r == &s.id || !earlier.contains(r.as_str()) {
                    let why = if self.step(r).is_some() {
                        "a step may only require steps that come before it"
                    } else {
                        "there is no step with that id"
                    };
                    return Err(invalid(
                        at(&format!("\"{r}\""), step_line),
                        format!("step '{}' requires '{r}': {why}", s.id),
                    ));
                }
            }
            earlier.insert(s.id.as_str());
            self.validate_names(s, &w, step_line)?;
            self.validate_requests(s, &w, step_line)?;
            self.validate_check(s, &w, step_line)?;
        }
        Ok(())
    }

    /// The instances and placeholders a step names: each one the dataset or the target declares.
    fn validate_names(&self, s: &Step, w: &Where<'_>, step_line: usize) -> Result<(), LabError> {
        let names = s.instance_names();
        for n in names {
            if self.dataset.instance(n).is_none() {
                return Err(w.invalid(
                    w.at(&format!("\"{n}\""), step_line),
                    format!(
                        "step '{}' names the instance '{n}', which the dataset does not declare (it has: {})",
                        s.id,
                        self.dataset.names().join(", ")
                    ),
                ));
            }
        }
        for t in s.texts() {
            for p in placeholders(t) {
                if !self.knows_placeholder(&p) {
                    return Err(w.invalid(
                        w.at(&format!("{{{p}}}"), step_line),
                        format!(
                            "step '{}' uses the placeholder {{{p}}}, which is neither a target value ({}) nor a dataset instance's ({{name}}, {{name.study}}, {{name.series}}, {{name.file}})",
                            s.id,
                            TARGET_PLACEHOLDERS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A step's requests: each has an alternative, and each alternative parses once filled.
    fn validate_requests(&self, s: &Step, w: &Where<'_>, step_line: usize) -> Result<(), LabError> {
        for spec in s.request_specs() {
            if spec.alternatives().is_empty() {
                return Err(w.invalid(
                    w.at("any", step_line),
                    format!(
                        "step '{}' has a request with no alternative (any = [] can never be met)",
                        s.id
                    ),
                ));
            }
            for alt in spec.alternatives() {
                let filled = self.dataset.fill(alt).replace(LEARNER_TAG, "PatientSex");
                if let Err(e) = RequestPattern::parse(&filled) {
                    return Err(w.invalid(w.at(alt, step_line), format!("step '{}': {e}", s.id)));
                }
                if let Some(p) = placeholders(&filled).first() {
                    return Err(w.invalid(
                        w.at(alt, step_line),
                        format!(
                            "step '{}': the request '{alt}' uses {{{p}}}, which the dataset does not declare",
                            s.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What a step's check and question need: a request, an instance, a known status or attribute.
    fn validate_check(&self, s: &Step, w: &Where<'_>, step_line: usize) -> Result<(), LabError> {
        if let Check::Requests { requests, .. } = &s.check
            && requests.is_empty()
        {
            return Err(w.invalid(
                step_line,
                format!("step '{}' has a requests check with no request", s.id),
            ));
        }
        if let Check::Store { instances } = &s.check
            && instances.is_empty()
        {
            return Err(w.invalid(
                step_line,
                format!("step '{}' has a store check with no instance", s.id),
            ));
        }
        if let Check::TagUpdated { query_status } = &s.check
            && !["enabled", "disabled"].contains(&query_status.as_str())
        {
            return Err(w.invalid(
                w.at("query_status", step_line),
                format!(
                    "step '{}': query_status is '{query_status}'; a tag's QueryStatus is enabled or disabled",
                    s.id
                ),
            ));
        }
        if let Some(Question {
            answer: AnswerFrom::Metadata { attribute, .. },
            ..
        }) = &s.question
            && dicomlab_dicom::tags::resolve(attribute).is_none()
        {
            return Err(w.invalid(
                w.at(attribute, step_line),
                format!(
                    "step '{}': the question's attribute '{attribute}' is not a DICOM keyword or tag (e.g. StudyDate, 00080020)",
                    s.id
                ),
            ));
        }
        if let Some(n) = &s.instance
            && self.dataset.instance(n).is_none()
        {
            return Err(w.invalid(
                w.at(&format!("\"{n}\""), step_line),
                format!(
                    "step '{}' shows the instance '{n}', which the dataset does not declare",
                    s.id
                ),
            ));
        }
        Ok(())
    }

    /// What `lab lint` points out without refusing the lab: things that work on some targets and not
    /// on others.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let grants = self.steps().any(|s| matches!(s.check, Check::Role { .. }));
        if !grants && self.practice.roles.is_empty() {
            notes.push(
                "no step assigns a role and [practice] gives none: on the practice service the lab's client starts with no role, so its requests answer 403 until the learner runs `dicomlab role grant`. Add [practice] roles = [\"DICOM Data Owner\"] (labs/README.md).".into(),
            );
        }
        for s in self.steps() {
            if s.texts()
                .any(|t| t.contains("login.microsoftonline.com/") && t.contains("/oauth2/"))
            {
                notes.push(format!(
                    "step '{}' names Azure AD's token endpoint: write {{tokenUrl}}, which is the target's (the practice service's and a classroom's are their own)",
                    s.id
                ));
            }
        }
        notes
    }

    fn knows_placeholder(&self, p: &str) -> bool {
        TARGET_PLACEHOLDERS.contains(&p) || self.dataset.placeholder(p).is_some()
    }

    /// Every step in order.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.exercises.iter().flat_map(|e| e.steps.iter())
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps().find(|s| s.id == id)
    }

    /// The exercise a step belongs to.
    pub fn exercise_of(&self, step_id: &str) -> Option<&Exercise> {
        self.exercises
            .iter()
            .find(|e| e.steps.iter().any(|s| s.id == step_id))
    }

    /// The first step of a kind (e.g. the store step a delete's prerequisites name by default).
    pub fn step_of_kind(&self, kind: CheckKind) -> Option<&Step> {
        self.steps().find(|s| s.check.kind() == kind)
    }

    /// Placeholder values of the dataset (`{red}` → its SOP Instance UID…).
    pub fn dataset_values(&self) -> BTreeMap<String, String> {
        self.dataset.values()
    }
}

impl Step {
    /// Its texts a learner reads, where placeholders are filled in: the instructions, "show me", the
    /// hints and the question.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        [Some(self.instructions.as_str()), self.show_me.as_deref()]
            .into_iter()
            .flatten()
            .chain(self.hints.iter().map(String::as_str))
            .chain(self.question.as_ref().map(|q| q.ask.as_str()))
    }

    /// The dataset instances the step's check and question name.
    pub fn instance_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        match &self.check {
            Check::Store { instances } => v.extend(instances.iter().map(String::as_str)),
            Check::Deleted { instance, .. } => v.push(instance),
            _ => {}
        }
        if let Some(q) = &self.question {
            match &q.answer {
                AnswerFrom::Metadata { instance, .. }
                | AnswerFrom::ChangeFeed { instance, .. }
                | AnswerFrom::Frame { instance, .. } => v.push(instance),
                AnswerFrom::SearchCount { .. } => {}
            }
        }
        v
    }

    /// The request specs of the check (and of a search-count question).
    pub fn request_specs(&self) -> Vec<RequestSpec> {
        let mut v = match &self.check {
            Check::Requests { requests, .. } => requests.clone(),
            _ => Vec::new(),
        };
        if let Some(Question {
            answer: AnswerFrom::SearchCount { request },
            ..
        }) = &self.question
        {
            v.push(RequestSpec::One(request.clone()));
        }
        v
    }
}

/// The `{name}` placeholders of a text.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        rest = &rest[i + 1..];
        let Some(j) = rest.find('}') else { break };
        let name = &rest[..j];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        {
            out.push(name.to_string());
        }
        rest = &rest[j + 1..];
    }
    out
}

/// The 1-based line of the first `needle` at or after line `after` (0: the first line of the text).
fn line_of(text: &str, needle: &str, after: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(after.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map_or(after.max(1), |(i, _)| i + 1)
}

/// Where a lab file's problem is: its text (to find the line) and its path.
struct Where<'a> {
    text: &'a str,
    path: &'a str,
}

impl Where<'_> {
    /// The line of the first `needle` at or after line `after` (see [`line_of`]).
    fn at(&self, needle: &str, after: usize) -> usize {
        line_of(self.text, needle, after)
    }

    fn invalid(&self, line: usize, message: String) -> LabError {
        LabError::Invalid {
            path: self.path.to_string(),
            line,
            message,
        }
    }
}

#[cfg(test)]
mod tests;
