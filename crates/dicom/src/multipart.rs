//! multipart/related read incrementally, with bounds, for both sides: the practice service's STOW bodies
//! and the client's WADO answers. Fed chunks as they arrive, it hands back part headers and part data
//! without holding more than one window of bytes:
//!
//! - the first boundary (after any preamble) and each part's header block must be found within
//!   [`Limits::max_head`] bytes, or the body is refused — a boundary that never comes is not buffered;
//! - at most [`Limits::max_parts`] parts;
//! - each byte is searched a bounded number of times (the search resumes where it stopped), so the cost
//!   is linear in the body, whatever the number or size of its parts.

use std::ops::ControlFlow::{self, Break, Continue};

use bytes::{Buf, Bytes, BytesMut};

/// What one state of [`Parser::next_event`] did: `Break` returns its result, `Continue` reads on.
type Flow = ControlFlow<Result<Option<Event>, MultipartError>>;

/// How far a body may go.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes within which the first boundary, and each part's headers, must be found.
    pub max_head: usize,
    /// Parts in one body.
    pub max_parts: usize,
}

/// 64 KiB for a preamble or a part's headers.
pub const MAX_HEAD: usize = 64 * 1024;
/// 10,000 parts in one body.
pub const MAX_PARTS: usize = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: MAX_HEAD,
            max_parts: MAX_PARTS,
        }
    }
}

/// Why a body is not well-formed multipart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("no boundary within the first {0} bytes")]
    NoBoundary(usize),
    #[error("a part's headers do not end within {0} bytes")]
    HeadersTooLong(usize),
    #[error("more than {0} parts")]
    TooManyParts(usize),
    #[error("a part header line is not 'Name: value'")]
    BadHeader,
    #[error("the body ends before its closing boundary")]
    Incomplete,
}

/// What the parser found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A part starts; its header lines as `(name, value)`, names as sent.
    Part(Vec<(String, String)>),
    /// Bytes of the current part.
    Data(Bytes),
    /// The current part ended.
    PartEnd,
    /// The closing boundary: anything after it is ignored.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterBoundary {
        in_part: bool,
    },
    Headers,
    Body,
    /// The closing boundary was seen right after a part: `End` comes next.
    Closing,
    Done,
}

/// An incremental multipart parser: `feed` bytes, take `next` events until it answers `None`.
#[derive(Debug)]
pub struct Parser {
    /// `\r\n--boundary`
    delimiter: Vec<u8>,
    buf: BytesMut,
    /// Where the next search in `buf` starts (bytes before it were searched already).
    searched: usize,
    state: State,
    limits: Limits,
    parts: usize,
    /// Preamble bytes already dropped.
    preamble: usize,
    /// A chunk fed in a part's data and not parsed yet (see [`Parser::feed_bytes`]).
    pending: Option<Bytes>,
}

