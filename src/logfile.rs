//! A log file that cannot grow without bound, whoever sends the requests it records: each line is cut
//! at [`MAX_LINE`] bytes, and once the file holds its cap it is renamed `<name>.1` (the one before is
//! dropped) and begun anew — at most twice the cap on disk, whatever arrives. Created 0600: the log
//! names learners, addresses and hosts.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

/// The longest line kept; a longer one is cut and ends with `…`.
pub(crate) const MAX_LINE: usize = 4096;

/// The log file's writer (give it to `tracing_appender::non_blocking`).
pub(crate) struct CappedFile {
    path: PathBuf,
    cap: u64,
    len: u64,
    file: Option<File>,
}

impl CappedFile {
    /// Appends to `path` (made 0600), rotating at `cap` bytes.
    pub(crate) fn open(path: PathBuf, cap: u64) -> io::Result<CappedFile> {
        let file = open_private(&path)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(CappedFile {
            path,
            cap: cap.max(MAX_LINE as u64 * 2),
            len,
            file: Some(file),
        })
    }

    /// The file before the current one.
    pub(crate) fn previous(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        std::fs::rename(&self.path, self.previous())?;
        self.file = Some(open_private(&self.path)?);
        self.len = 0;
        Ok(())
    }
}

fn open_private(path: &std::path::Path) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let f = o.open(path)?;
        // An older file made with another mode.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    o.open(path)
}

/// `buf` cut at [`MAX_LINE`] bytes on a character boundary, ending with `…` and a newline.
fn cut(buf: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if buf.len() <= MAX_LINE {
        return std::borrow::Cow::Borrowed(buf);
    }
    let mut end = MAX_LINE - 4;
    // Back to the start of a UTF-8 character (continuation bytes are 0b10xxxxxx).
    while end > 0 && buf[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    let mut out = buf[..end].to_vec();
    out.extend_from_slice("…\n".as_bytes());
    std::borrow::Cow::Owned(out)
}

impl Write for CappedFile {
    /// One event (one line, as the log's formatter writes it) at a time.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = cut(buf);
        if self.len + line.len() as u64 > self.cap {
            self.rotate()?;
        }
        let Some(f) = self.file.as_mut() else {
            return Err(io::Error::other("the log file is not open"));
        };
        f.write_all(&line)?;
        self.len += line.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_at_most_twice_its_cap_and_cuts_long_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.log");
        let cap = 64 * 1024;
        let mut log = CappedFile::open(path.clone(), cap).expect("open");
        let long = format!("{}\n", "é".repeat(40_000));
        for i in 0..2_000 {
            if i % 100 == 0 {
                log.write_all(long.as_bytes()).expect("write");
            } else {
                log.write_all(format!("line {i}\n").as_bytes())
                    .expect("write");
            }
        }
        let now = std::fs::read_to_string(&path).expect("read");
        let before = std::fs::read_to_string(log.previous()).expect("rotated");
        assert!(now.len() as u64 <= cap && before.len() as u64 <= cap);
        assert!(now.contains("line 1999"));
        for l in now.lines().chain(before.lines()) {
            assert!(l.len() < MAX_LINE, "a line of {} bytes", l.len());
        }
        assert!(before.contains("é…"), "a cut line says so");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [&path, &log.previous()] {
                let mode = std::fs::metadata(p).expect("meta").permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", p.display());
            }
        }
    }
}
