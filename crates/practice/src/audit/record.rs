//! The middleware that makes the log's rows: a `Started` and a result row for every DICOM request (its
//! OperationName from the route), a sign-in row for every app's token request; rows of callers without
//! a valid token are bounded in size and rate.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use time::OffsetDateTime;

use super::{AuditRow, SignInRow, bounded};
use crate::{SharedService, origin_of};

/// Longest Uri kept of a caller without a valid token (its User-Agent: half of it).
const ANONYMOUS_FIELD: usize = 256;

/// The audit event type of a DICOM route (None: not a DICOM route, not audited).
pub(crate) fn operation_name(method: &Method, path: &str) -> Option<&'static str> {
    let mut segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let version = segs.first()?;
    if !(version.starts_with('v') && version[1..].starts_with(|c: char| c.is_ascii_digit())) {
        return None;
    }
    segs.remove(0);
    if segs.first() == Some(&"partitions") {
        if segs.len() <= 2 {
            return Some("Partition");
        }
        segs.drain(..2);
    }
    let m = method.as_str();
    // HEAD, OPTIONS (a CORS preflight) and methods the contract has no route for are no operation:
    // a HEAD logged as a Retrieve would read as a GET the learner never sent.
    if !matches!(m, "GET" | "POST" | "PATCH" | "DELETE") {
        return None;
    }
    let last = *segs.last()?;
    Some(match segs.first().copied()? {
        "studies" | "series" | "instances" => match m {
            "POST" => "Store",
            "DELETE" => "Delete",
            "PATCH" => return None,
            _ if last == "metadata" => "RetrieveMetadata",
            _ if last == "rendered" => "RetrieveRendered",
            _ if segs.len() % 2 == 1 => "Query",
            _ => "Retrieve",
        },
        "changefeed" => "ChangeFeed",
        "extendedquerytags" => match (m, segs.len()) {
            ("POST", _) => "AddExtendedQueryTag",
            ("GET", 1) => "GetAllExtendedQueryTags",
            ("GET", 2) => "GetExtendedQueryTag",
            ("GET", _) => "GetExtendedQueryTagErrors",
            ("PATCH", _) => "UpdateExtendedQueryTag",
            ("DELETE", _) => "RemoveExtendedQueryTag",
            _ => return None,
        },
        "operations" => "Operation",
        _ => return None,
    })
}

/// The caller's `User-Agent`, bounded.
fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(bounded)
        .unwrap_or_default()
}

/// The middleware that writes the audit rows of every DICOM request and the sign-in rows of every
/// token request.
pub(crate) async fn record(State(svc): State<SharedService>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.ends_with("/oauth2/token") || path.ends_with("/oauth2/v2.0/token") {
        return record_signin(svc, req, next).await;
    }
    let Some(operation) = operation_name(req.method(), &path) else {
        return next.run(req).await;
    };
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let uri = bounded(&format!(
        "{}{}",
        origin_of(req.headers(), &svc),
        req.uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str())
    ));
    let identity = svc.auth.identity(req.headers());
    let user_agent = user_agent(req.headers());
    // A caller without a token this service signed (none, or a forged one): one small row, and only
    // as many as a person makes — a flood of them costs the log (and the checks that read it)
    // nothing. A learner's own 401s (an expired token) keep their full rows.
    if identity.as_object().is_some_and(serde_json::Map::is_empty) {
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&correlation_id) {
            resp.headers_mut().insert("x-ms-request-id", v);
        }
        if svc.audit.admit_anonymous() {
            svc.audit.push_audit(AuditRow {
                time: OffsetDateTime::now_utc(),
                operation,
                identity,
                status: Some(resp.status().as_u16()),
                result_type: if resp.status().as_u16() < 400 {
                    "Succeeded"
                } else {
                    "Failed"
                },
                correlation_id,
                uri: uri.chars().take(ANONYMOUS_FIELD).collect(),
                user_agent: user_agent.chars().take(ANONYMOUS_FIELD / 2).collect(),
            });
        }
        return resp;
    }
    let started = AuditRow {
        time: OffsetDateTime::now_utc(),
        operation,
        identity: identity.clone(),
        status: None,
        result_type: "Started",
        correlation_id: correlation_id.clone(),
        uri: uri.clone(),
        user_agent: user_agent.clone(),
    };
    svc.audit.push_audit(started);
    let mut resp = next.run(req).await;
    let status = resp.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        resp.headers_mut().insert("x-ms-request-id", v);
    }
    svc.audit.push_audit(AuditRow {
        time: OffsetDateTime::now_utc(),
        operation,
        identity,
        status: Some(status),
        result_type: if status < 400 { "Succeeded" } else { "Failed" },
        correlation_id,
        uri,
        user_agent,
    });
    resp
}

