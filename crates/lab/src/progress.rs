//! The learner's progress, per lab and per target, keyed by step id: status, the evidence a ✓ rests on,
//! checks run, first and last time, last failure; per target also dicomlab's own exchanges (the
//! learner's actions inside dicomlab: evidence where the service keeps no record) and reset times.
//! Once done, a step stays done until it is reset: later checks never undo it.
//!
//! Written atomically (a temporary file, fsync'd, renamed); a file that cannot be read or parsed is
//! moved aside with a message, never silently lost. Never holds a secret or a token.

use crate::model::StepId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::evidence::{Attempt, Evidence};
use crate::outcome::Outcome;
use dicomlab_dicomweb::OwnRequest;

/// A step's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    /// Tried and not done.
    Failed,
    /// Checked, nothing of it done yet (ready, waiting or blocked).
    Pending,
    Skipped,
}

/// One step's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    pub status: Status,
    /// How many times it was checked.
    pub attempts: u32,
    /// When it was first and last checked (RFC 3339, UTC, on disk; none: the file's text is no time).
    #[serde(with = "dicomlab_dicomweb::timestamp::rfc3339_or_empty")]
    pub first: Option<time::OffsetDateTime>,
    #[serde(with = "dicomlab_dicomweb::timestamp::rfc3339_or_empty")]
    pub last: Option<time::OffsetDateTime>,
    /// When it was done (the record's time when it has one).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "dicomlab_dicomweb::timestamp::rfc3339_option"
    )]
    pub done_at: Option<time::OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// What the ✓ rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// Since when the step waits for a late record (the audit log).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "dicomlab_dicomweb::timestamp::rfc3339_option"
    )]
    pub waiting_since: Option<time::OffsetDateTime>,
    /// What the step was about, for the steps after it (the learner's extended query tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// Most of dicomlab's own exchanges kept per target.
const MAX_DID: usize = 500;
/// Most of the checks' own requests kept per target (a check run sends a few dozen).
const MAX_OWN: usize = 5_000;

/// One lab on one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetProgress {
    #[serde(default)]
    pub steps: BTreeMap<StepId, StepProgress>,
    /// The learner's requests sent from dicomlab (never the checks'), newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub did: Vec<Attempt>,
    /// When a step was last reset: records before count no more for it.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "dicomlab_dicomweb::timestamp::rfc3339_map"
    )]
    pub resets: BTreeMap<String, time::OffsetDateTime>,
    /// When the whole lab was last reset on this target.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "dicomlab_dicomweb::timestamp::rfc3339_option"
    )]
    pub reset_all: Option<time::OffsetDateTime>,
    /// The checks' own requests, newest last: their audit rows are not the learner's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<OwnRequest>,
}

impl TargetProgress {
    /// Records older than this do not count for `step`.
    pub fn since(&self, step: &str) -> Option<time::OffsetDateTime> {
        self.resets.get(step).copied().max(self.reset_all)
    }

    /// The earliest time any step's records must be read from.
    pub fn earliest_since(&self) -> Option<time::OffsetDateTime> {
        self.reset_all
    }
}

/// A target's record as files of version 1 held it (steps only), read for migration.
#[derive(Deserialize)]
#[serde(untagged)]
enum TargetFile {
    Current(TargetProgress),
    V1(BTreeMap<StepId, StepProgress>),
}

fn read_targets<'de, D>(
    d: D,
) -> Result<BTreeMap<String, BTreeMap<String, TargetProgress>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw: BTreeMap<String, BTreeMap<String, TargetFile>> = Deserialize::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(lab, targets)| {
            let t = targets
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        TargetFile::Current(t) => t,
                        TargetFile::V1(steps) => TargetProgress {
                            steps,
                            ..TargetProgress::default()
                        },
                    };
                    (k, v)
                })
                .collect();
            (lab, t)
        })
        .collect())
}

/// The whole file: lab id → target → record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub version: u32,
    /// A random id each save writes near the file's start: a store tells its own last write from
    /// another writer's by the file's first bytes, without reading the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_id: Option<String>,
    #[serde(deserialize_with = "read_targets")]
    pub labs: BTreeMap<String, BTreeMap<String, TargetProgress>>,
}

