//! The data folder: the service stores into (and ever cleans) only a folder it created. A marker file
//! says so; a folder that is not empty and has no marker is refused, never touched — `serve --data ~/x`
//! by mistake must not delete anything. The folder is private (0700) and so are the index (0600), which
//! holds the signing key and every client secret, and its WAL files.

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
