//! Storing one received instance: scanning it with the bounded reader, validating it (within the
//! validation memory budget), writing its file in the standard form — or, a small one, giving its
//! bytes to the index — and recording it, its searchable values and a change-feed entry in one
//! transaction.

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicomlab_dicom::json::dataset_to_json;
use dicomlab_dicom::reader::{self, Refusal, Scan};
use serde_json::Value;

use super::commit::{CommitError, Row};
use super::outcome::{Outcome, reason};
use super::validate::{
    Identifiers, indexed_attributes, refused, single_str, validate, validation_bytes,
};
use crate::blobs::{IN_INDEX, IN_INDEX_MAX};
use crate::eqt::EqtDef;
use crate::index::{self, CORE_ATTRIBUTES};
use crate::multipart::ReceivedPart;
use crate::quota::{StoragePromise, full_reason};
use crate::tags::tag_number;
use crate::{ApiVersion, Service, SharedService};

/// Stores each received part in turn. What was promised for the body is now what was received: each
/// part's share is given back as soon as the part is stored (then it counts as stored) or refused (its
/// file is gone) — never counted twice. Answers each part's outcome, and whether an indexed tag had
/// several values.
pub(super) async fn store_parts(
    svc: &SharedService,
    version: ApiVersion,
    study: Option<&str>,
    base: &str,
    parts: Vec<ReceivedPart>,
    promise: Option<&StoragePromise>,
) -> (Vec<Outcome>, bool) {
    let mut outcomes = Vec::with_capacity(parts.len());
    let mut multi_valued = false;
    if let Some(r) = promise {
        r.settle(parts.iter().map(|p| p.size).sum());
    }
    for part in parts {
        let size = part.size;
        let (o, m) = store_part(
            svc,
            version,
            study.map(str::to_string),
            base.to_string(),
            part,
        )
        .await;
        if let Some(r) = promise {
            r.release(size);
        }
        multi_valued |= m;
        outcomes.push(o);
    }
    (outcomes, multi_valued)
}

/// Scans one received file with the bounded reader, waits for its share of the validation budget, then
/// validates, indexes and stores it: a small part the index keeps on the service's store thread
/// ([`storer`](super::storer)), any other on the blocking pool — in one trip there, which reads the
/// extended query tags to index too (a store's second trip to the pool cost more than the query).
async fn store_part(
    svc: &SharedService,
    version: ApiVersion,
    study: Option<String>,
    base: String,
    part: ReceivedPart,
) -> (Outcome, bool) {
    if part.size == 0 {
        let why = Refusal::NotPart10("the part is empty");
        return refused(&why, None, None);
    }
    let limits = reader::Limits::default();
    // A part in memory is scanned here (no allocation, microseconds); a file on the blocking pool.
    let scanned = match &part.bytes {
        Some(bytes) => reader::scan(reader::Source::Bytes(bytes), &limits),
        None => {
            let path = part.path.clone();
            match tokio::task::spawn_blocking(move || {
                reader::scan(reader::Source::File(&path), &limits)
            })
            .await
            {
                Ok(r) => r,
                Err(e) => Err(Refusal::Io(std::io::Error::other(e.to_string()))),
            }
        }
    };
    let scan = match scanned {
        Ok(s) => s,
        Err(why) => return refused(&why, None, None),
    };
    let need = validation_bytes(&scan);
    let _held = match svc.validation_memory.reserve(need).await {
        Ok(r) => r,
        Err(over) => {
            let why = Refusal::Structure(format!(
                "the file's header needs about {} MiB to validate, more than the service allows one file ({} MiB)",
                over.needed.div_ceil(1024 * 1024),
                over.capacity / (1024 * 1024)
            ));
            return refused(&why, None, None);
        }
    };
    let job = Job::new(version, study, base, part, scan);
    // A small part's store needs no disk of its own: the store thread validates and commits it.
    let job = if job.in_index() {
        match svc.storer.store(svc, job).await {
            Ok(done) => return done,
            Err(job) => job,
        }
    } else {
        job
    };
    let done = svc
        .db(move |s| {
            let eqts = crate::eqt::active_tags(s)?;
            Ok(job.process(s, &eqts))
        })
        .await;
    done.unwrap_or_else(|e| {
        tracing::error!("store failed: {e}");
        processing_failure()
    })
}