/// Where progress lives, and what loading it found.
pub struct ProgressStore {
    path: PathBuf,
    pub progress: Progress,
    /// Set when a file that could not be read was moved aside: tell the learner.
    pub warning: Option<String>,
    /// The version of the file this store last merged in or wrote (none after a load: the first save
    /// merges the file, which drops what a reset outdated): while the file is still that one, nobody
    /// else saved since, and a save need not read and merge it again.
    seen: Option<FileVersion>,
}

/// What tells one version of the file from another without reading it all: its first bytes, which
/// hold the save's random id ([`Progress::save_id`]), then its length, time and inode (a file
/// changed by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileVersion {
    head: Vec<u8>,
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

/// The bytes of a file's start a [`FileVersion`] holds: the save id is within them.
const HEAD: usize = 96;

impl FileVersion {
    fn of(meta: &std::fs::Metadata, text: &[u8]) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileVersion {
            head: text.get(..HEAD).unwrap_or(text).to_vec(),
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }

    /// The version at `path` now, from its first bytes (`None`: no file, or it cannot be read).
    fn at(path: &Path) -> Option<Self> {
        use std::io::Read;
        let f = std::fs::File::open(path).ok()?;
        let meta = f.metadata().ok()?;
        let mut head = Vec::with_capacity(HEAD);
        f.take(HEAD as u64).read_to_end(&mut head).ok()?;
        Some(Self::of(&meta, &head))
    }
}

/// The file at `path` and its version, read from one handle (so the version is the content's).
fn read_versioned(path: &Path) -> std::io::Result<(Vec<u8>, FileVersion)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let version = FileVersion::of(&meta, &bytes);
    Ok((bytes, version))
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// Why progress could not be saved.
#[derive(Debug, thiserror::Error)]
#[error("cannot save progress to {path}: {source}")]
pub struct SaveError {
    path: PathBuf,
    source: std::io::Error,
}

impl ProgressStore {
    /// Loads `path`, or starts empty; a file that cannot be read or parsed is renamed `*.corrupt-<time>`.
    pub fn load(path: &Path) -> ProgressStore {
        let mut store = ProgressStore {
            path: path.to_path_buf(),
            progress: Progress {
                version: 2,
                ..Progress::default()
            },
            warning: None,
            seen: None,
        };
        let problem = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return store,
            Err(e) => e.to_string(),
            Ok(bytes) => match std::str::from_utf8(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Progress>(t).map_err(|e| e.to_string()))
            {
                Ok(p) => {
                    store.progress = p;
                    store.progress.version = 2;
                    return store;
                }
                Err(e) => e,
            },
        };
        let aside = path.with_extension(format!(
            "json.corrupt-{}",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
        ));
        let moved = std::fs::rename(path, &aside).is_ok();
        store.warning = Some(if moved {
            format!(
                "the progress file {} could not be read ({problem}); it was moved to {} and progress starts afresh",
                path.display(),
                aside.display()
            )
        } else {
            format!(
                "the progress file {} could not be read ({problem}) nor moved aside; progress starts afresh and will not be saved over it",
                path.display()
            )
        });
        if !moved {
            // Never overwrite what could not be moved: save beside it instead.
            store.path = path.with_extension("json.new");
        }
        tracing::warn!("{:?}", store.warning);
        store
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One lab on one target.
    pub fn target(&self, lab: &str, target: &str) -> TargetProgress {
        self.progress
            .labs
            .get(lab)
            .and_then(|t| t.get(target))
            .cloned()
            .unwrap_or_default()
    }

    /// The step records of one lab on one target.
    pub fn steps(&self, lab: &str, target: &str) -> BTreeMap<StepId, StepProgress> {
        self.target(lab, target).steps
    }

    fn target_mut(&mut self, lab: &str, target: &str) -> &mut TargetProgress {
        self.progress
            .labs
            .entry(lab.into())
            .or_default()
            .entry(target.into())
            .or_default()
    }

    fn entry(&mut self, lab: &str, target: &str, step: &str) -> &mut StepProgress {
        let now = now();
        self.target_mut(lab, target)
            .steps
            .entry(step.into())
            .or_insert_with(|| StepProgress {
                status: Status::Pending,
                attempts: 0,
                first: Some(now),
                last: Some(now),
                done_at: None,
                last_failure: None,
                evidence: None,
                waiting_since: None,
                subject: None,
            })
    }

