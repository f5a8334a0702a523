//! Part-10 files on disk, in 256 shard folders (`blobs/ab/<uuid>.dcm`) so concurrent stores do not queue
//! on one directory lock. An upload is written straight to its final path; it becomes part of the service
//! only when the index commits a row naming it. A crash therefore leaves at worst an unreferenced file,
//! removed at the next start — never a half instance.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The blob folder.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub fn open(data: &Path) -> std::io::Result<Self> {
        let root = data.join("blobs");
        // `tmp/` was used by earlier versions; anything there is from a request that never finished.
        let tmp = data.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        for shard in 0..=255u8 {
            std::fs::create_dir_all(root.join(format!("{shard:02x}")))?;
        }
        Ok(Self { root })
    }

    /// A fresh name for an upload: `ab/<uuid>.dcm`.
    pub fn new_name(&self) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{}/{id}.dcm", &id[..2])
    }

    /// Where a blob lives.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Removes files the index does not know (left by a crash or a kill mid-upload).
    pub fn remove_unreferenced(&self, known: &HashSet<String>) -> std::io::Result<usize> {
        let mut removed = 0;
        for shard in std::fs::read_dir(&self.root)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            for entry in std::fs::read_dir(shard.path())? {
                let entry = entry?;
                let name = format!("{shard_name}/{}", entry.file_name().to_string_lossy());
                if !known.contains(&name) {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
