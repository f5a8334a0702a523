//! Requests as a lab names them (`GET studies/{red.study}/metadata`) and as records show them (an audit
//! row's Uri, a sign-in row, dicomlab's own exchange): [`RequestPattern`] says whether an attempt is the
//! request a step asks for, exactly (credit) or loosely (the same route with other values: an attempt
//! at the step, whose failure the step can diagnose).

use serde::Deserialize;

/// Whose requests count for a `requests` check (or one of its alternatives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The app's or a signed-in user's.
    #[default]
    Any,
    /// The app's own (client credentials).
    App,
    /// A user signed in through the app (a delegated token, e.g. in the OHIF viewer), never the
    /// app's own.
    User,
}

/// One alternative of a request: a pattern, or a pattern with whose request it must be.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Alternative {
    Plain(String),
    With {
        request: String,
        #[serde(default)]
        by: Option<By>,
    },
}

impl Alternative {
    pub fn request(&self) -> &str {
        match self {
            Alternative::Plain(s) | Alternative::With { request: s, .. } => s,
        }
    }
    /// Its own `by`, if it says one (else the check's counts).
    pub fn by(&self) -> Option<By> {
        match self {
            Alternative::Plain(_) => None,
            Alternative::With { by, .. } => *by,
        }
    }
}

/// One request of a `requests` check: a pattern, or alternatives of which any one will do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RequestSpec {
    One(String),
    Any {
        any: Vec<Alternative>,
        #[serde(default)]
        label: Option<String>,
    },
}

impl RequestSpec {
    /// The patterns (as written, before placeholders are filled).
    pub fn alternatives(&self) -> Vec<&str> {
        self.alternatives_by().into_iter().map(|(r, _)| r).collect()
    }

    /// The patterns with the `by` each says (None: the check's).
    pub fn alternatives_by(&self) -> Vec<(&str, Option<By>)> {
        match self {
            RequestSpec::One(s) => vec![(s.as_str(), None)],
            RequestSpec::Any { any, .. } => any.iter().map(|a| (a.request(), a.by())).collect(),
        }
    }

    /// How a list names it.
    pub fn label(&self) -> Option<&str> {
        match self {
            RequestSpec::One(_) => None,
            RequestSpec::Any { label, .. } => label.as_deref(),
        }
    }
}

/// A parsed request pattern: method, path under the base URL, and the query parameters it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPattern {
    pub method: String,
    /// Path segments under the versioned base (`studies`, `1.2.3`, `metadata`).
    pub segments: Vec<String>,
    /// Parameters the request must carry with these values (others may be there too).
    pub query: Vec<(String, String)>,
}

/// The methods the service has routes for (docs/contract.md §2): a pattern with another could never match.
const METHODS: [&str; 4] = ["GET", "POST", "PATCH", "DELETE"];

impl RequestPattern {
    /// `GET studies?StudyInstanceUID=1.2` (the method may be left out: GET).
    pub fn parse(text: &str) -> Result<RequestPattern, String> {
        let text = text.trim();
        let (method, rest) = match text.split_once(char::is_whitespace) {
            Some((m, r)) if m.chars().all(|c| c.is_ascii_alphabetic()) => {
                let m = m.to_ascii_uppercase();
                if !METHODS.contains(&m.as_str()) {
                    return Err(format!(
                        "'{m}' is not an HTTP method a lab request may use ({})",
                        METHODS.join(", ")
                    ));
                }
                (m, r.trim())
            }
            _ if METHODS.contains(&text.to_ascii_uppercase().as_str()) => {
                return Err(format!("the request '{text}' has no path"));
            }
            _ => ("GET".to_string(), text),
        };
        if rest.is_empty() {
            return Err(format!("the request '{text}' has no path"));
        }
        if rest.contains("://") {
            return Err(format!(
                "the request '{text}' must be a path under the base URL (studies/…), not a URL"
            ));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if segments.is_empty() {
            return Err(format!("the request '{text}' has no path"));
        }
        Ok(RequestPattern {
            method,
            segments,
            query: parse_query(query),
        })
    }

    /// `GET studies/…?StudyInstanceUID=…` for lists.
    pub fn display(&self) -> String {
        let mut s = format!("{} {}", self.method, self.segments.join("/"));
        if !self.query.is_empty() {
            let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push('?');
            s.push_str(&q.join("&"));
        }
        s
    }

    /// Whether a request (method, URL or path) is exactly this one: same method, same path under the
    /// base URL, and every parameter of the pattern with its value.
    pub fn matches(&self, method: &str, url: &str) -> bool {
        route_of(url).is_some_and(|r| self.matches_route(method, &r))
    }

    /// [`RequestPattern::matches`] on a route parsed once (an attempt's).
    pub fn matches_route(&self, method: &str, (segments, query): &Route) -> bool {
        if !method.eq_ignore_ascii_case(&self.method) {
            return false;
        }
        segments.len() == self.segments.len()
            && segments
                .iter()
                .zip(&self.segments)
                .all(|(a, b)| segment_eq(a, b))
            && self.query.iter().all(|(k, v)| {
                query
                    .iter()
                    .any(|(qk, qv)| same_key(qk, k) && qv.trim() == v.trim())
            })
    }

    /// Whether a request is an attempt at this one: same method, same route shape (literal segments
    /// equal, identifiers anything). Its failure belongs to the step.
    pub fn loosely_matches(&self, method: &str, url: &str) -> bool {
        route_of(url).is_some_and(|r| self.loosely_matches_route(method, &r))
    }

    /// [`RequestPattern::loosely_matches`] on a route parsed once.
    pub fn loosely_matches_route(&self, method: &str, (segments, _): &Route) -> bool {
        if !method.eq_ignore_ascii_case(&self.method) {
            return false;
        }
        segments.len() == self.segments.len()
            && segments
                .iter()
                .zip(&self.segments)
                .all(|(a, b)| is_identifier(b) || segment_eq(a, b))
    }
}

fn segment_eq(a: &str, b: &str) -> bool {
    if is_identifier(b) {
        a.trim() == b.trim()
    } else {
        a.eq_ignore_ascii_case(b) || same_tag_path(a, b)
    }
}

/// A tag's keyword and its number name the same tag (`extendedquerytags/PatientSex` = `…/00100040`).
fn same_tag_path(a: &str, b: &str) -> bool {
    match (
        dicomlab_dicom::tags::resolve(a),
        dicomlab_dicom::tags::resolve(b),
    ) {
        (Some(x), Some(y)) => x.tag == y.tag,
        _ => false,
    }
}

/// A UID, a number, a tag path: a value rather than a route word.
fn is_identifier(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit()) || s.contains('{')
}

