//! Streaming request bodies to disk: single-part or `multipart/related` (axum's `Multipart` is form-data
//! only; multer parses related bodies when given the boundary). Memory stays bounded whatever the size.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::blobs::Blobs;
use super::error::ApiError;

/// Parts up to this size are received in memory: validated without a file round trip, and never written
/// when they fail.
const KEEP_IN_MEMORY: u64 = 1024 * 1024;
/// At most this much of one request is held in memory; later parts stream to disk.
const REQUEST_MEMORY_BUDGET: u64 = 8 * 1024 * 1024;

/// One received part: on disk at its blob path, or (small parts) in memory until the store step writes it.
/// The file is removed when this is dropped unless the index committed it (`keep`).
#[derive(Debug)]
pub struct ReceivedPart {
    /// The blob name (`ab/<uuid>.dcm`).
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// The whole part when it is small; then nothing is on disk yet.
    pub bytes: Option<Vec<u8>>,
    pub keep: std::sync::atomic::AtomicBool,
}

impl Drop for ReceivedPart {
    fn drop(&mut self) {
        if !self.keep.load(std::sync::atomic::Ordering::Acquire) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Receives a part: small parts stay in memory (written to their blob path only once validated, by the
/// store step); a part that grows past `KEEP_IN_MEMORY` spills to its blob path and streams from there.
/// The 128-byte preamble is zeroed on the way (contract §3.2).
struct PartWriter {
    part: ReceivedPart,
    memory: Vec<u8>,
    out: Option<tokio::io::BufWriter<tokio::fs::File>>,
    preamble_checked: bool,
    /// This part spills to disk past this many bytes (≤ KEEP_IN_MEMORY, less when the request's budget is short).
    keep_limit: u64,
}

impl PartWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.part.size += chunk.len() as u64;
        if let Some(out) = &mut self.out {
            return out
                .write_all(chunk)
                .await
                .map_err(|e| ApiError::internal("write upload", e));
        }
        self.memory.extend_from_slice(chunk);
        if !self.preamble_checked && self.memory.len() >= 132 {
            self.preamble_checked = true;
            if &self.memory[128..132] == b"DICM" {
                self.memory[..128].fill(0);
            }
        }
        // Spill only once the preamble has been seen (and zeroed), so what reaches the disk is final.
        if self.part.size > self.keep_limit && self.preamble_checked {
            let file = tokio::fs::File::create(&self.part.path)
                .await
                .map_err(|e| ApiError::internal("create upload file", e))?;
            let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
            out.write_all(&std::mem::take(&mut self.memory))
                .await
                .map_err(|e| ApiError::internal("write upload", e))?;
            self.out = Some(out);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<ReceivedPart, ApiError> {
        match &mut self.out {
            Some(out) => out
                .flush()
                .await
                .map_err(|e| ApiError::internal("write upload", e))?,
            None => self.part.bytes = Some(std::mem::take(&mut self.memory)),
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

/// Counts bytes through a body stream and stops it past `max`.
fn limited(body: Body, max: u64) -> impl Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let mut seen: u64 = 0;
    body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len() as u64;
        if seen > max {
            Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "body too large",
            ))
        } else {
            Ok(chunk)
        }
    })
}

fn io_to_api(e: &std::io::Error, max: u64) -> ApiError {
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        too_large(max)
    } else {
        ApiError::bad_request(format!("The request body could not be read: {e}"))
    }
}

/// A writer for a new part; nothing touches the disk until the part outgrows its memory allowance.
fn create(blobs: &Blobs, keep_limit: u64) -> PartWriter {
    let name = blobs.new_name();
    let path = blobs.path(&name);
    PartWriter {
        part: ReceivedPart {
            name,
            path,
            size: 0,
            bytes: None,
            keep: false.into(),
        },
        memory: Vec::new(),
        out: None,
        preamble_checked: false,
        keep_limit,
    }
}

/// Streams a single-part body to one file.
pub async fn receive_single(body: Body, blobs: &Blobs, max: u64) -> Result<ReceivedPart, ApiError> {
    let mut writer = create(blobs, KEEP_IN_MEMORY);
    let mut stream = std::pin::pin!(limited(body, max));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| io_to_api(&e, max))?;
        writer.write(&chunk).await?;
    }
    writer.finish().await
}

/// The media type of a part, lower-cased, parameters included (compared exactly, contract §3.2).
fn part_type(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
}

/// Streams a `multipart/related` body to one file per part. `type_param` is the `type` of the request's
/// Content-Type, which only the first part may inherit.
pub async fn receive_related(
    body: Body,
    boundary: &str,
    type_param: Option<&str>,
    blobs: &Blobs,
    max: u64,
) -> Result<Vec<ReceivedPart>, ApiError> {
    let mut multipart = multer::Multipart::new(limited(body, max), boundary.to_string());
    let mut parts = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multer_error(e, max)),
        };
        let declared = part_type(field.headers());
        let effective = match (declared, parts.is_empty()) {
            (Some(t), _) => Some(t),
            (None, true) => type_param.map(str::to_ascii_lowercase),
            (None, false) => None,
        };
        if effective.as_deref() != Some("application/dicom") {
            tracing::info!(?effective, "415: a part is not application/dicom");
            return Err(ApiError::unsupported_media());
        }
        let mut field = field;
        let in_memory: u64 = parts
            .iter()
            .filter(|p: &&ReceivedPart| p.bytes.is_some())
            .map(|p| p.size)
            .sum();
        let mut writer = create(
            blobs,
            KEEP_IN_MEMORY.min(REQUEST_MEMORY_BUDGET.saturating_sub(in_memory)),
        );
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => writer.write(&chunk).await?,
                Ok(None) => break,
                Err(e) => return Err(multer_error(e, max)),
            }
        }
        parts.push(writer.finish().await?);
    }
    Ok(parts)
}

fn multer_error(e: multer::Error, max: u64) -> ApiError {
    if let multer::Error::StreamReadFailed(inner) = &e
        && let Some(io) = inner.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::FileTooLarge
    {
        return too_large(max);
    }
    ApiError::bad_request(format!(
        "The multipart/related request body is malformed: {e}"
    ))
}
