//! The lab as data: `labs/*.toml`, exercises → steps, each with instructions, progressive hints, an
//! optional "show me" and a check, keyed by stable ids. The default lab is embedded in the binary.

use serde::Deserialize;

/// The format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// The default lab, embedded.
pub const DEFAULT_LAB: &str = include_str!("../../labs/dicom-service.toml");

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
    #[serde(rename = "exercise")]
    pub exercises: Vec<Exercise>,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Stable id (progress is keyed by it, so reordering keeps a learner's progress).
    pub id: String,
    pub title: String,
    pub instructions: String,
    /// Revealed one at a time.
    #[serde(default)]
    pub hints: Vec<String>,
    /// The exact request, with `{baseUrl}` and friends.
    #[serde(default)]
    pub show_me: Option<String>,
    /// Optional steps do not count for `dicomlab check`'s exit code.
    #[serde(default)]
    pub optional: bool,
    pub check: Check,
}

/// What a step's check verifies (see `checks`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// The service URL answers at all (a 401 without a token proves it exists).
    ServiceExists,
    /// The environment values are all there and well-formed.
    Environment,
    /// A token can be had, for the right audience, with time left.
    Token,
    /// An authenticated read is neither 401 nor 403.
    Role,
    /// The three samples are stored (found by SOP Instance UID).
    Store,
    /// The six searches of the collection find the samples.
    Search,
    /// Study, series, instance, metadata, frame and rendered retrieval work.
    Retrieve,
    /// The change feed has `Create` entries for the samples.
    ChangeFeed,
    /// The extended query tag exists and is ready.
    TagAdded { tag: String },
    /// Searching with the tag finds the lab study.
    TagUsed { tag: String, value: String },
    /// The tag's QueryStatus is the expected one.
    TagUpdated { tag: String, query_status: String },
    /// The tag is gone (404).
    TagDeleted { tag: String },
    /// The image can be shown: rendered PNG of the expected size.
    Viewer,
    /// An instance / series / study of the samples is deleted.
    Deleted { level: String },
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
        "the lab file {path} has format_version {found}; this dicomlab reads version {FORMAT_VERSION}"
    )]
    Version { path: String, found: u32 },
    #[error("the lab file {path} uses the step id '{id}' twice")]
    DuplicateId { path: String, id: String },
}

impl Lab {
    /// The embedded default lab.
    pub fn embedded() -> Result<Lab, LabError> {
        Self::parse(DEFAULT_LAB, "<embedded dicom-service.toml>")
    }

    /// Loads a lab file (`--lab FILE`).
    pub fn load(path: &std::path::Path) -> Result<Lab, LabError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses lab text; errors name the line (toml's message carries it).
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
        let mut seen = std::collections::HashSet::new();
        for s in lab.steps() {
            if !seen.insert(s.id.clone()) {
                return Err(LabError::DuplicateId {
                    path: path.to_string(),
                    id: s.id.clone(),
                });
            }
        }
        Ok(lab)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_lab_loads() {
        let lab = Lab::embedded().expect("embedded lab parses");
        assert_eq!(lab.id, "dicom-service");
        assert!(lab.steps().count() >= 15);
        assert!(lab.step("store-samples").is_some());
        for s in lab.steps() {
            assert!(
                !s.instructions.trim().is_empty(),
                "{} has instructions",
                s.id
            );
        }
    }

    #[test]
    fn an_unknown_check_kind_names_the_line() {
        let text = "format_version = 1\nid = \"x\"\ntitle = \"x\"\n[[exercise]]\nid = \"e\"\ntitle = \"e\"\n[[exercise.step]]\nid = \"s\"\ntitle = \"s\"\ninstructions = \"i\"\ncheck = { kind = \"teleport\" }\n";
        let err = Lab::parse(text, "bad.toml").expect_err("unknown kind");
        let msg = err.to_string();
        assert!(
            msg.contains("bad.toml") && msg.contains("line 11") && msg.contains("teleport"),
            "{msg}"
        );
    }

    #[test]
    fn a_newer_format_is_refused_clearly() {
        let err = Lab::parse("format_version = 2\nid = \"x\"\n", "new.toml").expect_err("version");
        assert!(err.to_string().contains("format_version 2"));
    }
}
