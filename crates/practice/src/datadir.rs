//! The data folder: the service stores into (and ever cleans) only a folder it created. A marker file
//! says so; a folder that is not empty and has no marker is refused, never touched — `serve --data ~/x`
//! by mistake must not delete anything. The folder is private (0700) and so are the index (0600), which
//! holds the signing key and every client secret, and its WAL files.
//!
//! An ephemeral folder (`serve --ephemeral`, the tests' services) is a temporary folder its process
//! removes when it stops. A process killed outright cannot: its folder keeps a lock file the process
//! holds locked while it lives, and the next ephemeral service removes the folders whose lock nobody
//! holds ([`Ephemeral::new`]).

use std::path::{Path, PathBuf};

/// The marker file's name, in the data folder.
pub(crate) const MARKER: &str = ".dicomlab-practice";

/// What an earlier version (before the marker) created: such a folder is adopted.
const LEGACY_ENTRIES: &[&str] = &[
    "index.sqlite",
    "index.sqlite-wal",
    "index.sqlite-shm",
    "blobs",
    "tmp",
];

/// Why the data folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "the data folder {} is not empty and was not created by `dicomlab serve` (it has no {MARKER} file), so the practice service will neither store into it nor clean it up. Give a new or empty folder with --data, or use --ephemeral.",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error("cannot use the data folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes `dir` the service's data folder: creates it (0700) with its marker, or checks an existing one
/// carries the marker (an earlier version's folder, recognised by its index, is adopted).
pub(crate) fn prepare(dir: &Path) -> Result<(), DataDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let marker = dir.join(MARKER);
    if !marker.exists() {
        let names: Vec<String> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let legacy = names.iter().any(|n| n == "index.sqlite")
            && names.iter().all(|n| LEGACY_ENTRIES.contains(&n.as_str()));
        if !names.is_empty() && !legacy {
            return Err(DataDirError::Foreign {
                path: dir.to_path_buf(),
            });
        }
        if legacy {
            tracing::info!(dir = %dir.display(), "adopting a data folder written by an earlier version");
        }
        std::fs::write(
            &marker,
            "This folder holds a dicomlab practice service's data. It cleans up only inside it.\n",
        )
        .map_err(io(&marker))?;
    }
    private(dir, 0o700)?;
    Ok(())
}

/// Creates `file` empty with mode 0600 if it does not exist (so that SQLite, which gives its WAL files
/// the database file's mode, never makes a readable one), and tightens it and its WAL files if they do.
pub(crate) fn private_index(file: &Path) -> Result<(), DataDirError> {
    if !file.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(file).map_err(io(file))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        if path.exists() {
            private(&path, 0o600)?;
        }
    }
    Ok(())
}

/// The name prefix of ephemeral folders in the system's temporary folder.
const EPHEMERAL_PREFIX: &str = "dicomlab-practice-";
/// The lock file of an ephemeral folder: locked by its process for as long as it lives.
const EPHEMERAL_LOCK: &str = ".ephemeral.lock";
/// At most this many entries of the temporary folder are looked at for abandoned folders.
const SWEEP_LOOKS: usize = 100_000;

/// A temporary data folder, removed when dropped; locked while its process lives.
pub struct Ephemeral {
    dir: tempfile::TempDir,
    /// Dropped after `dir` is removed: another service never sweeps a folder being removed.
    _lock: std::fs::File,
}

impl Ephemeral {
    /// Creates one in the system's temporary folder, then removes the ephemeral folders there that
    /// processes killed outright left (their locks are free); a folder in use is never touched.
    pub(crate) fn new() -> Result<Ephemeral, DataDirError> {
        let parent = std::env::temp_dir();
        let made = Self::new_in(&parent)?;
        let removed = sweep_abandoned(&parent, made.path());
        if removed > 0 {
            tracing::info!(
                "removed {removed} data folder(s) of ephemeral practice services that were killed"
            );
        }
        Ok(made)
    }

