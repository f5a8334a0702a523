//! One request and its answer, as the learner sees it: method, URL, status, time, headers, a body excerpt,
//! and an equivalent curl command (the token shown as `$TOKEN`, a secret never).

use serde::Serialize;

/// What went over the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// Request headers; `Authorization` is already replaced by a placeholder.
    pub request_headers: Vec<(String, String)>,
    /// How the body is given to curl: `--data-binary @red-triangle.dcm`, `-d '…'`, `--data-urlencode …`.
    pub request_body: Vec<String>,
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub response_headers: Vec<(String, String)>,
    /// Up to 4 KiB of a text body, or `<N bytes of TYPE>`.
    pub response_excerpt: String,
    /// A transport error instead of an answer.
    pub error: Option<String>,
    /// Sent by a check (dicomlab reading the service's state or records), not by the learner: it never
    /// counts as the learner's attempt.
    #[serde(default)]
    pub by_check: bool,
    /// When it was sent (RFC 3339 on the wire, `""` when not known).
    #[serde(serialize_with = "crate::timestamp::rfc3339_or_empty::serialize")]
    pub at: Option<time::OffsetDateTime>,
}

/// Quotes a word for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Exchange {
    /// The request as a curl command a learner can paste.
    pub fn curl(&self) -> String {
        let mut parts = vec!["curl".to_string()];
        if self.method != "GET" {
            parts.push(format!("-X {}", self.method));
        }
        parts.push(shell_quote(&self.url));
        for (k, v) in &self.request_headers {
            // $TOKEN stays expandable: double quotes.
            if v.contains("$TOKEN") || v.contains("$PASSWORD") {
                parts.push(format!("-H \"{k}: {v}\""));
            } else {
                parts.push(format!("-H {}", shell_quote(&format!("{k}: {v}"))));
            }
        }
        parts.extend(self.request_body.iter().cloned());
        parts.join(" \\\n  ")
    }

    /// A one-line summary: `POST /v1/studies  200  84 ms`.
    pub fn summary(&self) -> String {
        let path = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, rest)| {
                rest.find('/').map_or("/", |i| &rest[i..])
            });
        match (self.status, &self.error) {
            (Some(s), _) => format!("{} {path}  {s}  {} ms", self.method, self.duration_ms),
            (None, Some(e)) => format!("{} {path}  failed: {e}", self.method),
            _ => format!("{} {path}", self.method),
        }
    }
}

/// A body excerpt for display.
pub(crate) fn excerpt(content_type: &str, body: &[u8]) -> String {
    let texty = content_type.is_empty()
        || content_type.contains("json")
        || content_type.starts_with("text/")
        || content_type.contains("xml");
    if texty && let Ok(s) = std::str::from_utf8(&body[..body.len().min(4096)]) {
        // Escape sequences from the server are shown, never obeyed by the terminal.
        let mut out = redact(&dicomlab_dicom::text::visible(s));
        if body.len() > 4096 {
            out.push_str(&format!("… ({} bytes in all)", body.len()));
        }
        return out;
    }
    format!(
        "<{} bytes of {}>",
        body.len(),
        if content_type.is_empty() {
            "data".into()
        } else {
            dicomlab_dicom::text::visible(content_type)
        }
    )
}

/// JSON members whose value is a credential: shown masked, never whole.
const SECRET_KEYS: [&str; 5] = [
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
];

/// Masks the values of credential members in JSON text (works on a truncated excerpt too).
pub(crate) fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for key in SECRET_KEYS {
        let needle = format!("\"{key}\"");
        let mut from = 0;
        while let Some(i) = out[from..].find(&needle).map(|i| i + from) {
            let after = i + needle.len();
            let rest = &out[after..];
            let trimmed = rest.trim_start();
            let Some(colon) = trimmed.strip_prefix(':') else {
                from = after;
                continue;
            };
            let value = colon.trim_start();
            let Some(inner) = value.strip_prefix('"') else {
                from = after;
                continue;
            };
            let start = out.len() - inner.len();
            // The value ends at the next unescaped quote (or where the excerpt stops).
            let mut end = out.len();
            let mut escaped = false;
            for (n, c) in inner.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = start + n;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let len = out[start..end].chars().count();
            let masked = format!("••••({len} chars, masked)");
            out.replace_range(start..end, &masked);
            from = start + masked.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_bodies_are_masked() {
        let body =
            br#"{"token_type":"Bearer","access_token":"eyJ0eXAi.secret.part","expires_in":"3599"}"#;
        let e = excerpt("application/json", body);
        assert!(!e.contains("eyJ0eXAi"), "{e}");
        assert!(e.contains("\"expires_in\":\"3599\""), "{e}");
        assert!(e.contains("masked"), "{e}");
        // A truncated excerpt is masked to its end.
        assert!(!redact(r#"{"access_token": "eyJ0eX"#).contains("eyJ"));
        assert_eq!(redact(r#"{"a":"b"}"#), r#"{"a":"b"}"#);
    }

    #[test]
    fn curl_never_shows_the_token() {
        let e = Exchange {
            method: "POST".into(),
            url: "http://127.0.0.1:8042/v1/studies".into(),
            request_headers: vec![
                ("Accept".into(), "application/dicom+json".into()),
                ("Authorization".into(), "Bearer $TOKEN".into()),
            ],
            request_body: vec!["--data-binary @red-triangle.dcm".into()],
            ..Exchange::default()
        };
        let c = e.curl();
        assert!(c.starts_with("curl \\\n  -X POST"), "{c}");
        assert!(c.contains("-H \"Authorization: Bearer $TOKEN\""));
        assert!(c.contains("-H 'Accept: application/dicom+json'"));
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
