//! WADO-RS (docs/contract.md §4): study / series / instance retrieval streamed from disk (single part or
//! multipart/related), metadata with unquoted ETags and 304, frames (1-based), and rendered PNG / JPEG
//! decoded from the pixel data. A single instance or its frames asked for in another transfer syntax are
//! transcoded as Azure does (`transcode.rs`: Explicit VR Little Endian ↔ JPEG 2000 lossless, files up to
//! 100 MB, `image/jp2` frames); several instances need `transfer-syntax=*`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use rusqlite::params;
use serde_json::Value;

use super::accept::{MediaRange, accepts_dicom_json, parse as parse_accept};
use super::auth::{Action, Caller};
use super::blobs::{Content, IN_INDEX, Lease};
use super::changefeed::Params;
use super::error::{ApiError, ApiResult};
use super::transcode;
use super::uids::UidPath as Target;
use super::{ApiVersion, Service, SharedService};
use dicomlab_dicom::chunks::file_stream;
use dicomlab_dicom::reader;

/// Explicit VR Little Endian: the default transfer syntax of WADO.
pub(crate) const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const JPEG2000: &str = transcode::JPEG2000_LOSSLESS;
/// Files above this size are not transcoded or rendered (docs/contract.md §4.2).
const RENDER_LIMIT: u64 = 100 * 1024 * 1024;
/// A retrieve reads the instances the index keeps (`blobs::IN_INDEX`) with its lookup, consistent
/// with it, while they come to at most this many bytes — what a file's retrieve holds in its read
/// buffer; beyond, each is read when its part is sent.
const IN_INDEX_AT_ONCE: u64 = 1024 * 1024;

/// A stored instance, as retrieval needs it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub watermark: i64,
    pub blob: String,
    pub transfer_syntax: String,
    pub frames: u32,
    pub size: u64,
    /// Its bytes: its file, or (a small instance) from the index.
    pub content: Content,
}

/// Whether a lookup reads the bytes of the instances the index keeps: a retrieve does, a metadata read
/// does not.
#[derive(Debug, Clone, Copy, PartialEq)]
enum InIndex {
    Read,
    Skip,
}

/// What a lookup found: the instances, and a lease on their files for as long as the answer needs them.
type Found = (Vec<Stored>, Lease);

/// Finds the target's instances (leasing their files while the index is locked, so that a delete cannot
/// remove them before they are read), or the 404 the real service gives.
fn find(svc: &Service, t: &Target) -> Result<Result<Found, ApiError>, super::db::DbError> {
    find_in(svc, &*svc.db.lock()?, t, InIndex::Read, IN_INDEX_AT_ONCE)
}

/// [`find`] on a connection the caller holds (what it reads next is of the same moment). The bytes of
/// the instances the index keeps are read too when `in_index` says so and they come to at most
/// `at_once` bytes; otherwise each is [`Content::Later`].
fn find_in(
    svc: &Service,
    c: &rusqlite::Connection,
    t: &Target,
    in_index: InIndex,
    at_once: u64,
) -> Result<Result<Found, ApiError>, super::db::DbError> {
    let t = &t.compared();
    let mut stmt = c.prepare_cached(
        "SELECT watermark, blob, transfer_syntax, frames, size FROM instances
         WHERE study_uid = ?1 AND (?2 IS NULL OR series_uid = ?2) AND (?3 IS NULL OR sop_uid = ?3)
         ORDER BY watermark",
    )?;
    let mut rows: Vec<Stored> = stmt
        .query_map(params![t.study, t.series, t.sop], |r| {
            let watermark = r.get(0)?;
            let blob: String = r.get(1)?;
            let content = if blob == IN_INDEX {
                Content::Later(watermark)
            } else {
                Content::File(svc.blobs.path(&blob))
            };
            Ok(Stored {
                watermark,
                blob,
                transfer_syntax: r.get(2)?,
                frames: r.get(3)?,
                size: r.get::<_, i64>(4)?.max(0) as u64,
                content,
            })
        })?
        .collect::<Result<_, _>>()?;
    let held: u64 = rows
        .iter()
        .filter(|r| r.blob == IN_INDEX)
        .map(|r| r.size)
        .sum();
    if in_index == InIndex::Read && held <= at_once {
        for r in &mut rows {
            if let Content::Later(watermark) = r.content {
                r.content = Content::Bytes(in_index_bytes(c, watermark)?);
            }
        }
    }
    if !rows.is_empty() {
        let lease = svc.blobs.lease(rows.iter().map(|r| r.blob.clone()));
        return Ok(Ok((rows, lease)));
    }
    let count = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<i64> {
        c.query_row(sql, args, |r| r.get(0))
    };
    let study_exists = count(
        "SELECT COUNT(*) FROM instances WHERE study_uid = ?1",
        &[&t.study],
    )? > 0;
    let what = if !study_exists {
        "study"
    } else if t.sop.is_none() {
        "series"
    } else if let Some(series) = &t.series
        && count(
            "SELECT COUNT(*) FROM instances WHERE study_uid = ?1 AND series_uid = ?2",
            &[&t.study, series],
        )? == 0
    {
        "series"
    } else {
        "instance"
    };
    Ok(Err(ApiError::not_found(format!(
        "The specified {what} cannot be found."
    ))))
}

