//! Streaming request bodies to disk: single-part or `multipart/related` (axum's `Multipart` is form-data
//! only; multer parses related bodies when given the boundary). Memory stays bounded whatever the size.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::blobs::Blobs;
use super::error::ApiError;

/// One received part, on disk in `tmp/`. The file is removed when this is dropped unless taken.
#[derive(Debug)]
pub struct ReceivedPart {
    pub path: PathBuf,
    pub size: u64,
}

impl Drop for ReceivedPart {
    fn drop(&mut self) {
        // Already moved into blobs/ (commit) or never created: both fine.
        let _ = std::fs::remove_file(&self.path);
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

async fn create(
    blobs: &Blobs,
) -> Result<(tokio::io::BufWriter<tokio::fs::File>, ReceivedPart), ApiError> {
    let path = blobs.tmp_path();
    let file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::internal("create upload file", e))?;
    Ok((
        tokio::io::BufWriter::with_capacity(256 * 1024, file),
        ReceivedPart { path, size: 0 },
    ))
}

/// Streams a single-part body to one file.
pub async fn receive_single(body: Body, blobs: &Blobs, max: u64) -> Result<ReceivedPart, ApiError> {
    let (mut out, mut part) = create(blobs).await?;
    let mut stream = std::pin::pin!(limited(body, max));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| io_to_api(&e, max))?;
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal("write upload", e))?;
        part.size += chunk.len() as u64;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal("write upload", e))?;
    Ok(part)
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
        let (mut out, mut part) = create(blobs).await?;
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| ApiError::internal("write upload", e))?;
                    part.size += chunk.len() as u64;
                }
                Ok(None) => break,
                Err(e) => return Err(multer_error(e, max)),
            }
        }
        out.flush()
            .await
            .map_err(|e| ApiError::internal("write upload", e))?;
        parts.push(part);
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