    fn new_in(parent: &Path) -> Result<Ephemeral, DataDirError> {
        let dir = tempfile::Builder::new()
            .prefix(EPHEMERAL_PREFIX)
            .tempdir_in(parent)
            .map_err(io(parent))?;
        // Marked before its lock file is made: a folder with files and no marker is refused.
        prepare(dir.path())?;
        // Locked under another name, then renamed into place: a sweep never finds the lock file
        // unlocked while its process lives (the lock is the file's, and stays through the rename).
        let fresh = dir.path().join(format!("{EPHEMERAL_LOCK}.new"));
        let lock = std::fs::File::create(&fresh).map_err(io(&fresh))?;
        lock.try_lock().map_err(|e| DataDirError::Io {
            path: fresh.clone(),
            source: e.into(),
        })?;
        let path = dir.path().join(EPHEMERAL_LOCK);
        std::fs::rename(&fresh, &path).map_err(io(&path))?;
        Ok(Ephemeral { dir, _lock: lock })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the ephemeral folders in `parent` (not `own`) that this user owns and whose lock file is
/// free: their process is gone. Folders of another user, without a lock file (an older version's) or
/// locked are left. Returns how many were removed.
fn sweep_abandoned(parent: &Path, own: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    #[cfg(unix)]
    let owner = std::fs::metadata(own).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let mut removed = 0;
    for entry in entries.take(SWEEP_LOOKS).filter_map(Result::ok) {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(EPHEMERAL_PREFIX));
        // Not followed: a link or a file by that name is not a folder this service made.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !ours || path == own || !meta.is_dir() {
            continue;
        }
        #[cfg(unix)]
        if !owner
            .as_ref()
            .is_ok_and(|uid| std::os::unix::fs::MetadataExt::uid(&meta) == *uid)
        {
            continue;
        }
        let Ok(lock) = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join(EPHEMERAL_LOCK))
        else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!(
                "could not remove the abandoned data folder {}: {e}",
                path.display()
            ),
        }
    }
    removed
}

#[cfg(unix)]
fn private(path: &Path, mode: u32) -> Result<(), DataDirError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
fn private(_: &Path, _: u32) -> Result<(), DataDirError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_killed_ephemeral_services_are_swept_and_live_ones_kept() {
        let t = tempfile::tempdir().expect("tmp");
        let live = Ephemeral::new_in(t.path()).expect("live");
        // A killed process's folder: its lock file is there, and nobody holds it.
        let killed = t.path().join(format!("{EPHEMERAL_PREFIX}killed"));
        std::fs::create_dir_all(killed.join("blobs/ab")).expect("mkdir");
        std::fs::write(killed.join(EPHEMERAL_LOCK), "").expect("lock file");
        std::fs::write(killed.join("blobs/ab/x"), "dicom").expect("blob");
        // What the sweep must leave: no lock file, another name, a link to a folder.
        let unlocked_old = t.path().join(format!("{EPHEMERAL_PREFIX}older"));
        std::fs::create_dir_all(&unlocked_old).expect("mkdir");
        std::fs::write(unlocked_old.join(MARKER), "").expect("marker");
        let other = t.path().join("mine");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join(EPHEMERAL_LOCK), "").expect("lock file");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&other, t.path().join(format!("{EPHEMERAL_PREFIX}link")))
            .expect("link");
        let own = Ephemeral::new_in(t.path()).expect("own");
        prepare(own.path()).expect("a data folder");
        assert_eq!(sweep_abandoned(t.path(), own.path()), 1);
        assert!(!killed.exists());
        assert!(
            live.path().join(EPHEMERAL_LOCK).exists(),
            "a live one is kept"
        );
        assert!(own.path().exists() && unlocked_old.exists());
        assert!(other.join(EPHEMERAL_LOCK).exists());
        // When its service stops, the folder goes with it.
        let gone = live.path().to_path_buf();
        drop(live);
        assert!(!gone.exists());
        assert_eq!(sweep_abandoned(t.path(), own.path()), 0);
    }

    #[test]
    fn only_empty_marked_or_legacy_folders_are_used() {
        let t = tempfile::tempdir().expect("tmp");
        let fresh = t.path().join("new");
        prepare(&fresh).expect("a new folder");
        assert!(fresh.join(MARKER).exists());
        prepare(&fresh).expect("again");
        let foreign = t.path().join("docs");
        std::fs::create_dir_all(foreign.join("tmp")).expect("mkdir");
        std::fs::write(foreign.join("thesis.txt"), "mine").expect("write");
        let err = prepare(&foreign).expect_err("refused");
        assert!(err.to_string().contains("not empty"), "{err}");
        assert!(foreign.join("tmp").exists() && !foreign.join(MARKER).exists());
        let legacy = t.path().join("old");
        std::fs::create_dir_all(legacy.join("blobs/ab")).expect("mkdir");
        std::fs::write(legacy.join("index.sqlite"), "").expect("write");
        prepare(&legacy).expect("adopted");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&fresh)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
            let index = fresh.join("index.sqlite");
            private_index(&index).expect("index");
            let mode = std::fs::metadata(&index)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
