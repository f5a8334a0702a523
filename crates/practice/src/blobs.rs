//! Part-10 files on disk, in 256 shard folders (`blobs/ab/<uuid>.dcm`) so concurrent stores do not queue
//! on one directory lock; a shard folder is made when its first file is named (a classroom opens a
//! service per learner, and most hold three files). An upload is written straight to its final path;
//! it becomes part of the service only when the index commits a row naming it. A crash therefore leaves
//! at worst an unreferenced file, removed at the next start — never a half instance. Clean-up touches
//! only files named the way this service names them, in the shard folders it made.
//!
//! A retrieve leases the files it is going to send before it answers; a delete that commits meanwhile
//! removes a leased file only when its last lease ends, so a retrieve that started sends whole parts.
//! (The bytes the index keeps are read with the retrieve's lookup, or — beyond what it holds at once —
//! when each part's turn comes; a part deleted before then is left out, never cut short.)
//!
//! A small instance (up to [`IN_INDEX_MAX`] bytes, received in memory) has no file: its bytes are a row of
//! the index's `inline_blobs`, committed with its instance row, and its blob name is [`IN_INDEX`]. On a
//! disk, creating, syncing and later removing one file per tiny instance cost more than the rest of its
//! store (ext4's inode allocation alone was half the CPU of a 10,000-instance load).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The blob name of an instance whose bytes the index keeps (`inline_blobs`).
pub(crate) const IN_INDEX: &str = "";

/// The largest part (as received, in memory) whose instance the index keeps rather than a file of its own.
pub(crate) const IN_INDEX_MAX: u64 = 64 * 1024;

/// How many instances' bytes the index keeps (rows of `inline_blobs`), for the tests.
#[cfg(test)]
pub(crate) fn kept_in_index(db: &crate::db::Db) -> i64 {
    db.lock()
        .expect("index")
        .query_row("SELECT COUNT(*) FROM inline_blobs", [], |r| r.get(0))
        .expect("count")
}

/// Where a stored instance's bytes are read from.
#[derive(Debug, Clone)]
pub(crate) enum Content {
    /// Its file.
    File(PathBuf),
    /// Kept in the index, and read with the lookup that found it.
    Bytes(bytes::Bytes),
    /// Kept in the index (this instance's watermark), read when its part is sent: a retrieve of more
    /// such instances than it holds in memory at once.
    Later(i64),
}

impl Content {
    /// The bytes for the bounded reader; `None` for one not read yet.
    pub(crate) fn source(&self) -> Option<dicomlab_dicom::reader::Source<'_>> {
        use dicomlab_dicom::reader::Source;
        match self {
            Content::File(p) => Some(Source::File(p)),
            Content::Bytes(b) => Some(Source::Bytes(b)),
            Content::Later(_) => None,
        }
    }
}

/// Files being read, and those deleted from the index while they were.
#[derive(Debug, Default)]
struct Leases {
    /// Blob name → readers.
    readers: HashMap<String, usize>,
    /// Deleted while read: removed when the last reader is done.
    doomed: HashSet<String>,
}

/// The blob folder.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
    leases: Arc<Mutex<Leases>>,
    /// The shard folders known to exist (one bit each).
    made: Arc<[AtomicU64; 4]>,
}

/// Holds files open for a retrieve; dropping it lets a pending delete remove them.
#[derive(Debug)]
pub struct Lease {
    blobs: Blobs,
    names: Vec<String>,
}

/// Whether a file name is one this service writes: 32 lower-case hex digits and `.dcm`.
fn is_ours(shard: &str, file: &str) -> bool {
    let Some(stem) = file.strip_suffix(".dcm") else {
        return false;
    };
    stem.len() == 32
        && stem
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && stem.starts_with(shard)
}

