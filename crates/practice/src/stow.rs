//! STOW-RS (docs/contract.md §3): `POST /v{n}/studies[/{study}]`, single-part `application/dicom` or
//! `multipart/related`, streamed to disk, validated like the real service (v1: required and indexed tags;
//! v2: required tags fail, the rest are dropped with warnings) and stored atomically.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dicom_core::value::Value as DicomValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::accept::accepts_dicom_json;
use super::auth::{Action, Caller};
use super::eqt::{self, EqtDef};
use super::error::{ApiError, ApiResult};
use super::index::{self, CORE_ATTRIBUTES};
use super::minimum;
use super::multipart::{Intake, ReceivedPart, receive_related, receive_single};
use super::{ApiVersion, Service, SharedService, now_timestamp, versioned_base};
use dicomlab_dicom::json::dataset_to_json;
use dicomlab_dicom::reader::{self, Refusal, Scan};
use dicomlab_dicom::uid::{is_valid_uid, trim_uid};
use dicomlab_dicom::vr;

/// Failure and warning reasons of docs/contract.md §3.5.
pub(crate) mod reason {
    pub(crate) const PROCESSING_FAILURE: u16 = 272;
    pub(crate) const VALIDATION_FAILED: u16 = 43264;
    pub(crate) const SOP_INSTANCE_ALREADY_EXISTS: u16 = 45070;
    pub(crate) const DATASET_DOES_NOT_MATCH_SOP_CLASS: u16 = 45063;
    pub(crate) const ATTRIBUTES_DROPPED: u16 = 1;
}

/// What happened to one instance of a request.
#[derive(Debug)]
enum Outcome {
    Stored {
        class: String,
        sop: String,
        url: String,
        warning: Option<u16>,
        comments: Vec<String>,
    },
    Failed {
        reason: u16,
        class: Option<String>,
        sop: Option<String>,
        comments: Vec<String>,
    },
}

/// How the request body is framed.
enum Framing {
    Single,
    Related {
        boundary: String,
        type_param: Option<String>,
    },
}

/// Contract §3.2: exactly `application/dicom`, or `multipart/related` with a boundary and no `start`.
fn framing(headers: &HeaderMap) -> ApiResult<Framing> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if ct.eq_ignore_ascii_case("application/dicom") {
        return Ok(Framing::Single);
    }
    let Ok(mime) = ct.parse::<mime::Mime>() else {
        return Err(ApiError::unsupported_media());
    };
    if mime.type_() != mime::MULTIPART || !mime.subtype().as_str().eq_ignore_ascii_case("related") {
        return Err(ApiError::unsupported_media());
    }
    if mime.get_param("start").is_some() {
        return Err(ApiError::unsupported_media());
    }
    let Some(boundary) = mime.get_param(mime::BOUNDARY) else {
        return Err(ApiError::unsupported_media());
    };
    let type_param = mime.get_param("type").map(|t| t.as_str().to_string());
    Ok(Framing::Related {
        boundary: boundary.as_str().to_string(),
        type_param,
    })
}

/// `POST /v{n}/studies`
pub(crate) async fn store(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    store_impl(svc, version, caller, None, headers, body).await
}

/// `POST /v{n}/studies/{study}`
pub(crate) async fn store_in_study(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    Path((_, study)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    store_impl(svc, version, caller, Some(study), headers, body).await
}

/// How much of a refused request body is read (and dropped) so that its answer reaches the client.
/// Beyond it the connection is closed: a refused multi-gigabyte upload is not worth waiting for.
const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads and drops up to `limit` bytes of a body; whether it was read to its end.
async fn discard(body: Body, limit: u64) -> bool {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return false };
        n += chunk.len() as u64;
        if n > limit {
            return false;
        }
    }
    true
}

/// The room promised to one store while its body is received (counted against the service's
/// `max_stored_bytes` beside what is stored and what other stores were promised); given back when
/// dropped, once what was received is stored or refused.
#[derive(Debug)]
pub(crate) struct Reservation {
    reserved: std::sync::Arc<std::sync::atomic::AtomicU64>,
    quota: u64,
    held: u64,
    bytes: std::sync::atomic::AtomicU64,
}

