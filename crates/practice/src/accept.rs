//! Accept header rules (docs/contract.md §1.3, §4.2). A missing Accept is not `*/*` for STOW, QIDO, metadata and
//! WADO: the service answers 406.

use axum::http::{HeaderMap, header};

/// One media range of an Accept header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaRange {
    /// `type/subtype`, lower case.
    pub media: String,
    /// The `type` parameter of `multipart/related`, unquoted, lower case.
    pub type_param: Option<String>,
    /// The `transfer-syntax` parameter, unquoted.
    pub transfer_syntax: Option<String>,
    pub q: f32,
}

/// Splits on commas that are not inside quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses every Accept header of a request.
pub(crate) fn parse(headers: &HeaderMap) -> Vec<MediaRange> {
    let mut out = Vec::new();
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in split_outside_quotes(value, ',') {
            let mut pieces = split_outside_quotes(range, ';').into_iter();
            let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            let mut r = MediaRange {
                media,
                type_param: None,
                transfer_syntax: None,
                q: 1.0,
            };
            for p in pieces {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').trim();
                match k.trim().to_ascii_lowercase().as_str() {
                    "type" => r.type_param = Some(v.to_ascii_lowercase()),
                    "transfer-syntax" => r.transfer_syntax = Some(v.to_string()),
                    "q" => r.q = v.parse().unwrap_or(1.0),
                    _ => {}
                }
            }
            out.push(r);
        }
    }
    out
}

/// Whether the request accepts `application/dicom+json` (STOW responses, QIDO, metadata).
pub(crate) fn accepts_dicom_json(headers: &HeaderMap) -> bool {
    parse(headers).iter().any(|r| {
        r.q > 0.0
            && matches!(
                r.media.as_str(),
                "application/dicom+json" | "application/*" | "*/*"
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn parses_dicomweb_accept() {
        let r = parse(&headers(
            r#"multipart/related; type="application/dicom"; transfer-syntax=*"#,
        ));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].media, "multipart/related");
        assert_eq!(r[0].type_param.as_deref(), Some("application/dicom"));
        assert_eq!(r[0].transfer_syntax.as_deref(), Some("*"));
        let r = parse(&headers("application/dicom+json, image/png;q=0.5"));
        assert_eq!(r.len(), 2);
        assert!((r[1].q - 0.5).abs() < f32::EPSILON);
    }

    #[test]
    fn dicom_json_rules() {
        assert!(accepts_dicom_json(&headers("application/dicom+json")));
        assert!(accepts_dicom_json(&headers("*/*")));
        assert!(!accepts_dicom_json(&headers("application/dicom")));
        assert!(!accepts_dicom_json(&HeaderMap::new()));
    }
}
