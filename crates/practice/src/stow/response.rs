//! The STOW-RS answer: the referenced and failed SOP sequences, each instance's warning or failure reason
//! and comments, and the status (200, 202 or 409) they make.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::outcome::Outcome;
use crate::{ApiVersion, Service, versioned_base};

/// A DICOM JSON element as text: `{"vr":"UI","Value":[…]}` (`values` are JSON texts), or `{"vr":"SQ"}`.
fn element(vr: &str, values: &[String]) -> String {
    if values.is_empty() {
        format!("{{\"vr\":\"{vr}\"}}")
    } else {
        format!("{{\"vr\":\"{vr}\",\"Value\":[{}]}}", values.join(","))
    }
}

/// A string as JSON text.
fn text(s: &str) -> String {
    Value::from(s).to_string()
}

/// An object of tag keys (ascending, as the caller gives them) and element texts.
fn object(fields: &[(&str, String)]) -> String {
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

/// The STOW answer, written as text item by item: a request of 10,000 parts must not build a JSON tree
/// of 10,000 objects (tens of megabytes) to say how each went.
pub(super) fn respond(
    svc: &Service,
    headers: &HeaderMap,
    version: ApiVersion,
    study: Option<&str>,
    outcomes: Vec<Outcome>,
) -> Response {
    let mut referenced = Vec::new();
    let mut failed = Vec::new();
    let mut any_warning = false;
    for o in outcomes {
        match o {
            Outcome::Stored {
                class,
                sop,
                url,
                warning,
                comments,
            } => {
                let mut item = vec![
                    ("00081150", element("UI", &[text(&class)])),
                    ("00081155", element("UI", &[text(&sop)])),
                    ("00081190", element("UR", &[text(&url)])),
                ];
                if let Some(w) = warning {
                    any_warning = true;
                    item.push(("00081196", element("US", &[w.to_string()])));
                }
                if version.v2 {
                    item.push(("00741048", comment_sequence(&comments)));
                }
                referenced.push(object(&item));
            }
            Outcome::Failed {
                reason,
                class,
                sop,
                comments,
            } => {
                let mut item = Vec::new();
                if let Some(c) = class {
                    item.push(("00081150", element("UI", &[text(&c)])));
                }
                if let Some(s) = sop {
                    item.push(("00081155", element("UI", &[text(&s)])));
                }
                item.push(("00081197", element("US", &[reason.to_string()])));
                if !comments.is_empty() {
                    item.push(("00741048", comment_sequence(&comments)));
                }
                failed.push(object(&item));
            }
        }
    }
    let mut body = Vec::new();
    if let Some(study) = study
        && !referenced.is_empty()
    {
        let url = format!("{}/studies/{study}", versioned_base(headers, svc, version));
        body.push(("00081190", element("UR", &[text(&url)])));
    }
    let status = if referenced.is_empty() {
        StatusCode::CONFLICT
    } else if !failed.is_empty() || (version.v2 && any_warning) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if !failed.is_empty() {
        body.push(("00081198", element("SQ", &failed)));
    }
    if !referenced.is_empty() {
        body.push(("00081199", element("SQ", &referenced)));
    }
    let mut resp = (status, object(&body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    resp
}

/// A comment sequence (0074,1048): one item per comment.
fn comment_sequence(comments: &[String]) -> String {
    let items: Vec<String> = comments
        .iter()
        .map(|c| object(&[("00000902", element("LO", &[text(c)]))]))
        .collect();
    element("SQ", &items)
}