impl Reservation {
    fn new(
        reserved: &std::sync::Arc<std::sync::atomic::AtomicU64>,
        quota: u64,
        held: u64,
    ) -> Reservation {
        Reservation {
            reserved: reserved.clone(),
            quota,
            held,
            bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Promises `n` more bytes: a declared body's size before it is read, or a chunk of a body of
    /// unknown size as it arrives (0: whether any room is left). `507` when they do not fit. A body
    /// counts whole — a multipart body's boundaries too, a fraction of a percent.
    pub(crate) fn grow(&self, n: u64) -> Result<(), ApiError> {
        use std::sync::atomic::Ordering;
        let mut promised = self.reserved.load(Ordering::Acquire);
        loop {
            let after = self.held.saturating_add(promised);
            if after.saturating_add(n) > self.quota || after >= self.quota {
                return Err(full(self.quota, self.held.saturating_add(promised)));
            }
            match self.reserved.compare_exchange(
                promised,
                promised.saturating_add(n),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.bytes.fetch_add(n, Ordering::AcqRel);
                    return Ok(());
                }
                Err(now) => promised = now,
            }
        }
    }
}

impl Reservation {
    /// Keeps `n` bytes of the promise (what was received), gives back the rest.
    fn settle(&self, n: u64) {
        let now = self.bytes.load(std::sync::atomic::Ordering::Acquire);
        self.release(now.saturating_sub(n));
    }

    /// Gives back `n` bytes of the promise (at most what it holds).
    fn release(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let Ok(before) = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(n))
            })
        else {
            return;
        };
        let given = before.min(n);
        let _ = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(given))
            });
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        self.release(bytes);
    }
}

/// The service holds what it may: `507` with what it holds and how to make room.
fn full(quota: u64, held: u64) -> ApiError {
    ApiError::new(StatusCode::INSUFFICIENT_STORAGE, full_reason(quota, held))
}

fn full_reason(quota: u64, held: u64) -> String {
    let mib = |b: u64| b.div_ceil(1024 * 1024);
    format!(
        "This service may hold {} MiB of instances and holds {} MiB: delete a study to store more.",
        mib(quota),
        mib(held)
    )
}

/// Refuses a store whose body is not wanted. The body is read and dropped (up to [`DISCARD_LIMIT`]) so
/// that a client still sending it reads the answer rather than a broken pipe — unless it asked first
/// (`Expect: 100-continue`: it is answered at once, and sends nothing) or declared more than that.
async fn refuse_unread(
    e: ApiError,
    body: Body,
    headers: &HeaderMap,
    declared_len: Option<u64>,
) -> ApiError {
    let asked_first = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    if asked_first || declared_len.is_some_and(|n| n > DISCARD_LIMIT) {
        return closing(e);
    }
    if discard(body, DISCARD_LIMIT).await {
        e
    } else {
        closing(e)
    }
}

/// An answer sent before the request body was read to its end: the connection cannot serve another
/// request, and saying so keeps clients from reusing it (and failing their next request).
fn closing(e: ApiError) -> ApiError {
    e.with_header(header::CONNECTION, "close")
}

