//! Hostile input, slow clients and faults against a real `dicomlab serve` process: each test checks the
//! answer, that the process lives on, and that its peak memory (VmHWM, reset before the attack) stayed
//! bounded.
//!
//! Grouped by what is attacked; this file holds the helpers they share.

mod bodies;
mod connections;
mod trust;

use dicomlab_testkit as common;
use dicomlab_testkit::served;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{DICOM_JSON, first_str, split_multipart, uid, values};
use dicomlab_dicom::hostile;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;
use served::Served;

/// The FailureReason and the first ErrorComment of the first failed item.
fn failure(body: &Value) -> (Option<String>, String) {
    let item = &values(body, "00081198")[0];
    let comment = values(item, "00741048")
        .first()
        .and_then(|c| first_str(c, "00000902"))
        .unwrap_or_default();
    (first_str(item, "00081197"), comment)
}

fn ids() -> (String, String, String) {
    (uid(), uid(), uid())
}

/// Baseline memory after start-up, then the peak is reset.
fn baseline(s: &Served) -> u64 {
    let rss = s.rss_mib();
    s.reset_peak();
    rss
}

/// Sends `head` on a fresh connection and returns it.
fn raw(s: &Served, head: &str) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(head.as_bytes()).expect("write");
    c
}

/// Reads what the server sends until it closes or `limit` passes.
fn read_until_closed(c: &mut TcpStream, limit: Duration) -> (String, bool) {
    c.set_read_timeout(Some(limit)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&out).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}
