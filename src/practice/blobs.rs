//! Part-10 files on disk. A store writes into `tmp/`, then renames into `blobs/` before the index commits,
//! so a crash leaves at worst an unreferenced file (removed at the next start), never a half instance.

use std::path::{Path, PathBuf};

/// The two folders under the data directory.
#[derive(Debug, Clone)]
pub struct Blobs {
    tmp: PathBuf,
    blobs: PathBuf,
}

impl Blobs {
    pub fn open(data: &Path) -> std::io::Result<Self> {
        let tmp = data.join("tmp");
        let blobs = data.join("blobs");
        // Anything left in tmp/ is from a request that never finished.
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(&blobs)?;
        Ok(Self { tmp, blobs })
    }

    /// A fresh path for an upload in progress.
    pub fn tmp_path(&self) -> PathBuf {
        self.tmp.join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Where a committed blob lives.
    pub fn path(&self, name: &str) -> PathBuf {
        self.blobs.join(name)
    }

    /// Moves an upload into place under a new name and returns the name.
    pub fn commit(&self, tmp: &Path) -> std::io::Result<String> {
        let name = format!("{}.dcm", uuid::Uuid::new_v4().simple());
        std::fs::rename(tmp, self.path(&name))?;
        Ok(name)
    }

    /// Removes files the index does not know (left by a crash between rename and commit).
    pub fn remove_unreferenced(
        &self,
        known: &std::collections::HashSet<String>,
    ) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.blobs)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
