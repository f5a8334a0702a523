//! What dicomlab's checks sent themselves: the audit and sign-in logs record those requests with the
//! learner's credentials (the checks use the learner's app), and Azure's logs keep neither a
//! User-Agent nor, on most routes, the check's query mark. A checking client notes each request it
//! sends here (method, path, time); the notes are kept with progress, and an audit row matched by one
//! is the checks', never the learner's.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Most notes held in memory (the oldest are dropped first).
const MAX_NOTES: usize = 10_000;

/// One request a check sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OwnRequest {
    /// When it was sent (RFC 3339 on disk).
    #[serde(with = "crate::timestamp::rfc3339")]
    pub at: OffsetDateTime,
    pub method: String,
    /// The URL's path, normalized by [`route_key`].
    pub path: String,
}

/// Notes shared by a session's checking clients (the DICOM service's and the log reader's).
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Vec<OwnRequest>>>);

impl Ledger {
    pub fn note(&self, method: &str, url: &str, at: OffsetDateTime) {
        let Ok(mut notes) = self.0.lock() else {
            return;
        };
        notes.push(OwnRequest {
            at,
            method: method.to_ascii_uppercase(),
            path: route_key(url),
        });
        if notes.len() > MAX_NOTES {
            let extra = notes.len() - MAX_NOTES;
            notes.drain(..extra);
        }
    }

    /// The notes so far, leaving them in place.
    pub fn snapshot(&self) -> Vec<OwnRequest> {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// The notes so far, emptied (to be kept with progress).
    pub fn take(&self) -> Vec<OwnRequest> {
        self.0
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }
}

/// What a URL's request is compared by: its path without origin, query or trailing slash, lower
/// case; a token endpoint (`/{tenant}/oauth2/token`, `…/oauth2/v2.0/token`) is `/oauth2/token`, the
/// way sign-in rows are read.
pub fn route_key(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or("");
    let path = match no_query.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => no_query,
    };
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    if path.contains("/oauth2/") && path.ends_with("/token") {
        return "/oauth2/token".into();
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_compared_without_origin_query_or_case() {
        assert_eq!(
            route_key("https://ws.dicom.azurehealthcareapis.com/v1/studies/1.2/Metadata?x=1"),
            "/v1/studies/1.2/metadata"
        );
        assert_eq!(route_key("/v1/studies/"), "/v1/studies");
        assert_eq!(
            route_key("https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"),
            "/oauth2/token"
        );
        assert_eq!(route_key("/oauth2/token"), "/oauth2/token");
        assert_eq!(route_key("https://h"), "");
    }

    #[test]
    fn notes_are_bounded_and_taken_once() {
        let l = Ledger::default();
        for i in 0..(MAX_NOTES + 5) {
            l.note(
                "get",
                &format!("https://h/v1/studies/{i}"),
                time::macros::datetime!(2026-11-30 14:00:00 UTC),
            );
        }
        let clone = l.clone();
        assert_eq!(clone.snapshot().len(), MAX_NOTES);
        let taken = l.take();
        assert_eq!(taken.len(), MAX_NOTES);
        assert_eq!(taken[0].method, "GET");
        assert_eq!(
            taken.last().map(|n| n.path.as_str()),
            Some("/v1/studies/10004")
        );
        assert!(clone.take().is_empty());
    }
}