/// The outcome of a store that failed for a reason of the service's own.
pub(super) fn processing_failure() -> (Outcome, bool) {
    failed(reason::PROCESSING_FAILURE, None, None, Vec::new())
}

/// One received part, scanned, with what its store needs.
pub(super) struct Job {
    version: ApiVersion,
    study: Option<String>,
    base: String,
    part: ReceivedPart,
    scan: Scan,
}

/// A part validated: its row for the index and what it answers once committed — or, refused, its
/// outcome already.
pub(super) type Prepared = Result<Ready, (Outcome, bool)>;

/// A part that passed validation.
pub(super) struct Ready {
    pub rec: NewInstance,
    pub stored: Stored,
    /// An indexed tag had several values.
    pub multi_valued: bool,
}

impl Job {
    pub(super) fn new(
        version: ApiVersion,
        study: Option<String>,
        base: String,
        part: ReceivedPart,
        scan: Scan,
    ) -> Self {
        Job {
            version,
            study,
            base,
            part,
            scan,
        }
    }

    /// Whether the index keeps this part's bytes.
    pub(super) fn in_index(&self) -> bool {
        kept_by_index(&self.part)
    }

    /// Validates the part against the extended query tags `eqts`.
    pub(super) fn prepare(&self, eqts: &[EqtDef]) -> Prepared {
        prepare(
            self.version,
            self.study.as_deref(),
            &self.base,
            eqts,
            &self.part,
            &self.scan,
        )
    }

    /// Validates, indexes and stores the part on the blocking pool: its file is written and synced (or,
    /// when the store thread could not take a small part, the index keeps it).
    fn process(&self, svc: &Service, eqts: &[EqtDef]) -> (Outcome, bool) {
        match self.prepare(eqts) {
            Err(done) => done,
            Ok(Ready {
                rec,
                stored,
                multi_valued,
            }) => (
                outcome(insert(svc, &self.part, &self.scan, rec), stored),
                multi_valued,
            ),
        }
    }

    /// The part has no file to remove (the index keeps it, or its file is part of the service).
    pub(super) fn keep(&self) {
        self.part.mark_kept();
    }

    /// The row of a part the index keeps, its bytes in their stored form (see [`write_blob`]).
    pub(super) fn in_index_row(&self, rec: NewInstance) -> Result<Row, CommitError> {
        let data =
            in_index_bytes(&self.part, &self.scan)?.ok_or("the part is not one the index keeps")?;
        Ok(kept_row(rec, data))
    }
}

/// Validates one received file: its outcome when it fails, else its row for the index (with whether an
/// indexed tag had several values).
fn prepare(
    version: ApiVersion,
    study_in_path: Option<&str>,
    base: &str,
    eqts: &[EqtDef],
    part: &ReceivedPart,
    scan: &Scan,
) -> Prepared {
    // The header only (up to PixelData): memory follows the header, never the pixel data.
    let file = match reader::read_header(part.source(), scan) {
        Ok(f) => f,
        Err(why) => return Err(refused(&why, None, None)),
    };
    if let Err(why) = scan.check_pixels() {
        let sop = single_str(&file, tags::SOP_INSTANCE_UID);
        let class = single_str(&file, tags::SOP_CLASS_UID);
        return Err(refused(&why, class, sop));
    }
    let ts = file
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let obj: &InMemDicomObject = &file;
    let ids = Identifiers::of(obj);
    let indexed = indexed_attributes(eqts);
    let checked = validate(obj, version, study_in_path, &ids, &indexed);
    let Identifiers {
        class,
        sop,
        study,
        series,
    } = ids;
    let (Some(class), Some(sop), Some(study), Some(series)) =
        (class.clone(), sop.clone(), study, series)
    else {
        return Err(failed(
            reason::VALIDATION_FAILED,
            class,
            sop,
            checked.comments,
        ));
    };
    if checked.fails {
        return Err(failed(
            reason::VALIDATION_FAILED,
            Some(class),
            Some(sop),
            checked.comments,
        ));
    }
    let warnings = checked.comments;

    let mut metadata = dataset_to_json(obj);
    for tag in &checked.dropped {
        metadata.remove(&dicomlab_dicom::json::tag_key(*tag));
    }
    let frames = obj
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.value().to_int::<u32>().ok())
        .unwrap_or_else(|| u32::from(obj.get(tags::ROWS).is_some()));
    let (values, multi_valued) = index_values(&metadata, &indexed);
    let mut warning = None;
    if ts == "1.2.840.10008.1.2" {
        warning = Some(reason::DATASET_DOES_NOT_MATCH_SOP_CLASS);
    }
    if version.v2 && !warnings.is_empty() {
        warning = Some(reason::ATTRIBUTES_DROPPED);
    }
    let url = format!("{base}/studies/{study}/series/{series}/instances/{sop}");
    let rec = NewInstance {
        study,
        series,
        sop: sop.clone(),
        class: class.clone(),
        transfer_syntax: ts,
        frames,
        metadata: Value::Object(metadata).to_string(),
        values,
    };
    let stored = Stored {
        class,
        sop,
        url,
        warning,
        warnings,
    };
    Ok(Ready {
        rec,
        stored,
        multi_valued,
    })
}