/// The bytes of an instance the index keeps.
fn in_index_bytes(c: &rusqlite::Connection, watermark: i64) -> rusqlite::Result<Bytes> {
    c.prepare_cached("SELECT data FROM inline_blobs WHERE watermark = ?1")?
        .query_row([watermark], |r| r.get::<_, Vec<u8>>(0))
        .map(Bytes::from)
}

async fn lookup(svc: &SharedService, t: &Target) -> ApiResult<Found> {
    t.validate()?;
    let t2 = t.clone();
    svc.db(move |s| find(s, &t2)).await?
}

/// What the Accept header asked of a retrieve.
#[derive(Debug, Clone, PartialEq)]
struct Choice {
    multipart: bool,
    /// The media type of the answer (or of each part).
    media: &'static str,
    /// `*` or a UID.
    transfer_syntax: String,
}

/// A media type a route answers, as Azure's AcceptHeaderDescriptor lists them.
struct Descriptor {
    media: &'static str,
    /// Also as a single part (otherwise only inside multipart/related).
    single: bool,
    allowed_ts: &'static [&'static str],
    /// The transfer syntax when none is named.
    default_ts: &'static str,
}

/// Studies, series and instances: `application/dicom` in its stored syntax, Explicit VR Little Endian or
/// JPEG 2000 lossless.
const DICOM: Descriptor = Descriptor {
    media: "application/dicom",
    single: true,
    allowed_ts: &["*", EXPLICIT_LE, JPEG2000],
    default_ts: EXPLICIT_LE,
};

/// Frames: `application/octet-stream` as stored or in Explicit VR Little Endian, and
/// `multipart/related; type="image/jp2"` (JPEG 2000 lossless only).
const FRAME_DESCRIPTORS: [Descriptor; 2] = [
    Descriptor {
        media: "application/octet-stream",
        single: true,
        allowed_ts: &["*", EXPLICIT_LE],
        default_ts: EXPLICIT_LE,
    },
    Descriptor {
        media: "image/jp2",
        single: false,
        allowed_ts: &[JPEG2000],
        default_ts: JPEG2000,
    },
];

fn not_acceptable_retrieve() -> ApiError {
    ApiError::not_acceptable(
        "The request headers are not acceptable. Send Accept: multipart/related; type=\"application/dicom\"; transfer-syntax=* (several instances need transfer-syntax=*).",
    )
}

