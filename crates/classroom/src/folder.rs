//! The classroom folder: everything a classroom keeps, so that it survives a restart.
//!
//! ```text
//! <dir>/                      0700, with the marker .dicomlab-classroom
//!   classroom.json            the class code (a secret: 0600), when the room was made, the lab
//!   learners.json             who joined, when, and how (an SSH learner's service, or self-reported);
//!                             an SSH learner's personal code, a self-reporting learner's token's hash
//!   classroom.lock            held by the running classroom (one at a time; `reset-code` waits for none)
//!   host_key                  the SSH host key (0600), made once
//!   classroom.log             the log (never the terminal: the dashboard owns it)
//!   learners/<name>/service/  the learner's practice service (its index holds their credentials, 0600)
//!   learners/<name>/verdicts.json   the classroom's checks of their service (and what they did in
//!                                   their TUI: one store, what the dashboard and their screen show),
//!                                   or what they reported
//!   learners/<name>/progress.json.folded   an older version's TUI progress, folded into verdicts.json
//!   learners/<name>/last.json       the latest outcome of each step (the dashboard's failure and diagnosis)
//! ```
//!
//! Every file is written atomically (a temporary file, renamed) with mode 0600; a folder that is not
//! empty and has no marker is refused, never written into. The keys of `verdicts.json`
//! ([`VERDICTS_KEY`], [`SELF_REPORTED_KEY`]) and the times the files keep (`now`) are here too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::LearnerName;
use dicomlab_dicomweb::Secret;
use dicomlab_lab::checks::Outcome;
use dicomlab_lab::model::StepId;

/// The progress key of the classroom's own checks (in each learner's `verdicts.json`).
pub const VERDICTS_KEY: &str = "classroom";
/// The progress key of what a self-reported learner sent.
pub const SELF_REPORTED_KEY: &str = "self-reported";

/// The marker file's name.
pub const MARKER: &str = ".dicomlab-classroom";

/// Why the folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(
        "the classroom folder {} is not empty and was not made by `dicomlab classroom` (it has no {MARKER} file); give a new or empty folder with --dir",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error("the classroom folder {} has no classroom yet: start one with `dicomlab classroom --dir {}`", path.display(), path.display())]
    Missing { path: PathBuf },
    #[error("cannot use {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the classroom in {} is running: do this from its dashboard (or close it first)",
        path.display()
    )]
    Running { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `classroom.json` holds (no `Debug`: the code is a secret, never logged).
#[derive(Clone, Serialize, Deserialize)]
pub struct RoomFile {
    pub version: u32,
    /// The class code learners type as their SSH password (and give `dicomlab join`).
    pub code: String,
    /// RFC 3339, UTC.
    #[serde(with = "dicomlab_dicomweb::timestamp::rfc3339_or_empty")]
    pub created: Option<time::OffsetDateTime>,
    /// The lab's id.
    pub lab: String,
}

/// How a learner is in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearnerSource {
    /// Over SSH, on a service of the classroom's: verdicts from that service's records.
    Service,
    /// `dicomlab join` from their own machine and service: what they sent.
    SelfReported,
}

/// One learner in `learners.json` (`Debug` masks the personal code).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnerEntry {
    pub name: LearnerName,
    /// RFC 3339, UTC, on disk (none: the file's text is no time).
    #[serde(with = "dicomlab_dicomweb::timestamp::rfc3339_or_empty")]
    pub joined: Option<time::OffsetDateTime>,
    pub source: LearnerSource,
    /// An SSH learner's personal code: their password after their first login (the class code then
    /// no longer logs in as them). `None`: a learner from before personal codes, given one at their
    /// next login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Secret>,
    /// A self-reporting learner's token, hashed (SHA-256, hex): every report after their first
    /// carries the token. `None`: the next report gets a new one (the first, or after a reset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}