impl Blobs {
    pub fn open(data: &Path) -> std::io::Result<Self> {
        let root = data.join("blobs");
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            leases: Arc::default(),
            made: Arc::default(),
        })
    }

    /// A fresh name for an upload, `ab/<uuid>.dcm`, its shard folder made.
    pub fn new_name(&self) -> std::io::Result<String> {
        let id = uuid::Uuid::new_v4();
        let shard = id.as_bytes()[0];
        let (word, bit) = (usize::from(shard / 64), 1u64 << (shard % 64));
        if self.made[word].load(Ordering::Acquire) & bit == 0 {
            std::fs::create_dir_all(self.root.join(format!("{shard:02x}")))?;
            self.made[word].fetch_or(bit, Ordering::AcqRel);
        }
        Ok(format!("{shard:02x}/{}.dcm", id.simple()))
    }

    /// Where a blob lives.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Removes files the index does not know (left by a crash or a kill mid-upload). Only files named as
    /// this service names them, in its shard folders: anything else is left alone and counted.
    pub fn remove_unreferenced(&self, known: &HashSet<String>) -> std::io::Result<(usize, usize)> {
        let (mut removed, mut foreign) = (0, 0);
        for shard in 0..=255u8 {
            let shard_name = format!("{shard:02x}");
            let dir = self.root.join(&shard_name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry?;
                let file = entry.file_name().to_string_lossy().into_owned();
                if !is_ours(&shard_name, &file) || !entry.file_type()?.is_file() {
                    foreign += 1;
                    continue;
                }
                if !known.contains(&format!("{shard_name}/{file}")) {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok((removed, foreign))
    }

    /// Leases files for reading. Call it while the index lock that found them is held, so that a delete
    /// cannot remove them in between.
    pub fn lease(&self, names: impl IntoIterator<Item = String>) -> Lease {
        let names: Vec<String> = names.into_iter().filter(|n| n != IN_INDEX).collect();
        if let Ok(mut l) = self.leases.lock() {
            for n in &names {
                *l.readers.entry(n.clone()).or_default() += 1;
            }
        }
        Lease {
            blobs: self.clone(),
            names,
        }
    }

    /// Removes a file the index no longer names, now or when its last reader is done.
    pub fn remove(&self, name: &str) {
        if name == IN_INDEX {
            // Its bytes went with its row.
            return;
        }
        let mut leases = match self.leases.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if leases.readers.contains_key(name) {
            leases.doomed.insert(name.to_string());
            return;
        }
        drop(leases);
        if let Err(e) = std::fs::remove_file(self.path(name)) {
            tracing::warn!("could not remove {name}: {e}");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut leases = match self.blobs.leases.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let mut gone = Vec::new();
        for n in &self.names {
            if let Some(count) = leases.readers.get_mut(n) {
                *count -= 1;
                if *count == 0 {
                    leases.readers.remove(n);
                    if leases.doomed.remove(n) {
                        gone.push(n.clone());
                    }
                }
            }
        }
        drop(leases);
        for n in gone {
            if let Err(e) = std::fs::remove_file(self.blobs.path(&n)) {
                tracing::warn!("could not remove {n}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leased_file_outlives_its_delete_until_the_lease_ends() {
        let t = tempfile::tempdir().expect("tmp");
        let blobs = Blobs::open(t.path()).expect("open");
        let name = blobs.new_name().expect("name");
        std::fs::write(blobs.path(&name), b"x").expect("write");
        let lease = blobs.lease([name.clone()]);
        blobs.remove(&name);
        assert!(blobs.path(&name).exists());
        drop(lease);
        assert!(!blobs.path(&name).exists());
        // Clean-up leaves what it did not write.
        std::fs::create_dir_all(t.path().join("blobs/ab")).expect("shard");
        std::fs::write(t.path().join("blobs/ab/notes.txt"), b"mine").expect("write");
        let (removed, foreign) = blobs.remove_unreferenced(&HashSet::new()).expect("clean");
        assert_eq!((removed, foreign), (0, 1));
        assert!(t.path().join("blobs/ab/notes.txt").exists());
    }

    /// Opening makes no shard folder; naming a file makes its own, once.
    #[test]
    fn a_shard_folder_is_made_when_its_first_file_is_named() {
        let t = tempfile::tempdir().expect("tmp");
        let blobs = Blobs::open(t.path()).expect("open");
        let shards = || {
            std::fs::read_dir(t.path().join("blobs"))
                .expect("blobs")
                .count()
        };
        assert_eq!(shards(), 0);
        let name = blobs.new_name().expect("name");
        assert_eq!(shards(), 1);
        std::fs::write(blobs.path(&name), b"x").expect("write");
        // A folder removed behind its back is made again by a reopened service.
        let again = Blobs::open(t.path()).expect("reopen");
        std::fs::remove_dir_all(t.path().join("blobs")).expect("remove");
        let other = again.new_name().expect("name after removal");
        std::fs::write(again.path(&other), b"y").expect("write");
        assert!(name.ends_with(".dcm") && &name[2..3] == "/");
    }
}