/// Picks the first acceptable media range, by descending q (docs/contract.md §4.2). The first descriptor is the
/// route's own media type (what `type="*/*"` and `*/*` stand for).
fn choose(
    ranges: &[MediaRange],
    descriptors: &[Descriptor],
    single_allowed: bool,
) -> Option<Choice> {
    let own = descriptors.first()?;
    let mut sorted: Vec<&MediaRange> = ranges.iter().filter(|r| r.q > 0.0).collect();
    sorted.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    for r in sorted {
        let (d, multipart, default_ts) = match r.media.as_str() {
            "multipart/related" => {
                let ty = r.type_param.as_deref().unwrap_or(own.media);
                // `type="*/*"`: the route's own part type, and the original transfer syntax unless one
                // is named (Azure's "any media type" descriptor).
                if ty == "*/*" {
                    (own, true, "*")
                } else if let Some(d) = descriptors.iter().find(|d| d.media == ty) {
                    (d, true, d.default_ts)
                } else {
                    continue;
                }
            }
            m if single_allowed => {
                if let Some(d) = descriptors.iter().find(|d| d.media == m && d.single) {
                    (d, false, d.default_ts)
                } else if m == "*/*" {
                    // A literal */* parses as single part; the instance and frame routes answer it as
                    // multipart with `*`.
                    (own, true, "*")
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        let choice = Choice {
            multipart,
            media: d.media,
            transfer_syntax: r.transfer_syntax.clone().unwrap_or(default_ts.into()),
        };
        let allowed = if default_ts == "*" {
            own.allowed_ts
        } else {
            d.allowed_ts
        };
        if allowed.contains(&choice.transfer_syntax.as_str()) {
            return Some(choice);
        }
    }
    None
}

/// How a stored file is sent: as it is, or converted.
#[derive(Debug, Clone, PartialEq)]
enum Sending {
    AsStored(String),
    Transcoded(String),
}

fn how_to_send(choice: &Choice, stored: &Stored) -> Sending {
    if choice.transfer_syntax == "*" || choice.transfer_syntax == stored.transfer_syntax {
        Sending::AsStored(stored.transfer_syntax.clone())
    } else {
        Sending::Transcoded(choice.transfer_syntax.clone())
    }
}

/// Refuses what Azure does not transcode: files over 100 MB, and conversions it has no codec for.
fn check_transcode(stored: &Stored, to: &str) -> ApiResult<()> {
    if stored.size > transcode::MAX_FILE {
        return Err(ApiError::not_acceptable(transcode::too_big_text()));
    }
    if !transcode::converts(&stored.transfer_syntax, to) {
        tracing::info!(
            "not transcoding {} to {to}: no codec for it",
            stored.transfer_syntax
        );
        return Err(ApiError::not_acceptable(transcode::UNSUPPORTED_TEXT));
    }
    Ok(())
}

/// Runs a conversion within the service's bounds: one of the heavy jobs, the memory it needs (from the
/// file's scan) reserved first, the work on the blocking pool. What cannot be converted, or would never
/// fit the budget, is Azure's 406.
async fn transcoding<T: Send + 'static>(
    svc: &SharedService,
    stored: &Stored,
    frames: Option<usize>,
    to: &str,
    work: impl FnOnce(reader::Source<'_>) -> Result<T, transcode::Unsupported> + Send + 'static,
) -> ApiResult<T> {
    check_transcode(stored, to)?;
    let content = stored.content.clone();
    let _permit = svc
        .heavy
        .acquire()
        .await
        .map_err(|e| ApiError::internal("transcode gate", e))?;
    let c = content.clone();
    let scan = tokio::task::spawn_blocking(move || transcode::scan(source_of(&c)?))
        .await
        .map_err(|e| ApiError::internal("transcode", e))?;
    let unsupported = |e: transcode::Unsupported| {
        tracing::info!("transcoding to {to} failed: {e}");
        ApiError::not_acceptable(transcode::UNSUPPORTED_TEXT)
    };
    let scan = scan.map_err(unsupported)?;
    let need = transcode::memory_needed(stored.size, &scan.image, frames, to);
    let _memory = svc.validation_memory.reserve(need).await.map_err(|e| {
        tracing::info!("not transcoding to {to}: {e}");
        ApiError::not_acceptable(transcode::UNSUPPORTED_TEXT)
    })?;
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || work(source_of(&content)?))
        .await
        .map_err(|e| ApiError::internal("transcode", e))?
        .map_err(unsupported)?;
    tracing::debug!(
        "transcoded to {to} in {} ms ({need} bytes reserved)",
        started.elapsed().as_millis()
    );
    Ok(out)
}

/// The bytes of one instance looked up alone (always read with its lookup).
fn source_of(content: &Content) -> Result<reader::Source<'_>, transcode::Unsupported> {
    content
        .source()
        .ok_or_else(|| transcode::Unsupported("the instance's bytes were not read".into()))
}

/// A body that holds its files' lease until it is sent (or dropped).
fn holding(
    s: BoxStream<'static, std::io::Result<Bytes>>,
    lease: Lease,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    s.map(move |chunk| {
        let _held = &lease;
        chunk
    })
    .boxed()
}

/// One instance's bytes as a body stream: its file read a chunk at a time, or what the index keeps.
fn content_stream(
    svc: &SharedService,
    content: Content,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    match content {
        Content::File(path) => file_stream(path),
        Content::Bytes(b) => stream::iter([Ok(b)]).boxed(),
        Content::Later(watermark) => part_read_later(svc, None, watermark),
    }
}

/// A part whose bytes the index keeps, read when its turn comes: `head` (its part header, if any)
/// and its bytes — or nothing at all when it was deleted since the lookup, so that every part sent
/// is whole.
fn part_read_later(
    svc: &SharedService,
    head: Option<Bytes>,
    watermark: i64,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let svc = svc.clone();
    stream::once(async move {
        let read = svc
            .db(move |s| {
                use rusqlite::OptionalExtension;
                Ok(in_index_bytes(&*s.db.lock()?, watermark).optional()?)
            })
            .await;
        let items: Vec<std::io::Result<Bytes>> = match read {
            Ok(Some(bytes)) => head.into_iter().chain([bytes]).map(Ok).collect(),
            Ok(None) => Vec::new(),
            Err(e) => vec![Err(std::io::Error::other(e.to_string()))],
        };
        stream::iter(items)
    })
    .flatten()
    .boxed()
}

/// A streamed multipart/related body: `(part content type, bytes)` in order.
fn multipart_body(
    svc: &SharedService,
    parts: Vec<(String, Content)>,
    lease: Lease,
) -> (String, Body) {
    let boundary = uuid::Uuid::new_v4().to_string();
    let mut segments: Vec<BoxStream<'static, std::io::Result<Bytes>>> = Vec::new();
    for (i, (ct, content)) in parts.into_iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = Bytes::from(format!("{lead}--{boundary}\r\nContent-Type: {ct}\r\n\r\n"));
        if let Content::Later(watermark) = content {
            segments.push(part_read_later(svc, Some(head), watermark));
            continue;
        }
        segments.push(stream::iter([Ok(head)]).boxed());
        segments.push(content_stream(svc, content));
    }
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    segments.push(stream::iter([Ok(tail)]).boxed());
    (
        format!("multipart/related; boundary={boundary}"),
        Body::from_stream(holding(stream::iter(segments).flatten().boxed(), lease)),
    )
}

