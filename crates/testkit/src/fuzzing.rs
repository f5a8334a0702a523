//! The parsers' fuzz entry points: one function per target, each feeding arbitrary bytes to a parser of
//! untrusted input and checking what must always hold. `fuzz/` (cargo-fuzz, nightly) runs them for
//! hours; `tests/service/fuzz_corpus.rs` replays the committed corpus through them on stable with `cargo test`.
//! A panic here is a finding.

use std::sync::OnceLock;

use serde_json::Value;

use dicomlab_dicom::reader::{self, Limits, Source};

/// multipart/related: the first line is the boundary, the rest the body.
pub fn multipart(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let boundary = String::from_utf8_lossy(&data[..split.min(70)]).into_owned();
    let body = data.get(split + 1..).unwrap_or_default();
    let limits = dicomlab_dicom::multipart::Limits {
        max_head: 1024,
        max_parts: 64,
    };
    if let Ok(parts) = dicomlab_dicom::multipart::parse_all(body, &boundary, limits) {
        assert!(parts.len() <= limits.max_parts);
        let bytes: usize = parts.iter().map(|p| p.1.len()).sum();
        assert!(bytes <= body.len(), "parts hold more bytes than the body");
    }
}

/// A Part-10 file through the bounded reader; what it accepts must become metadata that reads back.
pub fn part10(data: &[u8]) {
    let limits = Limits {
        max_inflated: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let Ok(scan) = reader::scan(Source::Bytes(data), &limits) else {
        return;
    };
    let _ = scan.check_pixels();
    let _ = scan.image.total_bytes();
    if scan.header_len <= data.len() as u64 * 64 + 1024
        && let Ok(obj) = reader::read_header(Source::Bytes(data), &scan)
    {
        let metadata = Value::Object(dicomlab_dicom::json::dataset_to_json(&obj)).to_string();
        assert!(
            serde_json::from_str::<Value>(&metadata).is_ok(),
            "stored metadata must read back"
        );
    }
    let _ = reader::read_frames(Source::Bytes(data), &scan, &[1, 2]);
}

/// A QIDO query string.
pub fn qido_query(data: &[u8]) {
    if let Ok(raw) = std::str::from_utf8(data) {
        let _ = dicomlab_practice::qido::check_query(raw);
    }
}

/// DICOM JSON from a server, as the client and the checks read it.
pub fn dicom_json(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let datasets: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for ds in datasets {
        walk(ds);
    }
}

fn walk(v: &Value) {
    let Some(map) = v.as_object() else { return };
    for (key, element) in map {
        let shown = dicomlab_dicom::text::visible(key);
        assert!(!shown.contains('\u{1b}'));
        if let Some(tag) = dicomlab_dicom::json::parse_tag_key(key) {
            let _ = dicomlab_dicom::tags::keyword(tag);
            let _ = dicomlab_dicom::json::first_value_str(map, tag);
            let _ = dicomlab_practice::index::is_multi_valued(map, tag);
            for vr in [dicom_core::VR::PN, dicom_core::VR::DA, dicom_core::VR::IS] {
                let _ = dicomlab_practice::index::index_value(map, tag, vr);
            }
        }
        let _ = dicomlab_dicomweb::get_ci(element, "vr");
        if let Some(items) = element.get("Value").and_then(Value::as_array) {
            for item in items {
                walk(item);
            }
        }
    }
}

/// A bearer token: the client's claims decoding, and the service's verification.
pub fn token_claims(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let t = dicomlab_dicomweb::Token::from_jwt(token);
    let _ = t.remaining();
    if let Some(c) = &t.claims {
        for s in [&c.aud, &c.tid, &c.app].into_iter().flatten() {
            assert!(!s.contains('\u{1b}'));
        }
    }
    static AUTH: OnceLock<Option<dicomlab_practice::auth::Auth>> = OnceLock::new();
    let auth = AUTH.get_or_init(|| {
        let db = dicomlab_practice::db::Db::open(std::path::Path::new(":memory:")).ok()?;
        dicomlab_practice::auth::Auth::load(&db, true, std::time::Duration::from_secs(60), false)
            .ok()
    });
    if let Some(auth) = auth {
        // Nothing but a token it signed itself can pass.
        assert!(
            auth.verify(token).is_err(),
            "an unsigned token was accepted"
        );
    }
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/corpus/<name>/` holds them.
pub const TARGETS: &[(&str, Target)] = &[
    ("multipart", multipart),
    ("dicom_part10", part10),
    ("qido_query", qido_query),
    ("dicom_json", dicom_json),
    ("token_claims", token_claims),
];