/// A failed instance's outcome.
fn failed(
    reason: u16,
    class: Option<String>,
    sop: Option<String>,
    comments: Vec<String>,
) -> (Outcome, bool) {
    (
        Outcome::Failed {
            reason,
            class,
            sop,
            comments,
        },
        false,
    )
}

/// The searchable values of the indexed attributes (the first of several), and whether one had several.
fn index_values(
    metadata: &serde_json::Map<String, Value>,
    indexed: &[(Tag, Option<VR>)],
) -> (Vec<IndexRow>, bool) {
    let mut multi_valued = false;
    let mut values = Vec::new();
    for (tag, vr_override) in indexed {
        let vr =
            vr_override.or_else(|| CORE_ATTRIBUTES.iter().find(|a| a.tag == *tag).map(|a| a.vr));
        let Some(vr) = vr else { continue };
        multi_valued |= index::is_multi_valued(metadata, *tag);
        let (text, num) = index::index_value(metadata, *tag, vr);
        if text.is_some() || num.is_some() {
            values.push((tag_number(*tag), text, num));
        }
    }
    (values, multi_valued)
}

/// What an instance stored answers.
pub(super) struct Stored {
    class: String,
    sop: String,
    url: String,
    warning: Option<u16>,
    warnings: Vec<String>,
}

/// The outcome of an instance that passed validation, by what the index made of it.
pub(super) fn outcome(inserted: Result<Inserted, CommitError>, stored: Stored) -> Outcome {
    let Stored {
        class,
        sop,
        url,
        warning,
        warnings,
    } = stored;
    let (outcome, _) = match inserted {
        Ok(Inserted::Stored) => {
            return Outcome::Stored {
                class,
                sop,
                url,
                warning,
                comments: warnings,
            };
        }
        Ok(Inserted::Exists) => failed(
            reason::SOP_INSTANCE_ALREADY_EXISTS,
            Some(class),
            Some(sop),
            Vec::new(),
        ),
        Ok(Inserted::Full { quota, held }) => failed(
            reason::PROCESSING_FAILURE,
            Some(class),
            Some(sop),
            vec![full_reason(quota, held)],
        ),
        Err(e) => {
            tracing::error!("store failed: {e}");
            failed(
                reason::PROCESSING_FAILURE,
                Some(class),
                Some(sop),
                Vec::new(),
            )
        }
    };
    outcome
}

