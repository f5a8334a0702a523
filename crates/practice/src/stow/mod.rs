//! STOW-RS (docs/contract.md §3): `POST /v{n}/studies[/{study}]`, single-part `application/dicom` or
//! `multipart/related`, streamed to disk (small parts kept in memory), validated like the real service
//! (v1: required and indexed tags; v2: required tags fail, the rest are dropped with warnings) and
//! stored atomically.
//!
//! This file takes the request (its framing, the refusals before the body is read, the room promised
//! for it); [`instance`] stores each received instance, [`validate`] checks it as Azure does, and
//! [`response`] writes the answer from each instance's [`outcome`].

mod commit;
mod instance;
mod outcome;
mod response;
mod storer;
mod validate;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) use self::commit::StoreCommits;
use self::instance::store_parts;
use self::response::respond;
pub(crate) use self::storer::Storer;
use crate::accept::accepts_dicom_json;
use crate::auth::{Action, Caller};
use crate::error::{ApiError, ApiResult};
use crate::multipart::{Intake, ReceivedPart, receive_related, receive_single};
use crate::quota::StoragePromise;
use crate::{ApiVersion, Service, SharedService, versioned_base};
use dicomlab_dicom::uid::is_valid_uid;

/// How the request body is framed.
enum Framing {
    Single,
    Related {
        boundary: String,
        type_param: Option<String>,
    },
}

/// Contract §3.2: exactly `application/dicom`, or `multipart/related` with a boundary and no `start`.
fn framing(headers: &HeaderMap) -> ApiResult<Framing> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    if ct.eq_ignore_ascii_case("application/dicom") {
        return Ok(Framing::Single);
    }
    let Ok(mime) = ct.parse::<mime::Mime>() else {
        return Err(ApiError::unsupported_media());
    };
    if mime.type_() != mime::MULTIPART || !mime.subtype().as_str().eq_ignore_ascii_case("related") {
        return Err(ApiError::unsupported_media());
    }
    if mime.get_param("start").is_some() {
        return Err(ApiError::unsupported_media());
    }
    let Some(boundary) = mime.get_param(mime::BOUNDARY) else {
        return Err(ApiError::unsupported_media());
    };
    let type_param = mime.get_param("type").map(|t| t.as_str().to_string());
    Ok(Framing::Related {
        boundary: boundary.as_str().to_string(),
        type_param,
    })
}

/// `POST /v{n}/studies`
pub(crate) async fn store(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    store_impl(svc, version, caller, None, headers, body).await
}

/// `POST /v{n}/studies/{study}`
pub(crate) async fn store_in_study(
    State(svc): State<SharedService>,
    version: ApiVersion,
    caller: Caller,
    Path((_, study)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    store_impl(svc, version, caller, Some(study), headers, body).await
}

/// How much of a refused request body is read (and dropped) so that its answer reaches the client.
/// Beyond it the connection is closed: a refused multi-gigabyte upload is not worth waiting for.
const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads and drops up to `limit` bytes of a body; whether it was read to its end.
async fn discard(body: Body, limit: u64) -> bool {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return false };
        n += chunk.len() as u64;
        if n > limit {
            return false;
        }
    }
    true
}

/// Refuses a store whose body is not wanted. The body is read and dropped (up to [`DISCARD_LIMIT`]) so
/// that a client still sending it reads the answer rather than a broken pipe — unless it asked first
/// (`Expect: 100-continue`: it is answered at once, and sends nothing) or declared more than that.
async fn refuse_unread(
    e: ApiError,
    body: Body,
    headers: &HeaderMap,
    declared_len: Option<u64>,
) -> ApiError {
    let asked_first = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    if asked_first || declared_len.is_some_and(|n| n > DISCARD_LIMIT) {
        return closing(e);
    }
    if discard(body, DISCARD_LIMIT).await {
        e
    } else {
        closing(e)
    }
}

/// An answer sent before the request body was read to its end: the connection cannot serve another
/// request, and saying so keeps clients from reusing it (and failing their next request).
fn closing(e: ApiError) -> ApiError {
    e.with_header(header::CONNECTION, "close")
}

