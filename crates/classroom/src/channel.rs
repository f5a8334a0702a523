//! The two ends of a learner's SSH terminal inside the classroom: [`InputParser`] turns the bytes the
//! client sends into terminal events (terminput, as the crossterm events the TUI reads), across reads;
//! [`ChannelWriter`] takes what the program writes and queues it for the channel, bounded — a client
//! that stops reading ends its session rather than filling memory.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use crossterm::event::Event;
use tokio::sync::mpsc;

/// Bytes the program may have queued for a client that does not read, before it is disconnected.
pub const MAX_QUEUED_OUTPUT: usize = 8 * 1024 * 1024;
/// An escape sequence or character longer than this is dropped unparsed.
const MAX_SEQUENCE: usize = 4096;

/// Sends what the program writes to the SSH channel. `write` collects, `flush` sends one chunk; past
/// [`MAX_QUEUED_OUTPUT`] bytes waiting for a client that does not read, the writer gives up (what is
/// written is dropped) and the session ends.
pub struct ChannelWriter {
    buf: Vec<u8>,
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    /// The client left or stopped reading: what is written is dropped (the session is ending; an
    /// error here would only be printed by a terminal's destructor onto the instructor's screen).
    broken: Arc<AtomicBool>,
}

impl ChannelWriter {
    /// A writer that queues chunks on `tx`; `queued` counts the bytes not sent yet (the sender
    /// lowers it), `broken` is set when it gives up.
    pub fn new(
        tx: mpsc::UnboundedSender<Bytes>,
        queued: Arc<AtomicUsize>,
        broken: Arc<AtomicBool>,
    ) -> ChannelWriter {
        ChannelWriter {
            buf: Vec::new(),
            tx,
            queued,
            broken,
        }
    }

    /// A writer that shares this one's channel (for the session's own notices).
    pub fn sibling(&self) -> ChannelWriter {
        ChannelWriter {
            buf: Vec::new(),
            tx: self.tx.clone(),
            queued: self.queued.clone(),
            broken: self.broken.clone(),
        }
    }

    /// The client is gone or does not read: drop what is pending from now on.
    fn give_up(&mut self) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            tracing::info!("ssh: the client stopped reading; its session ends");
        }
        self.buf = Vec::new();
    }

    /// Whether the client left or stopped reading.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.is_broken() {
            return Ok(data.len());
        }
        if self.buf.len() + data.len() > MAX_QUEUED_OUTPUT {
            self.give_up();
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() || self.is_broken() {
            self.buf.clear();
            return Ok(());
        }
        let n = self.buf.len();
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > MAX_QUEUED_OUTPUT {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.give_up();
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        if self.tx.send(chunk).is_err() {
            self.give_up();
        }
        Ok(())
    }
}

/// A terminal size (columns, rows) as one number, for an atomic; never 0 for a real size (both are at
/// least 1).
pub(crate) fn pack((w, h): (u16, u16)) -> u32 {
    (u32::from(w) << 16) | u32::from(h)
}

/// The size [`pack`] made.
pub(crate) fn unpack(v: u32) -> (u16, u16) {
    ((v >> 16) as u16, (v & 0xffff) as u16)
}

/// Parses the bytes a client sends into terminal events, across reads (a sequence may be split).
#[derive(Default)]
pub struct InputParser {
    pending: Vec<u8>,
}

impl InputParser {
    /// The events in `data` (and what was pending before it).
    pub fn feed(&mut self, data: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for (i, b) in data.iter().enumerate() {
            self.pending.push(*b);
            let more = i + 1 < data.len();
            // A lone ESC is the Escape key only when nothing follows it in the same read.
            if self.pending == [0x1b] && more {
                continue;
            }
            if zero_mouse_position(&self.pending) {
                // terminput subtracts 1 from each: a column or row of 0 would overflow.
                self.pending.clear();
                continue;
            }
            // A panic in the parser would end this learner's connection: the bytes are dropped.
            let pending = &self.pending;
            let parsed = match std::panic::catch_unwind(|| terminput::Event::parse_from(pending)) {
                Ok(r) => r,
                Err(_) => {
                    self.pending.clear();
                    continue;
                }
            };
            match parsed {
                Ok(Some(e)) => {
                    self.pending.clear();
                    if let Ok(e) = terminput_crossterm::to_crossterm(e) {
                        out.push(e);
                    }
                }
                Ok(None) if self.pending.len() > MAX_SEQUENCE => self.pending.clear(),
                Ok(None) => {}
                Err(_) => self.pending.clear(),
            }
        }
        out
    }
}