async fn store_impl(
    svc: SharedService,
    version: ApiVersion,
    caller: Caller,
    study: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let checked = (|| {
        if !accepts_dicom_json(&headers) {
            return Err(ApiError::empty(StatusCode::NOT_ACCEPTABLE));
        }
        let framing = framing(&headers)?;
        caller.require(&svc, Action::Write)?;
        if let Some(s) = &study
            && !is_valid_uid(s)
        {
            return Err(ApiError::bad_uid("StudyInstanceUid", s));
        }
        Ok(framing)
    })();
    let framing = match checked {
        Ok(f) => f,
        Err(e) => {
            // A client still sending the body would otherwise see its connection closed (a broken
            // pipe) instead of the 401 / 403 / 406 / 415 that says why.
            return Err(refuse_unread(e, body, &headers, declared_len).await);
        }
    };
    let max = svc.config.max_request_bytes;
    if declared_len.is_some_and(|n| n > max) {
        return Err(closing(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body exceeds the maximum allowed size of {max} bytes."),
        )));
    }
    // Stores received at once share the room: each is promised its declared size before it is read
    // (a body that cannot fit never reaches the disk), a body of unknown size each chunk as it arrives;
    // the promise holds until what was received is stored or refused.
    let reservation = match svc.config.max_stored_bytes {
        None => None,
        Some(quota) => {
            let held = svc.db(|s| s.db.stored_bytes()).await?;
            let r = Reservation::new(&svc.storage_reserved, quota, held);
            if let Err(e) = r.grow(declared_len.unwrap_or(0)) {
                return Err(refuse_unread(e, body, &headers, declared_len).await);
            }
            Some(r)
        }
    };
    let intake = Intake {
        blobs: &svc.blobs,
        max,
        idle: svc.config.limits.body_timeout,
        memory: &svc.receive_memory,
        storage: reservation.as_ref().filter(|_| declared_len.is_none()),
    };
    let parts = match framing {
        Framing::Single => vec![receive_single(body, &intake).await.map_err(closing)?],
        Framing::Related { .. } if declared_len == Some(0) => Vec::new(),
        Framing::Related {
            boundary,
            type_param,
        } => receive_related(body, &boundary, type_param.as_deref(), &intake)
            .await
            .map_err(closing)?,
    };
    if parts.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let base = versioned_base(&headers, &svc, version);
    let eqts = std::sync::Arc::new(svc.db(eqt::active_tags).await?);
    let mut outcomes = Vec::with_capacity(parts.len());
    let mut multi_valued = false;
    // What was promised now is what was received: each part's share is given back as soon as the part
    // is stored (then it counts as stored) or refused (its file is gone) — never counted twice.
    if let Some(r) = &reservation {
        r.settle(parts.iter().map(|p| p.size).sum());
    }
    for part in parts {
        let size = part.size;
        let (o, m) = store_part(
            &svc,
            version,
            study.clone(),
            base.clone(),
            eqts.clone(),
            part,
        )
        .await;
        if let Some(r) = &reservation {
            r.release(size);
        }
        multi_valued |= m;
        outcomes.push(o);
    }
    let mut resp = respond(&svc, &headers, version, study.as_deref(), outcomes);
    if multi_valued {
        let agent = warn_agent(
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        );
        if let Ok(v) = HeaderValue::from_str(&format!(
            "299 {agent} \"One or more indexed Dicom tag(s) have multiple values, only first value is indexed.\""
        )) {
            resp.headers_mut().insert(header::WARNING, v);
        }
    }
    Ok(resp)
}

/// The warn-agent of a Warning header as Azure writes it: the request's host without its port, then a
/// colon (`127.0.0.1:18742` → `127.0.0.1:`, `[::1]:80` → `[::1]:`); nothing without a host.
fn warn_agent(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if name.is_empty() {
        String::new()
    } else {
        format!("{name}:")
    }
}

/// Memory a validation may hold for a scanned file: its header parsed (dicom-object's elements), its
/// metadata as JSON, and a margin.
fn validation_bytes(scan: &Scan) -> u64 {
    scan.header_len
        .saturating_mul(4)
        .saturating_add(scan.header_elements.saturating_mul(256))
        .saturating_add(64 * 1024)
}

/// The ErrorComment for a file the reader refused.
fn refusal_comment(why: &Refusal) -> String {
    match why.tag() {
        Some(tag) => format!("DICOM100: {} - {why}", tag_text(tag)),
        None => format!("DICOM100: The file is not valid DICOM: {why}"),
    }
}

fn refused(why: &Refusal, class: Option<String>, sop: Option<String>) -> (Outcome, bool) {
    tracing::info!("stored body refused: {why}");
    (
        Outcome::Failed {
            reason: reason::VALIDATION_FAILED,
            class,
            sop,
            comments: vec![refusal_comment(why)],
        },
        false,
    )
}

/// Scans one received file with the bounded reader, waits for its share of the validation budget, then
/// validates, indexes and stores it on the blocking pool.
async fn store_part(
    svc: &SharedService,
    version: ApiVersion,
    study: Option<String>,
    base: String,
    eqts: std::sync::Arc<Vec<EqtDef>>,
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
    let done = svc
        .db(move |s| {
            Ok(process(
                s,
                version,
                study.as_deref(),
                &base,
                &eqts,
                &part,
                &scan,
            ))
        })
        .await;
    done.unwrap_or_else(|e| {
        tracing::error!("store failed: {e}");
        (
            Outcome::Failed {
                reason: reason::PROCESSING_FAILURE,
                class: None,
                sop: None,
                comments: Vec::new(),
            },
            false,
        )
    })
}

/// A DICOM JSON element as text: `{"vr":"UI","Value":[…]}` (`values` are JSON texts), or `{"vr":"SQ"}`.
fn element(vr: &str, values: &[String]) -> String {
    if values.is_empty() {
        format!("{{\"vr\":\"{vr}\"}}")
    } else {
        format!("{{\"vr\":\"{vr}\",\"Value\":[{}]}}", values.join(","))
    }
}

