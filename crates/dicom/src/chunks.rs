//! Files and bodies, a chunk at a time. [`file_stream`]: a file streamed into a request or response
//! body, read on the blocking pool a chunk at a time, straight into a buffer that comes back to a pool
//! when the connection has sent it. [`FileWriter`]: a body's chunks written into a file as they came.
//!
//! `tokio::fs::File` behind a `ReaderStream` copies every chunk twice (into its own buffer, then into
//! the stream's) and allocates a fresh chunk each time; above the 128 KiB mmap threshold the TUI and
//! `serve` run with, every allocation is a fresh mapping — page faults on every write into it and an
//! `munmap` on every free. Profiled on the practice service's 1 GB retrieve, that was half of its CPU.
//! Here a chunk is read into a reused buffer (one copy, the kernel's) while the one before it is sent,
//! and the blocking pool is held only for the read itself, never while a slow peer reads the body.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};

/// Bytes read at a time.
const CHUNK: usize = 1024 * 1024;
/// Free buffers kept for reuse (process-wide: the classroom runs a service per learner, and a TUI per
/// learner, in one process): 4 MiB at most stay allocated. What more streams at once need is
/// allocated and freed as usual.
const KEEP: usize = 4;

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
    type NextRead = tokio::task::JoinHandle<std::io::Result<(std::fs::File, Chunk)>>;
    /// The next chunk's read, started on the blocking pool.
    fn read_next(pool: &'static Pool, file: Result<std::fs::File, PathBuf>) -> NextRead {
        tokio::task::spawn_blocking(move || {
            let mut f = match file {
                Ok(f) => f,
                Err(path) => std::fs::File::open(path)?,
            };
            let mut buf = pool.take();
            let n = fill(&mut f, &mut buf)?;
            Ok((f, Chunk { buf, len: n, pool }))
        })
    }
    enum State {
        Closed(PathBuf),
        Reading(NextRead),
        Done,
    }
    stream::unfold(State::Closed(path), move |state| async move {
        let reading = match state {
            State::Done => return None,
            State::Reading(r) => r,
            State::Closed(path) => read_next(pool, Err(path)),
        };
        let read = reading
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match read {
            Err(e) => Some((Err(e), State::Done)),
            Ok((_, chunk)) if chunk.len == 0 => None,
            Ok((f, chunk)) => {
                // The next chunk is read while this one is sent: the file's reads and the
                // socket's writes overlap rather than take turns.
                let next = if chunk.len < CHUNK {
                    State::Done
                } else {
                    State::Reading(read_next(pool, Ok(f)))
                };
                Some((Ok(Bytes::from_owner(chunk)), next))
            }
        }
    })
    .boxed()
}

/// Bytes gathered before they are written.
const BATCH: usize = 1024 * 1024;

/// A file written on the blocking pool a batch of chunks at a time while the next batch arrives. The
/// chunks are written as they are: no copy into a buffer (a `BufWriter`'s) and none into
/// `tokio::fs`'s. At most two batches are held: the one being written and the one gathering.
pub struct FileWriter {
    /// Here between writes; with the write in flight while one runs.
    file: Option<std::fs::File>,
    batch: Vec<Bytes>,
    batched: usize,
    writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>>,
}

impl FileWriter {
    /// Creates (or truncates) the file at `path`.
    pub async fn create(path: &std::path::Path) -> std::io::Result<FileWriter> {
        let path = path.to_path_buf();
        let file = tokio::task::spawn_blocking(move || std::fs::File::create(path))
            .await
            .map_err(std::io::Error::other)??;
        Ok(FileWriter {
            file: Some(file),
            batch: Vec::new(),
            batched: 0,
            writing: None,
        })
    }

    /// Adds `chunk`; writes the batch once it is full.
    pub async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= BATCH {
            self.send().await?;
        }
        Ok(())
    }

    /// Waits for the write in flight, then starts writing the batch.
    async fn send(&mut self) -> std::io::Result<()> {
        let file = match self.writing.take() {
            Some(w) => w.await.map_err(std::io::Error::other)??,
            None => self
                .file
                .take()
                .ok_or_else(|| std::io::Error::other("the file was lost to an earlier error"))?,
        };
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut file = file;
            for chunk in &batch {
                file.write_all(chunk)?;
            }
            Ok(file)
        }));
        Ok(())
    }

    /// Writes what is left; the file once all of it is written (not synced).
    pub async fn finish(mut self) -> std::io::Result<std::fs::File> {
        if !self.batch.is_empty() {
            self.send().await?;
        }
        match self.writing.take() {
            Some(w) => w.await.map_err(std::io::Error::other)?,
            None => self
                .file
                .take()
                .ok_or_else(|| std::io::Error::other("the file was lost to an earlier error")),
        }
    }
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
        // Every chunk was read into a buffer that came back: the one sent and the one read ahead,
        // two buffers (one, when the read ahead ran only after the chunk before it came back).
        let free = TEST_POOL.0.lock().map(|f| f.len()).unwrap_or(0);
        assert!((1..=2).contains(&free), "{free} buffers");
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

    /// A body dropped part-way (its peer went away) leaves no buffer behind: the read ahead it had
    /// started finishes on the blocking pool, and its buffer comes back too.
    #[tokio::test]
    async fn a_stream_dropped_part_way_gives_its_buffers_back() {
        static DROP_POOL: Pool = Pool(Mutex::new(Vec::new()));
        let t = tempfile::tempdir().expect("tmp");
        let path = t.path().join("three");
        std::fs::write(&path, vec![1u8; 3 * CHUNK]).expect("write");
        let mut s = stream_from(&DROP_POOL, path);
        // Held while the stream goes: the read ahead cannot have taken its buffer.
        let first = s.next().await.expect("a chunk").expect("read");
        assert_eq!(first.len(), CHUNK);
        drop(s);
        let free = || DROP_POOL.0.lock().map(|f| f.len()).unwrap_or(0);
        // The read ahead runs on its own; wait for its buffer (bounded: a lost one fails, never
        // hangs).
        for _ in 0..1000 {
            if free() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(free(), 1, "the read ahead's buffer came back");
        drop(first);
        assert_eq!(free(), 2, "and the chunk's");
    }

    #[tokio::test]
    async fn chunks_written_are_the_file_in_order() {
        let t = tempfile::tempdir().expect("tmp");
        let path = t.path().join("out");
        let data: Vec<u8> = (0..3 * BATCH + 4321).map(|i| (i % 241) as u8).collect();
        let mut w = FileWriter::create(&path).await.expect("create");
        // Chunks of uneven sizes, some larger than a batch; the last takes the rest.
        let mut at: usize = 0;
        for len in [1, 70_000, BATCH + 5, 3, BATCH, usize::MAX] {
            let end = data.len().min(at.saturating_add(len));
            w.write(Bytes::copy_from_slice(&data[at..end]))
                .await
                .expect("write");
            at = end;
        }
        assert_eq!(at, data.len());
        let file = w.finish().await.expect("finish");
        assert_eq!(file.metadata().expect("meta").len(), data.len() as u64);
        assert!(std::fs::read(&path).expect("read") == data);
        // Nothing written still makes the (empty) file.
        let empty = t.path().join("empty");
        let w = FileWriter::create(&empty).await.expect("create");
        w.finish().await.expect("finish");
        assert_eq!(std::fs::read(&empty).expect("read").len(), 0);
        let refused = FileWriter::create(&t.path().join("no/such/dir/f")).await;
        assert!(refused.is_err());
    }
}