async fn store_impl(
    svc: SharedService,
    version: ApiVersion,
    caller: Caller,
    study: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let framing = match admit(&svc, &caller, study.as_deref(), &headers) {
        Ok(f) => f,
        Err(e) => {
            // A client still sending the body would otherwise see its connection closed (a broken
            // pipe) instead of the 401 / 403 / 406 / 415 that says why.
            return Err(refuse_unread(e, body, &headers, declared_len).await);
        }
    };
    let max = svc.config.max_request_bytes;
    if declared_len.is_some_and(|n| n > max) {
        return Err(closing(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body exceeds the maximum allowed size of {max} bytes."),
        )));
    }
    // Stores received at once share the room: each is promised its declared size before it is read
    // (a body that cannot fit never reaches the disk), a body of unknown size each chunk as it arrives;
    // the promise holds until what was received is stored or refused.
    let promise = match svc.config.max_stored_bytes {
        None => None,
        Some(quota) => {
            let held = svc.db.stored_bytes();
            let r = StoragePromise::new(&svc.storage_reserved, quota, held);
            if let Err(e) = r.grow(declared_len.unwrap_or(0)) {
                return Err(refuse_unread(e, body, &headers, declared_len).await);
            }
            Some(r)
        }
    };
    let intake = Intake {
        blobs: &svc.blobs,
        max,
        idle: svc.config.limits.body_timeout,
        memory: &svc.receive_memory,
        storage: promise.as_ref().filter(|_| declared_len.is_none()),
    };
    let parts = receive(framing, body, declared_len, &intake).await?;
    if parts.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let base = versioned_base(&headers, &svc, version);
    let (outcomes, multi_valued) = store_parts(
        &svc,
        version,
        study.as_deref(),
        &base,
        parts,
        promise.as_ref(),
    )
    .await;
    let mut resp = respond(&svc, &headers, version, study.as_deref(), outcomes);
    if multi_valued {
        warn_multi_valued(&mut resp, &headers);
    }
    Ok(resp)
}

/// What is refused before the body is read: the Accept filter, the framing, the role, the path's
/// study UID.
fn admit(
    svc: &Service,
    caller: &Caller,
    study: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Framing> {
    if !accepts_dicom_json(headers) {
        return Err(ApiError::empty(StatusCode::NOT_ACCEPTABLE));
    }
    let framing = framing(headers)?;
    caller.require(svc, Action::Write)?;
    if let Some(s) = study
        && !is_valid_uid(s)
    {
        return Err(ApiError::bad_uid("StudyInstanceUid", s));
    }
    Ok(framing)
}

/// Receives the body's parts (to disk, or memory when small); an error closes the connection.
async fn receive(
    framing: Framing,
    body: Body,
    declared_len: Option<u64>,
    intake: &Intake<'_>,
) -> ApiResult<Vec<ReceivedPart>> {
    Ok(match framing {
        Framing::Single => vec![receive_single(body, intake).await.map_err(closing)?],
        Framing::Related { .. } if declared_len == Some(0) => Vec::new(),
        Framing::Related {
            boundary,
            type_param,
        } => receive_related(body, &boundary, type_param.as_deref(), intake)
            .await
            .map_err(closing)?,
    })
}

/// Azure's Warning header when an indexed tag had several values (only the first is indexed).
fn warn_multi_valued(resp: &mut Response, headers: &HeaderMap) {
    let agent = warn_agent(
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "299 {agent} \"One or more indexed Dicom tag(s) have multiple values, only first value is indexed.\""
    )) {
        resp.headers_mut().insert(header::WARNING, v);
    }
}

/// The warn-agent of a Warning header as Azure writes it: the request's host without its port, then a
/// colon (`127.0.0.1:18742` → `127.0.0.1:`, `[::1]:80` → `[::1]:`); nothing without a host.
fn warn_agent(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if name.is_empty() {
        String::new()
    } else {
        format!("{name}:")
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