fn with_content_type(mut resp: Response, ct: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

async fn retrieve(
    svc: SharedService,
    caller: Caller,
    headers: HeaderMap,
    t: Target,
) -> ApiResult<Response> {
    let ranges = parse_accept(&headers);
    let instance_level = t.sop.is_some();
    let Some(choice) = choose(&ranges, std::slice::from_ref(&DICOM), instance_level) else {
        return Err(not_acceptable_retrieve());
    };
    caller.require(&svc, Action::Read)?;
    let (found, lease) = lookup(&svc, &t).await?;
    if found.len() > 1 && choice.transfer_syntax != "*" {
        return Err(ApiError::not_acceptable(format!(
            "Accept transfer syntax '{}' is not supported when multiple instances are matched. Matching instances can be retrieved with their original transfer syntax by specifying 'transfer-syntax=*' in the Accept header.",
            choice.transfer_syntax
        )));
    }
    if let Sending::Transcoded(to) = how_to_send(&choice, &found[0]) {
        let target = to.clone();
        let bytes = transcoding(&svc, &found[0], None, &to, move |source| {
            transcode::file(source, &target)
        })
        .await?;
        drop(lease);
        let part_ct = format!("application/dicom; transfer-syntax={to}");
        if !choice.multipart {
            let resp = (StatusCode::OK, bytes).into_response();
            return Ok(with_content_type(resp, &part_ct));
        }
        let (ct, body) = multipart_bytes(&part_ct, &[bytes]);
        return Ok(with_content_type(
            (StatusCode::OK, body).into_response(),
            &ct,
        ));
    }
    if !choice.multipart {
        let stored = &found[0];
        let ts = &stored.transfer_syntax;
        let resp = (
            StatusCode::OK,
            [(header::CONTENT_LENGTH, stored.size.to_string())],
            Body::from_stream(holding(content_stream(&svc, stored.content.clone()), lease)),
        )
            .into_response();
        return Ok(with_content_type(
            resp,
            &format!("application/dicom; transfer-syntax={ts}"),
        ));
    }
    let mut parts = Vec::with_capacity(found.len());
    for stored in &found {
        parts.push((
            format!(
                "application/dicom; transfer-syntax={}",
                stored.transfer_syntax
            ),
            stored.content.clone(),
        ));
    }
    let (ct, body) = multipart_body(&svc, parts, lease);
    Ok(with_content_type(
        (StatusCode::OK, body).into_response(),
        &ct,
    ))
}

/// A multipart/related body of parts already in memory, all of one content type.
fn multipart_bytes(part_ct: &str, parts: &[Vec<u8>]) -> (String, Vec<u8>) {
    let boundary = uuid::Uuid::new_v4().to_string();
    let mut body = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 256);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: {part_ct}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(part);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; boundary={boundary}"), body)
}