impl LearnerEntry {
    pub fn new(
        name: LearnerName,
        joined: time::OffsetDateTime,
        source: LearnerSource,
    ) -> LearnerEntry {
        LearnerEntry {
            name,
            joined: Some(joined),
            source,
            code: None,
            token_sha256: None,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LearnersFile {
    learners: Vec<LearnerEntry>,
}

/// A classroom folder.
#[derive(Debug, Clone)]
pub struct Folder {
    dir: PathBuf,
}

impl Folder {
    /// Makes `dir` a classroom folder (0700, with its marker), or checks an existing one is.
    pub fn create(dir: &Path) -> Result<Folder, FolderError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let marker = dir.join(MARKER);
        if !marker.exists() {
            let empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_none();
            if !empty {
                return Err(FolderError::Foreign {
                    path: dir.to_path_buf(),
                });
            }
            std::fs::write(
                &marker,
                "This folder holds a dicomlab classroom: its learners, their services and progress.\n",
            )
            .map_err(io(&marker))?;
        }
        private(dir, 0o700)?;
        std::fs::create_dir_all(dir.join("learners")).map_err(io(dir))?;
        private(&dir.join("learners"), 0o700)?;
        Ok(Folder {
            dir: dir.to_path_buf(),
        })
    }

    /// Opens an existing classroom folder to read it (`classroom status`).
    pub fn existing(dir: &Path) -> Result<Folder, FolderError> {
        if !dir.join(MARKER).exists() {
            return Err(FolderError::Missing {
                path: dir.to_path_buf(),
            });
        }
        Ok(Folder {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn host_key(&self) -> PathBuf {
        self.dir.join("host_key")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("classroom.log")
    }

    fn lock_file(&self) -> PathBuf {
        self.dir.join("classroom.lock")
    }

    /// Takes the running classroom's lock (held while the returned file is open): one classroom per
    /// folder, and `classroom reset-code` knows not to write under a running one.
    pub fn lock_running(&self) -> Result<std::fs::File, FolderError> {
        let path = self.lock_file();
        let file = open_private(&path, false).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(FolderError::Running {
                path: self.dir.clone(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }

    /// The learner's own folder (made 0700 on first use).
    pub fn learner_dir(&self, name: &LearnerName) -> PathBuf {
        self.dir.join("learners").join(name.as_str())
    }

    /// Removes a learner's folder (a learner taken out of the room).
    pub fn remove_learner_dir(&self, name: &LearnerName) -> Result<(), FolderError> {
        let d = self.learner_dir(name);
        match std::fs::remove_dir_all(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&d)(e)),
            _ => Ok(()),
        }
    }

    /// The lab's instance files, made once for the whole room (every learner's TUI stores these).
    pub fn samples_dir(&self) -> PathBuf {
        self.dir.join("samples")
    }

    pub fn service_dir(&self, name: &LearnerName) -> PathBuf {
        self.learner_dir(name).join("service")
    }

    /// An older version's TUI progress (see `lab_tui::fold_old_progress`).
    pub fn progress(&self, name: &LearnerName) -> PathBuf {
        self.learner_dir(name).join("progress.json")
    }

    pub fn verdicts(&self, name: &LearnerName) -> PathBuf {
        self.learner_dir(name).join("verdicts.json")
    }

    pub fn last_outcomes(&self, name: &LearnerName) -> PathBuf {
        self.learner_dir(name).join("last.json")
    }

    /// Makes the learner's folder (0700).
    pub fn make_learner_dir(&self, name: &LearnerName) -> Result<PathBuf, FolderError> {
        let d = self.learner_dir(name);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
        private(&d, 0o700)?;
        Ok(d)
    }

    /// `classroom.json`, when there is one.
    pub fn room(&self) -> Result<Option<RoomFile>, FolderError> {
        read_json(&self.dir.join("classroom.json"))
    }

    pub fn save_room(&self, room: &RoomFile) -> Result<(), FolderError> {
        write_json(&self.dir.join("classroom.json"), room)
    }

    /// Everyone who joined, in the order they did.
    pub fn learners(&self) -> Result<Vec<LearnerEntry>, FolderError> {
        Ok(read_json::<LearnersFile>(&self.dir.join("learners.json"))?
            .unwrap_or_default()
            .learners)
    }

    pub fn save_learners(&self, learners: &[LearnerEntry]) -> Result<(), FolderError> {
        write_json(
            &self.dir.join("learners.json"),
            &LearnersFile {
                learners: learners.to_vec(),
            },
        )
    }

    /// The latest outcome of each step the classroom checked (or empty).
    pub fn last(&self, name: &LearnerName) -> BTreeMap<StepId, Outcome> {
        read_json(&self.last_outcomes(name))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub fn save_last(
        &self,
        name: &LearnerName,
        last: &BTreeMap<StepId, Outcome>,
    ) -> Result<(), FolderError> {
        write_json(&self.last_outcomes(name), last)
    }
}

/// Now, in UTC (the folder's files keep times as RFC 3339, UTC).
pub(crate) fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, FolderError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| FolderError::Parse {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Opens (or creates) `path` for writing with mode 0600 from its first byte (`append`: at its end).
pub fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).write(true);
    if append {
        o.append(true);
    } else {
        o.truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o.open(path)?;
    #[cfg(unix)]
    {
        // A file made before (with another mode) is made private too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Writes `value` as JSON to `path` atomically, mode 0600.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), FolderError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| io(path)(std::io::Error::other(e)))?;
    write_private(path, &bytes)
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, fsync'd, renamed), mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FolderError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // tempfile creates its files 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(".classroom.")
        .tempfile_in(dir)
        .map_err(io(path))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    private(path, 0o600)
}

#[cfg(unix)]
pub(crate) fn private(path: &Path, mode: u32) -> Result<(), FolderError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
pub(crate) fn private(_: &Path, _: u32) -> Result<(), FolderError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_made_private_and_a_foreign_one_refused() {
        let t = tempfile::tempdir().expect("tmp");
        let dir = t.path().join("room");
        let f = Folder::create(&dir).expect("create");
        f.save_room(&RoomFile {
            version: 1,
            code: "secret-code".into(),
            created: Some(time::macros::datetime!(2026-11-30 10:00 UTC)),
            lab: "dicom-service".into(),
        })
        .expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join("classroom.json")), 0o600);
        }
        assert_eq!(
            f.room().expect("read").map(|r| r.code),
            Some("secret-code".into())
        );
        Folder::create(&dir).expect("again");
        let foreign = t.path().join("docs");
        std::fs::create_dir_all(&foreign).expect("mk");
        std::fs::write(foreign.join("thesis.txt"), "mine").expect("w");
        assert!(matches!(
            Folder::create(&foreign),
            Err(FolderError::Foreign { .. })
        ));
        assert!(matches!(
            Folder::existing(&t.path().join("none")),
            Err(FolderError::Missing { .. })
        ));
    }

    #[test]
    fn one_running_classroom_per_folder_and_codes_never_in_debug() {
        let t = tempfile::tempdir().expect("tmp");
        let f = Folder::create(t.path()).expect("create");
        let held = f.lock_running().expect("first");
        assert!(matches!(f.lock_running(), Err(FolderError::Running { .. })));
        drop(held);
        f.lock_running().expect("free again");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(t.path().join("classroom.lock"))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        let mut e = LearnerEntry::new(
            LearnerName::exact("ada").expect("name"),
            time::macros::datetime!(2026-11-30 10:00 UTC),
            LearnerSource::Service,
        );
        e.code = Some(Secret::new("h4rt-2mqa"));
        f.save_learners(std::slice::from_ref(&e)).expect("save");
        assert!(!format!("{e:?}").contains("h4rt"));
        let back = f.learners().expect("read");
        assert_eq!(back[0].code.as_ref().map(Secret::expose), Some("h4rt-2mqa"));
    }
}