/// Puts a validated part at its blob path in the standard form (a preamble, `DICM`, and a meta group
/// with its length: pydicom's bare in-memory datasets gain them, so strict readers read the stored file),
/// synced to disk; returns its size.
fn write_blob(svc: &Service, part: &ReceivedPart, scan: &Scan) -> Result<u64, CommitError> {
    use std::io::Write;
    let head = scan.canonical_head(part.source())?;
    let start = scan.dataset_start;
    let size = match (&part.bytes, head) {
        (Some(bytes), head) => {
            let mut f = std::fs::File::create(&part.path)?;
            let size = match head {
                None => {
                    f.write_all(bytes)?;
                    bytes.len() as u64
                }
                Some(head) => {
                    let rest = bytes.get(start as usize..).unwrap_or_default();
                    f.write_all(&head)?;
                    f.write_all(rest)?;
                    (head.len() + rest.len()) as u64
                }
            };
            f.sync_data()?;
            size
        }
        (None, None) => {
            std::fs::File::open(&part.path)?.sync_data()?;
            part.size
        }
        (None, Some(head)) => {
            // Rewritten beside it under a blob name (a crash leaves a file the start-up clean-up removes).
            let tmp = svc.blobs.path(&svc.blobs.new_name()?);
            let copied = (|| -> std::io::Result<u64> {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
                out.write_all(&head)?;
                let mut src = std::fs::File::open(&part.path)?;
                std::io::Seek::seek(&mut src, std::io::SeekFrom::Start(start))?;
                let n = std::io::copy(&mut src, &mut out)?;
                out.into_inner().map_err(|e| e.into_error())?.sync_data()?;
                std::fs::rename(&tmp, &part.path)?;
                Ok(head.len() as u64 + n)
            })();
            if copied.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            copied?
        }
    };
    Ok(size)
}

/// A searchable value as the index keeps it: the tag's number, its text and its number.
pub(super) type IndexRow = (i64, Option<String>, Option<f64>);

/// An instance ready for the index.
pub(super) struct NewInstance {
    pub study: String,
    pub series: String,
    pub sop: String,
    pub class: String,
    pub transfer_syntax: String,
    pub frames: u32,
    pub metadata: String,
    pub values: Vec<IndexRow>,
}

/// What became of an instance.
pub(super) enum Inserted {
    Stored,
    /// The same Study/Series/SOP triple is stored already.
    Exists,
    /// It does not fit in what the service may hold.
    Full {
        quota: u64,
        held: u64,
    },
}

/// Whether the index keeps a part's bytes: it was received in memory, and is small.
fn kept_by_index(part: &ReceivedPart) -> bool {
    part.bytes.is_some() && part.size <= IN_INDEX_MAX
}

/// A part the index keeps — received in memory, of at most [`IN_INDEX_MAX`] bytes — in its stored form
/// (see [`write_blob`]: the preamble and meta group a bare data set lacks are added).
fn in_index_bytes(part: &ReceivedPart, scan: &Scan) -> Result<Option<Vec<u8>>, CommitError> {
    let (Some(bytes), true) = (&part.bytes, kept_by_index(part)) else {
        return Ok(None);
    };
    let Some(mut data) = scan.canonical_head(part.source())? else {
        return Ok(Some(bytes.clone()));
    };
    data.extend_from_slice(bytes.get(scan.dataset_start as usize..).unwrap_or_default());
    Ok(Some(data))
}

/// The row of an instance whose stored bytes `data` the index keeps.
fn kept_row(rec: NewInstance, data: Vec<u8>) -> Row {
    Row {
        rec,
        blob: IN_INDEX.to_string(),
        size: data.len() as u64,
        data: Some(data),
    }
}

/// Writes the instance's file (synced) under its blob name — or, a small one, keeps its bytes for the
/// index — then commits its row with the stores committing beside it ([`commit`](super::commit));
/// only then is the file kept.
fn insert(
    svc: &Service,
    part: &ReceivedPart,
    scan: &Scan,
    rec: NewInstance,
) -> Result<Inserted, CommitError> {
    // Written (and synced) outside the index lock; still invisible until the commit. A store of an
    // instance already there writes its file too, and loses it at the insert: one lock less for
    // every other store (they wait on it).
    let row = match in_index_bytes(part, scan)? {
        Some(data) => kept_row(rec, data),
        None => Row {
            rec,
            blob: part.name.clone(),
            size: write_blob(svc, part, scan)?,
            data: None,
        },
    };
    let in_index = row.data.is_some();
    let inserted = svc.store_commits.commit(svc, row)?;
    if in_index || matches!(inserted, Inserted::Stored) {
        // Committed: the file is part of the service now (on any error it is removed with the part).
        // A part kept in the index has no file to remove.
        part.mark_kept();
    }
    Ok(inserted)
}