pub(crate) async fn retrieve_study(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study)): Path<(String, String)>,
) -> ApiResult<Response> {
    retrieve(
        svc,
        caller,
        headers,
        Target {
            study,
            series: None,
            sop: None,
        },
    )
    .await
}

pub(crate) async fn retrieve_series(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study, series)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    retrieve(
        svc,
        caller,
        headers,
        Target {
            study,
            series: Some(series),
            sop: None,
        },
    )
    .await
}

pub(crate) async fn retrieve_instance(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study, series, sop)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    retrieve(
        svc,
        caller,
        headers,
        Target {
            study,
            series: Some(series),
            sop: Some(sop),
        },
    )
    .await
}

async fn metadata(
    svc: SharedService,
    caller: Caller,
    headers: HeaderMap,
    t: Target,
) -> ApiResult<Response> {
    if !accepts_dicom_json(&headers) {
        return Err(ApiError::empty(StatusCode::NOT_ACCEPTABLE));
    }
    caller.require(&svc, Action::Read)?;
    t.validate()?;
    let t_is_instance = t.sop.is_some();
    // The instances and their metadata are read under one lock: a delete in between would leave a
    // found instance without its row.
    let (found, docs) = svc
        .db(move |s| {
            let c = s.db.lock()?;
            let (found, _lease) = match find_in(s, &c, &t, InIndex::Skip, 0)? {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            };
            let mut stmt =
                c.prepare_cached("SELECT metadata FROM instances WHERE watermark = ?1")?;
            let mut docs = Vec::with_capacity(found.len());
            for f in &found {
                let m: String = stmt.query_row([f.watermark], |r| r.get(0))?;
                docs.push(serde_json::from_str::<Value>(&m).unwrap_or(Value::Null));
            }
            Ok(Ok((found, docs)))
        })
        .await??;
    let etag = if t_is_instance {
        found[0].watermark.to_string()
    } else {
        format!(
            "{}-{}",
            found.iter().map(|s| s.watermark).max().unwrap_or(0),
            found.len()
        )
    };
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if if_none_match.is_some_and(|v| v.eq_ignore_ascii_case(&etag)) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let mut resp = (StatusCode::OK, Value::Array(docs).to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

pub(crate) async fn study_metadata(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study)): Path<(String, String)>,
) -> ApiResult<Response> {
    metadata(
        svc,
        caller,
        headers,
        Target {
            study,
            series: None,
            sop: None,
        },
    )
    .await
}

pub(crate) async fn series_metadata(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study, series)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    metadata(
        svc,
        caller,
        headers,
        Target {
            study,
            series: Some(series),
            sop: None,
        },
    )
    .await
}

pub(crate) async fn instance_metadata(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study, series, sop)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    metadata(
        svc,
        caller,
        headers,
        Target {
            study,
            series: Some(series),
            sop: Some(sop),
        },
    )
    .await
}

