//! The learner's progress, per lab and per target (base URL), keyed by step id: status, attempts, first
//! and last time, last failure. Written atomically (temp file + rename); a corrupt file is moved aside
//! with a message, never silently lost. Never holds a secret or a token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A step's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
    Skipped,
}

/// One step's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    pub status: Status,
    pub attempts: u32,
    /// RFC 3339, UTC.
    pub first: String,
    pub last: String,
    /// When it passed first (a step may fail again later: its state moved on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// The whole file: lab id → target → step id → record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub version: u32,
    pub labs: BTreeMap<String, BTreeMap<String, BTreeMap<String, StepProgress>>>,
}

/// Where progress lives, and what loading it found.
pub struct ProgressStore {
    path: PathBuf,
    pub progress: Progress,
    /// Set when a corrupt file was moved aside: tell the learner.
    pub warning: Option<String>,
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Why progress could not be saved.
#[derive(Debug, thiserror::Error)]
#[error("cannot save progress to {path}: {source}")]
pub struct SaveError {
    path: PathBuf,
    source: std::io::Error,
}

impl ProgressStore {
    /// Loads `path`, or starts empty; a file that does not parse is renamed `*.corrupt-<time>`.
    pub fn load(path: &Path) -> ProgressStore {
        let mut store = ProgressStore {
            path: path.to_path_buf(),
            progress: Progress {
                version: 1,
                ..Progress::default()
            },
            warning: None,
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return store;
        };
        match serde_json::from_str::<Progress>(&text) {
            Ok(p) => store.progress = p,
            Err(e) => {
                let aside = path.with_extension(format!(
                    "json.corrupt-{}",
                    time::OffsetDateTime::now_utc().unix_timestamp()
                ));
                let moved = std::fs::rename(path, &aside).is_ok();
                store.warning = Some(if moved {
                    format!(
                        "the progress file {} could not be read ({e}); it was moved to {} and progress starts afresh",
                        path.display(),
                        aside.display()
                    )
                } else {
                    format!(
                        "the progress file {} could not be read ({e}) nor moved aside; it will be overwritten",
                        path.display()
                    )
                });
                tracing::warn!("{:?}", store.warning);
            }
        }
        store
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The records of one lab on one target.
    pub fn steps(&self, lab: &str, target: &str) -> BTreeMap<String, StepProgress> {
        self.progress
            .labs
            .get(lab)
            .and_then(|t| t.get(target))
            .cloned()
            .unwrap_or_default()
    }

    /// Records a check's result.
    pub fn record(
        &mut self,
        lab: &str,
        target: &str,
        step: &str,
        passed: bool,
        failure: Option<String>,
    ) {
        let now = now();
        let entry = self.steps_mut(lab, target);
        let rec = entry.entry(step.into()).or_insert_with(|| StepProgress {
            status: Status::Failed,
            attempts: 0,
            first: now.clone(),
            last: now.clone(),
            done_at: None,
            last_failure: None,
        });
        rec.attempts += 1;
        rec.last = now.clone();
        if passed {
            rec.status = Status::Done;
            rec.done_at.get_or_insert(now);
        } else {
            if rec.status != Status::Done {
                rec.status = Status::Failed;
            }
            rec.last_failure = failure;
        }
    }

    /// The steps of a lab on a target, created empty when new.
    fn steps_mut(&mut self, lab: &str, target: &str) -> &mut BTreeMap<String, StepProgress> {
        self.progress
            .labs
            .entry(lab.into())
            .or_default()
            .entry(target.into())
            .or_default()
    }

    pub fn skip(&mut self, lab: &str, target: &str, step: &str) {
        let now = now();
        let entry = self.steps_mut(lab, target);
        entry.insert(
            step.into(),
            StepProgress {
                status: Status::Skipped,
                attempts: 0,
                first: now.clone(),
                last: now,
                done_at: None,
                last_failure: None,
            },
        );
    }

    /// Forgets one step, or every step of the lab on this target.
    pub fn reset(&mut self, lab: &str, target: &str, step: Option<&str>) {
        if let Some(t) = self
            .progress
            .labs
            .get_mut(lab)
            .and_then(|t| t.get_mut(target))
        {
            match step {
                Some(s) => {
                    t.remove(s);
                }
                None => t.clear(),
            }
        }
    }

    /// Writes the file atomically: a temp file beside it, then rename.
    pub fn save(&self) -> Result<(), SaveError> {
        let err = |source| SaveError {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.progress)
            .map_err(|e| err(std::io::Error::other(e)))?;
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reset() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("progress.json");
        let mut s = ProgressStore::load(&path);
        s.record("lab", "http://x/v1", "store", false, Some("0 of 3".into()));
        s.record("lab", "http://x/v1", "store", true, None);
        s.record("lab", "http://x/v1", "token", true, None);
        s.save().expect("save");
        let mut again = ProgressStore::load(&path);
        let steps = again.steps("lab", "http://x/v1");
        assert_eq!(steps["store"].attempts, 2);
        assert_eq!(steps["store"].status, Status::Done);
        again.reset("lab", "http://x/v1", Some("store"));
        assert!(!again.steps("lab", "http://x/v1").contains_key("store"));
        again.reset("lab", "http://x/v1", None);
        assert!(again.steps("lab", "http://x/v1").is_empty());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("progress.json");
        std::fs::write(&path, "{ not json").expect("write");
        let s = ProgressStore::load(&path);
        assert!(s.warning.as_deref().is_some_and(|w| w.contains("moved")));
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read_to_string(aside[0].path()).expect("read"),
            "{ not json"
        );
    }
}