/// The value of a header, by case-insensitive name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Parser {
    pub fn new(boundary: &str, limits: Limits) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // A body may start with its boundary: as if a line end came before it.
        let mut buf = BytesMut::with_capacity(8 * 1024);
        buf.extend_from_slice(b"\r\n");
        Self {
            delimiter,
            buf,
            searched: 0,
            state: State::Preamble,
            limits,
            parts: 0,
            preamble: 0,
            pending: None,
        }
    }

    /// Adds bytes that arrived.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !matches!(self.state, State::Done | State::Closing) {
            self.merge_pending();
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Adds bytes that arrived, as [`Parser::feed`] does; inside a part's data they are not copied:
    /// the part's data comes out as slices of `chunk` (only a delimiter, what follows it, and the
    /// last bytes that could start one are copied).
    pub fn feed_bytes(&mut self, chunk: Bytes) {
        if matches!(self.state, State::Done | State::Closing) {
            return;
        }
        if matches!(self.state, State::Body)
            && self.pending.is_none()
            && self.buf.len() < self.delimiter.len()
        {
            self.pending = Some(chunk);
        } else {
            self.feed(&chunk);
        }
    }

    /// A pending chunk goes into the buffer, where every state but a part's data reads.
    fn merge_pending(&mut self) {
        if let Some(chunk) = self.pending.take() {
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Parts seen so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Whether the closing boundary was seen.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done | State::Closing)
    }

    /// After the last chunk: an error unless the closing boundary was seen.
    pub fn finish(&self) -> Result<(), MultipartError> {
        if matches!(self.state, State::Done | State::Closing) {
            Ok(())
        } else {
            Err(MultipartError::Incomplete)
        }
    }

    /// Finds `needle` in the unsearched part of the buffer; remembers how far it looked.
    fn find(&mut self, needle_len: usize, needle: Option<&[u8]>) -> Option<usize> {
        let needle = needle.unwrap_or(&self.delimiter);
        let from = self.searched;
        match memchr::memmem::find(&self.buf[from..], needle) {
            Some(i) => {
                self.searched = 0;
                Some(from + i)
            }
            None => {
                // A match could still start in the last needle_len - 1 bytes.
                self.searched = self.buf.len().saturating_sub(needle_len - 1);
                None
            }
        }
    }

    fn consume(&mut self, n: usize) -> Bytes {
        self.searched = self.searched.saturating_sub(n);
        self.buf.split_to(n).freeze()
    }

    /// The next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, MultipartError> {
        loop {
            let flow = match self.state {
                State::Done => return Ok(None),
                State::Closing => {
                    self.state = State::Done;
                    return Ok(Some(Event::End));
                }
                State::Body => match self.pending.take() {
                    Some(chunk) => self.in_body_pending(chunk),
                    None => self.in_body(),
                },
                State::Preamble => {
                    self.merge_pending();
                    self.in_preamble()
                }
                State::AfterBoundary { in_part } => {
                    self.merge_pending();
                    self.after_boundary(in_part)
                }
                State::Headers => {
                    self.merge_pending();
                    self.in_headers()
                }
            };
            if let Break(r) = flow {
                return r;
            }
        }
    }

    /// Before the first boundary: skipped (and counted).
    fn in_preamble(&mut self) -> Flow {
        let dl = self.delimiter.len();
        match self.find(dl, None) {
            Some(i) => {
                self.preamble += i;
                if self.preamble > self.limits.max_head {
                    return Break(Err(MultipartError::NoBoundary(self.limits.max_head)));
                }
                self.consume(i + dl);
                self.state = State::AfterBoundary { in_part: false };
            }
            None => {
                // Drop what cannot hold the start of a boundary; count it.
                let drop = self.buf.len().saturating_sub(dl - 1);
                self.preamble += drop;
                self.consume(drop);
                if self.preamble > self.limits.max_head {
                    return Break(Err(MultipartError::NoBoundary(self.limits.max_head)));
                }
                return Break(Ok(None));
            }
        }
        Continue(())
    }

    /// After a delimiter: the closing `--`, or padding and a line end (else the delimiter was data).
    fn after_boundary(&mut self, in_part: bool) -> Flow {
        // `--` closes the body; otherwise optional padding, then a line end.
        if self.buf.len() < 2 {
            return Break(Ok(None));
        }
        if &self.buf[..2] == b"--" {
            self.buf.clear();
            self.searched = 0;
            if in_part {
                self.state = State::Closing;
                return Break(Ok(Some(Event::PartEnd)));
            }
            self.state = State::Done;
            return Break(Ok(Some(Event::End)));
        }
        let pad = self
            .buf
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let waiting = self.buf.len() < pad + 2 && pad <= self.limits.max_head;
        if waiting {
            return Break(Ok(None));
        }
        if pad > self.limits.max_head || &self.buf[pad..pad + 2] != b"\r\n" {
            // Not a delimiter after all (the boundary was the prefix of a longer line):
            // its bytes are data, or preamble.
            if in_part {
                self.state = State::Body;
                return Break(Ok(Some(Event::Data(Bytes::from(self.delimiter.clone())))));
            }
            self.preamble += self.delimiter.len();
            self.state = State::Preamble;
            return Continue(());
        }
        // Keep the line end: an empty header block is then "\r\n" + "\r\n".
        self.consume(pad);
        self.state = State::Headers;
        if in_part {
            return Break(Ok(Some(Event::PartEnd)));
        }
        Continue(())
    }

    /// A part's header block (or the empty block .NET writes before the closing boundary).
    fn in_headers(&mut self) -> Flow {
        // An empty header block right before the closing boundary is no part: .NET writes a
        // body of no parts as `--b\r\n\r\n--b--\r\n`, and Azure answers it as empty.
        let mut close = b"\r\n".to_vec();
        close.extend_from_slice(&self.delimiter);
        close.extend_from_slice(b"--");
        if self.buf.len() < close.len() && close.starts_with(&self.buf) {
            return Break(Ok(None));
        }
        if self.buf.starts_with(&close) {
            self.buf.clear();
            self.searched = 0;
            self.state = State::Done;
            return Break(Ok(Some(Event::End)));
        }
        // The buffer starts with the boundary line's CRLF; headers end at CRLF CRLF.
        let end = self.find(4, Some(b"\r\n\r\n"));
        let Some(end) = end else {
            if self.buf.len() > self.limits.max_head {
                return Break(Err(MultipartError::HeadersTooLong(self.limits.max_head)));
            }
            return Break(Ok(None));
        };
        if end > self.limits.max_head {
            return Break(Err(MultipartError::HeadersTooLong(self.limits.max_head)));
        }
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            return Break(Err(MultipartError::TooManyParts(self.limits.max_parts)));
        }
        let block = self.consume(end + 4);
        // The block is the boundary line's CRLF, the header lines, and a blank line.
        let lines = if end >= 2 { &block[2..end] } else { &[][..] };
        let headers = match parse_headers(lines) {
            Ok(h) => h,
            Err(e) => return Break(Err(e)),
        };
        self.state = State::Body;
        Break(Ok(Some(Event::Part(headers))))
    }

    /// A part's data, up to the next delimiter.
    fn in_body(&mut self) -> Flow {
        let dl = self.delimiter.len();
        match self.find(dl, None) {
            Some(i) => {
                let data = self.consume(i);
                self.consume(dl);
                self.state = State::AfterBoundary { in_part: true };
                if !data.is_empty() {
                    return Break(Ok(Some(Event::Data(data))));
                }
            }
            None => {
                // Everything but what could start a delimiter is data.
                let n = self.buf.len().saturating_sub(dl - 1);
                if n == 0 {
                    return Break(Ok(None));
                }
                return Break(Ok(Some(Event::Data(self.consume(n)))));
            }
        }
        Continue(())
    }

    /// A part's data when a chunk was fed whole (`feed_bytes`) and the buffer holds less than a
    /// delimiter: the chunk's data comes out as its own slices.
    fn in_body_pending(&mut self, chunk: Bytes) -> Flow {
        let dl = self.delimiter.len();
        if !self.buf.is_empty() {
            // The buffer is a tail that could start a delimiter. With the chunk's first dl - 1
            // bytes, does one start in it? Then (rarely) the chunk is taken in as `feed` would.
            let k = (dl - 1).min(chunk.len());
            let mut window = Vec::with_capacity(self.buf.len() + k);
            window.extend_from_slice(&self.buf);
            window.extend_from_slice(&chunk[..k]);
            let starts_in_tail = memchr::memmem::find_iter(&window, &self.delimiter)
                .next()
                .is_some_and(|i| i < self.buf.len());
            if starts_in_tail || chunk.len() < dl - 1 {
                self.buf.extend_from_slice(&chunk);
                return Continue(());
            }
            // The tail is data; the chunk comes next.
            self.searched = 0;
            self.pending = Some(chunk);
            return Break(Ok(Some(Event::Data(self.buf.split().freeze()))));
        }
        let (data, rest) = match memchr::memmem::find(&chunk, &self.delimiter) {
            // The delimiter and what follows it are parsed from the buffer.
            Some(i) => (i, i),
            // All but what could start a delimiter is data.
            None => {
                let n = chunk.len().saturating_sub(dl - 1);
                (n, n)
            }
        };
        self.buf.extend_from_slice(&chunk[rest..]);
        self.searched = 0;
        if data > 0 {
            return Break(Ok(Some(Event::Data(chunk.slice(..data)))));
        }
        Continue(())
    }
}