    /// Records a check's outcome. A step done stays done (and keeps its first evidence); only a
    /// reset undoes it.
    pub fn record(&mut self, lab: &str, target: &str, step: &str, outcome: &Outcome) {
        if matches!(outcome, Outcome::NotSupported { .. }) {
            return;
        }
        let now = now();
        let rec = self.entry(lab, target, step);
        rec.attempts += 1;
        rec.last = Some(now);
        if rec.status == Status::Done {
            return;
        }
        match outcome {
            Outcome::Pass { evidence, .. } => {
                rec.status = Status::Done;
                rec.done_at = Some(evidence.at.unwrap_or(now));
                rec.evidence = Some(evidence.clone());
                rec.waiting_since = None;
                if let Some(s) = &evidence.subject {
                    rec.subject = Some(s.clone());
                }
            }
            Outcome::Waiting { .. } => {
                rec.status = Status::Pending;
                rec.waiting_since.get_or_insert(now);
            }
            Outcome::Fail { .. } | Outcome::Error { .. } => {
                rec.status = Status::Failed;
                rec.last_failure = Some(outcome.one_line());
                rec.waiting_since = None;
            }
            _ => {
                // Ready or blocked: no record is awaited any more.
                rec.waiting_since = None;
                if rec.status != Status::Skipped {
                    rec.status = Status::Pending;
                }
            }
        }
    }

    /// Records an outcome computed from `before` (progress as it was when the check started) unless
    /// the step was reset meanwhile: a check still reading the records from before a reset never
    /// undoes it. Returns whether it was recorded.
    pub fn record_from(
        &mut self,
        lab: &str,
        target: &str,
        before: &TargetProgress,
        step: &str,
        outcome: &Outcome,
    ) -> bool {
        if self.target(lab, target).since(step) != before.since(step) {
            return false;
        }
        self.record(lab, target, step, outcome);
        true
    }

    /// Credits a step with evidence found outside a check (an import, an answered question).
    pub fn credit(&mut self, lab: &str, target: &str, step: &str, evidence: Evidence) {
        let now = now();
        let rec = self.entry(lab, target, step);
        rec.last = Some(now);
        if rec.status != Status::Done {
            rec.status = Status::Done;
            rec.done_at = Some(evidence.at.unwrap_or(now));
            rec.evidence = Some(evidence);
        }
    }

    /// What a step was about (the learner's tag), for the steps after it.
    pub fn set_subject(&mut self, lab: &str, target: &str, step: &str, subject: &str) {
        self.entry(lab, target, step).subject = Some(subject.to_string());
    }

    /// Keeps one of dicomlab's own exchanges (the learner's action), the newest `MAX_DID`.
    pub fn did(&mut self, lab: &str, target: &str, attempt: Attempt) {
        let t = self.target_mut(lab, target);
        t.did.push(attempt);
        if t.did.len() > MAX_DID {
            let extra = t.did.len() - MAX_DID;
            t.did.drain(..extra);
        }
    }

    /// Keeps the checks' own requests (see [`dicomlab_dicomweb::ledger`]), the newest `MAX_OWN`.
    pub fn own(&mut self, lab: &str, target: &str, requests: Vec<OwnRequest>) {
        if requests.is_empty() {
            return;
        }
        let t = self.target_mut(lab, target);
        t.own.extend(requests);
        if t.own.len() > MAX_OWN {
            let extra = t.own.len() - MAX_OWN;
            t.own.drain(..extra);
        }
    }

    pub fn skip(&mut self, lab: &str, target: &str, step: &str) {
        let rec = self.entry(lab, target, step);
        if rec.status != Status::Done {
            rec.status = Status::Skipped;
        }
    }

    /// Forgets one step, or every step of the lab on this target: records before now count no more.
    pub fn reset(&mut self, lab: &str, target: &str, step: Option<&str>) {
        let now = time::OffsetDateTime::now_utc();
        let t = self.target_mut(lab, target);
        match step {
            Some(s) => {
                t.steps.remove(s);
                t.resets.insert(s.to_string(), now);
            }
            None => {
                t.steps.clear();
                t.resets.clear();
                t.did.clear();
                t.reset_all = Some(now);
            }
        }
    }