/// A string as JSON text.
fn text(s: &str) -> String {
    Value::from(s).to_string()
}

/// An object of tag keys (ascending, as the caller gives them) and element texts.
fn object(fields: &[(&str, String)]) -> String {
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

/// The STOW answer, written as text item by item: a request of 10,000 parts must not build a JSON tree
/// of 10,000 objects (tens of megabytes) to say how each went.
fn respond(
    svc: &Service,
    headers: &HeaderMap,
    version: ApiVersion,
    study: Option<&str>,
    outcomes: Vec<Outcome>,
) -> Response {
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    let mut any_warning = false;
    for o in outcomes {
        match o {
            Outcome::Stored {
                class,
                sop,
                url,
                warning,
                comments,
            } => {
                let mut item = vec![
                    ("00081150", element("UI", &[text(&class)])),
                    ("00081155", element("UI", &[text(&sop)])),
                    ("00081190", element("UR", &[text(&url)])),
                ];
                if let Some(w) = warning {
                    any_warning = true;
                    item.push(("00081196", element("US", &[w.to_string()])));
                }
                if version.v2 {
                    item.push(("00741048", comment_sequence(&comments)));
                }
                referenced.push(object(&item));
            }
            Outcome::Failed {
                reason,
                class,
                sop,
                comments,
            } => {
                let mut item = Vec::new();
                if let Some(c) = class {
                    item.push(("00081150", element("UI", &[text(&c)])));
                }
                if let Some(s) = sop {
                    item.push(("00081155", element("UI", &[text(&s)])));
                }
                item.push(("00081197", element("US", &[reason.to_string()])));
                if !comments.is_empty() {
                    item.push(("00741048", comment_sequence(&comments)));
                }
                failed.push(object(&item));
            }
        }
    }
    let mut body = Vec::new();
    if let Some(study) = study
        && !referenced.is_empty()
    {
        let url = format!("{}/studies/{study}", versioned_base(headers, svc, version));
        body.push(("00081190", element("UR", &[text(&url)])));
    }
    let status = if referenced.is_empty() {
        StatusCode::CONFLICT
    } else if !failed.is_empty() || (version.v2 && any_warning) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if !failed.is_empty() {
        body.push(("00081198", element("SQ", &failed)));
    }
    if !referenced.is_empty() {
        body.push(("00081199", element("SQ", &referenced)));
    }
    let mut resp = (status, object(&body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    resp
}

fn comment_sequence(comments: &[String]) -> String {
    let items: Vec<String> = comments
        .iter()
        .map(|c| object(&[("00000902", element("LO", &[text(c)]))]))
        .collect();
    element("SQ", &items)
}

/// `(gggg,eeee)` in lower-case hex, as the service's error comments write tags.
pub(crate) fn tag_text(tag: Tag) -> String {
    format!("({:04x},{:04x})", tag.0, tag.1)
}

/// The single string value of an element, trimmed; `None` when absent, empty or multi-valued.
fn single_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    if e.value().multiplicity() != 1 {
        return None;
    }
    e.value()
        .to_str()
        .ok()
        .map(|s| trim_uid(&s).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Azure's minimum validator on an element's first value (v1's indexed attributes, v2's PatientID): the
/// error comment when it fails. The raw text is checked: a NUL is padding only where the level says so.
fn minimum_check(obj: &InMemDicomObject, tag: Tag, level: minimum::Padding) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let DicomValue::Primitive(p) = e.value() else {
        return None;
    };
    if vr::is_bulk(e.vr()) {
        return None;
    }
    let why = minimum::check(e.vr(), &p.to_raw_str(), level)?;
    Some(minimum::comment(tag, e.vr(), &why))
}

/// Checks every string value of an element against its VR; the first failure as an error comment.
fn validate_element(obj: &InMemDicomObject, tag: Tag, vr_override: Option<VR>) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let vr = vr_override.unwrap_or(e.vr());
    let DicomValue::Primitive(p) = e.value() else {
        return None;
    };
    if matches!(vr, VR::LT | VR::ST | VR::UT | VR::UR | VR::UC) || vr::is_bulk(vr) {
        return None;
    }
    let values = p.to_multi_str();
    for v in values.iter() {
        if let Err(why) = vr::check_str(vr, v) {
            return Some(format!(
                "DICOM100: {} - Content \"{}\" does not validate VR {}: {}",
                tag_text(tag),
                v.trim_end_matches(['\0', ' ']),
                vr,
                why
            ));
        }
    }
    None
}

/// Validates, indexes and stores one received file. Returns its outcome and whether an indexed tag had
/// several values.
fn process(
    svc: &Service,
    version: ApiVersion,
    study_in_path: Option<&str>,
    base: &str,
    eqts: &[EqtDef],
    part: &ReceivedPart,
    scan: &Scan,
) -> (Outcome, bool) {
    let failed = |reason, class: Option<String>, sop: Option<String>, comments| {
        (
            Outcome::Failed {
                reason,
                class,
                sop,
                comments,
            },
            false,
        )
    };
    // The header only (up to PixelData): memory follows the header, never the pixel data.
    let file = match reader::read_header(part.source(), scan) {
        Ok(f) => f,
        Err(why) => return refused(&why, None, None),
    };
    if let Err(why) = scan.check_pixels() {
        let sop = single_str(&file, tags::SOP_INSTANCE_UID);
        let class = single_str(&file, tags::SOP_CLASS_UID);
        return refused(&why, class, sop);
    }
    let ts = file
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let obj: &InMemDicomObject = &file;
    let class = single_str(obj, tags::SOP_CLASS_UID);
    let sop = single_str(obj, tags::SOP_INSTANCE_UID);
    let study = single_str(obj, tags::STUDY_INSTANCE_UID);
    let series = single_str(obj, tags::SERIES_INSTANCE_UID);

    // Validation as upstream's StoreDatasetValidator does it, one comment per attribute (the first found):
    // the required attributes (the first one missing, else a study other than the path's, else PatientID),
    // then the minimum validator (v1: every indexed attribute; v2: the core tags, leniently), then in v2
    // everything else, whose failures are warnings and leave the metadata.
    let missing = |tag: Tag| {
        format!(
            "DICOM100: {} - The required tag '{}' is missing.",
            tag_text(tag),
            tag_text(tag)
        )
    };
    let mut errors: Vec<(Tag, String)> = Vec::new();
    let add = |errors: &mut Vec<(Tag, String)>, tag: Tag, comment: String| {
        if !errors.iter().any(|(t, _)| *t == tag) {
            errors.push((tag, comment));
        }
    };
    let patient_id_present = obj.element_opt(tags::PATIENT_ID).ok().flatten().is_some();
    let patient_id_value = single_str(obj, tags::PATIENT_ID).is_some();
    let first_missing = [
        (tags::SOP_CLASS_UID, &class),
        (tags::STUDY_INSTANCE_UID, &study),
        (tags::SERIES_INSTANCE_UID, &series),
        (tags::SOP_INSTANCE_UID, &sop),
    ]
    .into_iter()
    .find_map(|(tag, value)| value.is_none().then_some(tag));
    if let Some(tag) = first_missing {
        add(&mut errors, tag, missing(tag));
    } else if let (Some(expected), Some(found)) = (study_in_path, &study)
        && !trim_uid(expected).trim().eq_ignore_ascii_case(found)
    {
        add(
            &mut errors,
            tags::STUDY_INSTANCE_UID,
            format!(
                "DICOM100: {} - The StudyInstanceUid in the payload does not match the specified StudyInstanceUid.",
                tag_text(tags::STUDY_INSTANCE_UID)
            ),
        );
    } else if !patient_id_present || (!version.v2 && !patient_id_value) {
        add(&mut errors, tags::PATIENT_ID, missing(tags::PATIENT_ID));
    }
    let indexed: Vec<(Tag, Option<VR>)> = CORE_ATTRIBUTES
        .iter()
        .map(|a| (a.tag, None))
        .chain(eqts.iter().map(|t| (t.tag, Some(t.vr))))
        .collect();
    let uids = [
        tags::STUDY_INSTANCE_UID,
        tags::SERIES_INSTANCE_UID,
        tags::SOP_INSTANCE_UID,
    ];
    let (checked, level): (Vec<Tag>, _) = if version.v2 {
        let mut core = uids.to_vec();
        core.extend([tags::PATIENT_ID, tags::SOP_CLASS_UID]);
        (core, minimum::Padding::Lenient)
    } else {
        // Upstream's core query tags (the UIDs, ModalitiesInStudy and the core attributes), then the
        // extended query tags.
        let mut all = uids.to_vec();
        all.push(tags::MODALITIES_IN_STUDY);
        all.extend(indexed.iter().map(|(t, _)| *t));
        (all, minimum::Padding::Strict)
    };
    for tag in checked {
        if let Some(comment) = minimum_check(obj, tag, level) {
            add(&mut errors, tag, comment);
        }
    }
    // In v2 only the core tags' errors fail the instance; the rest warn and are dropped.
    let core_errors = errors.len();
    let mut dropped: Vec<Tag> = Vec::new();
    if version.v2 {
        for e in obj.iter() {
            let tag = e.header().tag;
            let comment = if tag == tags::PATIENT_ID && !patient_id_value {
                Some(missing(tag))
            } else {
                validate_element(obj, tag, None)
            };
            if let Some(comment) = comment
                && !errors.iter().any(|(t, _)| *t == tag)
            {
                errors.push((tag, comment));
                if !uids.contains(&tag) {
                    dropped.push(tag);
                }
            }
        }
    }
    let comments: Vec<String> = errors.into_iter().map(|(_, c)| c).collect();
    let fails = if version.v2 {
        core_errors > 0
    } else {
        !comments.is_empty()
    };
    let (Some(class), Some(sop), Some(study), Some(series)) =
        (class.clone(), sop.clone(), study, series)
    else {
        return failed(reason::VALIDATION_FAILED, class, sop, comments);
    };
    if fails {
        return failed(reason::VALIDATION_FAILED, Some(class), Some(sop), comments);
    }
    let warnings = comments;

    let mut metadata = dataset_to_json(obj);
    for tag in &dropped {
        metadata.remove(&dicomlab_dicom::json::tag_key(*tag));
    }
    let frames = obj
        .element_opt(tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .and_then(|e| e.value().to_int::<u32>().ok())
        .unwrap_or_else(|| u32::from(obj.element_opt(tags::ROWS).ok().flatten().is_some()));
    let mut multi_valued = false;
    let mut values = Vec::new();
    for (tag, vr_override) in &indexed {
        let vr =
            vr_override.or_else(|| CORE_ATTRIBUTES.iter().find(|a| a.tag == *tag).map(|a| a.vr));
        let Some(vr) = vr else { continue };
        multi_valued |= index::is_multi_valued(&metadata, *tag);
        let (text, num) = index::index_value(&metadata, *tag, vr);
        if text.is_some() || num.is_some() {
            values.push((tag_number(*tag), text, num));
        }
    }
    let mut warning = None;
    if ts == "1.2.840.10008.1.2" {
        warning = Some(reason::DATASET_DOES_NOT_MATCH_SOP_CLASS);
    }
    if version.v2 && !warnings.is_empty() {
        warning = Some(reason::ATTRIBUTES_DROPPED);
    }
    let record = NewInstance {
        study: study.clone(),
        series: series.clone(),
        sop: sop.clone(),
        class: class.clone(),
        transfer_syntax: ts,
        frames,
        metadata: Value::Object(metadata).to_string(),
        values,
    };
    match insert(svc, part, scan, &record) {
        Ok(Inserted::Stored) => {
            let url = format!("{base}/studies/{study}/series/{series}/instances/{sop}");
            (
                Outcome::Stored {
                    class,
                    sop,
                    url,
                    warning,
                    comments: warnings,
                },
                multi_valued,
            )
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
    }
}

/// Puts a validated part at its blob path in the standard form (a preamble, `DICM`, and a meta group
/// with its length: pydicom's bare in-memory datasets gain them, so strict readers read the stored file),
/// synced to disk; returns its size.
fn write_blob(
    svc: &Service,
    part: &ReceivedPart,
    scan: &Scan,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
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
            let tmp = svc.blobs.path(&svc.blobs.new_name());
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

/// A tag as the index stores it.
pub(crate) fn tag_number(tag: Tag) -> i64 {
    (i64::from(tag.0) << 16) | i64::from(tag.1)
}

/// An instance ready for the index.
struct NewInstance {
    study: String,
    series: String,
    sop: String,
    class: String,
    transfer_syntax: String,
    frames: u32,
    metadata: String,
    values: Vec<(i64, Option<String>, Option<f64>)>,
}

/// What became of an instance.
enum Inserted {
    Stored,
    /// The same Study/Series/SOP triple is stored already.
    Exists,
    /// It does not fit in what the service may hold.
    Full {
        quota: u64,
        held: u64,
    },
}

/// Records the instance (its file already written under its blob name), its searchable values and a
/// `Create` change-feed entry in one transaction; only then is the file kept.
fn insert(
    svc: &Service,
    part: &ReceivedPart,
    scan: &Scan,
    rec: &NewInstance,
) -> Result<Inserted, Box<dyn std::error::Error + Send + Sync>> {
    let exists = |c: &rusqlite::Connection| -> rusqlite::Result<bool> {
        Ok(c.prepare_cached(
            "SELECT watermark FROM instances WHERE study_uid = ?1 AND series_uid = ?2 AND sop_uid = ?3",
        )?
        .query_row(params![rec.study, rec.series, rec.sop], |r| r.get::<_, i64>(0))
        .optional()?
        .is_some())
    };
    if exists(&*svc.db.lock()?)? {
        return Ok(Inserted::Exists);
    }
    // Written (and synced) outside the index lock; still invisible until the commit below.
    let size = write_blob(svc, part, scan)?;
    let mut conn = svc.db.lock()?;
    let tx = conn.transaction()?;
    if exists(&tx)? {
        return Ok(Inserted::Exists);
    }
    if let Some(quota) = svc.config.max_stored_bytes {
        // Under the index lock: stores in parallel cannot together pass the limit.
        let held = super::db::stored_bytes_in(&tx)?;
        if held.saturating_add(size) > quota {
            return Ok(Inserted::Full { quota, held });
        }
    }
    let blob = &part.name;
    let result = (|| -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO instances(study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax, blob, size, frames, created, metadata)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
                rec.study,
                rec.series,
                rec.sop,
                rec.class,
                rec.transfer_syntax,
                blob,
                size as i64,
                rec.frames,
                now_timestamp(),
                rec.metadata
            ],
        )?;
        let watermark = tx.last_insert_rowid();
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO attr_index(watermark, tag, value, num) VALUES(?1, ?2, ?3, ?4)",
            )?;
            for (tag, text, num) in &rec.values {
                stmt.execute(params![watermark, tag, text, num])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO changefeed(study_uid, series_uid, sop_uid, action, timestamp, watermark)
             VALUES(?1, ?2, ?3, 'Create', ?4, ?5)",
        )?
        .execute(params![
            rec.study,
            rec.series,
            rec.sop,
            now_timestamp(),
            watermark
        ])?;
        Ok(())
    })();
    result.and_then(|()| tx.commit())?;
    // Committed: the file is part of the service now (on any error it is removed with the part).
    part.keep.store(true, std::sync::atomic::Ordering::Release);
    Ok(Inserted::Stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_warning_agent_is_the_host_without_its_port() {
        assert_eq!(warn_agent("127.0.0.1:18742"), "127.0.0.1:");
        assert_eq!(warn_agent("dicom.example.org"), "dicom.example.org:");
        assert_eq!(warn_agent("[::1]:8042"), "[::1]:");
        assert_eq!(warn_agent(""), "");
    }

    #[test]
    fn promises_share_the_room_and_are_given_back_part_by_part() {
        let reserved = Arc::new(AtomicU64::new(0));
        let a = Reservation::new(&reserved, 100, 0);
        let b = Reservation::new(&reserved, 100, 0);
        a.grow(60).expect("a fits");
        assert!(b.grow(50).is_err(), "60 + 50 > 100");
        // A received 40 bytes of parts (the rest was framing): it keeps 40.
        a.settle(40);
        assert_eq!(reserved.load(Ordering::Acquire), 40);
        b.grow(50).expect("40 + 50 fits");
        // A's first part is stored (counted as stored from now on): its share goes back.
        a.release(25);
        assert_eq!(reserved.load(Ordering::Acquire), 65);
        a.release(1000);
        assert_eq!(
            reserved.load(Ordering::Acquire),
            50,
            "never more than it held"
        );
        drop(a);
        assert_eq!(reserved.load(Ordering::Acquire), 50);
        drop(b);
        assert_eq!(reserved.load(Ordering::Acquire), 0);
        // Nothing left of the room: even a body of unknown size is refused at once.
        let full = Reservation::new(&reserved, 100, 100);
        assert!(full.grow(0).is_err());
    }
}
