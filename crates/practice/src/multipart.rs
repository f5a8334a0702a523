//! Streaming request bodies to disk: single-part or `multipart/related` (parsed by the crate's bounded
//! parser: boundary and part headers within 64 KiB, at most 10,000 parts, linear in the body). Memory stays
//! bounded whatever the size: small parts are kept in memory only while the service's receive budget has
//! room, the rest stream to their blob path. A body that stalls (no bytes for `body_timeout`) is dropped.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use dicomlab_dicom::chunks::FileWriter;
use futures_util::{Stream, StreamExt};

use super::blobs::Blobs;
use super::budget::{Budget, Reservation};
use super::error::ApiError;
use super::quota::StoragePromise;
use dicomlab_dicom::multipart::{self, Event, Parser};

/// Parts up to this size are received in memory: validated without a file round trip, and never written
/// when they fail (the smallest are never written at all: the index keeps them, `blobs::IN_INDEX`).
const KEEP_IN_MEMORY: u64 = 1024 * 1024;
/// At most this much of one request is held in memory; later parts stream to disk.
const REQUEST_MEMORY_BUDGET: u64 = 8 * 1024 * 1024;

/// Where and how a body is received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intake<'a> {
    pub blobs: &'a Blobs,
    /// Largest body; more is 413.
    pub max: u64,
    /// A body that sends nothing for this long is dropped (408).
    pub idle: Duration,
    /// What parts kept in memory may hold, across every request.
    pub memory: &'a Budget,
    /// A body of unknown size under a storage limit: each chunk is promised room as it arrives.
    pub storage: Option<&'a StoragePromise>,
}

/// One received part: on disk at its blob path, or (small parts) in memory until the store step writes it
/// or hands it to the index.
/// The file is removed when this is dropped unless the index committed it (`keep`).
#[derive(Debug)]
pub(crate) struct ReceivedPart {
    /// The blob name (`ab/<uuid>.dcm`).
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// The whole part when it is small; then nothing is on disk yet.
    pub bytes: Option<Vec<u8>>,
    pub keep: std::sync::atomic::AtomicBool,
    /// The receive budget those bytes hold, given back when the part is dropped.
    pub memory: Option<Reservation>,
}

impl ReceivedPart {
    /// The part's bytes, for the reader.
    pub(crate) fn source(&self) -> dicomlab_dicom::reader::Source<'_> {
        match &self.bytes {
            Some(b) => dicomlab_dicom::reader::Source::Bytes(b),
            None => dicomlab_dicom::reader::Source::File(&self.path),
        }
    }

    /// The part's file, if it has one, is the service's now (committed): it stays when the part is
    /// dropped. A part whose bytes the index keeps has no file to remove either.
    pub(crate) fn mark_kept(&self) {
        self.keep.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for ReceivedPart {
    fn drop(&mut self) {
        if !self.keep.load(std::sync::atomic::Ordering::Acquire) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Receives a part: small parts stay in memory (written to their blob path, or kept by the index, only
/// once validated, by the store step); a part that grows past `KEEP_IN_MEMORY` spills to its blob path
/// and streams from there.
/// The 128-byte preamble is zeroed on the way (docs/contract.md §3.2).
struct PartWriter {
    part: ReceivedPart,
    memory: Vec<u8>,
    out: Option<FileWriter>,
    preamble_checked: bool,
    /// This part spills to disk past this many bytes (≤ KEEP_IN_MEMORY, less when the request's budget is short).
    keep_limit: u64,
}

impl PartWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.part.size += chunk.len() as u64;
        if let Some(out) = &mut self.out {
            return out
                .write(chunk)
                .await
                .map_err(|e| ApiError::internal("write upload", e));
        }
        self.memory.extend_from_slice(&chunk);
        if !self.preamble_checked && self.memory.len() >= 132 {
            self.preamble_checked = true;
            if &self.memory[128..132] == b"DICM" {
                self.memory[..128].fill(0);
            }
        }
        // Spill only once the preamble has been seen (and zeroed), so what reaches the disk is final.
        if self.part.size > self.keep_limit && self.preamble_checked {
            let mut out = FileWriter::create(&self.part.path)
                .await
                .map_err(|e| ApiError::internal("create upload file", e))?;
            out.write(Bytes::from(std::mem::take(&mut self.memory)))
                .await
                .map_err(|e| ApiError::internal("write upload", e))?;
            self.out = Some(out);
            self.part.memory = None;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<ReceivedPart, ApiError> {
        match self.out.take() {
            Some(out) => {
                out.finish()
                    .await
                    .map_err(|e| ApiError::internal("write upload", e))?;
            }
            None => {
                if let Some(r) = &mut self.part.memory {
                    r.shrink_to(self.memory.len() as u64);
                }
                self.part.bytes = Some(std::mem::take(&mut self.memory));
            }
        }
        Ok(self.part)
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The request body exceeds the maximum allowed size of {max} bytes."),
    )
}

/// Counts bytes through a body stream, stops it past `max`, and ends it when it stalls.
fn limited<'a>(
    body: Body,
    max: u64,
    idle: Duration,
    storage: Option<&'a StoragePromise>,
) -> impl Stream<Item = Result<bytes::Bytes, ApiError>> + 'a {
    let stream = body.into_data_stream();
    futures_util::stream::unfold(Some((stream, 0u64)), move |state| async move {
        let (mut stream, mut seen) = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => Some((
                Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "The request body stalled: no bytes arrived for {} s.",
                        idle.as_secs()
                    ),
                )),
                None,
            )),
            Ok(None) => None,
            Ok(Some(Err(e))) => Some((
                Err(ApiError::bad_request(format!(
                    "The request body could not be read: {e}"
                ))),
                None,
            )),
            Ok(Some(Ok(chunk))) => {
                seen += chunk.len() as u64;
                if seen > max {
                    Some((Err(too_large(max)), None))
                } else if let Some(Err(full)) = storage.map(|r| r.grow(chunk.len() as u64)) {
                    Some((Err(full), None))
                } else {
                    Some((Ok(chunk), Some((stream, seen))))
                }
            }
        }
    })
}