    /// Writes the file atomically: a temporary file beside it, fsync'd, then renamed (and the folder
    /// fsync'd, so the rename survives a crash). Another dicomlab (a `dicomlab check` beside the
    /// TUI) may have saved meanwhile: under a lock file, what is on disk now is read and merged in
    /// first (see [`merge`]), so neither overwrites the other's work; this store then holds the merge.
    /// A file still the one this store last read or wrote is not read again.
    pub fn save(&mut self) -> Result<(), SaveError> {
        let err = |source| self.save_error(source);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let _lock = lock(&self.path.with_extension("json.lock")).map_err(err)?;
        self.merge_from_disk();
        self.write_unlocked()
    }

    /// Merges in what is on disk, when another writer saved since this store last read or wrote the
    /// file (the caller holds the lock).
    fn merge_from_disk(&mut self) {
        if self.seen.is_some() && FileVersion::at(&self.path) == self.seen {
            // Still this store's own last write (its save id): nobody saved since.
            return;
        }
        if let Ok((bytes, version)) = read_versioned(&self.path)
            && let Ok(disk) = serde_json::from_slice::<Progress>(&bytes)
        {
            merge(&mut self.progress, disk);
            self.seen = Some(version);
        }
    }

    /// Takes in the records of a target kept elsewhere (another file's), merged as saving merges.
    pub fn absorb(&mut self, lab: &str, target: &str, theirs: TargetProgress) {
        merge_target(self.target_mut(lab, target), theirs);
    }

    /// Takes in what another writer saved to the file since (read under the lock, merged as `save`
    /// merges; nothing written).
    pub fn reload(&mut self) {
        let Ok(_lock) = lock(&self.path.with_extension("json.lock")) else {
            return;
        };
        self.merge_from_disk();
    }

    /// Moves one target's records to another key (a learner's service now reached at another
    /// address) when the new key has none: under the lock, from what is on disk now, written at
    /// once — a merge would bring the old key back. The first key `old` accepts moves. Whether one
    /// moved.
    pub fn move_target(
        &mut self,
        lab: &str,
        old: impl Fn(&str) -> bool,
        new: &str,
    ) -> Result<bool, SaveError> {
        let err = |source| self.save_error(source);
        let _lock = lock(&self.path.with_extension("json.lock")).map_err(err)?;
        if let Ok(bytes) = std::fs::read(&self.path)
            && let Ok(disk) = serde_json::from_slice::<Progress>(&bytes)
        {
            self.progress = disk;
            self.progress.version = 2;
        }
        let Some(targets) = self.progress.labs.get_mut(lab) else {
            return Ok(false);
        };
        if targets.contains_key(new) {
            return Ok(false);
        }
        let Some(key) = targets.keys().find(|k| old(k)).cloned() else {
            return Ok(false);
        };
        if let Some(t) = targets.remove(&key) {
            targets.insert(new.to_string(), t);
        }
        self.write_unlocked()?;
        Ok(true)
    }