/// Whether `seq` is a complete SGR (`ESC [ < b ; x ; y M|m`) or urxvt (`ESC [ b ; x ; y M`) mouse
/// report whose column or row is 0 (terminals count from 1).
fn zero_mouse_position(seq: &[u8]) -> bool {
    let Some(rest) = seq.strip_prefix(b"\x1b[") else {
        return false;
    };
    let Some((&last, body)) = rest.split_last() else {
        return false;
    };
    if last != b'M' && last != b'm' {
        return false;
    }
    let body = body.strip_prefix(b"<").unwrap_or(body);
    let fields: Vec<&[u8]> = body.split(|b| *b == b';').collect();
    fields.len() == 3
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
        && fields[1..].iter().any(|f| f.iter().all(|d| *d == b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn keys(events: &[Event]) -> Vec<KeyCode> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Key(k) => Some(k.code),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn bytes_become_keys_across_reads() {
        let mut p = InputParser::default();
        assert_eq!(
            keys(&p.feed(b"dq")),
            vec![KeyCode::Char('d'), KeyCode::Char('q')]
        );
        // An arrow split across two reads.
        assert!(p.feed(b"\x1b[").is_empty());
        assert_eq!(keys(&p.feed(b"A")), vec![KeyCode::Up]);
        // ESC alone is Escape; ESC followed by more in the same read starts a sequence.
        assert_eq!(keys(&p.feed(b"\x1b")), vec![KeyCode::Esc]);
        assert_eq!(keys(&p.feed(b"\x1b[B")), vec![KeyCode::Down]);
        assert_eq!(
            keys(&p.feed("é\r".as_bytes())),
            vec![KeyCode::Char('é'), KeyCode::Enter]
        );
        let ctrl_c = p.feed(b"\x03");
        assert!(
            matches!(ctrl_c.first(), Some(Event::Key(k)) if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL))
        );
        // Garbage and an unending sequence are dropped, not kept.
        let _ = p.feed(b"\x1b[999999999999999999999999999999~");
        let _ = p.feed(b"\x1b[<");
        let _ = p.feed(&vec![b'1'; MAX_SEQUENCE + 10]);
        assert!(p.pending.len() <= MAX_SEQUENCE);
        assert_eq!(keys(&p.feed(b"\x1bq")).last(), Some(&KeyCode::Char('q')));
    }

    #[test]
    fn mouse_reports_at_column_or_row_zero_are_no_panic() {
        let mut p = InputParser::default();
        for seq in [
            &b"\x1b[<0;0;0M"[..],
            b"\x1b[<0;0;5m",
            b"\x1b[<64;0;0M",
            b"\x1b[M   ",
            b"\x1b[M\x20\x00\x00",
            b"\x1b[0;0M",
            b"\x1b[<0;65536;99999999999M",
        ] {
            let _ = p.feed(seq);
        }
        assert_eq!(keys(&p.feed(b"q")), vec![KeyCode::Char('q')]);
        // The filter itself (the parser's panic would otherwise be caught, and this test pass).
        for zero in [&b"\x1b[<0;0;0M"[..], b"\x1b[<0;5;0m", b"\x1b[32;0;7M"] {
            assert!(zero_mouse_position(zero), "{zero:?}");
        }
        for fine in [
            &b"\x1b[<0;1;1M"[..],
            b"\x1b[<0;10;20m",
            b"\x1b[A",
            b"\x1b[<0;0",
            b"q",
        ] {
            assert!(!zero_mouse_position(fine), "{fine:?}");
        }
        // A real click at (1, 1) still arrives, as column 0, row 0.
        let click = p.feed(b"\x1b[<0;1;1M");
        assert!(
            matches!(click.first(), Some(Event::Mouse(m)) if m.column == 0 && m.row == 0),
            "{click:?}"
        );
    }

    #[test]
    fn a_writer_gives_up_once_a_client_stops_reading() {
        use std::io::Write;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut w = ChannelWriter {
            buf: Vec::new(),
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            broken: Arc::default(),
        };
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..(MAX_QUEUED_OUTPUT / chunk.len() + 2) {
            w.write_all(&chunk)
                .and_then(|()| w.flush())
                .expect("never an error");
        }
        assert!(w.is_broken(), "the queue is bounded");
        let mut queued = 0;
        while let Ok(c) = rx.try_recv() {
            queued += c.len();
        }
        assert!(queued <= MAX_QUEUED_OUTPUT);
    }
}
