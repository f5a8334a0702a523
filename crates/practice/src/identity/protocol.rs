//! What the identity endpoints share: the protocol's names (Microsoft Graph's id, the DICOM scope), the
//! longest request, and the shape of their answers (readable from any origin, never cached; request
//! text made safe to show).

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Microsoft Graph's application id: the audience of a token asked for with OpenID scopes only.
pub const GRAPH_RESOURCE: &str = "00000003-0000-0000-c000-000000000000";
/// The DICOM service's delegated permission (API permissions → Azure API for DICOM).
pub const DICOM_SCOPE: &str = "Dicom.ReadWrite";
/// Longest authorization request (its query string).
pub(super) const MAX_QUERY: usize = 8 * 1024;
/// Text from a request, made safe to show and cut to `max` characters.
pub(super) fn shown(s: &str, max: usize) -> String {
    dicomlab_dicom::text::visible(s).chars().take(max).collect()
}

/// The issuer of the tenant's id_tokens, as its discovery document names it.
pub(super) fn issuer(origin: &str, tenant: &str) -> String {
    format!("{origin}/{tenant}/v2.0")
}

pub(super) fn with_any_origin(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// A JSON answer readable from any origin, never cached.
pub(super) fn public_json(status: StatusCode, body: Value) -> Response {
    let mut resp = with_any_origin((status, Json(body)).into_response());
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    resp
}

/// The caller's `User-Agent`, cut to 512 characters (the sign-in log's column).
pub(super) fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
        .unwrap_or_default()
}