    /// A failure to write this store's file.
    fn save_error(&self, source: std::io::Error) -> SaveError {
        SaveError {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes the progress atomically (a temporary file renamed over it, synced): the caller holds
    /// the lock.
    fn write_unlocked(&mut self) -> Result<(), SaveError> {
        self.progress.save_id = Some(uuid::Uuid::new_v4().simple().to_string());
        let err = |source| self.save_error(source);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let text =
            serde_json::to_vec_pretty(&self.progress).map_err(|e| err(std::io::Error::other(e)))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".progress.")
            .tempfile_in(dir)
            .map_err(err)?;
        std::io::Write::write_all(&mut tmp, &text).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        let version = tmp.as_file().metadata().map(|m| FileVersion::of(&m, &text));
        tmp.persist(&self.path).map_err(|e| err(e.error))?;
        // What is at the path now is this store's (the lock is held): the next save need not read it.
        self.seen = version.ok();
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// How long a save waits for another dicomlab's save to finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes the lock file (released when the returned file is dropped). Waits up to [`LOCK_WAIT`]: a
/// save holds it for milliseconds, so a longer wait is a process stopped while saving.
fn lock(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::other(format!(
                    "{} is held by another dicomlab for more than {} s",
                    path.display(),
                    LOCK_WAIT.as_secs()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Merges what another process saved (`disk`) into `mine`. Resets: the newest of each wins, and a
/// step record begun before its step's newest reset is dropped (whoever held it). Then a step done
/// on either side is done (the earlier ✓ and its evidence kept); otherwise the record checked last.
/// dicomlab's own exchanges: the union, newest `MAX_DID` kept.
pub fn merge(mine: &mut Progress, disk: Progress) {
    for (lab, targets) in disk.labs {
        let into = mine.labs.entry(lab).or_default();
        for (key, theirs) in targets {
            let ours = into.entry(key).or_default();
            merge_target(ours, theirs);
        }
    }
}

fn merge_target(ours: &mut TargetProgress, theirs: TargetProgress) {
    // The later reset wins (a time beats none).
    ours.reset_all = ours.reset_all.max(theirs.reset_all);
    for (step, at) in theirs.resets {
        let later = ours.resets.get(&step).map_or(at, |t| (*t).max(at));
        ours.resets.insert(step, later);
    }
    let stale =
        |t: &TargetProgress, step: &str, rec: &StepProgress| match (t.since(step), rec.first) {
            (Some(since), Some(first)) => first < since,
            // A record without a readable time cannot be placed after a reset: a reset drops it.
            (Some(_), None) => true,
            (None, _) => false,
        };
    for (step, rec) in theirs.steps {
        if stale(ours, &step, &rec) {
            continue;
        }
        match ours.steps.get_mut(&step) {
            None => {
                ours.steps.insert(step, rec);
            }
            Some(mine) => merge_step(mine, rec),
        }
    }
    let stale_steps: Vec<StepId> = ours
        .steps
        .iter()
        .filter(|(step, rec)| stale(ours, step, rec))
        .map(|(step, _)| step.clone())
        .collect();
    for step in stale_steps {
        ours.steps.remove(&step);
    }
    let cut = ours.earliest_since();
    ours.did = merge_did(std::mem::take(&mut ours.did), theirs.did, cut);
    ours.own = merge_own(std::mem::take(&mut ours.own), theirs.own);
}

/// One step saved on both sides: the attempts counted once, the first and last times widened, the
/// record of the side that is done (the later one when both are, else the later attempt).
fn merge_step(mine: &mut StepProgress, rec: StepProgress) {
    let later = |a: Option<time::OffsetDateTime>, b: Option<time::OffsetDateTime>| match (a, b) {
        (Some(x), Some(y)) => y > x,
        _ => false,
    };
    let attempts = mine.attempts.max(rec.attempts);
    let first = if later(rec.first, mine.first) {
        rec.first
    } else {
        mine.first
    };
    let last = if later(mine.last, rec.last) {
        rec.last
    } else {
        mine.last
    };
    let take_theirs = match (mine.status == Status::Done, rec.status == Status::Done) {
        (false, true) => true,
        (true, false) => false,
        (true, true) => later(rec.done_at, mine.done_at),
        (false, false) => later(mine.last, rec.last),
    };
    if take_theirs {
        *mine = rec;
    }
    mine.attempts = attempts;
    mine.first = first;
    mine.last = last;
}

/// dicomlab's own exchanges from both sides, once each, none before the earliest reset, oldest
/// first, at most [`MAX_DID`].
fn merge_did(
    mut did: Vec<Attempt>,
    theirs: Vec<Attempt>,
    cut: Option<time::OffsetDateTime>,
) -> Vec<Attempt> {
    for a in theirs {
        if !did
            .iter()
            .any(|d| d.at == a.at && d.method == a.method && d.url == a.url && d.status == a.status)
        {
            did.push(a);
        }
    }
    did.retain(|a| match (cut, a.time()) {
        (Some(cut), Some(t)) => t >= cut,
        (Some(_), None) => false,
        (None, _) => true,
    });
    did.sort_by_key(|a| a.time());
    if did.len() > MAX_DID {
        let extra = did.len() - MAX_DID;
        did.drain(..extra);
    }
    did
}

/// The checks' own requests from both sides, once each, oldest first, at most [`MAX_OWN`].
fn merge_own(mut own: Vec<OwnRequest>, theirs: Vec<OwnRequest>) -> Vec<OwnRequest> {
    let seen: std::collections::HashSet<OwnRequest> = own.iter().cloned().collect();
    own.extend(theirs.into_iter().filter(|r| !seen.contains(r)));
    own.sort_by_key(|r| r.at);
    if own.len() > MAX_OWN {
        let extra = own.len() - MAX_OWN;
        own.drain(..extra);
    }
    own
}

#[cfg(test)]
mod tests;