fn parse_headers(block: &[u8]) -> Result<Vec<(String, String)>, MultipartError> {
    let text = String::from_utf8_lossy(block);
    let mut out = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(MultipartError::BadHeader)?;
        let name = name.trim();
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(MultipartError::BadHeader);
        }
        out.push((name.to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// A part's header lines and bytes.
pub type WholePart = (Vec<(String, String)>, Vec<u8>);

/// Parses a whole body at once (tests and fuzzing): the parts' headers and bytes.
pub fn parse_all(
    body: &[u8],
    boundary: &str,
    limits: Limits,
) -> Result<Vec<WholePart>, MultipartError> {
    let mut p = Parser::new(boundary, limits);
    let mut parts: Vec<WholePart> = Vec::new();
    // Fed in uneven chunks, as a network would.
    let mut rest = body;
    let mut size = 1;
    loop {
        let n = size.min(rest.len());
        p.feed(&rest[..n]);
        rest.advance(n);
        size = (size * 3 + 1) % 4099 + 1;
        while let Some(event) = p.next_event()? {
            match event {
                Event::Part(h) => parts.push((h, Vec::new())),
                Event::Data(d) => {
                    if let Some(last) = parts.last_mut() {
                        last.1.extend_from_slice(&d);
                    }
                }
                Event::PartEnd | Event::End => {}
            }
        }
        if rest.is_empty() {
            break;
        }
    }
    p.finish()?;
    Ok(parts)
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;