fn bad_frames() -> ApiError {
    ApiError::bad_request(
        "The specified frames value is not valid. At least one frame number should be present, and each should be greater than 0.",
    )
}

/// `1,3` → `[1, 3]`; 0, negatives and garbage are 400 (docs/contract.md §4.3).
fn parse_frames(s: &str) -> ApiResult<Vec<u32>> {
    let frames: Vec<u32> = s
        .split(',')
        .map(|f| {
            f.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .and_then(|n| u32::try_from(n).ok())
        })
        .collect::<Option<_>>()
        .ok_or_else(bad_frames)?;
    if frames.is_empty() {
        Err(bad_frames())
    } else {
        Ok(frames)
    }
}

/// Reads the raw bytes of the given (1-based) frames from a stored file: only those bytes, through the
/// bounded reader.
fn read_frames(content: &Content, frames: &[u32]) -> Result<Vec<Vec<u8>>, String> {
    let source = source_of(content).map_err(|e| e.to_string())?;
    let scan = reader::scan(source, &reader::Limits::default()).map_err(|e| e.to_string())?;
    reader::read_frames(source, &scan, frames).map_err(|e| e.to_string())
}

pub(crate) async fn retrieve_frames(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study, series, sop, frames)): Path<(String, String, String, String, String)>,
) -> ApiResult<Response> {
    let ranges = parse_accept(&headers);
    let choice = choose(&ranges, &FRAME_DESCRIPTORS, true).ok_or_else(not_acceptable_retrieve)?;
    caller.require(&svc, Action::Read)?;
    let t = Target {
        study,
        series: Some(series),
        sop: Some(sop),
    };
    t.validate()?;
    let frames = parse_frames(&frames)?;
    if !choice.multipart && frames.len() > 1 {
        return Err(ApiError::bad_request(
            "The accept header is supported for single frame retrieval, use multi-part accept header instead.",
        ));
    }
    let (mut found, _lease) = lookup(&svc, &t).await?;
    let stored = found.remove(0);
    if frames.iter().any(|f| *f > stored.frames) {
        return Err(ApiError::not_found("The specified frame cannot be found."));
    }
    let (ts, data) = match how_to_send(&choice, &stored) {
        Sending::Transcoded(to) => {
            let target = to.clone();
            let count = frames.len();
            let data = transcoding(&svc, &stored, Some(count), &to, move |source| {
                transcode::frames(source, &frames, &target)
            })
            .await?;
            (to, data)
        }
        Sending::AsStored(ts) => {
            let content = stored.content.clone();
            let _permit = svc
                .heavy
                .acquire()
                .await
                .map_err(|e| ApiError::internal("frames gate", e))?;
            // The frames are held in memory to answer: bounded by the validation budget.
            let want = stored.size.min(svc.validation_memory.capacity());
            let _memory = svc
                .validation_memory
                .reserve(want)
                .await
                .map_err(|e| ApiError::internal("frames budget", e))?;
            let data = tokio::task::spawn_blocking(move || read_frames(&content, &frames))
                .await
                .map_err(|e| ApiError::internal("frames", e))?
                .map_err(|e| {
                    ApiError::not_found(format!("The specified frame cannot be found: {e}"))
                })?;
            (ts, data)
        }
    };
    let part_ct = format!("{}; transfer-syntax={ts}", choice.media);
    if !choice.multipart {
        let resp = (StatusCode::OK, data.into_iter().next().unwrap_or_default()).into_response();
        return Ok(with_content_type(resp, &part_ct));
    }
    let (ct, body) = multipart_bytes(&part_ct, &data);
    Ok(with_content_type(
        (StatusCode::OK, body).into_response(),
        &ct,
    ))
}