/// A writer for a new part; nothing touches the disk until the part outgrows its memory allowance,
/// which is what the receive budget can spare now (nothing: the part streams to disk at once).
fn create(intake: &Intake<'_>, allowance: u64) -> Result<PartWriter, ApiError> {
    let name = intake
        .blobs
        .new_name()
        .map_err(|e| ApiError::internal("make the upload's folder", e))?;
    let path = intake.blobs.path(&name);
    let memory = intake.memory.try_reserve(allowance);
    let keep_limit = if memory.is_some() { allowance } else { 0 };
    Ok(PartWriter {
        part: ReceivedPart {
            name,
            path,
            size: 0,
            bytes: None,
            keep: false.into(),
            memory,
        },
        memory: Vec::new(),
        out: None,
        preamble_checked: false,
        keep_limit,
    })
}

/// Streams a single-part body to one file.
pub(crate) async fn receive_single(
    body: Body,
    intake: &Intake<'_>,
) -> Result<ReceivedPart, ApiError> {
    let mut writer = create(intake, KEEP_IN_MEMORY)?;
    let mut stream = std::pin::pin!(limited(body, intake.max, intake.idle, intake.storage));
    while let Some(chunk) = stream.next().await {
        writer.write(chunk?).await?;
    }
    writer.finish().await
}

/// The media type of a part, lower-cased, parameters included (compared exactly, docs/contract.md §3.2).
fn part_type(headers: &[(String, String)]) -> Option<String> {
    multipart::header(headers, "content-type").map(|s| s.trim().to_ascii_lowercase())
}

/// Streams a `multipart/related` body to one file per part. `type_param` is the `type` of the request's
/// Content-Type, which only the first part may inherit.
pub(crate) async fn receive_related(
    body: Body,
    boundary: &str,
    type_param: Option<&str>,
    intake: &Intake<'_>,
) -> Result<Vec<ReceivedPart>, ApiError> {
    let mut parser = Parser::new(boundary, multipart::Limits::default());
    let mut stream = std::pin::pin!(limited(body, intake.max, intake.idle, intake.storage));
    let mut parts: Vec<ReceivedPart> = Vec::new();
    let mut current: Option<PartWriter> = None;
    // What this request keeps in memory so far (a running sum: linear in the number of parts).
    let mut in_memory: u64 = 0;
    loop {
        while let Some(event) = parser.next_event().map_err(malformed)? {
            match event {
                Event::Part(headers) => {
                    let effective = match (part_type(&headers), parts.is_empty()) {
                        (Some(t), _) => Some(t),
                        (None, true) => type_param.map(str::to_ascii_lowercase),
                        (None, false) => None,
                    };
                    if effective.as_deref() != Some("application/dicom") {
                        tracing::info!(?effective, "415: a part is not application/dicom");
                        return Err(ApiError::unsupported_media());
                    }
                    let allowance =
                        KEEP_IN_MEMORY.min(REQUEST_MEMORY_BUDGET.saturating_sub(in_memory));
                    current = Some(create(intake, allowance)?);
                }
                Event::Data(d) => {
                    if let Some(w) = &mut current {
                        w.write(d).await?;
                    }
                }
                Event::PartEnd => {
                    if let Some(w) = current.take() {
                        let part = w.finish().await?;
                        if part.bytes.is_some() {
                            in_memory += part.size;
                        }
                        parts.push(part);
                    }
                }
                Event::End => {}
            }
        }
        // After the closing boundary the rest (an epilogue) is read and ignored.
        match stream.next().await {
            Some(chunk) => parser.feed_bytes(chunk?),
            None => break,
        }
    }
    parser.finish().map_err(malformed)?;
    Ok(parts)
}

fn malformed(e: multipart::MultipartError) -> ApiError {
    ApiError::bad_request(format!(
        "The multipart/related request body is malformed: {e}"
    ))
}
