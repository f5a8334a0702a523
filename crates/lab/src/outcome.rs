//! What a check concludes ([`Outcome`]) and the learner's failed attempts it carries ([`Tried`]):
//! shared by the checks that compute it and the progress file that saves it.

use serde::{Deserialize, Serialize};

use crate::clock::local_time;
use crate::evidence::{Evidence, Source};

/// One of the learner's failed attempts at a step, diagnosed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tried {
    /// When it was made (RFC 3339 on disk, `""` when the record has no time).
    #[serde(default, with = "dicomlab_dicomweb::timestamp::rfc3339_or_empty")]
    pub at: Option<time::OffsetDateTime>,
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
    /// `14:03 POST /v1/studies from Postman → 415: <diagnosis>` (local time; `--:--` when the record has none).
    pub fn text(&self) -> String {
        let tool = self
            .tool
            .as_ref()
            .map(|t| format!(" from {t}"))
            .unwrap_or_default();
        format!(
            "{} {}{tool} → {}: {}",
            local_time(self.at),
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