/// Renders one frame to PNG or JPEG.
fn render(content: &Content, frame: u32, png: bool, quality: u8) -> Result<Vec<u8>, String> {
    use dicom_pixeldata::PixelDecoder;
    let source = source_of(content).map_err(|e| e.to_string())?;
    let scan = reader::scan(source, &reader::Limits::default()).map_err(|e| e.to_string())?;
    let obj = reader::read_all(source, &scan).map_err(|e| e.to_string())?;
    let decoded = obj.decode_pixel_data().map_err(|e| e.to_string())?;
    let img = decoded
        .to_dynamic_image(frame - 1)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if png {
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .map_err(|e| e.to_string())?;
    } else {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&img.to_rgb8())
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

async fn rendered(
    svc: SharedService,
    caller: Caller,
    headers: HeaderMap,
    t: Target,
    frame: u32,
    q: Vec<(String, String)>,
) -> ApiResult<Response> {
    let ranges = parse_accept(&headers);
    let png = match ranges.as_slice() {
        [] => false,
        [r] if r.media == "image/jpeg" => false,
        [r] if r.media == "image/png" => true,
        _ => {
            return Err(ApiError::not_acceptable(
                "Rendered images are image/jpeg or image/png: ask for exactly one.",
            ));
        }
    };
    caller.require(&svc, Action::Read)?;
    let quality = Params::new(q).int("quality", 100, 1, 100)?;
    let (mut found, _lease) = lookup(&svc, &t).await?;
    let stored = found.remove(0);
    if frame > stored.frames {
        return Err(ApiError::not_found("The specified frame cannot be found."));
    }
    if stored.size > RENDER_LIMIT {
        return Err(ApiError::not_acceptable(
            "The instance is too large to render (over 100 MB).",
        ));
    }
    let content = stored.content.clone();
    let _permit = svc
        .heavy
        .acquire()
        .await
        .map_err(|e| ApiError::internal("render gate", e))?;
    // The file, its decoded pixels and the image: about three times its size, from the budget.
    let want = stored
        .size
        .saturating_mul(3)
        .min(svc.validation_memory.capacity());
    let _memory = svc
        .validation_memory
        .reserve(want)
        .await
        .map_err(|e| ApiError::internal("render budget", e))?;
    let bytes = tokio::task::spawn_blocking(move || render(&content, frame, png, quality as u8))
        .await
        .map_err(|e| ApiError::internal("render", e))?
        .map_err(|e| {
            ApiError::not_acceptable(format!("The instance could not be rendered: {e}"))
        })?;
    let ct = if png { "image/png" } else { "image/jpeg" };
    Ok(with_content_type(
        (StatusCode::OK, bytes).into_response(),
        ct,
    ))
}

pub(crate) async fn rendered_instance(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study, series, sop)): Path<(String, String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let t = Target {
        study,
        series: Some(series),
        sop: Some(sop),
    };
    rendered(svc, caller, headers, t, 1, q).await
}

