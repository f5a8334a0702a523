//! A file streamed into a request or response body: read on the blocking pool a chunk at a time,
//! straight into a buffer that comes back to a pool when the connection has sent it.
//!
//! `tokio::fs::File` behind a `ReaderStream` copies every chunk twice (into its own buffer, then into
//! the stream's) and allocates a fresh chunk each time; above the 128 KiB mmap threshold the TUI and
//! `serve` run with, every allocation is a fresh mapping — page faults on every write into it and an
//! `munmap` on every free. Profiled on the practice service's 1 GB retrieve, that was half of its CPU.
//! Here a chunk is read into a reused buffer (one copy, the kernel's), and the blocking pool is held
//! only for the read itself, never while a slow peer reads the body.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};

/// Bytes read at a time.
const CHUNK: usize = 1024 * 1024;
/// Free buffers kept for reuse (process-wide: the classroom runs a service per learner, and a TUI per
/// learner, in one process). What more streams at once need is allocated and freed as usual.
const KEEP: usize = 8;

/// Free buffers, each `CHUNK` long.
struct Pool(Mutex<Vec<Vec<u8>>>);

/// The process's pool.
static POOL: Pool = Pool(Mutex::new(Vec::new()));

impl Pool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(|| vec![0; CHUNK])
    }
}

/// A chunk being sent: its buffer goes back to the pool when the body drops it.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    pool: &'static Pool,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.0.lock()
            && free.len() < KEEP
        {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

/// Fills `buf` from `f` as far as the file goes; how much was read (less than `buf` only at its end).
fn fill(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The file at `path` as a stream of chunks; an error opening or reading it ends the stream with it.
pub fn file_stream(path: PathBuf) -> BoxStream<'static, std::io::Result<Bytes>> {
    stream_from(&POOL, path)
}

fn stream_from(pool: &'static Pool, path: PathBuf) -> BoxStream<'static, std::io::Result<Bytes>> {
    enum State {
        Closed(PathBuf),
        Open(std::fs::File),
        Done,
    }
    stream::unfold(State::Closed(path), move |state| async move {
        let file = match state {
            State::Done => return None,
            State::Open(f) => Ok(f),
            State::Closed(path) => Err(path),
        };
        let read = tokio::task::spawn_blocking(move || {
            let mut f = match file {
                Ok(f) => f,
                Err(path) => std::fs::File::open(path)?,
            };
            let mut buf = pool.take();
            let n = fill(&mut f, &mut buf)?;
            Ok::<_, std::io::Error>((f, Chunk { buf, len: n, pool }))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Err(e) => Some((Err(e), State::Done)),
            Ok((_, chunk)) if chunk.len == 0 => None,
            Ok((f, chunk)) => {
                let next = if chunk.len < CHUNK {
                    State::Done
                } else {
                    State::Open(f)
                };
                Some((Ok(Bytes::from_owner(chunk)), next))
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEST_POOL: Pool = Pool(Mutex::new(Vec::new()));

    async fn read_all(path: PathBuf) -> std::io::Result<Vec<u8>> {
        let mut s = stream_from(&TEST_POOL, path);
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn files_of_every_size_around_a_chunk_stream_whole() {
        let t = tempfile::tempdir().expect("tmp");
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let path = t.path().join(format!("f{len}"));
            std::fs::write(&path, &data).expect("write");
            assert!(read_all(path).await.expect("read") == data, "{len} bytes");
        }
        // Every chunk was read into a buffer that came back: one at a time, one buffer.
        let free = TEST_POOL.0.lock().map(|f| f.len()).unwrap_or(0);
        assert_eq!(free, 1);
        // Chunks alive at once take more; dropped, the pool keeps no more than KEEP.
        let path = t.path().join("big");
        std::fs::write(&path, vec![7u8; (KEEP + 3) * CHUNK]).expect("write");
        let held: Vec<Bytes> = stream_from(&TEST_POOL, path)
            .map(|c| c.expect("chunk"))
            .collect()
            .await;
        assert_eq!(held.len(), KEEP + 3);
        drop(held);
        let free = TEST_POOL.0.lock().map(|f| f.len()).unwrap_or(0);
        assert_eq!(free, KEEP);
        let err = read_all(t.path().join("missing"))
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