/// Largest token request or answer read for the sign-in log (they are a few hundred bytes).
const SIGNIN_BODY_LIMIT: usize = 64 * 1024;

async fn record_signin(svc: SharedService, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, SIGNIN_BODY_LIMIT).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The token request is too large.",
        )
            .into_response();
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let field = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| bounded(v.trim()))
            .unwrap_or_default()
    };
    // A user's code redemption: the identity endpoint writes its row (to SigninLogs, with the user).
    if field("grant_type") == "authorization_code" {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let app_id = field("client_id");
    let resource = {
        let r = field("resource");
        if r.is_empty() {
            field("scope").trim_end_matches("/.default").to_string()
        } else {
            r
        }
    };
    let user_agent = user_agent(&parts.headers);
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = resp.into_parts();
    let Ok(rbytes) = to_bytes(rbody, SIGNIN_BODY_LIMIT).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let answer: Value = serde_json::from_slice(&rbytes).unwrap_or(Value::Null);
    let (result_type, result_description) = match answer
        .get("error_codes")
        .and_then(|c| c.get(0))
        .and_then(Value::as_u64)
    {
        Some(code) => (
            code.to_string(),
            answer
                .get("error_description")
                .and_then(Value::as_str)
                .and_then(|d| d.lines().next())
                .map(bounded)
                .unwrap_or_default(),
        ),
        None if rparts.status.is_success() => ("0".to_string(), String::new()),
        None => (rparts.status.as_u16().to_string(), String::new()),
    };
    svc.audit.push_signin(SignInRow {
        time: OffsetDateTime::now_utc(),
        app_id,
        result_type,
        result_description,
        resource,
        correlation_id: answer
            .get("correlation_id")
            .and_then(Value::as_str)
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
        user_agent,
    });
    Response::from_parts(rparts, Body::from(rbytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_follow_the_routes() {
        let get = Method::GET;
        assert_eq!(operation_name(&Method::POST, "/v1/studies"), Some("Store"));
        assert_eq!(operation_name(&get, "/v1/studies"), Some("Query"));
        assert_eq!(operation_name(&get, "/v1/studies/1.2"), Some("Retrieve"));
        assert_eq!(
            operation_name(&get, "/v1/studies/1.2/series"),
            Some("Query")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1.2/series/3"),
            Some("Retrieve")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1.2/series/3/instances"),
            Some("Query")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1/series/3/instances/4/frames/1"),
            Some("Retrieve")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1/metadata"),
            Some("RetrieveMetadata")
        );
        assert_eq!(
            operation_name(&get, "/v1/studies/1/series/3/instances/4/rendered"),
            Some("RetrieveRendered")
        );
        assert_eq!(
            operation_name(&Method::DELETE, "/v1/studies/1"),
            Some("Delete")
        );
        assert_eq!(
            operation_name(&get, "/v2/changefeed/latest"),
            Some("ChangeFeed")
        );
        assert_eq!(
            operation_name(&Method::POST, "/v1/extendedquerytags"),
            Some("AddExtendedQueryTag")
        );
        assert_eq!(
            operation_name(&get, "/v1/extendedquerytags/PatientSex/errors"),
            Some("GetExtendedQueryTagErrors")
        );
        assert_eq!(
            operation_name(&Method::PATCH, "/v1/extendedquerytags/PatientSex"),
            Some("UpdateExtendedQueryTag")
        );
        assert_eq!(
            operation_name(&get, "/v1/operations/abc"),
            Some("Operation")
        );
        assert_eq!(
            operation_name(&get, "/v1/partitions/p1/studies"),
            Some("Query")
        );
        assert_eq!(operation_name(&get, "/health/check"), None);
        assert_eq!(operation_name(&Method::PUT, "/admin/roles/x/y"), None);
        assert_eq!(operation_name(&Method::HEAD, "/v1/studies/1.2"), None);
        assert_eq!(operation_name(&Method::OPTIONS, "/v1/studies"), None);
        assert_eq!(operation_name(&Method::PUT, "/v1/studies/1.2"), None);
        assert_eq!(operation_name(&get, "/studies"), None);
    }
}