/// Query keys are the same when equal, or when one is an attribute's keyword and the other its tag
/// (`StudyInstanceUID` / `0020000D`).
fn same_key(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    // Only a keyword and an 8-hex tag can be the same attribute under two names.
    let hex = |s: &str| s.len() == 8 && s.bytes().all(|c| c.is_ascii_hexdigit());
    if hex(a) == hex(b) {
        return false;
    }
    match (
        dicomlab_dicom::tags::resolve(a),
        dicomlab_dicom::tags::resolve(b),
    ) {
        (Some(x), Some(y)) => x.tag == y.tag,
        _ => false,
    }
}

/// Decodes `a=b&c=d` (percent-decoding, `+` as space).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_else(|_| {
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    })
}

/// Path segments and query parameters of a request.
pub(crate) type Route = (Vec<String>, Vec<(String, String)>);

/// The route of a request under the DICOM base URL: its path segments after the version (and after
/// `partitions/{name}`), or — for a server whose base URL has no version (Orthanc's `/dicom-web`) — from
/// the first DICOMweb route word on; and its query. A URL or a path; `None` when it has neither.
pub(crate) fn route_of(url: &str) -> Option<Route> {
    let without_origin = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    let (path, query) = without_origin
        .split_once('?')
        .unwrap_or((without_origin, ""));
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let start = match segs.iter().position(|s| is_version(s)) {
        Some(v) => v + 1,
        None => segs
            .iter()
            .position(|s| ROUTE_WORDS.contains(&s.as_str()))?,
    };
    let mut rest: Vec<String> = segs[start..].to_vec();
    if rest.first().map(String::as_str) == Some("partitions") && rest.len() >= 2 {
        rest.drain(..2);
    }
    Some((rest, parse_query(query)))
}

/// The first segment of every DICOMweb route the lab uses.
const ROUTE_WORDS: [&str; 6] = [
    "studies",
    "series",
    "instances",
    "changefeed",
    "extendedquerytags",
    "operations",
];

fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

fn percent_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={}", s.replace('+', "%2B")))
        .ok()
        .and_then(|v| v.into_iter().next())
        .map_or_else(|| s.to_string(), |(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_loose_matches() {
        let p = RequestPattern::parse("GET studies/1.2.3/series?SeriesInstanceUID=1.2.3.4")
            .expect("parses");
        assert!(p.matches(
            "GET",
            "https://h/v1/studies/1.2.3/series?SeriesInstanceUID=1.2.3.4&includefield=all"
        ));
        assert!(
            p.matches("get", "/v1/studies/1.2.3/series?0020000E=1.2.3.4"),
            "tag for keyword"
        );
        assert!(p.matches(
            "GET",
            "http://h/v1/partitions/p1/studies/1.2.3/series?SeriesInstanceUID=1.2.3.4"
        ));
        assert!(
            !p.matches("GET", "/v1/studies/1.2.3/series"),
            "filter missing"
        );
        assert!(!p.matches("GET", "/v1/studies/9.9/series?SeriesInstanceUID=1.2.3.4"));
        assert!(!p.matches("POST", "/v1/studies/1.2.3/series?SeriesInstanceUID=1.2.3.4"));
        assert!(
            p.matches(
                "GET",
                "http://orthanc:8042/dicom-web/studies/1.2.3/series?SeriesInstanceUID=1.2.3.4"
            ),
            "a base URL without a version (Orthanc's)"
        );
        assert!(!p.matches("GET", "/v1/other/1.2.3/series?SeriesInstanceUID=1.2.3.4"));
        assert!(p.loosely_matches("GET", "/v1/studies/9.9/series?PatientID=x"));
        assert!(!p.loosely_matches("GET", "/v1/studies/9.9/instances"));
        let d = RequestPattern::parse("DELETE extendedquerytags/PatientSex").expect("parses");
        assert!(d.matches("DELETE", "/v1/extendedquerytags/PatientSex"));
        let s = RequestPattern::parse("studies?PatientName=Anony%20Mous").expect("parses");
        assert_eq!(s.method, "GET");
        assert!(s.matches("GET", "/v1/studies?PatientName=Anony+Mous"));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(
            RequestPattern::parse("FETCH studies")
                .expect_err("method")
                .contains("FETCH")
        );
        assert!(
            RequestPattern::parse("GET https://x/v1/studies")
                .expect_err("url")
                .contains("path")
        );
        assert!(RequestPattern::parse("GET").is_err());
    }
}