pub(crate) async fn rendered_frame(
    State(svc): State<SharedService>,
    _v: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    Path((_, study, series, sop, frame)): Path<(String, String, String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let frame = match parse_frames(&frame)?.as_slice() {
        [f] => *f,
        _ => return Err(bad_frames()),
    };
    let t = Target {
        study,
        series: Some(series),
        sop: Some(sop),
    };
    rendered(svc, caller, headers, t, frame, q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(accept: &str) -> Vec<MediaRange> {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_str(accept).expect("header"),
        );
        parse_accept(&h)
    }

    fn frame(accept: &str) -> Option<(bool, &'static str, String)> {
        choose(&ranges(accept), &FRAME_DESCRIPTORS, true)
            .map(|c| (c.multipart, c.media, c.transfer_syntax))
    }

    #[test]
    fn frames_as_azure_lists_them() {
        assert_eq!(
            frame(r#"multipart/related; type="image/jp2""#),
            Some((true, "image/jp2", JPEG2000.into()))
        );
        assert_eq!(frame("image/jp2"), None, "image/jp2 only in multipart");
        assert_eq!(
            frame(r#"multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.1"#),
            None
        );
        assert_eq!(
            frame(
                r#"multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.90"#
            ),
            None,
            "octet-stream is never JPEG 2000"
        );
        assert_eq!(
            frame("application/octet-stream"),
            Some((false, "application/octet-stream", EXPLICIT_LE.into()))
        );
        assert_eq!(
            frame(r#"multipart/related; type="*/*""#),
            Some((true, "application/octet-stream", "*".into()))
        );
    }

    /// Adds an instance of study `1.2` whose bytes the index keeps; answers its watermark.
    fn kept(svc: &Service, sop: &str, data: &[u8]) -> i64 {
        let c = svc.db.lock().expect("index");
        c.execute(
            "INSERT INTO instances(study_uid, series_uid, sop_uid, sop_class_uid, transfer_syntax,
               blob, size, frames, created, metadata)
             VALUES('1.2', '1.2.1', ?1, '1.2.840.10008.5.1.4.1.1.7', ?2, ?3, ?4, 1, '', '{}')",
            params![sop, EXPLICIT_LE, IN_INDEX, data.len() as i64],
        )
        .expect("instance");
        let watermark = c.last_insert_rowid();
        c.execute(
            "INSERT INTO inline_blobs(watermark, data) VALUES(?1, ?2)",
            params![watermark, data],
        )
        .expect("bytes");
        watermark
    }

    fn found(svc: &Service, in_index: InIndex, at_once: u64) -> Found {
        let study = Target {
            study: "1.2".into(),
            series: None,
            sop: None,
        };
        find_in(
            svc,
            &svc.db.lock().expect("index"),
            &study,
            in_index,
            at_once,
        )
        .expect("index")
        .expect("found")
    }

    async fn multipart_of(svc: &SharedService, (found, lease): Found) -> Result<Bytes, String> {
        let parts = found
            .into_iter()
            .map(|f| ("application/dicom".to_string(), f.content))
            .collect();
        let (_, body) = multipart_body(svc, parts, lease);
        axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| e.to_string())
    }

    /// The instances the index keeps are read with the lookup while they fit what a retrieve holds at
    /// once, and part by part beyond it; either way every part is sent whole, and a part deleted
    /// before its turn is left out, never cut short. A metadata read reads none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retrieve_reads_what_the_index_keeps_at_once_or_part_by_part() {
        let svc = crate::build(crate::ServiceConfig::default(), "http://127.0.0.1")
            .expect("service")
            .service;
        kept(&svc, "1.2.1.1", b"first");
        let second = kept(&svc, "1.2.1.2", b"second!");

        let (at_once, lease) = found(&svc, InIndex::Read, 12);
        let read: Vec<&[u8]> = at_once
            .iter()
            .filter_map(|f| match &f.content {
                Content::Bytes(b) => Some(&b[..]),
                _ => None,
            })
            .collect();
        assert_eq!(read, [&b"first"[..], b"second!"]);
        let body = multipart_of(&svc, (at_once, lease)).await.expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("\r\n\r\nfirst\r\n--") && text.contains("\r\n\r\nsecond!\r\n--"));

        let part_by_part = found(&svc, InIndex::Read, 11);
        assert!(
            part_by_part
                .0
                .iter()
                .all(|f| matches!(f.content, Content::Later(_)))
        );
        assert_eq!(
            multipart_of(&svc, part_by_part).await.expect("body").len(),
            body.len(),
            "the same body, read part by part"
        );

        let (skip, _) = found(&svc, InIndex::Skip, u64::MAX);
        assert!(skip.iter().all(|f| matches!(f.content, Content::Later(_))));

        let later = found(&svc, InIndex::Read, 0);
        svc.db
            .lock()
            .expect("index")
            .execute("DELETE FROM instances WHERE watermark = ?1", [second])
            .expect("delete");
        assert_eq!(
            crate::blobs::kept_in_index(&svc.db),
            1,
            "the bytes go with their instance"
        );
        let body = multipart_of(&svc, later).await.expect("body");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches("Content-Type: application/dicom").count(), 1);
        assert!(text.contains("\r\n\r\nfirst\r\n--") && !text.contains("second!"));
    }

    #[test]
    fn instances_may_ask_for_jpeg_2000() {
        let c = choose(
            &ranges("application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90"),
            std::slice::from_ref(&DICOM),
            true,
        )
        .expect("acceptable");
        assert!(!c.multipart);
        assert_eq!(c.transfer_syntax, JPEG2000);
        assert!(
            choose(
                &ranges("application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"),
                std::slice::from_ref(&DICOM),
                true,
            )
            .is_none()
        );
        assert!(
            choose(
                &ranges("application/dicom"),
                std::slice::from_ref(&DICOM),
                false
            )
            .is_none(),
            "a study is multipart only"
        );
    }
}
