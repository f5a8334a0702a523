//! An async DICOMweb client for the lab: tokens (Azure AD v1 / v2, pasted bearer, basic, none), STOW
//! (single part and hand-built multipart/related, streamed from disk), QIDO, WADO (streamed to disk),
//! delete, change feed, extended query tags and operations. It knows nothing of the TUI: every call
//! answers with the HTTP status and body (an HTTP error is an answer the checks diagnose, not an `Err`),
//! and reports each exchange to an optional sink, with an equivalent curl command.

pub mod auth;
pub mod client;
mod exchange;
pub mod ledger;
pub mod loganalytics;
mod multipart;
pub mod routes;
pub mod timestamp;
pub mod tls;

pub use auth::{AuthConfig, Claims, Secret, Token, TokenError, TokenVersion};
pub use client::{Answer, ClientError, DicomWebClient, Level, StoreMode, StoreProgress};
pub use exchange::Exchange;
pub use ledger::{Ledger, OwnRequest};
pub use loganalytics::{LogError, LogReader, LogTable};
pub use routes::{BaseUrl, InstanceRef, Retrieve};

/// Compares JSON names and enum values the way docs/contract.md §12 asks: without case.
pub fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Reads a property of a JSON object without regard to case (`sequence` / `Sequence`).
pub fn get_ci<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// GUIDs compared with or without dashes, in any case (docs/contract.md §8.6).
pub fn same_guid(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '-' && *c != '{' && *c != '}')
            .collect::<String>()
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// Parses a timestamp with `Z` or `+00:00` (any offset), with up to 7 fractional digits.
pub fn parse_timestamp(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s.trim(), &Rfc3339)
        .ok()
        .or_else(|| {
            // A timestamp without a zone (tag error `createdTime`) is UTC.
            time::OffsetDateTime::parse(&format!("{}Z", s.trim()), &Rfc3339).ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_reading() {
        assert!(same_guid(
            "3f2b9c4e-0d6a-4c1e-9a7b-5e8f1d2c3b4a",
            "3F2B9C4E0D6A4C1E9A7B5E8F1D2C3B4A"
        ));
        assert!(!same_guid("3f2b9c4e", "3f2b9c4f"));
        let v = serde_json::json!({"Sequence": 5, "action": "create"});
        assert_eq!(get_ci(&v, "sequence"), Some(&serde_json::json!(5)));
        assert!(eq_ci(
            get_ci(&v, "Action").and_then(|a| a.as_str()).unwrap_or(""),
            "Create"
        ));
        let z = parse_timestamp("2023-05-03T10:58:00.1234567Z").expect("z");
        let o = parse_timestamp("2023-05-03T10:58:00.1234567+00:00").expect("offset");
        assert_eq!(z, o);
        assert!(parse_timestamp("2024-03-01T09:00:01.5550000").is_some());
    }
}
