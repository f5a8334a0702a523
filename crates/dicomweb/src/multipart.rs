//! multipart/related built by hand (reqwest only builds form-data) and streamed from the files, and
//! multipart responses streamed to files through the crate's bounded parser (memory bounded whatever the
//! study's size, and whatever the server sends: part headers within 64 KiB, at most 100,000 parts).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt, TryStreamExt};

/// Counts bytes as they leave, for progress gauges.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counter(Arc<AtomicU64>);

impl Counter {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Back to zero before a retry sends the file again.
    pub(crate) fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A file's bytes as a stream, counted.
pub(crate) fn file_stream(
    path: PathBuf,
    counter: Counter,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    dicomlab_dicom::chunks::file_stream(path)
        .inspect_ok(move |chunk| {
            counter.0.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        })
        .boxed()
}

/// A multipart/related body of DICOM files; returns its Content-Type and the stream.
/// The `type` parameter is quoted, as servers expect (`type="application/dicom"`).
pub(crate) fn related_body(
    files: &[PathBuf],
    counters: &[Counter],
) -> (String, BoxStream<'static, std::io::Result<Bytes>>) {
    let boundary = format!("dicomlab-{}", uuid::Uuid::new_v4().simple());
    let mut segments: Vec<BoxStream<'static, std::io::Result<Bytes>>> = Vec::new();
    for (path, counter) in files.iter().zip(counters) {
        let head = Bytes::from(format!(
            "--{boundary}\r\nContent-Type: application/dicom\r\n\r\n"
        ));
        segments.push(stream::iter([Ok(head)]).boxed());
        segments.push(file_stream(path.clone(), counter.clone()));
        segments.push(stream::iter([Ok(Bytes::from_static(b"\r\n"))]).boxed());
    }
    segments.push(stream::iter([Ok(Bytes::from(format!("--{boundary}--\r\n")))]).boxed());
    (
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        stream::iter(segments).flatten().boxed(),
    )
}

/// The boundary of a multipart Content-Type.
pub(crate) fn boundary_of(content_type: &str) -> Option<String> {
    let mime: mime::Mime = content_type.parse().ok()?;
    (mime.type_() == mime::MULTIPART).then(|| {
        mime.get_param(mime::BOUNDARY)
            .map(|b| b.as_str().to_string())
    })?
}

/// Why a multipart answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the multipart answer is malformed: {0}")]
    Multipart(#[from] dicomlab_dicom::multipart::MultipartError),
    #[error("the multipart answer could not be read: {0}")]
    Body(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One part written to disk (or only counted).
#[derive(Debug, Clone)]
pub struct SavedPart {
    /// Where it was written; empty when the answer was only counted.
    pub path: PathBuf,
    pub content_type: Option<String>,
    pub size: u64,
}

/// Parts a client accepts in one answer (a study's instances).
const MAX_PARTS: usize = 100_000;

/// Streams each part of a multipart body into `dir/part-N.ext`; with no `dir`, reads each part to
/// its end and counts its bytes, writing nothing.
pub(crate) async fn save_parts<S, E>(
    body: S,
    boundary: &str,
    dir: Option<&Path>,
    ext: &str,
) -> Result<Vec<SavedPart>, ReadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    use dicomlab_dicom::chunks::FileWriter;
    use dicomlab_dicom::multipart::{Event, Limits, Parser, header};
    let mut parser = Parser::new(
        boundary,
        Limits {
            max_parts: MAX_PARTS,
            ..Limits::default()
        },
    );
    let mut body = std::pin::pin!(body);
    let mut saved: Vec<SavedPart> = Vec::new();
    let mut out: Option<FileWriter> = None;
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadError::Write { path, source }
    };
    loop {
        while let Some(event) = parser.next_event()? {
            match event {
                Event::Part(headers) => {
                    let path = dir.map_or_else(PathBuf::new, |d| {
                        d.join(format!("part-{}.{ext}", saved.len() + 1))
                    });
                    if dir.is_some() {
                        out = Some(
                            FileWriter::create(&path)
                                .await
                                .map_err(write_error(&path))?,
                        );
                    }
                    saved.push(SavedPart {
                        path,
                        content_type: header(&headers, "content-type").map(str::to_string),
                        size: 0,
                    });
                }
                Event::Data(chunk) => {
                    if let Some(part) = saved.last_mut() {
                        part.size += chunk.len() as u64;
                        if let Some(o) = &mut out {
                            o.write(chunk).await.map_err(write_error(&part.path))?;
                        }
                    }
                }
                Event::PartEnd => {
                    if let (Some(o), Some(part)) = (out.take(), saved.last()) {
                        o.finish().await.map_err(write_error(&part.path))?;
                    }
                }
                Event::End => {}
            }
        }
        match body.next().await {
            Some(chunk) => parser.feed_bytes(chunk.map_err(|e| ReadError::Body(e.to_string()))?),
            None => break,
        }
        if parser.is_done() {
            break;
        }
    }
    parser.finish()?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn related_body_round_trips_through_the_reader() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a.dcm");
        let b = dir.path().join("b.dcm");
        std::fs::write(&a, b"first file\r\n--not-a-boundary").expect("write");
        // Over three batches and three read chunks, not a multiple of either.
        let big: Vec<u8> = (0..3_500_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&b, &big).expect("write");
        let counters = vec![Counter::default(), Counter::default()];
        let (ct, body) = related_body(&[a, b], &counters);
        assert!(ct.contains("type=\"application/dicom\""));
        let boundary = boundary_of(&ct).expect("boundary");
        let out = tempfile::tempdir().expect("tmp");
        let parts = save_parts(body, &boundary, Some(out.path()), "dcm")
            .await
            .expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(
            std::fs::read(&parts[0].path).expect("read"),
            b"first file\r\n--not-a-boundary"
        );
        assert_eq!(parts[1].size, 3_500_000);
        assert!(std::fs::read(&parts[1].path).expect("read") == big);
        assert_eq!(counters[1].get(), 3_500_000);
        assert_eq!(parts[0].content_type.as_deref(), Some("application/dicom"));
    }

    /// Without a folder the parts are read to their end and counted; nothing is written.
    #[tokio::test]
    async fn parts_only_counted_write_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a.dcm");
        std::fs::write(&a, vec![3u8; 200_000]).expect("write");
        let counters = vec![Counter::default(), Counter::default()];
        let (ct, body) = related_body(&[a.clone(), a], &counters);
        let boundary = boundary_of(&ct).expect("boundary");
        let before = std::fs::read_dir(dir.path()).expect("dir").count();
        let parts = save_parts(body, &boundary, None, "dcm")
            .await
            .expect("parts");
        assert_eq!(
            parts.iter().map(|p| p.size).collect::<Vec<_>>(),
            [200_000, 200_000]
        );
        assert!(parts.iter().all(|p| p.path.as_os_str().is_empty()));
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), before);
    }
}
